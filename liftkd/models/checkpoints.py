"""Saving and loading pruned models, weights only.

``save_pretrained`` / ``from_pretrained`` rebuild a model from its config and so know nothing of
pruned shapes. ``save_model`` writes the class name, the base config, the state dict and the
attributes diffusers keeps (attention heads, Down/Upsample channel counts); ``load_model``
rebuilds the base architecture, resizes every conv, linear and norm layer to the saved shapes,
restores the attributes and loads the weights. The file is read with ``weights_only=True``: no
pickled classes, so it loads in any environment with diffusers. A U-Net with layers removed
(``liftkd.models.block_removal``) carries its removal plan, applied again before the weights load.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from diffusers import DiTTransformer2DModel, UNet2DModel
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D

from liftkd.models.block_removal import remove_blocks, removed_blocks
from liftkd.models.pruned_unet import resize_to, set_attributes
from liftkd.runs import load_torch, save_torch

MODEL_CLASSES = {"UNet2DModel": UNet2DModel, "DiTTransformer2DModel": DiTTransformer2DModel}
# integer attributes that diffusers reads in forward passes or asserts on
_ATTRS = {
    Attention: ("heads", "inner_dim", "query_dim", "out_dim"),
    Downsample2D: ("channels", "out_channels"),
    Upsample2D: ("channels", "out_channels"),
    ResnetBlock2D: ("in_channels", "out_channels"),
}


def plain_config(model: nn.Module) -> dict:
    cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def save_model(model: nn.Module, path: str | Path) -> Path:
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"save_model handles {sorted(MODEL_CLASSES)}, got {name}")
    blob = {
        "class": name,
        "config": plain_config(model),
        "state_dict": model.state_dict(),
        "attrs": model_attrs(model),
        "removed": removed_blocks(model),
    }
    return save_torch(blob, path)


def model_attrs(model: nn.Module) -> dict[str, dict[str, int]]:
    """The integer attributes diffusers keeps on submodules (heads, channel counts), by module."""
    attrs = {}
    for mod_name, m in model.named_modules():
        for cls, keys in _ATTRS.items():
            if isinstance(m, cls):
                attrs[mod_name] = {
                    k: int(getattr(m, k)) for k in keys if isinstance(getattr(m, k, None), int)
                }
    return attrs


def rebuild(
    class_name: str,
    config: dict,
    state: dict[str, torch.Tensor],
    attrs: dict,
    removed: list[str] | None = None,
) -> nn.Module:
    """A pruned model from its base config, its weights, its kept attributes and the layers
    removed from it, if any (what ``save_model`` and ``liftkd.results.export`` write)."""
    cls = MODEL_CLASSES.get(class_name)
    if cls is None:
        raise ValueError(
            f"unknown model class {class_name!r}; liftkd rebuilds {sorted(MODEL_CLASSES)}"
        )
    model = cls.from_config(config)
    if isinstance(model, DiTTransformer2DModel):  # depth-pruned: drop the blocks not saved
        model.transformer_blocks = nn.ModuleList(
            list(model.transformer_blocks)[: config["num_layers"]]
        )
    if removed:
        model = remove_blocks(model, removed, copy_model=False)
    resize_to(model, state)
    set_attributes(model, attrs)
    model.load_state_dict(state, strict=True)
    return model.eval()


def load_model(path: str | Path) -> nn.Module:
    """A model written by ``save_model``; a missing, truncated or foreign file is a clear error."""
    blob = load_torch(path, "a pruned model file")
    if not isinstance(blob, dict) or blob.get("class") not in MODEL_CLASSES:
        found = blob.get("class") if isinstance(blob, dict) else type(blob).__name__
        raise ValueError(f"{path} is not a liftkd model file (class {found!r})")
    return rebuild(
        blob["class"], blob["config"], blob["state_dict"], blob["attrs"], blob.get("removed")
    )
