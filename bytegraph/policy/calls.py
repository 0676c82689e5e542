"""What a call means: the policy tables the tracer consults for functions and classes.

- torch callables (torch.*, torch.nn.functional.*, Tensor methods, torch._C ops)
  become graph nodes (TorchFnValue) -- or trace-time constants when they only
  answer a metadata question;
- functions with state-changing effects at trace time (seeding, set_* global
  switches, I/O) are refused with a reason;
- `allow_in_graph` functions become single graph nodes; `disable`d and
  `disallow_in_graph` functions stop the trace;
- everything else written in Python is inlined.

Classes: `construct` builds instances of user classes (inlining __init__),
namedtuples, context managers (grad mode, autocast), and builtin types.
"""
import collections
import contextlib
import dataclasses
import functools
import inspect
import types
import weakref

import torch

from ..exc import Unsupported, UserError
from ..sources import ObjectSource, AttrSource
from ..values.base import Value, RealCallableValue, ConstValue, NONE, const, wrap, register_wrapper
from ..values.containers import TupleValue
from ..values.tensor import TensorValue, graph_call
from ..values.symbolic import sym_tensor
from . import stdlib, breaks, vmap, pytrees
from .builtins import BuiltinValue, BUILTINS
from ..sources import CallSource
from ..values.containers import DictValue
from ..values.functions import BoundMethodValue, PartialValue, UserFnValue
from ..values.objects import ClassValue, ModuleValue, NewObjectValue, _MISSING, bind_class_attr, static_lookup, numpy_float
from ..values.lookup import class_lookup, _member_source

# --------------------------------------------------------------------------
# user registries (bytegraph.allow_in_graph / disallow_in_graph / disable)

class WeakIdTable:
    """A set of objects matched by identity that does not keep them alive: dropping a function
    frees its entry (a weakref callback removes it). Objects that cannot be weakly referenced
    (builtin functions such as torch.sin) are held strongly; they live as long as their module."""
    __slots__ = ("_refs",)

    def __init__(self):
        self._refs = {}                 # id(obj) -> weakref.ref(obj) | a callable returning obj

    def add(self, obj):
        key = id(obj)
        try:
            ref = weakref.ref(obj, functools.partial(self._forget, key))
        except TypeError:
            ref = functools.partial(_identity, obj)
        self._refs[key] = ref

    def _forget(self, key, ref):
        if self._refs.get(key) is ref:   # not a newer object that took the same id
            del self._refs[key]

    def discard(self, obj):
        if obj in self:
            del self._refs[id(obj)]

    def __contains__(self, obj):
        ref = self._refs.get(id(obj))
        return ref is not None and ref() is obj

    def __len__(self):
        return len(self._refs)


def _identity(obj):
    return obj


def _in(table, fn):
    return fn in table


_allowed = WeakIdTable()
_disallowed = WeakIdTable()
_disabled = WeakIdTable()


def _register(api, fn, into, out_of):
    if isinstance(fn, (list, tuple)):       # as torch._dynamo: each element, a list back
        return [_register(api, f, into, out_of) for f in fn]
    if not callable(fn):
        raise TypeError(f"{api} expects a callable (or a list of them), got {type(fn).__name__}")
    into.add(fn)
    out_of.discard(fn)
    return fn


def allow_in_graph(fn):
    return _register("allow_in_graph", fn, _allowed, _disallowed)


def disallow_in_graph(fn):
    return _register("disallow_in_graph", fn, _disallowed, _allowed)


def mark_disabled(fn):
    _disabled.add(fn)


# --------------------------------------------------------------------------
# torch functions

_COMPILING_FNS = {"torch.compiler.is_compiling", "torch.compiler.is_dynamo_compiling",
                  "torch._dynamo.external_utils.is_compiling", "torch._utils.is_compiling",
                  "torch._dynamo.is_compiling"}
_NOT_SCRIPTING = {"torch._jit_internal.is_scripting", "torch.jit.is_tracing",
                  "torch._C._get_tracing_state", "torch.jit._trace.is_tracing"}
_REFUSED_PREFIXES = ("set_", "_set_", "manual_seed", "seed", "initial_seed", "use_deterministic",
                     "get_rng_state", "set_rng_state",
                     "save", "load", "_log_api_usage", "set_default", "empty_cache")
_DLPACK = ("from_dlpack", "_from_dlpack", "to_dlpack", "_to_dlpack")
_INLINED_TORCH_MODULES = ("torch.nn.modules", "torch.nn.utils.parametriz", "torch.utils._contextlib",
                          "torch.nn.parameter", "torch._tensor", "torch.overrides", "torch.autograd.grad_mode",
                          "torch.amp.autocast_mode", "torch._higher_order_ops.associative_scan",
                          "torch.distributions.")


def _qualname(fn):
    return f"{getattr(fn, '__module__', None) or ''}.{getattr(fn, '__qualname__', getattr(fn, '__name__', ''))}"


def is_torch_op(fn):
    objclass = getattr(fn, "__objclass__", None)
    if objclass is not None and isinstance(objclass, type) and issubclass(objclass, torch._C.TensorBase):
        return True
    mod = getattr(fn, "__module__", None) or ""
    if not (mod == "torch" or mod.startswith("torch.")):
        return False
    if isinstance(fn, types.FunctionType) and mod.startswith(_INLINED_TORCH_MODULES):
        return False
    return True


class TorchFnValue(RealCallableValue):
    """A torch callable; calling it records a graph node (or answers a metadata query)."""

    def call(self, tx, args, kwargs):
        name = getattr(self.fn, "__name__", "")
        if self.fn is torch.vmap:
            return vmap.make_vmap(tx, args, kwargs)
        if tx.getitem_to_index:
            vmap.check_mode_query(tx, self.fn)
        if type(self.fn) is types.FunctionType and self.fn in pytrees.MODELLED:
            r = pytrees.modelled_call(tx, self.fn, args, kwargs)
            if r is not None:
                return r
        if name.startswith(_REFUSED_PREFIXES) and not isinstance(getattr(self.fn, "__self__", None),
                                                                  torch._C.TensorBase):
            raise Unsupported(f"torch function {_qualname(self.fn)} changes global state",
                              kind="torch_global_state")
        if _in(_disallowed, self.fn):
            raise Unsupported(f"{_qualname(self.fn)} is disallowed in the graph", kind="disallowed")
        if name in _DLPACK:
            # a DLPack capsule is consumed by its first reader: a node taking it would read one
            # the fake run (or the previous call) consumed already, a crash
            raise Unsupported(f"{_qualname(self.fn)}: a DLPack capsule is read once", kind="dlpack")
        if isinstance(self.fn, types.FunctionType) and inspect.isgeneratorfunction(inspect.unwrap(self.fn)):
            # a generator (torch.backends.cudnn.flags: a @contextmanager context) made at trace
            # time would be one object shared by every call: the call runs in Python
            raise Unsupported(f"{_qualname(self.fn)} makes a generator", kind="torch_generator")
        if any(self.fn is f for f in _DATA_DTYPE) and _holds_numpy_float(list(args) + list(kwargs.values())):
            raise Unsupported(f"a numpy float64 in the data of {_qualname(self.fn)} (its dtype "
                              f"comes from the data: float64, not the default)", kind="graph_arg")
        if self.fn is torch.tensor:
            r = sym_tensor(tx, args, kwargs)       # torch.tensor(x.shape[0]) stays symbolic
            if r is not None:
                return r
        if self.fn is torch.nn.functional.dropout or self.fn is torch.dropout:
            same = _dropout_is_identity(args, kwargs, self.fn is torch.dropout)
            if same is not None:
                return same
        objclass = getattr(self.fn, "__objclass__", None)
        if objclass is not None and args and isinstance(args[0], TensorValue):
            return args[0].call_method(tx, name, list(args[1:]), kwargs)
        return graph_call(tx, "call_function", self.fn, list(args), kwargs)

    def __repr__(self):
        return f"TorchFn({_qualname(self.fn)})"


_DROPOUT_SIGNATURE = inspect.signature(torch.nn.functional.dropout)


def _dropout_is_identity(args, kwargs, aten=False):
    """`F.dropout(x, p, training=False)`, `F.dropout(x, 0.0)` and `torch.dropout(x, p, False)`
    (aten's op, which F.dropout calls) hand back `x` itself in eager: aten's dropout returns its
    input when not training, when p == 0 or when `x` has no element, in place or not, writing
    nothing. That Value, with no node, or None. The fake run cannot say so under a ShapeEnv (the
    python dispatcher's decomposition returns `input.clone()`), so a symbolic trace would make a
    copy where eager has the same tensor (a write into the result then missed `x`: red team 14
    for `torch.dropout`), and its graph would differ from a static trace's. `aten`: the call is
    `torch.dropout(input, p, train)` (no defaults, no `inplace`)."""
    if aten:
        names = ("input", "p", "train")
        if len(args) > 3 or any(k not in names for k in kwargs):
            return None
        bound = dict(zip(names, args))
        if any(k in bound for k in kwargs):
            return None
        bound.update(kwargs)
        if len(bound) != 3:
            return None
        x, p, training, inplace = bound["input"], bound["p"], bound["train"], False
    else:
        try:
            bound = _DROPOUT_SIGNATURE.bind(*args, **kwargs)
        except TypeError:
            return None
        bound.apply_defaults()
        x, p, training, inplace = (bound.arguments[k] for k in ("input", "p", "training", "inplace"))
    if not isinstance(x, TensorValue) or x.cls not in (torch.Tensor, torch.nn.Parameter):
        return None
    number = numpy_float(p)         # a numpy float64 (an argument, a config's attribute)
    p = p.value if isinstance(p, ConstValue) else p if number is None else number
    training = training.value if isinstance(training, ConstValue) else training
    inplace = inplace.value if isinstance(inplace, ConstValue) else inplace
    if type(p) not in (int, float) and type(training) is bool and type(inplace) is bool \
            and not isinstance(p, TensorValue):
        # a symbolic float (an argument, under the eager and aten backends): whether eager hands
        # back `x` depends on its value, which the decomposition's branch does not model (it
        # copies): run the call in Python (red team 14)
        raise Unsupported("dropout with a probability that is not a constant: whether it returns "
                          "its input depends on the value", kind="graph_arg")
    if type(p) not in (int, float) or type(training) is not bool or type(inplace) is not bool \
            or not 0.0 <= p <= 1.0:
        return None
    empty = any(type(d) is int and d == 0 for d in x.fake.shape)
    return x if not training or p == 0 or empty else None


# torch functions that infer the dtype from the data: a numpy float64 there gives float64 where
# the Python float it otherwise stands for (values/objects.py: numpy_float) gives the default
_DATA_DTYPE = (torch.tensor, torch.as_tensor, torch.asarray)


def _holds_numpy_float(values):
    for v in values:
        if numpy_float(v) is not None:
            return True
        items = getattr(v, "items", None)
        if isinstance(items, list) and _holds_numpy_float(items):
            return True
        if isinstance(items, dict) and _holds_numpy_float(list(items.values())):
            return True
    return False


class AllowedFnValue(TorchFnValue):
    """A user function marked allow_in_graph: one opaque node."""

    def call(self, tx, args, kwargs):
        return graph_call(tx, "call_function", self.fn, list(args), kwargs)


def classify_function(tx, fn, source):
    """Python function -> special Value, or None to inline it as user code."""
    if _in(_disabled, fn):
        return DisabledFnValue(fn, source)
    state = getattr(fn, "__bytegraph_state__", None)
    if state is not None:               # a compiled function called from traced code: inline it
        return UserFnValue(state.fn, None)
    if stdlib.is_marked_constant(fn):
        return _MarkedConstantValue(fn)
    if fn is torch.nn.Module.to:
        return _ModuleToValue(fn, source)
    return _special_callable(fn)


class _ModuleToValue(Value):
    """nn.Module.to(...) that converts nothing: every parameter and buffer of the module tree
    already has the requested dtype (floating ones) and device. Eager's `_apply` then hands each
    tensor back to itself (`param.data = param`, `_buffers[k] = buf`): no object, version or
    value changes, so the call is the module itself. Relied on, and guarded: the tensors' dtype
    and device (their tensor guards), the module tree (its structure guards), each parameter's
    `.grad is None`, and the two torch.__future__ conversion flags off. Anything else (a real
    conversion, memory_format, grads present) inlines Module.to as user code."""

    def __init__(self, fn, source):
        self.fn = fn
        self.source = source

    def python_type(self):
        return type(self.fn)

    def call(self, tx, args, kwargs):
        r = self._noop(tx, args, kwargs)
        if r is not None:
            return r
        return UserFnValue(self.fn, self.source).call(tx, args, kwargs)

    def _noop(self, tx, args, kwargs):
        if not args or not isinstance(args[0], ModuleValue):
            return None
        if not all(v.is_const() for v in list(args[1:]) + list(kwargs.values())):
            return None
        try:
            device, dtype, _, fmt = torch._C._nn._parse_to(*[v.as_python() for v in args[1:]],
                                                           **{k: v.as_python() for k, v in kwargs.items()})
        except Exception:
            return None
        if fmt is not None or (dtype is not None and not dtype.is_floating_point):
            return None
        if torch.__future__.get_overwrite_module_params_on_conversion() or \
                torch.__future__.get_swap_module_params_on_conversion():
            return None
        unchanged = self._tree_unchanged(tx, args[0], device, dtype, [])
        if unchanged is None:
            return None
        cg = tx.cg
        for q in (torch.__future__.get_overwrite_module_params_on_conversion,
                  torch.__future__.get_swap_module_params_on_conversion):
            tx.guards.add_code(f"{cg.const(q, 'query')}() is False", None, "torch_query", False,
                               f"{cg.const(q, 'query')}()", f"torch.__future__.{q.__name__}()")
        for t in unchanged:                      # parameters whose .grad _apply would convert
            e = t.source.expr(cg)
            tx.guards.add_code(f"{e}.grad is None", t.source, "tensor_meta", None,
                               f"{tx.cg.bound(t.source)}.grad", ".grad")
        return args[0]

    def _tree_unchanged(self, tx, mod, device, dtype, params):
        """The parameters of the tree (for their grad guards) if no tensor changes, else None."""
        from ..values.modules import _children
        from ..values.objects import traced_dict
        dicts = [mod.obj.__dict__.get(n) for n in ("_modules", "_parameters", "_buffers")]
        if any(not isinstance(d, dict) or traced_dict(tx, d) is not None for d in dicts):
            return None                   # not plain module dicts, or the trace wrote into them
        for _, child in _children(tx, mod):
            if child.is_const() and child.as_python() is None:
                continue
            if not isinstance(child, ModuleValue) or \
                    self._tree_unchanged(tx, child, device, dtype, params) is None:
                return None
        ps = _children(tx, mod, "_parameters")
        for i, (_, t) in enumerate(ps + _children(tx, mod, "_buffers")):
            if t.is_const() and t.as_python() is None:
                continue
            if not isinstance(t, TensorValue) or t.source is None or t.real is None:
                return None
            f = t.fake
            if device is not None and f.device != device:
                return None
            if dtype is not None and (f.is_floating_point() or f.is_complex()) and f.dtype != dtype:
                return None
            if i < len(ps):
                if t.real.grad is not None:
                    return None
                params.append(t)
        return params


class DisabledFnValue(Value):
    """A function wrapped by bytegraph.disable (or named by disallow_in_graph): calling it is
    a graph break."""

    def __init__(self, fn, source, reason=None, kind="disabled"):
        self.fn = fn
        self.source = source
        self.reason = reason or f"call to {_qualname(fn)}, which is wrapped by bytegraph.disable"
        self.kind = kind

    def python_type(self):
        return type(self.fn)

    def call(self, tx, args, kwargs):
        raise Unsupported(self.reason, kind=self.kind,
                          hint="it always runs eagerly (bytegraph.disable / disallow_in_graph)")

    def reconstruct(self, cg):
        return self.source.expr(cg) if self.source is not None else cg.const(self.fn, self.fn.__name__)


class _MarkedConstantValue(RealCallableValue):
    """A function its library declares constant for the process (see stdlib.is_marked_constant)."""

    def call(self, tx, args, kwargs):
        return stdlib.call_marked_constant(tx, self.fn, args, kwargs)


def user_registered(fn):
    """Is fn named by allow_in_graph / disallow_in_graph / disable?"""
    return _in(_allowed, fn) or _in(_disallowed, fn) or _in(_disabled, fn)


def _special_callable(fn):
    """The Value for a callable with special meaning (user registries, torch ops, compile-time
    queries), or None."""
    if _in(_disallowed, fn):
        return DisabledFnValue(fn, None, f"{_qualname(fn)} is disallowed in the graph", "disallowed")
    if _in(_allowed, fn):
        return AllowedFnValue(fn)
    q = _qualname(fn)
    if q in _COMPILING_FNS:
        return _ConstFn(True)
    if q in _NOT_SCRIPTING:
        return _ConstFn(False if "tracing_state" not in q else None)
    if fn in breaks.OVERRIDES:
        return None             # inlined as a Python function, where its override runs
    if is_torch_op(fn):
        return TorchFnValue(fn)
    return None


class _ConstFn(Value):
    def __init__(self, result):
        self.result = result

    def call(self, tx, args, kwargs):
        return const(self.result)


def _signature_override(tx, fn_value, args, kwargs):
    """inspect.signature of a function the trace already guards is a fixed fact: compute it."""
    target = args[0]
    kw = {k: v.as_python() for k, v in kwargs.items()}
    if isinstance(target, BoundMethodValue) and not isinstance(target.fn, str):
        sig = inspect.signature(target.fn.as_python(), **kw)     # a bound method drops `self`
        return ConstValue(sig.replace(parameters=list(sig.parameters.values())[1:]))
    return ConstValue(inspect.signature(target.as_python(), **kw))


def _fields_override(tx, fn_value, args, kwargs):
    """dataclasses.fields(x): a fixed fact of x's class, which the trace already knows exactly
    (a trace-created instance, a type-guarded object, or an identity-guarded class)."""
    target = args[0]
    cls = target.cls if isinstance(target, ClassValue) else target.python_type()
    try:
        fields = dataclasses.fields(cls)
    except TypeError as e:
        raise UserError(e)
    return TupleValue([ConstValue(f) for f in fields])


_OVERRIDES = {inspect.signature: _signature_override, dataclasses.fields: _fields_override,
              **stdlib.OVERRIDES, **breaks.OVERRIDES}


def lookup_override(fn):
    return _OVERRIDES.get(fn)


def _wrap_builtin(tx, fn, source):
    owner = getattr(fn, "__self__", None)
    if source is not None and type(owner) in (list, dict, set) and type(fn) is types.BuiltinMethodType:
        # a container's bound method handed over by a graph break (`acc.append` on the stack)
        tx.guards.add_type(source, type(fn))
        tx.guards.add_code(f"{source.expr(tx.cg)}.__name__ == {fn.__name__!r}", source, "method_name", fn.__name__)
        return BoundMethodValue(wrap(tx, owner, AttrSource(source, "__self__")), fn.__name__)
    if source is not None and type(fn) is types.BuiltinMethodType and isinstance(owner, torch.Tensor) and \
            type(owner) in (torch.Tensor, torch.nn.Parameter) and getattr(torch.Tensor, fn.__name__, None) is not None:
        # a tensor's bound method handed over by a graph break (`x.add` on the stack)
        tx.guards.add_type(source, type(fn))
        tx.guards.add_code(f"{source.expr(tx.cg)}.__name__ == {fn.__name__!r}", source, "method_name", fn.__name__)
        return wrap(tx, owner, AttrSource(source, "__self__")).getattr(tx, fn.__name__)
    if source is not None and type(fn) is types.BuiltinMethodType and owner is not None and \
            not isinstance(owner, types.ModuleType):
        # a C method bound to an object (`np.add.reduce` handed over by a graph break): a new
        # one per read, so guarded by its owner and name rather than by its identity
        tx.guards.add_type(source, type(fn))
        tx.guards.add_code(f"{source.expr(tx.cg)}.__name__ == {fn.__name__!r}", source, "method_name", fn.__name__)
        if isinstance(owner, BaseException):      # a new one per call (`e.add_note` at a stop)
            tx.guards.add_type(AttrSource(source, "__self__"), type(owner))
            v = BuiltinValue(fn, source)
            v.by_source = True
            return v
        tx.guards.add_identity(AttrSource(source, "__self__"), owner)
    elif source is not None:
        tx.guards.add_identity(source, fn)
    special = _special_callable(fn)
    if special is not None:
        return special
    return BuiltinValue(fn, source)


for _t in (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
           types.MethodWrapperType, types.ClassMethodDescriptorType, type(torch.Tensor.add),
           torch._ops.OpOverloadPacket, torch._ops.OpOverload):
    register_wrapper(_t)(_wrap_builtin)


class WeakRefValue(Value):
    """A weakref.ref from the caller's world; calling it dereferences (guarded as ref() is obj)."""

    def __init__(self, ref, source):
        self.ref = ref
        self.source = source

    def call(self, tx, args, kwargs):
        return wrap(tx, self.ref(), CallSource(self.source))


@register_wrapper(weakref.ReferenceType)
def _wrap_weakref(tx, ref, source):
    if source is None:
        source = ObjectSource(ref, "weakref")
    tx.guards.add_type(source, type(ref))
    return WeakRefValue(ref, source)


# --------------------------------------------------------------------------
# context managers

class GradModeCtx(Value):
    """torch.no_grad() / enable_grad() / set_grad_enabled(mode)."""

    def __init__(self, mode, entered_on_init=False, prev=None):
        self.mode = mode
        self.prev = prev
        self.entered_on_init = entered_on_init
        self.node = None          # set_grad_enabled(mode)'s switch, made when it was called
        self.segment = None       # len(tx.splits) when it switched (policy/checks.py)

    def python_type(self):
        return torch.set_grad_enabled if self.entered_on_init else torch.no_grad

    def enter(self, tx):
        if not self.entered_on_init:
            self.prev = torch.is_grad_enabled()
            tx.set_grad_mode(self.mode)
            self.segment = len(tx.splits)     # the graph it was entered in (policy/checks.py)
        elif self.node is not None:      # `with torch.set_grad_enabled(m):` scopes its switch
            self.node.meta["bytegraph_scoped"] = True
        return NONE

    def exit(self, tx):
        tx.set_grad_mode(self.prev)
        return NONE

    def call(self, tx, args, kwargs):   # used as a decorator: @torch.no_grad()
        fn = args[0]
        return _DecoratedFn(self, fn)


class _DecoratedFn(Value):
    def __init__(self, ctx, fn):
        self.ctx = ctx
        self.fn = fn

    def call(self, tx, args, kwargs):
        ctx = GradModeCtx(self.ctx.mode)
        ctx.enter(tx)
        out = self.fn.call(tx, args, kwargs)
        ctx.exit(tx)
        return out


class AutocastCtx(Value):
    def __init__(self, args):
        self.args = args       # (device_type, dtype, enabled, cache_enabled) as Python values
        self.real = None
        self.node = None
        self.segment = None    # len(tx.splits) when entered; None once re-entered after a break

    def python_type(self):
        return torch.autocast

    def enter(self, tx):
        device_type, dtype, enabled, cache = self.args
        self.real = torch.autocast(device_type, dtype=dtype, enabled=enabled, cache_enabled=cache)
        self.real.__enter__()
        tx.state_stack.append(lambda: self.real.__exit__(None, None, None))
        tx.autocasts.append(self)
        self.node = tx.graph.create("call_function", torch.amp.autocast_mode._enter_autocast,
                                    list(self.args), {}, None, counts=False)
        self.segment = len(tx.splits)         # the graph it was entered in (policy/checks.py)
        return NONE

    def exit_node(self, tx):
        tx.graph.create("call_function", torch.amp.autocast_mode._exit_autocast, [self.node], {}, None,
                        counts=False)

    def enter_node(self, tx):
        """Open the region again in the graph after a graph break (policy/breaks.py)."""
        self.node = tx.graph.create("call_function", torch.amp.autocast_mode._enter_autocast,
                                    list(self.args), {}, None, counts=False)
        self.segment = None

    def exit(self, tx):
        self.exit_node(tx)
        undo = tx.state_stack.pop()
        undo()
        tx.autocasts.remove(self)
        return NONE


def _autocast_args(device_type, dtype=None, enabled=True, cache_enabled=None):
    if dtype is None:
        dtype = torch.get_autocast_dtype(device_type)
    if cache_enabled is None:
        cache_enabled = torch.is_autocast_cache_enabled()
    return (device_type, dtype, enabled, cache_enabled)


class NullCtx(Value):
    def enter(self, tx):
        return NONE

    def exit(self, tx):
        return NONE


def _make_grad_ctx(mode):
    return lambda tx, args, kwargs: GradModeCtx(mode)


def _make_set_grad(tx, args, kwargs):
    mode = (args[0] if args else kwargs["mode"]).as_python()
    ctx = GradModeCtx(bool(mode), entered_on_init=True, prev=torch.is_grad_enabled())
    ctx.node = tx.set_grad_mode(bool(mode), scoped=False)    # a plain call: eager keeps it
    ctx.segment = len(tx.splits)
    return ctx


def _make_autocast(tx, args, kwargs):
    pargs = [a.as_python() for a in args]
    pkw = {k: v.as_python() for k, v in kwargs.items()}
    return AutocastCtx(_autocast_args(*pargs, **pkw))


def _make_cpu_autocast(tx, args, kwargs):
    pkw = {k: v.as_python() for k, v in kwargs.items()}
    pargs = [a.as_python() for a in args]
    return AutocastCtx(_autocast_args("cpu", *pargs, **pkw))


def _make_dict_like(cls):
    def make(tx, args, kwargs):
        factory = None
        if cls is collections.defaultdict:
            factory = args[0] if args else None
            if factory is not None and factory.is_const() and factory.as_python() is None:
                factory = None
            args = args[1:]
        d = BUILTINS[dict](tx, *args, **kwargs)
        return DictValue(d.items, cls=cls, default_factory=factory)
    return make


def _make_partial(tx, args, kwargs):
    func = args[0]
    if isinstance(func, PartialValue):      # partial(partial(f, a), b) is partial(f, a, b)
        return PartialValue(func.func, func.args + list(args[1:]), {**func.kwargs, **kwargs})
    return PartialValue(func, args[1:], kwargs)


def _constructed_by_torch_only(cls):
    """Does building an instance run only torch.nn's own code? (torch.nn classes, and user
    subclasses such as transformers' activation modules that define no __init__/__new__/
    __setattr__ of their own.) Then building it for real at trace time runs no user code."""
    for k in cls.__mro__:
        if (k.__module__ or "").startswith("torch.nn") or k is object:
            continue
        if any(n in k.__dict__ for n in ("__init__", "__new__", "__setattr__", "__post_init__")):
            return False
    return True


def _make_stateless_module(tx, cls_value, args, kwargs):
    """A torch.nn module built inside forward (nn.ReLU()(x)): build it for real once; only
    modules with no parameters or buffers qualify, so sharing the instance is invisible."""
    mod = make_module_again(cls_value.cls, [a.as_python() for a in args],
                            {k: v.as_python() for k, v in kwargs.items()})
    if mod is None:
        raise Unsupported(f"creating {cls_value.cls.__name__} (which has parameters) inside a "
                          "compiled region", kind="module_construct")
    tx.own(mod)         # nothing else holds it: the entry must keep it alive
    return ModuleValue(mod, ObjectSource(mod, cls_value.cls.__name__))


# stateless modules a trace built for real -> (class, args, kwargs) they were built with
MADE_MODULES = weakref.WeakKeyDictionary()


def make_module_again(cls, args, kwargs):
    """Build a stateless module the way a trace does (also warm start's recipe "made_module"):
    without consuming eager's random numbers, recorded in MADE_MODULES; None when the module
    has parameters or buffers."""
    if not (isinstance(cls, type) and issubclass(cls, torch.nn.Module) and _constructed_by_torch_only(cls)):
        raise TypeError(f"{cls!r} is not a module class a trace builds")
    rng = torch.random.get_rng_state()
    try:
        mod = cls(*args, **kwargs)
    finally:        # a refused module's initialisation must not consume eager's random numbers
        torch.random.set_rng_state(rng)
    if any(True for _ in mod.parameters()) or any(True for _ in mod.buffers()):
        return None
    MADE_MODULES[mod] = (cls, tuple(args), dict(kwargs))
    return mod


class GenCtxValue(Value):
    """A @contextlib.contextmanager context: enter runs the generator to its yield,
    exit runs it to the end."""

    def __init__(self, gen, func=None, args=None, kwargs=None):
        self.gen = gen
        self.func, self.args, self.kwargs = func, args, kwargs   # what contextlib made it from

    def reconstruct(self, cg):
        """The real context manager, over the real generator in the traced one's state
        (runtime/resume.py suspended_generator): a graph break inside its with-block hands the
        resume function its bound __exit__ (policy/breaks.py exit_of_modelled)."""
        if self.func is None:
            return super().reconstruct(cg)
        from ..runtime.resume import handoff
        return f"{handoff(self, cg)}.context()"

    def enter(self, tx):
        if getattr(self, "frozen_by_break", False):
            raise Unsupported("entering a @contextmanager context that Python code received at a "
                              "graph break", kind="generator_materialized")
        v = self.gen.next()
        if v is None:
            raise UserError(RuntimeError("generator didn't yield"))
        return v

    def exit(self, tx, exc=None):
        """contextlib's __exit__: with no exception (`exc` None) the generator runs to its end;
        with one, it is thrown in at the yield (the generator's handlers run): the with-block's
        exception is suppressed when the generator then returns, left to go on when it raises
        it again, replaced when it raises another."""
        if exc is None or exc.is_const() and exc.as_python() is None:
            if self.gen.next() is not None:
                raise UserError(RuntimeError("generator didn't stop"))
            return const(False)
        from ..values.objects import ExceptionInstanceValue
        f = self.gen.frame
        if not isinstance(exc, ExceptionInstanceValue) or not self.gen.started or f.done or not f.paused \
                or getattr(self.gen, "frozen_by_break", False):
            raise Unsupported(f"throwing {exc} into a @contextmanager generator", kind="generator_throw")
        err = UserError(exc.exc)
        err.value = exc
        f.paused = False
        if not tx.catch(f, f.inst, err):
            f.done = True                    # not handled: it leaves the generator as it came
            return const(False)
        try:
            tx.run_nested(f)
        except UserError as e:
            if e.exc is exc.exc:             # raised again: __exit__ returns False
                return const(False)
            if isinstance(e.exc, (StopIteration, RuntimeError)):
                raise Unsupported("a @contextmanager generator raising StopIteration or RuntimeError "
                                  "after throw()", kind="generator_throw")
            raise
        if not f.done:     # eager raises RuntimeError and leaves the generator to the collector,
            raise Unsupported("a @contextmanager generator that yields again after throw()",   # which
                              kind="generator_throw")          # closes it (its finally) at a time we cannot know
        return const(True)


def _make_gen_ctx(tx, args, kwargs):
    func, fargs, fkwargs = args
    return GenCtxValue(func.call(tx, fargs.unpack(tx), dict(fkwargs.items)), func, fargs, fkwargs)


def _generator_context(func, args, kwds, gen):
    """The object `contextlib.contextmanager(func)(*args, **kwds)` makes, over `gen` instead of
    a new generator: the attributes its __init__ sets (gen, func, args, kwds, __doc__); `args`
    None: entered already (its __enter__ deleted func, args and kwds)."""
    cls = contextlib._GeneratorContextManager
    cm = cls.__new__(cls)
    doc = getattr(func, "__doc__", None)
    vars(cm).update(gen=gen, __doc__=cls.__doc__ if doc is None else doc)
    if args is not None:
        vars(cm).update(func=func, args=args, kwds=kwds)
    return cm


_CONSTRUCTORS = {
    **stdlib.CONSTRUCTORS,
    contextlib._GeneratorContextManager: _make_gen_ctx,
    collections.OrderedDict: _make_dict_like(collections.OrderedDict),
    collections.defaultdict: _make_dict_like(collections.defaultdict),
    functools.partial: _make_partial,
    torch.no_grad: _make_grad_ctx(False),
    torch.enable_grad: _make_grad_ctx(True),
    torch.set_grad_enabled: _make_set_grad,
    torch.autocast: _make_autocast,
    torch.amp.autocast: _make_autocast,
    torch.cpu.amp.autocast: _make_cpu_autocast,
}


# --------------------------------------------------------------------------
# constructing classes

_IMMUTABLE_TORCH_CLASSES = (torch.Size, torch.device, torch.dtype, torch.finfo, torch.iinfo)


def construct(tx, cls_value, args, kwargs):
    cls = cls_value.cls
    # guarded: a metaclass gaining __call__ later must not reuse this entry
    if class_lookup(tx, type(cls), "__call__")[0] is not type.__call__ and not (
            type(cls).__module__ or "").startswith(("torch", "abc", "enum", "typing")):
        raise Unsupported(f"calling {cls.__name__}, whose metaclass overrides __call__", kind="metaclass")
    abstract = getattr(cls, "__abstractmethods__", None)
    if abstract:                    # CPython's own message, word for word
        plural = "s" if len(abstract) > 1 else ""
        raise UserError(TypeError(f"Can't instantiate abstract class {cls.__name__} with abstract "
                                  f"method{plural} {', '.join(sorted(abstract))}"))
    ctor = _CONSTRUCTORS.get(cls)
    if ctor is not None:
        return ctor(tx, args, kwargs)
    handler = BUILTINS.get(cls)
    if handler is not None:
        return handler(tx, *args, **kwargs)
    if cls in _IMMUTABLE_TORCH_CLASSES or cls in (slice, range, object):
        if cls is object:
            return NewObjectValue(object)
        pargs = [a.as_python() for a in args]
        pkw = {k: v.as_python() for k, v in kwargs.items()}
        try:
            return wrap(tx, cls(*pargs, **pkw), None)
        except Exception as e:
            raise UserError(e)
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):      # namedtuple
        return _construct_namedtuple(tx, cls, args, kwargs)
    if issubclass(cls, torch.nn.Module):
        if _constructed_by_torch_only(cls):
            return _make_stateless_module(tx, cls_value, args, kwargs)
        raise Unsupported(f"creating the module {cls.__name__} inside a compiled region",
                          kind="module_construct")
    if issubclass(cls, BaseException):
        if _python_init(cls):       # its __init__ / __new__ would have to run (its effects too)
            raise Unsupported(f"constructing {cls.__qualname__} (an exception class with a Python "
                              "__init__ or __new__)", kind="construct")
        return ExceptionValue(cls, args)
    if _is_torch_class(cls):
        if vmap.is_getitem_to_index(cls):
            return vmap.construct_getitem_to_index(tx, cls, args, kwargs)
        if issubclass(cls, torch.Tensor):
            return graph_call(tx, "call_function", cls, _size_args(cls, list(args)), kwargs)
        legacy = _legacy_tensor(tx, cls, args, kwargs)
        if legacy is not None:
            return legacy
        raise Unsupported(f"constructing torch class {cls.__qualname__}", kind="construct")
    # guarded lookups (a class or base gaining __new__ / __init__ later)
    new, new_owner = class_lookup(tx, cls, "__new__")
    if issubclass(cls, dict) and new in (dict.__new__, collections.OrderedDict.__new__):
        obj = stdlib.new_instance(cls)
        init, owner = class_lookup(tx, cls, "__init__")
        if owner in (dict, collections.OrderedDict):
            if args or kwargs:
                obj.dict_items = BUILTINS[dict](tx, *args, **kwargs)
            return obj
        bind_class_attr(tx, obj, cls, "__init__").call(tx, args, kwargs)
        return obj
    if new is not object.__new__ and new is not _MISSING:
        if isinstance(new, staticmethod):
            new = new.__func__
        if cls.__module__ == "builtins" or not isinstance(new, types.FunctionType):
            raise Unsupported(f"constructing {cls.__qualname__} (custom __new__)", kind="construct")
        _member_source(tx, new_owner, "__new__", new_owner.__dict__["__new__"])
        obj = wrap(tx, new, None).call(tx, [cls_value] + list(args), kwargs)
        made = obj.python_type()
        if not (isinstance(made, type) and issubclass(made, cls)):
            return obj          # type.__call__ runs __init__ only on an instance of cls
        if made is not cls:
            raise Unsupported(f"{cls.__qualname__}.__new__ returned an instance of a subclass",
                              kind="construct")
    else:
        if cls.__module__ == "builtins" and cls is not object:
            raise Unsupported(f"constructing builtin {cls.__name__}", kind="construct")
        obj = stdlib.new_instance(cls)
    init = bind_class_attr(tx, obj, cls, "__init__")
    if init is not _MISSING and static_lookup(cls, "__init__")[0] is not object.__init__:
        init.call(tx, args, kwargs)
    return obj


def _legacy_tensor(tx, cls, args, kwargs):
    """torch.IntTensor([16]) (a legacy CPU tensor type over a flat list or tuple of numbers):
    torch.tensor(data, dtype=<its dtype>, device="cpu") in the graph (hf/vits' WaveNet). Other
    forms (sizes, storages, another tensor) are not handled: None."""
    if type(cls) is not torch._C._TensorMeta and type(cls).__name__ != "tensortype":
        return None
    if kwargs or len(args) != 1 or getattr(cls, "is_cuda", True) or getattr(cls, "is_sparse", True):
        return None
    data = args[0]
    items = getattr(data, "items", None)
    if data.python_type() not in (list, tuple) or not isinstance(items, list) or not items:
        return None
    if not all(type(i) is ConstValue and type(i.value) in (int, float) for i in items):
        return None
    from ..values.containers import ListValue
    return graph_call(tx, "call_function", torch.tensor, [ListValue(list(items))],
                      {"dtype": ConstValue(cls.dtype), "device": ConstValue(torch.device("cpu"))})


def _size_args(cls, args):
    """torch.Tensor(torch.Size([4, 3])) is a 4x3 tensor, torch.Tensor((4, 3)) the data [4., 3.]:
    fx keeps a torch.Size argument as a plain tuple, so the node takes its sizes unpacked
    (torch.Tensor(4, 3), the same call). Other tensor classes, and torch.Tensor(torch.Size([]))
    (a 0-d tensor, where torch.Tensor() is an empty one), are refused."""
    if not any(a.python_type() is torch.Size for a in args):
        return args
    items = getattr(args[0], "items", None)
    if type(args[0]) is ConstValue:
        items = [ConstValue(d) for d in args[0].value]
    if cls is torch.Tensor and len(args) == 1 and isinstance(items, list) and items:
        return list(items)
    raise Unsupported(f"{cls.__qualname__}() of a torch.Size (a graph keeps it as a tuple: its "
                      "data)", kind="construct")


def _is_torch_class(cls):
    mod = cls.__module__ or ""
    if mod.startswith("torch.distributions."):
        return False
    return mod == "torch" or mod.startswith("torch.")


def _construct_namedtuple(tx, cls, args, kwargs):
    fields = cls._fields
    defaults = getattr(cls, "_field_defaults", {})
    vals = dict(zip(fields, args))
    for k, v in kwargs.items():
        vals[k] = v
    items = []
    for f in fields:
        if f in vals:
            items.append(vals[f])
        elif f in defaults:
            items.append(wrap(tx, defaults[f], None))
        else:
            raise UserError(TypeError(f"{cls.__name__}() missing argument {f!r}"))
    return TupleValue(items, cls=cls)


def _python_init(cls):
    return any(isinstance(klass.__dict__.get(n), (types.FunctionType, staticmethod, classmethod))
               for klass in cls.__mro__ for n in ("__init__", "__new__"))


class ExceptionValue(Value):
    def __init__(self, cls, args):
        self.cls = cls
        self.args = args

    def python_type(self):
        return self.cls

    def reconstruct(self, cg):
        """A new exception per call (an exception raised out of the compiled function,
        runtime/resume.py raise_stop), made from its arguments as eager makes it (no class of
        it has a Python __init__ / __new__: construct)."""
        return cg.mutable(self, lambda: f"{cg.const(self.cls, self.cls.__name__)}("
                                        + "".join(cg.expr(a) + ", " for a in self.args) + ")")

    def as_exception(self):
        args = [a.as_python() for a in self.args]   # a value the trace cannot know: Unsupported
        try:
            return self.cls(*args)
        except Exception:
            return self.cls()
