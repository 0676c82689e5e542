"""diffusers corpus: tiny configs and inputs for diffusers model classes.

Responsible for building each listed diffusers model class from a small config
(seeded, float32, CPU, no download) with keyword inputs for its forward.
`NAMES` lists the classes; `build(name, seed)` -> (model, inputs).
"""
from __future__ import annotations

import torch

B = 2


def _t():
    return torch.tensor([10, 500])


def _rand(g, *shape):
    return torch.randn(*shape, generator=g)


UNET_COND = dict(block_out_channels=(32, 64), layers_per_block=1, in_channels=4,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), cross_attention_dim=32,
                 attention_head_dim=8, norm_num_groups=8)

SPECS = {
    # name: (config kwargs, inputs(generator) -> dict)
    "UNet2DModel": (
        dict(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(32, 64),
             down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
             norm_num_groups=8, attention_head_dim=8),
        lambda g: {"sample": _rand(g, B, 3, 32, 32), "timestep": _t()}),
    "UNet2DConditionModel": (
        dict(UNET_COND, sample_size=16, out_channels=4, up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
        lambda g: {"sample": _rand(g, B, 4, 16, 16), "timestep": _t(), "encoder_hidden_states": _rand(g, B, 4, 32)}),
    "ControlNetModel": (
        dict(UNET_COND, conditioning_embedding_out_channels=(16, 32)),
        lambda g: {"sample": _rand(g, B, 4, 16, 16), "timestep": _t(), "encoder_hidden_states": _rand(g, B, 4, 32),
                   "controlnet_cond": _rand(g, B, 3, 32, 32)}),
    "AutoencoderKL": (
        dict(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
             down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2),
        lambda g: {"sample": _rand(g, B, 3, 32, 32)}),
    "VQModel": (
        dict(block_out_channels=(16, 32), in_channels=3, out_channels=3, latent_channels=3, norm_num_groups=8,
             down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
             num_vq_embeddings=32),
        lambda g: {"sample": _rand(g, B, 3, 32, 32)}),
    "AutoencoderTiny": (
        dict(encoder_block_out_channels=(16, 16, 16, 16), decoder_block_out_channels=(16, 16, 16, 16),
             num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)),
        lambda g: {"sample": _rand(g, B, 3, 32, 32)}),
    "UNet1DModel": (
        dict(sample_size=64, in_channels=2, out_channels=2, block_out_channels=(32, 32, 64), extra_in_channels=64),
        lambda g: {"sample": _rand(g, B, 2, 64), "timestep": _t()}),
    "Transformer2DModel": (
        dict(in_channels=8, num_attention_heads=2, attention_head_dim=8, num_layers=1, norm_num_groups=4,
             cross_attention_dim=16),
        lambda g: {"hidden_states": _rand(g, B, 8, 8, 8), "encoder_hidden_states": _rand(g, B, 4, 16)}),
    "DiTTransformer2DModel": (
        dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
             sample_size=8, patch_size=2, num_embeds_ada_norm=1000),
        lambda g: {"hidden_states": _rand(g, B, 4, 8, 8), "timestep": _t(), "class_labels": torch.tensor([1, 7])}),
    "PriorTransformer": (
        dict(num_attention_heads=2, attention_head_dim=4, num_layers=2, embedding_dim=8, num_embeddings=7,
             additional_embeddings=4),
        lambda g: {"hidden_states": _rand(g, B, 8), "timestep": _t(), "proj_embedding": _rand(g, B, 8),
                   "encoder_hidden_states": _rand(g, B, 7, 8)}),
    "SD3Transformer2DModel": (
        dict(sample_size=8, patch_size=1, in_channels=4, num_layers=1, attention_head_dim=8, num_attention_heads=4,
             caption_projection_dim=32, joint_attention_dim=32, pooled_projection_dim=64, out_channels=4),
        lambda g: {"hidden_states": _rand(g, B, 4, 8, 8), "encoder_hidden_states": _rand(g, B, 4, 32),
                   "pooled_projections": _rand(g, B, 64), "timestep": _t()}),
    "FluxTransformer2DModel": (
        dict(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
             num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 4, 8)),
        lambda g: {"hidden_states": _rand(g, B, 16, 4), "encoder_hidden_states": _rand(g, B, 4, 32),
                   "pooled_projections": _rand(g, B, 32), "timestep": torch.tensor([0.1, 0.5]),
                   "img_ids": torch.zeros(16, 3), "txt_ids": torch.zeros(4, 3)}),
}
NAMES = tuple(SPECS)


def build(name, seed=0):
    import diffusers
    config, make_inputs = SPECS[name]
    torch.manual_seed(seed)
    model = getattr(diffusers, name)(**config).to(torch.float32)
    return model, make_inputs(torch.Generator().manual_seed(seed))
