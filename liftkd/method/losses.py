"""The KD objectives' common form and the baselines: w/o KD, OutKD, FeatKD (FitNet), OutKD+FeatKD,
normalised feature KD and DIST. LIFT and LIFT+PLACE are in ``liftkd.method.lift``; the registry by name,
the spec strings and the labels in ``liftkd.method.objectives``.

Every objective is a ``torch.nn.Module`` called as

    out = objective(eps, eS, eT, fS=None, fT=None, progress=None)

with ``eps`` the true noise, ``eS``/``eT`` the student's and teacher's predictions ``(B, C, H, W)``
(a DiT's output unpatchified), ``fS``/``fT`` their tapped features (``liftkd.method.features``) for the
feature objectives, and ``progress`` in [0, 1] the share of training done (fixed weight
schedules need it). ``out.total`` is the loss to minimise; ``out.parts`` holds its parts
(``task``, ``kd``, ``coarse``, ``fine``, ``w``, ``feat``; detached) for logging.

Reductions follow the authors' DDPM fork: squared errors summed over (C, H, W), averaged over the
batch (``task_loss``; the teacher and the pruning criterion use its mean reduction). Objectives that tap features own trainable FitNet
adapters: build them through ``liftkd.method.objectives.build_objective`` with ``student=``,
``teacher=`` and ``example_inputs=``, and give ``objective.parameters()`` to the optimiser with
the student's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from liftkd.method.features import FitNetAdapters

COMBINED_FEAT_WEIGHT = 1e-6  # the FitNet term's weight beside OutKD and LIFT (authors' DDPM fork)
REDUCTIONS = ("mean", "sum")


def sq_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b||^2`` summed over all but the batch dimension, averaged over the batch."""
    return (a - b).square().flatten(1).sum(1).mean(0)


def task_loss(eps_pred: torch.Tensor, eps: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """``L_task = ||eps - eps_theta(x_t, t)||^2``.

    ``reduction="sum"``: summed over (C, H, W), averaged over the batch (the authors' DDPM fork,
    what every KD objective uses); ``"mean"``: averaged over every element (the usual DDPM
    training loss, what the teacher and the pruning criterion use). The two differ by the constant
    C * H * W, which matters for gradient clipping and for the balance against KD terms.
    """
    if reduction == "sum":
        return sq_sum(eps_pred, eps)
    if reduction == "mean":
        return F.mse_loss(eps_pred, eps)
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


@dataclass
class LossOutput:
    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


class NonFiniteLoss(FloatingPointError):
    """An objective's loss became NaN or infinite (the training loop marks the student diverged)."""


def check_outputs(eps: torch.Tensor, eS: torch.Tensor, eT: torch.Tensor | None) -> None:
    """The inputs every objective takes: tensors of one shape; the true noise and the teacher's
    prediction finite (a non-finite eS is the student's own divergence, caught on the loss)."""
    named = {"eps": eps, "eS": eS, "eT": eT}
    for name, x in named.items():
        if x is not None and not torch.is_tensor(x):
            raise TypeError(f"{name} must be a tensor (B, C, H, W), got {type(x).__name__}")
    if eS.ndim < 2 or eS.shape != eps.shape or (eT is not None and eT.shape != eS.shape):
        raise ValueError(
            "eps, eS and eT must have one (B, C, ...) shape; got "
            f"{tuple(eps.shape)}, {tuple(eS.shape)}, {None if eT is None else tuple(eT.shape)}"
        )
    for name in ("eps", "eT"):
        x = named[name]
        if x is not None and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            who = "the teacher's prediction" if name == "eT" else "the true noise"
            raise ValueError(
                f"{name} ({who}) holds {bad} NaN or infinite value(s) of {x.numel()}: check the "
                "teacher's weights and inputs; a distillation target must be finite"
            )


def detached(parts: dict[str, torch.Tensor | float]) -> dict[str, torch.Tensor]:
    return {
        k: (v.detach() if torch.is_tensor(v) else torch.tensor(float(v))) for k, v in parts.items()
    }


class Objective(nn.Module):
    """Base class: subclasses set ``name`` and implement ``forward``."""

    name = "objective"
    label = "objective"  # a reader's name, in tables and figures
    uses_teacher = True
    uses_features = False
    feature_level = (
        "sub-blocks"  # which outputs the teacher and student taps hold (liftkd.method.features)
    )

    def output(self, total: torch.Tensor, parts: dict) -> LossOutput:
        """The loss and its detached parts; :class:`NonFiniteLoss` if the loss is not finite."""
        if not torch.isfinite(total):
            bad = [k for k, v in parts.items() if not torch.isfinite(torch.as_tensor(v)).all()]
            raise NonFiniteLoss(
                f"objective {self.name!r}: the loss is {total.item()} (non-finite parts: "
                f"{', '.join(bad) or 'none'}); the student's prediction eS has diverged"
            )
        return LossOutput(total, detached(parts))

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class TaskOnly(Objective):
    """w/o KD: the denoising loss alone (Diff-Pruning's plain fine-tuning)."""

    name = "nokd"
    label = "w/o KD"
    uses_teacher = False

    def forward(self, eps, eS, eT=None, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, None)
        task = task_loss(eS, eps)
        return self.output(task, {"task": task})


OUTKD_NORMS = ("l2", "l1")


class OutKD(Objective):
    """``L_task + lam * ||eT - eS||^2`` (``norm="l1"``: ``lam * ||eT - eS||_1``, the control that
    asks whether an absolute-value KD term alone does what LIFT's L1 coarse term does)."""

    name = "outkd"
    label = "OutKD"

    def __init__(self, lam: float = 1.0, norm: str = "l2"):
        super().__init__()
        if norm not in OUTKD_NORMS:
            raise ValueError(f"norm must be one of {OUTKD_NORMS}, got {norm!r}")
        self.lam, self.norm = lam, norm

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task = task_loss(eS, eps)
        if self.norm == "l1":
            kd = (eS - eT.detach()).abs().flatten(1).sum(1).mean(0)
        else:
            kd = sq_sum(eS, eT.detach())
        return self.output(task + self.lam * kd, {"task": task, "kd": kd})


class WithFeatures(Objective):
    """Holds FitNet adapters; ``feat_loss`` is ``sum_l ||A_l(fS_l) - fT_l||^2`` (optionally / ||fT_l||^2).

    ``required=False`` (LIFT) leaves ``adapters`` as None when no widths are given, and the
    objective then taps no features."""

    def __init__(
        self,
        student_widths: list[int] | None,
        teacher_widths: list[int] | None,
        tokens: bool = False,
        normalised: bool = False,
        required: bool = True,
    ):
        super().__init__()
        have_widths = student_widths is not None and teacher_widths is not None
        if required and not have_widths:
            raise ValueError(
                f"objective {self.name!r} taps features: build it with build_objective(name, student=, "
                "teacher=, example_inputs=) or pass student_widths and teacher_widths"
            )
        self.adapters = (
            FitNetAdapters(student_widths, teacher_widths, tokens) if have_widths else None
        )
        self.uses_features = self.adapters is not None
        self.normalised = normalised

    def feat_loss(
        self, fS: list[torch.Tensor] | None, fT: list[torch.Tensor] | None
    ) -> torch.Tensor:
        if not fS or not fT:
            raise ValueError(
                f"objective {self.name!r} needs the tapped features fS and fT (liftkd.method.features.FeatureTap)"
            )
        total = 0.0
        for a, t in zip(self.adapters(fS), fT, strict=True):
            t = t.detach()
            err = (a - t).square().flatten(1).sum(1)
            if self.normalised:
                err = err / t.square().flatten(1).sum(1).clamp_min(1e-12)
            total = total + err.mean(0)
        return total


class FeatKD(WithFeatures):
    """FitNet: ``L_task + lam_f * sum_l ||A_l(fS_l) - fT_l||^2``."""

    name = "featkd"
    label = "FeatKD"

    def __init__(
        self, student_widths=None, teacher_widths=None, lam_f: float = 1.0, tokens: bool = False
    ):
        super().__init__(student_widths, teacher_widths, tokens)
        self.lam_f = lam_f

    def forward(self, eps, eS, eT=None, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, None)
        task, feat = task_loss(eS, eps), self.feat_loss(fS, fT)
        return self.output(task + self.lam_f * feat, {"task": task, "feat": feat})


class NormFeatKD(FeatKD):
    """Normalised feature KD (LAPTOP-Diff): each layer's error divided by ``||fT_l||^2``."""

    name = "normfeatkd"
    label = "NormFeatKD"

    def __init__(
        self, student_widths=None, teacher_widths=None, lam_f: float = 1.0, tokens: bool = False
    ):
        super().__init__(student_widths, teacher_widths, lam_f, tokens)
        self.normalised = True


class OutFeatKD(WithFeatures):
    """OutKD plus the FitNet term at weight 1e-6."""

    name = "outkd+featkd"
    label = "OutKD+FeatKD"

    def __init__(
        self,
        student_widths=None,
        teacher_widths=None,
        lam: float = 1.0,
        feat_weight: float = COMBINED_FEAT_WEIGHT,
        tokens: bool = False,
    ):
        super().__init__(student_widths, teacher_widths, tokens)
        self.lam, self.feat_weight = lam, feat_weight

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task, kd, feat = task_loss(eS, eps), sq_sum(eS, eT.detach()), self.feat_loss(fS, fT)
        total = task + self.lam * kd + self.feat_weight * feat
        return self.output(total, {"task": task, "kd": kd, "feat": feat})


def _pearson(a: torch.Tensor, b: torch.Tensor, dim: int, tiny: float = 1e-8) -> torch.Tensor:
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + tiny)


class DIST(Objective):
    """DIST (Huang et al. 2022) adapted to noise predictions: Pearson-correlation KD.

    Inter-relation: 1 - rho between eS[b] and eT[b] over their elements, per sample; intra-
    relation: 1 - rho across the batch, per element. ``L_task + lam * (beta * inter + gamma *
    intra)``, each averaged.
    """

    name = "dist"
    label = "DIST"

    def __init__(self, lam: float = 1.0, beta: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.lam, self.beta, self.gamma = lam, beta, gamma

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task = task_loss(eS, eps)
        s, t = eS.flatten(1), eT.detach().flatten(1)
        inter = (1 - _pearson(s, t, dim=1)).mean()
        intra = (1 - _pearson(s, t, dim=0)).mean() if s.shape[0] > 1 else s.new_zeros(())
        kd = self.beta * inter + self.gamma * intra
        return self.output(task + self.lam * kd, {"task": task, "kd": kd})
