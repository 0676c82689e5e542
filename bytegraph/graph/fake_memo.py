"""FakeMemo: reuse one trace's symbolic fake-tensor results for repeated identical calls.

With a ShapeEnv, running an op on fake tensors is the bulk of a dynamic trace's time (torch's
meta kernels and decompositions do their size arithmetic on SymInts: an `F.linear` costs
milliseconds). A model's repeated layers call the same ops on inputs whose metadata is the
same: the second layer's `linear(x, w)` sees the same sizes (the same sympy expressions), the
same strides, dtypes and devices as the first's. Within one trace, such a call's fake output is
a function of that metadata and of the global state that steers dispatch, so it can be built
directly (`empty_strided`) instead of re-running the op.

The memo is deliberately narrow, and refuses rather than guesses:
- only calls of torch's own functions, methods and operators, on exact FakeTensors without a
  constant, with arguments that are numbers, strings, dtypes, devices, SymInts (by expression)
  and tuples/lists of those;
- only results that are fresh tensors: new storages shared with no input and no other output,
  offset 0 (or a view of such a new base, rebuilt as one), not requiring grad, no new
  (unbacked) symbol made by the op, no write into any argument;
- the key includes grad mode, inference mode, autocast state, the default dtype and device,
  the deterministic flag and the depth of the torch function and dispatch mode stacks; the
  memo lives for one trace (one FakeTensorMode and ShapeEnv);
- when it first stores an entry it rebuilds the result the way a later hit will and compares
  every piece of metadata (sizes, strides, offset, storage size, dtype, device, inference flag)
  with the op's own; any difference leaves that key un-memoized.
Guards the op added to the ShapeEnv the first time are already there for the repeat (same
expressions, same answers). Views of an argument (`view`, `transpose`, `expand`) are not
memoized: rebuilding one (`as_strided` on the repeat's argument) costs as much as the op.
"""
import types

import torch
from torch._subclasses.fake_tensor import FakeTensor

_ATOMS = (int, float, bool, str, type(None), torch.dtype, torch.device, torch.layout,
          torch.memory_format)
_SYM = (torch.SymInt, torch.SymFloat, torch.SymBool)
_NEGATIVE = object()    # a key seen whose result cannot be memoized


class _NotKeyable(Exception):
    pass


def _dim(x):
    if type(x) is int:
        return x
    if type(x) is torch.SymInt:
        return ("s", x.node.expr)
    raise _NotKeyable


def _trusted(kind, target):
    """torch's own callables: their fake result depends only on the arguments' metadata."""
    if kind == "call_method":
        return type(target) is str
    if kind != "call_function":
        return False
    if isinstance(target, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
        return True
    mod = getattr(target, "__module__", None) or ""
    if type(target) is types.BuiltinFunctionType:
        return mod == "_operator" or mod == "torch" or mod.startswith("torch.")
    if type(target) is types.FunctionType:
        return mod.startswith("torch.")
    return False


def _global_state():
    return (torch.is_grad_enabled(), torch.is_inference_mode_enabled(),
            torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
            torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda"),
            torch.get_default_dtype(), torch.are_deterministic_algorithms_enabled(),
            torch._C._are_functorch_transforms_active(), torch.get_default_device(),
            torch._C._len_torch_function_stack(), torch._C._len_torch_dispatch_stack())


class FakeMemo:
    def __init__(self, fake_mode):
        self.mode = fake_mode
        self.table = {}
        self.hits = 0

    # --- keys ------------------------------------------------------------------
    def _tensor(self, t):
        if type(t) is not FakeTensor or t.fake_mode is not self.mode or t.constant is not None \
                or t.layout is not torch.strided:
            raise _NotKeyable
        return ("T", t.dtype, t.device, t.requires_grad, t.is_inference(), t.is_conj(),
                t.is_neg(), tuple(_dim(d) for d in t.shape), tuple(_dim(d) for d in t.stride()),
                _dim(t.storage_offset()))

    def _value(self, v):
        t = type(v)
        if t is FakeTensor:
            return self._tensor(v)
        if t in _ATOMS:
            return (t, v)
        if t in _SYM:
            return (t, v.node.expr)
        if t is tuple or t is list or t is torch.Size:
            return (t, tuple(self._value(x) for x in v))
        if t is slice:
            return (t, self._value(v.start), self._value(v.stop), self._value(v.step))
        if v is Ellipsis:
            return ("...",)
        raise _NotKeyable

    def key(self, kind, target, args, kwargs, symbols):
        """A hashable key for this call, or None when it is not memoizable."""
        if not _trusted(kind, target):
            return None
        try:
            return (kind, target, symbols, _global_state(),
                    tuple(self._value(a) for a in args),
                    tuple((k, self._value(v)) for k, v in kwargs.items()))
        except (_NotKeyable, TypeError):       # TypeError: an unhashable target
            return None

    # --- entries ---------------------------------------------------------------
    def replay(self, key, builder):
        spec = self.table.get(key)
        if spec is None or spec is _NEGATIVE:
            return None
        made = self._build(spec, builder)
        self.hits += 1
        return made[0] if spec[0] is None else spec[0](made)

    def _build(self, spec, builder):
        made = []
        with self.mode, builder._dispatcher():
            for size, stride, dtype, device, view in spec[1]:
                if view is None:
                    made.append(torch.empty_strided(size, stride, dtype=dtype, device=device))
                else:               # a view of a base the op made (F.linear on 3-d input)
                    base = torch.empty_strided(view[0], view[1], dtype=dtype, device=device)
                    made.append(base.as_strided(size, stride, view[2]))
        return made

    def store(self, key, result, inputs, builder, ok):
        """After the op ran: remember how to rebuild its result, once checked to rebuild it
        exactly; else remember that this key is not memoizable."""
        if key in self.table:
            return
        spec = self._spec(result, inputs) if ok else None
        if spec is not None:
            outs = [result] if spec[0] is None else list(result)
            try:
                made = self._build(spec, builder)
            except Exception:  # noqa: BLE001 -- whatever fails here, the key is not memoized
                made = None
            if made is None or [self._meta(t) for t in made] != [self._meta(t) for t in outs]:
                spec = None
        self.table[key] = _NEGATIVE if spec is None else spec

    def _meta(self, t):
        try:
            nbytes = t.untyped_storage().nbytes()
            base = self._tensor(t._base) if t._is_view() else None
            return (type(t), self._tensor(t), _dim(nbytes), base)
        except _NotKeyable:
            return None

    def _spec(self, result, inputs):
        if type(result) is FakeTensor:
            container, outs = None, [result]
        elif type(result) in (tuple, list) and result and all(type(t) is FakeTensor for t in result):
            container, outs = type(result), list(result)
        else:
            return None
        taken = {_storage(t) for t in inputs}
        specs = []
        for t in outs:
            if t.fake_mode is not self.mode or t.constant is not None or t.requires_grad \
                    or t.layout is not torch.strided or t.is_conj() or t.is_neg():
                return None
            view = None
            s = _storage(t)
            if s is None or s in taken:
                return None
            taken.add(s)
            if t._is_view():
                b = t._base
                if type(b) is not FakeTensor or b._is_view() or b.is_conj() or b.is_neg() \
                        or _dim_or_none(b.storage_offset()) != 0:
                    return None
                view = (tuple(b.shape), tuple(b.stride()), t.storage_offset())
            elif _dim_or_none(t.storage_offset()) != 0:
                return None
            specs.append((tuple(t.shape), tuple(t.stride()), t.dtype, t.device, view))
        return container, specs


def _dim_or_none(x):
    try:
        return _dim(x)
    except _NotKeyable:
        return None


def _storage(t):
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, TypeError):
        return None

