"""The distillation objectives: LIFT, LIFT+PLACE and the KD baselines, one call signature.

Every objective is a ``torch.nn.Module`` called as

    out = objective(eps, eS, eT, fS=None, fT=None, progress=None)

with ``eps`` the true noise, ``eS``/``eT`` the student's and teacher's predictions ``(B, C, H, W)``
(a DiT's output unpatchified), ``fS``/``fT`` their tapped features (``liftkd.features``) for the
feature objectives, and ``progress`` in [0, 1] the share of training done (fixed weight
schedules need it). ``out.total`` is the loss to minimise; ``out.parts`` holds its parts
(``task``, ``kd``, ``coarse``, ``fine``, ``w``, ``feat``; detached) for logging.

Reductions follow the authors' DDPM fork: squared errors summed over (C, H, W), averaged over the
batch. ``L_task = ||eps - eS||^2``.

LIFT, per fit (one (sample, channel); PLACE: one group of K difficulty-ranked elements), with the
OLS coefficients of ``liftkd.probe``, differentiable in eS:

    L_coarse = sum over fits of (|beta1 - 1| + |beta0|) * n        (n = elements per fit)
    L_fine   = sum over elements of (eT - (b0 + b1 * eS))^2       (b0, b1 detached)
    w        = 1 - min(1, mean|beta1 - 1| + mean|beta0|)          (no gradient; over all fits)
    L_LIFT   = L_coarse + w * L_fine

Using it in your own diffusers training loop::

    from liftkd.losses import build_objective
    objective = build_objective("lift+place", group_size=16)
    ...
    eS = student(x_t, t).sample
    with torch.no_grad():
        eT = teacher(x_t, t).sample
    out = objective(noise, eS, eT)
    out.total.backward()
    log(out.parts)   # task, kd, coarse, fine, w

Objectives that tap features (``featkd``, ``outkd+featkd``, ``normfeatkd``, and LIFT's small
FitNet term) own trainable adapters: build them with ``student=``, ``teacher=`` and
``example_inputs=``, and give ``objective.parameters()`` to the optimiser with the student's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from liftkd.features import FitNetAdapters, feature_widths
from liftkd.probe import grouped, ols_fit

SCHEDULES = ("adaptive", "none", "linear", "cosine", "sigmoid")
COARSE_NORMS = ("l1", "l2")
TERMS = ("both", "coarse", "fine")
COMBINED_FEAT_WEIGHT = 1e-6  # the FitNet term's weight beside OutKD and LIFT (authors' DDPM fork)


@dataclass
class LossOutput:
    total: torch.Tensor
    parts: dict[str, torch.Tensor] = field(default_factory=dict)


def sq_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 summed over all but the batch dimension, averaged over the batch."""
    return (a - b).square().flatten(1).sum(1).mean(0)


def _check_outputs(eps: torch.Tensor, eS: torch.Tensor, eT: torch.Tensor | None) -> None:
    if eS.shape != eps.shape or (eT is not None and eT.shape != eS.shape):
        raise ValueError(
            "eps, eS and eT must have one shape; got "
            f"{tuple(eps.shape)}, {tuple(eS.shape)}, {None if eT is None else tuple(eT.shape)}"
        )


def _detached(parts: dict[str, torch.Tensor | float]) -> dict[str, torch.Tensor]:
    return {
        k: (v.detach() if torch.is_tensor(v) else torch.tensor(float(v))) for k, v in parts.items()
    }


class Objective(nn.Module):
    """Base class: subclasses set ``name`` and implement ``forward``."""

    name = "objective"
    uses_teacher = True
    uses_features = False

    def extra_repr(self) -> str:
        return f"name={self.name!r}"


class TaskOnly(Objective):
    """w/o KD: the denoising loss alone (Diff-Pruning's plain fine-tuning)."""

    name = "nokd"
    uses_teacher = False

    def forward(self, eps, eS, eT=None, fS=None, fT=None, progress=None) -> LossOutput:
        _check_outputs(eps, eS, None)
        task = sq_sum(eS, eps)
        return LossOutput(task, _detached({"task": task}))


class OutKD(Objective):
    """``L_task + lam * ||eT - eS||^2``."""

    name = "outkd"

    def __init__(self, lam: float = 1.0):
        super().__init__()
        self.lam = lam

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        _check_outputs(eps, eS, eT)
        task, kd = sq_sum(eS, eps), sq_sum(eS, eT.detach())
        return LossOutput(task + self.lam * kd, _detached({"task": task, "kd": kd}))


class _WithFeatures(Objective):
    """Holds FitNet adapters; ``feat_loss`` is ``sum_l ||A_l(fS_l) - fT_l||^2`` (optionally / ||fT_l||^2)."""

    uses_features = True

    def __init__(
        self,
        student_widths: list[int] | None,
        teacher_widths: list[int] | None,
        tokens: bool = False,
        normalised: bool = False,
    ):
        super().__init__()
        if student_widths is None or teacher_widths is None:
            raise ValueError(
                f"objective {self.name!r} taps features: build it with build_objective(name, student=, "
                "teacher=, example_inputs=) or pass student_widths and teacher_widths"
            )
        self.adapters = FitNetAdapters(student_widths, teacher_widths, tokens)
        self.normalised = normalised

    def feat_loss(
        self, fS: list[torch.Tensor] | None, fT: list[torch.Tensor] | None
    ) -> torch.Tensor:
        if not fS or not fT:
            raise ValueError(
                f"objective {self.name!r} needs the tapped features fS and fT (liftkd.features.FeatureTap)"
            )
        total = 0.0
        for a, t in zip(self.adapters(fS), fT, strict=True):
            t = t.detach()
            err = (a - t).square().flatten(1).sum(1)
            if self.normalised:
                err = err / t.square().flatten(1).sum(1).clamp_min(1e-12)
            total = total + err.mean(0)
        return total


class FeatKD(_WithFeatures):
    """FitNet: ``L_task + lam_f * sum_l ||A_l(fS_l) - fT_l||^2``."""

    name = "featkd"

    def __init__(
        self, student_widths=None, teacher_widths=None, lam_f: float = 1.0, tokens: bool = False
    ):
        super().__init__(student_widths, teacher_widths, tokens)
        self.lam_f = lam_f

    def forward(self, eps, eS, eT=None, fS=None, fT=None, progress=None) -> LossOutput:
        _check_outputs(eps, eS, None)
        task, feat = sq_sum(eS, eps), self.feat_loss(fS, fT)
        return LossOutput(task + self.lam_f * feat, _detached({"task": task, "feat": feat}))


class NormFeatKD(FeatKD):
    """Normalised feature KD (LAPTOP-Diff): each layer's error divided by ``||fT_l||^2``."""

    name = "normfeatkd"

    def __init__(
        self, student_widths=None, teacher_widths=None, lam_f: float = 1.0, tokens: bool = False
    ):
        super().__init__(student_widths, teacher_widths, lam_f, tokens)
        self.normalised = True


class OutFeatKD(_WithFeatures):
    """OutKD plus the FitNet term at weight 1e-6."""

    name = "outkd+featkd"

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
        _check_outputs(eps, eS, eT)
        task, kd, feat = sq_sum(eS, eps), sq_sum(eS, eT.detach()), self.feat_loss(fS, fT)
        total = task + self.lam * kd + self.feat_weight * feat
        return LossOutput(total, _detached({"task": task, "kd": kd, "feat": feat}))


def fixed_weight(schedule: str, progress: float | None) -> float:
    """The fine term's weight under a fixed schedule, rising from 0 to 1 over training."""
    if schedule == "none":
        return 1.0
    if progress is None:
        raise ValueError(
            f"weight schedule {schedule!r} needs progress (the share of training done, 0..1)"
        )
    p = min(1.0, max(0.0, float(progress)))
    if schedule == "linear":
        return p
    if schedule == "cosine":
        return 0.5 * (1.0 - math.cos(math.pi * p))
    if schedule == "sigmoid":  # the authors' sigmoid shape: sharpness 12 around mid-training
        return 1.0 / (1.0 + math.exp(-12.0 * (p - 0.5)))
    raise ValueError(f"unknown weight schedule {schedule!r}; choose one of {SCHEDULES}")


def lift_terms(
    eS: torch.Tensor,
    eT: torch.Tensor,
    group_size: int | None = None,
    coarse: str = "l1",
    eps: float = 1e-7,
    remainder: str = "error",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_coarse, L_fine, w_adaptive) of LIFT (``group_size=None``) or PLACE, batch-averaged."""
    if coarse not in COARSE_NORMS:
        raise ValueError(f"coarse must be one of {COARSE_NORMS}, got {coarse!r}")
    B = eS.shape[0]
    L_coarse = eS.new_zeros(B)
    L_fine = eS.new_zeros(B)
    dev1, dev0 = [], []
    for x, y in grouped(eS, eT.detach(), group_size, remainder):
        beta0, beta1 = ols_fit(x, y, eps)  # (B, C, G), differentiable in x = eS
        n = x.shape[-1]
        if coarse == "l1":
            per_fit = (beta1 - 1).abs() + beta0.abs()
        else:
            per_fit = (beta1 - 1).square() + beta0.square()
        L_coarse = L_coarse + n * per_fit.flatten(1).sum(1)
        fit = beta0.detach().unsqueeze(-1) + beta1.detach().unsqueeze(-1) * x
        L_fine = L_fine + (y - fit).square().flatten(1).sum(1)
        dev1.append((beta1.detach() - 1).abs().flatten())
        dev0.append(beta0.detach().abs().flatten())
    w = 1.0 - torch.clamp(torch.cat(dev1).mean() + torch.cat(dev0).mean(), max=1.0)
    return L_coarse.mean(0), L_fine.mean(0), w


class LIFT(Objective):
    """``L_task + lam * (L_coarse + w * L_fine) + feat_weight * FitNet`` (PLACE when group_size is set).

    Options: ``group_size`` (None: LIFT, one fit per channel; K: PLACE), ``coarse`` ("l1", the
    paper's DDPM setting, or "l2", its DiT fork), ``schedule`` ("adaptive", the paper's, or a
    fixed "none" / "linear" / "cosine" / "sigmoid" for ablations), ``terms`` ("both", or the
    "coarse" / "fine" ablations), ``eps`` (variance epsilon, 1e-7 as the DDPM fork),
    ``remainder`` ("error" or "merge" when K does not divide H*W).
    """

    name = "lift"

    def __init__(
        self,
        lam: float = 1.0,
        group_size: int | None = None,
        coarse: str = "l1",
        schedule: str = "adaptive",
        terms: str = "both",
        eps: float = 1e-7,
        remainder: str = "error",
        student_widths: list[int] | None = None,
        teacher_widths: list[int] | None = None,
        feat_weight: float = COMBINED_FEAT_WEIGHT,
        tokens: bool = False,
    ):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown weight schedule {schedule!r}; choose one of {SCHEDULES}")
        if terms not in TERMS:
            raise ValueError(f"terms must be one of {TERMS}, got {terms!r}")
        if coarse not in COARSE_NORMS:
            raise ValueError(f"coarse must be one of {COARSE_NORMS}, got {coarse!r}")
        self.lam, self.group_size, self.coarse = lam, group_size, coarse
        self.schedule, self.terms, self.eps, self.remainder = schedule, terms, eps, remainder
        self.feat_weight = feat_weight
        self.adapters = None
        if student_widths is not None and teacher_widths is not None and feat_weight > 0:
            self.adapters = FitNetAdapters(student_widths, teacher_widths, tokens)
        self.uses_features = self.adapters is not None

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        _check_outputs(eps, eS, eT)
        task = sq_sum(eS, eps)
        L_coarse, L_fine, w_adaptive = lift_terms(
            eS, eT, self.group_size, self.coarse, self.eps, self.remainder
        )
        w = (
            w_adaptive
            if self.schedule == "adaptive"
            else torch.tensor(fixed_weight(self.schedule, progress))
        )
        if self.terms == "coarse":
            kd = L_coarse
        elif self.terms == "fine":
            kd = w * L_fine
        else:
            kd = L_coarse + w * L_fine
        total = task + self.lam * kd
        parts = {"task": task, "kd": kd, "coarse": L_coarse, "fine": L_fine, "w": w}
        if self.adapters is not None:
            if not fS or not fT:
                raise ValueError("this LIFT objective has FitNet adapters: pass fS and fT")
            feat = sum(
                (a - t.detach()).square().flatten(1).sum(1).mean(0)
                for a, t in zip(self.adapters(fS), fT, strict=True)
            )
            total = total + self.feat_weight * feat
            parts["feat"] = feat
        return LossOutput(total, _detached(parts))


class PLACE(LIFT):
    """LIFT+PLACE: LIFT with coefficients fitted per group of ``group_size`` ranked elements."""

    name = "lift+place"

    def __init__(self, group_size: int = 16, **kwargs):
        if group_size is None:
            raise ValueError("PLACE needs a group size K (16 in every table of the paper)")
        super().__init__(group_size=group_size, **kwargs)


def _pearson(a: torch.Tensor, b: torch.Tensor, dim: int, eps: float = 1e-8) -> torch.Tensor:
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + eps)


class DIST(Objective):
    """DIST (Huang et al. 2022) adapted to noise predictions: Pearson-correlation KD.

    Inter-relation: 1 - rho between eS[b] and eT[b] over their elements, per sample; intra-
    relation: 1 - rho across the batch, per element. ``L_task + lam * (beta * inter + gamma *
    intra)``, each averaged.
    """

    name = "dist"

    def __init__(self, lam: float = 1.0, beta: float = 1.0, gamma: float = 1.0):
        super().__init__()
        self.lam, self.beta, self.gamma = lam, beta, gamma

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        _check_outputs(eps, eS, eT)
        task = sq_sum(eS, eps)
        s, t = eS.flatten(1), eT.detach().flatten(1)
        inter = (1 - _pearson(s, t, dim=1)).mean()
        intra = (1 - _pearson(s, t, dim=0)).mean() if s.shape[0] > 1 else s.new_zeros(())
        kd = self.beta * inter + self.gamma * intra
        return LossOutput(task + self.lam * kd, _detached({"task": task, "kd": kd}))


OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls for cls in (TaskOnly, OutKD, FeatKD, OutFeatKD, LIFT, PLACE, DIST, NormFeatKD)
}
_FEATURE_OBJECTIVES = {"featkd", "outkd+featkd", "normfeatkd", "lift", "lift+place"}


def build_objective(
    name: str,
    student: nn.Module | None = None,
    teacher: nn.Module | None = None,
    example_inputs: dict[str, torch.Tensor] | None = None,
    **options,
) -> Objective:
    """The objective registered as ``name`` with ``options``.

    With ``student``, ``teacher`` and ``example_inputs`` (keyword inputs of one forward pass),
    objectives that use features get adapters sized from the tapped features; LIFT and PLACE then
    carry the 1e-6 FitNet term of the paper's DDPM setting (``feat_weight=0`` removes it).
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    if name in _FEATURE_OBJECTIVES and student is not None and teacher is not None:
        if example_inputs is None:
            raise ValueError("feature objectives need example_inputs to size their adapters")
        options.setdefault("student_widths", feature_widths(student, example_inputs))
        options.setdefault("teacher_widths", feature_widths(teacher, example_inputs))
        from diffusers import DiTTransformer2DModel

        options.setdefault("tokens", isinstance(student, DiTTransformer2DModel))
    return cls(**options)
