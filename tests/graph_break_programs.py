"""The graph-break program corpus: the registry, its environments and the region-count oracle.

A *program* is a small function or nn.Module, with its inputs, that contains 1 to 5 graph breaks
(print, bytegraph.graph_break(), .item()/.tolist()/.numpy(), a branch on a tensor, a call to a
bytegraph.disable'd function, an unsupported C function) at one *position* (top level, a loop,
a `with` block, a try/except/finally, an inlined callee at depth 1-3, ...), mixed with Python
side effects. `tests/test_graph_break_programs.py` runs each one eagerly and compiled and compares
everything observable; `bench/graph_breaks.py` runs a subset under torch.compile too.

The programs live in graph_break_programs_grid.py (every break kind at every position, generated
from templates) and graph_break_programs_hand.py / graph_break_programs_modules.py (handwritten:
side effects, identity, exceptions, context managers, modules, nesting). `all_programs()` loads them.

expected_graphs
---------------
The number of graphs the first call should compile: the regions between breaks that hold tensor
work (a region with no tensor op makes no graph), walking the first call's execution with
inlined calls flattened. A region that runs again with identical Python state (same code, same
Python values, only tensors with the same metadata) is a cache hit and is counted once: that
happens only in loops driven by tensors alone (`while x.max() > 1: x = x / 2`); a `for` loop's
iterator position or a Python counter differ between iterations, so with static specialisation
(as bytegraph does for Python ints) each iteration's region is its own graph. Such programs say
why in `note`.

`region_counts(prog)` is the oracle: it runs the program eagerly under a TorchFunctionMode that
records tensor ops and breaks, and counts (a) `flat`, the regions of the definition above
without the cache-hit merging, (b) `split_at_call`, the count for a compiler that, when an
inlined callee breaks, splits the caller at the call and compiles the callee as its own unit
(docs/graph_breaks.md's plan), None where that model is undefined (a break inside a generator
or a dunder called by an opcode), and (c) `breaks`, the breaks executed. The test
`test_expected_graphs_match_oracle` checks each hand-written number against it.
"""
import builtins
import contextlib
import copy
import dataclasses
import io
import logging
import os
import sys
import types

import torch
from torch.overrides import TorchFunctionMode

import bytegraph

try:  # a disabled helper must stop torch.compile's trace too (bench, reference runs)
    import torch._dynamo as _dynamo
except Exception:  # pragma: no cover
    _dynamo = None


# --------------------------------------------------------------------------------------------
# the registry

@dataclasses.dataclass
class Env:
    """One fresh world for one run: the callable to compile, a maker of fresh equal inputs, a
    snapshot of every piece of Python state the program may touch, and a reset to the state it
    was built with (in place, so object identities, and guards on them, stay valid)."""
    fn: object
    inputs: object                      # () -> (args tuple, kwargs dict)
    state: object = lambda: None        # () -> pytree snapshot (deep-copied by the caller)
    reset: object = lambda: None
    params: object = lambda: []         # () -> list of (name, tensor) whose .grad is compared


@dataclasses.dataclass
class Program:
    name: str
    make: object                        # () -> Env
    expected_graphs: int
    position: str
    kind: str
    note: str = ""
    source: str = ""
    tags: tuple = ()


PROGRAMS = []
_NAMES = set()


def register(prog):
    assert prog.name not in _NAMES, f"duplicate program name {prog.name}"
    _NAMES.add(prog.name)
    PROGRAMS.append(prog)
    return prog


def all_programs():
    """Every registered program (imports the program modules once)."""
    import graph_break_programs_grid  # noqa: F401
    import graph_break_programs_hand  # noqa: F401
    import graph_break_programs_modules  # noqa: F401
    return list(PROGRAMS)


def by_name(name):
    return {p.name: p for p in all_programs()}[name]


def _source_of(obj):
    import inspect
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        return ""


# --------------------------------------------------------------------------------------------
# inputs

def t(*shape, seed=0, rg=False, scale=1.0, dtype=torch.float32):
    """A deterministic tensor (the same values every call)."""
    g = torch.Generator().manual_seed(1000 + seed)
    v = (torch.randn(*shape, generator=g) * scale).to(dtype)
    return v.requires_grad_(rg) if rg else v


# --------------------------------------------------------------------------------------------
# state helpers: globals and module attributes restored in place

def restore_inplace(cur, saved):
    """Make `cur` equal to `saved` without replacing it; returns the object to store back
    (the same object for lists/dicts/sets/user objects, else a copy of `saved`)."""
    saved = copy.deepcopy(saved)
    if type(cur) is list and type(saved) is list:
        cur[:] = saved
        return cur
    if type(cur) is dict and type(saved) is dict:
        cur.clear()
        cur.update(saved)
        return cur
    if type(cur) is set and type(saved) is set:
        cur.clear()
        cur.update(saved)
        return cur
    return saved


def globals_env(g, names):
    """state/reset over the globals `names` of the module dict `g` (initial values taken now)."""
    initial = {n: copy.deepcopy(g[n]) for n in names}

    def state():
        return {n: g[n] for n in names}

    def reset():
        for n in names:
            g[n] = restore_inplace(g[n], initial[n])
    return state, reset


def _python_attrs(mod):
    return {k: v for k, v in vars(mod).items()
            if not k.startswith("_") and k != "training" and not isinstance(v, torch.nn.Module)}


def module_env(mod, inputs):
    """An Env for a module: its Python attributes (every submodule), buffers and parameters are
    the compared state; reset restores them in place and clears the grads."""
    names = [n for n, _ in mod.named_modules()]
    subs = dict(mod.named_modules())
    initial_attrs = {n: copy.deepcopy(_python_attrs(subs[n])) for n in names}
    initial_tensors = {k: v.detach().clone() for k, v in mod.state_dict(keep_vars=True).items()}

    def state():
        return {"attrs": {n: _python_attrs(subs[n]) for n in names},
                "tensors": {k: v.detach() for k, v in mod.state_dict(keep_vars=True).items()}}

    def reset():
        for n in names:
            m = subs[n]
            for k, v in initial_attrs[n].items():
                setattr(m, k, restore_inplace(getattr(m, k, None), v))
            for k in set(_python_attrs(m)) - set(initial_attrs[n]):
                delattr(m, k)
        with torch.no_grad():
            for k, v in mod.state_dict(keep_vars=True).items():
                v.copy_(initial_tensors[k])
        for p in mod.parameters():
            p.grad = None

    return Env(fn=mod, inputs=inputs, state=state, reset=reset,
               params=lambda: list(mod.named_parameters()))


def _inputs_fn(inputs):
    def make():
        v = inputs()
        if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict) and isinstance(v[0], tuple):
            return v
        return (v if isinstance(v, tuple) else (v,)), {}
    return make


# --------------------------------------------------------------------------------------------
# decorators the program modules use

def program(graphs, position, kind, inputs, *, globals_=(), note="", tags=()):
    """Register a module-level function as a program. `inputs() -> args tuple` (or
    (args, kwargs)); `globals_` names the module globals it reads or writes (their values now,
    at registration, are the initial state every run starts from)."""
    def deco(fn):
        state, reset = globals_env(fn.__globals__, globals_)

        def make():
            return Env(fn=fn, inputs=_inputs_fn(inputs), state=state, reset=reset)
        register(Program(fn.__name__, make, graphs, position, kind, note, _source_of(fn), tags))
        return fn
    return deco


def module_program(graphs, position, kind, inputs, *, note="", tags=(), init=(), globals_=()):
    """Register an nn.Module class as a program (built with torch.manual_seed(0)); `globals_`
    as for program()."""
    def deco(cls):
        g_state, g_reset = globals_env(vars(sys.modules[cls.__module__]), globals_)

        def make():
            torch.manual_seed(0)
            env = module_env(cls(*init), _inputs_fn(inputs))
            if globals_:
                m_state, m_reset = env.state, env.reset
                env.state = lambda: {"module": m_state(), "globals": g_state()}
                env.reset = lambda: (m_reset(), g_reset())
            return env
        register(Program(cls.__name__, make, graphs, position, kind, note, _source_of(cls), tags))
        return cls
    return deco


def factory_program(graphs, position, kind, inputs, *, note="", tags=()):
    """Register a factory `() -> (fn, state, reset)` (closures with nonlocal state)."""
    def deco(factory):
        def make():
            fn, state, reset = factory()
            return Env(fn=fn, inputs=_inputs_fn(inputs), state=state, reset=reset)
        register(Program(factory.__name__, make, graphs, position, kind, note,
                         _source_of(factory), tags))
        return factory
    return deco


# --------------------------------------------------------------------------------------------
# break helpers shared by the program modules

_ORACLE = {"on": False, "suspended": 0, "events": None}


@contextlib.contextmanager
def _suspended():
    _ORACLE["suspended"] += 1
    try:
        yield
    finally:
        _ORACLE["suspended"] -= 1


def _note_break(kind):
    if _ORACLE["on"] and not _ORACLE["suspended"]:
        _ORACLE["events"].append(("break", kind))


def disabled(fn):
    """bytegraph.disable(fn), also opaque to torch.compile, and seen as one break by the oracle."""
    def marked(*args, **kwargs):
        _note_break("disabled:" + fn.__name__)
        with _suspended():
            return fn(*args, **kwargs)
    marked.__name__ = marked.__qualname__ = fn.__name__
    inner = _dynamo.disable(marked) if _dynamo is not None else marked
    return bytegraph.disable(inner)


class _StdoutHandler(logging.Handler):
    """Writes each record to the sys.stdout current at emit time, so logging interleaves with
    print in the captured output (ordering across breaks is compared)."""

    def emit(self, record):
        with _suspended():
            sys.stdout.write(f"LOG {record.levelname} {record.getMessage()}\n")


LOG = logging.getLogger("graph_break_programs")
LOG.setLevel(logging.INFO)
LOG.propagate = False
if not any(isinstance(h, _StdoutHandler) for h in LOG.handlers):
    LOG.addHandler(_StdoutHandler())


def _call_handlers(record):
    # every handler (pytest's capture handlers too) formats outside the oracle's view
    with _suspended():
        return logging.Logger.callHandlers(LOG, record)


LOG.callHandlers = _call_handlers


# --------------------------------------------------------------------------------------------
# the oracle: regions, breaks and the split-at-call count from one eager run

_BREAK_FUNCS = {"item", "tolist", "numpy", "__bool__", "__int__", "__float__", "__index__",
                "__format__", "__repr__", "__str__"}
_META = {"shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "ndim", "grad",
         "layout", "names", "is_cuda", "is_sparse", "is_quantized", "is_meta", "output_nr",
         "_version", "size", "dim", "numel", "__len__", "is_floating_point", "is_complex",
         "element_size", "stride", "is_contiguous", "nelement", "_set_grad_enabled",
         "__hash__", "get_device", "data_ptr", "__iter__"}
PROGRAM_FILES = set()      # filenames whose frames are user frames for the call tree


class _Recorder(TorchFunctionMode):
    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", repr(func))
        if name == "__get__":
            name = getattr(getattr(func, "__self__", None), "__name__", name)
        if _ORACLE["on"] and not _ORACLE["suspended"]:
            if name in _BREAK_FUNCS:
                _ORACLE["events"].append(("break", name))
            elif name not in _META:
                _ORACLE["events"].append(("op", name))
        return func(*args, **kwargs)


def _is_user_code(code):
    return code.co_filename in PROGRAM_FILES


C_BREAKS = set()           # C functions bytegraph cannot call in a trace (a break each)


def _profile(frame, event, arg):
    if not _ORACLE["on"] or _ORACLE["suspended"]:
        return
    if event in ("call", "return") and _is_user_code(frame.f_code):
        _ORACLE["events"].append((event, frame.f_code))
    elif event == "c_call" and arg in C_BREAKS and _is_user_code(frame.f_code):
        _ORACLE["events"].append(("break", getattr(arg, "__name__", "c")))


@dataclasses.dataclass
class Regions:
    flat: int
    split_at_call: object
    breaks: int
    events: list


def _flat(events):
    graphs, cur = 0, False
    for ev in events:
        if ev[0] == "op":
            cur = True
        elif ev[0] == "break":
            graphs += cur
            cur = False
    return graphs + cur


def _tree(events):
    """Nest 'call'/'return' events into [('frame', code, children)], leaves op/break."""
    root = ("frame", None, [])
    stack = [root]
    for ev in events:
        if ev[0] == "call":
            node = ("frame", ev[1], [])
            stack[-1][2].append(node)
            stack.append(node)
        elif ev[0] == "return":
            if len(stack) > 1:
                stack.pop()
        else:
            stack[-1][2].append(ev)
    return root


def _has_break(node):
    return any(c[0] == "break" or (c[0] == "frame" and _has_break(c)) for c in node[2])


_OPCODE_DUNDERS = {"__enter__", "__exit__", "__iter__", "__next__", "__getitem__", "__setitem__",
                   "__add__", "__mul__", "__bool__", "__len__", "__contains__", "__eq__"}


def _split(node):
    """Graphs under the split-at-call model for one compiled unit; None when undefined."""
    graphs, cur = 0, False
    for c in node[2]:
        if c[0] == "op":
            cur = True
        elif c[0] == "break":
            graphs += cur
            cur = False
        elif c[0] == "frame":
            if not _has_break(c):
                cur = cur or _has_op(c)
                continue
            code = c[1]
            if code.co_flags & (0x20 | 0x200) or code.co_name in _OPCODE_DUNDERS:
                return None     # reached by an opcode or resumed generator, not a CALL
            inner = _split(c)
            if inner is None:
                return None
            graphs += cur + inner
            cur = False
    return graphs + cur


def _has_op(node):
    return any(c[0] == "op" or (c[0] == "frame" and _has_op(c)) for c in node[2])


def _patched_print(*args, **kwargs):
    _note_break("print")
    with _suspended():
        return _ORIG_PRINT(*args, **kwargs)


def _patched_graph_break():
    _note_break("graph_break")


_ORIG_PRINT = builtins.print


def region_counts(prog):
    """Run `prog` once eagerly and count its regions (see the module docstring)."""
    env = prog.make()
    env.reset()
    args, kwargs = env.inputs()
    events = []
    saved_gb = bytegraph.graph_break
    _ORACLE.update(on=False, suspended=0, events=events)
    builtins.print = _patched_print
    bytegraph.graph_break = _patched_graph_break
    old_profile = sys.getprofile()
    try:
        with contextlib.redirect_stdout(io.StringIO()), _Recorder():
            sys.setprofile(_profile)
            _ORACLE["on"] = True
            try:
                env.fn(*args, **kwargs)
            except Exception:
                pass
            finally:
                _ORACLE["on"] = False
                sys.setprofile(old_profile)
    finally:
        builtins.print = _ORIG_PRINT
        bytegraph.graph_break = saved_gb
        env.reset()
    ops_breaks = [e for e in events if e[0] in ("op", "break")]
    tree = _tree(events)
    return Regions(flat=_flat(ops_breaks), split_at_call=_split(tree),
                   breaks=sum(e[0] == "break" for e in events), events=events)


# --------------------------------------------------------------------------------------------
# running one program eagerly or compiled: everything observable, as plain data

@dataclasses.dataclass
class RunResult:
    out: object
    stdout: str
    state: object
    args_after: object
    grads: dict
    identity: list


def identity_signature(roots):
    """For every container/object/tensor reachable from `roots`, the path where it first
    appeared: two runs agree iff the same objects are shared in the same places."""
    seen, sig = {}, []

    def walk(v, path):
        if isinstance(v, (int, float, str, bool, type(None), bytes, complex)):
            return
        if id(v) in seen:
            sig.append((path, seen[id(v)]))
            return
        seen[id(v)] = path
        if isinstance(v, (list, tuple)):
            for i, e in enumerate(v):
                walk(e, f"{path}[{i}]")
        elif isinstance(v, dict):
            for k, e in v.items():
                walk(e, f"{path}[{k!r}]")
        elif hasattr(v, "__dict__") and not isinstance(v, (type, types.FunctionType, torch.nn.Module)):
            for k, e in vars(v).items():
                walk(e, f"{path}.{k}")
    for name, r in roots:
        walk(r, name)
    return sig


def _tensor_leaves(v, path="out"):
    if isinstance(v, torch.Tensor):
        yield path, v
    elif isinstance(v, (list, tuple)):
        for i, e in enumerate(v):
            yield from _tensor_leaves(e, f"{path}[{i}]")
    elif isinstance(v, dict):
        for k, e in v.items():
            yield from _tensor_leaves(e, f"{path}[{k!r}]")


def _backward(out, args, env):
    """Backward through the sum of every output tensor that requires grad; the grads of the
    inputs and parameters, by path."""
    leaves = [v for _, v in _tensor_leaves(out) if v.requires_grad and v.is_floating_point()]
    if not leaves:
        return {}
    loss = sum(v.float().sum() for v in leaves)
    loss.backward()
    grads = {p: v.grad for p, v in _tensor_leaves(args, "args") if v.requires_grad}
    grads.update({f"param.{n}": p.grad for n, p in env.params()})
    return grads


def run_env(env, call, args, kwargs):
    """Call `call(*args, **kwargs)` capturing stdout; returns a RunResult with deep copies."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            out = call(*args, **kwargs)
        except Exception as e:  # the user's exception is part of the observable result
            out = ("raised", type(e).__name__, str(e))
    state_now = env.state()
    ident = identity_signature([("out", out), ("args", args), ("kwargs", kwargs),
                                ("state", state_now)])
    grads = _backward(out, (args, kwargs), env)
    return RunResult(out=_detached_copy(out), stdout=buf.getvalue(),
                     state=_detached_copy(state_now), args_after=_detached_copy((args, kwargs)),
                     grads=_detached_copy(grads), identity=ident)


def _walk_tensors(v, seen=None):
    seen = set() if seen is None else seen
    if id(v) in seen:
        return
    seen.add(id(v))
    if isinstance(v, torch.Tensor):
        yield v
    elif isinstance(v, (list, tuple, set, frozenset)):
        for e in v:
            yield from _walk_tensors(e, seen)
    elif isinstance(v, dict):
        for e in v.values():
            yield from _walk_tensors(e, seen)
    elif hasattr(v, "__dict__") and not isinstance(v, (type, types.ModuleType)):
        for e in vars(v).values():
            yield from _walk_tensors(e, seen)


class NDArraySnap(tuple):
    """A numpy array in a snapshot: (dtype, shape, values) so plain equality compares it."""


def _detached_copy(v):
    """Deep copy with every tensor detached and cloned (keeping requires_grad, for comparison)
    and numpy arrays as NDArraySnap."""
    memo = {}
    keep = []
    for tv in _walk_tensors(v):
        snap = tv.detach().clone()
        if tv.requires_grad:
            snap.requires_grad_(True)
        memo[id(tv)] = snap
        keep.append(tv)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None

    def conv(x):
        if np is not None and isinstance(x, np.ndarray):
            return NDArraySnap((str(x.dtype), x.shape, x.tolist()))
        if isinstance(x, list):
            return [conv(e) for e in x]
        if type(x) is tuple:
            return tuple(conv(e) for e in x)
        if type(x) is dict:
            return {k: conv(e) for k, e in x.items()}
        return x
    return conv(copy.deepcopy(v, memo))
