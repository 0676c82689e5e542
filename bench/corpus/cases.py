"""Corpus cases: build a corpus model by name and run one configuration on it.

Responsible for *what* a (model, configuration) pair executes and how its result
is compared, shared by the enumeration pass, the runner's worker and the CI test:

  * `Built`: a model with its eval inputs, train labels and capabilities.
  * `build(name, entry)`: rebuilds a model from its corpus entry (a row of
    bench/results/corpus_models.json), seeded, so eager and compiled copies and
    every run see the same weights and inputs.
  * `CONFIGS`: eval / train / cache / generate, each a function
    `(model, target, built) -> result` where `target` is what is called
    (the eager model or the compiled object, see `compile_target`).
  * `flatten`, `compare`: the tolerance check of two results.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping

import torch

ATOL = 1e-4
RTOL = 1e-4
SEED = 0
MODELS_JSON = "bench/results/corpus_models.json"


@dataclasses.dataclass
class Built:
    model: torch.nn.Module
    inputs: dict  # eval keyword arguments
    labels: dict  # extra keyword arguments for `train` ({} -> surrogate loss)
    text_config: object = None  # for cache/generate: the config giving the vocab


def seed_all(seed=SEED):
    import random
    random.seed(seed)
    torch.manual_seed(seed)


def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, dict):
        return {k: _clone(v) for k, v in x.items()}
    return x


# ----------------------------------------------------------------------------- building

def build(name, entry):
    """(Built) for a corpus entry: {"name": "hf/llama", "class": ..., "kind": ..., "input_index": i}."""
    family, _, model_name = name.partition("/")
    if family == "hf":
        import hf_models as H
        config = H.shrink_config(H.default_config(model_name))
        model = H.build_model(entry["class"], config, seed=SEED)
        inputs = H.input_candidates(model, config, seed=SEED)[entry.get("input_index", 0)]
        labels = H.label_inputs(entry.get("kind"), model, config, inputs, seed=SEED) \
            if entry.get("train_labels", True) else {}
        H.prepare_generation(model, config)
        return Built(model, inputs, labels, H._text_config(config))
    if family == "diffusers":
        import diffusers_models as D
        model, inputs = D.build(model_name, seed=SEED)
        return Built(model, inputs, {})
    raise KeyError(name)


def fresh_copy(model):
    """A copy of `model` with the same weights that shares no state with it."""
    return copy.deepcopy(model)


# ----------------------------------------------------------------------------- results

def flatten(x, out=None):
    """Every tensor in a (nested) model output, in a fixed order; caches by their key/value tensors."""
    out = [] if out is None else out
    if isinstance(x, torch.Tensor):
        out.append(x)
    elif isinstance(x, Mapping):
        for k in x:
            flatten(x[k], out)
    elif isinstance(x, (list, tuple)):
        for v in x:
            flatten(v, out)
    elif hasattr(x, "layers") and isinstance(getattr(x, "layers"), list):  # a transformers Cache
        for layer in x.layers:
            for attr in ("keys", "values"):
                flatten(getattr(layer, attr, None), out)
    return out


def surrogate_loss(out):
    """A scalar depending on every floating output (for models without a labels loss)."""
    terms = [t.float().pow(2).mean() for t in flatten(out) if t.is_floating_point() and t.requires_grad]
    if not terms:
        raise RuntimeError("no differentiable output")
    return sum(terms)


def compare(expected, actual, atol=ATOL, rtol=RTOL):
    """None when `actual` matches `expected` (lists of tensors), else a one-line reason."""
    if len(expected) != len(actual):
        return f"{len(actual)} output tensors, eager has {len(expected)}"
    worst = 0.0
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e is None or a is None:
            if (e is None) != (a is None):
                return f"tensor {i}: presence differs"
            continue
        if e.shape != a.shape or e.dtype != a.dtype:
            return f"tensor {i}: {tuple(a.shape)}/{a.dtype} vs eager {tuple(e.shape)}/{e.dtype}"
        if not e.is_floating_point():
            if not torch.equal(e, a):
                return f"tensor {i}: integer values differ"
            continue
        if not torch.allclose(a, e, atol=atol, rtol=rtol, equal_nan=True):
            diff = (a.double() - e.double()).abs()
            diff = diff[~torch.isnan(diff)]
            return f"tensor {i}: max abs diff {diff.max().item() if diff.numel() else math.nan:.3g}"
        if e.numel():
            worst = max(worst, (a.double() - e.double()).abs().nan_to_num(0).max().item())
    return None


# ----------------------------------------------------------------------------- configurations

def run_eval(model, target, built):
    model.eval()
    seed_all()
    with torch.no_grad():
        return flatten(target(**_clone(built.inputs)))


def run_train(model, target, built):
    model.train()
    model.zero_grad(set_to_none=True)
    seed_all()
    out = target(**_clone(built.inputs), **_clone(built.labels))
    loss = out.get("loss") if isinstance(out, Mapping) else None
    if loss is None:
        loss = surrogate_loss(out)
    elif loss.dim():
        loss = loss.sum()  # some heads return a per-sample loss
    loss.backward()
    grads = [p.grad for _, p in sorted(model.named_parameters())]
    return [loss.detach()] + grads


def _next_token(built):
    vocab = getattr(built.text_config, "vocab_size", None) or 16
    return torch.randint(3 if vocab > 8 else 0, vocab, (built.inputs["input_ids"].shape[0], 1),
                         generator=torch.Generator().manual_seed(SEED + 7))


def cache_param(model):
    """The forward parameter (and output key) carrying the KV cache, or None."""
    import inspect
    params = inspect.signature(model.forward).parameters
    return next((k for k in ("past_key_values", "cache") if k in params), None)


def run_cache(model, target, built):
    """Prefill with use_cache=True, then one decoding step fed past_key_values and one new token."""
    model.eval()
    seed_all()
    inputs = _clone(built.inputs)
    inputs["use_cache"] = True
    with torch.no_grad():
        first = target(**inputs)
        mask = inputs.get("attention_mask")
        key = cache_param(model)  # transformers 5.24 names it `cache` in many models
        step = {"input_ids": _next_token(built), key: first[key], "use_cache": True}
        if mask is not None:
            step["attention_mask"] = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        second = target(**step)
    return flatten(first["logits"]) + flatten(second["logits"])


def generate_inputs(built):
    """The eval inputs without decoder ids, unpadded (generation of a right-padded batch is ill-posed)."""
    inputs = {k: v for k, v in _clone(built.inputs).items() if k not in ("use_cache", "decoder_input_ids")}
    if "attention_mask" in inputs:
        inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
    return inputs


def run_generate(model, target, built):
    """`model.generate(max_new_tokens=3, do_sample=False)`; `target` is the model whose forward may be compiled."""
    model.eval()
    seed_all()
    with torch.no_grad():
        out = target.generate(**generate_inputs(built), max_new_tokens=3, do_sample=False)
    return flatten(out)


CONFIGS = {"eval": run_eval, "train": run_train, "cache": run_cache, "generate": run_generate}

# Graphs of a whole capture: one per distinct call signature a configuration makes (cache: the
# prefill and the step fed a cache; generate: the prefill and two decoding steps, whose cache
# length differs -- torch.compile marks it dynamic at the second, bytegraph specializes).
FULL_GRAPHS = {"eval": 1, "train": 1, "cache": 2, "generate": 3}


def whole(row):
    """True for a correct row captured as one graph per call signature (FULL_GRAPHS) that, where it
    was measured (`fraction_in_graphs`, worker.measure_ops), ran every tensor op inside its graphs:
    one graph holding a few ops while a function falls back to eager around it is not whole."""
    return bool(row and row.get("status") == "ok" and row.get("correct")
                and row.get("graphs") == FULL_GRAPHS[row["config"]]
                and row.get("fraction_in_graphs") in (None, 1.0))

# What each configuration compiles: the model object (its __call__ -> forward, hooks included),
# except `generate`, which compiles the bound `model.forward` and installs it on the instance,
# so the model's own Python `generate` loop calls the compiled forward every step.
COMPILE_TARGET = {"eval": "model", "train": "model", "cache": "model", "generate": "model.forward"}


def compile_target(config, model, compile_fn):
    """The object the configuration runs: compile_fn applied to what COMPILE_TARGET names."""
    if COMPILE_TARGET[config] == "model.forward":
        model.forward = compile_fn(model.forward)
        return model
    return compile_fn(model)


# ----------------------------------------------------------------------------- the pair list

DECODER_SAMPLE = 20  # cache / generate run on a seeded sample of this many eligible models


def load_models(path=MODELS_JSON):
    import json
    with open(path) as f:
        return json.load(f)


def all_pairs(models):
    """[(name, config, entry)] of the whole corpus: eval/train for every kept model, cache and
    generate for a seeded sample of DECODER_SAMPLE models each that support them."""
    import random
    kept = sorted(models["kept"], key=lambda e: e["name"])
    chosen = {}
    for config in ("cache", "generate"):
        eligible = [e["name"] for e in kept if config in e["configs"]]
        chosen[config] = set(random.Random(SEED).sample(eligible, min(DECODER_SAMPLE, len(eligible))))
    pairs = []
    for e in kept:
        for config in e["configs"]:
            if config in chosen and e["name"] not in chosen[config]:
                continue
            pairs.append((e["name"], config, e))
    return pairs


CI_SEED = 20260
CI_SAMPLE = 40
CI_HEAVY_S = 2.0  # models whose eager check took longer stay out of the CI sample (time budget)


def ci_sample(models):
    """The fixed, seeded random sample of pairs tests/test_corpus_sample.py runs."""
    import random
    pairs = [p for p in all_pairs(models) if p[2].get("eager_check_s", 0) <= CI_HEAVY_S]
    picked = random.Random(CI_SEED).sample(pairs, min(CI_SAMPLE, len(pairs)))
    return sorted(picked, key=lambda p: (p[0], p[1]))
