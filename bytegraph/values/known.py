"""Module-state scalars: the values of one-element parameters-free buffers, read at trace time
under a guard on each value the trace used.

transformers' audio codecs (encodec, mimi, wavtokenizer, dac, ...) keep a convolution's stride
and kernel size as 0-d int64 buffers and compute the padding of every convolution from them
(`nn.functional.pad(x, (left, right + extra))` with `extra` a tensor, `max(left, right)`,
`if length <= max_pad`). Reading such a value is a data read: without it each of those lines
is a graph break that runs a pad in Python. These values are module state, not inputs: they
change only when the program writes them.

So a *root* -- a one-element, non-complex, CPU tensor reached as a module's buffer (not a
parameter, not an argument) -- gets its value attached to its fake (`FakeTensor.constant`, a
copy), and FakeTensorMode's constant propagation carries it through the ops on it. A
TensorValue records `roots`, the root sources its value derives from. Where the trace needs
the number (`bool()`, `int()`, `.item()`, `.tolist()`, a slice bound, `max()`, or an op whose
fake run read it, such as `pad` taking it as an int), the value is used and each root it
derives from is guarded by value (`buf.tolist() == v`, kind "state_value", checked on every
call; a float by its bits, since 0.0 == -0.0 and nan != nan). A read whose origin the trace
cannot tell guards every root of the trace.

Soundness:
- a write to a root's storage in the trace forgets the value (GraphBuilder._note_mutation);
  values derived before the write stay known, as eager computed them before it;
- an op on a root used as an int inside a list or slice gets the Python number in the graph
  (the node's argument); one that reads a root any other way stops the trace as before;
- a root whose memory the trace already wrote (through an argument viewing it) is not a root:
  its real value is not the one the trace would read;
- a root's value that an op writes into a tensor the trace made (`a.add_(buf)`) taints that
  constant's memory (GraphBuilder.taint): reading it, or a view of it, guards those roots;
- each root whose value the trace used shares no memory with an input the graph writes, unless
  they shared it in the trace: one guard per trace (`storages_overlap`, kind "storages_apart");
- a root whose value guard fails is not a root in the function's later traces
  (runtime/dynamic.py: `DynamicSpec.unstable`; a global's or a closure cell's too): a counter
  updated per call breaks as before instead of recompiling per value. Under fullgraph the
  function compiles again per value instead (a break would raise);
- export reads no root (runtime/convert.py `_trace(state_scalars=False)`): its GraphModule keeps
  the buffer as an attribute, whose later value a baked number would ignore.

**Values read at a stop.** A one-element integer tensor the graph computed, passed inside the
int list of a torch function (`F.interpolate(x, size=(h, w))`, `F.pad(x, (0, width - w))`: torch's
argument parser turns each such tensor into its int with `item()`), has no value while tracing,
so the op's fake run is data-dependent. Rather than run the op in Python at a stop, the trace
stops just *before* the call and runs nothing there (`read_stop`, runtime/resume.py): the
resume function starts at the call itself, and gets the tensors as parameters marked to be
read (`__bytegraph_read__`). In its trace those tensors are roots like module-state scalars
(their values guarded by the same "state_value" guard, read on every call; a value that changes
makes the source unstable and later traces stop as before), so the op takes the numbers, and
ops on them (`width - w`) carry values for the next ones. A tensor the resume function was
given to read and did not root (its value changed: unstable) never asks for a read stop again
(`read_candidates`): the stop would resume at the same place forever. Only CPU tensors with a
storage of at most 4 KiB are read, and never inside a try or with block (runtime/resume.py
`is_read_stop`).
"""
import torch

from ..graph.builder import _storage_key
from .base import ConstValue

_KINDS = (torch.Tensor, torch.nn.parameter.Buffer)
_MAX_STORAGE = 4096     # bytes


def make_root(tx, source, t, fake):
    """Attach t's value to its fake when t is a module-state scalar, or a tensor a resume function
    was given to read (see module docstring)."""
    from ..runtime.dynamic import is_argument, unstable_state
    read = id(t) in tx.read_ids          # (a view of the graph's output: x_h[0])
    if type(t) not in _KINDS or t.layout is not torch.strided or t.is_quantized or t.numel() != 1 \
            or t.requires_grad or t.device.type != "cpu" or t.is_complex() or t._is_view() and not read \
            or t.untyped_storage().nbytes() > _MAX_STORAGE or is_argument(source) and not read:
        # (add_root copies the root's whole storage: one element set_ into a large one, as
        # torch.load rebuilds tensors that shared memory, is not worth a copy of it per trace)
        return ()
    spec = tx.dynamic
    if spec is not None and source.name_hint() in spec.unstable or not tx.state_scalars:
        return ()
    if tx.allow_breaks and tx.bound is not None and unstable_state(spec, source, tx.bound):
        return ()            # the class's instances change it (fullgraph compiles per value)
    if _storage_key(fake) in tx.graph.mutated_storages:
        # the trace already wrote its memory through an alias (an argument viewing it): the
        # tensor's value now is not the one the trace would read here
        return ()
    tx.graph.add_root(source, t, fake)
    return frozenset((source,))


def roots_of(values, gb):
    """The root sources of every tensor among these Values (inside tuples and lists too)."""
    out = frozenset()
    for v in values:
        r = getattr(v, "roots", None)
        if r:
            out |= r
        if gb.taint:
            out |= tainted(gb, getattr(getattr(v, "fake", None), "constant", None))
        items = getattr(v, "items", None)
        if type(items) is list:
            out |= roots_of(items, gb)
    return out


def tainted(gb, constant):
    """The roots whose values an op wrote into this constant's memory (see `taint`)."""
    if constant is None or not gb.taint:
        return frozenset()
    return gb.taint.get(_storage_key(constant), frozenset())


def taint(gb, fakes, roots):
    """An op that read `roots` wrote into tensors: the fake mode computed the written values
    (`a = torch.tensor(0); a.add_(buf)`), so each written constant -- and every view of it, which
    shares its memory -- now derives from those roots too. Recorded by the constant's storage,
    since the Values viewing it are not known here."""
    for f in fakes:
        key = _storage_key(f.constant)
        gb.taint[key] = gb.taint.get(key, frozenset()) | roots


def guard_roots(tx, roots):
    for src in roots:
        tx.guards.add_state_value(src, tx.graph.roots[src].tolist())


def guard_all_roots(guards, gb):
    """A read of a constant whose roots the trace cannot name: guard every root."""
    for src, t in gb.roots.items():
        guards.add_state_value(src, t.tolist())


def guard_apart(guards, gb):
    """At a trace's end: each root whose value the trace used shares no memory with an input
    the graph writes into, unless they shared it in the trace (whose writes then forgot the
    value). Otherwise a call passing, say, a view of the buffer as the argument the graph
    writes would read the buffer's old value where eager reads the new one."""
    if not gb.mutated_storages:
        return
    used = [src for src, _ in guards.state_values if src in gb.root_keys]
    if not used:
        return
    written = []
    for (src, t), node in zip(gb.inputs, gb.placeholders):
        fake = node.meta.get("example_value")
        if isinstance(t, torch.Tensor) and isinstance(fake, torch.Tensor) \
                and _storage_key(fake) in gb.mutated_storages:
            written.append((src, _storage_key(fake)))
    groups = {}      # roots of one storage in the trace: the written inputs not sharing it
    for root in used:
        key = gb.root_keys[root]
        if key not in groups:
            groups[key] = ([], [src for src, k in written if k != key])
        groups[key][0].append(root)
    guards.add_storages_apart([g for g in groups.values() if g[1]])


def mark(v, roots):
    """Record `roots` on every tensor in an op's result Value whose fake still carries a value."""
    c = getattr(getattr(v, "fake", None), "constant", None)
    if c is not None:
        v.roots = roots
    items = getattr(v, "items", None)
    if type(items) is list:
        for i in items:
            mark(i, roots)


def known(tx, tv):
    """The real one-element tensor a TensorValue holds when its value derives from module-state
    scalars only (guarding them), else None."""
    fake = tv.fake
    c = getattr(fake, "constant", None)
    if c is None or c.numel() != 1:
        return None
    roots = getattr(tv, "roots", frozenset()) | tainted(tx.graph, c)
    if not roots:
        return None
    guard_roots(tx, roots)
    return c


def literal(tx, tv):
    """The real one-element tensor a TensorValue holds when the trace computed it from its own
    literals only (`torch.tensor(0.0)`, then ops on such constants: FakeTensorMode runs an op
    whose inputs all carry values on those values, except a random one, and forgets a value an
    op writes over with data), else None. No guard: the graph makes the same tensor from the
    same literals on every call (Python values the trace used are guarded where it read them)."""
    c = getattr(tv.fake, "constant", None)
    if c is None or c.numel() != 1 or getattr(tv, "roots", None) or tainted(tx.graph, c):
        return None
    return c


def as_number(tx, tv):
    """ConstValue of a known tensor's .item(), else None."""
    c = known(tx, tv)
    return None if c is None else ConstValue(c.item())


def substitute(tx, values):
    """These Values with each known tensor inside a tuple or list replaced by its number (an
    argument the op reads through __index__ / __float__); (values, replaced any)."""
    from .containers import ListValue, TupleValue
    done = False
    out = []
    for v in values:
        if type(v) in (TupleValue, ListValue):
            items = []
            for i in v.items:
                n = as_number(tx, i) if getattr(i, "roots", None) else None
                if n is not None:
                    done = True
                    items.append(n)
                else:
                    items.append(i)
            if done:
                v = TupleValue(items, cls=v.cls) if type(v) is TupleValue else ListValue(items)
        out.append(v)
    return out, done


def read_ids(fn, args):
    """ids of the one-element tensors a resume function was given to read: its parameters named
    in `__bytegraph_read__`, and the items of those that are tuples or lists."""
    out = set()
    for name in getattr(fn, "__bytegraph_read__", ()):
        v = args.get(name)
        for t in v if type(v) in (tuple, list) else (v,):
            if type(t) in _KINDS and t.numel() == 1:
                out.add(id(t))
    return frozenset(out)


def _readable(tx, v):
    """A one-element integer (or bool) CPU tensor whose value the trace does not know and could
    know after a read stop: computed by the graph, or an input not already given to read."""
    from .tensor import TensorValue
    if not isinstance(v, TensorValue):
        return False
    f = v.fake
    if getattr(f, "constant", None) is not None or f.device.type != "cpu" or f.layout is not torch.strided \
            or f.is_floating_point() or f.is_complex() or f.requires_grad:
        return False
    if any(not isinstance(d, int) for d in f.shape) or f.numel() != 1:
        return False
    if v.real is not None and id(v.real) in tx.read_ids:
        return False
    try:
        return f.untyped_storage().nbytes() <= _MAX_STORAGE
    except Exception:       # noqa: BLE001 -- a storage the fake cannot size
        return False


def read_candidates(tx, values):
    """The Values among `values` (an op's arguments, or a frame's stack at a stop) that are tuples
    or lists holding a tensor a read stop would read (see module docstring)."""
    from .containers import ListValue, TupleValue
    return [v for v in values if type(v) in (TupleValue, ListValue) and any(_readable(tx, i) for i in v.items)]
