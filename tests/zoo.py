"""The model zoo: small, deterministic real-world models nobody on the team wrote.

Responsible for *building* models and their inputs, nothing else. Each `Entry`
has a name, a builder returning `(model, make_inputs)` -- `make_inputs(seed)`
gives a tuple of arguments (different values per seed, same shapes/dtypes) --
and flags (grad_check, tolerances, which kwarg names the arguments are passed
as). Used by tests/test_zoo_*.py and bench/bench_core.py.

Two families:
  * "transformers": HF transformers architectures built from tiny random configs
    (never downloads weights), `use_cache=False`, `attn_implementation="eager"`
    (the plain matmul/softmax attention: simplest to capture; recorded in
    `Entry.attn`), called with keyword arguments and returning the real
    ModelOutput.
  * "nn": torch.nn layers with their common arguments, losses, small stacks.

`Entry.dynamo_config` holds torch._dynamo config overrides that *torch.compile*
needs to capture the entry as one graph (e.g. allow_rnn for RNN/LSTM/GRU, which
stock Dynamo refuses by default); `Entry.torch_compile_config()` applies it and is
used only around the reference torch.compile, never around bytegraph.

`check_entry(entry, ...)` (bottom of the file) is the differential check shared
by the zoo tests: eager vs compiled outputs, gradients, buffers, graph count.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import warnings
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.utils._pytree as pytree

BATCH = 2
SEQ = 8
VOCAB = 96


@dataclasses.dataclass
class Entry:
    name: str
    build: Callable[[], tuple]  # -> (model, make_inputs)
    family: str  # "nn" | "transformers"
    grad_check: bool = False
    atol: float = 1e-4
    rtol: float = 1e-4
    arg_names: Optional[tuple] = None  # pass inputs as these keyword arguments
    attn: Optional[str] = None  # transformers attention implementation used
    dynamo_config: dict = dataclasses.field(default_factory=dict)
    quick: bool = False  # part of the quick benchmark subset
    inductor: bool = False  # also tested with backend="inductor"
    graphs: int = 1  # graphs bytegraph compiles (torch.compile: always 1)
    note: str = ""

    def call(self, model, inputs):
        """Invoke `model` (eager or compiled) on `inputs` the way this entry expects."""
        if self.arg_names is not None:
            return model(**dict(zip(self.arg_names, inputs)))
        return model(*inputs)

    def torch_compile_config(self):
        """Context with the torch._dynamo config the reference torch.compile needs."""
        if not self.dynamo_config:
            return contextlib.nullcontext()
        import torch._dynamo
        return torch._dynamo.config.patch(**self.dynamo_config)


REGISTRY: dict[str, Entry] = {}


def _add(entry: Entry):
    assert entry.name not in REGISTRY, entry.name
    REGISTRY[entry.name] = entry
    return entry


def entries(family=None):
    return [e for e in REGISTRY.values() if family is None or e.family == family]


def get(name):
    return REGISTRY[name]


# ----------------------------------------------------------------------------- helpers

def _gen(seed):
    return torch.Generator().manual_seed(1000 + seed)


def randn_inputs(*shapes):
    """make_inputs for float tensors of the given shapes."""
    def make_inputs(seed):
        g = _gen(seed)
        return tuple(torch.randn(*s, generator=g) for s in shapes)
    return make_inputs


def float_leaves(out):
    """All floating-point tensors in a (possibly ModelOutput) pytree of outputs."""
    return [x for x in pytree.tree_leaves(out)
            if isinstance(x, torch.Tensor) and x.is_floating_point()]


def loss_of(out):
    """Scalar used for gradient checks: sum of every floating tensor output."""
    return sum(x.sum() for x in float_leaves(out))


def module_entry(name, ctor, make_inputs, train=False, **flags):
    """Entry for a module built by `ctor()` (under a fixed seed) and a make_inputs."""
    def build():
        torch.manual_seed(0)
        m = ctor()
        m.train(train)
        return m, make_inputs
    return _add(Entry(name, build, "nn", **flags))


def layer(name, ctor, *shapes, **flags):
    return module_entry(name, ctor, randn_inputs(*shapes), **flags)


# ----------------------------------------------------------------------------- nn: layers

B = BATCH
layer("linear", lambda: nn.Linear(16, 32), (B, 16), grad_check=True, quick=True, inductor=True)
layer("linear_nobias", lambda: nn.Linear(16, 8, bias=False), (B, 16))
layer("linear_3d_input", lambda: nn.Linear(16, 8), (B, 5, 16))
layer("bilinear", lambda: nn.Bilinear(8, 6, 4), (B, 8), (B, 6))

layer("conv1d", lambda: nn.Conv1d(4, 8, 3), (B, 4, 16))
layer("conv1d_stride_pad_dil", lambda: nn.Conv1d(4, 8, 3, stride=2, padding=2, dilation=2), (B, 4, 16))
layer("conv1d_groups", lambda: nn.Conv1d(4, 8, 3, padding="same", groups=2), (B, 4, 16))
layer("conv2d", lambda: nn.Conv2d(3, 8, 3, padding=1), (B, 3, 8, 8), grad_check=True, quick=True,
      inductor=True)
layer("conv2d_stride_pad", lambda: nn.Conv2d(3, 8, (3, 5), stride=(2, 1), padding=(1, 2)), (B, 3, 8, 8))
layer("conv2d_groups_dil", lambda: nn.Conv2d(4, 8, 3, groups=4, dilation=2, bias=False), (B, 4, 9, 9))
layer("conv2d_reflect", lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"), (B, 3, 6, 6))
layer("conv3d", lambda: nn.Conv3d(2, 4, 3, padding=1), (B, 2, 4, 6, 6))
layer("conv3d_stride_groups", lambda: nn.Conv3d(4, 4, 2, stride=2, groups=2), (B, 4, 4, 6, 6))
layer("convtranspose1d", lambda: nn.ConvTranspose1d(4, 6, 3, stride=2, padding=1, output_padding=1),
      (B, 4, 8))
layer("convtranspose2d", lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1), (B, 4, 5, 5))
layer("convtranspose2d_groups_dil",
      lambda: nn.ConvTranspose2d(4, 8, 3, groups=2, dilation=2, output_padding=0), (B, 4, 5, 5))
layer("convtranspose3d", lambda: nn.ConvTranspose3d(2, 4, 2, stride=2), (B, 2, 3, 4, 4))

# normalization
for _train in (True, False):
    _mode = "train" if _train else "eval"
    layer(f"batchnorm1d_{_mode}", lambda: nn.BatchNorm1d(8), (4, 8, 5), train=_train)
    layer(f"batchnorm2d_{_mode}", lambda: nn.BatchNorm2d(4, momentum=0.2), (B, 4, 5, 5), train=_train,
          quick=_train)
    layer(f"batchnorm3d_{_mode}", lambda: nn.BatchNorm3d(3), (B, 3, 3, 4, 4), train=_train)
layer("layernorm", lambda: nn.LayerNorm(16), (B, 6, 16), grad_check=True)
layer("layernorm_no_affine_2d", lambda: nn.LayerNorm((4, 6), elementwise_affine=False, eps=1e-3),
      (B, 3, 4, 6))
layer("groupnorm", lambda: nn.GroupNorm(2, 8), (B, 8, 5, 5))
layer("instancenorm1d_affine", lambda: nn.InstanceNorm1d(4, affine=True), (B, 4, 10))
layer("instancenorm2d", lambda: nn.InstanceNorm2d(3), (B, 3, 6, 6))
layer("rmsnorm", lambda: nn.RMSNorm(16), (B, 6, 16))


# embeddings
def _ids(shape, high, offset=0):
    def make_inputs(seed):
        g = _gen(seed + offset)
        return (torch.randint(0, high, shape, generator=g),)
    return make_inputs


module_entry("embedding", lambda: nn.Embedding(50, 16), _ids((B, SEQ), 50), grad_check=True)
module_entry("embedding_padding_idx", lambda: nn.Embedding(50, 16, padding_idx=0, max_norm=None),
             _ids((B, SEQ), 50))


def _bag_inputs(seed):
    g = _gen(seed)
    return torch.randint(0, 40, (10,), generator=g), torch.tensor([0, 3, 7])


module_entry("embeddingbag_sum", lambda: nn.EmbeddingBag(40, 8, mode="sum"), _bag_inputs)
module_entry("embeddingbag_mean", lambda: nn.EmbeddingBag(40, 8, mode="mean"), _bag_inputs)
module_entry("embeddingbag_max_2d", lambda: nn.EmbeddingBag(40, 8, mode="max"), _ids((3, 4), 40))


# attention / transformer blocks
class MHASelf(nn.Module):
    """Self-attention call of nn.MultiheadAttention (query = key = value)."""

    def __init__(self, batch_first, need_weights, causal=False, kpm=False):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=batch_first)
        self.need_weights = need_weights
        self.causal = causal
        self.kpm = kpm

    def forward(self, x):
        L = x.shape[1] if self.attn.batch_first else x.shape[0]
        mask = torch.triu(torch.ones(L, L, dtype=torch.bool), 1) if self.causal else None
        kpm = None
        if self.kpm:
            kpm = torch.zeros(BATCH, L, dtype=torch.bool)
            kpm[1, -2:] = True
        return self.attn(x, x, x, need_weights=self.need_weights, attn_mask=mask, key_padding_mask=kpm)


layer("mha_batch_first_weights", lambda: MHASelf(True, True), (B, SEQ, 32), grad_check=True,
      quick=True)
layer("mha_seq_first_noweights", lambda: MHASelf(False, False), (SEQ, B, 32))
layer("mha_causal_key_padding", lambda: MHASelf(True, True, causal=True, kpm=True), (B, SEQ, 32))
layer("mha_cross_kdim_vdim", lambda: nn.MultiheadAttention(32, 2, kdim=16, vdim=24, batch_first=True),
      (B, SEQ, 32), (B, 5, 16), (B, 5, 24))
layer("transformer_encoder_layer",
      lambda: nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True),
      (B, SEQ, 32), grad_check=True, quick=True, inductor=True)
layer("transformer_encoder_layer_norm_first_gelu",
      lambda: nn.TransformerEncoderLayer(32, 2, 64, dropout=0.0, activation="gelu", norm_first=True),
      (SEQ, B, 32))
layer("transformer_decoder_layer",
      lambda: nn.TransformerDecoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True),
      (B, SEQ, 32), (B, 6, 32))


def _small_transformer():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nn.Transformer(d_model=32, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                              dim_feedforward=64, dropout=0.0, batch_first=True)


layer("transformer_small", _small_transformer, (B, SEQ, 32), (B, 6, 32))


# recurrent (stock Dynamo refuses these unless allow_rnn=True)
_RNN = dict(dynamo_config={"allow_rnn": True})
layer("rnn_tanh_2layer", lambda: nn.RNN(8, 16, num_layers=2), (SEQ, B, 8), **_RNN)
layer("rnn_relu_batch_first_bidir",
      lambda: nn.RNN(8, 16, nonlinearity="relu", batch_first=True, bidirectional=True), (B, SEQ, 8),
      **_RNN)
layer("lstm_2layer_batch_first", lambda: nn.LSTM(8, 16, num_layers=2, batch_first=True), (B, SEQ, 8),
      grad_check=True, quick=True, **_RNN)
layer("lstm_bidir_2layer", lambda: nn.LSTM(8, 16, num_layers=2, bidirectional=True), (SEQ, B, 8),
      **_RNN)
layer("gru_2layer", lambda: nn.GRU(8, 16, num_layers=2), (SEQ, B, 8), **_RNN)
layer("gru_bidir_batch_first", lambda: nn.GRU(8, 16, batch_first=True, bidirectional=True),
      (B, SEQ, 8), **_RNN)

# pooling
layer("maxpool1d", lambda: nn.MaxPool1d(3, stride=2, padding=1), (B, 4, 16))
layer("maxpool2d", lambda: nn.MaxPool2d(2), (B, 3, 8, 8))
layer("maxpool2d_ceil_indices", lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True, return_indices=True),
      (B, 3, 8, 8))
layer("avgpool2d", lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (B, 3, 8, 8))
layer("adaptive_avgpool2d", lambda: nn.AdaptiveAvgPool2d((3, 1)), (B, 3, 8, 7))
layer("adaptive_maxpool2d", lambda: nn.AdaptiveMaxPool2d(2), (B, 3, 7, 7))

# padding
layer("zeropad2d", lambda: nn.ZeroPad2d((1, 2, 0, 1)), (B, 3, 4, 4))
layer("reflectionpad2d", lambda: nn.ReflectionPad2d(2), (B, 3, 4, 4))
layer("replicationpad2d", lambda: nn.ReplicationPad2d((1, 0, 2, 1)), (B, 3, 4, 4))
layer("constantpad1d", lambda: nn.ConstantPad1d((2, 3), 0.5), (B, 3, 6))

# activations
for _name, _ctor in [
    ("relu", nn.ReLU), ("gelu", nn.GELU), ("gelu_tanh", lambda: nn.GELU(approximate="tanh")),
    ("silu", nn.SiLU), ("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid),
    ("leaky_relu", lambda: nn.LeakyReLU(0.2)), ("elu", lambda: nn.ELU(alpha=0.5)),
    ("softmax", lambda: nn.Softmax(dim=-1)), ("log_softmax", lambda: nn.LogSoftmax(dim=1)),
    ("hardswish", nn.Hardswish), ("mish", nn.Mish), ("prelu", lambda: nn.PReLU(4)),
]:
    layer(f"act_{_name}", _ctor, (B, 4, 6), quick=_name == "gelu")


# losses: make_inputs returns (input, target)
def _loss_inputs(kind, n_classes=5):
    def make_inputs(seed):
        g = _gen(seed)
        x = torch.randn(4, n_classes, generator=g)
        if kind == "class":
            t = torch.randint(0, n_classes, (4,), generator=g)
        elif kind == "prob":
            t = torch.rand(4, n_classes, generator=g)
        elif kind == "logprob":
            x = torch.log_softmax(x, 1)
            t = torch.softmax(torch.randn(4, n_classes, generator=g), 1)
        else:
            t = torch.randn(4, n_classes, generator=g)
        return x, t
    return make_inputs


for _name, _ctor, _kind in [
    ("mse", nn.MSELoss, "float"),
    ("l1_sum", lambda: nn.L1Loss(reduction="sum"), "float"),
    ("cross_entropy", nn.CrossEntropyLoss, "class"),
    ("cross_entropy_label_smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=0.1), "class"),
    ("cross_entropy_weight_ignore",
     lambda: nn.CrossEntropyLoss(weight=torch.linspace(0.5, 1.5, 5), ignore_index=2), "class"),
    ("nll", nn.NLLLoss, "class"),
    ("bce_with_logits_pos_weight", lambda: nn.BCEWithLogitsLoss(pos_weight=torch.full((5,), 2.0)),
     "prob"),
    ("smooth_l1", lambda: nn.SmoothL1Loss(beta=0.5), "float"),
    ("huber_none", lambda: nn.HuberLoss(reduction="none", delta=0.7), "float"),
    ("kldiv_batchmean", lambda: nn.KLDivLoss(reduction="batchmean"), "logprob"),
]:
    module_entry(f"loss_{_name}", _ctor, _loss_inputs(_kind))

# reshaping / misc
# eval dropout returns its input itself (`F.dropout(x, training=False) is x`): bytegraph's
# entry hands back `x` with no graph; torch.compile compiles a graph whose output aliases it
layer("dropout_eval", lambda: nn.Dropout(0.5), (B, 4, 6), graphs=0)
layer("flatten", lambda: nn.Flatten(), (B, 3, 4, 5))
layer("unflatten", lambda: nn.Unflatten(1, (4, 5)), (B, 20, 3))
layer("pixel_shuffle", lambda: nn.PixelShuffle(2), (B, 8, 3, 3))
layer("upsample_nearest", lambda: nn.Upsample(scale_factor=2, mode="nearest"), (B, 3, 4, 4))
layer("upsample_bilinear", lambda: nn.Upsample(size=(7, 9), mode="bilinear", align_corners=False),
      (B, 3, 4, 4))
layer("mlp_sequential",
      lambda: nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.GELU(),
                            nn.LayerNorm(32), nn.Linear(32, 4)),
      (B, 16), grad_check=True, quick=True)
layer("cnn_sequential",
      lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10)),
      (B, 3, 16, 16), grad_check=True, quick=True)


# ----------------------------------------------------------------------------- transformers

ATTN = "eager"
_TEXT_ARGS = ("input_ids", "attention_mask")
_ENCDEC_ARGS = ("input_ids", "attention_mask", "decoder_input_ids")


def _text_inputs(seed):
    g = _gen(seed)
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=g)
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    mask[1, -3:] = 0  # right padding on the second row
    return ids, mask


def _encdec_inputs(seed):
    ids, mask = _text_inputs(seed)
    g = _gen(seed + 500)
    dec = torch.randint(3, VOCAB, (BATCH, SEQ - 2), generator=g)
    return ids, mask, dec


def _pixel_inputs(size, channels=3):
    def make_inputs(seed):
        g = _gen(seed)
        return (torch.randn(BATCH, channels, size, size, generator=g),)
    return make_inputs


def hf_entry(name, model_cls, config_cls, make_inputs, arg_names, attn=ATTN, flags=None, **cfg):
    def build():
        import transformers
        config = getattr(transformers, config_cls)(**cfg)
        if attn is not None:
            config._attn_implementation = attn
        torch.manual_seed(0)
        model = getattr(transformers, model_cls)(config)
        model.eval()
        return model, make_inputs
    return _add(Entry(name, build, "transformers", grad_check=True, arg_names=arg_names, attn=attn,
                      **(flags or {})))


_SMALL_LM = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=64, use_cache=False,
                 pad_token_id=0, bos_token_id=1, eos_token_id=2)

# decoder-only
hf_entry("gpt2_lm", "GPT2LMHeadModel", "GPT2Config", _text_inputs, _TEXT_ARGS,
         vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False,
         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=1, eos_token_id=2)
hf_entry("llama_lm", "LlamaForCausalLM", "LlamaConfig", _text_inputs, _TEXT_ARGS,
         flags=dict(quick=True, inductor=True),
         num_key_value_heads=2, **_SMALL_LM)
hf_entry("mistral", "MistralModel", "MistralConfig", _text_inputs, _TEXT_ARGS,
         num_key_value_heads=2, sliding_window=None, **_SMALL_LM)
hf_entry("qwen2_lm", "Qwen2ForCausalLM", "Qwen2Config", _text_inputs, _TEXT_ARGS,
         num_key_value_heads=2, **_SMALL_LM)
hf_entry("opt_lm", "OPTForCausalLM", "OPTConfig", _text_inputs, _TEXT_ARGS,
         vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
         word_embed_proj_dim=32, max_position_embeddings=64, use_cache=False, dropout=0.0,
         pad_token_id=0, bos_token_id=1, eos_token_id=2)
hf_entry("gpt_neox", "GPTNeoXModel", "GPTNeoXConfig", _text_inputs, _TEXT_ARGS, **_SMALL_LM)
hf_entry("phi_lm", "PhiForCausalLM", "PhiConfig", _text_inputs, _TEXT_ARGS, **_SMALL_LM)
hf_entry("gemma", "GemmaModel", "GemmaConfig", _text_inputs, _TEXT_ARGS,
         num_key_value_heads=1, head_dim=8, **_SMALL_LM)
# Bloom's MLP is a custom torch.autograd.Function (GeLUFunction): its backward must be used
hf_entry("bloom_lm", "BloomForCausalLM", "BloomConfig", _text_inputs, _TEXT_ARGS,
         vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, use_cache=False,
         pad_token_id=0, bos_token_id=1, eos_token_id=2)
hf_entry("mixtral_moe", "MixtralForCausalLM", "MixtralConfig", _text_inputs, _TEXT_ARGS,
         num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
         **dict(_SMALL_LM, intermediate_size=32))

# encoder-only
_SMALL_ENC = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, pad_token_id=0)
hf_entry("bert", "BertModel", "BertConfig", _text_inputs, _TEXT_ARGS,
         flags=dict(quick=True, inductor=True), **_SMALL_ENC)
hf_entry("roberta_mlm", "RobertaForMaskedLM", "RobertaConfig", _text_inputs, _TEXT_ARGS,
         **_SMALL_ENC)
hf_entry("distilbert", "DistilBertModel", "DistilBertConfig", _text_inputs, _TEXT_ARGS,
         vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64,
         dropout=0.0, attention_dropout=0.0, pad_token_id=0)
hf_entry("albert", "AlbertModel", "AlbertConfig", _text_inputs, _TEXT_ARGS,
         embedding_size=16, **_SMALL_ENC)
hf_entry("electra_cls", "ElectraForSequenceClassification", "ElectraConfig", _text_inputs,
         _TEXT_ARGS, embedding_size=16, num_labels=3, **_SMALL_ENC)

# encoder-decoder
hf_entry("t5", "T5Model", "T5Config", _encdec_inputs, _ENCDEC_ARGS,
         vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2,
         num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0, use_cache=False,
         pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
_SMALL_BART = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                   encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                   decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0,
                   attention_dropout=0.0, activation_dropout=0.0, use_cache=False,
                   pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=2)
hf_entry("bart_lm", "BartForConditionalGeneration", "BartConfig", _encdec_inputs, _ENCDEC_ARGS,
         **_SMALL_BART)
hf_entry("marian", "MarianMTModel", "MarianConfig", _encdec_inputs, _ENCDEC_ARGS, **_SMALL_BART)

# vision
_SMALL_VIT = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
hf_entry("vit", "ViTModel", "ViTConfig", _pixel_inputs(16), ("pixel_values",), **_SMALL_VIT)
hf_entry("deit_cls", "DeiTForImageClassification", "DeiTConfig", _pixel_inputs(16),
         ("pixel_values",), num_labels=5, **_SMALL_VIT)
hf_entry("convnext", "ConvNextModel", "ConvNextConfig", _pixel_inputs(32), ("pixel_values",),
         attn=None, num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[16, 32],
         depths=[1, 1], drop_path_rate=0.0)
hf_entry("resnet_cls", "ResNetForImageClassification", "ResNetConfig", _pixel_inputs(32),
         ("pixel_values",), attn=None, num_channels=3, embedding_size=16, hidden_sizes=[16, 32],
         depths=[1, 1], layer_type="basic", num_labels=4)
hf_entry("swin", "SwinModel", "SwinConfig", _pixel_inputs(32), ("pixel_values",),
         image_size=32, patch_size=4, num_channels=3, embed_dim=16, depths=[1, 1],
         num_heads=[2, 4], window_size=4, mlp_ratio=2.0, hidden_dropout_prob=0.0,
         attention_probs_dropout_prob=0.0, drop_path_rate=0.0)


# ----------------------------------------------------------------------------- the check

def check_entry(entry, backend="eager", seeds=(0, 1), atol=None, rtol=None):
    """Differential check of one zoo entry through tests/differential.py's compile_fn.

    Builds the model, compiles a deepcopy with fullgraph=True, calls it once per seed
    and compares every output (and, for grad_check entries, every parameter's .grad
    after backward of the summed outputs) against the eager model; then compares
    parameters/buffers (BatchNorm running stats...) and asserts exactly one graph.
    """
    from differential import REFERENCE, assert_same, compile_fn, graph_count, reset

    atol = entry.atol if atol is None else atol
    rtol = entry.rtol if rtol is None else rtol
    model, make_inputs = entry.build()
    cmodel = copy.deepcopy(model)
    reset()
    ctx = entry.torch_compile_config() if REFERENCE else contextlib.nullcontext()
    with ctx:
        compiled = compile_fn(cmodel, backend=backend, fullgraph=True)
        for seed in seeds:
            where = f"{entry.name}[seed={seed}]"
            expected = entry.call(model, make_inputs(seed))
            actual = entry.call(compiled, make_inputs(seed))
            assert_same(expected, actual, atol, rtol, path=where)
            if entry.grad_check:
                model.zero_grad(set_to_none=True)
                cmodel.zero_grad(set_to_none=True)
                loss_of(expected).backward()
                loss_of(actual).backward()
                cparams = dict(cmodel.named_parameters())
                for pname, p in model.named_parameters():
                    q = cparams[pname]
                    assert (p.grad is None) == (q.grad is None), f"{where}: grad presence of {pname}"
                    if p.grad is not None:
                        torch.testing.assert_close(q.grad, p.grad, atol=atol, rtol=rtol,
                                                   msg=lambda m: f"{where}: grad of {pname}: {m}")
    estate, cstate = model.state_dict(), cmodel.state_dict()
    assert list(estate) == list(cstate)
    for k in estate:
        torch.testing.assert_close(cstate[k], estate[k], atol=atol, rtol=rtol,
                                   msg=lambda m: f"{entry.name}: state {k}: {m}")
    want = 1 if REFERENCE else entry.graphs
    assert graph_count() == want, f"{entry.name}: expected {want} graph(s), got {graph_count()}"
