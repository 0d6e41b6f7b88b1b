"""Saving and loading pruned models, weights only.

``save_pretrained`` / ``from_pretrained`` rebuild a model from its config and so know nothing of
pruned shapes. ``save_model`` writes the class name, the base config, the state dict and the
attributes diffusers keeps (attention heads, Down/Upsample channel counts); ``load_model``
rebuilds the base architecture, resizes every conv, linear and norm layer to the saved shapes,
restores the attributes and loads the weights. The file is read with ``weights_only=True``: no
pickled classes, so it loads in any environment with diffusers.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from diffusers import DiTTransformer2DModel, UNet2DModel
from diffusers.models.attention_processor import Attention
from diffusers.models.downsampling import Downsample2D
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D

MODEL_CLASSES = {"UNet2DModel": UNet2DModel, "DiTTransformer2DModel": DiTTransformer2DModel}
# integer attributes that diffusers reads in forward passes or asserts on
_ATTRS = {
    Attention: ("heads", "inner_dim", "query_dim", "out_dim"),
    Downsample2D: ("channels", "out_channels"),
    Upsample2D: ("channels", "out_channels"),
    ResnetBlock2D: ("in_channels", "out_channels"),
}


def _plain_config(model: nn.Module) -> dict:
    cfg = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def save_model(model: nn.Module, path: str | Path) -> Path:
    name = type(model).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"save_model handles {sorted(MODEL_CLASSES)}, got {name}")
    attrs = {}
    for mod_name, m in model.named_modules():
        for cls, keys in _ATTRS.items():
            if isinstance(m, cls):
                attrs[mod_name] = {
                    k: int(getattr(m, k)) for k in keys if isinstance(getattr(m, k, None), int)
                }
    blob = {
        "class": name,
        "config": _plain_config(model),
        "state_dict": model.state_dict(),
        "attrs": attrs,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)
    return path


def _resize(module: nn.Module, prefix: str, state: dict[str, torch.Tensor]) -> None:
    """Give one leaf module the parameter shapes found in ``state`` and matching attributes."""
    for pname, param in list(module.named_parameters(recurse=False)):
        shape = state[f"{prefix}{pname}"].shape
        if param.shape != shape:
            setattr(module, pname, nn.Parameter(torch.empty(shape, dtype=param.dtype)))
    if isinstance(module, nn.Conv2d):
        module.out_channels = module.weight.shape[0]
        module.in_channels = module.weight.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.GroupNorm) and module.weight is not None:
        module.num_channels = module.weight.shape[0]
    elif isinstance(module, nn.LayerNorm) and module.weight is not None:
        module.normalized_shape = tuple(module.weight.shape)


def load_model(path: str | Path) -> nn.Module:
    blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    cls = MODEL_CLASSES.get(blob.get("class"))
    if cls is None:
        raise ValueError(f"{path} is not a liftkd model file (class {blob.get('class')!r})")
    model = cls.from_config(blob["config"])
    state = blob["state_dict"]
    if isinstance(model, DiTTransformer2DModel):  # depth-pruned: drop the blocks not saved
        n = blob["config"]["num_layers"]
        model.transformer_blocks = nn.ModuleList(list(model.transformer_blocks)[:n])
    for name, m in model.named_modules():
        _resize(m, f"{name}." if name else "", state)
    for name, values in blob["attrs"].items():
        m = model.get_submodule(name)
        for k, v in values.items():
            setattr(m, k, v)
    model.load_state_dict(state, strict=True)
    return model.eval()
