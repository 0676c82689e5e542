"""Differential programs: the standard library as model code uses it -- os.environ, copy,
functools.lru_cache, warnings and logging, weakref, abc, contextlib, dataclasses / typing /
inspect queries, torch.compiler.is_compiling, function attributes.

Each program captures as one graph with fullgraph=True; each value read from the caller's
world has a guard test (change it between calls -> recompile, and the result matches eager).
"""
import abc
import collections
import contextlib
import copy
import dataclasses
import enum
import functools
import inspect
import logging
import os
import types
import typing
import warnings
import weakref

import pytest
import torch

import bytegraph
from differential import REFERENCE, assert_same, check, compile_fn, graph_count, reset, tensors_like


def ids(fn):
    return fn.__name__


def beyond_torch_compile(reason):
    """torch.compile cannot be this test's reference (BYTEGRAPH_TEST_REFERENCE=1): it breaks the
    graph (fullgraph=True fails), refuses differently, or returns a different or stale result."""
    return pytest.mark.skipif(REFERENCE, reason=f"torch.compile: {reason}")


def recompiles():
    """Graphs compiled so far: every program here has tensor ops, so each (re)compile makes one
    (the same count under BYTEGRAPH_TEST_REFERENCE=1, whose counters differ otherwise)."""
    return graph_count()


class Step:
    """Compile fn once; each call compares with eager and returns how many recompiles it took."""

    def __init__(self, fn, **kw):
        self.fn = fn
        self.c = compile_fn(fn, backend="eager", fullgraph=True, **kw)
        self.first = True

    def __call__(self, *args):
        before = recompiles()
        assert_same(self.fn(*args), self.c(*args))
        n = recompiles() - before - (1 if self.first else 0)
        self.first = False
        return n


def refused(fn, *args):
    """fullgraph=True refuses fn (with a reason); without it, fn runs eagerly and correctly."""
    reset()
    with pytest.raises(bytegraph.Unsupported):
        compile_fn(fn, backend="eager", fullgraph=True)(*args)
    reset()
    assert_same(fn(*args), compile_fn(fn, backend="eager")(*args))


# torch.compile graph-breaks on these (warnings, logging, ...): in the reference run they are
# checked for results only
def check_breaking(fn, *args, **kw):
    if REFERENCE:
        return check(fn, *args, fullgraph=False, graphs=None, **kw)
    return check(fn, *args, **kw)


# ==================================================================================== os.environ
_ENV = ("BG_STDLIB_A", "BG_STDLIB_B", "BG_STDLIB_W")


@pytest.fixture
def clean_env(monkeypatch):
    for k in _ENV:
        monkeypatch.delenv(k, raising=False)
    yield monkeypatch


def env_get(x):
    a = os.environ.get("BG_STDLIB_A")
    b = os.getenv("BG_STDLIB_B", "0")
    scale = 2.0 if a == "1" else 1.0
    return x * scale + int(b), a


@beyond_torch_compile("returns stale results (os.environ reads are not guarded)")
def test_environ_reads_are_guarded_per_key(clean_env):
    s = Step(env_get)
    x, = tensors_like((3,))
    assert s(x) == 0
    assert graph_count() == 1
    clean_env.setenv("BG_STDLIB_A", "1")     # absent -> present: recompile
    assert s(x) == 1
    clean_env.setenv("BG_STDLIB_B", "5")     # the getenv key
    assert s(x) == 1
    clean_env.setenv("BG_STDLIB_A", "2")     # a different value
    assert s(x) == 1
    clean_env.setenv("UNRELATED_BG_VAR", "x")  # other keys are not read: no recompile
    assert s(x) == 0
    clean_env.delenv("BG_STDLIB_A")
    clean_env.delenv("BG_STDLIB_B")          # back to the first state: the first entry hits
    assert s(x) == 0


def env_getitem_contains(x):
    if "BG_STDLIB_A" in os.environ:
        return x * len(os.environ["BG_STDLIB_A"])
    return x - 1


@beyond_torch_compile("returns stale results (os.environ reads are not guarded)")
def test_environ_getitem_and_contains(clean_env):
    s = Step(env_getitem_contains)
    x, = tensors_like((3,))
    s(x)
    clean_env.setenv("BG_STDLIB_A", "abc")
    assert s(x) == 1


def env_contains(x):
    return x + ("BG_STDLIB_A" in os.environ)


@beyond_torch_compile("returns stale results (os.environ reads are not guarded)")
def test_environ_contains_guards_presence_only(clean_env):
    s = Step(env_contains)
    x, = tensors_like((3,))
    s(x)
    clean_env.setenv("BG_STDLIB_A", "1")
    assert s(x) == 1
    clean_env.setenv("BG_STDLIB_A", "2")     # present either way: the value is not read
    assert s(x) == 0


def env_iterate(x):
    return x + len([k for k in os.environ if k.startswith("BG_STDLIB_")])


def test_environ_iteration_guards_the_whole_environment(clean_env):
    s = Step(env_iterate)
    x, = tensors_like((3,))
    s(x)
    clean_env.setenv("BG_STDLIB_B", "1")
    assert s(x) == 1


def env_missing_key(x):
    return x * len(os.environ["BG_STDLIB_A"])


@beyond_torch_compile("raises its own Unsupported ('Observed exception')")
def test_environ_missing_key_raises_like_eager(clean_env):
    c = compile_fn(env_missing_key, backend="eager", fullgraph=True)
    with pytest.raises(KeyError):
        c(torch.ones(2))


def env_write(x):
    os.environ["BG_STDLIB_W"] = "on"
    seen = os.environ.get("BG_STDLIB_W")
    os.environ.setdefault("BG_STDLIB_B", "7")
    return x + len(seen)


@beyond_torch_compile("graph break (posix.putenv)")
def test_environ_writes_replayed(clean_env):
    x, = tensors_like((3,))
    expected = env_write(x)
    after_eager = (os.environ.pop("BG_STDLIB_W"), os.environ.pop("BG_STDLIB_B"))
    reset()
    actual = compile_fn(env_write, backend="eager", fullgraph=True)(x)
    assert_same(expected, actual)
    assert (os.environ.get("BG_STDLIB_W"), os.environ.get("BG_STDLIB_B")) == after_eager
    assert graph_count() == 1


# ==================================================================================== copy
class Cfg:
    def __init__(self):
        self.hidden = 4
        self.dims = [2, 3]
        self.meta = {"act": "relu", "eps": 1e-5}


CFG = Cfg()


def copy_deep_config(x):
    c = copy.deepcopy(CFG)
    c.hidden = c.hidden * 2
    c.dims.append(9)
    c.meta["act"] = "gelu"
    return x * c.hidden + sum(c.dims), c.meta["act"], CFG.dims, c


def copy_shallow_config(x):
    c = copy.copy(CFG)
    c.hidden = 1                     # rebinding on the copy: CFG keeps its value
    return x * CFG.hidden + c.hidden + len(c.dims), c.dims is CFG.dims


def copy_shallow_shares_state(x):
    c = copy.copy(CFG)
    c.dims.append(1)                 # the copy shares CFG's list: CFG sees it
    return x + len(CFG.dims)


def test_deepcopy_config():
    check(copy_deep_config, *tensors_like((3,)))
    assert CFG.dims == [2, 3] and CFG.meta["act"] == "relu"


def test_shallow_copy_config():
    check(copy_shallow_config, *tensors_like((3,)))


def test_shallow_copy_shares_state():
    saved = list(CFG.dims)
    try:
        x, = tensors_like((3,))
        expected = copy_shallow_shares_state(x)
        eager_dims = list(CFG.dims)
        CFG.dims[:] = saved
        reset()
        actual = compile_fn(copy_shallow_shares_state, backend="eager", fullgraph=True)(x)
        assert_same(expected, actual)
        assert CFG.dims == eager_dims
    finally:
        CFG.dims[:] = saved


def test_deepcopy_guards_the_copied_state():
    s = Step(copy_deep_config)
    x, = tensors_like((3,))
    s(x)
    try:
        CFG.hidden = 5
        assert s(x) == 1
        CFG.meta["act"] = "silu"       # a nested value
        assert s(x) == 1
        CFG.meta["new"] = 1            # a nested key
        assert s(x) == 1
    finally:
        CFG.hidden, CFG.meta = 4, {"act": "relu", "eps": 1e-5}


class AliasConfig:
    """Like transformers' PretrainedConfig: attribute aliases in __getattribute__/__setattr__."""
    attribute_map = {"hidden_size": "d_model"}

    def __init__(self):
        self.d_model = 8
        self.layers = [1, 2]

    def __getattribute__(self, key):
        if key != "attribute_map" and key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        return super().__getattribute__(key)

    def __setattr__(self, key, value):
        if key in super().__getattribute__("attribute_map"):
            key = super().__getattribute__("attribute_map")[key]
        super().__setattr__(key, value)


ALIAS_CFG = AliasConfig()


def copy_alias_config(x):
    c = copy.deepcopy(ALIAS_CFG)
    c.hidden_size = c.hidden_size // 2
    del c.layers
    return x * c.d_model, hasattr(c, "layers"), ALIAS_CFG.hidden_size, vars(c)


@beyond_torch_compile("the copy's __dict__ differs from eager's")
def test_deepcopy_config_with_getattribute():
    check(copy_alias_config, *tensors_like((3,)))


@dataclasses.dataclass
class DC:
    a: int = 1
    items: list = dataclasses.field(default_factory=lambda: [1, 2])


class Color(enum.Enum):
    RED = 1


class WithDeepcopy:
    def __init__(self, v):
        self.v = v

    def __deepcopy__(self, memo):
        return WithDeepcopy(copy.deepcopy(self.v, memo) + 100)


def copy_containers_and_protocols(x):
    shared = [1, 2]
    pair = copy.deepcopy([shared, shared, (3, shared)])       # memo keeps the aliasing
    d = copy.deepcopy(DC(3))
    d.items.append(4)
    w = copy.deepcopy(WithDeepcopy(1))
    return (x * d.a + len(d.items), pair[0] is pair[1], pair[2][1] is pair[0], w.v,
            copy.deepcopy(Color.RED) is Color.RED, copy.copy({"a": shared})["a"] is shared,
            copy.deepcopy(x) + 1)


@beyond_torch_compile("graph break (dict.copy)")
def test_copy_containers_and_protocols():
    check(copy_containers_and_protocols, *tensors_like((3,)))


class Reducing:
    def __reduce__(self):
        return (Reducing, ())


REDUCING = Reducing()


def copy_custom_reduce(x):
    return x + (copy.deepcopy(REDUCING) is not REDUCING)


@beyond_torch_compile("bytegraph's refusal")
def test_copy_with_custom_reduce_is_refused():
    refused(copy_custom_reduce, torch.ones(2))


def test_deepcopy_transformers_config():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(vocab_size=32, d_model=8, d_kv=4, d_ff=16, num_layers=1, num_heads=2)

    def f(x, cfg):
        c = copy.deepcopy(cfg)
        c.num_heads = 4
        return x * c.num_heads * c.hidden_size, cfg.num_heads
    check(f, torch.ones(2), cfg)


# ==================================================================================== lru_cache
def make_cached():
    @functools.lru_cache(maxsize=None)
    def scale(n, offset=0):
        return n * 2 + offset

    def f(x, n):
        return x * scale(n) + scale(n, offset=1), scale.__wrapped__(1)
    return f, scale


@beyond_torch_compile("never calls the cache (cache_info differs)")
def test_lru_cache_inlined_cache_info_matches_eager():
    x, = tensors_like((3,))
    f_eager, cached_eager = make_cached()
    f_comp, cached_comp = make_cached()
    reset()
    compiled = compile_fn(f_comp, backend="eager", fullgraph=True)
    for n in (3, 3, 4, 3):
        assert_same(f_eager(x, n), compiled(x, n))
    assert cached_eager.cache_info() == cached_comp.cache_info()
    assert graph_count() == 2             # n is a Python int: one graph per value


@functools.lru_cache(maxsize=None)
def _cached_double(n):
    return n * 2


@functools.cache
def _cached_triple(n):
    return n * 3


cached_helper = _cached_double


def uses_cached_global(x):
    return x * cached_helper(4)


def test_lru_cache_wrapper_identity_guarded():
    global cached_helper
    s = Step(uses_cached_global)
    x, = tensors_like((3,))
    s(x)
    try:
        cached_helper = _cached_triple       # another wrapper: recompile
        assert s(x) == 1
        assert s(x) == 0
    finally:
        cached_helper = _cached_double


@beyond_torch_compile("inlines __wrapped__, the attribute")
def test_lru_cache_inlines_the_function_it_calls_not_wrapped_attribute():
    s = Step(uses_cached_global)
    x, = tensors_like((3,))
    s(x)
    old = _cached_double.__wrapped__
    try:
        _cached_double.__wrapped__ = lambda n: n * 5   # metadata only: the wrapper still calls old
        assert s(x) == 0
        reset()
        Step(uses_cached_global)(x)                     # a fresh trace inlines `old` too
    finally:
        _cached_double.__wrapped__ = old


def test_lru_cache_wrapped_function_code_guarded():
    s = Step(uses_cached_global)
    x, = tensors_like((3,))
    s(x)
    old = _cached_double.__wrapped__.__code__
    try:
        _cached_double.__wrapped__.__code__ = (lambda n: n * 5).__code__
        _cached_double.cache_clear()
        assert s(x) == 1
    finally:
        _cached_double.__wrapped__.__code__ = old
        _cached_double.cache_clear()


@functools.lru_cache(maxsize=None)
def _cached_of_tensor(t):
    return t * 2


_calls = []


@functools.lru_cache(maxsize=None)
def _cached_with_effect(n):
    _calls.append(n)
    return n


@functools.lru_cache(maxsize=None)
def _cached_new_list(n):
    return [n]


def lru_tensor_arg(x):
    return _cached_of_tensor(x)


def lru_side_effect(x):
    return x + _cached_with_effect(2)


def lru_new_list(x):
    return x + len(_cached_new_list(2))


@beyond_torch_compile("bytegraph's refusal")
@pytest.mark.parametrize("fn", [lru_tensor_arg, lru_side_effect, lru_new_list], ids=ids)
def test_lru_cache_refused_when_eager_could_differ(fn):
    refused(fn, torch.ones(2))


def lru_unhashable(x):
    return x + _cached_double([1])


@beyond_torch_compile("raises TorchRuntimeError")
def test_lru_cache_unhashable_argument_raises_like_eager():
    with pytest.raises(TypeError, match="unhashable"):
        compile_fn(lru_unhashable, backend="eager", fullgraph=True)(torch.ones(2))


class Once:
    """transformers' logger.warning_once: an lru_cache'd method that only warns."""

    @functools.lru_cache(None)
    def warn_once(self, msg):
        warnings.warn(msg)


def make_once():
    once = Once()

    def f(x):
        once.warn_once("only once")
        return x + 1
    return f


@beyond_torch_compile("graph break (warnings.warn)")
def test_lru_cache_warn_once_emits_once_like_eager():
    x, = tensors_like((3,))
    got = []
    for compiled in (False, True):
        f = make_once()
        reset()
        g = compile_fn(f, backend="eager", fullgraph=True) if compiled else f
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for _ in range(3):
                g(x)
        got.append([str(r.message) for r in w])
    assert got[0] == got[1] == ["only once"]


# ==================================================================================== warnings
def _warn_helper(x):
    warnings.warn("from helper", FutureWarning, stacklevel=2)
    return x


def warn_program(x):
    warnings.warn("plain")
    y = x * 2
    warnings.warn(DeprecationWarning("an instance"))
    y = _warn_helper(y)
    return y + 1


def _run_recorded(fn, x, action, calls=3):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter(action)
        out = [fn(x) for _ in range(calls)]
    return out, [(str(r.message), r.category, r.filename, r.lineno) for r in w]


@pytest.mark.parametrize("action", ["always", "default", "once"])
def test_warnings_replayed_like_eager(action):
    x, = tensors_like((3,))
    out_e, rec_e = _run_recorded(warn_program, x, action)
    reset()
    c = compile_fn(warn_program, backend="eager", fullgraph=not REFERENCE)
    out_c, rec_c = _run_recorded(c, x, action)
    assert_same(out_e, out_c)
    assert rec_e == rec_c and rec_e
    if not REFERENCE:
        assert graph_count() == 1


def warn_above(x):
    warnings.warn("caller's line", stacklevel=2)
    return x + 1


def _call_here(fn, x):
    return fn(x)                      # the line stacklevel=2 names, for eager and compiled


@beyond_torch_compile("names its own eval_frame.py line")
def test_warning_stacklevel_beyond_the_compiled_function():
    x, = tensors_like((3,))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        _call_here(warn_above, x)
        reset()
        _call_here(compile_fn(warn_above, backend="eager", fullgraph=not REFERENCE), x)
    assert [(r.filename, r.lineno) for r in w][0] == [(r.filename, r.lineno) for r in w][1]
    assert w[0].filename == __file__


def test_warning_error_filter_raises():
    # a warning the filters turn into an error is a break (the call runs at a stop, so nothing
    # after it runs, as eagerly): not with fullgraph=True
    reset()
    c = compile_fn(warn_program, backend="eager")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserWarning):
            c(torch.ones(2))


# ==================================================================================== logging
class ListHandler(logging.Handler):
    def __init__(self):
        super().__init__()
        self.records = []

    def emit(self, record):
        self.records.append((record.name, record.levelname, record.getMessage(), record.pathname,
                             record.lineno, record.funcName))


LOG = logging.getLogger("bytegraph.test.stdlib")


@pytest.fixture
def log_records():
    h = ListHandler()
    LOG.addHandler(h)
    LOG.setLevel(logging.INFO)
    LOG.propagate = False
    yield h.records
    LOG.removeHandler(h)
    LOG.setLevel(logging.NOTSET)
    LOG.propagate = True


def _log_helper(x):
    LOG.warning("helper says %s", "hi")
    return x


def log_program(x):
    LOG.debug("not shown %d", 1)
    LOG.info("shape %s", tuple(x.shape))
    LOG.log(logging.ERROR, "as %(k)s", {"k": "mapping"})
    y = _log_helper(x * 2)
    logging.getLogger("bytegraph.test.stdlib").critical("via getLogger")
    return y + 1


@beyond_torch_compile("resume functions change the records' funcName")
def test_logging_replayed_like_eager(log_records):
    x, = tensors_like((3,))
    expected = [log_program(x) for _ in range(2)]
    eager_records = list(log_records)
    log_records.clear()
    reset()
    c = compile_fn(log_program, backend="eager", fullgraph=not REFERENCE)
    actual = [c(x) for _ in range(2)]
    assert_same(expected, actual)
    assert log_records == eager_records and len(eager_records) == 8
    if not REFERENCE:
        assert graph_count() == 1
    log_records.clear()
    LOG.setLevel(logging.ERROR)          # the level is asked at replay: no recompile needed
    before = recompiles()
    c(x)
    assert [r[2] for r in log_records] == ["as mapping", "via getLogger"]
    assert recompiles() == before


def log_branch(x):
    if LOG.isEnabledFor(logging.DEBUG):
        return x * 2
    return x - 1


@beyond_torch_compile("graph break (Logger methods)")
def test_logging_level_query_guarded(log_records):
    s = Step(log_branch)
    x, = tensors_like((3,))
    s(x)
    LOG.setLevel(logging.DEBUG)
    assert s(x) == 1


def log_tensor(x):
    y = x * 2
    LOG.info("value %s of %s", y, x)
    return y + 1


def log_tensor_then_write(x):
    y = x * 2
    LOG.info("value %s", y)
    y[0].add_(1)                # through a view: the record must show the value before
    return y + 1


def _eager_then_compiled(fn, log_records, x, fullgraph):
    expected = [fn(x) for _ in range(2)]
    eager_records = list(log_records)
    log_records.clear()
    reset()
    c = compile_fn(fn, backend="eager", fullgraph=fullgraph)
    assert_same(expected, [c(x) for _ in range(2)])
    assert log_records == eager_records and len(eager_records) == 2


@beyond_torch_compile("graph break (Logger methods)")
def test_logging_a_tensor_in_the_graph(log_records):
    """The record gets the graph's tensor, emitted after the graph: one graph, eager's text."""
    _eager_then_compiled(log_tensor, log_records, torch.arange(3.0), fullgraph=True)
    assert graph_count() == 1


@beyond_torch_compile("graph break (Logger methods)")
def test_logging_a_tensor_written_after_runs_in_python(log_records):
    """A write into the logged tensor after the call: the log call runs at a break (fullgraph
    refuses it), so the record shows the value of its moment."""
    refused(log_tensor_then_write, torch.arange(3.0))
    log_records.clear()
    _eager_then_compiled(log_tensor_then_write, log_records, torch.arange(3.0), fullgraph=False)
    assert "value tensor([0., 2., 4.])" in log_records[0][2]


# ==================================================================================== weakref
class Holder:
    def __init__(self, w):
        self.w = w


HELD = Holder(torch.arange(3.0))
REF = weakref.ref(HELD)
TABLE = weakref.WeakKeyDictionary({HELD: 2.0})


def weak_reads(x):
    h = REF()
    k = weakref.ref(HELD)
    return x * h.w + TABLE[HELD] + TABLE.get(HELD, 0.0) + (k() is HELD) + (HELD in TABLE) + len(TABLE)


def test_weakref_reads():
    check(weak_reads, *tensors_like((3,)))


@beyond_torch_compile("raises its own Unsupported ('Observed exception')")
def test_weak_key_dictionary_value_guarded():
    s = Step(weak_reads)
    x, = tensors_like((3,))
    s(x)
    other = Holder(torch.ones(3))
    try:
        TABLE[HELD] = 3.0
        assert s(x) == 1
        TABLE[other] = 1.0                 # len(TABLE) changes
        assert s(x) == 1
        del TABLE[HELD]                    # HELD missing: TABLE[HELD] raises KeyError, as eagerly
        with pytest.raises(KeyError):
            s.c(x)
    finally:
        TABLE[HELD] = 2.0
        TABLE.pop(other, None)


# ==================================================================================== abc
class Shape(abc.ABC):
    @abc.abstractmethod
    def area(self):
        ...


class Square(Shape):
    def __init__(self, s):
        self.s = s

    def area(self):
        return self.s * self.s


class Virtual(abc.ABC):
    pass


class Plain:
    pass


def abc_checks(x):
    sq = Square(2)
    return (x * sq.area(), isinstance(sq, Shape), issubclass(Square, Shape), isinstance(Plain(), Virtual),
            isinstance([], collections.abc.Sequence), isinstance({}, collections.abc.Mapping))


def test_abc_checks():
    check(abc_checks, *tensors_like((3,)))


@beyond_torch_compile("returns stale results (ABC registrations are not guarded)")
def test_abc_registration_guarded():
    s = Step(abc_checks)
    x, = tensors_like((3,))
    s(x)
    Virtual.register(Plain)               # isinstance(Plain(), Virtual) flips
    assert s(x) == 1


def abc_instantiate_abstract(x):
    Shape()
    return x


@beyond_torch_compile("graph break (object.__new__)")
def test_abc_abstract_instantiation_raises():
    with pytest.raises(TypeError):
        compile_fn(abc_instantiate_abstract, backend="eager", fullgraph=True)(torch.ones(2))


# ==================================================================================== contextlib
@contextlib.contextmanager
def scaled(x, k):
    yield x * k


class Counting:
    def __init__(self):
        self.depth = 0

    def __enter__(self):
        self.depth += 1
        return self

    def __exit__(self, *exc):
        self.depth -= 1
        return False


def ctx_program(x):
    with contextlib.nullcontext(x) as y:
        y = y + 1
    with scaled(y, 2) as z:
        z = z + 1
    with contextlib.suppress(KeyError):
        {}["missing"]
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(scaled(z, 3))
        c = stack.enter_context(Counting())
        stack.enter_context(torch.no_grad())
        stack.callback(lambda: None)
        w = a * c.depth                    # under no_grad: does not require grad
    return w, c.depth, torch.is_grad_enabled()


@beyond_torch_compile("graph break (ExitStack)")
def test_contextlib():
    x, = tensors_like((3,))
    check(ctx_program, x.requires_grad_())


# ==================================================================================== dataclasses, typing, inspect
Alias = typing.Optional[typing.List[int]]


@dataclasses.dataclass
class Point:
    x: int = 1
    tags: list = dataclasses.field(default_factory=list)


def _documented(a, b=2, *, c):
    """doc"""
    return a


def introspection(x):
    p = Point(2, ["a"])
    q = dataclasses.replace(p, x=5)
    sig = inspect.signature(_documented)
    return (x * q.x, [f.name for f in dataclasses.fields(p)], dataclasses.asdict(q), dataclasses.astuple(p),
            dataclasses.is_dataclass(p), typing.get_origin(Alias) is typing.Union, typing.get_args(Alias),
            typing.cast(torch.Tensor, x) + 1, typing.TYPE_CHECKING, list(sig.parameters),
            sig.parameters["b"].default, inspect.isclass(Point), inspect.isfunction(_documented),
            inspect.ismethod(Counting().__enter__), inspect.isroutine(len), inspect.isgeneratorfunction(scaled))


def test_dataclasses_typing_inspect():
    check(introspection, *tensors_like((3,)))


FieldType = int | None          # types.UnionType / types.GenericAlias: constants, equality-guarded


def type_expressions(x, value):
    t = FieldType
    ok = isinstance(value, t) and typing.get_origin(t) is types.UnionType
    return x + ok, typing.get_args(t), typing.get_origin(list[int]), list[int].__args__


def test_type_expressions_guarded():
    global FieldType
    s = Step(type_expressions)
    x, = tensors_like((3,))
    s(x, 3)
    try:
        FieldType = str | None
        assert s(x, 3) == 1
    finally:
        FieldType = int | None


# ==================================================================================== compile-time queries
def compiling_queries(x):
    return (x + 1, torch.compiler.is_compiling(), torch.compiler.is_dynamo_compiling(),
            torch._dynamo.is_compiling())


@pytest.mark.skipif(REFERENCE, reason="bytegraph's answers inside its own trace")
def test_is_compiling_true_inside_the_trace():
    import torch._dynamo  # noqa: F401  (the queries' module must be importable)
    reset()
    out = compile_fn(compiling_queries, backend="eager", fullgraph=True)(torch.ones(2))
    assert out[1:] == (True, True, True)
    assert compiling_queries(torch.ones(2))[1:] == (False, False, False)
    assert graph_count() == 1


# ==================================================================================== function attributes
def _plain(a):
    """plain doc"""
    return a


_plain.tag = "t"


def function_attributes(x):
    @functools.wraps(_plain)
    def wrapper(a):
        return _plain(a) * 2

    def nested():
        pass
    return (wrapper(x), _plain.__class__ is type(_plain), nested.__class__.__name__, _plain.__name__,
            _plain.__qualname__, _plain.__module__, _plain.__doc__, wrapper.__wrapped__ is _plain,
            wrapper.__name__, wrapper.__doc__, _plain.__dict__["tag"], bool(_plain),
            Counting().__enter__.__class__.__name__)


@beyond_torch_compile("raises its own Unsupported ('Observed exception')")
def test_function_attributes():
    check(function_attributes, *tensors_like((3,)))
