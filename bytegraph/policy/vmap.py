"""torch.vmap over a function the trace holds, captured as one graph node.

`torch.vmap(fn, in_dims, out_dims, randomness, chunk_size=...)` gives a `VmapFnValue`; calling
it traces `fn` with the same interpreter into a sub-graph of its own, over per-example fake
inputs (each batched tensor with its batch dim removed, as vmap presents it to `fn`), then
records ONE node in the enclosing graph whose target runs the real `torch.vmap` over that
sub-GraphModule. The node's fake result comes from really running torch.vmap over the fakes.
Nested vmaps nest: the inner call is a node of the outer body's sub-graph.

What the body may do: tensor work and reads. It is refused (Unsupported at the vmap call, so
the whole call runs eagerly or the trace stops before it) when it has a Python side effect
(`_NoEffects`), a graph break (print, `.item()`), an in-place write, a change of grad mode or
autocast, returns anything but tensors in tuples/lists, or raises. Tensors of the enclosing
graphs that the body reads (closures, caller inputs first read inside) are lifted: they become
extra inputs of the sub-graph, passed with in_dim None. A tensor computed in a body must not
reach the enclosing graph other than through the body's return value (GraphBuilder checks
node arguments once a trace has made a sub-graph). Guards the body adds join the entry's.

`TransformGetItemToIndex` (torch._dynamo's TorchFunctionMode, recognised by module and
qualname, never imported) is modelled as a context manager: while it is active,
`tensor[idx]` whose index leaves (torch pytree) are all tensors or ints is recorded as
`torch.ops.aten.index.Tensor(tensor, [idx, ...])`, ints as int64 0-d tensors, exactly as the
mode's `__torch_function__` rewrites it. The trace never really pushes the mode; queries of
the mode stack inside the block are refused.
"""
import operator

import torch
import torch.fx
import torch.utils._pytree as pytree

from ..exc import Unsupported, UserError
from ..graph.builder import NEEDS_SHAPE_ENV, GraphBuilder, _has_nan
from ..values.base import Value, ConstValue, NONE, const
from ..values.containers import TupleValue, ListValue
from ..values.tensor import TensorValue, graph_call, wrap_graph_result

VMAP_FNS = (torch.vmap,)
_PASS_KINDS = frozenset({"internal", NEEDS_SHAPE_ENV, "torch_function_mode", "recursion"})
_STATE_TARGETS = (torch._C._set_grad_enabled, torch.amp.autocast_mode._enter_autocast,
                  torch.amp.autocast_mode._exit_autocast)


def _refuse(msg):
    raise Unsupported(f"torch.vmap: {msg}", kind="vmap",
                      hint="the vmap call runs eagerly; the code around it is compiled")


# --------------------------------------------------------------------------
# torch.vmap(fn, ...)

class VmapFnValue(Value):
    """The function torch.vmap returned: calling it captures the call (vmap_call)."""

    def __init__(self, fn, in_dims, out_dims, randomness, chunk_size):
        self.fn = fn
        self.in_dims, self.out_dims = in_dims, out_dims
        self.randomness, self.chunk_size = randomness, chunk_size

    def python_type(self):
        return type(lambda: None)

    def call(self, tx, args, kwargs):
        return vmap_call(tx, self, list(args), dict(kwargs))

    def reconstruct(self, cg):
        """torch.vmap(fn, ...) again (a graph break stops the trace with it on the stack)."""
        opts = ", ".join(f"{k}={cg.const(getattr(self, k), k)}"
                         for k in ("in_dims", "out_dims", "randomness", "chunk_size"))
        return f"{cg.const(torch.vmap, 'vmap')}({cg.expr(self.fn)}, {opts})"

    def __repr__(self):
        return f"Vmap({self.fn})"


def make_vmap(tx, args, kwargs):
    """torch.vmap(func, in_dims=0, out_dims=0, randomness='error', *, chunk_size=None)."""
    names = ("func", "in_dims", "out_dims", "randomness")
    bound = {"in_dims": const(0), "out_dims": const(0), "randomness": const("error"),
             "chunk_size": NONE}
    if len(args) > len(names):
        _refuse("too many arguments")
    bound.update(zip(names, args))
    for k, v in kwargs.items():
        if k not in bound and k != "func" or (k in names and names.index(k) < len(args)):
            _refuse(f"unexpected argument {k!r}")
        bound[k] = v
    if "func" not in bound:
        _refuse("no function")
    try:
        opts = {k: bound[k].as_python() for k in ("in_dims", "out_dims", "randomness", "chunk_size")}
    except Unsupported:
        _refuse("in_dims, out_dims, randomness and chunk_size must be constants")
    if not _dims_ok(opts["in_dims"]) or not _dims_ok(opts["out_dims"]) \
            or opts["randomness"] not in ("error", "different", "same") \
            or not (opts["chunk_size"] is None or type(opts["chunk_size"]) is int and opts["chunk_size"] > 0):
        _refuse("unsupported in_dims/out_dims/randomness/chunk_size")
    return VmapFnValue(bound["func"], opts["in_dims"], opts["out_dims"], opts["randomness"],
                       opts["chunk_size"])


def _dims_ok(d):
    if d is None or type(d) is int:
        return True
    return type(d) in (tuple, list) and all(_dims_ok(x) for x in d)


def _broadcast(spec, value, out, path="in_dims"):
    """Pair each leaf of `value` (a Value tree: tuples, lists) with its dim from `spec` (an int,
    None, or a tuple/list matching the tree), as torch's _broadcast_to_and_flatten does."""
    if spec is None or type(spec) is int:
        if type(value) in (TupleValue, ListValue) and value.python_type() in (tuple, list):
            for item in value.items:
                _broadcast(spec, item, out, path)
        else:
            out.append((value, spec))
        return
    if type(spec) is tuple and type(value) is TupleValue and value.python_type() is tuple or \
            type(spec) is list and type(value) is ListValue:
        if len(spec) != len(value.items):
            _refuse(f"{path} does not match the structure of the inputs")
        for s, item in zip(spec, value.items):
            _broadcast(s, item, out, path)
        return
    _refuse(f"{path} does not match the structure of the inputs")


def _rebuild(value, leaves):
    """`value`'s tree with its leaves replaced, in order, from the iterator `leaves`."""
    if type(value) in (TupleValue, ListValue) and value.python_type() in (tuple, list):
        items = [_rebuild(i, leaves) for i in value.items]
        return TupleValue(items) if type(value) is TupleValue else ListValue(items)
    return next(leaves)


# --------------------------------------------------------------------------
# the body's sub-graph

class SubGraphBuilder:
    """The graph a vmap body records into: own fx Graph and op count; inputs, fake mode, shape
    env and fake runs are the enclosing builder's (a caller tensor first read in the body is a
    placeholder of the root graph, lifted into this one)."""
    create = GraphBuilder.create
    getitem = GraphBuilder.getitem
    last_node = GraphBuilder.last_node
    _signed_nans = GraphBuilder._signed_nans     # a -nan constant's node goes into this graph

    def __init__(self, parent):
        self.parent = parent
        self.graph = torch.fx.Graph()
        self.num_ops = 0

    def __getattr__(self, name):
        return getattr(self.parent, name)


class _NoEffects:
    """Stands in for tx.side_effects inside a vmap body: any Python side effect refuses."""

    def __init__(self, inner):
        self.inner = inner

    def _refuse(self, *a):
        _refuse("the function has a Python side effect (a write to an object, global or "
                "closure variable, a warning or log record)")

    mutated = attr_write = global_write = cell_write = _refuse

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _per_example(gb, fake, dim):
    """A fresh fake tensor shaped like one example of `fake` batched at `dim`."""
    n = fake.dim()
    if not -n <= dim < n:
        _refuse(f"in_dim {dim} is out of range for a {n}-d input")
    dim %= n
    shape = [s for d, s in enumerate(fake.shape) if d != dim]
    stride = [s for d, s in enumerate(fake.stride()) if d != dim]
    with gb.fake_mode:
        pe = torch.empty_strided(shape, stride, dtype=fake.dtype, device=fake.device)
    if fake.requires_grad:
        pe.requires_grad_(True)
    return pe


def vmap_call(tx, vf, args, kwargs):
    if not args:
        _refuse("no positional arguments")
    in_dims = vf.in_dims
    if type(in_dims) is int:
        in_dims = (in_dims,) * len(args)
    elif type(in_dims) is not tuple or len(in_dims) != len(args):
        _refuse("in_dims must be an int or a tuple with one entry per positional argument")
    pairs = []
    _broadcast(tuple(in_dims), TupleValue(list(args)), pairs)
    parent = tx.graph
    sub = SubGraphBuilder(parent)
    batched, leaves = [], []      # batched: (outer Value, dim)
    for i, (v, d) in enumerate(pairs):
        if d is None:
            leaves.append(v)
            continue
        if not isinstance(v, TensorValue):
            _refuse(f"in_dim {d} given for an input that is not a tensor ({v})")
        pe = _per_example(sub, v.fake, d)
        node = sub.graph.placeholder(f"arg{i}")
        node.meta["example_value"] = pe
        leaves.append(TensorValue(node, pe))
        batched.append((v, d))
    if not batched:
        _refuse("no input is batched (vmap raises)")
    body_args = _rebuild(TupleValue(list(args)), iter(leaves)).items
    out = _trace_body(tx, sub, vf.fn, body_args, kwargs)
    flat_out = []
    _broadcast(vf.out_dims, out, flat_out, "out_dims")
    for v, _ in flat_out:
        if not isinstance(v, TensorValue):
            _refuse(f"the function returned {v}, not a tensor (vmap raises)")
    lifted = _lift(sub, [v.node for v, _ in flat_out])
    for n in sub.graph.nodes:
        if n.meta.get("mutates"):
            _refuse("the function writes into a tensor")
        if n.op == "call_function" and n.target in _STATE_TARGETS:
            _refuse("the function changes grad mode or autocast")
    gm = torch.fx.GraphModule(torch.nn.Module(), sub.graph, class_name="VmapBody")
    target = _vmap_target(gm, tuple(d for _, d in batched) + (None,) * len(lifted),
                          tuple(d for _, d in flat_out), vf.randomness, vf.chunk_size)
    fx_args = [v.node for v, _ in batched] + lifted
    fake_args = [n.meta["example_value"] for n in fx_args]
    try:
        fake, mutated = parent.run_fake("call_function", target, fake_args, {})
    except UserError as e:
        _refuse(f"running it on fake tensors raised {type(e.exc).__name__}: {e.exc}")
    if mutated:
        _refuse("the function writes into a tensor")
    for n in sub.graph.nodes:          # GraphBuilder.create / Codegen.expr refuse them from now on
        n.meta["vmap_body"] = True
    root = parent
    while type(root) is SubGraphBuilder:
        root = root.parent
    root.vmap_bodies = True
    node = parent.create("call_function", target, fx_args, {}, fake)
    results = wrap_graph_result(tx, node, fake).items
    # an output that is an input as it came in (vmap hands back the same tensor) keeps its Value
    by_fake = {id(v.fake): v for v, _ in batched}
    results = [by_fake.get(id(r.fake), r) for r in results]
    return _rebuild(out, iter(results))


def _trace_body(tx, sub, fn, args, kwargs):
    parent, allow, effects = tx.graph, tx.allow_breaks, tx.side_effects
    tx.graph, tx.allow_breaks, tx.side_effects = sub, False, _NoEffects(effects)
    try:
        return fn.call(tx, list(args), dict(kwargs))
    except Unsupported as e:
        if e.kind in _PASS_KINDS:
            raise
        _refuse(f"cannot capture the function: {e.msg}")
    except UserError as e:
        _refuse(f"the function raises {type(e.exc).__name__}: {e.exc}")
    finally:
        tx.graph, tx.allow_breaks, tx.side_effects = parent, allow, effects


def _lift(sub, outputs):
    """Make the enclosing graphs' nodes the body reads placeholders of the sub-graph (in_dim
    None); close it with `outputs`. Returns the enclosing nodes, in placeholder order."""
    g = sub.graph
    first = next((n for n in g.nodes if n.op != "placeholder"), None)
    lifted = {}

    def lift(n):
        if n.graph is g:
            return n
        ph = lifted.get(n)
        if ph is None:
            if first is not None:
                with g.inserting_before(first):
                    ph = g.placeholder(f"lifted{len(lifted)}")
            else:
                ph = g.placeholder(f"lifted{len(lifted)}")
            ph.meta["example_value"] = n.meta.get("example_value")
            lifted[n] = ph
        return ph

    for n in list(g.nodes):
        if n.op == "placeholder":
            continue
        n.args = torch.fx.node.map_arg(n.args, lift)
        n.kwargs = torch.fx.node.map_arg(n.kwargs, lift)
    g.output(tuple(lift(n) for n in outputs))
    return list(lifted)


_COUNT = [0]


def _vmap_target(gm, in_dims, out_dims, randomness, chunk_size):
    """The graph node's target: torch.vmap of the body's GraphModule, applied to the args."""
    def run(*args):
        return torch.vmap(gm, in_dims=in_dims, out_dims=out_dims, randomness=randomness,
                          chunk_size=chunk_size)(*args)
    _COUNT[0] += 1
    run.__name__ = run.__qualname__ = f"vmap_body_{_COUNT[0]}"
    run.body, run.in_dims, run.out_dims = gm, in_dims, out_dims
    run.vmap_options = dict(in_dims=in_dims, out_dims=out_dims, randomness=randomness,
                            chunk_size=chunk_size)     # export (portable_vmap_nodes) knows it by this
    return run


def is_vmap_node(node):
    return node.op == "call_function" and getattr(node.target, "vmap_options", None) is not None


def vmap_aten_graph(node):
    """The aten graph of a vmap node's call (our make_fx over zero tensors shaped like the
    node's examples): what export stores in its place and what the inductor backend inlines
    (backends/registry.py). Unsupported for inputs with symbolic sizes."""
    examples = []
    for a in node.args:
        fake = a.meta.get("example_value") if isinstance(a, torch.fx.Node) else None
        if not isinstance(fake, torch.Tensor) or any(
                not isinstance(s, int) for s in (*fake.shape, *fake.stride())):
            raise Unsupported("a torch.vmap call over inputs with symbolic sizes", kind="export")
        examples.append(torch.empty_strided(fake.shape, fake.stride(), dtype=fake.dtype, device=fake.device)
                        .zero_().requires_grad_(fake.requires_grad))
    from ..dispatch_trace import make_fx
    agm = make_fx(node.target, tracing_mode="fake")(*examples)
    if any(_has_nan((m.args, m.kwargs)) for m in agm.graph.nodes):
        # the body's -nan constant (a node of its own in our graphs) is a plain argument of the
        # aten op here, which fx's code prints as `nan`: the sign would be lost
        raise Unsupported("a torch.vmap body with a nan constant", kind="export")
    return agm


def export_vmap_body(node, root):
    """For export, whose module must survive torch.save/load with no bytegraph import: a vmap
    node's target is a closure pickle cannot name, and torch.load re-traces each GraphModule
    with fx's symbolic tracer, which cannot run torch.vmap over proxies. Returns the name of a
    new submodule of `root` holding the aten graph of the vmapped call, for a `call_module`
    node in its place; None when `node` is not a vmap node."""
    if not is_vmap_node(node):
        return None
    try:
        agm = vmap_aten_graph(node)
    except Unsupported as e:
        raise Unsupported(f"export: {e.msg}", kind="export") from None
    k = 0
    while hasattr(root, f"vmap_body{k}"):
        k += 1
    root.add_module(f"vmap_body{k}", agm)
    return f"vmap_body{k}"


def inline_vmaps(gm, deterministic_only=False):
    """gm with each vmap node replaced by the aten graph of its call, inlined (a new
    GraphModule; gm itself unchanged), or gm when it has none or one cannot be inlined (symbolic
    sizes, a graph holding constants). For inductor: a graph whose node targets a closure
    bypasses its FX graph / AOT autograd caches, so it had no warm-start artifact. For the eager
    backend (`deterministic_only`: vmaps with randomness='error', which run no random op): the
    same aten ops the vmap call runs, without functorch's Python wrapper and the body's
    GraphModule call on every call (hf/jamba's steady call 6.8 -> 3.8 ms, eager 4.3 ms)."""
    targets = {n for n in gm.graph.nodes if is_vmap_node(n) and not (
        deterministic_only and n.target.vmap_options["randomness"] != "error")}
    if not targets:
        return gm
    g, env = torch.fx.Graph(), {}
    for n in gm.graph.nodes:
        if n in targets:
            try:
                agm = vmap_aten_graph(n)
            except Unsupported:
                return gm
            if any(m.op in ("get_attr", "call_module") for m in agm.graph.nodes):
                return gm
            phs = [m for m in agm.graph.nodes if m.op == "placeholder"]
            env[n] = g.graph_copy(agm.graph, {p: env[a] for p, a in zip(phs, n.args)})
        elif n.op == "call_function" and n.target is operator.getitem and n.args[0] in targets:
            env[n] = env[n.args[0]][n.args[1]]
        else:
            env[n] = g.node_copy(n, lambda a: env[a])
    for n in g.nodes:       # the aten nodes' metadata under the key the graph's others use
        if "example_value" not in n.meta and "val" in n.meta:
            n.meta["example_value"] = n.meta["val"]
    return torch.fx.GraphModule(gm, g)


# --------------------------------------------------------------------------
# TransformGetItemToIndex

_MODE = ("torch._dynamo._trace_wrapped_higher_order_op", "TransformGetItemToIndex")
_MODE_QUERIES = frozenset({"_len_torch_function_stack", "_get_function_stack_at", "_get_current_function_mode",
                           "_get_current_function_mode_stack", "_is_torch_function_mode_enabled",
                           "_pop_torch_function_stack", "_push_on_torch_function_stack"})


def is_getitem_to_index(cls):
    """torch._dynamo's TransformGetItemToIndex itself (not a subclass), by name and origin."""
    import sys
    if (getattr(cls, "__module__", None), getattr(cls, "__qualname__", None)) != _MODE:
        return False
    mod = sys.modules.get(_MODE[0])
    return mod is not None and getattr(mod, _MODE[1], None) is cls


class GetItemToIndexCtx(Value):
    """`with TransformGetItemToIndex():` -- while entered, tensor indexing is rewritten
    (index_under_mode); no real mode is pushed, so nothing outlives the block."""

    def __init__(self, cls):
        self.cls = cls

    def python_type(self):
        return self.cls

    def enter(self, tx):
        tx.getitem_to_index += 1
        return self             # TorchFunctionMode.__enter__ returns the mode

    def exit(self, tx):
        tx.getitem_to_index -= 1
        return const(False)


def construct_getitem_to_index(tx, cls, args, kwargs):
    if args or kwargs:
        raise Unsupported("TransformGetItemToIndex with arguments", kind="construct")
    return GetItemToIndexCtx(cls)


def check_mode_query(tx, fn):
    """Inside the modelled mode the real mode stack is not what eager has: refuse reading it."""
    if tx.getitem_to_index and getattr(fn, "__name__", "") in _MODE_QUERIES:
        raise Unsupported(f"{fn.__name__} inside a TransformGetItemToIndex block (the trace models "
                          "the mode without pushing it)", kind="getitem_to_index")


def _index_leaves(tx, idx, out):
    """torch pytree's leaves of the index, as Values / Python objects; False when a leaf is
    something the rewrite does not handle the way the mode would."""
    t = type(idx)
    if t is TensorValue:
        out.append(idx)
        return True
    if t is ConstValue:
        out.extend(pytree.tree_leaves(idx.value))
        return True
    if t in (TupleValue, ListValue):
        return all(_index_leaves(tx, i, out) for i in idx.items)
    try:
        pt = idx.python_type()
    except Unsupported:
        return False
    if pt in pytree.SUPPORTED_NODES or pt in (dict,):
        return False
    out.append(idx)        # some other object: a leaf that is neither tensor nor int
    return True


def index_under_mode(tx, obj, idx):
    """`obj[idx]` while TransformGetItemToIndex is active: the aten.index node the mode makes,
    or None when the mode would leave the indexing alone."""
    name = tx.frame.globals.get("__name__", "") if tx.frame is not None else ""
    if name == "torch" or name.startswith("torch."):
        # inside torch's own Python code the mode may be disabled (a __torch_function__ handler)
        raise Unsupported("tensor indexing in torch's code inside a TransformGetItemToIndex block",
                          kind="getitem_to_index")
    leaves = []
    if not _index_leaves(tx, idx, leaves):
        raise Unsupported("an index structure TransformGetItemToIndex would flatten",
                          kind="getitem_to_index")
    for x in leaves:
        if isinstance(x, Value) and type(x) is not TensorValue:
            try:
                pt = x.python_type()
            except Unsupported:
                pt = None
            if pt is int or pt is bool:
                raise Unsupported("a symbolic int index inside a TransformGetItemToIndex block",
                                  kind="getitem_to_index")
            return None
        if not isinstance(x, (TensorValue, int)):
            return None
    device = const(obj.fake.device)
    indices = [x if type(x) is TensorValue else
               graph_call(tx, "call_function", torch.tensor, [const(x)],
                          {"dtype": const(torch.int64), "device": device})
               for x in leaves]
    return graph_call(tx, "call_function", torch.ops.aten.index.Tensor, [obj, ListValue(indices)], {})

