"""The backend registry and the built-in backends: eager, inductor, aten."""
import torch

_BACKENDS = {}


def register_backend(compiler_fn=None, name=None, tags=()):
    """Register a backend; usable as @register_backend, @register_backend(name="x") or a call.
    A name can be registered once (as in torch); registering the same callable again is a no-op."""
    if isinstance(compiler_fn, str):
        compiler_fn, name = None, compiler_fn
    if name is not None and not isinstance(name, str):
        raise TypeError(f"register_backend(name=...) expects a str, got {type(name).__name__}")
    if not isinstance(tags, (tuple, list, set, frozenset)):
        raise TypeError(f"register_backend(tags=...) expects a sequence of str, got {type(tags).__name__}")
    if compiler_fn is None:
        return lambda fn: register_backend(fn, name=name, tags=tags)
    if not callable(compiler_fn):
        raise TypeError(f"register_backend expects a callable backend(gm, example_inputs) -> "
                        f"callable, got {type(compiler_fn).__name__}")
    key = name if name is not None else getattr(compiler_fn, "__name__", None)
    if not isinstance(key, str):
        raise TypeError(f"register_backend could not name {compiler_fn!r}; pass name=\"...\"")
    if not key.strip():
        raise ValueError("register_backend(name=...) expects a non-empty name")
    known = _BACKENDS.get(key)
    if known is not None and known is not compiler_fn:
        raise ValueError(f"a backend named {key!r} is already registered ({known!r}); register "
                         f"{compiler_fn!r} under another name")
    _BACKENDS[key] = compiler_fn
    return compiler_fn


def list_backends(exclude_tags=None):
    if exclude_tags is not None and not isinstance(exclude_tags, (tuple, list, set, frozenset)):
        raise TypeError(f"list_backends(exclude_tags=...) expects a sequence of str or None, got "
                        f"{type(exclude_tags).__name__}")
    return sorted(_BACKENDS)


def lookup_backend(backend):
    """Name or callable -> (callable, display name)."""
    if isinstance(backend, str):
        fn = _BACKENDS.get(backend)
        if fn is None:
            raise ValueError(f"unknown backend {backend!r}; known backends: {list_backends()} "
                             f"(or pass a callable backend(gm, example_inputs))")
        return fn, backend
    if callable(backend):
        return backend, getattr(backend, "__name__", type(backend).__name__)
    raise TypeError(f"backend must be a registered name or a callable backend(gm, example_inputs), "
                    f"got {type(backend).__name__}")


@register_backend(name="eager")
def eager(gm, example_inputs):
    """Run the captured graph as it is. gm.forward skips nn.Module.__call__'s overhead. A
    torch.vmap node (randomness='error') runs as the aten ops its call runs, inlined
    (policy/vmap.py inline_vmaps)."""
    from ..policy.vmap import inline_vmaps
    return inline_vmaps(gm, deterministic_only=True).forward


@register_backend(name="inductor")
def inductor(gm, example_inputs):
    """torch._inductor.compile_fx. A static graph (every input a plain tensor) is compiled
    under a TracingContext whose fake mode has a ShapeEnv, from fakes of that mode with static
    shapes: inductor's FX graph cache (and AOT autograd's) then applies to it -- without a
    ShapeEnv both bypass ("No shape env") -- and no size becomes symbolic. A graph with
    symbolic sizes already runs under the trace's own context (backends/calling.py).

    With warm start on, such a static graph that returns a tuple is compiled with AOT
    autograd's *bundled* cache entries (the entry holds inductor's output code itself): the compiled callable then carries
    what warm start persists of it (`inductor_artifact`), with the key of the settings it was
    compiled under (`_artifact_env`)."""
    if _shares_storage(example_inputs):
        # AOT autograd's cache keys each input's own metadata, not which inputs share a
        # storage: a graph compiled for distinct inputs would be found for a view and its base
        # (its runtime wrappers then skip the synthetic base, and a write through one input is
        # not seen through the other). torch.compile reads that stale entry too.
        import torch._functorch.config as functorch_config
        with functorch_config.patch(enable_autograd_cache=False):
            return _inductor(gm, example_inputs)
    return _inductor(gm, example_inputs)


def _shares_storage(example_inputs):
    seen = set()
    for x in example_inputs:
        if isinstance(x, torch.Tensor) and x.layout is torch.strided:
            try:
                key = x.untyped_storage()._cdata
            except Exception:
                continue
            if key in seen:
                return True
            seen.add(key)
    return False


def _inductor(gm, example_inputs):
    from torch._guards import TracingContext
    from torch._inductor.compile_fx import compile_fx
    if TracingContext.try_get() is not None or not all(
            type(x) in (torch.Tensor, torch.nn.Parameter) for x in example_inputs):
        return compile_fx(gm, example_inputs)
    from ..policy.vmap import inline_vmaps
    gm = inline_vmaps(gm)       # a torch.vmap node's closure target would bypass inductor's caches
    from torch._guards import tracing
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv
    mode = FakeTensorMode(shape_env=ShapeEnv())
    fakes = [mode.from_tensor(x, static_shapes=True) for x in example_inputs]
    env = _artifact_env() if _returns_tuple(gm) and _persisting() and not _shares_storage(example_inputs) else None
    if env is None:
        try:
            with tracing(TracingContext(mode)):
                return compile_fx(gm, fakes)
        finally:
            _forget_real_tensors(mode)
    import torch._functorch.config as functorch_config
    try:
        with tracing(TracingContext(mode)), functorch_config.patch(bundled_autograd_cache=True):
            compiled = compile_fx(gm, fakes)
    finally:
        _forget_real_tensors(mode)
    try:
        compiled.__bytegraph_artifact_env__ = env
    except AttributeError:
        pass
    return compiled


def _forget_real_tensors(mode):
    """The fake mode converted the graph's real inputs (parameters among them) and keeps a weak
    reference to each for as long as the compiled graph keeps its fakes; torch.utils.swap_tensors
    (`Module.to` under `torch.__future__.set_swap_module_params_on_conversion(True)`) refuses a
    tensor with weak references ("Couldn't swap Linear.weight"). Nothing converts in this mode
    after the compile (graph/builder.py: release_real_tensors, for the trace's own mode)."""
    describer = mode.fake_tensor_converter.meta_converter.describer
    describer.lookup_tensor.clear()
    describer.lookup_storage.clear()


# --------------------------------------------------------------------------
# inductor artifacts for warm start (runtime/warm.py)
#
# A warm process that compiles a stored graph again through compile_fx pays, besides the
# lookup in inductor's caches, the computation of their keys, whose largest part is a hash of
# every source file of torch (torch_key, ~0.4 s per process). Instead the cold process keeps
# AOT autograd's bundled cache entry of the graph (inductor's output code, the runtime
# metadata of its wrappers) and the warm one rebuilds the compiled callable from it with
# torch's own deserializer (the one torch's precompile uses), under a key bytegraph checks
# itself: the graph and its example inputs (the record the artifact is stored in, hashed), and
# `_artifact_env` -- the torch build, inductor's and functorch's configs, and the global
# state inductor's key reads (grad mode, autocast, deterministic algorithms, default dtype,
# thread count, matmul precision, CPU capability). Kernels are loaded (or built) by inductor's
# code cache as on any cache hit, which probes the CPU's vector ISA itself.

_CUSTOM_PASSES = ("pre_grad_custom_pass", "post_grad_custom_pre_pass", "post_grad_custom_post_pass",
                  "joint_custom_pre_pass", "joint_custom_post_pass", "_pre_fusion_custom_pass",
                  "_post_fusion_custom_pass", "_fuse_ddp_communication_passes", "custom_partitioner_fn")


def _persisting():
    """Warm start is on (a cache directory, or records loaded): only then is a graph compiled
    with a bundled entry."""
    from ..runtime import warm
    return warm.enabled()


def _returns_tuple(gm):
    """compile_fx compiles a graph that returns a tuple (or list) of its flat tensor inputs
    directly, without the wrappers it adds around other graphs (which the artifact would not
    restore)."""
    if type(getattr(gm.graph, "_codegen", None)) is not torch.fx.graph.CodeGen:
        return False
    out = [n for n in gm.graph.nodes if n.op == "output"]
    return len(out) == 1 and type(out[0].args[0]) in (tuple, list)


def _artifact_env():
    """A hash of everything besides the graph and its inputs that decides what inductor
    compiles (and that inductor's own cache key covers), or None when a part of it cannot be
    described the same way in another process (a custom pass, a config value with an
    address)."""
    import hashlib
    import platform
    import sys
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config
    for name in _CUSTOM_PASSES:       # a custom pass (a callable) has no stable description
        value = getattr(inductor_config, name, None)
        if value is not None and not (type(value) in (list, tuple) and all(type(v) is str for v in value)):
            return None
    parts = [torch.__version__, getattr(torch.version, "git_version", None), torch.__file__,
             sys.version, platform.machine(), torch.backends.cpu.get_cpu_capability(),
             torch.is_grad_enabled(), torch.get_default_dtype(), torch.get_num_threads(),
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory,
             torch.backends.cuda.matmul.fp32_precision,
             torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
             torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
             torch.accelerator.is_available(),
             [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d))
              for d in torch._C._autocast_supported_devices()]]
    configs = [inductor_config.save_config_portable(ignore_private_configs=False),
               functorch_config.save_config_portable()]
    try:
        import torch._inductor.config_comms as comms_config
        configs.append(comms_config.save_config_portable(ignore_private_configs=False))
    except ImportError:
        pass
    for cfg in configs:
        items = sorted((k, repr(v)) for k, v in cfg.items())
        if any(" at 0x" in text for _, text in items):
            return None
        parts.append(items)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def inductor_artifact(compiled):
    """(settings key, pickled bundled AOT entry, probed ISAs) of a callable the inductor backend
    compiled with one, else None."""
    env = getattr(compiled, "__bytegraph_artifact_env__", None)
    serialize = getattr(compiled, "serialize", None)
    if env is None or not callable(serialize):
        return None
    from torch._functorch._aot_autograd.aot_autograd_result import BundledAOTAutogradResult
    entry = serialize()
    if not isinstance(entry, BundledAOTAutogradResult):
        return None
    import pickle
    return env, pickle.dumps(entry), probed_isas()


def probed_isas():
    """The CPU vector ISAs inductor found usable in this process by probing them (building
    and loading a probe library per ISA the CPU reports), or None if it has not probed."""
    from torch._inductor import cpu_vec_isa
    if cpu_vec_isa.valid_vec_isa_list.cache_info().currsize == 0:
        return None
    return [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()]


def _seed_isas(stored):
    """Spare a warm process inductor's ISA probes (a compile and a subprocess load per ISA:
    1.5 s on a quiet machine, 4-6 s loaded) when the cold process's probes found exactly the
    ISAs this CPU reports: the list is then what probing here would find (same machine, torch
    build and inductor settings: the artifact's settings key). Otherwise inductor probes as
    usual."""
    from torch._inductor import config as inductor_config, cpu_vec_isa
    if not stored or cpu_vec_isa.valid_vec_isa_list.cache_info().currsize:
        return
    with inductor_config.patch({"cpp.vec_isa_ok": True}):
        unprobed = [str(isa) for isa in cpu_vec_isa.valid_vec_isa_list()]
    if unprobed != list(stored):
        cpu_vec_isa.valid_vec_isa_list.cache_clear()      # probe as usual


def load_inductor_artifact(env, blob, isas=None):
    """The compiled callable rebuilt from an artifact whose settings key matches the current
    settings, or None when it does not (the caller compiles the graph again). `isas`: the
    cold process's probed ISA list (probed_isas)."""
    if _artifact_env() != env:
        return None
    _seed_isas(isas)
    import pickle
    from torch._functorch._aot_autograd.aot_autograd_result import (
        BundledAOTAutogradResult, deserialize_bundled_cache_entry)
    entry = pickle.loads(blob)
    if not isinstance(entry, BundledAOTAutogradResult):
        raise TypeError(f"not a bundled AOT autograd entry: {type(entry).__name__}")
    compiled = deserialize_bundled_cache_entry(entry)
    compiled.__bytegraph_artifact_env__ = env
    return compiled


@register_backend(name="aten")
def aten(gm, example_inputs):
    """Lower the graph to aten ops with bytegraph.make_fx (fake mode) and run that.

    A graph that calls a custom torch.autograd.Function runs as captured instead: lowering
    would replace the user's backward with the derivative of the forward's aten ops. So does a
    graph with data-dependent output shapes (nonzero, x[mask]), which fake lowering cannot
    trace. So does a graph that switches grad mode (a no_grad/enable_grad block, or a graph
    break inside one): make_fx runs the switch while tracing and records none, so the aten
    graph's ops would build autograd history where eager builds none (and the reverse)."""
    if any(getattr(n.target, "__bytegraph_autograd_function__", None) is not None
           or n.target is torch._C._set_grad_enabled
           for n in gm.graph.nodes if n.op == "call_function"):
        return gm.forward
    from ..dispatch_trace import DataDependentError
    from ..dispatch_trace.backend import aten_backend
    try:
        return aten_backend(gm, example_inputs)
    except DataDependentError as e:     # nonzero & co cannot be lowered with fake tensors
        from ..observe import log
        log.info("aten backend: running the graph unlowered (%s)", e)
        return gm.forward
