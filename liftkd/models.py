"""The teachers: diffusers ``UNet2DModel`` presets per profile, and pretrained ones from disk.

``build_unet`` makes the U-Net of a profile (random weights), ``build_dit`` its small
class-conditional DiT; ``load_unet`` reads a trained one
from a local folder written by ``save_pretrained`` or, where the network allows, a hub id such as
``google/ddpm-cifar10-32`` (the noise schedule is in ``liftkd.diffusion``, parameter and MAC
counts in ``liftkd.metrics``).
"""

from __future__ import annotations

from pathlib import Path

from diffusers import DiTTransformer2DModel, UNet2DModel

from liftkd.config import DiTConfig, UNetConfig


def build_unet(cfg: UNetConfig, resolution: int, channels: int) -> UNet2DModel:
    """A randomly initialised ``UNet2DModel`` for ``channels`` x ``resolution``^2 images."""
    levels = len(cfg.block_out_channels)
    if len(cfg.down_block_types) != levels or len(cfg.up_block_types) != levels:
        raise ValueError("block_out_channels, down_block_types and up_block_types differ in length")
    if resolution % 2 ** (levels - 1):
        raise ValueError(
            f"resolution {resolution} is not divisible by 2^{levels - 1} ({levels} levels)"
        )
    for width in cfg.block_out_channels:
        if width % cfg.norm_num_groups:
            raise ValueError(
                f"width {width} is not a multiple of norm_num_groups={cfg.norm_num_groups}"
            )
    return UNet2DModel(
        sample_size=resolution,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(cfg.block_out_channels),
        down_block_types=tuple(cfg.down_block_types),
        up_block_types=tuple(cfg.up_block_types),
        layers_per_block=cfg.layers_per_block,
        norm_num_groups=cfg.norm_num_groups,
        attention_head_dim=cfg.attention_head_dim,
        dropout=cfg.dropout,
    )


def build_dit(cfg: DiTConfig, resolution: int, channels: int) -> DiTTransformer2DModel:
    """A randomly initialised class-conditional DiT (adaLN-zero) predicting eps only."""
    if resolution % cfg.patch_size:
        raise ValueError(f"resolution {resolution} is not divisible by patch_size {cfg.patch_size}")
    return DiTTransformer2DModel(
        num_attention_heads=cfg.num_attention_heads,
        attention_head_dim=cfg.attention_head_dim,
        in_channels=channels,
        out_channels=channels,
        num_layers=cfg.num_layers,
        sample_size=resolution,
        patch_size=cfg.patch_size,
        num_embeds_ada_norm=cfg.num_classes,
        norm_type="ada_norm_zero",
        norm_elementwise_affine=False,
    )


def load_unet(source: str | Path) -> UNet2DModel:
    """A trained ``UNet2DModel`` from a local folder or a hub id.

    The folder (or hub repository) holds the model at its root, as ``save_pretrained`` writes
    it, or in a ``unet/`` sub-folder, as a saved diffusers pipeline does.
    """
    source = str(source)
    local = Path(source)
    if local.exists():
        sub = "unet" if (local / "unet" / "config.json").exists() else None
        if sub is None and not (local / "config.json").exists():
            raise FileNotFoundError(
                f"{local} holds no UNet2DModel: expected config.json there or in unet/"
            )
        return UNet2DModel.from_pretrained(local, subfolder=sub)
    try:
        return UNet2DModel.from_pretrained(source)
    except OSError:
        try:
            return UNet2DModel.from_pretrained(source, subfolder="unet")
        except OSError as err:
            raise OSError(
                f"could not load a UNet2DModel from {source!r}: it is not a local folder, and the "
                "hub is out of reach or has no such model (offline machines: download it once "
                "elsewhere and pass the folder)"
            ) from err
