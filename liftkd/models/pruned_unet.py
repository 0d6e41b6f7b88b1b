"""A U-Net cut narrower than its config says, loadable by diffusers alone.

A structurally pruned ``UNet2DModel`` cannot be stated as a diffusers config: its timestep
embedding still reads the teacher's sinusoidal features (``time_embedding.linear_1`` takes the
teacher's first-level width) while the first level itself is narrower, and a config ties both to
``block_out_channels[0]``. So an exported student keeps the teacher's config (the architecture
before the cut) and this class, which builds that architecture, cuts every layer to the shape of
its saved weights, and loads them.

This file imports nothing from liftkd: the export copies it beside the weights
(``unet/pruned_unet.py``), where ``DiffusionPipeline.from_pretrained(folder,
trust_remote_code=True)`` and ``AutoModel.from_pretrained(folder, subfolder="unet",
trust_remote_code=True)`` find it. liftkd's own loader (``liftkd.models.checkpoints``) uses the same
functions.
"""

from __future__ import annotations

import os

import torch
import torch.nn as nn
from diffusers import UNet2DModel

ATTRS_KEY = "pruned_attributes"  # config key: the integer attributes forward passes read
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"


def resize_to(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Give every conv, linear and norm layer of ``model`` the parameter shapes of ``state``."""
    for name, module in model.named_modules():
        prefix = f"{name}." if name else ""
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


def set_attributes(model: nn.Module, attrs: dict[str, dict[str, int]]) -> None:
    """Restore the attributes (attention heads, channel counts) kept by module name."""
    for name, values in attrs.items():
        module = model.get_submodule(name)
        for key, value in values.items():
            setattr(module, key, value)


class PrunedUNet2DModel(UNet2DModel):
    """``UNet2DModel`` whose layers are narrower than its config: built from the config, then
    cut to the saved weights' shapes; the attributes the weights cannot show (attention heads)
    are kept in the config as ``pruned_attributes``, so ``save_pretrained`` needs nothing new."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder=None, **kwargs):
        from safetensors.torch import load_file

        folder = os.path.join(str(pretrained_model_name_or_path), subfolder or "")
        config = dict(cls.load_config(folder))
        attrs = config.pop(ATTRS_KEY, {})
        model = cls.from_config(config)
        state = load_file(os.path.join(folder, WEIGHTS_FILE))
        resize_to(model, state)
        set_attributes(model, attrs)
        model.load_state_dict(state, strict=True)
        model.register_to_config(**{ATTRS_KEY: attrs})
        dtype = kwargs.get("torch_dtype")
        return (model.to(dtype) if dtype is not None else model).eval()
