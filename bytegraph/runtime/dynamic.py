"""Which dimensions and ints a trace makes symbolic: compile(dynamic=...), the marks, and
automatic dynamic after a size change (docs/dynamic_shapes.md).

- `DynamicSpec` is the per-function policy: `mode` (None, True, False) and what automatic
  dynamic has learnt (`auto_dims`: source -> dims; `auto_ints`: int arguments). The tracer asks
  it, per caller tensor and int argument, which dims to make symbolic.
- `mark_dynamic` / `maybe_mark_dynamic` / `mark_static` annotate a tensor (attributes on the
  tensor object, as torch's marks are; torch's own `_dynamo_*` marks are honoured too).
- `note_changes` runs when a call misses every cache entry: it compares the newest entry's
  recorded input sizes and int arguments with the call's, names each change in user terms
  (`size of L['x'] dim 0: expected 4, got 8`) and, under `dynamic=None`, marks exactly those
  dims and ints/floats (arguments, or inside their containers and attributes) dynamic for the
  next trace.

Only tensors reached from the function's arguments (not parameters or buffers) and ints
passed as arguments are made dynamic, as torch.compile does by default.
"""
import math
import types
import weakref

import torch

from ..sources import (LocalSource, TempSource, ModuleDictSource, ItemSource, AttrSource, ObjectSource,
                       GlobalSource, CellContentsSource, ReduceSource)
from ..guards.guard_set import same_state_value

_STRICT_ATTRS = ("_bytegraph_dynamic",)
_TORCH_STRICT = "_dynamo_dynamic_indices"
_WEAK_ATTRS = ("_bytegraph_maybe_dynamic", "_dynamo_weak_dynamic_indices")
_STATIC_ATTRS = ("_bytegraph_static", "_dynamo_static_indices")


def _check_dim(t, dim, what):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{what} expects a torch.Tensor as its first argument, got {type(t).__name__}")
    if isinstance(dim, (list, tuple)):
        dims = list(dim)
    else:
        dims = [dim]
    out = []
    for d in dims:
        if type(d) is not int:
            raise TypeError(f"{what} expects an int dimension (or a list of them), got {type(d).__name__}")
        if not -t.dim() <= d < t.dim():
            raise ValueError(f"{what}: dimension {d} is out of range for a {t.dim()}-d tensor")
        out.append(d % t.dim())
    return out


def _marks(t, attr, default):
    m = t.__dict__.get(attr) if hasattr(t, "__dict__") else None
    if m is None:
        m = default
        setattr(t, attr, m)
    return m


def mark_dynamic(t, dim, min=None, max=None):
    """Compile with `t`'s dimension(s) `dim` symbolic from the first trace; the trace must not
    force them to a constant (that raises ConstraintViolation naming the line). `min`/`max`
    bound the sizes the compiled code accepts (a call outside them recompiles)."""
    for bound, name in ((min, "min"), (max, "max")):
        if bound is not None and type(bound) is not int:
            raise TypeError(f"mark_dynamic({name}=...) expects an int or None, got {type(bound).__name__}")
    if min is not None and max is not None and min > max:
        raise ValueError(f"mark_dynamic: min={min} is greater than max={max}")
    for d in _check_dim(t, dim, "mark_dynamic"):
        _marks(t, "_bytegraph_dynamic", {})[d] = (min, max)


def maybe_mark_dynamic(t, dim):
    """Compile with `t`'s dimension(s) `dim` symbolic from the first trace, letting the trace
    specialize them where it must."""
    for d in _check_dim(t, dim, "maybe_mark_dynamic"):
        _marks(t, "_bytegraph_maybe_dynamic", set()).add(d)


def mark_static(t, dim):
    """Never make `t`'s dimension(s) `dim` symbolic, even under dynamic=True or after a change."""
    for d in _check_dim(t, dim, "mark_static"):
        _marks(t, "_bytegraph_static", set()).add(d)


def _has_marks(t):
    d = getattr(t, "__dict__", None)
    return bool(d) and any(a in d for a in _STRICT_ATTRS + (_TORCH_STRICT,) + _WEAK_ATTRS)


def root_of(source):
    while hasattr(source, "base"):
        source = source.base
    return source


def is_argument(source):
    """Reached from the function's arguments, and not a module's parameter or buffer."""
    s = source
    while hasattr(s, "base"):
        if type(s) is ModuleDictSource and s.key[0] in ("_parameters", "_buffers"):
            return False
        s = s.base
    return type(s) is LocalSource


class DynamicSpec:
    __slots__ = ("mode", "auto_dims", "auto_ints", "auto_layout", "explicit", "floats", "unstable", "family")

    def __init__(self, mode=None, floats=False):
        self.mode = mode              # compile(dynamic=...): None, True or False
        # floats become SymFloat graph inputs only for backends that run such graphs (eager,
        # aten); inductor would need them as 0-d tensors (not done: they stay constants)
        self.floats = floats
        self.auto_dims = {}           # source name -> set of dims automatic dynamic made symbolic
        self.auto_ints = set()        # sources (name_hint) of ints/floats automatic dynamic made symbolic
        self.auto_layout = set()      # sources (name_hint) of tensors whose strides/offset changed
        self.explicit = {}            # source name -> {dim: (min, max, strict)} (export's dynamic_shapes)
        self.unstable = set()         # module-state scalars whose value changed (values/known.py)
        # class -> names of its module buffers seen to change, shared by a compiled function and
        # every function compiled under it (resume functions, callees): see unstable_state
        self.family = None

    def tensor_dims(self, source, t):
        """{dim: (min, max, strict)} to make symbolic for this caller tensor, or None."""
        if type(t) is torch.nn.Parameter or not t.dim():
            return None
        static = set()
        for a in _STATIC_ATTRS:
            static |= set(getattr(t, a, ()) or ())
        dims = {}
        arg = is_argument(source)
        if self.mode is True and arg:
            dims = {d: (None, None, False) for d in range(t.dim())}
        elif self.mode is None and arg:
            dims = {d: (None, None, False) for d in self.auto_dims.get(source.name_hint(), ())}
        if self.explicit and source.name_hint() in self.explicit:
            dims.update(self.explicit[source.name_hint()])
        if _has_marks(t):
            for d in set(getattr(t, "_bytegraph_maybe_dynamic", ())) | set(
                    getattr(t, "_dynamo_weak_dynamic_indices", ()) or ()):
                dims.setdefault(d, (None, None, False))
            for d in getattr(t, _TORCH_STRICT, ()) or ():
                dims[d] = (None, None, True)
            for d, (lo, hi) in (getattr(t, "_bytegraph_dynamic", None) or {}).items():
                dims[d] = (lo, hi, True)
        for d in static:
            dims.pop(d, None)
        out = {}
        for d, (lo, hi, strict) in dims.items():
            if d >= t.dim():
                continue
            n = t.shape[d]
            if (lo is not None and n < lo) or (hi is not None and n > hi):
                continue        # outside mark_dynamic's bounds: this trace keeps the size static
            out[d] = (lo, hi, strict)
        return out or None

    def layout_free(self, source, t):
        """Give this caller tensor's strides and storage offset symbols of their own (its sizes
        stay as tensor_dims says)? Under automatic dynamic, for a tensor with a size-1 dimension
        (the only way to ask FakeTensorMode for a symbolic offset without a symbolic size):
        - one whose strides or offset were seen to change with its sizes the same
          (`note_changes`), the way a changed size is learnt;
        - an item of a sequence a loop steps through, read by position through its iterator's
          state (`for row in t.nonzero():` iterates `t.unbind(0)`: each position's row is a view
          at its own offset, with the number of rows as its stride), which is a view. Each
          loop position is its own trace, so a static offset would make each position's graph
          differ from the next one's. (A trace given such a loop's iterator gets a ShapeEnv:
          `needs_shape_env`.)
        Only for the trace's ShapeEnv to hold the symbols; the guard checks them (a symbol's
        range) like a dynamic size's, so nothing is assumed that a call does not satisfy."""
        if self.mode is not None or type(t) is not torch.Tensor or t.layout is not torch.strided \
                or 1 not in t.shape or not is_argument(source):
            return False
        if source.name_hint() in self.auto_layout:
            return True
        if not t._is_view():
            return False
        if type(source).__name__ == "PeekSource":       # a stepped loop's next item (policy/breaks.py)
            return True
        s = source
        while type(s) is ItemSource:
            s = s.base
            if type(s) is ItemSource and type(s.base) is ReduceSource:
                return True
        return False

    def scalar_dynamic(self, source, value):
        """Make this int (or float) from the caller symbolic? dynamic=True: an int or finite,
        non-zero float argument or item of a sequence argument; dynamic=None: one whose change automatic dynamic saw, also inside
        a container, an object's attributes or *args (0.0 keeps its sign by staying a constant)."""
        if self.mode is False or type(value) is float and (
                not self.floats or value == 0.0 or not math.isfinite(value)):
            return False
        if self.mode is True and (type(source) is LocalSource or type(source) is ItemSource
                                  and type(source.base) is LocalSource):
            return True         # an argument, or an item of a tuple argument (a torch.Size, *args)
        return source.name_hint() in self.auto_ints and is_argument(source)

    def size_dynamic(self, source):
        """Wrap this torch.Size from the caller item by item, so that its sizes can be symbolic
        (dynamic=True: an argument; dynamic=None: once an item's change was seen)?"""
        if self.mode is False or not is_argument(source):
            return False
        if self.mode is True:
            return type(source) is LocalSource
        prefix = source.name_hint() + "["
        return any(n.startswith(prefix) for n in self.auto_ints)

    def needs_shape_env(self, bound):
        if self.mode is True or self.auto_dims or self.auto_ints or self.auto_layout or any(self.explicit.values()):
            return True
        if self.mode is None and any(type(v) is _TUPLE_ITER and _steps_rows(v) for v in bound.values()):
            return True         # a loop over a tensor's rows resumed inside: see layout_free
        return any(_marked_tensor(v, 3) for v in bound.values())


_TUPLE_ITER = type(iter(()))


def _steps_rows(it):
    """Is this tuple iterator (a resume function's loop) stepping through views of a tensor with
    a size-1 dimension (`for row in t.nonzero():`)? Its next item is a view at the next offset."""
    red = it.__reduce__()
    if len(red) < 3:
        return False
    seq, index = red[1][0], red[2]
    t = seq[index] if type(seq) is tuple and 0 <= index < len(seq) else None
    return type(t) is torch.Tensor and t._is_view() and 1 in t.shape


def _marked_tensor(v, depth):
    # type(), not isinstance(): isinstance reads a user object's __class__ (user code)
    if issubclass(type(v), torch.Tensor):
        return _has_marks(v)
    if depth and type(v) in (list, tuple):
        return any(_marked_tensor(x, depth - 1) for x in v)
    if depth and type(v) is dict:
        return any(_marked_tensor(x, depth - 1) for x in v.values())
    return False


_MISSING = object()


def _state_key(source, bound):
    """(class of the owning module, buffer name) of a module buffer's source, else None."""
    if type(source) is not ModuleDictSource or source.key[0] != "_buffers":
        return None
    owner = resolve(source.base, bound, iterators=True)
    return None if owner is _MISSING else (type(owner), source.key[1])


def unstable_state(spec, source, bound):
    """Whether the buffer `source` names is one that instances of its module's class were seen
    to change, in any function of the compile (`spec.family`). Each function learns changes by
    the names its guards give (`spec.unstable`); the same buffer has another name in each
    function (`L['self'].x_min` in a module's forward, `L['self'].act.x_min` in its parent's),
    and every instance of the class has its own, so an EMA statistic kept by each of a model's
    observers would recompile once per name before all of them read it as data."""
    if spec is None or spec.family is None:
        return False
    key = _state_key(source, bound)
    return key is not None and key[1] in spec.family.get(key[0], ())


def resolve(source, bound, iterators=False):
    """The object `source` names in a call with these bound arguments, reading only plain
    containers and instance dicts (no user code runs); _MISSING when it cannot say. `iterators`:
    also a list or tuple iterator's `__reduce__()` (C code), for module state (a buffer read
    through `for layer in self.layers` in a resume function)."""
    if type(source) in (LocalSource, TempSource):
        return bound.get(source.name, _MISSING)
    if type(source) is ItemSource:
        base = resolve(source.base, bound, iterators)
        if type(base) in (list, tuple, dict):
            try:
                return base[source.key]
            except (LookupError, TypeError):
                return _MISSING
        return _MISSING
    if type(source).__name__ == "PeekSource":   # a stepped loop's next item (policy/breaks.py)
        it = resolve(source.base, bound)
        if type(it) is not _TUPLE_ITER:
            return _MISSING
        red = it.__reduce__()
        return red[1][0][red[2]] if len(red) == 3 and red[2] < len(red[1][0]) else _MISSING
    if type(source) is ObjectSource:            # a globals dict or a cell (state_values only)
        return source.obj
    if type(source) is GlobalSource:
        base = resolve(source.base, bound, iterators)
        return base.get(source.key, _MISSING) if type(base) is dict else _MISSING
    if type(source) is CellContentsSource:
        base = resolve(source.base, bound, iterators)
        try:
            return base.cell_contents if type(base) is types.CellType else _MISSING
        except ValueError:                        # an empty cell
            return _MISSING
    if type(source) is ModuleDictSource:
        base = resolve(source.base, bound, iterators)
        d = getattr(base, "__dict__", None) if base is not _MISSING else None
        d = d.get(source.key[0]) if type(d) is dict else None
        return d.get(source.key[1], _MISSING) if isinstance(d, dict) else _MISSING
    if type(source) is AttrSource:
        base = resolve(source.base, bound, iterators)
        d = getattr(base, "__dict__", None) if base is not _MISSING else None
        if type(d) is dict and source.key in d:
            return d[source.key]
        return _MISSING
    if type(source) is ReduceSource:            # a builtin iterator's state (a list's, a tuple's)
        base = resolve(source.base, bound, iterators)
        return base.__reduce__() if iterators and type(base) in _BUILTIN_ITERATORS else _MISSING
    return _MISSING


_BUILTIN_ITERATORS = (type(iter([])), type(iter(())))


def note_changes(spec, guards, bound, learn=True, learn_unstable=True):
    """Compare the sizes and int arguments the newest entry recorded with this call's. Returns
    the changes in user terms; under dynamic=None (and `learn`), marks the changed dims and ints
    dynamic (True when it marked something new). A changed module-state scalar is marked
    unstable (read as data from then on) when `learn` and `learn_unstable` (not fullgraph)."""
    reasons, learnt = [], False
    if not learn:
        spec = DynamicSpec(False)
    for source, shape in guards.sizes:
        now = resolve(source, bound)
        if not issubclass(type(now), torch.Tensor) or now.dim() != len(shape):
            continue
        changed = [d for d, (was, new) in enumerate(zip(shape, now.shape)) if was is not None and was != new]
        for d in changed:
            reasons.append(f"size of {source.name_hint()} dim {d}: expected {shape[d]}, got {now.shape[d]}")
        if changed and spec.mode is None and type(now) is not torch.nn.Parameter:
            have = spec.auto_dims.setdefault(source.name_hint(), set())
            learnt |= not set(changed) <= have
            have.update(changed)
    for source, shape, strides, offset in getattr(guards, "layouts", ()):
        now = resolve(source, bound)
        if not issubclass(type(now), torch.Tensor) or tuple(now.shape) != shape \
                or now.layout is not torch.strided:
            continue
        changed = []
        if strides is not None and tuple(now.stride()) != strides:
            changed.append(f"stride of {source.name_hint()}: expected {strides}, got {tuple(now.stride())}")
        if offset is not None and now.storage_offset() != offset:
            changed.append(f"storage offset of {source.name_hint()}: expected {offset}, got {now.storage_offset()}")
        reasons += changed
        if changed and spec.mode is None and 1 in shape and type(now) is torch.Tensor and is_argument(source):
            learnt |= source.name_hint() not in spec.auto_layout
            spec.auto_layout.add(source.name_hint())
    for source, value in getattr(guards, "state_values", ()):
        now = resolve(source, bound, iterators=True)
        if not issubclass(type(now), torch.Tensor) or now.numel() != 1 or same_state_value(now.tolist(), value):
            continue
        reasons.append(f"the value of {source.name_hint()} changed: {value!r} -> {now.tolist()!r}")
        # it changes: later traces read it as data (a break), not as a constant per value
        if learn_unstable:
            learnt |= source.name_hint() not in spec.unstable
            spec.unstable.add(source.name_hint())
            key = _state_key(source, bound) if spec.family is not None else None
            if key is not None:
                spec.family.setdefault(key[0], set()).add(key[1])
    for source, value in guards.ints:
        now = resolve(source, bound)
        if value is None or type(now) is not type(value) or now == value:
            continue
        reasons.append(f"{source.name_hint()} changed: {value!r} -> {now!r}")
        if spec.mode is not None or not is_argument(source):
            continue
        if type(value) is torch.Size:          # a torch.Size argument: the items that changed
            if len(now) != len(value):
                continue
            names = [ItemSource(source, i).name_hint() for i, (a, b) in enumerate(zip(value, now)) if a != b]
        else:
            names = [source.name_hint()]
        learnt |= not set(names) <= spec.auto_ints
        spec.auto_ints.update(names)
    return reasons, learnt
