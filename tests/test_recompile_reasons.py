"""The recompile reason for every guard kind, in user terms (logger `bytegraph.recompiles`).

For each kind a guard can have (test_every_guard_kind_has_a_case finds them in bytegraph's own
source), a program is compiled, called once, then called so that exactly that guard fails: the
recompile is logged with a kind-specific text (never the generic "<kind> guard failed (<code>)"),
and every call returns what eager returns.
"""
import abc
import ast
import collections
import contextlib
import copy
import copyreg
import logging
import os
import pathlib
import re
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

import bytegraph
from differential import assert_same, counters, default_dtype

GENERIC = re.compile(r"guard failed \(")


def same(fn, c, make):
    """Eager and compiled, each on arguments `make()` builds afresh: equal results."""
    assert_same(fn(*make()), c(*make()))


# --------------------------------------------------------------------------- programs

def _double(x):
    return x * 2


def _scale(x, n):
    return x * n


def _call_g(x, g):
    return g(x)


def _alias(x, a, b):
    return x * len(a) + len(b)


def _keys(x, d):
    return x * len(d)


def _is(x, a, b):
    return x + (1 if a is b else 0)


def _mutate(a, b):
    a.append(1)
    return len(b)


def _writes(x, y):
    x.add_(1)
    return y * 2


def _attr(x, o):
    return x * o.k


def _abs(x):
    return abs(x)


def _isinstance_abc(x, o):
    return x * (2 if isinstance(o, collections.abc.Sized) else 3)


def _copies(x, o):
    return x * copy.copy(o).k


def _defaults(x, k="ab"):
    return x * len(k)


def _code(x):
    return x + 1


def _code_other(x):
    return x - 1


def _method(x, m):
    m(1)
    return x + 1


def _deque_len(x, dq):
    return x * len(dq)


def _view_query(x):
    return x * 2 if x._is_view() else x


def _threads(x):
    return x * torch.get_num_threads()


def _logs(x, lg):
    return x * 2 if lg.isEnabledFor(logging.DEBUG) else x


def _next(x, it):
    return x * next(it, 5)


def _set_len(x, s):
    return x * len(s)


def _environ(x):
    return x * len(os.environ.keys())


def _autocast_break(x, dt):
    with torch.autocast("cpu", dtype=dt):
        y = x @ x
        print("break", file=sys.stderr)     # a break that stops the trace: the rest is a resume function
        return (y @ x).float()


def _branchy(x):
    if x.shape[0] > 4:
        return x * 2
    return x - 1


class _A:
    k = 2


class _B:
    k = 2


class _P:
    k = 3


class _Q(_P):
    pass


class _P2:
    k = 5


class _R(_P):
    pass


class _CopyMe:
    def __init__(self):
        self.k = 4


class _Cut(torch.nn.Module):
    """A module-state scalar (values/known.py): its value is read at trace time."""

    def __init__(self):
        super().__init__()
        self.n = torch.nn.Buffer(torch.tensor([2]))

    def forward(self, x, t=None):
        k = int(self.n)
        if t is not None:
            t.add_(0)       # the graph writes an argument: it must not share the buffer's memory
        return x[:k] * 2


_CUT = _Cut()


@contextlib.contextmanager
def _cut_at(v):
    _CUT.n.fill_(v)
    try:
        yield
    finally:
        _CUT.n.fill_(2)


class _Lin(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x):
        return self.lin(x)


class _Identity(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


@contextlib.contextmanager
def _deterministic():
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)


@contextlib.contextmanager
def _threads_1():
    n = torch.get_num_threads()
    torch.set_num_threads(1 if n != 1 else 2)
    try:
        yield
    finally:
        torch.set_num_threads(n)




@contextlib.contextmanager
def _shadow_abs():
    g = sys.modules[__name__].__dict__
    g["abs"] = abs                   # the same function: only the global's presence changes
    try:
        yield
    finally:
        del g["abs"]


@contextlib.contextmanager
def _abc_register():
    class Fresh(abc.ABC):
        pass
    Fresh.register(_A)               # bumps abc's cache token
    yield


@contextlib.contextmanager
def _copyreg_reducer():
    copyreg.pickle(_CopyMe, lambda o: (_CopyMe, ()))
    try:
        yield
    finally:
        del copyreg.dispatch_table[_CopyMe]


@contextlib.contextmanager
def _class_attr():
    _Q.k = 3
    try:
        yield
    finally:
        del _Q.k


@contextlib.contextmanager
def _swap_bases():
    _R.__bases__ = (_P2,)
    try:
        yield
    finally:
        _R.__bases__ = (_P,)


@contextlib.contextmanager
def _env_var():
    os.environ["BYTEGRAPH_REASON_TEST"] = "1"
    try:
        yield
    finally:
        del os.environ["BYTEGRAPH_REASON_TEST"]


@contextlib.contextmanager
def _global_hook():
    h = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        yield
    finally:
        h.remove()


def _shadowed_instance():
    o = _A()
    o.k = 5
    return o


def _at(n):
    it = iter([1, 2, 3])
    for _ in range(n):
        next(it)
    return it


def _logger(level):
    lg = logging.getLogger("bytegraph.test.reasons")
    lg.setLevel(level)
    return lg


def _ones():
    return torch.ones(3)


def _square():
    return torch.arange(9.0).reshape(3, 3) / 10


# kind -> (fn, compile kwargs, first call's args (a function making them), second call's
#          (args maker, context manager maker), expected text)
def _args(*a):
    return lambda: a


R = torch.randn
CASES = {
    "grad_mode": (_double, {}, _args(_ones()), (_args(_ones()), torch.no_grad),
                  r"grad mode changed: True -> False"),
    "inference_mode": (_double, {}, _args(_ones()), (_args(_ones()), torch.no_grad),
                       r"inference mode changed: True -> False"),
    "default_dtype": (_double, {}, _args(_ones()), (_args(_ones()), lambda: default_dtype(torch.float64)),
                      r"default dtype changed: torch.float32 -> torch.float64"),
    "deterministic": (_double, {}, _args(_ones()), (_args(_ones()), _deterministic),
                      r"deterministic algorithms changed: False -> True"),
    "torch_function_mode": (_double, {}, _args(_ones()), (_args(_ones()), _Identity),
                            r"torch function mode stack depth changed: 0 -> 1"),
    "autocast": (_double, {}, _args(_ones()), (_args(_ones()), lambda: torch.autocast("cpu")),
                 r"autocast enabled changed: False -> True"),
    "backend_flags": (_double, {"backend": "aten"}, _args(_ones()), (_args(_ones()), _threads_1),
                      r"torch.get_num_threads\(\) changed: \d+ -> \d+"),
    "type": (_attr, {}, lambda: (_ones(), _A()), (lambda: (_ones(), _B()), None),
             r"type of L\['o'\] changed: expected _A, got _B"),
    "id": (_call_g, {}, _args(_ones(), torch.relu), (_args(_ones(), torch.tanh), None),
           r"L\['g'\] is no longer the same object: expected relu, got another builtin_function"),
    "alias": (_alias, {}, lambda: (lambda lst: (_ones(), lst, lst))([1]), (lambda: (_ones(), [1], [1]), None),
              r"L\['b'\] is no longer the same object as L\['a'\]"),
    "value": (_scale, {"dynamic": False}, _args(_ones(), 3), (_args(_ones(), 4), None),
              r"L\['n'\] changed: 3 -> 4"),
    "len": (_keys, {}, lambda: (_ones(), [1, 2]), (lambda: (_ones(), [1, 2, 3]), None),
            r"len of L\['d'\] changed: expected 2, got 3"),
    "dict_keys": (_keys, {}, lambda: (_ones(), {"a": 1}), (lambda: (_ones(), {"b": 1}), None),
                  r"keys of L\['d'\] changed: expected \('a',\), got \('b',\)"),
    "empty": (_Lin(), {}, _args(_ones()), (_args(_ones()), _global_hook),
              r"_global_forward_hooks.* is no longer empty"),
    "tensor": (_double, {}, _args(_ones()), (_args(torch.ones(3, dtype=torch.float64)), None),
               r"dtype of L\['x'\] changed: expected torch.float32, got torch.float64"),
    "shape_range": (_double, {"dynamic": True}, _args(R(4, 2)), (_args(R(1, 2)), None),
                    r"shape guard failed: x.size\(0\) >= 2"),
    "shape_env": (_branchy, {"dynamic": True}, _args(R(6, 2)), (_args(R(3, 2)), None),
                  r"shape guard failed: .*x.size\(0\)"),
    "float_finite": (_scale, {"dynamic": True}, _args(_ones(), 2.5), (_args(_ones(), float("nan")), None),
                     r"L\['n'\] is no longer a finite float: got nan"),
    "distinct_inputs": (_writes, {}, lambda: (_ones(), _ones()), (lambda: (lambda t: (t, t))(_ones()), None),
                        r"tensor arguments the graph writes into are no longer distinct objects: "
                        r"L\['x'\], L\['y'\]"),
    "distinct_objects": (_mutate, {}, lambda: ([], []), (lambda: (lambda lst: (lst, lst))([]), None),
                         r"caller objects the trace mutates are no longer distinct objects: L\['a'\], L\['b'\]"),
    "identity": (_is, {}, lambda: (_ones(), _A(), _A()), (lambda: (lambda o: (_ones(), o, o))(_A()), None),
                 r"objects the trace compared with `is` are no longer distinct objects: L\['a'\], L\['b'\]"),
    "absent_attrs": (_attr, {}, lambda: (_ones(), _A()), (lambda: (_ones(), _shadowed_instance()), None),
                     r"L\['o'\] now has its own attribute\(s\) k"),
    "class_attr_absent": (_attr, {}, lambda: (_ones(), _Q()), (lambda: (_ones(), _Q()), _class_attr),
                          r"class _Q now defines k itself"),
    "class_mro": (_attr, {}, lambda: (_ones(), _R()), (lambda: (_ones(), _R()), _swap_bases),
                  r"the bases of class _R changed"),
    "builtins_not_shadowed": (_abs, {}, _args(_ones()), (_args(_ones()), _shadow_abs),
                              r"a module global now shadows the builtin\(s\) abs"),
    "abc_registry": (_isinstance_abc, {}, lambda: (_ones(), _A()), (lambda: (_ones(), _A()), _abc_register),
                     r"an ABC registration changed"),
    "copyreg": (_copies, {}, lambda: (_ones(), _CopyMe()), (lambda: (_ones(), _CopyMe()), _copyreg_reducer),
                r"copyreg.dispatch_table now has a reducer for _CopyMe"),
    "defaults": (_defaults, {}, _args(_ones()), (_args(_ones()), lambda: _patched(_defaults, "__defaults__", ("abc",))),
                 r"defaults of _defaults changed"),
    "code": (_code, {}, _args(_ones()), (_args(_ones()), lambda: _patched(_code, "__code__", _code_other.__code__)),
             r"the code of _code was replaced"),
    "method_name": (_method, {}, lambda: (_ones(), [].append), (lambda: (_ones(), [].count), None),
                    r"method name of L\['m'\] changed: 'append' -> 'count'"),
    "deque_maxlen": (_deque_len, {}, lambda: (_ones(), collections.deque([1], maxlen=5)),
                     (lambda: (_ones(), collections.deque([1], maxlen=6)), None),
                     r"maxlen of L\['dq'\] changed: 5 -> 6"),
    "autocast_args": (_autocast_break, {}, lambda: (_square(), torch.bfloat16), (lambda: (_square(), torch.float16), None),
                      r"autocast args of L\['.*'\] changed: \('cpu', torch.bfloat16, True, .*\) -> \('cpu', torch.float16"),
    "tensor_meta": (_view_query, {}, _args(_ones()), (lambda: (torch.ones(3).view(3),), None),
                    r"tensor metadata L\['x'\]._is_view\(\) changed: False -> True"),
    "torch_query": (_threads, {}, _args(_ones()), (_args(_ones()), _threads_1),
                    r"get_num_threads\(\) changed: \d+ -> \d+"),
    "logging": (_logs, {}, lambda: (_ones(), _logger(logging.INFO)), (lambda: (_ones(), _logger(logging.DEBUG)), None),
                r"logging L\['lg'\].isEnabledFor\(10\) changed: False -> True"),
    "iterator_exhausted": (_next, {}, lambda: (_ones(), _at(3)), (lambda: (_ones(), _at(0)), None),
                           r"the position of iterator L\['it'\] changed"),
    "iterator_position": (_next, {}, lambda: (_ones(), _at(1)), (lambda: (_ones(), _at(2)), None),
                          r"the position of iterator L\['it'\] changed"),
    "set": (_set_len, {}, lambda: (_ones(), {1, 2}), (lambda: (_ones(), {1, 3}), None),
            r"L\['s'\] changed: expected frozenset\(\{1, 2\}\), got \{1, 3\}"),
    "no_hooks": (None, {}, None, None, r"hooks were registered on module .*_forward_hooks"),
    # a stepped loop's resume functions (policy/breaks.py loop_step_iter): test_reason_loop_step
    "loop_has_next": (None, {}, None, None, r"the loop's iterator L\['.*'\] has no next item now"),
    "loop_done": (None, {}, None, None, r"the loop's iterator L\['.*'\] has a next item now"),
    # a @contextmanager's state handed to a resume function (runtime/resume.py wrap_handoff)
    "handoff": (None, {}, None, None, r"the @contextmanager generator handed to L\['.*'\] is at another yield"),
    "environ": (_environ, {}, _args(_ones()), (_args(_ones()), _env_var), r"os.environ changed"),
    "state_value": (_CUT, {}, _args(_ones()), (_args(_ones()), lambda: _cut_at(3)),
                    r"the value of L\['mod'\].n changed: \[2\] -> \[3\]"),
    "storages_apart": (_CUT, {}, lambda: (_ones(), torch.tensor([5]).view(1)),
                       (lambda: (_ones(), _CUT.n.view(1)), None),
                       r"L\['mod'\].n and L\['args'\]\[1\] share memory now"),
}


def _run_case(kind, caplog):
    fn, kwargs, first, (second, ctx), pattern = CASES[kind]
    kwargs = {"backend": "eager", **kwargs}
    if kind == "inference_mode":          # grad mode is the same on both calls: only inference mode differs
        with torch.no_grad(), torch.inference_mode():
            c = bytegraph.compile(fn, **kwargs)
            same(fn, c, first)
    else:
        c = bytegraph.compile(fn, **kwargs)
        same(fn, c, first)
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        with (ctx() if ctx is not None else contextlib.nullcontext()):
            same(fn, c, second)
    assert counters()["recompiles"]["total"] >= 1
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "bytegraph.recompiles")
    assert re.search(pattern, text), text
    assert not GENERIC.search(text), text


_CUSTOM = ("no_hooks", "loop_has_next", "loop_done", "handoff")


@pytest.mark.parametrize("kind", [k for k in CASES if k not in _CUSTOM])
def test_reason(kind, caplog):
    _run_case(kind, caplog)


def _reason_after_change(caplog, kind, m, x, change):
    """Call compiled `m` once, `change()` (a context manager), call again: the recompile
    reason names what changed, as CASES[kind] says."""
    c = bytegraph.compile(m, backend="eager")
    assert_same(m(x), c(x))
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        with change():
            assert_same(m(x), c(x))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "bytegraph.recompiles")
    assert re.search(CASES[kind][-1], text), text
    assert not GENERIC.search(text), text


def test_reason_no_hooks(caplog):
    m = _Lin()

    @contextlib.contextmanager
    def hooked():
        h = m.register_forward_hook(lambda mod, i, o: o * 2)
        try:
            yield
        finally:
            h.remove()
    _reason_after_change(caplog, "no_hooks", m, torch.ones(3), hooked)


def _branchy(x, ws):
    out = torch.zeros_like(x)
    for w in ws:            # a tuple of like tensors whose loop body stops: stepped
        if w.sum() > 0:
            out = out + x * w
        else:
            out = out - w
    return out + 1


def test_reason_loop_step(caplog):
    # the resume function after the branch is compiled with a next item; the last iteration
    # reaches it at the loop's end
    ws = tuple(torch.full((3,), float(i + 1)) for i in range(3))
    c = bytegraph.compile(_branchy, backend="eager")
    x = torch.ones(3)
    with caplog.at_level(logging.INFO, logger="bytegraph.recompiles"):
        assert_same(_branchy(x, ws), c(x, ws))
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "bytegraph.recompiles")
    assert re.search(CASES["loop_has_next"][-1], text), text
    assert not GENERIC.search(text), text


def test_reason_loop_done_text():
    # the other entry of such a resume function (compiled at the loop's end) misses on a next
    # item: its describer (a case that reports it needs both entries to miss at once)
    from bytegraph.guards.reasons import KINDS

    class G:
        source_desc = "L['__stack0_0']"
    assert re.fullmatch(CASES["loop_done"][-1], KINDS["loop_done"](G(), iter([1]), {}))


def test_reason_handoff_text():
    # every call hands the resume function a new handoff at the same yield: its guard misses
    # only if the generator's code, position or state kind differ (then this text)
    from bytegraph.guards.reasons import KINDS

    class G:
        source_desc = "L['__stack0_0']"
    assert re.match(CASES["handoff"][-1], KINDS["handoff"](G(), None, {}))


# --------------------------------------------------------------------------- coverage of kinds

_ROOT = pathlib.Path(bytegraph.__file__).parent
# (method, index of the kind among its positional arguments, default kind)
_MAKERS = {"add_code": (2, None), "_add": (2, None), "_state_check": (0, None),
           "add_distinct": (1, "distinct_inputs")}


def _kinds_in_source():
    kinds = set()
    for path in _ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in _MAKERS):
                continue
            i, default = _MAKERS[node.func.attr]
            arg = node.args[i] if len(node.args) > i else next(
                (k.value for k in node.keywords if k.arg == "kind"), None)
            if arg is None and default is not None:
                kinds.add(default)
            elif isinstance(arg, ast.Constant) and type(arg.value) is str:
                kinds.add(arg.value)
    # the GuardSet's own helpers name their kind in their calls to _add (guard_set.py)
    return kinds


def test_every_guard_kind_has_a_case():
    from bytegraph.guards.reasons import KINDS
    found = _kinds_in_source()
    assert "tensor" in found and "grad_mode" in found and "defaults" in found, found
    assert found <= set(CASES), f"guard kinds with no recompile-reason test: {sorted(found - set(CASES))}"
    assert found <= set(KINDS), f"guard kinds with no describer: {sorted(found - set(KINDS))}"
