"""Probe (not a test): the FIRST Unsupported reason each of a few real models hits.

Builds tiny random configs of real transformers architectures (and two diffusers models)
with their *default* settings
(default attention implementation, default use_cache), compiles each with fullgraph=True and
the eager backend, calls it once with attention_mask (and decoder_input_ids for
encoder-decoders), and prints either "OK (n graphs)" or the first Unsupported reason with its
user location. Run from the repository root (PYTHONPATH=. so the checkout's bytegraph is used):

    PYTHONPATH=. .venv/bin/python bench/probe_hf_models.py [name ...]
    PYTHONPATH=. .venv/bin/python bench/probe_hf_models.py --zoo     # tests/zoo.py's 23, defaults
"""
import os
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


def _unet():
    import diffusers
    return diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)


def _vae():
    import diffusers
    return diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(32,), latent_channels=4, norm_num_groups=8, sample_size=16)


DIFFUSERS = {
    "unet2d": (_unet, lambda: dict(sample=torch.randn(1, 4, 8, 8), timestep=torch.tensor(3),
                                   encoder_hidden_states=torch.randn(1, 5, 32))),
    "vae": (_vae, lambda: dict(sample=torch.randn(1, 3, 16, 16))),
}


def build(name):
    torch.manual_seed(0)
    if name in DIFFUSERS:
        ctor, make = DIFFUSERS[name]
        return ctor().eval(), make()
    import transformers
    model_cls, cfg_cls, cfg, make = MODELS[name]
    return getattr(transformers, model_cls)(getattr(transformers, cfg_cls)(**cfg)).eval(), make()


def probe(name):
    model, kwargs = build(name)
    bytegraph.reset()
    compiled = bytegraph.compile(model, backend="eager", fullgraph=True)
    with torch.no_grad():
        try:
            out = compiled(**kwargs)
            ref = model(**kwargs)
        except bytegraph.Unsupported as e:
            lines = str(e).splitlines()
            frames = [ln.strip().split("site-packages/")[-1] for ln in lines
                      if ln.startswith("    ")][-3:]
            return f"UNSUPPORTED [{e.kind}] {lines[0]}\n           " + "\n           ".join(frames)
        except Exception as e:          # noqa: BLE001 -- a probe reports everything
            return f"ERROR {type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"
    import torch.utils._pytree as pytree
    pairs = [(a, b) for a, b in zip(pytree.tree_leaves(out), pytree.tree_leaves(ref)) if isinstance(a, torch.Tensor)]
    same = pairs and all(torch.allclose(a, b, atol=1e-5, rtol=1e-4) for a, b in pairs)
    return (f"OK ({bytegraph.counters['stats']['unique_graphs']} graph(s), "
            f"{len(pairs)} output tensors {'match' if same else 'DIFFER FROM'} eager)")


def zoo_defaults():
    """--zoo: every transformers entry of tests/zoo.py, rebuilt with the library's defaults
    (default attention implementation and use_cache) instead of the zoo's eager/no-cache."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import zoo
    for e in zoo.entries("transformers"):
        cells = dict(zip(e.build.__code__.co_freevars, (c.cell_contents for c in e.build.__closure__)))
        cfg = {k: v for k, v in cells["cfg"].items() if k != "use_cache"}
        make = e.build()[1]
        MODELS[e.name] = (cells["model_cls"], cells["config_cls"], cfg,
                          lambda make=make, names=e.arg_names: dict(zip(names, make(0))))
        yield e.name


def main(names):
    warnings.simplefilter("ignore")
    if "--zoo" in names:
        names = list(zoo_defaults())
    for name in names or [*MODELS, *DIFFUSERS]:
        print(f"{name:12s} {probe(name)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
