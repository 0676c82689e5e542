"""Which graphs of a compiled function can share one backend compile.

A loop whose body breaks unrolls into one graph per iteration, and the iterations' graphs are
usually the same; a resume function compiled for each iteration of a `for` loop makes the same
graphs again. `same_graph_key` says when two GraphModules are interchangeable for the backend:
the same nodes (by position; targets and non-plain constants by identity, which the graphs keep
alive), the same grad mode and global switches a compiler may bake in, and example inputs alike
in everything a backend may specialize on. runtime/convert.py compiles each distinct key once.

`family_key` does the same across the traces of one compiled function's family for graphs with
symbolic sizes: each trace has its own ShapeEnv, so such a graph is keyed by its placeholders'
and nodes' size expressions and by every fact the ShapeEnv holds about the symbols they mention
(ranges, replacements, guards, runtime asserts); a graph whose backend compile changed those
facts is not offered to other traces (their guards would lack what the backend assumed).
"""
import struct

import torch
from torch import _C

from ..guards.guard_set import backend_switches


def same_graph_key(gm, example_inputs, grad, symbolic, sizes_of_fakes=False, name=str):
    """What makes two graphs of one trace interchangeable for the backend: the same code over the
    same global objects, the same grad mode, and example inputs alike in everything a backend may
    specialize on (type, dtype, device, layout, sizes, strides, offset, requires_grad, which
    inputs share storage; a symbolic size by its expression). A loop whose body stops the trace
    unrolls into one graph per iteration: those are compiled once. None: never shared (graphs
    holding attributes). Keys are computed at compile time, under the global state the backend
    compiles under (an entry compiled again under bfloat16 autocast is not float16's).
    `sizes_of_fakes`: an input's sizes, strides and offset are its placeholder's (symbolic)
    ones, not those of the real tensor the trace saw (family_key)."""
    index, nodes, fakes = {}, [], []
    for n in gm.graph.nodes:
        if n.op == "get_attr":
            return None
        index[n] = len(index)
        if n.op == "placeholder":
            fakes.append(n.meta.get("example_value"))
        target = None if n.op == "placeholder" else n.target      # called positionally: names do not matter
        nodes.append((n.op, _plain(target, index), _plain(n.args, index), _plain(n.kwargs, index)))
    metas, storages = [], {}
    for i, x in enumerate(example_inputs):
        if isinstance(x, torch.Tensor):
            if x.layout is not torch.strided or x.is_nested:
                return None
            try:
                sid = storages.setdefault(x.untyped_storage()._cdata, len(storages))
            except Exception:
                return None
            m = x
            if sizes_of_fakes:
                m = fakes[i] if i < len(fakes) else None
                if m is None and _is_fake(x):       # an intermediate's fake, passed as such
                    m = x
                if not isinstance(m, torch.Tensor) or m.dim() != x.dim():
                    return None
            metas.append((type(x), x.dtype, x.device, tuple(map(name, m.shape)), tuple(map(name, m.stride())),
                          name(m.storage_offset()), x.requires_grad, x.is_leaf, x._is_view(), x.is_conj(),
                          x.is_neg(), sid))
        else:
            metas.append((type(x), name(x)))
    return tuple(nodes), grad, symbolic, tuple(metas), _global_state()


def family_key(gm, example_inputs, grad, shape_env):
    """(key, symbols) for sharing a symbolic graph across traces of one family, or None. The key
    is same_graph_key's with the inputs' sizes taken from the placeholders' fakes (symbolic
    expressions, not one call's sizes), every node's fake metadata (which pins the names of the
    symbols the graph's own ops make), and `shape_facts` over the symbols all these mention. Two
    graphs with one key compute the same thing under the same assumptions about their sizes, so a
    backend's compile of one serves the other's calls; the caller checks that the backend added
    no assumption of its own (shape_facts the same after it ran). A graph of a symbolic trace
    that mentions no symbol (`symbols` empty) is a static graph (runtime/convert.py keys it so)."""
    symbols = {}            # in the order the key meets them
    try:
        for n in gm.graph.nodes:
            _meta(n.meta.get("example_value"), symbols, str)
    except _Unkeyed:
        return None
    rename = _Canonical(symbols)
    key = same_graph_key(gm, example_inputs, grad, True, sizes_of_fakes=True, name=rename.text)
    if key is None:
        return None
    metas = tuple(_meta(n.meta.get("example_value"), {}, rename.text) for n in gm.graph.nodes)
    return (key, metas, shape_facts(shape_env, symbols, rename)), (frozenset(symbols), rename)


class _Canonical:
    """Symbols renamed by the order a graph's placeholders and nodes first mention them (`c0`,
    `c1`, ...): each trace has its own ShapeEnv, whose symbol names count every symbol it made
    before (the rows of a loop's tensor wrapped before this one, a trace reaching the same graph
    by another path), so the same graph over the same kind of sizes spells them differently in
    two traces. Equal keys after renaming mean the two graphs and the facts about their symbols
    are the same up to a one-to-one renaming (names matter to neither the graph's code, which
    reads sizes from its inputs by position, nor a backend's compile of it). Symbols a key
    reaches only through the ShapeEnv's facts keep their own names (no sharing unless equal)."""

    def __init__(self, symbols):
        import sympy
        self.map = {s: sympy.Symbol(f"c{i}", integer=True) for i, s in enumerate(symbols)}

    def expr(self, e):
        return e.xreplace(self.map) if hasattr(e, "xreplace") else e

    def text(self, v):
        if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            v = v.node.expr
        return str(self.expr(v))


class _Unkeyed(Exception):
    pass


def _is_fake(x):
    from torch._subclasses.fake_tensor import FakeTensor
    return isinstance(x, FakeTensor)


def _meta(v, symbols, name):
    """A fake value's metadata as plain data (sizes as expressions spelt by `name`); collects
    the symbols in `symbols` (a dict: the order they are met, one expression's by name)."""
    if isinstance(v, torch.Tensor):
        if v.layout is not torch.strided or v.is_nested:
            raise _Unkeyed
        exprs = [*v.shape, *v.stride(), v.storage_offset()]
        for e in exprs:
            if isinstance(e, torch.SymInt):
                _collect(e.node.expr, symbols)
        return ("T", v.dtype, v.device, v.requires_grad, tuple(map(name, exprs)))
    if isinstance(v, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        _collect(v.node.expr, symbols)
        return (type(v), name(v))
    if isinstance(v, (tuple, list)):
        return (type(v), tuple(_meta(x, symbols, name) for x in v))
    if v is None or type(v) in _PLAIN:
        return (type(v), repr(v))
    raise _Unkeyed          # a value whose sizes the key cannot read: never shared


def _collect(expr, symbols):
    for s in sorted(expr.free_symbols, key=str):
        symbols.setdefault(s, None)


def shape_facts(shape_env, symbols, rename=None):
    """What `shape_env` holds about `symbols`, as sorted strings: every guard, axiom, runtime
    assert and divisibility fact that mentions one of them, or one of the symbols those mention
    in turn (a relation to another symbol brings that symbol's facts in); each such symbol's
    value range, replacement, size-likeness and renaming; the ShapeEnv's settings. Hints (one
    call's values) are left out: a backend may tune on them, not assume them without a guard."""
    if shape_env is None:
        return None
    facts = [(0, g.expr, "") for g in shape_env.guards]          # (kind, expression, value)
    facts += [(1, k, v) for k, v in shape_env.axioms.items()]
    facts += [(2, ra.expr, "") for ras in shape_env.deferred_runtime_asserts.values() for ra in ras]
    facts += [(3, e, "") for e in shape_env.divisible]
    free = [getattr(e, "free_symbols", frozenset()) for _, e, _ in facts]
    closed, taken = set(symbols), [False] * len(facts)
    grown = True
    while grown:                # the symbols related to ours, through any fact
        grown = False
        for i, f in enumerate(free):
            if not taken[i] and f & closed:
                taken[i] = grown = True
                closed |= f
    r = rename.expr if rename is not None else (lambda e: e)
    per_symbol = tuple(sorted((str(r(s)), str(shape_env.var_to_range.get(s)), str(r(shape_env.replacements.get(s))),
                               s in shape_env.size_like, str(r(shape_env.unbacked_renamings.get(s))))
                              for s in closed))
    kinds = [[], [], [], []]
    for (kind, e, v), t in zip(facts, taken):
        if t:                   # (only these are printed: a trace may hold thousands of guards)
            kinds[kind].append(f"{r(e)}={r(v)}")
    return (per_symbol, *(tuple(sorted(k)) for k in kinds), repr(getattr(shape_env, "settings", None)))


_PLAIN = (int, float, bool, str, complex, type(None), type(...), torch.dtype, torch.device, torch.layout,
          torch.memory_format)


_bits = struct.Struct("<d").pack


def _plain(x, index):
    """A node's target or argument as a comparable key: nodes by position, plain constants by
    type and repr (floats by their bits), containers item by item, any other object by identity (the graph holds it)."""
    if isinstance(x, torch.fx.Node):
        return ("node", index[x])
    t = type(x)
    if t is float:          # by bits: repr spells every nan `nan`, whatever its sign
        return (t, _bits(x))
    if t is complex:
        return (t, _bits(x.real), _bits(x.imag))
    if t in _PLAIN:
        return (t, repr(x))
    if t in (tuple, list):
        return (t, tuple(_plain(i, index) for i in x))
    if t in (dict, torch.fx.immutable_collections.immutable_dict):
        return (t, tuple((k, _plain(v, index)) for k, v in x.items()))
    if t is torch.fx.immutable_collections.immutable_list:
        return (t, tuple(_plain(i, index) for i in x))
    if t is slice:
        return (t, _plain((x.start, x.stop, x.step), index))
    return ("id", id(x))


def _global_state():
    """Switches a backend may read when it compiles (the ones guards/guard_set.py guards per
    entry, and the dispatch state): a graph compiled under other values is not reused."""
    return (torch.is_inference_mode_enabled(), torch.get_default_dtype(),
            torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
            _C._is_any_autocast_enabled(), _autocast_state(),
            tuple(fn(*args) for fn, _, *args in backend_switches(False)))


def _autocast_state():
    """Each device's autocast switch and dtype (a graph compiled under bfloat16 autocast is not one
    compiled under float16), and the autocast cache switch."""
    return (tuple((d, _C.is_autocast_enabled(d), _C.get_autocast_dtype(d)) for d in _C._autocast_supported_devices()),
            _C.is_autocast_cache_enabled())
