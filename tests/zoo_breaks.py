"""Model-zoo entries with graph breaks inserted, and one eager-vs-compiled run of each.

Responsible for the issue-7 acceptance item "the model zoo with a print, a logger.info and a
data-dependent .item() branch inserted into forward, in the model and inside one inner layer":

* variant "outer": `BreakWrapper(model)` whose forward prints, logs, calls the model, takes
  `.item()` of the mean of the first floating output tensor and branches on it (both branches
  do tensor work on that tensor and return the output structure with it replaced);
* variant "inner": one inner layer (the first leaf module with parameters that forward calls,
  found with pre-hooks on an eager call) is replaced in its parent by `BreakLayer(layer)`, which
  does the same around the original layer; a model whose only called module is itself is
  put in `Holder` (a plain container whose forward calls it) and the model becomes the layer;
* variant "both": the two at once.

`run(entry, variant, backend)` builds the model, runs it eagerly and compiled (bytegraph,
or torch.compile for the bench) on three calls (seed 0, seed 0 again, seed 1) and returns a
`ZooRun` with every comparison made: outputs, stdout (prints and log records, interleaved,
in order), buffers, parameter gradients of a loss over the outputs, graphs compiled by the
first call, what the second (identical) call compiled, and the region-count oracle of
tests/graph_break_programs.py run on the same wrapped model. Shared by
tests/test_zoo_breaks.py and bench/zoo_breaks.py.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import os
import traceback
import warnings

import torch
import torch.nn as nn

import bytegraph
import graph_break_programs as G
import zoo
from differential import assert_same

VARIANTS = ("outer", "inner", "both")

LOG = logging.getLogger("zoo_breaks")
LOG.setLevel(logging.INFO)
LOG.propagate = False
if not any(isinstance(h, G._StdoutHandler) for h in LOG.handlers):
    LOG.addHandler(G._StdoutHandler())      # records go to the current sys.stdout, in order
G.PROGRAM_FILES.add(__file__)


# --------------------------------------------------------------------------------------------
# the code with breaks (what bytegraph and torch.compile trace)

def first_float(out):
    """The first floating-point tensor of an output pytree (tensor, tuple, list, dict or
    ModelOutput), or None."""
    if isinstance(out, torch.Tensor):
        return out if out.is_floating_point() else None
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        for v in out:
            t = first_float(v)
            if t is not None:
                return t
    return None


def with_first(out, fn):
    """`out` with its first floating tensor `t` replaced by `fn(t)`: a new structure of the same
    type (a dict or ModelOutput is rebuilt with keyword arguments, not mutated: bytegraph does
    not capture `ModelOutput.__setitem__`, a dict-subclass mutation); returns (new, replaced?)."""
    if isinstance(out, torch.Tensor):
        return (fn(out), True) if out.is_floating_point() else (out, False)
    if isinstance(out, dict):
        items = dict(out.items())
        for k in items:
            new, done = with_first(items[k], fn)
            if done:
                items[k] = new
                return type(out)(**items), True
        return out, False
    if isinstance(out, (tuple, list)):
        items = list(out)
        for i in range(len(items)):
            new, done = with_first(items[i], fn)
            if done:
                items[i] = new
                return (tuple(items) if isinstance(out, tuple) else items), True
    return out, False


def _shrink(t):
    return t * 0.5 + 0.25


def _grow(t):
    return t * 2.0 - 0.25


class BreakWrapper(nn.Module):
    """The model with a print, a logger.info and an .item() branch around its call."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        print("zoo forward:", type(self.model).__name__, len(args), sorted(kwargs))
        LOG.info("calling %s", type(self.model).__name__)
        out = self.model(*args, **kwargs)
        t = first_float(out)
        if t is None:
            return out
        v = t.float().mean().item()
        if v > 0:
            out, _ = with_first(out, _shrink)
        else:
            out, _ = with_first(out, _grow)
        return out


class BreakLayer(nn.Module):
    """One inner layer with a print, a logger.info and an .item() branch around it."""

    def __init__(self, layer, path):
        super().__init__()
        self.layer = layer
        self.path = path

    def forward(self, *args, **kwargs):
        print("layer", self.path, "in")
        LOG.info("layer %s", self.path)
        out = self.layer(*args, **kwargs)
        t = first_float(out)
        if t is None:
            return out
        if t.float().abs().sum().item() > 1.0:
            out, _ = with_first(out, _shrink)
        else:
            out, _ = with_first(out, _grow)
        return out


class Holder(nn.Module):
    """A plain container for a model that has no inner layer of its own to break in."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# building a variant

def _called_modules(entry, model, inputs):
    """Names of the modules `model`'s forward calls, in call order (first call of each)."""
    order, handles = [], []
    for name, m in model.named_modules():
        handles.append(m.register_forward_pre_hook(
            lambda mod, args, name=name: order.append(name) if name not in order else None))
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            entry.call(model, inputs)
    finally:
        for h in handles:
            h.remove()
    return order


def _set_submodule(root, path, new):
    parent_path, _, name = path.rpartition(".")
    parent = root.get_submodule(parent_path) if parent_path else root
    parent._modules[name] = new


def _eager_ok(entry, model, inputs):
    try:
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entry.call(copy.deepcopy(model), inputs)
        return True
    except Exception:
        return False


def insert_inner_break(entry, model, inputs):
    """Replace one inner layer of `model` by BreakLayer (see the module docstring); returns
    (the model to call, the replaced layer's path)."""
    subs = dict(model.named_modules())
    called = [n for n in _called_modules(entry, model, inputs) if n]
    leaves = [n for n in called if not any(True for _ in subs[n].children())]
    with_params = [n for n in leaves if any(True for _ in subs[n].parameters(recurse=False))]
    for path in with_params + [n for n in leaves if n not in with_params]:
        trial = copy.deepcopy(model)
        _set_submodule(trial, path, BreakLayer(trial.get_submodule(path), path))
        if _eager_ok(entry, trial, inputs):
            return trial, path
    holder = Holder(BreakLayer(copy.deepcopy(model), "model"))
    return holder, "(model itself, in Holder)"


def build_variant(entry, variant):
    """(model with the breaks inserted, make_inputs, the inner layer's path or None)."""
    model, make_inputs = entry.build()
    path = None
    if variant in ("inner", "both"):
        model, path = insert_inner_break(entry, model, make_inputs(0))
    if variant in ("outer", "both"):
        model = BreakWrapper(model)
    return model, make_inputs, path


# --------------------------------------------------------------------------------------------
# running one entry

class CountingBackend:
    def __init__(self):
        self.graphs = 0

    def __call__(self, gm, example_inputs):
        self.graphs += 1
        return gm.forward


@dataclasses.dataclass
class ZooRun:
    entry: str
    variant: str
    compiler: str                 # "bytegraph" | "torch.compile"
    layer: object = None          # the inner layer's path
    errors: list = dataclasses.field(default_factory=list)    # WRONG results: (what, detail)
    graphs: int = -1              # graphs compiled by the first call
    graphs_second: int = -1       # graphs compiled by the second, identical call
    recompiles_second: int = -1
    breaks: int = -1              # breaks the compiler reported on the first call
    fallbacks: int = 0            # whole-function eager fallbacks (bytegraph)
    expected: object = None       # the oracle's flat region count
    oracle_breaks: object = None
    split_at_call: object = None
    compiled_raised: str = ""
    break_sites: list = dataclasses.field(default_factory=list)   # "file:line reason" (bytegraph)
    failed_units: list = dataclasses.field(default_factory=list)  # "qualname: reason" that fell back
    eager_breaks: object = None   # the oracle's breaks on eager's own path (no compiling answer)

    @property
    def correct(self):
        return not self.errors

    @property
    def graphs_ok(self):
        return self.expected is not None and self.graphs == self.expected and self.graphs_second == 0

    def summary(self):
        return (f"{self.entry}[{self.variant}] {self.compiler}: layer={self.layer} "
                f"graphs={self.graphs} expected={self.expected} second={self.graphs_second} "
                f"breaks={self.breaks} oracle_breaks={self.oracle_breaks} fallbacks={self.fallbacks}")


def _observe(entry, model, inputs):
    """Call `model` on `inputs`: (output, stdout)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = entry.call(model, inputs)
    return out, buf.getvalue()


def _check(errors, what, fn):
    try:
        fn()
    except AssertionError as e:
        errors.append((what, str(e)[:2000]))


def _compare_call(errors, label, entry, emodel, cmodel, eout, estdout, cout, cstdout, grads):
    tol = dict(atol=entry.atol, rtol=entry.rtol)

    def stdout():
        assert estdout == cstdout, f"--- eager ---\n{estdout}--- compiled ---\n{cstdout}"
    _check(errors, f"{label}: output", lambda: assert_same(eout, cout, path="out", **tol))
    _check(errors, f"{label}: stdout", stdout)

    def state():
        es, cs = emodel.state_dict(), cmodel.state_dict()
        assert list(es) == list(cs), "state_dict keys differ"
        for k in es:
            torch.testing.assert_close(cs[k], es[k], msg=lambda m: f"state {k}: {m}", **tol)
    _check(errors, f"{label}: buffers", state)
    if not grads:
        return
    emodel.zero_grad(set_to_none=True)
    cmodel.zero_grad(set_to_none=True)
    eloss, closs = zoo.loss_of(eout), zoo.loss_of(cout)
    if not (isinstance(eloss, torch.Tensor) and eloss.requires_grad):
        return

    def grads_same():
        assert isinstance(closs, torch.Tensor) and closs.requires_grad, "compiled loss has no grad"
        eloss.backward()
        closs.backward()
        cparams = dict(cmodel.named_parameters())
        for name, p in emodel.named_parameters():
            q = cparams[name]
            assert (p.grad is None) == (q.grad is None), f"grad presence of {name}"
            if p.grad is not None:
                torch.testing.assert_close(q.grad, p.grad, msg=lambda m: f"grad of {name}: {m}",
                                           atol=max(entry.atol, 1e-4), rtol=max(entry.rtol, 1e-4))
    _check(errors, f"{label}: grads", grads_same)


@contextlib.contextmanager
def compiling_answer(value=True):
    """`torch.compiler.is_compiling()` answers `value`: as it does inside a bytegraph or
    torch.compile trace. transformers asks it (via is_tracing) before data-dependent checks it
    skips when compiled (`padding_mask.all()` in masking_utils), so the oracle must see the
    compiled program's path, not eager's."""
    saved = torch.compiler.is_compiling
    torch.compiler.is_compiling = lambda: value
    try:
        yield
    finally:
        torch.compiler.is_compiling = saved


def oracle(entry, model, make_inputs, compiled_path=True):
    """The oracle's Regions for one eager call of `model` (a copy is run), on the path the
    compiled program takes (see compiling_answer) unless compiled_path is False."""
    m = copy.deepcopy(model)
    inputs = make_inputs(0)
    if entry.arg_names is not None:
        call_in = ((), dict(zip(entry.arg_names, inputs)))
    else:
        call_in = (tuple(inputs), {})
    env = G.Env(fn=m, inputs=lambda: call_in)
    prog = G.Program(entry.name, lambda: env, 0, "zoo", "zoo")
    with warnings.catch_warnings(), compiling_answer(compiled_path):
        warnings.simplefilter("ignore")
        return G.region_counts(prog)


def _bytegraph_compile(model, backend):
    return bytegraph.compile(model, backend=backend)


def _torch_compile(model, backend):
    return torch.compile(model, backend=backend)


def _counters(compiler):
    if compiler == "bytegraph":
        return bytegraph.counters
    from torch._dynamo.utils import counters
    return counters


def _reset(compiler):
    if compiler == "bytegraph":
        bytegraph.reset()
    else:
        import torch._dynamo
        torch._dynamo.reset()
        _counters(compiler).clear()


def _short(path):
    return path.split("site-packages/")[-1].replace(os.path.dirname(__file__) + "/", "tests/")


def _bytegraph_breaks(r):
    """The distinct break sites and the units that fell back, from bytegraph.compile_metrics."""
    sites = {}
    for rec in bytegraph.compile_metrics:
        for b in rec.breaks:
            sites.setdefault(f"{_short(b.filename)}:{b.lineno}", b.reason.split(" (and no")[0])
        if not rec.ok:
            where = _short(rec.location)
            r.failed_units.append(f"{rec.name} ({where}): "
                                  f"{rec.reason.splitlines()[0] if rec.reason else '?'}")
    r.break_sites = [f"{k} {v}" for k, v in sites.items()]
    r.breaks = len(sites)


def run(entry, variant, compiler="bytegraph", with_oracle=True):
    """Eager vs compiled for one (entry, variant): a ZooRun (see the module docstring)."""
    model, make_inputs, path = build_variant(entry, variant)
    r = ZooRun(entry.name, variant, compiler, layer=path)
    if with_oracle:
        reg = oracle(entry, model, make_inputs)
        r.expected, r.oracle_breaks, r.split_at_call = reg.flat, reg.breaks, reg.split_at_call
        if entry.family == "transformers":
            r.eager_breaks = oracle(entry, model, make_inputs, compiled_path=False).breaks
    emodel, cmodel = copy.deepcopy(model), copy.deepcopy(model)
    _reset(compiler)
    counters = _counters(compiler)
    backend = CountingBackend()
    ctx = entry.torch_compile_config() if compiler != "bytegraph" else contextlib.nullcontext()
    with ctx:
        compiled = (_bytegraph_compile if compiler == "bytegraph" else _torch_compile)(cmodel, backend)
        for call, seed in ((1, 0), (2, 0), (3, 1)):
            label = f"call {call} (seed {seed})"
            eout, estdout = _observe(entry, emodel, make_inputs(seed))
            rec0 = sum(counters["recompiles"].values())
            n0 = backend.graphs
            try:
                cout, cstdout = _observe(entry, compiled, make_inputs(seed))
            except Exception as e:
                r.compiled_raised = f"{label}: {type(e).__name__}: {e}"
                r.errors.append((f"{label}: raised", traceback.format_exc()[-3000:]))
                break
            if call == 1:
                r.graphs = backend.graphs
                r.fallbacks = sum(counters["fallback"].values())
                if compiler == "bytegraph":
                    _bytegraph_breaks(r)
                else:
                    r.breaks = sum(counters["graph_break"].values())
            elif call == 2:
                r.graphs_second = backend.graphs - n0
                r.recompiles_second = sum(counters["recompiles"].values()) - rec0
            _compare_call(r.errors, label, entry, emodel, cmodel, eout, estdout, cout, cstdout,
                          grads=call != 2)
    _reset(compiler)
    return r
