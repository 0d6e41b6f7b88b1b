"""The teachers: diffusers ``UNet2DModel`` presets per profile, and pretrained ones from disk.

``build_unet`` makes the U-Net of a profile (random weights), ``build_dit`` its small
class-conditional DiT; ``load_unet`` reads a trained one
from a local folder written by ``save_pretrained`` or, where the network allows, a hub id such as
``google/ddpm-cifar10-32`` (the noise schedule is in ``liftkd.training.diffusion``, parameter and MAC
counts in ``liftkd.measure.metrics``).
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


def check_unet_folder(folder: Path, channels: int | None = None) -> Path | None:
    """The sub-folder (``None`` or ``"unet"``) of a saved ``UNet2DModel`` in ``folder``, read
    from its ``config.json`` alone; a folder of another model, or for images of other channels
    than ``channels``, is a ValueError that says what it holds."""
    import json

    sub = "unet" if (folder / "unet" / "config.json").exists() else None
    config = folder / (sub or "") / "config.json"
    if not config.exists():
        raise FileNotFoundError(
            f"{folder} holds no UNet2DModel: expected config.json there or in unet/"
        )
    try:
        cfg = json.loads(config.read_text())
    except ValueError as err:
        raise ValueError(f"{config} cannot be read: {err}") from None
    cls = cfg.get("_class_name")
    if cls != "UNet2DModel":
        raise ValueError(
            f"{config} describes a {cls or 'model of no named class'}, not a UNet2DModel: the "
            "teacher must be a diffusers UNet2DModel (saved with save_pretrained)"
        )
    if channels is not None and cfg.get("in_channels") != channels:
        raise ValueError(
            f"{folder} is a UNet2DModel for {cfg.get('in_channels')}-channel images, and the "
            f"data has {channels} (data.channels); give a teacher of the data's channels or set "
            f"data.channels: {cfg.get('in_channels')}"
        )
    return sub


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the model hub answers a connection within ``timeout`` seconds (offline machines
    otherwise spend most of a minute on diffusers' retries before failing)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_unet(source: str | Path, channels: int | None = None) -> UNet2DModel:
    """A trained ``UNet2DModel`` from a local folder or a hub id.

    The folder (or hub repository) holds the model at its root, as ``save_pretrained`` writes
    it, or in a ``unet/`` sub-folder, as a saved diffusers pipeline does. With ``channels``, a
    teacher for images of other channels is refused.
    """
    source = str(source)
    local = Path(source)
    if local.exists():
        sub = check_unet_folder(local, channels)
        return UNet2DModel.from_pretrained(local, subfolder=sub)
    offline = (
        f"could not load a UNet2DModel from {source!r}: it is not a local folder, and the hub "
        "is out of reach (offline machines: download it once elsewhere and pass the folder)"
    )
    cached = _from_cache(source)
    if cached is not None:
        return cached
    if not _hub_reachable():
        raise OSError(offline)
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


def hub_id_reachable(source: str) -> bool:
    """Whether the hub model ``source`` can be had: its config is in the local hub cache, or the
    hub answers (what ``load_unet`` needs, checked without downloading anything)."""
    from huggingface_hub import try_to_load_from_cache

    for name in ("config.json", "unet/config.json"):
        try:
            if isinstance(try_to_load_from_cache(source, name), str):
                return True
        except ValueError:  # not a valid repository id
            return False
    return _hub_reachable()


def _from_cache(source: str) -> UNet2DModel | None:
    """The hub model ``source`` from the local hub cache, without the network; None if absent."""
    for sub in (None, "unet"):
        try:
            return UNet2DModel.from_pretrained(source, subfolder=sub, local_files_only=True)
        except (OSError, ValueError):
            continue
    return None
