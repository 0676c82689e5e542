"""Probe (not a test): the FIRST Unsupported reason each of a few transformers models hits.

Builds tiny random configs of real transformers architectures with their *default* settings
(default attention implementation, default use_cache), compiles each with fullgraph=True and
the eager backend, calls it once with attention_mask (and decoder_input_ids for
encoder-decoders), and prints either "OK (n graphs)" or the first Unsupported reason with its
user location. Run from the repository root (PYTHONPATH=. so the checkout's bytegraph is used):

    PYTHONPATH=. .venv/bin/python bench/probe_hf_models.py [--enum-ops] [name ...]
"""
import sys
import traceback
import warnings

import torch

import bytegraph

V = 96


def _text(batch=2, seq=8, **extra):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, V, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, -3:] = 0
    return dict(input_ids=ids, attention_mask=mask, **extra)


def _encdec():
    kw = _text()
    kw["decoder_input_ids"] = torch.randint(3, V, (2, 6), generator=torch.Generator().manual_seed(1))
    return kw


_LM = dict(vocab_size=V, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
           num_attention_heads=4, max_position_embeddings=64, pad_token_id=0, bos_token_id=1,
           eos_token_id=2)
_BART = dict(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
             decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64,
             max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2,
             decoder_start_token_id=2)

MODELS = {
    "llama": ("LlamaForCausalLM", "LlamaConfig", dict(num_key_value_heads=2, **_LM), _text),
    "gemma": ("GemmaForCausalLM", "GemmaConfig", dict(num_key_value_heads=1, head_dim=8, **_LM), _text),
    "qwen2": ("Qwen2ForCausalLM", "Qwen2Config", dict(num_key_value_heads=2, **_LM), _text),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", dict(vocab_size=V, n_embd=32, n_layer=2, n_head=4,
                                                    n_positions=64), _text),
    "bert": ("BertModel", "BertConfig", dict(vocab_size=V, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=4, intermediate_size=64), _text),
    "t5": ("T5ForConditionalGeneration", "T5Config",
           dict(vocab_size=V, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
                num_heads=4, relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
                decoder_start_token_id=0), _encdec),
    "bart": ("BartForConditionalGeneration", "BartConfig", _BART, _encdec),
    "whisper": ("WhisperForConditionalGeneration", "WhisperConfig",
                dict(vocab_size=V, d_model=32, encoder_layers=2, decoder_layers=2,
                     encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                     decoder_ffn_dim=64, num_mel_bins=8, max_source_positions=16,
                     max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                     decoder_start_token_id=1),
                lambda: dict(input_features=torch.randn(2, 8, 32),
                             decoder_input_ids=torch.tensor([[1, 5, 6, 7], [1, 8, 9, 10]]))),
}


def probe(name):
    import transformers
    model_cls, cfg_cls, cfg, make = MODELS[name]
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**cfg)).eval()
    kwargs = make()
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        try:
            compiled(**kwargs)
        except bytegraph.Unsupported as e:
            lines = str(e).splitlines()
            frames = [ln.strip().split("site-packages/")[-1] for ln in lines
                      if ln.startswith("    ")][-3:]
            return f"UNSUPPORTED [{e.kind}] {lines[0]}\n           " + "\n           ".join(frames)
        except Exception as e:          # noqa: BLE001 -- a probe reports everything
            return f"ERROR {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    return f"OK ({bytegraph.counters['stats']['unique_graphs']} graph(s))"


def _approximate_enum_operators():
    """--enum-ops: a probe-only stand-in for the lead's operator work (comparisons of str/int
    Enum members), so the probe can see what a model hits after that. Not sound (no guards)."""
    import enum
    from bytegraph.values import builtins as b
    from bytegraph.values.base import const

    def real(v):
        obj = getattr(v, "obj", None)
        if isinstance(obj, enum.Enum):
            return obj
        return v.as_python() if v.is_const() else b._NO_IDENTITY

    orig = b.compare_op

    def compare_op(tx, op, a, c):
        ra, rc = real(a), real(c)
        if (isinstance(ra, enum.Enum) or isinstance(rc, enum.Enum)) and b._NO_IDENTITY not in (ra, rc):
            return const(op(ra, rc))
        return orig(tx, op, a, c)
    from bytegraph.symbolic import handlers_ops
    b.compare_op = handlers_ops.compare_op = compare_op


def main(names):
    warnings.simplefilter("ignore")
    if "--enum-ops" in names:
        names = [n for n in names if n != "--enum-ops"]
        _approximate_enum_operators()
    for name in names or MODELS:
        print(f"{name:8s} {probe(name)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
