"""transformers corpus: enumerate model types, shrink their configs, build models and inputs.

Responsible for turning a transformers `model_type` string into a small, seeded,
runnable model plus example inputs -- with no hand-picked per-model code:

  * `model_types()` reads every model type from the installed release's auto
    mappings (`modeling_auto.*_MAPPING_NAMES`).
  * `candidate_classes(model_type)` lists the model classes to try, heads that
    take `labels` first (CausalLM, MaskedLM, Seq2SeqLM, ...), the base model last.
  * `shrink_config(config)` is ONE generic shrinker: it walks the config's init
    fields and shrinks widths, depths, heads, vocab, image size, experts, ...,
    zeroes every dropout/noise probability, and recurses into sub-configs.
  * `input_candidates(model, config)` derives inputs from the forward signature
    and the modality (text / image / video / audio spectrogram / raw audio).
  * `label_inputs(kind, ...)` adds the labels a head takes.

Nothing here downloads anything; a model that needs a file from the hub fails
and the caller records why.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import re

import torch

BATCH = 2
SEQ = 8
HIDDEN = 64
INTERMEDIATE = 128
LAYERS = 2
HEADS = 4
KV_HEADS = 2
HEAD_DIM = 16
VOCAB = 128
MAX_POS = 512
IMAGE = 64
PATCH = 16
EXPERTS = 4
EXPERTS_PER_TOK = 2
AUDIO_SAMPLES = 3200

# Heads tried in this order (the first mapping that has the type wins), then the base model.
# Each maps to the kind of labels it takes (None: no labels -> surrogate loss for `train`).
HEAD_PREFERENCE = (
    ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "seq2seq"),
    ("MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES", "seq2seq"),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "lm"),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "lm"),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "cls"),
    ("MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES", "cls"),
    ("MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES", "cls"),
    ("MODEL_FOR_VIDEO_CLASSIFICATION_MAPPING_NAMES", "cls"),
    ("MODEL_FOR_CTC_MAPPING_NAMES", "ctc"),
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "tok"),
    ("MODEL_MAPPING_NAMES", None),
)


def _mappings():
    from transformers.models.auto import modeling_auto
    return {n: getattr(modeling_auto, n) for n in dir(modeling_auto)
            if n.startswith("MODEL") and n.endswith("_MAPPING_NAMES")}


def model_types():
    """Every model type that some auto model mapping of the installed release knows, sorted."""
    types = set()
    for mapping in _mappings().values():
        types.update(mapping.keys())
    return sorted(types)


def _first(name):
    return name[0] if isinstance(name, (tuple, list)) else name


def candidate_classes(model_type):
    """[(class_name, label_kind, mapping_name)] to try for `model_type`, preferred first."""
    maps = _mappings()
    out, seen = [], set()
    for mapping_name, kind in HEAD_PREFERENCE:
        cls = maps.get(mapping_name, {}).get(model_type)
        if cls and _first(cls) not in seen:
            seen.add(_first(cls))
            out.append((_first(cls), kind, mapping_name))
    return out


# ----------------------------------------------------------------------------- the shrinker

_RULES = (  # (regex on the field name, new value for an int field larger than it)
    (r"(^|_)(hidden_size|d_model|n_embd|n_embed|embed_dim|embedding_size|embedding_dim|hidden_dim|"
     r"model_dim|d_embed|emb_dim|projection_dim|proj_size|output_hidden_size|word_embed_proj_dim|"
     r"text_embed_dim|vision_embed_dim|classifier_proj_size|codevector_dim|proj_codevector_dim|"
     r"xvector_output_dim|dim)$", HIDDEN),
    (r"(intermediate_size|ffn_dim|(^|_)d_ff|n_inner|mlp_dim|ffn_hidden_size|(^|_)d_inner|"
     r"dim_feedforward|intermediate_dim|d_kv_proj)$", INTERMEDIATE),
    (r"(^|_)(num_hidden_layers|num_layers|n_layers?|encoder_layers|decoder_layers|depth|"
     r"num_[a-z_]*layers|[a-z_]*_num_layers)$", LAYERS),
    (r"(^|_)(num_attention_heads|n_heads?|num_heads|encoder_attention_heads|"
     r"decoder_attention_heads|attention_heads)$", HEADS),
    (r"head_dim$|(^|_)d_kv$|head_size$|(^|_)rotary_dim$", HEAD_DIM),
    (r"_lora_rank$", HEAD_DIM),
    (r"(^|_)vocab_size$", VOCAB),
    (r"(^|_)(max_position_embeddings|max_source_positions|max_target_positions|n_positions|n_ctx)$",
     MAX_POS),
    (r"(^|_)(num_experts|num_local_experts|n_routed_experts|moe_num_experts|num_routed_experts)$",
     EXPERTS),
    (r"(num_experts_per_tok|moe_topk|num_selected_experts|experts_per_token|moe_top_k)$",
     EXPERTS_PER_TOK),
    (r"(^|_)(n_shared_experts|num_shared_experts|n_group|topk_group|first_k_dense_replace)$", 1),
    (r"(^|_)image_size$", IMAGE),
    (r"(^|_)patch_size$", PATCH),
    (r"(^|_)num_frames$", 2),
    (r"(^|_)window_size$", 4),
    (r"(^|_)(num_groups|norm_num_groups|num_norm_groups)$", 4),
)
_KV_HEADS = re.compile(r"(num_key_value_heads|n_kv_heads|num_kv_heads|multi_query_group_num|"
                       r"n_head_kv|num_kv_groups)$")
_HEADS_LIST = re.compile(r"(heads|num_heads)$")
_DIMS_LIST = re.compile(r"(sizes|dims|channels|conv_dim|tdnn_dim|widths|dim)$")
_DEPTHS_LIST = re.compile(r"(depths|layers|blocks)$")
_ZERO_FLOAT = re.compile(r"dropout|drop_prob|pdrop|drop_path|layerdrop|drop_rate|dropout_rate|"
                         r"jitter|noise|mask_time_prob|mask_feature_prob|attn_drop|proj_drop")
_TOKEN_ID = re.compile(r"token_id$|token_index$|token_ids$")


def _is_config(x):
    from transformers import PretrainedConfig
    return isinstance(x, PretrainedConfig)


def _pow2_floor(v):
    return 1 << (max(int(v), 1).bit_length() - 1)


def _shrink_field(name, value, orig_layers, orig_heads):
    """The shrunk value of one config field (or `value` itself when no rule applies)."""
    if value is None:  # an unset head_dim / kv-head count that the model code needs
        if re.search(r"(^|_)head_dim$", name):
            return HEAD_DIM
        return KV_HEADS if _KV_HEADS.search(name) else None
    if isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return _shrink_dict(value)
    if isinstance(value, float):
        return 0.0 if _ZERO_FLOAT.search(name) and 0.0 < value < 1.0 else value
    if isinstance(value, int):
        if _KV_HEADS.search(name):
            return HEADS if orig_heads and value >= orig_heads else min(value, KV_HEADS)
        for pattern, new in _RULES:
            if re.search(pattern, name):
                return new if value > new else value
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) and not isinstance(v, bool)
                                                           for v in value):
        seq = list(value)
        if orig_layers and len(seq) == orig_layers and orig_layers > LAYERS and not _DIMS_LIST.search(name):
            seq = seq[:LAYERS]  # a per-layer list (layer types, window sizes, ...)
        elif _HEADS_LIST.search(name):
            seq = [min(_pow2_floor(v), 8) for v in seq]
        elif _DEPTHS_LIST.search(name):
            seq = [min(v, 1) for v in seq]
        elif _DIMS_LIST.search(name) and max(seq) > HIDDEN:
            scale = _pow2_floor(max(seq)) // HIDDEN
            seq = [max(8, _pow2_floor(v) // scale) if v > 8 else v for v in seq]
        elif re.search(r"(^|_)image_size$", name):
            seq = [min(v, IMAGE) for v in seq]
        return type(value)(seq)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        if orig_layers and len(value) == orig_layers and orig_layers > LAYERS:
            return type(value)(_keep_variety(list(value)))  # e.g. layer_types
    return value


def _keep_variety(seq):
    """LAYERS entries of a per-layer list, keeping each distinct kind (e.g. linear and full attention)."""
    firsts = sorted({v: i for i, v in reversed(list(enumerate(seq)))}.values())[:LAYERS]
    picked = sorted(firsts + [i for i in range(len(seq)) if i not in firsts][:LAYERS - len(firsts)])
    return [seq[i] for i in picked]


def _shrink_dict(d):
    """Rope parameters and similar dicts: multimodal rope sections rescaled to the shrunk head_dim."""
    out = dict(d)
    for k, v in d.items():
        if (isinstance(k, str) and "section" in k and isinstance(v, list) and v
                and all(isinstance(x, int) for x in v) and sum(v) > HEAD_DIM // 2):
            target = HEAD_DIM // 2
            new = [max(1, x * target // sum(v)) for x in v]
            new[0] += target - sum(new)
            out[k] = new if new[0] > 0 else v
    return out


def _init_fields(cls):
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls) if f.init]
    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "kwargs")]


def _remap_token_ids(kwargs, vocab):
    """Special token ids past the shrunk vocab get distinct ids from the top of the vocab."""
    next_id = [vocab - 1]

    def fix(v):
        if isinstance(v, int) and not isinstance(v, bool) and v >= vocab:
            next_id[0] -= 1
            return next_id[0] + 1
        return v
    for k, v in list(kwargs.items()):
        if _TOKEN_ID.search(k):
            kwargs[k] = [fix(x) for x in v] if isinstance(v, list) else fix(v)


def shrink_config(config):
    """A new config of the same class with every size-like field shrunk (see module doc)."""
    cls = type(config)
    fields = _init_fields(cls)
    values = {}
    for f in fields:
        try:
            values[f] = getattr(config, f)
        except AttributeError:
            continue
        except Exception:  # noqa: BLE001 -- e.g. a per-layer attribute refusing global access
            if f in vars(config):
                values[f] = vars(config)[f]
    orig_layers = next((values[k] for k in ("num_hidden_layers", "num_layers", "n_layer", "decoder_layers",
                                            "encoder_layers") if isinstance(values.get(k), int)), None)
    orig_heads = next((values[k] for k in ("num_attention_heads", "n_head", "num_heads", "encoder_attention_heads")
                       if isinstance(values.get(k), int)), None)
    kwargs = {}
    for name, value in values.items():
        if _is_config(value):
            kwargs[name] = shrink_config(value)
            continue
        if isinstance(value, dict) and "model_type" in value:
            try:
                from transformers import AutoConfig
                sub = AutoConfig.for_model(**value)
                kwargs[name] = shrink_config(sub)
            except Exception:  # noqa: BLE001 -- leave an unknown sub-config alone
                pass
            continue
        new = _shrink_field(name, value, orig_layers, orig_heads)
        if new is not value and new != value:
            kwargs[name] = new
    vocab = kwargs.get("vocab_size", values.get("vocab_size"))
    if isinstance(vocab, int):
        for k in fields:
            if _TOKEN_ID.search(k) and k not in kwargs and k in values:
                kwargs[k] = values[k]
        _remap_token_ids(kwargs, vocab)
    for flag in ("apply_spec_augment",):
        if values.get(flag) is True:
            kwargs[flag] = False
    new = cls(**kwargs)
    return new


def default_config(model_type):
    from transformers import AutoConfig
    return AutoConfig.for_model(model_type)


def build_model(class_name, config, seed=0):
    """Instantiate `class_name` (a transformers class) from `config`, seeded, float32, on CPU."""
    import transformers
    cls = getattr(transformers, class_name)
    torch.manual_seed(seed)
    model = cls(config)
    return model.to(torch.float32)


# ----------------------------------------------------------------------------- inputs

def _sub(config, *names):
    for n in names:
        sub = getattr(config, n, None)
        if _is_config(sub):
            return sub
    return config


def _get(configs, *names, default=None):
    for c in configs:
        for n in names:
            v = getattr(c, n, None)
            if isinstance(v, int) and not isinstance(v, bool):
                return v
            if isinstance(v, (list, tuple)) and v and isinstance(v[0], int):
                return v
    return default


def _text_config(config):
    try:
        return config.get_text_config()
    except Exception:  # noqa: BLE001
        return config


def vocab_of(config):
    v = _get([_text_config(config), config], "vocab_size", default=VOCAB)
    return v if isinstance(v, int) else VOCAB


def forward_params(model):
    """{name: has_default} of model.forward's parameters (without *args/**kwargs)."""
    sig = inspect.signature(model.forward)
    return {n: p.default is not inspect.Parameter.empty for n, p in sig.parameters.items()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}


def _gen(seed):
    g = torch.Generator().manual_seed(seed)
    return g


def text_inputs(config, gen, batch=BATCH, seq=SEQ):
    vocab = vocab_of(config)
    ids = torch.randint(3 if vocab > 8 else 0, vocab, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, -2:] = 0  # the second sample is right-padded
    return ids, mask


def _image_shape(config):
    vc = _sub(config, "vision_config", "backbone_config", "encoder")
    size = _get([vc, config], "image_size", default=IMAGE)
    h, w = (size[0], size[-1]) if isinstance(size, (list, tuple)) else (size, size)
    ch = _get([vc, config], "num_channels", "in_channels", "in_chans", default=3)
    frames = _get([vc, config], "num_frames", default=2)
    return ch, h, w, frames


def input_candidates(model, config, seed=0):
    """Input dicts (no labels) to try, in order; the first that runs eagerly is kept."""
    params = forward_params(model)
    gen = _gen(seed)
    base = {}
    has_text = "input_ids" in params
    if has_text:
        ids, mask = text_inputs(config, gen)
        base["input_ids"] = ids
        if "attention_mask" in params:
            base["attention_mask"] = mask
    if "decoder_input_ids" in params and getattr(config, "is_encoder_decoder", False):
        base["decoder_input_ids"] = text_inputs(config, gen)[0]
    cands = []
    ch, h, w, frames = _image_shape(config)
    if "pixel_values" in params and (not has_text or not params["pixel_values"]):
        img = torch.randn(BATCH, ch, h, w, generator=gen)
        cands.append({**base, "pixel_values": img})
        cands.append({**base, "pixel_values": torch.randn(BATCH, frames, ch, h, w, generator=gen)})
    elif "pixel_values" in params:  # text model with optional images: text only, then text + image
        cands.append(base)
        cands.append({**base, "pixel_values": torch.randn(BATCH, ch, h, w, generator=gen)})
    elif "pixel_values_videos" in params and not has_text:
        cands.append({**base, "pixel_values_videos": torch.randn(BATCH, frames, ch, h, w, generator=gen)})
    elif "input_features" in params:
        ac = _sub(config, "audio_config", "encoder_config")
        mels = _get([ac, config], "num_mel_bins", "feature_size", "n_mels", "input_feat_per_channel",
                    "num_mel_bins", default=80)
        chans = _get([ac, config], "input_channels", default=1)
        src = _get([ac, config], "max_source_positions", default=None)
        lengths = ([2 * src] if isinstance(src, int) else []) + [64]
        for length in lengths:
            cands.append({**base, "input_features": torch.randn(BATCH, mels, length, generator=gen)})
            cands.append({**base, "input_features": torch.randn(BATCH, length, mels * chans, generator=gen)})
    elif "input_values" in params:
        ac = _sub(config, "audio_config")
        mels = _get([ac, config], "num_mel_bins", "feature_size", default=80)
        maxlen = _get([ac, config], "max_length", default=64)
        cands.append({**base, "input_values": torch.randn(BATCH, AUDIO_SAMPLES, generator=gen)})
        cands.append({**base, "input_values": torch.randn(BATCH, maxlen, mels, generator=gen)})
        cands.append({**base, "input_values": torch.randn(BATCH, 1, AUDIO_SAMPLES, generator=gen)})
    elif has_text:
        cands.append(base)
    if "use_cache" in params:
        for c in cands:
            c["use_cache"] = False
    missing = [n for n, has_default in params.items() if not has_default and n not in (cands[0] if cands else {})]
    if not cands or missing:
        raise NotImplementedError(f"no generic inputs for forward parameters {missing or list(params)[:4]}")
    return cands


def label_inputs(kind, model, config, inputs, seed=0):
    """The label keyword arguments for a head of `kind` (see HEAD_PREFERENCE), or {}."""
    params = forward_params(model)
    gen = _gen(seed + 1000)
    num_labels = getattr(config, "num_labels", 2) or 2
    if kind in ("lm", "seq2seq") and "labels" in params:
        if kind == "seq2seq" and "decoder_input_ids" in inputs:
            return {"labels": torch.randint(3, vocab_of(config), inputs["decoder_input_ids"].shape, generator=gen)}
        if "input_ids" in inputs:
            labels = inputs["input_ids"].clone()
            if "attention_mask" in inputs:
                labels[inputs["attention_mask"] == 0] = -100
            return {"labels": labels}
    if kind == "cls" and "labels" in params:
        return {"labels": torch.randint(0, num_labels, (BATCH,), generator=gen)}
    if kind == "tok" and "labels" in params and "input_ids" in inputs:
        return {"labels": torch.randint(0, num_labels, inputs["input_ids"].shape, generator=gen)}
    if kind == "ctc" and "labels" in params:
        return {"labels": torch.randint(1, vocab_of(config), (BATCH, 2), generator=gen)}
    return {}


def prepare_generation(model, config):
    """Fill the generation-config token ids a tokenizer would normally provide (start/pad)."""
    gc = getattr(model, "generation_config", None)
    if gc is None:
        return
    text = _text_config(config)
    pad = next((v for v in (gc.pad_token_id, getattr(text, "pad_token_id", None), gc.eos_token_id, 0)
                if isinstance(v, int)), 0)
    if gc.pad_token_id is None:
        gc.pad_token_id = pad
    if getattr(config, "is_encoder_decoder", False) and gc.decoder_start_token_id is None and gc.bos_token_id is None:
        gc.decoder_start_token_id = pad
