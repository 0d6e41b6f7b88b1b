"""LIFT (LInear FiTting-based distillation) and PLACE (Piecewise Local Adaptive Coefficient
Estimation): the paper's objectives.

Per fit (one (sample, channel) for LIFT; one group of K difficulty-ranked elements for PLACE),
with the OLS coefficients of ``liftkd.method.probe``, differentiable in eS:

    L_coarse = sum over fits of (|beta1 - 1| + |beta0|) * s        (s: 32 for LIFT, K for PLACE)
    L_fine   = sum over elements of (eT - (b0 + b1 * eS))^2       (b0, b1 detached)
    w        = 1 - min(1, mean|beta1 - 1| + mean|beta0|)          (no gradient; over all fits)
    L_LIFT   = L_coarse + w * L_fine

Sums run over the channels and elements of a sample; the result is averaged over the batch. The
scale ``s`` is the authors': the constant 32 for LIFT, n = K (the elements per fit) for PLACE;
``coarse_scale="n"`` gives LIFT the elements per fit too (LIFT is then PLACE with one group). In
your own diffusers training loop::

    from liftkd.method.objectives import build_objective
    objective = build_objective("lift+place", group_size=16)
    ...
    eS = student(x_t, t).sample
    with torch.no_grad():
        eT = teacher(x_t, t).sample
    out = objective(noise, eS, eT)
    out.total.backward()
    log(out.parts)   # task, kd, coarse, fine, w
"""

from __future__ import annotations

import math

import torch

from liftkd.method.losses import (
    COMBINED_FEAT_WEIGHT,
    LossOutput,
    WithFeatures,
    check_outputs,
    task_loss,
)
from liftkd.method.probe import grouped, ols_fit

SCHEDULES = ("adaptive", "none", "linear", "cosine", "sigmoid")
# the authors' LIFT scales each fit's coarse term by this constant (their PLACE by K)
LIFT_COARSE_SCALE = 32
PER_ELEMENT = "n"  # coarse_scale="n": each fit's coarse term scaled by its number of elements
# the paper's K: 16 elements of a 64 x 64 channel (CelebA), 1/256 of it
PAPER_GROUP_SIZE, PAPER_CHANNEL_ELEMENTS = 16, 64 * 64
MIN_GROUP_SIZE = 4  # fewer: an OLS fit of two coefficients leaves a residual of 1 or 0 degrees


def place_group_size(elements: int) -> int:
    """PLACE's K for channels of ``elements`` (H x W) elements, this project's rule for another
    resolution than the paper's (stated before any run made with it; the paper's K = 16 is
    reported beside it): keep the paper's share of a channel per group, K / N = 16 / 4096,
    rounded down to a power of two that divides N, and never below ``MIN_GROUP_SIZE``. At
    64 x 64 it gives the paper's 16; at 32 x 32 and 16 x 16 it gives 4."""
    if elements < MIN_GROUP_SIZE:
        raise ValueError(f"a channel of {elements} elements cannot hold a group of 4")
    share = PAPER_GROUP_SIZE * elements / PAPER_CHANNEL_ELEMENTS
    k = MIN_GROUP_SIZE
    while k * 2 <= share and elements % (k * 2) == 0:
        k *= 2
    return k


COARSE_NORMS = ("l1", "l2")
TERMS = ("both", "coarse", "fine")


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
    var_eps: float = 1e-7,
    remainder: str = "error",
    coarse_scale: float | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(L_coarse, L_fine, w_adaptive) of LIFT (``group_size=None``) or PLACE, batch-averaged.

    ``coarse_scale``: the factor of each fit's coarse term. None is the authors': 32 for LIFT,
    n = K for PLACE; ``"n"`` the elements per fit (for LIFT, H*W: then LIFT is PLACE with one
    group); a number that constant."""
    if coarse not in COARSE_NORMS:
        raise ValueError(f"coarse must be one of {COARSE_NORMS}, got {coarse!r}")
    B = eS.shape[0]
    L_coarse = eS.new_zeros(B)
    L_fine = eS.new_zeros(B)
    dev1, dev0 = [], []
    for x, y in grouped(eS, eT.detach(), group_size, remainder):
        beta0, beta1 = ols_fit(x, y, var_eps)  # (B, C, G), differentiable in x = eS
        n = x.shape[-1]
        if coarse == "l1":
            per_fit = (beta1 - 1).abs() + beta0.abs()
        else:
            per_fit = (beta1 - 1).square() + beta0.square()
        scale = coarse_scale_of(coarse_scale, group_size, n)
        L_coarse = L_coarse + scale * per_fit.flatten(1).sum(1)
        fit = beta0.detach().unsqueeze(-1) + beta1.detach().unsqueeze(-1) * x
        L_fine = L_fine + (y - fit).square().flatten(1).sum(1)
        dev1.append((beta1.detach() - 1).abs().flatten())
        dev0.append(beta0.detach().abs().flatten())
    w = 1.0 - torch.clamp(torch.cat(dev1).mean() + torch.cat(dev0).mean(), max=1.0)
    return L_coarse.mean(0), L_fine.mean(0), w


def coarse_scale_of(coarse_scale: float | str | None, group_size: int | None, n: int) -> float:
    """The factor of a fit's coarse term (``lift_terms``' ``coarse_scale``), for fits of n elements."""
    if coarse_scale is None:
        return LIFT_COARSE_SCALE if group_size is None else n
    return n if coarse_scale == PER_ELEMENT else coarse_scale


_EXAMPLE = {"LIFT": "lam=1.0, coarse_scale=32", "PLACE": "group_size=16, lam=1.0"}


def _by_name(cls: str, positional: tuple) -> None:
    # LIFT's first option is lam and PLACE's group_size: a bare number would mean one to a
    # reader and the other to Python, so options are taken by name only
    if positional:
        raise TypeError(
            f"{cls} takes its options by name, e.g. {cls}({_EXAMPLE[cls]}); "
            f"got {', '.join(repr(a) for a in positional)} without a name"
        )


class LIFT(WithFeatures):
    """``L_task + lam * (L_coarse + w * L_fine) + feat_weight * FitNet`` (PLACE when group_size is set).

    Options: ``group_size`` (None: LIFT, one fit per channel; K: PLACE), ``coarse`` ("l1", the
    paper's DDPM setting, or "l2", its DiT fork), ``schedule`` ("adaptive", the paper's, or a
    fixed "none" / "linear" / "cosine" / "sigmoid" for ablations), ``terms`` ("both", or the
    "coarse" / "fine" ablations), ``var_eps`` (the epsilon added to Var(eS), 1e-7 as the DDPM fork),
    ``remainder`` ("error" or "merge" when K does not divide H*W), ``coarse_scale`` (None: the
    authors', 32 for LIFT and K for PLACE; "n": the elements per fit; a number: that constant).
    """

    name = "lift"
    label = "LIFT"

    def __init__(
        self,
        *positional,
        lam: float = 1.0,
        group_size: int | None = None,
        coarse: str = "l1",
        schedule: str = "adaptive",
        terms: str = "both",
        var_eps: float = 1e-7,
        remainder: str = "error",
        student_widths: list[int] | None = None,
        teacher_widths: list[int] | None = None,
        feat_weight: float = COMBINED_FEAT_WEIGHT,
        tokens: bool = False,
        coarse_scale: float | str | None = None,
    ):
        _by_name(type(self).__name__, positional)
        for option, value, low in (("lam", lam, "0 or more"), ("var_eps", var_eps, "above 0")):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if (
                not number
                or not math.isfinite(value)
                or value < 0
                or (low != "0 or more" and value == 0)
            ):
                raise ValueError(f"{option} must be a number {low}, got {value!r}")
        if coarse_scale not in (None, PER_ELEMENT) and (
            isinstance(coarse_scale, bool)
            or not isinstance(coarse_scale, int | float)
            or not math.isfinite(coarse_scale)
            or not coarse_scale > 0
        ):
            raise ValueError(
                f"coarse_scale must be a positive number or {PER_ELEMENT!r} (the elements per "
                f"fit), got {coarse_scale!r}"
            )
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown weight schedule {schedule!r}; choose one of {SCHEDULES}")
        if terms not in TERMS:
            raise ValueError(f"terms must be one of {TERMS}, got {terms!r}")
        if coarse not in COARSE_NORMS:
            raise ValueError(f"coarse must be one of {COARSE_NORMS}, got {coarse!r}")
        if group_size is not None and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2
        ):
            raise ValueError(
                f"group_size (PLACE's K) must be a whole number of at least 2, got {group_size!r}"
            )
        if feat_weight <= 0:  # no FitNet term: no adapters, no feature taps
            student_widths = teacher_widths = None
        super().__init__(student_widths, teacher_widths, tokens, required=False)
        self.lam, self.group_size, self.coarse = lam, group_size, coarse
        self.schedule, self.terms, self.var_eps, self.remainder = (
            schedule,
            terms,
            var_eps,
            remainder,
        )
        self.feat_weight = feat_weight
        self.coarse_scale = coarse_scale

    def coarse_fine(self, eS, eT, progress=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L_coarse, L_fine, w) with this objective's options, w by its schedule."""
        L_coarse, L_fine, w_adaptive = lift_terms(
            eS, eT, self.group_size, self.coarse, self.var_eps, self.remainder, self.coarse_scale
        )
        if self.schedule == "adaptive":
            return L_coarse, L_fine, w_adaptive
        return L_coarse, L_fine, torch.tensor(fixed_weight(self.schedule, progress))

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task = task_loss(eS, eps)
        L_coarse, L_fine, w = self.coarse_fine(eS, eT, progress)
        if self.terms == "coarse":
            kd = L_coarse
        elif self.terms == "fine":
            kd = w * L_fine
        else:
            kd = L_coarse + w * L_fine
        total = task + self.lam * kd
        parts = {"task": task, "kd": kd, "coarse": L_coarse, "fine": L_fine, "w": w}
        if self.adapters is not None:
            feat = self.feat_loss(fS, fT)
            total = total + self.feat_weight * feat
            parts["feat"] = feat
        return self.output(total, parts)


class PLACE(LIFT):
    """LIFT+PLACE: LIFT with coefficients fitted per group of ``group_size`` ranked elements."""

    name = "lift+place"
    label = "LIFT+PLACE"

    def __init__(self, *positional, group_size: int = 16, **kwargs):
        _by_name(type(self).__name__, positional)
        if group_size is None:
            raise ValueError("PLACE needs a group size K (16 in every table of the paper)")
        super().__init__(group_size=group_size, **kwargs)
