"""Intermediate features for feature KD: which sub-blocks to tap, hooks, and FitNet adapters.

U-Net (the authors' DDPM fork): the output of every sub-block (resnet, attention, down/upsampler)
of the down, mid and up paths; at ``level="blocks"`` (BK-SDM) the output of every down and up
block instead. DiT: the output of every transformer block. Teacher and student
have the same structure (pruning removes channels, not blocks), so features pair up by position;
``FitNetAdapters`` maps each student feature to the teacher's width with a 1x1 convolution (or a
linear layer for DiT tokens), initialised U(-0.005, 0.005), trained with the student and thrown
away afterwards.
"""

from __future__ import annotations

import torch
import torch.nn as nn

LEVELS = ("sub-blocks", "blocks")


def feature_modules(model: nn.Module, level: str = "sub-blocks") -> list[tuple[str, nn.Module]]:
    """The tapped sub-blocks (or, at ``level="blocks"``, blocks) of a U-Net or DiT, in forward order."""
    from diffusers import DiTTransformer2DModel, UNet2DModel  # here: the losses import quickly

    if level not in LEVELS:
        raise ValueError(f"feature level must be one of {LEVELS}, got {level!r}")
    if isinstance(model, DiTTransformer2DModel):
        return [(f"transformer_blocks.{i}", b) for i, b in enumerate(model.transformer_blocks)]
    if not isinstance(model, UNet2DModel):
        raise TypeError(
            f"feature KD supports UNet2DModel and DiTTransformer2DModel, got {type(model).__name__}"
        )
    if level == "blocks":
        down = [(f"down_blocks.{i}", b) for i, b in enumerate(model.down_blocks)]
        return down + [(f"up_blocks.{i}", b) for i, b in enumerate(model.up_blocks)]
    out = []
    for path, blocks in (("down_blocks", model.down_blocks), ("up_blocks", model.up_blocks)):
        for i, block in enumerate(blocks):
            for kind in ("resnets", "attentions", "downsamplers", "upsamplers"):
                for j, m in enumerate(getattr(block, kind, None) or []):
                    out.append((f"{path}.{i}.{kind}.{j}", m))
    mid = model.mid_block
    for kind in ("resnets", "attentions"):
        for j, m in enumerate(getattr(mid, kind, None) or []):
            if m is not None:
                out.append((f"mid_block.{kind}.{j}", m))
    return out


class FeatureTap:
    """``with FeatureTap(model) as tap: model(...)`` leaves the tapped outputs in ``tap.features``.

    ``detach=True`` for the teacher, so that no graph is kept for it.
    """

    def __init__(self, model: nn.Module, detach: bool = False, level: str = "sub-blocks"):
        self.modules = [m for _, m in feature_modules(model, level)]
        self.detach = detach
        self.features: list[torch.Tensor] = []
        self._handles = []

    def _hook(self, module, inputs, output):
        if isinstance(output, tuple):
            output = output[0]
        self.features.append(output.detach() if self.detach else output)

    def __enter__(self) -> FeatureTap:
        self.features = []
        self._handles = [m.register_forward_hook(self._hook) for m in self.modules]
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []


def feature_widths(
    model: nn.Module, inputs: dict[str, torch.Tensor], level: str = "sub-blocks"
) -> list[int]:
    """Channel (U-Net) or token (DiT) width of every tapped feature, from one forward pass."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad(), FeatureTap(model, detach=True, level=level) as tap:
        model(**inputs)
    model.train(was_training)
    return [f.shape[1] if f.ndim == 4 else f.shape[-1] for f in tap.features]


class FitNetAdapters(nn.Module):
    """One bias-free 1x1 conv (or linear layer) per feature, student width -> teacher width."""

    def __init__(
        self,
        student_widths: list[int],
        teacher_widths: list[int],
        tokens: bool = False,
        init: float = 0.005,
    ):
        super().__init__()
        if len(student_widths) != len(teacher_widths):
            raise ValueError(
                f"student and teacher have {len(student_widths)} and {len(teacher_widths)} tapped "
                "features: feature KD needs the same block structure"
            )
        make = (
            (lambda s, t: nn.Linear(s, t, bias=False))
            if tokens
            else (lambda s, t: nn.Conv2d(s, t, 1, bias=False))
        )
        self.adapters = nn.ModuleList(
            make(s, t) for s, t in zip(student_widths, teacher_widths, strict=True)
        )
        for a in self.adapters:
            nn.init.uniform_(a.weight, -init, init)

    def forward(self, fS: list[torch.Tensor]) -> list[torch.Tensor]:
        if len(fS) != len(self.adapters):
            raise ValueError(f"got {len(fS)} student features for {len(self.adapters)} adapters")
        return [a(f) for a, f in zip(self.adapters, fS, strict=True)]
