"""Structured pruning of diffusers U-Nets and DiTs (Diff-Pruning, NeurIPS 2023) on torch-pruning.

``prune(model, ratio, criterion, images=..., scheduler=...)`` returns a pruned *copy* and a
:class:`PruningReport`. One shot, the same channel ratio in every layer, ``conv_out`` (U-Net) or
the output projection (DiT) untouched. Criteria:

- ``diff-pruning``: first-order Taylor importance, summed |w * dL/dw| per weight (torch-pruning's
  ``TaylorImportance(multivariable=False)``), with the gradients of the denoising loss accumulated
  over timesteps t = 0, s, 2s, ... on one fixed batch and one fixed noise draw, stopping at the
  first timestep whose loss falls below ``threshold * max loss`` so far (Diff-Pruning's code; its
  paper's T = 0.05 on CIFAR-10, 0 on CelebA: every timestep);
- ``taylor``: the plain first-order Taylor criterion, |sum w * dL/dw| per channel, gradients over
  every timestep;
- ``magnitude``: L2 norm of the weights; ``random``.

torch-pruning keeps ``int(s * (1 - ratio))`` channels of every group of ``s`` coupled channels
(a GroupNorm group, an attention head) and silently skips a group it would empty. This module
computes the kept counts itself first and refuses, with the reachable range, a ratio that would
empty a group, cut nothing, or cut a group far from the ratio asked (more than half a channel of
the group and more than 10% of the ratio away); it then checks the achieved ratio of every layer.

Rounding (``rounding=``): ``"torch-pruning"`` applies the ratio asked, so every group keeps
``int(s * (1 - ratio))`` channels; ``"diff-pruning"`` rounds the kept channels of the smallest
group to the nearest whole number and cuts the whole model by the ratio that gives: on the
``google/ddpm-cifar10-32`` architecture (4-channel GroupNorm groups) ratio 0.3 keeps 3 of every
4 channels, as Diff-Pruning's published CIFAR-10 student does, where torch-pruning's rounding
keeps 2. The report holds the ratio asked and the ratio applied.

Long because one algorithm serves two architectures (U-Net and DiT), each with its own coupled
groups, pruner settings and diffusers attributes to repair; splitting them would split the
checks from the cut they guard.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
from diffusers import DDPMScheduler, DiTTransformer2DModel, UNet2DModel
from diffusers.models.attention_processor import Attention
from tqdm.auto import tqdm

from liftkd.measure.metrics import count_macs
from liftkd.method.losses import task_loss
from liftkd.training.diffusion import forward_noise

CRITERIA = ("diff-pruning", "taylor", "magnitude", "random")
ROUNDINGS = ("torch-pruning", "diff-pruning")
# torch-pruning computes int(s * (1 - ratio)); 10 * (1 - 0.9) is 0.999..., so nudge the ratio
_FLOAT_SLACK = 1e-6


class PruningError(ValueError):
    """A pruning request that cannot be carried out as asked."""


@dataclass
class LayerReport:
    name: str
    kind: str
    before: int  # output channels (conv) or features (linear) before pruning
    after: int

    @property
    def achieved_ratio(self) -> float:
        return 1.0 - self.after / self.before


@dataclass
class PruningReport:
    criterion: str
    ratio: float  # the ratio asked for
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    layers: list[LayerReport] = field(default_factory=list)
    gradient_timesteps: list[int] = field(
        default_factory=list
    )  # timesteps whose gradients were used
    applied_ratio: float | None = None  # the ratio torch-pruning was given (after rounding)
    rounding: str = "torch-pruning"

    @property
    def param_ratio(self) -> float:
        return self.params_after / self.params_before

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before

    def to_dict(self) -> dict:
        d = asdict(self)
        d["param_ratio"], d["macs_ratio"] = self.param_ratio, self.macs_ratio
        for row, layer in zip(d["layers"], self.layers, strict=True):
            row["achieved_ratio"] = layer.achieved_ratio
        return d

    def summary(self) -> str:
        ratios = sorted(
            {round(layer.achieved_ratio, 3) for layer in self.layers if layer.before != layer.after}
        )
        return (
            f"{self.criterion} @ {self.ratio:.2f}: params {self.params_before:,} -> {self.params_after:,} "
            f"({100 * self.param_ratio:.2f}%), MACs {self.macs_before:,} -> {self.macs_after:,} "
            f"({100 * self.macs_ratio:.2f}%), achieved layer ratios {ratios}"
        )


def kept_channels(channels_per_group: int, ratio: float) -> int:
    """Channels torch-pruning keeps of a group of ``channels_per_group`` at ``ratio`` (float-safe)."""
    return int(channels_per_group * (1.0 - ratio) + _FLOAT_SLACK * channels_per_group)


# ---------------------------------------------------------------------------------------------
# the coupled groups of each architecture, for the up-front check
# ---------------------------------------------------------------------------------------------


def _channels_per_group_unet(model: UNet2DModel) -> dict[str, int]:
    """Coupled channel-group size per GroupNorm and attention module (name -> channels per group)."""
    sizes = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.GroupNorm):
            sizes[name] = m.num_channels // m.num_groups
        elif isinstance(m, Attention):
            sizes[name + " (head dim)"] = m.to_q.out_features // m.heads
    return sizes


def _channels_per_group_dit(model: DiTTransformer2DModel) -> dict[str, int]:
    sizes = {}
    for i, block in enumerate(model.transformer_blocks):
        sizes[f"transformer_blocks.{i}.attn1 (head dim)"] = (
            block.attn1.to_q.out_features // block.attn1.heads
        )
        sizes[f"transformer_blocks.{i}.ff (hidden)"] = block.ff.net[0].proj.out_features
    return sizes


def applied_ratio(model: nn.Module, ratio: float, rounding: str = "torch-pruning") -> float:
    """The ratio to give torch-pruning for ``ratio`` asked under ``rounding`` (module docstring)."""
    if rounding not in ROUNDINGS:
        raise PruningError(f"unknown rounding {rounding!r}; choose one of {ROUNDINGS}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise PruningError(f"pruning ratio must be a number in (0, 1), got {ratio!r}")
    if rounding == "torch-pruning":
        return float(ratio)
    s = min(_channels_per_group(model).values())
    kept = max(1, min(s - 1, int(s * (1.0 - ratio) + 0.5)))  # nearest, halves up; a real cut
    return 1.0 - kept / s


def check_ratio(model: nn.Module, ratio: float) -> dict[str, int]:
    """Raise :class:`PruningError` unless ``ratio`` is a real cut of every coupled group, close
    to the ratio asked (see the module docstring)."""
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 < ratio < 1.0:
        raise PruningError(f"pruning ratio must be a number in (0, 1), got {ratio!r}")
    sizes = _channels_per_group(model)
    emptied = {k: s for k, s in sizes.items() if kept_channels(s, ratio) == 0}
    if emptied:
        s = min(emptied.values())
        raise PruningError(
            f"ratio {ratio} would empty the channel groups of {len(emptied)} module(s) "
            f"(e.g. {next(iter(emptied))}: groups of {s} channels); the largest ratio this model "
            f"can reach is {1 - 1 / min(sizes.values()):.4f}. Widen the model or use fewer "
            "GroupNorm groups / attention heads"
        )
    untouched = {k: s for k, s in sizes.items() if kept_channels(s, ratio) == s}
    if untouched:
        s = max(untouched.values())
        raise PruningError(
            f"ratio {ratio} cuts nothing in {len(untouched)} module(s) (e.g. {next(iter(untouched))}: "
            f"groups of {s} channels); the smallest ratio that cuts every group is "
            f"{1 / min(sizes.values()):.4f}"
        )

    def off(s: int) -> float:  # how far the cut of a group of s channels is from the ratio
        return abs(1 - kept_channels(s, ratio) / s - ratio)

    # far: more than half a channel of the group away, and by more than 10% of the ratio
    far = {k: s for k, s in sizes.items() if off(s) > 0.5 / s + 1e-9 and off(s) > 0.1 * ratio}
    if far:
        name, s = next(iter(far.items()))
        k = kept_channels(s, ratio)
        raise PruningError(
            f"ratio {ratio} would cut {1 - k / s:.3f} of the groups of {s} channels of "
            f"{len(far)} module(s) (e.g. {name}: {s - k} of {s}), far from the ratio asked; the "
            f"nearest ratios that cut them as asked are {_near(s, ratio)}, or use "
            "rounding='diff-pruning'"
        )
    return sizes


def _near(s: int, ratio: float) -> str:
    lo, hi = int(ratio * s) / s, (int(ratio * s) + 1) / s
    return " and ".join(f"{r:g}" for r in (lo, hi) if 0 < r < 1) or "none"


def _channels_per_group(model: nn.Module) -> dict[str, int]:
    if isinstance(model, UNet2DModel):
        return _channels_per_group_unet(model)
    if isinstance(model, DiTTransformer2DModel):
        return _channels_per_group_dit(model)
    raise PruningError(
        f"unsupported model {type(model).__name__}: liftkd prunes diffusers UNet2DModel and "
        "DiTTransformer2DModel"
    )


# ---------------------------------------------------------------------------------------------
# example inputs, the denoising loss used for gradients, and the pruner set-up
# ---------------------------------------------------------------------------------------------


def example_inputs(model: nn.Module, batch: int = 1) -> dict[str, torch.Tensor]:
    cfg = model.config
    size = cfg.sample_size
    x = torch.randn(batch, cfg.in_channels, size, size)
    inputs = {"hidden_states" if isinstance(model, DiTTransformer2DModel) else "sample": x}
    inputs["timestep"] = torch.ones(batch, dtype=torch.long)
    if isinstance(model, DiTTransformer2DModel):
        inputs["class_labels"] = torch.zeros(batch, dtype=torch.long)
    return inputs


def _forward_eps(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None):
    if isinstance(model, DiTTransformer2DModel):
        out = model(x_t, timestep=t, class_labels=labels).sample
        return out[:, : x_t.shape[1]]  # a learned-sigma DiT returns eps and variance
    return model(x_t, t).sample


def accumulate_gradients(
    model: nn.Module,
    images: torch.Tensor,
    scheduler: DDPMScheduler,
    threshold: float | None,
    timestep_stride: int = 1,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool = True,
) -> list[int]:
    """Sum the gradients of ``||eps - eps_theta(x_t, t)||^2`` over timesteps on one fixed batch.

    ``images`` are floats in [-1, 1]. Timesteps run 0, stride, 2*stride, ...; with a threshold,
    accumulation stops at the first timestep whose loss is below ``threshold`` times the largest
    loss so far (Diff-Pruning). Returns the timesteps used.
    """
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g)
    model.zero_grad(set_to_none=True)
    model.eval()  # dropout off: every timestep sees the same network
    loss_max, used = 0.0, []
    steps = range(0, scheduler.config.num_train_timesteps, timestep_stride)
    for t_val in tqdm(steps, desc="gradients", disable=not progress, leave=False):
        x_t, t, _ = forward_noise(scheduler, images, t=t_val, noise=noise)
        loss = task_loss(_forward_eps(model, x_t, t, labels), noise, reduction="mean")
        if threshold is not None and threshold > 0 and used and loss.item() < threshold * loss_max:
            break
        loss.backward()
        loss_max = max(loss_max, loss.item())
        used.append(t_val)
    return used


def _importance(criterion: str):
    import torch_pruning as tp

    if criterion == "diff-pruning":
        return tp.importance.TaylorImportance(multivariable=False)
    if criterion == "taylor":
        return tp.importance.TaylorImportance(multivariable=True)
    if criterion == "magnitude":
        return tp.importance.MagnitudeImportance(p=2)
    if criterion == "random":
        return tp.importance.RandomImportance()
    raise PruningError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")


def _attention_heads(model: nn.Module) -> dict[nn.Module, int]:
    heads = {}
    for m in model.modules():
        if isinstance(m, Attention):
            for layer in (m.to_q, m.to_k, m.to_v):
                heads[layer] = m.heads
    return heads


def _pruner_args(model: nn.Module, ratio: float) -> dict:
    if isinstance(model, UNet2DModel):
        return {"ignored_layers": [model.conv_out]}
    # DiT: prune the inside of every block (head dimensions, MLP hidden width); the residual
    # stream stays, fixed by the patch embedding, the adaLN modulations and the output layers
    blocks = model.transformer_blocks
    ratio_dict, ignored = (
        {},
        [m for name, m in model.named_children() if name != "transformer_blocks"],
    )
    for b in blocks:
        for layer in (b.attn1.to_q, b.attn1.to_k, b.attn1.to_v, b.ff.net[0].proj):
            ratio_dict[layer] = ratio  # torch-pruning prunes q/k/v only with an explicit entry
        ignored += [b.norm1, b.attn1.to_out, b.ff.net[2]]
    return {"ignored_layers": ignored, "pruning_ratio_dict": ratio_dict}


def _fix_static_attributes(model: nn.Module) -> None:
    """diffusers keeps channel counts as attributes and asserts on them: make them true again."""
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.upsampling import Upsample2D

    for m in model.modules():
        if isinstance(m, (Downsample2D, Upsample2D)):
            conv = m.conv
            m.channels = conv.in_channels
            m.out_channels = conv.out_channels
        elif isinstance(m, ResnetBlock2D):
            m.in_channels = m.conv1.in_channels
            m.out_channels = m.conv2.out_channels
        elif isinstance(m, Attention):
            m.inner_dim = m.to_q.out_features
            m.query_dim = m.to_q.in_features
            m.out_dim = m.to_out[0].out_features


def _layer_widths(model: nn.Module) -> dict[str, tuple[str, int]]:
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            out[name] = ("conv", m.out_channels)
        elif isinstance(m, nn.Linear):
            out[name] = ("linear", m.out_features)
    return out


def prune(
    model: nn.Module,
    ratio: float,
    criterion: str = "diff-pruning",
    images: torch.Tensor | None = None,
    scheduler: DDPMScheduler | None = None,
    labels: torch.Tensor | None = None,
    threshold: float = 0.05,
    timestep_stride: int = 1,
    seed: int = 0,
    progress: bool = True,
    rounding: str = "torch-pruning",
) -> tuple[nn.Module, PruningReport]:
    """A pruned copy of ``model`` and its report (see the module docstring).

    ``images`` (floats in [-1, 1], one fixed batch) and ``scheduler`` are needed by the gradient
    criteria (``diff-pruning``, ``taylor``); ``labels`` by a class-conditional DiT.
    """
    import torch_pruning as tp

    asked, ratio = ratio, applied_ratio(model, ratio, rounding)
    check_ratio(model, ratio)
    importance = _importance(criterion)
    if criterion in ("diff-pruning", "taylor") and (images is None or scheduler is None):
        raise PruningError(
            f"criterion {criterion!r} needs images (one batch) and the noise scheduler"
        )
    student = copy.deepcopy(model).cpu().requires_grad_(True)  # a frozen (EMA) teacher has it off
    if isinstance(student, DiTTransformer2DModel) and labels is None and images is not None:
        labels = torch.zeros(images.shape[0], dtype=torch.long)
    inputs = example_inputs(student)
    params_before = sum(p.numel() for p in student.parameters())
    macs_before = count_macs(student, inputs)
    widths_before = _layer_widths(student)
    torch.manual_seed(seed)
    pruner = tp.pruner.BasePruner(
        student,
        inputs,
        importance=importance,
        pruning_ratio=ratio - _FLOAT_SLACK,
        num_heads=_attention_heads(student),
        prune_head_dims=True,
        prune_num_heads=False,
        **_pruner_args(student, ratio - _FLOAT_SLACK),
    )
    used = []
    if criterion in ("diff-pruning", "taylor"):
        used = accumulate_gradients(
            student,
            images.cpu(),
            scheduler,
            threshold if criterion == "diff-pruning" else None,
            timestep_stride,
            labels,
            seed,
            progress,
        )
    pruner.step()
    student.zero_grad(set_to_none=True)
    _fix_static_attributes(student)
    if isinstance(student, DiTTransformer2DModel):
        _record_dit_widths(student)
    widths_after = _layer_widths(student)
    layers = [
        LayerReport(name, kind, before, widths_after[name][1])
        for name, (kind, before) in widths_before.items()
    ]
    report = PruningReport(
        criterion=criterion,
        ratio=asked,
        params_before=params_before,
        params_after=sum(p.numel() for p in student.parameters()),
        macs_before=macs_before,
        macs_after=count_macs(student, example_inputs(student)),
        layers=layers,
        gradient_timesteps=used,
        applied_ratio=ratio,
        rounding=rounding,
    )
    _check_achieved(report, student)
    return student.eval(), report


def _check_achieved(report: PruningReport, model: nn.Module) -> None:
    if report.params_after >= report.params_before:
        raise PruningError(
            f"pruning at {report.ratio} removed no parameter (torch-pruning skipped every group)"
        )
    empty = [layer.name for layer in report.layers if layer.after == 0]
    if empty:
        raise PruningError(f"pruning emptied layer(s) {empty}")
    if isinstance(model, UNet2DModel):
        # every conv except conv_out (and the input conv's input) must reach the requested cut
        # within a group's rounding
        sizes = _channels_per_group_unet(model)
        tol = 1.0 / min(s for s in sizes.values()) if sizes else 0.0
        for layer in report.layers:
            if (
                layer.name == "conv_out"
                or layer.before == layer.after
                and layer.name.endswith("conv_out")
            ):
                continue
            if (
                layer.kind == "conv"
                and abs(layer.achieved_ratio - report.applied_ratio) > tol + 1e-6
            ):
                raise PruningError(
                    f"layer {layer.name} was cut by {layer.achieved_ratio:.3f}, not "
                    f"{report.applied_ratio}: "
                    "torch-pruning did not prune it as asked"
                )


def _record_dit_widths(model: DiTTransformer2DModel) -> None:
    for b in model.transformer_blocks:
        b.attn1.inner_dim = b.attn1.to_q.out_features


def prune_depth(model: DiTTransformer2DModel, keep: list[int]) -> DiTTransformer2DModel:
    """A copy of a DiT with only the transformer blocks ``keep`` (TinyFusion's depth pruning)."""
    if not isinstance(model, DiTTransformer2DModel):
        raise PruningError(
            f"depth pruning is for DiTTransformer2DModel, got {type(model).__name__}"
        )
    n = len(model.transformer_blocks)
    if not keep or len(set(keep)) != len(keep) or not all(0 <= i < n for i in keep):
        raise PruningError(f"keep must list distinct block indices in [0, {n}), got {keep}")
    student = copy.deepcopy(model)
    student.transformer_blocks = nn.ModuleList(student.transformer_blocks[i] for i in sorted(keep))
    student.register_to_config(num_layers=len(keep))
    return student
