"""Process-wide switches flipped between calls: the compiled function recompiles when its
graph (or the backend's code) depends on the switch, and always returns eager's result.

`compiling` stands for a backend that compiles (inductor reads matmul precision, TF32,
mkldnn and thread settings while it generates code): entries for it guard those switches.
The built-in eager backend runs the graph's ops, which read them when they run, as eager
does: flipping them must not recompile it.
"""
import warnings

import pytest
import torch

from differential import assert_same, compile_fn, counters

C = torch._C


def compiling(gm, example_inputs):
    return gm.forward


def recompiles():
    return counters()["recompiles"]["total"]


@pytest.fixture(autouse=True)
def _restore_switches():
    """Allow setting torch.backends flags (torch.testing's common_utils, imported by other test
    modules of the same worker, freezes them), then put every switch back: the generic fp32
    precision (which resets every backend and op), then the legacy setters (restoring only
    the new fp32 API would leave the legacy getters raising on a 'mix of APIs')."""
    with getattr(torch.backends, "__allow_nonbracketed_mutation")():
        generic = torch.backends.fp32_precision
        saved = (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32,
                 torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction,
                 torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction,
                 torch.get_num_threads(), torch.backends.mkldnn.enabled,
                 torch.are_deterministic_algorithms_enabled(),
                 torch.is_deterministic_algorithms_warn_only_enabled())
        try:
            yield
        finally:
            torch.backends.fp32_precision = generic
            torch.set_float32_matmul_precision(saved[0])
            torch.backends.cudnn.allow_tf32 = saved[1]
            torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = saved[2]
            torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = saved[3]
            torch.set_num_threads(saved[4])
            torch.backends.mkldnn.enabled = saved[5]
            torch.use_deterministic_algorithms(saved[6], warn_only=saved[7])
            assert torch.get_float32_matmul_precision() == saved[0]    # the legacy getter works
    assert counters()["stats"]["guard_errors"] == 0


def _mm(x, y):
    return (x @ y).relu() + 1


def _on_meta_too(x, y):
    # a second device in the graph (meta stands in for CUDA on this CPU-only build)
    torch.ones(2, device="meta") * 2
    return (x @ y).relu() + 1


def _args():
    g = torch.Generator().manual_seed(0)
    return torch.randn(4, 4, generator=g), torch.randn(4, 4, generator=g)


def _flip(fn, backend, set_on, set_off=None):
    """Call, flip the switch, call, flip back, call. Returns the recompiles it caused."""
    compiled = compile_fn(fn, backend=backend, fullgraph=True)
    x, y = _args()
    assert_same(fn(x, y), compiled(x, y))
    before = recompiles()
    set_on()
    try:
        assert_same(fn(x, y), compiled(x, y))
    finally:
        if set_off is not None:
            set_off()
    n = recompiles() - before
    assert_same(fn(x, y), compiled(x, y))
    return n


def _fp32(backend, op, value):
    return lambda: C._set_fp32_precision_setter(backend, op, value)


PRECISION_SWITCHES = {
    "matmul_precision_high": lambda: torch.set_float32_matmul_precision("high"),
    "matmul_precision_medium": lambda: torch.set_float32_matmul_precision("medium"),
    "mkldnn_matmul_bf16": lambda: setattr(torch.backends.mkldnn.matmul, "fp32_precision", "bf16"),
    "mkldnn_conv_tf32": lambda: setattr(torch.backends.mkldnn.conv, "fp32_precision", "tf32"),
    "generic_fp32_tf32": lambda: setattr(torch.backends, "fp32_precision", "tf32"),
    "num_threads": lambda: torch.set_num_threads(max(1, torch.get_num_threads() % 2 + 1)),
    "mkldnn_disabled": lambda: setattr(torch.backends.mkldnn, "enabled", False),
}

CUDA_SWITCHES = {
    "cuda_matmul_allow_tf32": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    "cudnn_allow_tf32_off": lambda: setattr(torch.backends.cudnn, "allow_tf32", False),
    "fp16_reduced_precision_off": lambda: setattr(
        torch.backends.cuda.matmul, "allow_fp16_reduced_precision_reduction", False),
    "bf16_reduced_precision_off": lambda: setattr(
        torch.backends.cuda.matmul, "allow_bf16_reduced_precision_reduction", False),
    "cuda_matmul_fp32_tf32": lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "tf32"),
}


@pytest.mark.parametrize("name", sorted(PRECISION_SWITCHES))
def test_backend_switch_recompiles_compiling_backend(name):
    assert _flip(_mm, compiling, PRECISION_SWITCHES[name]) == 1


@pytest.mark.parametrize("name", sorted(PRECISION_SWITCHES) + sorted(CUDA_SWITCHES))
def test_backend_switch_is_read_at_run_time_by_eager_backend(name):
    switches = {**PRECISION_SWITCHES, **CUDA_SWITCHES}
    assert _flip(_mm, "eager", switches[name]) == 0


@pytest.mark.parametrize("name", sorted(CUDA_SWITCHES))
def test_cuda_switch_guarded_when_graph_leaves_the_cpu(name):
    assert _flip(_on_meta_too, compiling, CUDA_SWITCHES[name]) == 1


@pytest.mark.parametrize("name", sorted(CUDA_SWITCHES))
def test_cuda_switch_not_guarded_for_a_cpu_graph(name):
    assert _flip(_mm, compiling, CUDA_SWITCHES[name]) == 0


def test_mixed_fp32_apis_do_not_break_guards():
    """Once old and new precision APIs are mixed, torch.get_float32_matmul_precision() raises;
    the guards read the new per-backend getters, which do not."""
    torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    with pytest.raises(RuntimeError):
        torch.get_float32_matmul_precision()
    assert _flip(_mm, compiling, lambda: torch.backends.mkldnn.matmul.__setattr__(
        "fp32_precision", "ieee")) == 1


# --- switches every trace depends on -------------------------------------------------

@pytest.mark.parametrize("device", [d for d in C._autocast_supported_devices()])
def test_autocast_on_any_device_type(device):
    """Autocast for any device type: the device types `_is_any_autocast_enabled` sees are
    guarded on every entry (recompile); the others only matter to graphs with tensors on
    that device (none here: correct without recompiling)."""
    from bytegraph.guards.guard_set import _autocast_unseen
    n = _flip(_mm, "eager", lambda: C.set_autocast_enabled(device, True),
              lambda: C.set_autocast_enabled(device, False))
    assert n == (0 if device in _autocast_unseen() else 1)


def test_autocast_unseen_device_guarded_for_its_tensors():
    from bytegraph.guards.guard_set import GuardSet, _autocast_unseen
    from bytegraph.codegen.entry import Codegen
    for device in _autocast_unseen():
        gs = GuardSet(Codegen())
        gs.add_global_state()
        gs.add_graph_state({"cpu", device}, backend_reads_flags=False)
        ns = gs.cg.namespace
        assert eval(gs.expression(), ns)
        C.set_autocast_enabled(device, True)
        try:
            assert not eval(gs.expression(), ns)
        finally:
            C.set_autocast_enabled(device, False)


def test_autocast_dtype_change():
    def f(x, y):
        return x @ y
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x, y = _args()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same(f(x, y), compiled(x, y))
    with torch.autocast("cpu", dtype=torch.float16):
        assert_same(f(x, y), compiled(x, y))
    assert recompiles() == 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same(f(x, y), compiled(x, y))
    assert recompiles() == 1


def test_autocast_cache_switch():
    def f(x, y):
        return x @ y
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x, y = _args()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert_same(f(x, y), compiled(x, y))
    with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
        assert_same(f(x, y), compiled(x, y))
    assert recompiles() == 1


def test_deterministic_warn_only():
    torch.use_deterministic_algorithms(True)
    n = _flip(_mm, "eager", lambda: torch.use_deterministic_algorithms(True, warn_only=True),
              lambda: torch.use_deterministic_algorithms(True))
    assert n == 1


def test_inference_mode_recompiles():
    """no_grad and inference_mode both turn grad mode off; only the latter makes new tensors
    inference tensors, which the trace reads from its fakes."""
    def f(x, y):
        z = x @ y
        return z + 1, z.is_inference()
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x, y = _args()
    with torch.no_grad():
        assert_same(f(x, y), compiled(x, y))
    with torch.inference_mode():
        out = compiled(x, y)
        assert out[0].is_inference()
        assert_same(f(x, y), out)
    assert recompiles() == 1


def test_state_queries_inside_the_region_it_changes():
    """torch.is_grad_enabled() inside no_grad and the autocast queries inside autocast
    answer what the trace itself set: the guard is on the entry state, so the entry
    serves the call it was built from (it used to reject it and turn the function eager)."""
    def f(x):
        with torch.no_grad():
            a = x + (1 if torch.is_grad_enabled() else 2)
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            b = x * (3 if torch.is_autocast_enabled("cpu") else 4)
            dt = torch.get_autocast_dtype("cpu")
            cache = torch.is_autocast_cache_enabled()
        return a, b.float(), dt, cache
    compiled = compile_fn(f, backend="eager", fullgraph=True)
    x = torch.ones(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            assert_same(f(x), compiled(x))
    assert recompiles() == 0 and counters()["stats"]["unique_graphs"] == 1
    with torch.autocast("cpu", dtype=torch.float16):     # entry state differs: recompile
        assert_same(f(x), compiled(x))
    assert recompiles() == 1


def test_default_device_change_runs_correctly():
    def f(x):
        return x + torch.ones(3)
    compiled = compile_fn(f, backend="eager")
    x = torch.ones(3)
    assert_same(f(x), compiled(x))
    torch.set_default_device("meta")
    try:
        expected, actual = f(x.to("meta")), compiled(x.to("meta"))
        assert actual.device.type == expected.device.type == "meta"
    finally:
        torch.set_default_device(None)
    assert_same(f(x), compiled(x))
