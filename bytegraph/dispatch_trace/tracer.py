"""Dispatch-level tracer: ``make_fx`` records every aten op an eager call runs.

A ``TorchDispatchMode`` (``_RecordingMode``) sits on top of the dispatch-mode
stack while the user function runs.  Every aten OpOverload that reaches the
Python dispatcher (i.e. after autograd and CompositeImplicitAutograd
decomposition) is (1) optionally decomposed with the user's table, (2) run on
the underlying real / fake values, and (3) recorded as an FX ``call_function``
node.  Tensors are associated with their producing node by object identity
(``id`` -> (tensor, node); the tensor is kept alive for the duration of the
trace so ids cannot be recycled).

Tracing modes:
  * ``real``: ops run on the real inputs (so the trace performs the compute and
    in-place ops mutate the caller's tensors, like eager would).
  * ``fake``: inputs are converted with ``FakeTensorMode.from_tensor``; the fake
    mode is pushed *below* the recording mode so we see each op first and then
    let the fake mode compute output metadata.
  * ``symbolic``: like fake, with a ``ShapeEnv`` and every input dim dynamic.
    SymInt arguments are rebuilt in the graph from their sympy expression
    (see ``sym_exprs``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import operator
import sys
import weakref
from typing import Any, Callable, Optional

import sympy
import torch
import torch.fx as fx
import torch.utils._pytree as pytree
from torch._dispatch.python import enable_python_dispatcher
from torch._guards import GuardSource, Source, dataclass_with_cached_hash
from torch._subclasses.fake_impls import fast_detach
from torch._subclasses.fake_tensor import (
    DataDependentOutputException,
    DynamicOutputShapeException,
    FakeTensor,
    FakeTensorMode,
)
from torch.fx.experimental.sym_node import SymNode
from torch.fx.experimental.symbolic_shapes import (
    DimDynamic,
    GuardOnDataDependentSymNode,
    ShapeEnv,
    StatelessSymbolicContext,
)
from torch.fx.graph import _PyTreeCodeGen, _PyTreeInfo
from torch.fx.passes.shape_prop import _extract_tensor_metadata
from torch.utils._python_dispatch import TorchDispatchMode

from .sym_exprs import SymExprEmitter, UnsupportedSymExpr

__all__ = ["make_fx", "DataDependentError", "TRACING_MODES"]

TRACING_MODES = ("real", "fake", "symbolic")

aten = torch.ops.aten
_SymTypes = (torch.SymInt, torch.SymFloat, torch.SymBool)


class DataDependentError(RuntimeError):
    """An op's result (or output shape) depends on tensor *data*, which is
    unavailable when tracing with fake / symbolic tensors."""


@dataclass_with_cached_hash(frozen=True)
class _InputSource(Source):
    """Names the symbols a ShapeEnv creates for traced inputs (``input0``...)."""

    source_name: str

    @property
    def guard_source(self) -> GuardSource:
        return GuardSource.CONSTANT

    @property
    def _name_template(self) -> str:
        return self.source_name

    def reconstruct(self, codegen) -> None:  # pragma: no cover - never codegen'd
        raise NotImplementedError


# ----------------------------------------------------------------------------
# Finding qualified names for parameters / buffers.
# ----------------------------------------------------------------------------
def _module_roots(fn: Callable) -> list[tuple[str, torch.nn.Module]]:
    """nn.Modules reachable from ``fn`` together with the prefix used to name
    their parameters: the module itself (prefix ""), a bound method's owner,
    or modules referenced by closure cells / globals (prefix = variable name).
    """
    if isinstance(fn, torch.nn.Module):
        return [("", fn)]
    if inspect.ismethod(fn) and isinstance(fn.__self__, torch.nn.Module):
        return [("", fn.__self__)]
    roots: list[tuple[str, torch.nn.Module]] = []
    if isinstance(fn, functools.partial):
        for i, a in enumerate(fn.args):
            if isinstance(a, torch.nn.Module):
                roots.append((f"arg{i}", a))
        fn = fn.func
    fn = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    code = getattr(fn, "__code__", None)
    if code is None:
        return roots
    for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
        try:
            v = cell.cell_contents
        except ValueError:  # empty cell
            continue
        if isinstance(v, torch.nn.Module):
            roots.append((name, v))
    g = getattr(fn, "__globals__", {})
    for name in code.co_names:
        v = g.get(name)
        if isinstance(v, torch.nn.Module):
            roots.append((name, v))
    return roots


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix and name else (prefix or name)


@functools.lru_cache(maxsize=1)
def _shared_meta_mode() -> FakeTensorMode:
    # Stateless for our use (we only wrap meta tensors), and FakeTensorMode()
    # construction costs milliseconds, so real-mode traces share one.
    return FakeTensorMode(allow_non_fake_inputs=True)


# ----------------------------------------------------------------------------
# The tracer state.
# ----------------------------------------------------------------------------
class _Tracer:
    def __init__(self, fn, mode: str, decomp: dict, record_module_stack: bool,
                 fake_mode: Optional[FakeTensorMode]) -> None:
        self.fn = fn
        self.mode = mode
        self.decomp = decomp
        self.graph = fx.Graph()
        self.fake_mode = fake_mode
        # Real mode: node meta["val"] is a fake tensor made by this mode so the
        # graph does not keep real activations alive.
        self.meta_mode = _shared_meta_mode() if mode == "real" else None
        # id(tensor) -> (weakref to tensor, node).  Weak on purpose: holding a
        # strong ref makes factory functions (torch.ones...) return a detached
        # alias instead of the tensor we saw.  A recycled id is detected by the
        # weakref no longer pointing at the queried tensor.
        self.tensors: dict[int, tuple[weakref.ref, fx.Node]] = {}
        self.attrs: dict[str, Any] = {}          # GraphModule root attributes
        self._attr_ids: dict[int, tuple[Any, fx.Node, Any]] = {}
        self._param_names: Optional[dict[int, str]] = None
        self._const_count = 0
        self.record_module_stack = record_module_stack
        self._module_paths: Optional[dict[int, str]] = None
        self._unnamed: dict[int, str] = {}       # id(module) -> made-up path (not under fn)
        # symbolic mode: sympy.Symbol -> thunk creating its reading node
        self.symbol_sources: dict[Any, Callable[[], fx.Node]] = {}
        self._symbol_nodes: dict[Any, fx.Node] = {}
        self.sym = SymExprEmitter(self._symbol_node, self._call_sym, self._sym_val)
        # runtime checks of a symbolic trace's assumptions (_add_runtime_checks)
        self.symbol_reads: list = []         # sym_size/sym_stride nodes made after the placeholders
        self.input_checks: list = []         # (read node, expected sympy expr or int)
        self.pinned_symbols: set = set()     # symbols a specialized expression depended on

    # -- node creation --------------------------------------------------------
    def create_node(self, op, target, args, kwargs, name=None) -> fx.Node:
        node = self.graph.create_node(op, target, args, kwargs, name)
        if self.record_module_stack:
            stack = self.module_stack()
            if stack:
                node.meta["nn_module_stack"] = stack
        return node

    def set_val(self, node: fx.Node, val: Any) -> None:
        node.meta["val"] = val
        if isinstance(val, torch.Tensor) and val.layout is torch.strided:
            node.meta["tensor_meta"] = _extract_tensor_metadata(val)

    def meta_of(self, t: torch.Tensor) -> torch.Tensor:
        """A fake snapshot of ``t`` for ``meta["val"]``."""
        if t.layout is not torch.strided:
            # sparse / nested layouts: no strides; let the fake mode convert
            fm = t.fake_mode if isinstance(t, FakeTensor) else self.meta_mode or self.fake_mode
            try:
                return fm.from_tensor(t) if not isinstance(t, FakeTensor) else t
            except Exception:
                return None
        if self.meta_mode is not None and not isinstance(t, FakeTensor):
            # Build the fake directly around a meta tensor: no fake-mode dispatch.
            meta = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
            return FakeTensor(self.meta_mode, meta, t.device)
        # Fake tensors: a detached alias, so meta carries no autograd state,
        # holds no strong ref to the traced tensor, and later in-place metadata
        # changes (e.g. unsqueeze_) don't rewrite it.
        return fast_detach(t.fake_mode, t)

    def meta_val(self, v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return self.meta_of(v)
        if isinstance(v, (list, tuple)):
            return [self.meta_val(x) for x in v]
        return v

    # -- parameters / constants ----------------------------------------------
    def _qualname(self, t: torch.Tensor) -> Optional[str]:
        if self._param_names is None:
            names: dict[int, str] = {}
            for prefix, mod in _module_roots(self.fn):
                for n, p in mod.named_parameters(remove_duplicate=False):
                    names.setdefault(id(p), _join(prefix, n))
                for n, b in mod.named_buffers(remove_duplicate=False):
                    names.setdefault(id(b), _join(prefix, n))
            self._param_names = names
        return self._param_names.get(id(t))

    def get_attr(self, obj: Any, kind: str) -> fx.Node:
        """get_attr node for a non-input object (tensor constant, parameter,
        generator).  Memoized by identity."""
        hit = self._attr_ids.get(id(obj))
        if hit is not None:
            return hit[1]
        name = self._qualname(obj) if isinstance(obj, torch.Tensor) else None
        if name is None or name in self.attrs:
            prefix = {"param": "_param_constant", "tensor": "_tensor_constant"}.get(kind, "_" + kind)
            while True:
                name = f"{prefix}{self._const_count}"
                self._const_count += 1
                if name not in self.attrs:
                    break
        self.attrs[name] = obj
        # get_attr nodes carry no module stack: they are module state, not compute
        node = self.graph.create_node("get_attr", name, (), {})
        run_val = obj
        if isinstance(obj, torch.Tensor):
            if self.fake_mode is not None and not isinstance(obj, FakeTensor):
                # parameters/constants keep static shapes even in symbolic mode
                run_val = self.fake_mode.from_tensor(obj, static_shapes=True)
            self.set_val(node, self.meta_of(run_val))
        else:
            node.meta["val"] = obj
        self._attr_ids[id(obj)] = (obj, node, run_val)
        self.tensors[id(run_val)] = (weakref.ref(run_val), node)
        return node

    # -- symbolic values ------------------------------------------------------
    def _symbol_node(self, s) -> fx.Node:
        node = self._symbol_nodes.get(s)
        if node is None:
            src = self.symbol_sources.get(s)
            if src is None:
                raise KeyError(s)
            node = self._symbol_nodes[s] = src()
        return node

    def _call_sym(self, target, args) -> fx.Node:
        node = self.create_node("call_function", target, args, {})
        return node

    def _sym_val(self, expr) -> Any:
        """A SymInt/SymFloat/SymBool for an intermediate sympy expression
        (meta["val"] of nodes emitted for sub-expressions)."""
        se = self.fake_mode.shape_env if self.fake_mode is not None else None
        if se is None:
            return None
        if expr.is_Relational or expr.is_Boolean:
            pytype, wrap = bool, torch.SymBool
        elif expr.is_integer:
            pytype, wrap = int, torch.SymInt
        else:
            pytype, wrap = float, torch.SymFloat
        try:
            hint = pytype(expr.xreplace(se.backed_var_to_val))
        except Exception:
            hint = None
        return wrap(SymNode(expr, se, pytype, hint))

    def sym_arg(self, s) -> Any:
        """Graph argument for a SymInt/SymFloat/SymBool."""
        expr = s.node.expr
        if expr.is_number:
            return s.node.pytype(expr)
        try:
            node = self.sym.emit(expr)
        except (KeyError, UnsupportedSymExpr):
            free = getattr(expr, "free_symbols", ())
            if any(str(f).startswith("u") for f in free):
                raise DataDependentError(
                    f"value {s} depends on tensor data (unbacked symbol); "
                    "data-dependent values cannot be traced in fake/symbolic mode")
            # Unknown construct: specialize to the current value, and pin the input symbols it
            # depends on with runtime checks (_add_runtime_checks) so other sizes raise.
            self.pinned_symbols.update(free)
            return s.node.pytype(s.node.hint) if s.node.hint is not None else s.node.pytype(s)
        if isinstance(node, fx.Node) and "val" not in node.meta:
            node.meta["val"] = s
        return node

    # -- argument mapping -----------------------------------------------------
    def lift(self, a: Any) -> tuple[Any, Any]:
        """(value to run the op with, FX argument) for one op argument."""
        if isinstance(a, torch.Tensor):
            hit = self.tensors.get(id(a))
            if hit is not None and hit[0]() is a:
                return a, hit[1]
            # Not produced by a traced op: a parameter/buffer or a constant.
            kind = "param" if isinstance(a, torch.nn.Parameter) else "tensor"
            if isinstance(a, FakeTensor) and self.fake_mode is not None and a.fake_mode is self.fake_mode:
                raise RuntimeError(
                    "make_fx: found a fake tensor that was not produced by a traced op "
                    f"(shape {tuple(a.shape)}); it cannot be turned into a graph constant")
            node = self.get_attr(a, kind)
            return self._attr_ids[id(a)][2], node
        if isinstance(a, (list, tuple)):
            if not a:
                return a, a
            run, arg = [], []
            changed = False
            for x in a:
                r, n = self.lift(x)
                changed |= r is not x
                run.append(r)
                arg.append(n)
            return (type(a)(run) if changed else a), (arg if isinstance(a, list) else tuple(arg))
        if isinstance(a, _SymTypes):
            return a, self.sym_arg(a)
        if isinstance(a, torch.Generator):
            return a, self.get_attr(a, "generator")
        if isinstance(a, (torch.UntypedStorage, torch.TypedStorage)):
            raise TypeError("make_fx: an op took a storage argument (e.g. Tensor.set_(storage, ...)); "
                            "storages cannot be graph arguments")
        return a, a

    def lift_all(self, args, kwargs):
        run_args, node_args = self.lift(args)
        if kwargs:
            run_kwargs, node_kwargs = {}, {}
            for k, v in kwargs.items():
                run_kwargs[k], node_kwargs[k] = self.lift(v)
        else:
            run_kwargs, node_kwargs = kwargs, {}
        return run_args, run_kwargs, tuple(node_args), node_kwargs

    # -- output tracking ------------------------------------------------------
    def track(self, out: Any, node: fx.Node) -> None:
        if isinstance(out, torch.Tensor):
            self.tensors[id(out)] = (weakref.ref(out), node)
            self.set_val(node, self.meta_of(out))
        elif isinstance(out, (list, tuple)):
            node.meta["val"] = self.meta_val(out)
            for i, o in enumerate(out):
                if isinstance(o, torch.Tensor):
                    g = self.create_node("call_function", operator.getitem, (node, i), {})
                    self.tensors[id(o)] = (weakref.ref(o), g)
                    self.set_val(g, node.meta["val"][i])
        else:
            node.meta["val"] = out

    # -- module stack -------------------------------------------------------------
    def module_stack(self) -> dict:
        """{path: (path, type)} of the nn.Modules being called on this thread, outermost
        first, from the Python stack: each `Module._call_impl` frame between here and this
        trace's `_trace` frame (the root module itself excluded). Read from the frames, so
        nothing process-wide is patched and concurrent traces on other threads are unaffected."""
        mods = []
        f = sys._getframe(1)
        while f is not None and f.f_code is not _TRACE_CODE:
            if f.f_code is _CALL_IMPL_CODE:
                mod = f.f_locals.get("self")
                if isinstance(mod, torch.nn.Module) and mod is not self.fn:
                    mods.append(mod)
            f = f.f_back
        stack = {}
        for mod in reversed(mods):
            path = self.module_path(mod)
            if path is None:
                path = self._unnamed.setdefault(id(mod), f"{type(mod).__name__.lower()}_{len(self._unnamed)}")
            stack[path] = (path, type(mod))
        return stack

    def module_path(self, mod: torch.nn.Module) -> Optional[str]:
        if self._module_paths is None:
            paths: dict[int, str] = {}
            for prefix, root in _module_roots(self.fn):
                for n, m in root.named_modules(remove_duplicate=False):
                    paths.setdefault(id(m), _join(prefix, n))
            self._module_paths = paths
        return self._module_paths.get(id(mod))


def _has_tensor(out: Any) -> bool:
    if isinstance(out, torch.Tensor):
        return True
    if isinstance(out, (list, tuple)):
        return any(isinstance(o, torch.Tensor) for o in out)
    return False


def _op_name(func) -> str:
    return func.overloadpacket.__name__


_DATA_DEP_HINTS = {
    aten._local_scalar_dense: " (Tensor.item() / tolist() / bool(tensor) / int(tensor))",
    aten.nonzero: " (torch.nonzero / Tensor.nonzero / boolean-mask indexing)",
}

_CIA_CACHE: dict = {}
_NEVER_DECOMPOSE = {aten.size.default, aten.stride.default, aten.storage_offset.default}


def _implicit_decomposes(func, args, kwargs) -> bool:
    """Would autograd have applied ``func``'s CompositeImplicitAutograd kernel?
    Only if the op has one and no kernel for the backend of its tensor args."""
    has = _CIA_CACHE.get(func)
    if has is None:
        try:
            has = (func not in _NEVER_DECOMPOSE and torch._C._dispatch_has_kernel_for_dispatch_key(
                func.name(), "CompositeImplicitAutograd"))
        except RuntimeError:  # prim:: ops are not registered with the dispatcher
            has = False
        _CIA_CACHE[func] = has
    if not has:
        return False
    devices = set()
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            devices.add(a.device.type)
        elif isinstance(a, (list, tuple)):
            devices.update(x.device.type for x in a if isinstance(x, torch.Tensor))
    name = func.name()
    for d in devices:
        key = torch._C._dispatch_key_for_device(d)
        if torch._C._dispatch_has_kernel_for_dispatch_key(name, key):
            return False
    return True


class _RecordingMode(TorchDispatchMode):
    """Records each aten op it sees into ``tracer.graph``."""

    def __init__(self, tracer: _Tracer) -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tr = self.tracer
        kwargs = kwargs or {}
        decomp = tr.decomp.get(func) if tr.decomp else None
        if decomp is not None:
            # Re-enter the mode so the decomposition's own ops are recorded.
            with self:
                r = decomp(*args, **kwargs)
            if r is not NotImplemented:
                return r
        if _implicit_decomposes(func, args, kwargs):
            # CompositeImplicitAutograd ops normally decompose above us, but
            # ops called from inside __torch_dispatch__ (e.g. by a decomposition)
            # or under inference mode skip that; decompose them here instead.
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        if func is aten.lift_fresh.default:
            # torch.tensor(...) lifts a fresh constant; copy it so later in-place
            # ops on the result cannot modify the GraphModule's constant.
            func = aten.lift_fresh_copy.default
        run_args, run_kwargs, node_args, node_kwargs = tr.lift_all(args, kwargs)
        if tr.fake_mode is not None:
            try:
                out = func(*run_args, **run_kwargs)
            except (DataDependentOutputException, DynamicOutputShapeException,
                    GuardOnDataDependentSymNode) as e:
                hint = _DATA_DEP_HINTS.get(func.overloadpacket, "")
                raise DataDependentError(
                    f"make_fx(tracing_mode={tr.mode!r}): {func}{hint} is data-dependent: its "
                    + ("output shape" if isinstance(e, DynamicOutputShapeException) else "result")
                    + " depends on tensor values, which are unknown when tracing with "
                    "fake tensors. Use tracing_mode='real' to bake the value in.") from e
        else:
            out = func(*run_args, **run_kwargs)
        if out is not None and not _has_tensor(out) and not func._schema.is_mutable:
            # Pure scalar result (item(), sym_size...): becomes a Python
            # constant / symbolic expression where it is used.
            return out
        node = tr.create_node("call_function", func, node_args, node_kwargs, _op_name(func))
        tr.track(out, node)
        return out


# ----------------------------------------------------------------------------
# Entry point.
# ----------------------------------------------------------------------------
def _check_args(fn, decomposition_table, tracing_mode, pre_dispatch, record_module_stack):
    if not callable(fn):
        raise TypeError(f"make_fx expects a callable, got {type(fn).__name__}")
    if not isinstance(tracing_mode, str):
        raise TypeError(f"tracing_mode must be a str, got {type(tracing_mode).__name__}")
    if tracing_mode not in TRACING_MODES:
        raise ValueError(f"unknown tracing_mode {tracing_mode!r}; expected one of {TRACING_MODES}")
    if decomposition_table is not None:
        if not isinstance(decomposition_table, dict):
            raise TypeError("decomposition_table must be a dict mapping OpOverload -> callable, "
                            f"got {type(decomposition_table).__name__}")
        for k, v in decomposition_table.items():
            if not isinstance(k, (torch._ops.OpOverload, torch._ops.OpOverloadPacket)):
                raise TypeError(f"decomposition_table key {k!r} is not an OpOverload")
            if not callable(v):
                raise TypeError(f"decomposition for {k} is not callable")
    for flag, name in ((pre_dispatch, "pre_dispatch"), (record_module_stack, "record_module_stack")):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")


def _normalize_decomps(table: Optional[dict]) -> dict:
    if not table:
        return {}
    out = {}
    for k, v in table.items():
        if isinstance(k, torch._ops.OpOverloadPacket):
            for ov in k.overloads():
                out.setdefault(getattr(k, ov), v)
        else:
            out[k] = v
    return out


@contextlib.contextmanager
def _no_autocast_cache():
    old = torch.is_autocast_cache_enabled()
    torch.set_autocast_cache_enabled(False)
    try:
        yield
    finally:
        torch.set_autocast_cache_enabled(old)


def _find_fake_mode(flat) -> Optional[FakeTensorMode]:
    for a in flat:
        if isinstance(a, FakeTensor):
            return a.fake_mode
    return None


def _trace(fn, args: tuple, mode: str, decomp: dict, record_module_stack: bool) -> fx.GraphModule:
    flat, in_spec = pytree.tree_flatten(args)
    fake_mode = None
    if mode != "real":
        fake_mode = _find_fake_mode(flat)
        if fake_mode is None:
            shape_env = None
            if mode == "symbolic":
                # Data-dependent scalars/shapes must raise, not become unbacked symbols.
                shape_env = ShapeEnv(allow_scalar_outputs=False,
                                     allow_dynamic_output_shape_ops=False)
            fake_mode = FakeTensorMode(shape_env=shape_env, allow_non_fake_inputs=False)
        elif mode == "symbolic" and fake_mode.shape_env is None:
            raise ValueError("tracing_mode='symbolic' got fake inputs from a FakeTensorMode "
                             "without a ShapeEnv")
    tracer = _Tracer(fn, mode, decomp, record_module_stack, fake_mode)
    graph = tracer.graph

    run_flat = []
    names = []
    for i, a in enumerate(flat):
        ph = graph.placeholder(f"arg{i}")
        names.append(ph.name)
        v = a
        if isinstance(a, torch.Tensor):
            if fake_mode is not None and not isinstance(a, FakeTensor):
                if mode == "symbolic":
                    ctx = StatelessSymbolicContext(dynamic_sizes=[DimDynamic.DYNAMIC] * a.dim())
                    v = fake_mode.from_tensor(a, source=_InputSource(f"input{i}"),
                                              symbolic_context=ctx)
                else:
                    v = fake_mode.from_tensor(a)
            tracer.tensors[id(v)] = (weakref.ref(v), ph)
            tracer.set_val(ph, tracer.meta_of(v))
            if fake_mode is not None and fake_mode.shape_env is not None:
                _register_symbols(tracer, v, ph)
        elif isinstance(a, _SymTypes):
            expr = a.node.expr
            if getattr(expr, "is_Symbol", False):
                tracer.symbol_sources.setdefault(expr, lambda ph=ph: ph)
            ph.meta["val"] = a
        else:
            ph.meta["val"] = a
        run_flat.append(v)
    run_args = pytree.tree_unflatten(run_flat, in_spec)

    ctx = contextlib.ExitStack()
    with ctx:
        if fake_mode is not None:
            ctx.enter_context(fake_mode)
        if mode == "symbolic":
            # Python-registered meta kernels (SymInt-aware) only run under the
            # Python dispatcher; C++ CompositeExplicit kernels reject SymInts.
            ctx.enter_context(enable_python_dispatcher())
        # The autocast weight cache would hand back untracked tensors.
        ctx.enter_context(_no_autocast_cache())
        ctx.enter_context(_RecordingMode(tracer))
        out = fn(*run_args)

    out_flat, out_spec = pytree.tree_flatten(out)
    out_args = []
    for o in out_flat:
        if isinstance(o, torch.Tensor) or isinstance(o, _SymTypes):
            out_args.append(tracer.lift(o)[1])
        else:
            out_args.append(o)
    if mode == "symbolic":
        # checks go first, inserted in the graph before any computation
        graph.output(out_args)
        _add_runtime_checks(tracer, graph, fake_mode.shape_env)
    else:
        graph.output(out_args)
    # forward() takes the original (unflattened) args; the codegen flattens
    # them with in_spec into the per-leaf placeholders.
    if len(names) == len(args) and all(pytree.tree_is_leaf(a) for a in args):
        top_names = names
    else:
        top_names = [f"args_{j}" for j in range(len(args))]
    graph._codegen = _PyTreeCodeGen(_PyTreeInfo(top_names, in_spec, out_spec))
    _negative_pow_bases(graph)
    gm = fx.GraphModule(tracer.attrs, graph, class_name=_class_name(fn))
    if mode == "symbolic":
        gm.shape_env = fake_mode.shape_env  # for callers inspecting guards/symbols
    return gm


def _negative_pow_bases(graph: fx.Graph) -> None:
    """fx prints `operator.pow(-2, n)` as `-2 ** n`, which Python reads as -(2 ** n): a
    negative constant base gets a node of its own (`neg = -2`) before the power."""
    for node in list(graph.nodes):
        if node.op == "call_function" and node.target is operator.pow and node.args \
                and type(node.args[0]) in (int, float) and repr(node.args[0]).startswith("-"):
            with graph.inserting_before(node):
                base = graph.call_function(operator.neg, (-node.args[0],))
            base.meta["val"] = node.args[0]
            node.args = (base, *node.args[1:])


def _register_symbols(tracer: _Tracer, v: torch.Tensor, ph: fx.Node) -> None:
    """Read each size/stride/offset of input ``v`` from placeholder ``ph`` right away (an
    in-place shape op later in fn must not change what the read sees). A fresh symbol maps to
    its read; a dim whose symbol another input already owns (equal sizes share a symbol) or
    that was specialized to a constant (sizes 0 and 1) gets a runtime check instead, so the
    graph raises rather than computing garbage for inputs where that no longer holds."""
    def read(target, *extra, val):
        n = tracer.graph.create_node("call_function", target, (ph, *extra), {}, _op_name(target))
        n.meta["val"] = val
        tracer.symbol_reads.append(n)
        return n

    def bind(value, target, *extra):
        n = read(target, *extra, val=value)
        if isinstance(value, torch.SymInt) and value.node.expr.is_Symbol:
            expr = value.node.expr
            if expr not in tracer.symbol_sources:
                tracer.symbol_sources[expr] = lambda n=n: n
                return
            tracer.input_checks.append((n, expr))          # duck-sized: must equal the owner
        elif not isinstance(value, torch.SymInt):
            tracer.input_checks.append((n, int(value)))     # specialized: must stay this value

    for d, s in enumerate(v.shape):
        bind(s, aten.sym_size.int, d)
    if v.layout is not torch.strided:
        return
    for d, s in enumerate(v.stride()):
        if isinstance(s, torch.SymInt):
            bind(s, aten.sym_stride.int, d)
    off = v.storage_offset()
    if isinstance(off, torch.SymInt):
        bind(off, aten.sym_storage_offset.default)


def _add_runtime_checks(tracer: _Tracer, graph: fx.Graph, shape_env) -> None:
    """Turn what the symbolic trace assumed into torch._check nodes before the first
    computation: the ShapeEnv's guards, duck-sized and specialized input dims, and the
    symbols of size expressions that had to be specialized."""
    anchor = tracer.symbol_reads[-1] if tracer.symbol_reads else None
    if anchor is None:
        return
    # a fresh emitter: the trace's cache points at nodes later in the graph than these checks
    emit = SymExprEmitter(tracer._symbol_node, tracer._call_sym, tracer._sym_val).emit
    with graph.inserting_before(anchor.next):     # before a fixed node: keeps creation order
        checks = []
        def eq(a, b):
            node = graph.call_function(operator.eq, (a, b))
            node.meta["val"] = True          # holds for the trace's inputs
            return node

        for n, want in tracer.input_checks:
            checks.append(eq(n, emit(want) if isinstance(want, sympy.Basic) else want))
        for g in list(shape_env.guards):
            try:
                checks.append(emit(g.expr))
                continue
            except (KeyError, UnsupportedSymExpr):
                pass
            # again with the ShapeEnv's replacements: a symbol pinned to a number (`Eq(s1, 6)`:
            # the input's dim is a constant here, read by no placeholder) is that number, not a
            # symbol the checks cannot read, which pinned every other symbol of the guard to its
            # hint (`x.reshape(-1, 6)` then raised for any other batch size; red team 14)
            expr = shape_env.replace(g.expr)
            if expr is sympy.true:
                continue
            try:
                checks.append(emit(expr))
            except (KeyError, UnsupportedSymExpr):
                for sym in expr.free_symbols:
                    tracer.pinned_symbols.add(sym)
        for sym in tracer.pinned_symbols:
            hint = shape_env.backed_var_to_val.get(sym)
            if hint is not None and sym in tracer.symbol_sources:
                checks.append(eq(tracer._symbol_node(sym), int(hint)))
        for c in checks:
            if isinstance(c, fx.Node):
                graph.call_function(torch._check, (c,)).meta["val"] = None
    for n in list(tracer.symbol_reads):          # reads nothing ended up using
        if not n.users:
            graph.erase_node(n)


_TRACE_CODE = _trace.__code__
_CALL_IMPL_CODE = torch.nn.Module._call_impl.__code__


def _class_name(fn) -> str:
    if isinstance(fn, torch.nn.Module):
        return type(fn).__name__
    return "GraphModule"


def make_fx(fn: Callable, decomposition_table: Optional[dict] = None,
            tracing_mode: str = "real", pre_dispatch: bool = False,
            record_module_stack: bool = False) -> Callable[..., fx.GraphModule]:
    """Return a function that traces ``fn`` on example args into an aten-level
    ``fx.GraphModule``.  See docs/make_fx.md."""
    _check_args(fn, decomposition_table, tracing_mode, pre_dispatch, record_module_stack)
    decomp = _normalize_decomps(decomposition_table)

    @functools.wraps(fn if not isinstance(fn, torch.nn.Module) else fn.forward)
    def wrapped(*args):
        # pre_dispatch is accepted but traces at the same (post-autograd) level.
        return _trace(fn, args, tracing_mode, decomp, record_module_stack)

    return wrapped
