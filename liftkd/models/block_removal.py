"""Block removal in a U-Net, as BK-SDM makes its students: whole layers cut, the rest kept as is.

``bk_sdm_plan(unet, "small")`` names what BK-SDM-Small removes in a diffusers ``UNet2DModel``: the
mid block, and the second layer (resnet, with its attention where the block has one) of every
down and up block; ``"base"`` keeps the mid block. ``remove_blocks(unet, plan)`` returns a copy
without them, initialised from the teacher's remaining layers. Removing one layer from a down
block and the matching one from its up block keeps every skip connection's width, so the
student's block outputs pair up with the teacher's (BK-SDM's feature KD), and
``UNet2DModel.forward`` still runs: it takes as many skips as an up block has layers.

A plan is a list of names (``"mid_block"``, ``"down_blocks.0.resnets.1"``), saved with the model
(``liftkd.models.checkpoints``) so that a student file rebuilds its own shape.
"""

from __future__ import annotations

import copy

import torch.nn as nn
from diffusers import UNet2DModel

PLANS = ("small", "base")


def bk_sdm_plan(unet: UNet2DModel, variant: str = "small") -> list[str]:
    """What BK-SDM's ``variant`` removes from ``unet`` (every block needs a second layer)."""
    if variant not in PLANS:
        raise ValueError(f"unknown block-removal plan {variant!r}; choose one of {PLANS}")
    if not isinstance(unet, UNet2DModel):
        raise TypeError(f"block removal is for UNet2DModel, got {type(unet).__name__}")
    plan = []
    for path, blocks in (("down_blocks", unet.down_blocks), ("up_blocks", unet.up_blocks)):
        for i, block in enumerate(blocks):
            if len(block.resnets) < 2:
                raise ValueError(
                    f"{path}.{i} has {len(block.resnets)} layer(s): BK-SDM removes the second "
                    "layer of every block, so the teacher needs layers_per_block >= 2"
                )
            plan.append(f"{path}.{i}.resnets.1")
    if variant == "small":
        if unet.mid_block is None:
            raise ValueError("the U-Net has no mid block to remove")
        plan.append("mid_block")
    return plan


def remove_blocks(unet: UNet2DModel, plan: list[str], copy_model: bool = True) -> UNet2DModel:
    """``unet`` (a copy by default) without the layers of ``plan`` (see ``bk_sdm_plan``)."""
    model = copy.deepcopy(unet) if copy_model else unet

    def index(name: str) -> int:
        last = name.rsplit(".", 1)[-1]
        return int(last) if last.isdigit() else -1

    # higher indices first, so that each name still points where it did
    for name in sorted(plan, key=index, reverse=True):
        if name == "mid_block":
            model.mid_block = None
            model.register_to_config(mid_block_type=None)
            continue
        parent, _, index = name.rpartition(".")
        block_path, _, kind = parent.rpartition(".")
        if kind != "resnets" or not index.isdigit():
            raise ValueError(f"cannot remove {name!r}: plans name resnets or the mid block")
        block = model.get_submodule(block_path)
        j = int(index)
        if j >= len(block.resnets):
            raise ValueError(f"{block_path} has no layer {j} to remove")
        block.resnets = nn.ModuleList(m for k, m in enumerate(block.resnets) if k != j)
        attentions = getattr(block, "attentions", None)
        if attentions is not None and len(attentions) > j:
            block.attentions = nn.ModuleList(m for k, m in enumerate(attentions) if k != j)
    model.removed_blocks = list(plan)
    return model


def removed_blocks(model: nn.Module) -> list[str]:
    """The plan a model was cut by (empty for an uncut one)."""
    return list(getattr(model, "removed_blocks", []))
