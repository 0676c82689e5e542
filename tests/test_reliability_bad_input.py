"""Bad input to every public entry point: each bad call raises TypeError or ValueError (an
unknown config option: UnknownOptionError, which is both an AttributeError and a ValueError)
whose message names what was expected; nothing the user passed is mutated, and no global
setting is left changed."""
import copy
import functools

import pytest
import torch
import torch.nn as nn

import bytegraph
from bytegraph import config, make_fx
from bytegraph.exc import UnknownOptionError

aten = torch.ops.aten


def f(x):
    return x + 1


def f_gen(x):
    yield x


async def f_async(x):
    return x


async def f_agen(x):
    yield x


class Plain:
    pass


class Net(nn.Module):
    def forward(self, x):
        return x


class GenCall:
    def __call__(self, x):
        yield x


class BuiltinCall:
    __call__ = len


def backend_without_options(gm, example_inputs):
    return gm.forward


C = bytegraph.compile
CASES = [
    # compile: what is compiled
    ("compile-int", lambda: C(42), TypeError, "callable"),
    ("compile-str", lambda: C("f"), TypeError, "callable"),
    ("compile-list", lambda: C([f]), TypeError, "callable"),
    ("compile-object", lambda: C(object()), TypeError, "callable"),
    ("compile-tensor", lambda: C(torch.ones(2)), TypeError, "callable"),
    ("compile-builtin", lambda: C(len), TypeError, "builtin"),
    ("compile-torch-builtin", lambda: C(torch.add), TypeError, "builtin"),
    ("compile-method-descriptor", lambda: C(torch.Tensor.add), TypeError, "builtin"),
    ("compile-wrapper-descriptor", lambda: C(object.__init__), TypeError, "builtin"),
    ("compile-method-wrapper", lambda: C((1).__add__), TypeError, "builtin"),
    ("compile-class", lambda: C(Plain), TypeError, "class Plain.*instance"),
    ("compile-module-class", lambda: C(Net), TypeError, r"class Net.*Net\(\.\.\.\)"),
    ("compile-builtin-class", lambda: C(int), TypeError, "class int"),
    ("compile-partial-builtin", lambda: C(functools.partial(len)), TypeError, "builtin"),
    ("compile-builtin-dunder-call", lambda: C(BuiltinCall()), TypeError, "__call__"),
    # compile: settings
    ("fullgraph-str", lambda: C(f, fullgraph="yes"), TypeError, "fullgraph.*bool"),
    ("fullgraph-int", lambda: C(f, fullgraph=1), TypeError, "fullgraph.*bool"),
    ("fullgraph-none", lambda: C(f, fullgraph=None), TypeError, "fullgraph.*bool"),
    ("dynamic-str", lambda: C(f, dynamic="x"), TypeError, "dynamic.*None or a bool"),
    ("dynamic-int", lambda: C(f, dynamic=1), TypeError, "dynamic.*None or a bool"),
    ("dynamic-list", lambda: C(f, dynamic=[]), TypeError, "dynamic.*None or a bool"),
    ("options-int", lambda: C(f, options=3), TypeError, "options.*dict"),
    ("options-str", lambda: C(f, options="max_autotune"), TypeError, "options.*dict"),
    ("options-list", lambda: C(f, options=[("a", 1)]), TypeError, "options.*dict"),
    ("options-key-int", lambda: C(f, options={1: True}), TypeError, "option names"),
    ("options-unknown", lambda: C(f, options={"no_such_opt": 1}), ValueError, "not an inductor option"),
    ("options-typo", lambda: C(f, options={"max_autotun": True}), ValueError, "did you mean 'max_autotune'"),
    ("options-bad-type", lambda: C(f, options={"max_autotune": "yes"}), TypeError, "expects bool"),
    ("options-bad-type-int", lambda: C(f, options={"max_autotune": 1}), TypeError, "expects bool"),
    ("options-eager", lambda: C(f, backend="eager", options={"a": 1}), ValueError, "takes no options"),
    ("options-aten", lambda: C(f, backend="aten", options={"a": 1}), ValueError, "takes no options"),
    ("options-callable", lambda: C(f, backend=backend_without_options, options={"a": 1}), ValueError,
     "`options` parameter"),
    ("mode-unknown", lambda: C(f, mode="fastest"), ValueError, "unknown mode 'fastest'.*max-autotune"),
    ("mode-case", lambda: C(f, mode="DEFAULT"), ValueError, "unknown mode"),
    ("mode-empty", lambda: C(f, mode=""), ValueError, "unknown mode"),
    ("mode-int", lambda: C(f, mode=3), TypeError, "mode.*None or one of"),
    ("mode-and-options", lambda: C(f, mode="default", options={"max_autotune": True}), ValueError,
     "mode= or options=, not both"),
    ("backend-int", lambda: C(f, backend=3), TypeError, "registered name or a callable"),
    ("backend-none", lambda: C(f, backend=None), TypeError, "registered name or a callable"),
    ("backend-list", lambda: C(f, backend=["eager"]), TypeError, "registered name or a callable"),
    ("backend-unknown", lambda: C(f, backend="nope"), ValueError, "unknown backend 'nope'.*eager"),
    ("backend-case", lambda: C(f, backend="Eager"), ValueError, "unknown backend"),
    ("backend-empty", lambda: C(f, backend=""), ValueError, "unknown backend"),
    ("compile-disable-str", lambda: C(f, disable="no"), TypeError, "disable.*bool"),
    ("compile-disable-int", lambda: C(f, disable=1), TypeError, "disable.*bool"),
    ("compile-disable-none", lambda: C(f, disable=None), TypeError, "disable.*bool"),
    ("compile-unknown-kwarg", lambda: C(f, bogus=1), TypeError, "bogus"),
    ("compile-positional-backend", lambda: C(f, "eager"), TypeError, "positional"),
    ("decorator-bad-backend", lambda: C(backend=3), TypeError, "callable"),
    ("decorator-bad-fullgraph", lambda: C(fullgraph="x"), TypeError, "fullgraph"),
    # make_fx
    ("make_fx-int", lambda: make_fx(42), TypeError, "callable"),
    ("make_fx-none", lambda: make_fx(None), TypeError, "callable"),
    ("make_fx-mode-unknown", lambda: make_fx(f, tracing_mode="nope"), ValueError, "tracing_mode"),
    ("make_fx-mode-int", lambda: make_fx(f, tracing_mode=1), TypeError, "tracing_mode"),
    ("make_fx-mode-case", lambda: make_fx(f, tracing_mode="Fake"), ValueError, "tracing_mode"),
    ("make_fx-decomp-list", lambda: make_fx(f, decomposition_table=[]), TypeError, "decomposition_table"),
    ("make_fx-decomp-key", lambda: make_fx(f, decomposition_table={1: f}), TypeError, "OpOverload"),
    ("make_fx-decomp-str-key", lambda: make_fx(f, decomposition_table={"aten.add": f}), TypeError,
     "OpOverload"),
    ("make_fx-decomp-value", lambda: make_fx(f, decomposition_table={aten.add.Tensor: 3}), TypeError,
     "not callable"),
    ("make_fx-pre_dispatch", lambda: make_fx(f, pre_dispatch=1), TypeError, "pre_dispatch"),
    ("make_fx-module-stack", lambda: make_fx(f, record_module_stack="y"), TypeError,
     "record_module_stack"),
    ("make_fx-unknown-kwarg", lambda: make_fx(f, bogus=1), TypeError, "bogus"),
    # set_stance
    ("stance-int", lambda: bytegraph.set_stance(3), TypeError, "stance name"),
    ("stance-none", lambda: bytegraph.set_stance(None), TypeError, "stance name"),
    ("stance-list", lambda: bytegraph.set_stance(["default"]), TypeError, "stance name"),
    ("stance-unknown", lambda: bytegraph.set_stance("nope"), ValueError, "unknown stance.*force_eager"),
    ("stance-case", lambda: bytegraph.set_stance("Default"), ValueError, "unknown stance"),
    ("stance-empty", lambda: bytegraph.set_stance(""), ValueError, "unknown stance"),
    ("stance-decorate-non-callable", lambda: bytegraph.set_stance("force_eager")(42), TypeError,
     "decorator expects a callable"),
    # config
    ("config-int-str", lambda: setattr(config, "cache_size_limit", "8"), TypeError, "int >= 0"),
    ("config-int-float", lambda: setattr(config, "cache_size_limit", 2.5), TypeError, "int >= 0"),
    ("config-int-bool", lambda: setattr(config, "cache_size_limit", True), TypeError, "int >= 0"),
    ("config-int-none", lambda: setattr(config, "cache_size_limit", None), TypeError, "int >= 0"),
    ("config-int-negative", lambda: setattr(config, "cache_size_limit", -1), ValueError, "int >= 0, got -1"),
    ("config-accumulated-zero", lambda: setattr(config, "accumulated_cache_size_limit", 0), ValueError,
     "int >= 1"),
    ("config-inline-zero", lambda: setattr(config, "inline_depth_limit", 0), ValueError, "int >= 1"),
    ("config-metrics-negative", lambda: setattr(config, "compile_metrics_limit", -5), ValueError, ">= 0"),
    ("config-bool-int", lambda: setattr(config, "suppress_errors", 1), TypeError, "bool"),
    ("config-bool-none", lambda: setattr(config, "suppress_errors", None), TypeError, "bool"),
    ("config-bool-str", lambda: setattr(config, "keep_graphs", "yes"), TypeError, "bool"),
    ("config-verbose-int", lambda: setattr(config, "verbose", 0), TypeError, "bool"),
    ("config-timeout-zero", lambda: setattr(config, "backend_timeout", 0), ValueError, "seconds > 0"),
    ("config-timeout-negative", lambda: setattr(config, "backend_timeout", -1.0), ValueError, "> 0"),
    ("config-timeout-inf", lambda: setattr(config, "backend_timeout", float("inf")), ValueError, "finite"),
    ("config-timeout-nan", lambda: setattr(config, "backend_timeout", float("nan")), ValueError, "finite"),
    ("config-timeout-str", lambda: setattr(config, "backend_timeout", "10"), TypeError, "number of seconds"),
    ("config-timeout-bool", lambda: setattr(config, "backend_timeout", True), TypeError, "number of seconds"),
    ("config-unknown-set", lambda: setattr(config, "no_such_option", 1), UnknownOptionError,
     "no option 'no_such_option'.*cache_size_limit"),
    ("config-unknown-get", lambda: config.no_such_option, UnknownOptionError, "no option"),
    ("patch-unknown", lambda: config.patch(bogus=1), ValueError, "no option 'bogus'"),
    ("patch-bad-type", lambda: config.patch(cache_size_limit="x"), TypeError, "int"),
    ("patch-bad-value", lambda: config.patch(cache_size_limit=-3), ValueError, "-3"),
    ("patch-positional-int", lambda: config.patch(3), TypeError, "keywords"),
    ("patch-name-value-bad", lambda: config.patch("cache_size_limit", "8"), TypeError, "int"),
    ("patch-name-unknown", lambda: config.patch("nope", 1), ValueError, "no option 'nope'"),
    ("patch-dict-bad", lambda: config.patch({"cache_size_limit": -1}), ValueError, ">= 0"),
    ("patch-dict-unknown", lambda: config.patch({"bogus": 1}), ValueError, "bogus"),
    ("patch-dict-key-int", lambda: config.patch({1: 2}), TypeError, "names are str"),
    ("patch-dict-second-arg", lambda: config.patch({"verbose": True}, 2), TypeError, "no second argument"),
    ("patch-mixed-bad", lambda: config.patch(verbose=True, suppress_errors="no"), TypeError, "bool"),
    # register_backend / list_backends
    ("register-int", lambda: bytegraph.register_backend(42), TypeError, "callable backend"),
    ("register-none-name-int", lambda: bytegraph.register_backend(f, name=3), TypeError, "name.*str"),
    ("register-empty-name", lambda: bytegraph.register_backend(f, name=""), ValueError, "non-empty"),
    ("register-blank-name", lambda: bytegraph.register_backend(f, name="  "), ValueError, "non-empty"),
    ("register-duplicate-builtin", lambda: bytegraph.register_backend(f, name="eager"), ValueError,
     "already registered"),
    ("register-duplicate-inductor", lambda: bytegraph.register_backend(f, name="inductor"), ValueError,
     "another name"),
    ("register-decorator-name-int", lambda: bytegraph.register_backend(name=3), TypeError, "name.*str"),
    ("register-tags", lambda: bytegraph.register_backend(f, name="bg_tags_bad", tags=3), TypeError,
     "tags"),
    ("list-backends-tags", lambda: bytegraph.list_backends(exclude_tags=3), TypeError, "exclude_tags"),
    # explain
    ("explain-int", lambda: bytegraph.explain(42), TypeError, "explain expects"),
    ("explain-str", lambda: bytegraph.explain("f"), TypeError, "explain expects"),
    ("explain-class", lambda: bytegraph.explain(Net), TypeError, "explain expects"),
    # disable
    ("disable-int", lambda: bytegraph.disable(5), TypeError, "callable"),
    ("disable-str", lambda: bytegraph.disable("f"), TypeError, "callable"),
    ("disable-recursive", lambda: bytegraph.disable(f, recursive="y"), TypeError, "recursive.*bool"),
    ("disable-decorator-recursive", lambda: bytegraph.disable(recursive=1), TypeError, "recursive"),
    # allow_in_graph / disallow_in_graph
    ("allow_in_graph-int", lambda: bytegraph.allow_in_graph(5), TypeError, "allow_in_graph expects a callable"),
    ("allow_in_graph-list-of-str", lambda: bytegraph.allow_in_graph(["f"]), TypeError, "callable"),
    ("disallow_in_graph-none", lambda: bytegraph.disallow_in_graph(None), TypeError,
     "disallow_in_graph expects a callable"),
    # error_on_graph_break
    ("error_on_graph_break-str", lambda: bytegraph.error_on_graph_break("yes"), TypeError,
     "error_on_graph_break expects a bool"),
    ("error_on_graph_break-decorate-int", lambda: bytegraph.error_on_graph_break(True)(42), TypeError,
     "decorates a callable"),
    # export (its argument checks)
    ("export-int", lambda: bytegraph.export(42), TypeError, "export expects"),
    ("export-aten_graph", lambda: bytegraph.export(f, aten_graph="yes"), TypeError, "aten_graph.*bool"),
    ("export-tracing_mode", lambda: bytegraph.export(f, tracing_mode="magic"), ValueError, "tracing_mode"),
    # calling a compiled function wrongly: eager's TypeError, naming the user's function
    ("call-too-many", lambda: C(f, backend="eager")(torch.ones(1), 2), TypeError,
     r"f\(\) takes 1 positional argument but 2"),
    ("call-missing", lambda: C(f, backend="eager")(), TypeError, r"f\(\) missing 1 required"),
    ("call-unknown-kw", lambda: C(f, backend="eager")(y=1), TypeError, "unexpected keyword argument 'y'"),
]


def test_table_is_large_enough():
    assert len(CASES) >= 100
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("name,call,exc,pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_call(name, call, exc, pattern):
    from bytegraph.runtime.api import _stance
    before = (dict(config._values), _stance["name"], bytegraph.list_backends())
    with pytest.raises(exc, match=pattern) as info:
        call()
    assert isinstance(info.value, (TypeError, ValueError)), type(info.value)
    assert (dict(config._values), _stance["name"], bytegraph.list_backends()) == before


# --------------------------------------------------------------------------
# nothing the user passed is mutated; decisions documented in docs/reliability.md

def test_compile_mutates_nothing_it_was_given():
    net = Net()
    net.extra = [1, 2]
    state = copy.deepcopy(net.state_dict())
    net_dict = dict(net.__dict__)
    options = {"max_autotune": False}
    options_copy = dict(options)

    def g(x, k=2):
        return x * k
    g.tag = "mine"
    g_attrs = (g.__defaults__, g.__kwdefaults__, dict(g.__dict__), g.__code__, g.__name__)
    cm = bytegraph.compile(net, backend="inductor", options=options)
    cg = bytegraph.compile(g, backend="eager")
    cg(torch.ones(2))
    cm(torch.ones(2))
    options["max_autotune"] = True        # a later change of the dict is not seen either
    assert options_copy == {"max_autotune": False}
    assert dict(net.__dict__) == net_dict and net.extra == [1, 2]
    assert all(torch.equal(a, b) for a, b in zip(state.values(), net.state_dict().values()))
    assert (g.__defaults__, g.__kwdefaults__, dict(g.__dict__), g.__code__, g.__name__) == g_attrs
    assert type(net) is Net and Net.__call__ is nn.Module.__call__
    assert not hasattr(g, "__bytegraph_state__")


def test_compile_of_compiled_function_uses_the_new_settings():
    """As torch.compile: compiling a compiled function compiles its original with the new
    settings (outer wins); the first compiled function keeps working with its own cache."""
    seen = []

    def be_a(gm, ex):
        seen.append("a")
        return gm.forward

    def be_b(gm, ex):
        seen.append("b")
        return gm.forward
    inner = bytegraph.compile(f, backend=be_a)
    outer = bytegraph.compile(inner, backend=be_b)
    x = torch.ones(3)
    assert torch.equal(outer(x), f(x)) and seen == ["b"]
    assert torch.equal(inner(x), f(x)) and seen == ["b", "a"]
    assert outer.__bytegraph_state__ is not inner.__bytegraph_state__
    assert outer.__bytegraph_state__.fn is f


def test_compile_of_compiled_module_wraps_the_original():
    net = Net()
    first = bytegraph.compile(net, backend="eager")
    second = bytegraph.compile(first, backend="eager")
    assert second._orig_mod is net and second is not first
    assert torch.equal(second(torch.ones(2)), torch.ones(2))


def test_generator_and_async_functions_run_eagerly():
    """As torch.compile: accepted, and run eagerly (their bodies run when iterated or awaited,
    outside the call); counted once, never traced; fullgraph=True raises Unsupported."""
    import asyncio
    from differential import counters
    x = torch.ones(2)
    g = bytegraph.compile(f_gen, backend="eager")
    for _ in range(3):
        assert [t.tolist() for t in g(x)] == [[1.0, 1.0]]
    assert [t.tolist() for t in bytegraph.compile(GenCall(), backend="eager")(x)] == [[1.0, 1.0]]
    assert torch.equal(asyncio.run(bytegraph.compile(f_async, backend="eager")(x)), x)

    async def drain(agen):
        return [t async for t in agen]
    assert len(asyncio.run(drain(bytegraph.compile(f_agen, backend="eager")(x)))) == 1
    assert counters()["fallback"]["generator_function"] == 4
    assert counters()["frames"]["total"] == 0
    with pytest.raises(bytegraph.Unsupported, match="generator"):
        bytegraph.compile(f_gen, backend="eager", fullgraph=True)(x)


def test_compile_of_disabled_function_stays_eager():
    d = bytegraph.disable(f)
    assert bytegraph.compile(d, backend="eager") is d


def test_options_reach_a_backend_that_takes_them():
    got = []

    def be(gm, example_inputs, options=None):
        got.append(options)
        return gm.forward
    opts = {"anything": 1}
    c = bytegraph.compile(f, backend=be, options=opts)
    assert torch.equal(c(torch.ones(2)), f(torch.ones(2)))
    assert got == [{"anything": 1}] and got[0] is not opts


def test_inductor_options_are_applied():
    c = bytegraph.compile(f, backend="inductor", options={"max_autotune": False})
    assert torch.equal(c(torch.ones(2)), f(torch.ones(2)))


def test_config_patch_forms():
    with config.patch("cache_size_limit", 3):
        assert config.cache_size_limit == 3
    with config.patch({"cache_size_limit": 4, "verbose": True}):
        assert config.cache_size_limit == 4 and config.verbose is True
    assert config.cache_size_limit == 8 and config.verbose is False
    with config.patch(backend_timeout=1.5):
        assert config.backend_timeout == 1.5
    assert config.backend_timeout is None
    assert isinstance(UnknownOptionError("x"), AttributeError)
    assert not hasattr(config, "no_such_option")


def test_register_same_backend_twice_is_a_noop():
    def bg_twice(gm, ex):
        return gm.forward
    bytegraph.register_backend(bg_twice)
    bytegraph.register_backend(bg_twice)
    assert bytegraph.list_backends().count("bg_twice") == 1
