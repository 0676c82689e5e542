"""GraphBuilder: records tensor work into a torch.fx Graph with fake example values.

Every tensor the tracer sees is a (fx Node, FakeTensor) pair. Inputs become
placeholders: one per distinct tensor object from the caller's world (user
arguments, parameters, buffers, global tensors), in first-use order; `inputs`
keeps the Source of each so the entry function can fetch them per call.

`call(kind, target, args, kwargs)` takes already-converted fx arguments and the
matching fake arguments, runs the target on the fakes under FakeTensorMode to
learn the output's metadata, and creates the node. Failures of that fake run
are classified: data-dependent output -> Unsupported; anything else -> the
user's code would raise -> UserError (eager reproduces the real exception).

Mutation is observed, not inferred from names: each fake run compares the version
counters of the fake tensors it was given (views share their base's counter), and the
fake mode's dispatch notes every aten call whose schema writes into an argument (this
covers ops without a version-counter kernel: foreach ops, old-style custom ops, and
inference tensors, which have no counter). `run_fake` reports whether the op wrote into
one of its tensor arguments; `mutates_inputs()` says whether the graph writes into a
placeholder's storage.
"""
import contextlib
import functools
import logging
import math
import operator
import struct
import weakref

import torch
import torch.fx
import torch.utils._pytree as pytree
from torch._subclasses.fake_tensor import (
    FakeTensor, FakeTensorMode, DataDependentOutputException, DynamicOutputShapeException,
    UnsupportedOperatorException)

from ..warn_filters import front_filter
from ..exc import Unsupported, UserError
from .fake_memo import FakeMemo


def _noting_writes(dispatch, builder):
    """Wrap a FakeTensorMode's `dispatch` so that, while `builder.writes` is a list, every
    aten call whose schema writes into an argument (`Tensor(a!)`) is appended to it with its
    arguments. An instance attribute, not a subclass: torch looks up per-mode kernels (higher
    order ops, py_impl) by the mode's exact type. The builder is held weakly: fake values in a
    compiled graph's node meta keep the mode alive, and the builder holds the trace's real input
    tensors, which a cache entry must not keep alive."""
    builder_ref = weakref.ref(builder)

    def noting(func, types, args=(), kwargs=None):
        b = builder_ref()
        writes = b.writes if b is not None else None
        if writes is not None:
            schema = getattr(func, "_schema", None)
            if schema is not None and schema.is_mutable:
                writes.append((func, args, kwargs))
        if b is not None and not b.seeded and _SEEDED in getattr(func, "tags", ()):
            b.seeded = True            # draws random numbers (runtime/rerun.py: RNG snapshot)
        if b is not None and b.roots and reads_data(func) and _has_constant((args, kwargs)):
            b.reads.append(func)       # values/known.py: which roots' values it read
        if b is not None and func is _ITEM and b.shape_env is not None and args and not _has_constant((args, kwargs)):
            b.item_reads.append(id(args[0]))   # an op took a tensor's value as a number (values/tensor.py)
        return dispatch(func, types, args, kwargs)
    return noting


_NEEDS_CONCRETE = "expected to contain only concrete integers"
_SEEDED = torch.Tag.nondeterministic_seeded
_ITEM = torch.ops.aten._local_scalar_dense.default


_READ_OPS = {}


def reads_data(func):
    """Does this aten op turn tensor data into a Python value or a size (item, bool, nonzero)?"""
    r = _READ_OPS.get(func)
    if r is None:
        tags = getattr(func, "tags", ())
        r = _READ_OPS[func] = getattr(func, "__name__", "").split(".")[0] in (
            "_local_scalar_dense", "is_nonzero", "equal", "item") or \
            torch.Tag.dynamic_output_shape in tags or torch.Tag.data_dependent_output in tags
    return r


def _has_constant(obj):
    fakes = []
    _collect_fakes(obj, fakes)
    return any(type(f) is FakeTensor and f.constant is not None for f in fakes)


NEEDS_SHAPE_ENV = "needs_shape_env"

_SHAPE_ENV_CLASS = []


def new_shape_env(**kwargs):
    """A ShapeEnv that does not look for the user's frame when it makes a symbol or records a
    guard. torch's ShapeEnv walks the Python stack for a location to attach to each one (shown
    in its own logs and errors), and its first walk imports the modules whose frames it skips --
    torch.export._trace, torch._inductor.sizevars and through them networkx, about 0.25 s of CPU
    once per process, inside the first dynamic trace. bytegraph names the user's line itself
    (ConstraintViolation, Unsupported), so each symbol and guard gets a fixed location instead."""
    if not _SHAPE_ENV_CLASS:
        from torch._guards import SLoc
        from torch.fx.experimental.symbolic_shapes import ShapeEnv, DimDynamic

        class BytegraphShapeEnv(ShapeEnv):
            # names (SymSource) of the inputs whose strides and offset get symbols of their
            # own (GraphBuilder.add_input with layout=True)
            free_layout = frozenset()

            def _get_stack_summary(self, is_debug=False, framework_loc=None):
                return SLoc(framework_loc if framework_loc is not None else "bytegraph trace",
                            None), ""

            def create_symbol(self, val, source, dynamic_dim=DimDynamic.DUCK, *args, **kwargs):
                # A free-layout input's stride or offset: a symbol of its own, not one shared with
                # another value that happens to be equal now (duck sizing: a row's offset 4 is no
                # relative of a size 4), and 0 and 1 not specialized (the first rows' offsets)
                if self.free_layout and dynamic_dim is DimDynamic.DUCK \
                        and getattr(getattr(source, "prop", None), "name", None) in ("STRIDE", "STORAGE_OFFSET") \
                        and getattr(getattr(source, "base", None), "hint", None) in self.free_layout:
                    dynamic_dim = DimDynamic.DYNAMIC
                    kwargs["do_not_specialize_zero_one"] = True
                return super().create_symbol(val, source, dynamic_dim, *args, **kwargs)
        _SHAPE_ENV_CLASS.append(BytegraphShapeEnv)
    return _SHAPE_ENV_CLASS[0](**kwargs)


class GraphBuilder:
    def __init__(self, shape_env=False):
        self.graph = torch.fx.Graph()
        # A ShapeEnv lets ops with data-dependent output sizes (x[mask], nonzero) produce
        # unbacked sizes, and holds the symbols of dynamic dimensions (add_input with dims,
        # add_sym_input). Building one imports sympy and torch._dynamo (its validator), about
        # a second: only traces that meet such an op or have a dynamic input get one (convert
        # retries them with shape_env=True).
        env = None
        if shape_env:
            env = new_shape_env()
        self.has_shape_env = shape_env
        self.shape_env = env
        self.symbols = {}         # sympy Symbol of an input -> (source, dim or None for an int)
        self.marked = {}          # Symbol -> "L['x'] dim 0": dims marked dynamic (strict)
        self.sym_values = {}      # Symbol of a tensor dim -> its SymInt
        self.fake_mode = FakeTensorMode(allow_non_fake_inputs=False, shape_env=env)
        if env is not None:
            # with symbols, FakeTensorMode's dispatch cache costs more than it saves: building
            # and validating an entry re-derives symbolic sizes and strides, and a trace rarely
            # repeats an op on the same symbolic metadata (GPT-2/BERT/T5 dynamic recompiles: 17-27%
            # fewer Python calls without it; docs/dynamic_shapes.md). A pure optimization either way.
            self.fake_mode.cache_enabled = False
        self.writes = None                # see _noting_writes
        self.fake_mode.dispatch = _noting_writes(self.fake_mode.dispatch, self)
        self.memo = FakeMemo(self.fake_mode) if env is not None else None
        self.mutated_storages = set()   # storage keys of fake tensors some op wrote into
        self.seeded = False             # an op of the trace draws from a random generator
        # unbacked symbol -> where the trace made it ((frame, instruction, step) from the
        # innermost out): a later need for its value stops the trace at that op instead
        self.unbacked_at = {}
        self.inputs = []          # [(source, real tensor)] in placeholder order
        self.placeholders = []    # fx Nodes, parallel to inputs
        self._by_id = {}          # id(real tensor) -> (node, fake)
        self._names = set()
        self.num_ops = 0
        self.vmap_bodies = False  # a vmap body's sub-graph was made: refuse its nodes (policy/vmap.py)
        # values/known.py: module-state scalars whose fakes carry their value (Source -> real
        # tensor), their fakes by storage, and the data reads of constants the fake mode made
        self.roots = {}
        self.root_fakes = {}
        self.root_keys = {}       # root Source -> its fake's storage key
        self.taint = {}           # storage key of a constant an op wrote roots' values into -> roots
        self.reads = []
        self.item_reads = []      # ids of fakes with no value whose `item()` an op's fake run made
        self._root_storages = {}  # a real root's storage key -> the copy its values live in

    # --- inputs ------------------------------------------------------------
    def add_input(self, source, tensor, dims=None, layout=False):
        """Placeholder for a caller-world tensor; returns (node, fake, first_source or None).
        `dims`: {dim: (min, max, strict)} of the dimensions to make symbolic (needs a ShapeEnv).
        `layout`: its strides and storage offset get symbols of their own (a tensor with a
        size-1 dimension: torch makes them symbolic only when a size is asked to be, and a
        size-1 dimension asked to be stays 1; see runtime/dynamic.py `layout_free`)."""
        hit = self._by_id.get(id(tensor))
        if hit is not None:
            return hit[0], hit[1], hit[2]
        name = self._unique(_sanitize(source.name_hint()))
        node = self.graph.placeholder(name)
        if layout:
            self.shape_env.free_layout = self.shape_env.free_layout | {source.name_hint()}
            dims = dict(dims or ())
            for d, n in enumerate(tensor.shape):
                if n == 1:
                    dims.setdefault(d, (None, None, False))
        if dims:
            fake = self._symbolic_fake(source, tensor, dims)
        else:
            fake = self.fake_mode.from_tensor(tensor, static_shapes=True)
        node.meta["example_value"] = fake
        node.meta["source"] = source.name_hint()
        self.inputs.append((source, tensor))
        self.placeholders.append(node)
        self._by_id[id(tensor)] = (node, fake, source)
        return node, fake, None

    def _symbolic_fake(self, source, tensor, dims):
        from torch.fx.experimental.symbolic_shapes import DimDynamic, StatelessSymbolicContext
        kinds = [DimDynamic.DYNAMIC if d in dims else DimDynamic.STATIC for d in range(tensor.dim())]
        fake = self.fake_mode.from_tensor(tensor, source=SymSource(source.name_hint()),
                                          symbolic_context=StatelessSymbolicContext(dynamic_sizes=kinds))
        # strides and the offset get symbols of their own when they are not a product of
        # the sizes (a non-contiguous input): each symbol is owned by the first place it shows
        where = [(size, d) for d, size in enumerate(fake.shape)]
        if fake.layout is torch.strided:
            where += [(st, ("stride", d)) for d, st in enumerate(fake.stride())]
            where.append((fake.storage_offset(), ("offset",)))
        for v, at in where:
            expr = v.node.expr if isinstance(v, torch.SymInt) else None
            if expr is not None and expr.is_Symbol and expr not in self.symbols:
                self.symbols[expr] = (source, at)
                self.sym_values[expr] = v
        for d, size in enumerate(fake.shape):
            expr = size.node.expr if isinstance(size, torch.SymInt) else None
            if expr is None or not expr.is_Symbol:
                continue                       # static, or specialized (sizes 0 and 1)
            lo, hi, strict = dims[d]
            if lo is not None or hi is not None:
                vr = self.shape_env.var_to_range[expr]
                self.shape_env.constrain_symbol_range(expr, vr.lower if lo is None else lo,
                                                      vr.upper if hi is None else hi)
            if strict:
                self.marked[expr] = f"{source.name_hint()} dim {d}"
        return fake

    def add_sym_input(self, source, value):
        """A placeholder for an int (float) argument made dynamic: returns (node, SymInt or SymFloat), or None when
        the ShapeEnv specializes the value (0 and 1)."""
        from torch.fx.experimental.symbolic_shapes import DimDynamic
        env, src = self.shape_env, SymSource(source.name_hint())
        hit = self._by_id.get(("int", source))
        if hit is not None:
            return hit
        if type(value) is float:
            sym = env.create_symfloatnode(env.create_unspecified_symbol(
                value, source=src, dynamic_dim=DimDynamic.DYNAMIC), hint=value, source=src)
        else:
            sym = env.create_symintnode(env.create_symbol(value, source=src, dynamic_dim=DimDynamic.DYNAMIC,
                                                          positive=None),
                                        hint=value, source=src)
        if not isinstance(sym, (torch.SymInt, torch.SymFloat)) or not sym.node.expr.is_Symbol:
            return None
        node = self.graph.placeholder(self._unique(_sanitize(source.name_hint())))
        node.meta["example_value"] = sym
        node.meta["source"] = source.name_hint()
        self.inputs.append((source, sym))
        self.placeholders.append(node)
        self.symbols.setdefault(sym.node.expr, (source, None))
        self._by_id[("int", source)] = (node, sym)
        return node, sym

    def symbol_input(self, expr):
        """The index in `inputs` of the int input carrying symbol `expr` (a tensor dim's symbol
        gets one on first request, fetched as `x.size(d)`); None if no input provides it."""
        owner = self.symbols.get(expr)
        if owner is None:
            return None
        source, d = owner
        if d is None:
            node = self._by_id[("int", source)][0]
            return self.placeholders.index(node)
        key = ("size", source, d)
        hit = self._by_id.get(key)
        if hit is None:
            from ..sources import SizeSource
            src = SizeSource(source, d)
            first = next((n for n in self.graph.nodes if n.op != "placeholder"), None)
            with self.graph.inserting_before(first):
                node = self.graph.placeholder(self._unique(_sanitize(src.name_hint())))
            node.meta["example_value"] = self.sym_values[expr]
            node.meta["source"] = src.name_hint()
            self.inputs.append((src, self.sym_values[expr]))
            self.placeholders.append(node)
            hit = self._by_id[key] = (node, self.sym_values[expr], src)
        return self.placeholders.index(hit[0])

    def marked_in(self, sym):
        """Names of the strictly marked dims among the symbols of `sym` (a Sym value)."""
        if not self.marked:
            return ()
        return {self.marked[s] for s in sym.node.expr.free_symbols if s in self.marked}

    def specialized_marks(self):
        """Marked dims the ShapeEnv has replaced by a constant (forced static by the trace)."""
        if not self.marked:
            return ()
        return {desc for s, desc in self.marked.items()
                if getattr(self.shape_env.replacements.get(s), "is_number", False)}

    def _unique(self, base):
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    # --- ops -----------------------------------------------------------------
    def run_fake(self, kind, target, fake_args, fake_kwargs, run_fake=None):
        """Run target on fake arguments; classify failures (see module docstring).
        Returns (result, mutated): mutated is True when the op wrote into one of its tensor
        arguments (or into a tensor sharing storage with one)."""
        tensors = []
        _collect_fakes(fake_args, tensors)
        _collect_fakes(fake_kwargs, tensors)
        key = None
        if self.memo is not None and run_fake is None:
            # a repeat of an earlier call on the same metadata (a model's second layer)
            key = self.memo.key(kind, target, fake_args, fake_kwargs, bool(self.symbols))
            if key is not None:
                hit = self.memo.replay(key, self)
                if hit is not None:
                    return hit, False
        before = [_version(t) for t in tensors]
        consts = [(t, t.constant, t.constant.clone()) for t in tensors
                  if getattr(t, "constant", None) is not None]
        outer, writes = self.writes, []
        self.writes = writes
        n_vars = len(self.shape_env.var_to_range) if key is not None else 0
        try:
            result = self._run_classified(run_fake or _runner(kind, target), target, fake_args,
                                          fake_kwargs)
        finally:
            self.writes = outer
        mutated = self._note_mutation(tensors, before, writes)
        if mutated and consts:
            _forget_unwritten_constants(self.fake_mode, consts, self.mutated_storages)
        if consts and _has_sym_scalar((fake_args, fake_kwargs)):
            # (the fake mode computes on values only when every tensor input carries one)
            _forget_hinted_constants(self.fake_mode, result, consts)
        if key is not None:
            # an op that made a new (unbacked) symbol is not a function of its inputs' metadata
            fresh = len(self.shape_env.var_to_range) != n_vars
            self.memo.store(key, result, tensors, self, ok=not (mutated or writes or fresh))
        return result, mutated

    def note_unbacked(self, n_before, chain):
        """The symbols an op just added to the ShapeEnv (beyond the first n_before) were made
        at `chain`. They are bound by the graph's own nodes: a compiling backend that lowers
        the graph in this ShapeEnv (dynamic shapes) would otherwise find them pending and
        refuse the graph (PendingUnbackedSymbolNotFound)."""
        for sym in list(self.shape_env.var_to_range)[n_before:]:
            self.unbacked_at.setdefault(sym, chain)
        self.shape_env.pending_fresh_unbacked_symbols.clear()

    def producer_of(self, symbols):
        """Where the trace made one of these unbacked symbols (the earliest), or None."""
        chains = [self.unbacked_at[s] for s in symbols if s in self.unbacked_at]
        return min(chains, key=lambda c: c[0][2]) if chains else None

    def _run_classified(self, fn, target, fake_args, fake_kwargs):
        try:
            # warnings belong to the real run (the graph emits them when it runs): none here
            # with symbols, the Python dispatcher runs the SymInt-aware Python meta kernels
            # (pad, interpolate, ...) instead of C++ kernels that need concrete sizes
            with self.fake_mode, front_filter("ignore"), self._dispatcher(), _quiet_fake_log():
                result = fn(*fake_args, **fake_kwargs)
            if _has_real_tensor(result):
                raise Unsupported(f"{_target_name(target)} returned a real tensor while tracing "
                                  "(it reads process state, e.g. the RNG state)", kind="real_tensor")
            return result
        except (DataDependentOutputException, DynamicOutputShapeException) as e:
            if not self.has_shape_env and isinstance(e, DynamicOutputShapeException):
                raise Unsupported(f"{_target_name(target)} has a data-dependent output size",
                                  kind=NEEDS_SHAPE_ENV)
            raise Unsupported(f"data-dependent operator {_target_name(target)}: {type(e).__name__}",
                              kind="data_dependent",
                              hint="the result depends on tensor values, which are unknown while tracing")
        except UnsupportedOperatorException as e:
            raise Unsupported(f"operator without a fake kernel: {e}", kind="no_fake_kernel")
        except Unsupported:
            raise
        except Exception as e:  # the user's code fails on these inputs
            if "GuardOnDataDependentSymNode" in type(e).__name__ or "data-dependent" in str(e) or \
                    _NEEDS_CONCRETE in str(e) and self.shape_env is not None:
                # (a kernel that needs concrete sizes given symbols: with a ShapeEnv, the fake
                # `item()` of a tensor in an int list is an unbacked symbol, which pad's C++
                # kernel refuses; eager would read the value)
                raise Unsupported(f"{_target_name(target)} needs a data-dependent size",
                                  kind="data_dependent")
            if "FakeTensor" in str(e):
                raise Unsupported(f"{_target_name(target)} failed on fake tensors: {e}", kind="fake_tensor")
            err = UserError(e)
            err.from_graph = True   # raised by a fake op: its message is not the real one
            raise err

    def _dispatcher(self):
        if not self.symbols:
            return contextlib.nullcontext()
        from torch._dispatch.python import enable_python_dispatcher
        return enable_python_dispatcher()

    def _note_mutation(self, tensors, before, writes):
        """Did the op just run write into one of `tensors`? Records the written storages."""
        written = [t for t, v in zip(tensors, before) if v is not None and _version(t) != v]
        if writes:
            mine = {_storage_key(t) for t in tensors}
            for func, args, kwargs in writes:
                for t in _written_args(func, args, kwargs):
                    if _storage_key(t) in mine:
                        written.append(t)
        for t in written:
            key = _storage_key(t)
            self.mutated_storages.add(key)
            for f in self.root_fakes.get(key, ()):
                if f.constant is not None:     # a written root's value is no longer known
                    self.fake_mode.fake_tensor_converter.invalidate_constant_aliases(f.constant)
                    f.constant = None
        return bool(written)

    def add_root(self, source, tensor, fake):
        """Let `fake` carry `tensor`'s value (values/known.py): a copy, one per real storage, so
        that the fake mode's constant propagation writes it as eager would write the tensor, and
        a write to any alias forgets them all."""
        clones = self._root_storages
        real_key = _storage_key(tensor)
        st = clones.get(real_key)
        if st is None:
            st = clones[real_key] = tensor.untyped_storage().clone()
        const = torch.empty(0, dtype=tensor.dtype).set_(st, tensor.storage_offset(), tensor.size(),
                                                         tensor.stride())
        fake.constant = const
        self.fake_mode.fake_tensor_converter.add_constant_storage_mapping(fake)
        self.roots[source] = tensor
        self.root_keys[source] = _storage_key(fake)
        self.root_fakes.setdefault(_storage_key(fake), []).append(fake)

    def add_literal(self, fake, tensor):
        """Let `fake`, which the trace made from Python constants only, carry that value
        (`tensor`, computed by the same factory call): values/known.py `literal`."""
        fake.constant = tensor
        self.fake_mode.fake_tensor_converter.add_constant_storage_mapping(fake)

    def forget_roots(self):
        """Drop the roots' values from their fakes (the graph's placeholders' example values)."""
        for fakes in self.root_fakes.values():
            for f in fakes:
                f.constant = None

    def release_real_tensors(self):
        """Forget the real tensors the fake mode converted. Its memo holds a weak reference to
        each (a parameter, an input), which the graph's fake example values keep alive for as long
        as the entry lives, and torch.utils.swap_tensors (`Module._apply` under
        `torch.__future__.set_swap_module_params_on_conversion(True)`) refuses a tensor with
        weak references. Call once nothing will convert another real tensor in this mode."""
        describer = self.fake_mode.fake_tensor_converter.meta_converter.describer
        describer.lookup_tensor.clear()
        describer.lookup_storage.clear()

    def mutates_inputs(self):
        """Does the graph write into the storage of any placeholder?"""
        if not self.mutated_storages:
            return False
        return any(_storage_key(node.meta["example_value"]) in self.mutated_storages
                   for node in self.placeholders if isinstance(node.meta["example_value"], torch.Tensor))

    def device_types(self):
        """Device types of every tensor the graph takes or computes."""
        tensors = []
        for node in self.graph.nodes:
            _collect_fakes(node.meta.get("example_value"), tensors)
        return {t.device.type for t in tensors}

    def create(self, kind, target, fx_args, fx_kwargs, fake, counts=True):
        """Append a node; `counts=False` for state switches (grad mode, autocast) that are
        not tensor work: a graph with only those is not worth compiling."""
        if kind == "call_function" and target is operator.pow and fx_args \
                and type(fx_args[0]) in (int, float) and repr(fx_args[0]).startswith("-"):
            # fx prints operator.pow as `a ** b` with a constant in place: `-2 ** n` is
            # -(2 ** n). A negative base is computed by a node of its own (`neg = -2`).
            base = self.graph.create_node("call_function", operator.neg, (-fx_args[0],), {})
            base.meta["example_value"] = fx_args[0]
            base.meta["counts"] = False
            fx_args = (base, *fx_args[1:])
        if self.vmap_bodies:
            torch.fx.node.map_arg((fx_args, fx_kwargs), _not_vmap_body)
        if _has_nan(fx_args) or _has_nan(fx_kwargs):
            fx_args, fx_kwargs = self._signed_nans(fx_args), self._signed_nans(fx_kwargs)
        if any(type(a) is type for a in fx_args) or any(type(a) is type for a in fx_kwargs.values()):
            fx_args, fx_kwargs = _torch_dtypes(fx_args, fx_kwargs)
        node = self.graph.create_node(kind, target, tuple(fx_args), dict(fx_kwargs))
        node.meta["example_value"] = fake
        if counts:
            self.num_ops += 1
        else:
            node.meta["counts"] = False
        return node

    def _signed_nans(self, x):
        """fx prints every float nan constant as `nan` (math.nan): a nan with its sign bit set
        (what `0 * inf`, `inf - inf` and `0 / 0` give on x86, and `-nan`) would lose its sign,
        which copysign, signbit and a tensor filled with it show. Such a constant is computed by a
        node of its own (`neg = -nan`); `check_constants` refused any other nan payload."""
        t = type(x)
        if t is float and x != x and _bits(x) == _NEG_NAN:
            node = self.graph.create_node("call_function", operator.neg, (math.nan,), {})
            node.meta["example_value"] = x
            node.meta["counts"] = False
            return node
        if t in (list, tuple):
            return t(self._signed_nans(i) for i in x)
        if t is dict:
            return {k: self._signed_nans(v) for k, v in x.items()}
        if t is slice:
            return slice(*(self._signed_nans(i) for i in (x.start, x.stop, x.step)))
        return x

    def last_node(self):
        """The newest node that is not a placeholder (None if there is none): a graph break
        cuts the graph after it."""
        for node in reversed(self.graph.nodes):
            if node.op != "placeholder":
                return node
        return None

    def getitem(self, node, fake, i):
        n = self.graph.create_node("call_function", operator.getitem, (node, i), {})
        n.meta["example_value"] = fake
        return n

    def output(self, nodes):
        self.graph.output(tuple(nodes))


# a Python scalar type given as a dtype (`torch.tensor(0, dtype=int)`, `x.to(float)`) is the
# torch dtype torch makes of it; fx would print the class itself (`dtype = <class 'int'>`), which
# is not Python
_PY_DTYPES = {int: torch.int64, float: torch.float64, bool: torch.bool, complex: torch.complex128}


def _torch_dtypes(fx_args, fx_kwargs):
    def conv(a):
        return _PY_DTYPES.get(a, a) if type(a) is type else a
    return tuple(conv(a) for a in fx_args), {k: conv(v) for k, v in fx_kwargs.items()}


_FAKE_LOG = logging.getLogger("torch._subclasses.fake_tensor")


@contextlib.contextmanager
def _quiet_fake_log():
    """FakeTensorMode logs every failing meta kernel at ERROR level (with a traceback) before
    raising; a fake run that fails here becomes a graph break or eager's own error, so the
    record would only be noise on the user's console."""
    was = _FAKE_LOG.disabled
    _FAKE_LOG.disabled = True
    try:
        yield
    finally:
        _FAKE_LOG.disabled = was


def _not_vmap_body(node):
    if node.meta.get("vmap_body"):
        raise Unsupported("a tensor computed inside a torch.vmap body is used outside it",
                          kind="vmap_escape")
    return node


_bits = struct.Struct("<d").pack
_NAN, _NEG_NAN = _bits(math.nan), _bits(-math.nan)


def _any_leaf(x, pred):
    """Does `pred` hold for a leaf anywhere in node arguments `x` (inside lists, tuples, dict
    values and slices)?"""
    t = type(x)
    if t in (list, tuple):
        return any(_any_leaf(i, pred) for i in x)
    if t is dict:
        return any(_any_leaf(i, pred) for i in x.values())
    if t is slice:
        return _any_leaf((x.start, x.stop, x.step), pred)
    return pred(x)


def _any_constant(x, pred):
    """Does `pred` hold for a float or complex constant anywhere in node arguments `x`?"""
    return _any_leaf(x, lambda c: (type(c) is float or type(c) is complex) and pred(c))


_UNPRINTABLE = (pytree.TreeSpec,)


def _has_nan(x):
    return _any_constant(x, lambda c: c != c)


def check_constants(fx_args, fx_kwargs, what):
    """Refuse a nan constant the graph's Python code cannot spell: fx prints any float nan as
    `nan` (math.nan's bits). `nan` and `-nan` are kept (GraphBuilder._signed_nans); a nan with
    another payload, or a complex with a nan part, would be a different value in the graph."""
    def exotic(c):
        return c != c and (type(c) is complex or _bits(c) not in (_NAN, _NEG_NAN))
    if _any_constant((fx_args, fx_kwargs), exotic):
        raise Unsupported(f"{what} takes a nan constant whose bits a graph cannot keep", kind="nan_constant")
    if _any_leaf((fx_args, fx_kwargs), lambda c: isinstance(c, _UNPRINTABLE)):
        # fx writes a constant argument as its repr: a TreeSpec's is not Python (the graph's
        # code failed to compile: an unmodelled pytree call whose spec came from traced code)
        raise Unsupported(f"{what} takes a constant a graph cannot spell", kind="graph_arg")


@functools.cache
def _sym_source_class():
    """torch._guards.Source subclass naming a ShapeEnv symbol after our Source (made on
    first use: only dynamic traces need it)."""
    import dataclasses
    from torch._guards import Source, GuardSource

    @dataclasses.dataclass(frozen=True)
    class _SymSource(Source):
        hint: str

        @property
        def _name_template(self):
            return self.hint

        @property
        def guard_source(self):
            return GuardSource.LOCAL

        def reconstruct(self, codegen):
            raise NotImplementedError
    return _SymSource


def SymSource(hint):
    return _sym_source_class()(hint)


def _collect_fakes(obj, out):
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            _collect_fakes(x, out)
    elif isinstance(obj, dict):
        for x in obj.values():
            _collect_fakes(x, out)


def _forget_unwritten_constants(fake_mode, consts, mutated_storages):
    """An op wrote into fakes that carry values (`torch.tensor(0.0)`, values/known.py): the fake
    mode wrote the value too when it ran the op on the values (all its inputs carried one), and
    forgot it when it saw a write of data into a tensor argument -- but not into a list of
    them (`torch._foreach_add_([t], [x])`, `out=[a, b]`). A written value that still holds what
    it held before the op (by value: the fake mode's own writes do not always move the version
    counter) is forgotten here, with its aliases'; one the fake mode replaced it wrote."""
    for t, before, snapshot in consts:
        c = t.constant
        if c is None or c is not before or _storage_key(t) not in mutated_storages:
            continue
        if _same_value(c, snapshot):
            fake_mode.fake_tensor_converter.invalidate_constant_aliases(c)
            t.constant = None


def _same_value(a, b):
    """Equal shape, dtype and elements (nan equal to nan)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(((a == b) | ((a != a) & (b != b))).all())
    return bool((a == b).all())


def _has_sym_scalar(obj):
    if isinstance(obj, (torch.SymInt, torch.SymFloat, torch.SymBool)):
        return True
    if isinstance(obj, (list, tuple)):
        return any(_has_sym_scalar(x) for x in obj)
    if isinstance(obj, dict):
        return any(_has_sym_scalar(x) for x in obj.values())
    return False


def _forget_hinted_constants(fake_mode, result, consts):
    """The fake mode ran an op on values (its tensor inputs all carry one) with a symbolic
    number among its arguments (`torch.zeros(()) + a`, `a` a dynamic float): it computed with
    the number's trace-time hint, which the next call need not share. The values it made or
    wrote (replaced, or changed in place) are forgotten."""
    made = []
    _collect_fakes(result, made)
    stale = [t for t in made if getattr(t, "constant", None) is not None]
    stale += [t for t, before, snapshot in consts if t.constant is not None and
              (t.constant is not before or not _same_value(t.constant, snapshot))]
    for t in stale:
        if t.constant is not None:
            fake_mode.fake_tensor_converter.invalidate_constant_aliases(t.constant)
            t.constant = None


def _version(t):
    """The tensor's version counter; None for inference tensors, which have none (their
    writes are still seen through the fake mode's write notes)."""
    try:
        return t._version
    except RuntimeError:
        return None


def _storage_key(t):
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, TypeError):    # no storage (sparse, nested)
        return ("tensor", id(t))


def _written_args(func, args, kwargs):
    """The tensors an aten call writes into, per its schema (`Tensor(a!)`, `Tensor(a!)[]`)."""
    out = []
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is None or not arg.alias_info.is_write:
            continue
        if i < len(args):
            value = args[i]
        elif kwargs and arg.name in kwargs:
            value = kwargs[arg.name]
        else:
            continue
        _collect_fakes(value, out)
    return out


def _has_real_tensor(obj):
    if isinstance(obj, torch.Tensor):
        return not isinstance(obj, FakeTensor)
    if isinstance(obj, (list, tuple)):
        return any(_has_real_tensor(x) for x in obj)
    return False


def _runner(kind, target):
    if kind == "call_method":
        return lambda self, *a, **k: getattr(self, target)(*a, **k)
    return target


def _target_name(target):
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def _sanitize(hint):
    out = []
    for ch in hint:
        out.append(ch if ch.isalnum() or ch == "_" else "_")
    s = "".join(out).strip("_")
    while "__" in s:
        s = s.replace("__", "_")
    if not s or s[0].isdigit():
        s = "t_" + s
    return s
