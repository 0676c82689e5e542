"""Tensor values and the one path by which tensor work enters the graph.

TensorValue = (fx Node, FakeTensor). `graph_call` is the single door into the
graph: it converts Value arguments to fx/fake arguments, runs the target on the
fakes, and either creates a node (tensor results) or returns a constant
(metadata results such as `x.dim()` or `torch.is_floating_point(x)`, which are
static facts of the fakes and need no node).

An op whose fake result *is* one of its fake inputs (in-place methods,
`x += 1`, `contiguous()` on a contiguous tensor) returns that input's Value
itself, so Python identity is preserved exactly as in eager. An op that wrote into
one of its arguments (observed on the fakes, see graph/builder.py) is always a node,
even when it returns no tensor.
"""
import operator

import torch
from torch._subclasses.fake_tensor import FakeTensor

from ..exc import Unsupported
from ..graph.builder import check_constants, _collect_fakes, _target_name
from .base import Value, ConstValue, const, register_wrapper, POLICY
from .opaque import producer_chain
from .known import guard_all_roots, known, literal, make_root, mark, read_candidates, roots_of, substitute, taint
from .symbolic import hint, shape_value, has_sym, any_symbolic, wrap_sym, SYM_TYPES, is_symbolic, check_marks, plain


class TensorValue(Value):
    roots = frozenset()           # module-state scalars its value derives from (values/known.py)

    def __init__(self, node, fake, source=None, cls=torch.Tensor, real=None):
        self.node = node
        self.fake = fake
        self.source = source
        self.cls = cls            # the real class: nn.Parameter for parameters, else torch.Tensor
        self.real = real          # the caller's tensor, for inputs

    def python_type(self):
        return self.cls

    def __repr__(self):
        return f"Tensor({self.node.name}, {tuple(self.fake.shape)}, {self.fake.dtype})"

    def fx_arg(self, tx):
        return self.node

    def fake_arg(self, tx):
        return self.fake

    def truth(self, tx):
        c = known(tx, self) if self.roots else literal(tx, self)
        if c is not None:
            return bool(c)
        raise Unsupported("bool() of a tensor depends on its data", kind="data_dependent",
                          hint="branch on tensor metadata (shape, dtype) or use torch.where")

    def unpack(self, tx):
        if self.fake.dim():
            hint(self.fake.shape[0])   # an unbacked size (nonzero(), ...): Unsupported, a graph break
        n = int(self.fake.shape[0]) if self.fake.dim() else None     # a symbolic size specializes
        if tx.graph.marked:
            check_marks(tx, "iterating over the tensor needs its length")
        if n is None:
            raise Unsupported("iterating over a 0-d tensor", kind="iter")
        return [graph_call(tx, "call_function", operator.getitem, [self, ConstValue(i)], {})
                for i in range(n)]

    def getattr(self, tx, name):
        handler = _ATTRS.get(name)
        if handler is not None:
            return handler(tx, self)
        if name in _READS:
            return _TensorRead(self, name)
        if name in _BANNED_METHODS:
            raise Unsupported(f"Tensor.{name}", kind="tensor_method",
                              hint=_BANNED_METHODS[name])
        attr = getattr(torch.Tensor, name, None)
        if attr is None:
            if self.real is not None and name in getattr(self.real, "__dict__", {}):
                raise Unsupported(f"Python attribute {name!r} set on a tensor", kind="tensor_attr")
            if self.source is not None:       # missing now: guard that it stays missing
                tx.guards.add_absent(self.source, {name})
            raise AttributeError(f"'Tensor' object has no attribute {name!r}")
        if callable(attr):
            return TensorMethodValue(self, name)
        if isinstance(attr, property) or type(attr).__name__ == "getset_descriptor":
            return graph_call(tx, "call_function", getattr, [self, ConstValue(name)], {})
        raise Unsupported(f"Tensor attribute {name}", kind="getattr")

    def setattr(self, tx, name, value):
        if name == "requires_grad":
            raise Unsupported("setting requires_grad on a tensor inside a compiled region",
                              kind="tensor_setattr")
        raise Unsupported(f"setting attribute {name!r} on a tensor", kind="tensor_setattr")

    def call_method(self, tx, name, args, kwargs):
        if name in _BANNED_METHODS:
            raise Unsupported(f"Tensor.{name}()", kind="tensor_method", hint=_BANNED_METHODS[name])
        if name == "new" and any(a.python_type() is torch.Size for a in args):
            # x.new(torch.Size([4])) is a size, x.new((4,)) the data [4.]: fx keeps a torch.Size
            # argument as a plain tuple, so the node is new_empty (also uninitialized), which
            # takes the same arguments but more keywords (x.new(size, dtype=...) is a TypeError)
            if len(args) != 1 or not set(kwargs) <= {"device"}:
                raise Unsupported("Tensor.new() of a torch.Size with other arguments",
                                  kind="tensor_method")
            name = "new_empty"
        return graph_call(tx, "call_method", name, [self] + list(args), kwargs)


class TensorMethodValue(Value):
    """A bound tensor method, e.g. the result of LOAD_ATTR x.view."""

    def __init__(self, tensor, name):
        self.tensor = tensor
        self.name = name

    def call(self, tx, args, kwargs):
        return self.tensor.call_method(tx, self.name, args, kwargs)

    def __repr__(self):
        return f"TensorMethod({self.name})"


_READS = ("item", "tolist", "numpy")


class _TensorRead(Value):
    """t.item / t.tolist / t.numpy: calling it is a graph break (policy/breaks.py)."""

    def __init__(self, tensor, name):
        self.tensor = tensor
        self.name = name

    def call(self, tx, args, kwargs):
        if self.name != "numpy" and not args and not kwargs and self.tensor.roots:
            c = known(tx, self.tensor)
            if c is not None:
                return const(c.item() if self.name == "item" else c.tolist())
        return POLICY.tensor_read(tx, self.tensor, self.name, args, kwargs)

    def reconstruct(self, cg):
        return f"{cg.expr(self.tensor)}.{self.name}"


_BANNED_METHODS = {
    "item": "reading a tensor's value makes the graph depend on data",
    "tolist": "reading a tensor's values makes the graph depend on data",
    "numpy": "converting to numpy leaves the graph",
    "backward": "call backward() outside the compiled function",
    "register_hook": "tensor hooks are not captured yet",
    "retain_grad": "retain_grad is not captured yet",
    "data_ptr": "data pointers are run-time facts",
    "__bool__": "bool() of a tensor depends on its data",
    # the fake tensor would answer with its own text ('FakeTensor(..., size=(3,))')
    "__repr__": "formatting a tensor into a string depends on its data",
    "__str__": "formatting a tensor into a string depends on its data",
    "__format__": "formatting a tensor into a string depends on its data",
    "__reduce_ex__": "pickling a tensor reads its data",
    "__reduce__": "pickling a tensor reads its data",
    "__getstate__": "pickling a tensor reads its data",
    "__setstate__": "not captured",
    "__array__": "converting to numpy leaves the graph",
    "__dlpack__": "exporting a tensor's memory leaves the graph",
    "__index__": "using a tensor as an index value depends on its data",
    "__int__": "int() of a tensor depends on its data",
    "__float__": "float() of a tensor depends on its data",
    "untyped_storage": "storage access is not captured",
    "storage": "storage access is not captured",
    "share_memory_": "not captured",
    "pin_memory": "not captured",
    "_version": "the version counter changes with every in-place op",
    "_base": "the base of a view is a run-time object",
}


def _shape(tx, t):
    if any(isinstance(d, torch.SymInt) and d.node.hint is None for d in t.fake.shape):
        raise Unsupported("using a data-dependent size (from nonzero, x[mask], ...) in Python",
                          kind="data_dependent")
    return shape_value(tx, t)


def _meta(name):
    def read(tx, t):
        value = getattr(t.fake, name)
        _guard_uncovered_query(tx, name, [t], value)
        return const(value)
    return read


# metadata a query can read that the tensor guard (type, dtype, shape, stride, requires_grad,
# device) does not pin down: reading it adds a guard on exactly that
_UNCOVERED_QUERIES = {"storage_offset": "storage_offset()", "is_leaf": "is_leaf",
                      "is_inference": "is_inference()", "is_conj": "is_conj()", "is_neg": "is_neg()",
                      "_is_view": "_is_view()", "is_shared": "is_shared()"}


def _guard_uncovered_query(tx, target, args, result):
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    expr = _UNCOVERED_QUERIES.get(name)
    if expr is None or not args or not isinstance(args[0], TensorValue) or args[0].source is None:
        return
    src = args[0].source
    tx.guards.add_code(f"{tx.cg.bound(src)}.{expr} == {result!r}", src, "tensor_meta", result,
                       f"{tx.cg.bound(src)}.{expr}", f"{src.name_hint()}.{expr}")


def _guard_global_query(tx, kind, target, args, kwargs, result):
    """torch.get_num_threads(), torch.cuda.is_available(), ...: no tensor in, a plain value out.
    The answer comes from process state, so the guard asks again on every call."""
    if kind != "call_function" or type(result) not in (int, float, bool, str, type(None), torch.dtype,
                                                        torch.device):
        return
    try:        # only calls whose arguments are all plain constants ask about global state
        pargs = [a.as_python() for a in args]
        pkwargs = {k: v.as_python() for k, v in kwargs.items()}
    except Unsupported:
        return
    if _has_tensor(pargs) or _has_tensor(pkwargs):
        return
    if not pkwargs and tx.guards.add_state_query(target, pargs):
        return
    cg = tx.cg
    call_args = [cg.const(a, "arg") for a in pargs]
    call_args += [f"{k}={cg.const(v, 'arg')}" for k, v in pkwargs.items()]
    res = cg.const(result, "result")
    call = f"{cg.const(target, 'query')}({', '.join(call_args)})"
    shown = ", ".join([repr(a) for a in pargs] + [f"{k}={v!r}" for k, v in pkwargs.items()])
    tx.guards.add_code(f"{call} == {res}", None, "torch_query", result, call,
                       f"{getattr(target, '__module__', None) or 'torch'}.{getattr(target, '__name__', target)}({shown})")


def _grad(tx, t):
    raise Unsupported("reading .grad inside a compiled region", kind="tensor_grad")


def _data(tx, t):
    return graph_call(tx, "call_method", "detach", [t], {})


_ATTRS = {"shape": _shape, "grad": _grad, "data": _data, "grad_fn": _grad}


for _n in ("dtype", "device", "ndim", "requires_grad", "is_cuda", "is_cpu", "is_sparse",
           "is_quantized", "is_meta", "is_leaf", "layout", "is_nested", "is_mkldnn",
           "itemsize", "nbytes", "is_mps", "is_xpu"):
    _ATTRS[_n] = _meta(_n)
_ATTRS["__class__"] = lambda tx, t: _cls(tx, t)


def _cls(tx, t):
    from .objects import ClassValue
    return ClassValue(t.cls)


# --------------------------------------------------------------------------
# the graph door

def _has_tensor(obj):
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_tensor(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_tensor(x) for x in obj.values())
    return False


_PERCENT_FORMAT = (operator.mod, operator.imod)
_MUTATING_NONE_RESULT = (operator.setitem, operator.delitem, "__setitem__", "__delitem__")


def _items_of_args(ids, fake_args, fake_kwargs):
    """Did the fake run take the value of one of the op's own tensor arguments (top level, or
    in a list or tuple)? (Not of a tensor the op made inside: bytegraph's own index_with_ints.)"""
    ids = set(ids)
    for a in list(fake_args) + list(fake_kwargs.values()):
        for t in a if type(a) in (list, tuple) else (a,):
            if id(t) in ids:
                return True
    return False


def _read_values(target):
    return Unsupported(f"{_target_name(target)} takes the value of a one-element integer tensor as an "
                       "int", kind="read_values",
                       hint="the graph breaks before the call and the code after it reads the value "
                            "(not inside a try or with block: the call runs in Python there)")


def graph_call(tx, kind, target, args, kwargs, run_fake=None):
    """Record target(*args, **kwargs) in the graph; returns the result as a Value."""
    fx_args = [a.fx_arg(tx) for a in args]
    fx_kwargs = {k: v.fx_arg(tx) for k, v in kwargs.items()}
    fake_args = [a.fake_arg(tx) for a in args]
    fake_kwargs = {k: v.fake_arg(tx) for k, v in kwargs.items()}
    gb = tx.graph
    check_constants(fx_args, fx_kwargs, _target_name(target))
    if target in _PERCENT_FORMAT and args and isinstance(args[0], ConstValue) and \
            isinstance(args[0].value, (str, bytes)):
        # "%s" % t formats the tensor's value (the fakes would answer with their own repr)
        raise Unsupported("formatting a tensor into a string depends on its data", kind="data_dependent")
    env = gb.shape_env
    n_vars = len(env.var_to_range) if env is not None else 0
    n_items = len(gb.item_reads)
    n_reads = len(gb.reads)
    try:
        fake, mutated = gb.run_fake(kind, target, fake_args, fake_kwargs, run_fake)
    except Unsupported as e:
        if e.kind == "data_dependent" and tx.state_scalars and \
                read_candidates(tx, list(args) + list(kwargs.values())):
            # a one-element integer tensor in an int list (`interpolate(x, size=(h, w))`): stop
            # before the call and resume at it with the tensor's value read (values/known.py)
            raise _read_values(target) from e
        raise
    if len(gb.item_reads) != n_items and len(env.var_to_range) != n_vars and tx.state_scalars and \
            tx.allow_breaks and target != "item" and _items_of_args(gb.item_reads[n_items:], fake_args, fake_kwargs):
        # with a ShapeEnv the fake `item()` of a one-element tensor an op takes as a number
        # (`x.reshape((n, 6))`, `x.view(n, -1)`, `torch.zeros(n)`, `x.narrow(0, 0, n)`) is an
        # unbacked symbol, and many ops take it: the op's meta then assumes what eager does not
        # (reshape's `u >= 0`, where eager infers a -1), which a compiling backend asserts at
        # run time (RuntimeError `u2 >= 0`, or its own text where eager raises another). A
        # static trace cannot run such an op on fakes and stops: so does this one, reading
        # the value at a read stop where it can (red team 14)
        gb.note_unbacked(n_vars, producer_chain(tx))
        if read_candidates(tx, list(args) + list(kwargs.values())):
            raise _read_values(target)
        raise Unsupported(f"{_target_name(target)} takes the value of a one-element tensor as a number",
                          kind="data_dependent")
    roots = frozenset()
    if gb.roots:
        roots = roots_of(args, gb) | roots_of(kwargs.values(), gb)
        if len(gb.reads) != n_reads:
            del gb.reads[n_reads:]
            if not roots:           # a value the trace lost track of: guard them all
                guard_all_roots(tx.guards, gb)
            elif mutated:
                raise Unsupported(f"data-dependent operator {_target_name(target)}: it reads a "
                                  "tensor's value", kind="data_dependent")
            else:     # the op read a module-state scalar's value (pad taking it as an int)
                fx_args, fx_kwargs, fake = _read_known(tx, kind, target, args, kwargs, fake, run_fake)
    if target in _LITERAL_FACTORIES:
        _literal_factory(gb, target, args, kwargs, fake, fake_args, fake_kwargs)
    if env is not None and len(env.var_to_range) != n_vars:
        gb.note_unbacked(n_vars, producer_chain(tx))    # a data-dependent size: nonzero(), x[mask]
    if gb.marked:
        check_marks(tx, f"{getattr(target, '__name__', target)} needs it to be a constant")
    mutated = mutated or target in _MUTATING_NONE_RESULT
    if mutated and roots:
        taint(gb, _valued_fakes(fake_args, fake_kwargs), roots)
    if not mutated and not _has_tensor(fake):
        if any_symbolic(fake) and "storage_offset" in _target_name(target) and \
                not (args and isinstance(args[0], TensorValue) and args[0].source is not None):
            # a compiling backend's functionalization answers the storage_offset() of a view
            # the graph made with the offset of a fresh tensor (inductor returned 0 for
            # `x[n].storage_offset()`); an input's own offset is read from the input
            raise Unsupported("storage_offset() of a tensor at a symbolic offset", kind="data_dependent")
        if any_symbolic(fake):
            # a symbolic answer (x.size(0), x.numel() of a dynamic tensor): a node computes it
            return wrap_graph_result(tx, gb.create(kind, target, fx_args, fx_kwargs, fake, counts=False),
                                     fake)
        # a metadata query answered by the fakes (dim(), is_floating_point(), ...)
        from .base import wrap
        if has_sym(fake):                  # symbols the ShapeEnv has pinned to numbers
            fake = _plain_tree(fake)
        _guard_uncovered_query(tx, target, args, fake)
        _guard_global_query(tx, kind, target, args, kwargs, fake)
        return wrap(tx, fake, None)
    # an op that wrote into an argument is a node even when it returns no tensor (setitem,
    # custom ops with mutates_args, foreach ops)
    node = gb.create(kind, target, fx_args, fx_kwargs, fake)
    if mutated:
        node.meta["mutates"] = True
        if not _has_tensor(fake):
            from .base import wrap
            return wrap(tx, fake, None)
    # an op that hands back one of its inputs (in-place ops) keeps that Value
    for a in args:
        if isinstance(a, TensorValue) and a.fake is fake:
            return a
    out = wrap_graph_result(tx, node, fake)
    if roots:
        mark(out, roots)
    return out


# factories whose one-element result from constant arguments is a value the trace knows
# (torch.tensor(0.0) carries one already: FakeTensorMode keeps the literal)
_LITERAL_FACTORIES = {torch.full, torch.zeros, torch.ones, torch.scalar_tensor}


def _literal_factory(gb, target, args, kwargs, fake, fake_args, fake_kwargs):
    """`torch.full((), 0.0, dtype=...)` and the like: made from Python constants only, its fake
    carries the value (values/known.py `literal`), so FakeTensorMode propagates it through ops
    on it (a distribution's argument checks) as it does a `torch.tensor(0.0)`'s. Not from a
    symbolic number (`torch.tensor(n)`, n a dynamic size): its value is not a constant, and
    asking for it would specialize the size."""
    if type(fake) is not FakeTensor or any(isinstance(d, torch.SymInt) for d in fake.shape) or \
            fake.numel() != 1 or fake.device.type != "cpu" or fake.requires_grad or \
            fake.layout is not torch.strided or fake.is_quantized or \
            any(isinstance(v, TensorValue) for v in list(args) + list(kwargs.values())) or \
            has_sym(list(fake_args)) or has_sym(list(fake_kwargs.values())):
        return
    try:
        real = target(*[a.as_python() for a in args], **{k: v.as_python() for k, v in kwargs.items()})
    except Exception:       # noqa: BLE001 -- an argument that is not a constant
        return
    if type(real) is torch.Tensor and _same_meta(real, fake) and real.device == fake.device:
        gb.add_literal(fake, real)


def _read_known(tx, kind, target, args, kwargs, fake, run_fake):
    """An op whose fake run read the value of module-state scalars. When each value it reads is
    an int (float) inside a list or tuple argument, the node takes the numbers (guarded).
    Otherwise the op runs on the fakes again without the values, as if there were none (a
    data-dependent op makes unbacked sizes or stops the trace). Returns (fx args, fx kwargs,
    fake result)."""
    gb = tx.graph
    new_args, a = substitute(tx, args)
    keys = list(kwargs)
    new_kw, k = substitute(tx, [kwargs[n] for n in keys])
    new_kwargs = dict(zip(keys, new_kw))
    if a or k:
        n = len(gb.reads)
        again, _ = gb.run_fake(kind, target, [v.fake_arg(tx) for v in new_args],
                               {n: v.fake_arg(tx) for n, v in new_kwargs.items()}, run_fake)
        reads, gb.reads[n:] = gb.reads[n:], []
        if not reads and _same_meta(again, fake):
            return [v.fx_arg(tx) for v in new_args], {n: v.fx_arg(tx) for n, v in new_kwargs.items()}, fake
    fake_args = [v.fake_arg(tx) for v in args]
    fake_kwargs = {n: v.fake_arg(tx) for n, v in kwargs.items()}
    held = _valued_fakes(fake_args, fake_kwargs)
    values = [f.constant for f in held]
    for f in held:
        f.constant = None
    try:
        fake, _ = gb.run_fake(kind, target, fake_args, fake_kwargs, run_fake)
    finally:
        for f, c in zip(held, values):
            f.constant = c
    return [v.fx_arg(tx) for v in args], {n: v.fx_arg(tx) for n, v in kwargs.items()}, fake


def _valued_fakes(*args):
    """The fake tensors among `args` (nested) that carry a value (FakeTensor.constant)."""
    held = []
    _collect_fakes(list(args), held)
    return [f for f in held if getattr(f, "constant", None) is not None]


def _same_meta(a, b):
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride()
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_meta(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and not isinstance(a, torch.Tensor) and a == b


def _plain_tree(obj):
    if isinstance(obj, (list, tuple)):
        items = [_plain_tree(x) for x in obj]
        return torch.Size(items) if isinstance(obj, torch.Size) else type(obj)(items)
    return plain(obj)


def wrap_graph_result(tx, node, fake):
    if isinstance(fake, torch.Tensor):
        return TensorValue(node, fake)
    if isinstance(fake, SYM_TYPES):
        return wrap_sym(tx, node, fake)
    from .containers import TupleValue, ListValue
    if isinstance(fake, (tuple, list)):
        items = []
        for i, f in enumerate(fake):
            if isinstance(f, torch.Tensor) or isinstance(f, (tuple, list)) or is_symbolic(f):
                items.append(wrap_graph_result(tx, tx.graph.getitem(node, f, i), f))
            else:
                items.append(const(plain(f)))
        if isinstance(fake, list):
            return ListValue(items)
        return TupleValue(items, cls=type(fake))
    raise Unsupported(f"graph op returned {type(fake).__name__}", kind="graph_result")


def _symbolic_layout(fake):
    return fake.layout is torch.strided and (is_symbolic(fake.storage_offset())
                                              or any(is_symbolic(s) for s in fake.stride()))


@register_wrapper(torch.Tensor)
def wrap_tensor(tx, t, source):
    if source is None:
        raise Unsupported("a tensor with no known source (created outside the traced code and "
                          "reached without a path from the arguments or globals)", kind="tensor_source")
    if type(t) not in (torch.Tensor, torch.nn.Parameter, torch.nn.parameter.Buffer):
        raise Unsupported(f"tensor subclass {type(t).__name__}", kind="tensor_subclass")
    if t.is_sparse or t.is_quantized or t.is_nested or t.is_meta:
        raise Unsupported("sparse/quantized/nested/meta tensor inputs", kind="tensor_kind")
    dims, layout = None, False
    if tx.dynamic is not None and tx.graph.shape_env is not None:
        dims = tx.dynamic.tensor_dims(source, t)
        # (a tensor a resume function was given to read keeps its value guard: values/known.py)
        layout = id(t) not in tx.read_ids and tx.dynamic.layout_free(source, t)
    node, fake, first_source = tx.graph.add_input(source, t, dims, layout)
    roots = frozenset()
    if first_source is None:
        if (dims or layout) and (any(is_symbolic(s) for s in fake.shape) or _symbolic_layout(fake)):
            tx.guards.add_dynamic_tensor(source, t, fake, tx.graph)
        else:
            tx.guards.add_tensor(source, t)
            roots = make_root(tx, source, t, fake)
    elif fake.constant is not None and first_source in tx.graph.roots:
        roots = frozenset((first_source,))
    v = TensorValue(node, fake, source, cls=type(t), real=t)
    if roots:
        v.roots = roots
    return v
