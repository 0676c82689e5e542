"""GuardSet: every assumption a trace made, as Python boolean expressions on Sources.

The tracer calls the `add_*` helpers whenever it specializes on something from
the caller's world (a tensor's metadata, a Python value, an object's identity,
global torch state). Guards are deduplicated and kept in the order they were
added, which is also dependency order (a container's type/len guard precedes
the guards on its items). Global-state guards come first: they are cheapest.

Each add_* is deduplicated on (kind, source) before rendering, because a source's
first rendering binds a local (see Codegen.source) and later ones differ in text.

Global torch state is read with torch._C getters bound into the entry's namespace
(`_grad_3()`), one call each with no attribute lookup; the switches every trace depends on
are checked on every entry (`add_global_state`), those that matter only to a compiling
backend or to tensors on a given device once the graph is known (`add_graph_state`).

The generated entry function evaluates them as one `and` chain; an exception while
evaluating is counted and reported, then treated as a miss (codegen/entry.py).
`runtime/convert.py: first_failing_guard` re-evaluates them one by one (slow path only)
to name the guard that failed for recompile messages.
"""
import math
from collections import OrderedDict
import re
import struct

import torch

from ..exc import Unsupported

_C = torch._C

# fp32 precision per (backend, op): what torch.set_float32_matmul_precision, backends.*.allow_tf32
# and backends.*.fp32_precision set. The legacy getters raise once old and new APIs were mixed;
# these never do.
_FP32_PRECISION = (("generic", "all"), ("cuda", "all"), ("cuda", "matmul"), ("cuda", "conv"),
                   ("cuda", "rnn"), ("mkldnn", "all"), ("mkldnn", "matmul"), ("mkldnn", "conv"),
                   ("mkldnn", "rnn"))
_AUTOCAST_DEVICES = tuple(_C._autocast_supported_devices())
_probed = {}


def _autocast_snapshot():
    return {d: (_C.is_autocast_enabled(d), _C.get_autocast_dtype(d)) for d in _AUTOCAST_DEVICES}


_ON, _DTYPE, _CACHE = _C.is_autocast_enabled, _C.get_autocast_dtype, _C.is_autocast_cache_enabled


def _autocast_unseen():
    """Device types whose autocast state `_is_any_autocast_enabled()` ignores (maia and mps in
    torch 2.13), found once by switching each on alone (this thread's state is restored)."""
    unseen = _probed.get("autocast")
    if unseen is None:
        unseen = []
        saved = _autocast_snapshot()
        try:
            for d in _AUTOCAST_DEVICES:
                _C.set_autocast_enabled(d, False)
            for d in _AUTOCAST_DEVICES:
                _C.set_autocast_enabled(d, True)
                if not _C._is_any_autocast_enabled():
                    unseen.append(d)
                _C.set_autocast_enabled(d, False)
        finally:
            for d, (on, _) in saved.items():
                _C.set_autocast_enabled(d, on)
        unseen = _probed["autocast"] = tuple(unseen)
    return unseen


class Guard:
    """One assumption: its kind, the Source it is about (None for global state), what the trace
    saw there (`expected`, when the kind has one value to compare), and the code that checks it
    (rendered once, by the GuardSet method that made it). `fetch` (code reading the checked value
    once the guard has run) and `label` (that value in user terms) serve the recompile reasons
    (guards/reasons.py) only."""
    __slots__ = ("code", "source_desc", "kind", "source", "expected", "fetch", "label")

    def __init__(self, code, source_desc, kind, source=None, expected=None, fetch=None, label=None):
        self.code = code
        self.source_desc = source_desc
        self.kind = kind
        self.source = source
        self.expected = expected
        self.fetch = fetch
        self.label = label

    def __repr__(self):
        return f"Guard({self.kind}: {self.code})"


_SHAPE_LOCAL = re.compile(r"__sh_(\w+?)\[(\d+)\]")
_SHAPE_WHOLE = re.compile(r"__sh_(\w+)\b")


def readable(code):
    """Guard code with the shape locals written as the size reads they stand for."""
    return _SHAPE_WHOLE.sub(r"\1.shape", _SHAPE_LOCAL.sub(r"\1.size(\2)", code))


def f64_bits(x, _pack=struct.Struct("<d").pack):
    """A float's 8 bytes: nan guards compare them (every nan compares unequal, and repr spells
    them all `nan`)."""
    return _pack(x)


def _state_item(value):
    """The number in a one-element tensor's tolist() (nested in lists for a tensor of dims)."""
    while type(value) is list and len(value) == 1:
        value = value[0]
    return value


def state_bits(value):
    """The bytes of the float a one-element tensor's tolist() holds; None for anything else (a
    tensor reshaped to more elements fails the guard without raising)."""
    value = _state_item(value)
    return f64_bits(value) if type(value) is float else None


def same_state_value(a, b):
    """Two one-element tensors' tolist() are the same value: floats by their bits (-0.0 is not
    0.0, a nan is itself)."""
    a, b = _state_item(a), _state_item(b)
    if type(a) is float and type(b) is float:
        return f64_bits(a) == f64_bits(b)
    return type(a) is type(b) and a == b


def storages_overlap(groups):
    """None when no tensor of a group's first tuple shares a byte of memory with one of its
    second tuple, else (group, i, j) of the first such pair. Views of one storage share it; two
    storages over one buffer (from numpy, say) are compared by address range."""
    for g, (firsts, seconds) in enumerate(groups):
        spans = []
        for s in seconds:
            st = s.untyped_storage()
            p = st.data_ptr()
            spans.append((st._cdata, p, p + st.nbytes()))
        for i, f in enumerate(firsts):
            st = f.untyped_storage()
            key, p = st._cdata, st.data_ptr()
            end = p + st.nbytes()
            for j, (k, a, b) in enumerate(spans):
                if k == key or p < b and a < end:
                    return g, i, j
    return None


_PLAIN_KEYS = frozenset((str, int, float, bool, type(None), bytes, complex))


def _eq_runs_no_python(k):
    """Comparing k with == runs no Python code: a builtin scalar, a tuple/frozenset of them, or
    an object whose type keeps a C-level __eq__ (an Enum member, a type, a torch.dtype)."""
    t = type(k)
    if t in _PLAIN_KEYS:
        return True
    if t in (tuple, frozenset):
        return all(map(_eq_runs_no_python, k))
    eq = getattr(t, "__eq__", None)
    return type(eq).__name__ in ("wrapper_descriptor", "method-wrapper") and \
        not issubclass(t, (tuple, frozenset, list, dict, set))


def _keys_same(d, keys, ident):
    """The dict's keys are `keys` in order: identical where `ident` says so, else of the same
    type and equal (a type whose == runs no Python code)."""
    if len(d) != len(keys):
        return False
    for k, e, i in zip(d, keys, ident):
        if k is not e and (i or type(k) is not type(e) or k != e):
            return False
    return True


def _bound_text(expr, bound, lower):
    """A symbol's range bound as guard code: exact, or rounded to the inside of the range (a
    float symbol's bound need not be an integer: `s >= -2` for -2.5 would reject s itself)."""
    import sympy
    if expr.is_integer:
        return str(int(math.ceil(bound) if lower else math.floor(bound)))
    f = float(bound)
    b = sympy.sympify(bound)
    if lower and sympy.Float(f) < b:
        f = math.nextafter(f, math.inf)
    elif not lower and sympy.Float(f) > b:
        f = math.nextafter(f, -math.inf)
    return repr(f)


def backend_switches(cpu_only):
    """(getter, hint, *args) of every switch a compiling backend may bake into its code: fp32
    precision per backend and op, reduced-precision reductions, mkldnn, thread count, and the
    CUDA ones unless `cpu_only`."""
    checks = [(_C._get_fp32_precision_getter, "fp32_precision", b, op)
              for b, op in _FP32_PRECISION if not (cpu_only and b == "cuda")]
    checks += [(_C._get_cpu_allow_fp16_reduced_precision_reduction, "cpu_fp16_reduce"),
               (_C._get_mkldnn_enabled, "mkldnn"), (_C.get_num_threads, "num_threads")]
    if not cpu_only:
        checks += [(_C._get_cublas_allow_fp16_reduced_precision_reduction, "fp16_reduce"),
                   (_C._get_cublas_allow_bf16_reduced_precision_reduction, "bf16_reduce"),
                   (_C._get_cudnn_enabled, "cudnn")]
    return checks


def _contiguous_beyond_01(fake, env):
    """The fake input is contiguous with every size at least 2 (an int, or a symbol whose range
    starts at 2): then `is_contiguous()` of a tensor with those sizes decides its strides."""
    if fake.layout is not torch.strided or env is None:
        return False
    import sympy
    from ..values.symbolic import is_symbolic
    expected = sympy.Integer(1)
    for size, stride in reversed(list(zip(fake.shape, fake.stride()))):
        if is_symbolic(size):
            expr = size.node.expr
            vr = env.var_to_range.get(expr)
            if not expr.is_Symbol or vr is None or not vr.lower >= 2:
                return False
        elif int(size) < 2:
            return False
        else:
            expr = sympy.Integer(int(size))
        have = stride.node.expr if is_symbolic(stride) else sympy.Integer(int(stride))
        if have != expected:
            return False
        expected = expected * expr
    off = fake.storage_offset()
    return not is_symbolic(off) and int(off) == 0


def _meta(t):
    return (type(t), t.dtype, tuple(t.shape), tuple(t.stride()), t.requires_grad, t.device)


class GuardSet:
    def __init__(self, cg):
        self.cg = cg                  # the codegen namespace shared with the entry function
        self.guards = []
        self._seen = set()
        self.entry_autocast = {}      # device type -> (enabled, dtype) when the trace began
        self.entry_autocast_cache = True
        # what automatic dynamic compares on a miss (runtime/dynamic.py: note_changes)
        self.sizes = []               # (source, shape) of each caller tensor
        # (source, shape, strides, offset) of each caller tensor with a size-1 dimension (a
        # symbolic stride or offset as None): automatic dynamic learns their changes
        self.layouts = []
        self.bits = []                # (source, is_neg, is_conj or None if not complex) of each caller tensor
        self.bits_of = {}             # guard index of a bits guard -> its tensor's bound local
        self.ints = []                # (source, value) of each int/float/torch.Size guarded by value
        # for the two-path entry (guards/generation.py): each guard's source, the modules the
        # trace read (Source -> ModuleInfo), each tensor guard's checks on its bound local (by
        # guard index), and the module attributes the entry's epilogue writes
        self.origins = []
        self.module_infos = {}
        self.tensor_meta = {}
        self.alias_of = {}           # index of an "alias" guard -> the other source it compares
        self.attr_writes = []
        self.dyn_tensors = []         # (source, fake) of each tensor with symbolic dims (add_shape_env)
        self.state_values = []        # (source, value) of each module-state scalar read (values/known.py)

    def _add(self, code, source, kind, expected=None, fetch=None, label=None):
        if code in self._seen:
            return False
        self._seen.add(code)
        if fetch is None and source is not None:
            fetch = self.cg.bound(source)
        self.guards.append(Guard(code, source.name_hint() if source is not None else "global", kind,
                                 source, expected, fetch, label))
        self.origins.append(source)
        return True

    def note_module(self, source, mod):
        """The trace read nn.Module `mod` through `source`: track its mutations (generation.py)."""
        from .generation import ModuleInfo
        from .tracking import LOST, track
        if source not in self.module_infos:
            info = self.module_infos[source] = ModuleInfo(mod, *track(mod))
            if info.hooks_tracked and LOST:
                LOST.discard(mod)

    # --- global torch state -------------------------------------------------
    def add_global_state(self):
        """Switches every trace depends on. Each getter is a torch._C function bound into the
        entry's namespace, so a check is one call with no attribute lookup (module docstring)."""
        self.entry_autocast = _autocast_snapshot()
        self.entry_autocast_cache = _CACHE()
        self._state_check("grad_mode", [(_C.is_grad_enabled, "grad")])
        self._state_check("inference_mode", [(_C.is_inference_mode_enabled, "inference")])
        self._state_check("default_dtype", [(_C.get_default_dtype, "default_dtype")])
        det = [(_C._get_deterministic_algorithms, "deterministic")]
        if _C._get_deterministic_algorithms():     # the other two only matter when it is on
            det += [(_C._get_deterministic_algorithms_warn_only, "det_warn_only"),
                    (_C._get_deterministic_fill_uninitialized_memory, "det_fill")]
        self._state_check("deterministic", det)
        # set_default_device and any TorchFunctionMode change what factory calls produce
        self._state_check("torch_function_mode", [(_C._len_torch_function_stack, "tf_stack")])
        if not _C._is_any_autocast_enabled():
            # one call covers every device type but those it does not see (see add_graph_state)
            self._state_check("autocast", [(_C._is_any_autocast_enabled, "any_autocast")])
        else:
            checks = [(_CACHE, "autocast_cache")]
            for dev, (on, dtype) in self.entry_autocast.items():
                checks.append((_ON, "autocast_on", dev))
                if on:
                    checks.append((_DTYPE, "autocast_dtype", dev))
            self._state_check("autocast", checks)

    def add_graph_state(self, device_types, backend_reads_flags):
        """Switches that matter only because a graph runs: autocast of device types that
        `_is_any_autocast_enabled` does not see, when the graph holds tensors there; and, for a
        backend that compiles (anything but the built-in eager backend, which runs the graph's
        ops and so reads these switches when they run, as eager does), every switch a compiler
        may bake into its code: fp32 precision (matmul precision, TF32) per backend and op,
        reduced-precision reductions, mkldnn/cudnn enablement, thread count -- the CUDA ones
        only when the graph has a tensor on another device than the CPU."""
        if not _C._is_any_autocast_enabled():
            unseen = [d for d in _autocast_unseen() if d in device_types]
            if unseen:
                self._state_check("autocast", [(_ON, "autocast_on", d) for d in unseen])
        if backend_reads_flags:
            # a CPU-only graph cannot be affected by the CUDA switches
            self._state_check("backend_flags", backend_switches(device_types <= {"cpu"}))
            # a compiled graph reads its inputs' memory: a negative or conjugate view (`z.conj().imag`)
            # gives other values than the tensor it views (runtime/convert.py runs a graph with
            # such inputs uncompiled, so one compiled without them must not see them)
            # (only a complex tensor can carry the conjugate bit: its dtype is guarded)
            for source, neg, conj in self.bits:
                e = self.cg.bound(source)
                if conj is None:
                    added = self._add(f"{e}.is_neg() is {neg}", source, "tensor_meta", neg,
                                      f"{e}.is_neg()", f"{source.name_hint()}.is_neg()")
                else:
                    added = self._add(f"{e}.is_neg() is {neg} and {e}.is_conj() is {conj}", source,
                                      "tensor_meta", (neg, conj), f"({e}.is_neg(), {e}.is_conj())",
                                      f"{source.name_hint()}.(is_neg(), is_conj())")
                if added:
                    self.bits_of[len(self.guards) - 1] = e   # generation.split folds it (_fold_bits)

    def _state_check(self, kind, calls):
        """One guard: each (getter, hint, *args) still returns what it returns now."""
        seen = [(fn, hint, tuple(args), fn(*args)) for fn, hint, *args in calls]
        parts = [self._returns(fn, hint, args, value) for fn, hint, args, value in seen]
        self._add(" and ".join(parts), None, kind, tuple(seen))

    def _returns(self, fn, hint, args, value):
        call = f"{self.cg.const(fn, hint)}({', '.join(repr(a) for a in args)})"
        if value is None or type(value) is bool:
            return f"{call} is {value}"
        if type(value) in (int, str) or (type(value) is tuple and all(type(v) is bool
                                                                      for v in value)):
            return f"{call} == {value!r}"
        if isinstance(value, torch.dtype):
            return f"{call} is {self.cg.const(value, 'dtype')}"
        return f"{call} == {self.cg.const(value, hint)}"

    def add_state_query(self, fn, args):
        """A query of state the trace itself may change (it mirrors grad-mode and autocast
        regions in the real state): its answer at trace time is not the answer on entry, so
        guard the entry state instead. False when `fn` is not such a query (the caller then
        guards the answer)."""
        if fn is _C.is_grad_enabled or fn is _C._is_any_autocast_enabled:
            return True                           # guarded on every entry
        if fn is _CACHE and not args:
            self._add(self._returns(fn, "autocast_cache", (), self.entry_autocast_cache), None,
                      "autocast", ((fn, "autocast_cache", (), self.entry_autocast_cache),))
            return True
        if (fn is _ON or fn is _DTYPE) and len(args) == 1 and type(args[0]) is str \
                and args[0] in self.entry_autocast:
            on, dtype = self.entry_autocast[args[0]]
            hint, value = ("autocast_on", on) if fn is _ON else ("autocast_dtype", dtype)
            self._add(self._returns(fn, hint, args, value), None, "autocast",
                      ((fn, hint, tuple(args), value),))
            return True
        return False

    # --- specializations on sourced values -----------------------------------
    def add_type(self, source, typ):
        if ("type", source) in self._seen:
            return
        self._seen.add(("type", source))
        self._add(f"type({source.expr(self.cg)}) is {self.cg.const(typ, typ.__name__)}", source, "type",
                  typ.__qualname__)        # the name only: entries must not keep classes alive

    def add_identity(self, source, obj):
        if ("id", source) in self._seen:
            return
        self._seen.add(("id", source))
        name = getattr(obj, "__name__", type(obj).__name__)
        self._add(f"{source.expr(self.cg)} is {self.cg.const(obj, str(name))}", source, "id",
                  name if type(name) is str else None)

    def add_same_object(self, source, other_source):
        if ("alias", source, other_source) in self._seen:
            return
        self._seen.add(("alias", source, other_source))
        if self._add(f"{source.expr(self.cg)} is {other_source.expr(self.cg)}", source, "alias",
                     other_source.name_hint()):
            # for the fast path (generation.split): true while both sources are stable
            self.alias_of[len(self.guards) - 1] = other_source

    def add_value(self, source, value):
        """Type and value equality for constants (int, float, str, bool, None, ...)."""
        if ("value", source) in self._seen:
            return
        self._seen.add(("value", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        if value is None or type(value) is bool:
            self._add(f"{first} is {value!r}", source, "value", value)
            return
        if type(value) in (int, float, torch.Size):   # automatic dynamic compares them (runtime/dynamic.py)
            self.ints.append((source, value))
        tname = self.cg.const(type(value), type(value).__name__)
        if type(value) in (int, str) or (type(value) is float and value == value
                                          and value not in (float("inf"), float("-inf"))):
            lit = repr(value)
        else:
            lit = self.cg.const(value, "v")
        if type(value) is float and value != value:      # nan: by its bits (0 * inf is -nan)
            bits = self.cg.const(f64_bits, "f64bits")
            self._add(f"type({first}) is {tname} and {e} != {e} and {bits}({e}) == "
                      f"{f64_bits(value)!r}", source, "value", value)
        elif type(value) is float and value == 0.0:      # 0.0 == -0.0: compare the sign too
            sign = self.cg.const(math.copysign, "copysign")
            self._add(f"type({first}) is {tname} and {e} == 0.0 and {sign}(1.0, {e}) == "
                      f"{math.copysign(1.0, value)}", source, "value", value)
        elif type(value) is range:                        # range equality is sequence equality
            self._add(f"type({first}) is {tname} and ({e}.start, {e}.stop, {e}.step) == "
                      f"{(value.start, value.stop, value.step)!r}", source, "value", value)
        else:
            self._add(f"type({first}) is {tname} and {e} == {lit}", source, "value", value)

    def add_state_value(self, source, value):
        """A module-state scalar's value, which the trace read (values/known.py): checked on
        every call, since writing a tensor's data bumps no generation."""
        if ("state", source) in self._seen:
            return
        self._seen.add(("state", source))
        e = self.cg.bound(source)
        one = _state_item(value)
        if type(one) is float:
            # by its bits: 0.0 == -0.0 (1 / x, copysign, a pad's fill tell them apart) and
            # nan != nan (the guard would reject the call it was built from)
            bits = self.cg.const(state_bits, "statebits")
            code = f"{bits}({e}.tolist()) == {f64_bits(one)!r}"
        elif type(one) in (int, bool):
            code = f"{e}.tolist() == {value!r}"
        else:
            code = f"{e}.tolist() == {self.cg.const(value, 'state')}"
        self._add(code, source, "state_value", value, f"{e}.tolist()", source.name_hint())
        self.state_values.append((source, value))

    def add_storages_apart(self, groups):
        """groups: [(sources, sources)]: no tensor of a group's first list shares memory with one
        of its second (values/known.py: module-state scalars the trace read, and the inputs the
        graph writes into). One guard: each call compares every pair."""
        if not groups:
            return
        fn = self.cg.const(storages_overlap, "overlap")
        text = ", ".join(f"(({''.join(self.cg.bound(a) + ', ' for a in firsts)}), "
                         f"({''.join(self.cg.bound(b) + ', ' for b in seconds)}))"
                         for firsts, seconds in groups)
        names = tuple((tuple(a.name_hint() for a in firsts), tuple(b.name_hint() for b in seconds))
                      for firsts, seconds in groups)
        self._add(f"{fn}(({text},)) is None", None, "storages_apart", names, f"{fn}(({text},))")

    def add_len(self, source, typ, n):
        if ("len", source) in self._seen:
            return
        self._seen.add(("len", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        self._add(f"type({first}) is {self.cg.const(typ, typ.__name__)} and len({e}) == {n}", source,
                  "len", (typ.__qualname__, n))

    def add_dict_keys(self, source, typ, keys):
        if ("keys", source) in self._seen:
            return
        self._seen.add(("keys", source))
        first = source.expr(self.cg)
        e = self.cg.bound(source)
        keys = list(keys)
        # tuples, not lists: immutable constants, which a warm start can persist (runtime/warm.py)
        kind = f"type({first}) is {self.cg.const(typ, typ.__name__)}"
        if getattr(self, "structural", False):
            # an entry that serves any instance (values/objects.py: wrap_module): the traced
            # module's dicts were swapped for tracked ones, another instance's may not be
            from .tracking import TrackedDict, TrackedOrderedDict
            base = {TrackedDict: dict, TrackedOrderedDict: OrderedDict}.get(typ)
            if base is not None:
                kind = f"({kind} or type({e}) is {self.cg.const(base, base.__name__)})"
        if not all(map(_eq_runs_no_python, keys)):
            # a key whose == is Python code: comparing runs it (a side effect eager has not) and
            # its answer is the user's; such keys must be the very objects the trace saw
            self.cg.namespace.setdefault("_keys_same", _keys_same)
            ident = tuple(not _eq_runs_no_python(k) for k in keys)
            code = f"{kind} and _keys_same({e}, {self.cg.const(tuple(keys), 'keys')}, {ident!r})"
            self._add(code, source, "dict_keys", tuple(keys))
            return
        code = f"{kind} and tuple({e}.keys()) == {self.cg.const(tuple(keys), 'keys')}"
        if any(type(k) is not str for k in keys):     # 1 == True == 1.0: compare key types too
            code += f" and tuple(map(type, {e})) == {self.cg.const(tuple(type(k) for k in keys), 'key_types')}"
        self._add(code, source, "dict_keys", tuple(keys))

    def add_finite(self, source):
        """A float made symbolic: its ShapeEnv reasoning holds for finite numbers only (nan and
        inf recompile, as constants)."""
        self.cg.namespace.setdefault("math", math)
        self._add(f"math.isfinite({self.cg.bound(source)})", source, "float_finite")

    def add_empty(self, source):
        if ("empty", source) in self._seen:
            return
        self._seen.add(("empty", source))
        self._add(f"not {source.expr(self.cg)}", source, "empty")

    def add_tensor(self, source, t):
        """Everything about a tensor input the trace (and the backend) may specialize on."""
        cg = self.cg
        first_e = self._first_tensor_guard(source)
        if first_e is None:
            return
        first, e = first_e
        ttype = cg.const(type(t), type(t).__name__)
        checks = [f"type({first}) is {ttype}",
                  f"{e}.dtype is {cg.const(t.dtype, 'dtype')}",
                  f"{e}.shape == {tuple(t.shape)!r}",
                  f"{e}.stride() == {tuple(t.stride())!r}",
                  f"{e}.requires_grad is {t.requires_grad}"]
        if t.device.type != "cpu":
            checks.append(f"{e}.device == {cg.const(t.device, 'device')}")
        else:
            checks.append(f"{e}.is_cpu")
        if t.storage_offset():
            checks.append(f"{e}.storage_offset() == {t.storage_offset()}")
        self.sizes.append((source, tuple(t.shape)))
        if 1 in t.shape and t.layout is torch.strided:
            self.layouts.append((source, tuple(t.shape), tuple(t.stride()), t.storage_offset()))
        self.bits.append((source, t.is_neg(), t.is_conj() if t.is_complex() else None))
        if self._add(" and ".join(checks), source, "tensor", _meta(t)):
            # for the fast path (generation.py): the same checks on the bound local `e` (a
            # parameter/buffer is read from the entry's cache there), and whether a parameter's
            # version counter can stand for them
            versioned = type(t) is torch.nn.Parameter and not t.is_inference()
            self.tensor_meta[len(self.guards) - 1] = (
                " and ".join([f"type({e}) is {ttype}"] + checks[1:]), e, versioned)

    def add_dynamic_tensor(self, source, t, fake, gb):
        """A caller tensor with symbolic dims: everything add_tensor checks, with each size and
        stride compared to the expression the trace holds for it (a symbol's own dim is left
        free here; its range and relations are checked by add_shape_env)."""
        from ..values.symbolic import render_sym, is_symbolic
        cg = self.cg
        first_e = self._first_tensor_guard(source)
        if first_e is None:
            return
        first, e = first_e
        sh = self._shape_local(source)       # the shape, read once; sizes index it
        printer = self._printer(gb)
        checks = [f"type({first}) is {cg.const(type(t), type(t).__name__)}",
                  f"{e}.dtype is {cg.const(t.dtype, 'dtype')}",
                  f"len(({sh} := {e}.shape)) == {t.dim()}",
                  f"{e}.requires_grad is {t.requires_grad}",
                  f"{e}.device == {cg.const(t.device, 'device')}" if t.device.type != "cpu" else f"{e}.is_cpu"]
        def own(v, at):
            # a symbol this tensor's own size, stride or offset introduced: the printer reads it
            # from that place, so comparing the place with it would check nothing
            return is_symbolic(v) and gb.symbols.get(v.node.expr) == (source, at)
        for d, size in enumerate(fake.shape):
            if own(size, d):
                continue
            checks.append(f"{sh}[{d}] == {render_sym(printer, size)}")
        if _contiguous_beyond_01(fake, gb.shape_env):
            # every size is at least 2 (a symbol's range says so, and add_shape_env checks it):
            # is_contiguous() then holds exactly when the strides are the contiguous ones the
            # trace saw, without building them (a cheaper check per call)
            checks.append(f"{e}.is_contiguous()")
        elif not all(own(st, ("stride", d)) for d, st in enumerate(fake.stride())):
            checks.append(f"{e}.stride() == ({''.join(render_sym(printer, s) + ', ' for s in fake.stride())})")
        if (t.storage_offset() or is_symbolic(fake.storage_offset())) and not own(fake.storage_offset(), ("offset",)):
            checks.append(f"{e}.storage_offset() == {render_sym(printer, fake.storage_offset())}")
        # a symbolic dim is no change to report when it changes (runtime/dynamic.py)
        def concrete(values):
            return tuple(None if is_symbolic(v) else int(v) for v in values)
        self.sizes.append((source, concrete(fake.shape)))
        if 1 in t.shape and None not in concrete(fake.shape):
            off = fake.storage_offset()
            self.layouts.append((source, tuple(t.shape), None if any(is_symbolic(x) for x in fake.stride())
                                 else tuple(t.stride()), None if is_symbolic(off) else int(off)))
        self.bits.append((source, t.is_neg(), t.is_conj() if t.is_complex() else None))
        self.dyn_tensors.append((source, fake))
        self._add(" and ".join(checks), source, "tensor", (type(t), t.dtype, concrete(fake.shape),
                                                           concrete(fake.stride()), t.requires_grad,
                                                           t.device))

    def _first_tensor_guard(self, source):
        """(the source's first rendering, its bound local), or None if it has a tensor guard."""
        if ("tensor", source) in self._seen:
            return None
        self._seen.add(("tensor", source))
        return source.expr(self.cg), self.cg.bound(source)

    def _shape_local(self, source):
        return "__sh_" + "".join(c if c.isalnum() or c == "_" else "_" for c in self.cg.bound(source))

    def _printer(self, gb):
        """Symbols print as what reads them in the entry: an int argument, a size from the
        shape local its tensor's guard bound (that guard runs first), a stride or offset."""
        from ..values.symbolic import sym_printer
        from ..sources import size_accessor
        names = {}
        for expr, (src, d) in gb.symbols.items():
            if d is None:
                names[expr] = self.cg.bound(src)
            elif type(d) is int:
                names[expr] = f"{self._shape_local(src)}[{d}]"
            else:
                names[expr] = f"{self.cg.bound(src)}{size_accessor(d)}"
        return sym_printer(names)

    def add_shape_env(self, gb):
        """What the trace assumed about its symbols: each input symbol's range (sizes 0 and 1
        are specialized, so a dynamic size is at least 2; mark_dynamic's min/max) and every
        guard the ShapeEnv recorded (`s0 == s1`, `s0 > 2`, a specialized `s0 == 4`).

        Rendered in terms of the symbols the ShapeEnv kept (those it did not replace): a
        replaced symbol is checked once against its replacement (`b.size(0) == a.size(0)`, or
        `__sh_b == __sh_a` when a whole tensor's sizes equal an earlier tensor's), its range
        only where the replacement's range does not imply it, and each recorded guard after
        the replacements, left out where they make it true (`Eq(s0, s2)` once s2 is s0)."""
        env = gb.shape_env
        if env is None or not gb.symbols:
            return
        self.cg.namespace.setdefault("math", math)
        self.cg.namespace.setdefault("torch", torch)
        printer = self._printer(gb)
        try:
            planned = self._shape_env_checks(gb, env, printer)
        except Unsupported:
            planned = None
        if planned is None:        # the plain rendering: every range and guard as recorded
            planned = []
            for expr in gb.symbols:
                planned += self._range_checks(env, expr, printer.doprint(expr))
            planned += [(printer.doprint(g.expr), "shape_env", g.expr) for g in env.guards]
        for code, kind, expected in planned:
            self._add(code, None, kind, expected)

    @staticmethod
    def _range_checks(env, expr, text):
        from ..values.symbolic import finite
        vr = env.var_to_range.get(expr)
        out = []
        if vr is not None and finite(vr.lower):
            out.append((f"{text} >= {_bound_text(expr, vr.lower, True)}", "shape_range", expr))
        if vr is not None and finite(vr.upper):
            out.append((f"{text} <= {_bound_text(expr, vr.upper, False)}", "shape_range", expr))
        return out

    def _shape_env_checks(self, gb, env, printer):
        """[(code, kind, expected)] for add_shape_env; None when a replacement is not plain
        enough to reason about here (the caller renders every guard as recorded)."""
        import sympy
        from ..values.symbolic import is_symbolic
        rep = {}
        for expr in gb.symbols:
            r = env.replace(expr)
            if not isinstance(r, sympy.Expr):
                return None
            rep[expr] = r
        free = {s for s, r in rep.items() if r == s}

        def replaced(v):
            return env.replace(v.node.expr) if is_symbolic(v) else sympy.Integer(int(v))
        out, covered, verified, group = [], set(), [], {}
        for source, fake in self.dyn_tensors:
            owned = [s for s, (src, d) in gb.symbols.items()
                     if src == source and type(d) is int and s not in free]
            shape = tuple(replaced(v) for v in fake.shape)
            mine = self._shape_local(source)
            group[source] = source
            if not owned:          # its sizes are its own symbols, or checked by its tensor guard
                verified.append((shape, mine, source))
                continue
            same = next(((sh, src) for exprs, sh, src in verified if exprs == shape), None)
            if same is not None:
                # each owned symbol equals its replacement because the whole shape equals that
                # of a tensor whose sizes are checked against the same expressions
                out.append((f"{mine} == {same[0]}", "shape_env", ("same_shape", source.name_hint())))
                covered.update(owned)
                group[source] = same[1]
            else:
                verified.append((shape, mine, source))

        def same_dim(a, b):
            # two sizes read from one dim of tensors whose whole shapes are checked equal
            (sa, da), (sb, db) = gb.symbols[a], gb.symbols.get(b, (None, None))
            return type(da) is int and da == db and sa in group and group[sa] is group.get(sb)
        for s, r in rep.items():
            if s in free or s in covered or same_dim(s, r):
                continue
            out.append((f"{printer.doprint(s)} == {printer.doprint(r)}", "shape_env", sympy.Eq(s, r)))
        for s, r in rep.items():
            if s in free:
                out += self._range_checks(env, s, printer.doprint(s))
                continue
            vr, vr_rep = env.var_to_range.get(s), env.var_to_range.get(r)
            if vr is None or not (r in free and vr_rep is not None and vr_rep.issubset(vr)):
                out += self._range_checks(env, s, printer.doprint(s))
        for g in env.guards:
            e = env.replace(g.expr)
            if e == sympy.true:
                continue
            out.append((printer.doprint(e), "shape_env", g.expr))
        return out

    def add_code(self, code, source, kind, expected=None, fetch=None, label=None):
        """A guard rendered by the caller. For its recompile reason (guards/reasons.py):
        `expected` (plain data: what the trace saw), `fetch` (code reading the value now, default
        the source) and `label` (what that value is, in user terms)."""
        self._add(code, source, kind, expected, fetch, label)

    def add_distinct(self, sources, kind="distinct_inputs"):
        """These sources are distinct objects (e.g. one tensor passed twice would alias two
        placeholders that the graph, and backends, treat as independent)."""
        if len(sources) > 1:
            ids = ", ".join(f"id({self.cg.bound(s)})" for s in sources)
            self._add(f"len({{{ids}}}) == {len(sources)}", None, kind,
                      tuple(s.name_hint() for s in sources))

    def add_absent(self, source, names):
        """None of `names` is in the object's instance __dict__ (class attributes it read,
        attributes it found missing): a later instance attribute would shadow them. The dict
        is read raw (object.__getattribute__), as the lookups the trace modelled read it: a
        Python-level __getattribute__ (transformers' configs) is not run on every call."""
        raw = self.cg.const(object.__getattribute__, "getattribute")
        self._add(f"{raw}({self.cg.bound(source)}, '__dict__').keys().isdisjoint("
                  f"{self.cg.const(frozenset(names), 'names')})", source, "absent_attrs",
                  tuple(sorted(names)))

    # --- evaluation ---------------------------------------------------------
    def expression(self):
        return " and ".join(f"({g.code})" for g in self.guards) or "True"

    def __len__(self):
        return len(self.guards)
