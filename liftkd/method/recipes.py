"""The KD recipes of the DiT and latent-U-Net papers as objectives, with LIFT+PLACE inside them.

- ``tinyfusion`` (TinyFusion, depth-pruned DiT): ``0.9 * KD + 0.1 * L_task + b_f * masked
  feature KD``, ``b_f`` falling linearly from 1e-2 to 0 over training. Student block i is paired
  with one teacher block (``teacher_blocks``); the mask keeps the elements within 2 standard
  deviations of their sample's mean, in the student's and in the teacher's hidden state alike.
- ``bksdm`` (BK-SDM, latent U-Net with blocks removed): ``L_task + KD + feature KD`` at the
  output of every down and up block, all weights 1.

Every term is a squared error averaged over elements (mean reduction, as those papers' code),
then over the batch. KD is OutKD (``kd="outkd"``: the papers' own recipes, the baselines) or
LIFT+PLACE (``kd="lift+place"``, or ``"lift"``): the terms of ``liftkd.method.lift.lift_terms`` divided
by the elements per sample C*H*W, which puts them on the same per-element scale: the coarse term
becomes the mean over fits of ``|beta1 - 1| + |beta0|`` (squares with ``coarse="l2"``, the
authors' DiT fork), the fine term the mean squared residual, times the adaptive weight w.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from liftkd.method.features import FitNetAdapters
from liftkd.method.lift import COARSE_NORMS, lift_terms
from liftkd.method.losses import LossOutput, Objective, check_outputs

KD_TERMS = ("outkd", "lift", "lift+place")


def outlier_mask(h: torch.Tensor, n_std: float = 2.0) -> torch.Tensor:
    """True where ``|h - mean| < n_std * std``, the statistics taken per sample over all of its
    elements (tokens and width): TinyFusion's mask of massive activations."""
    dims = tuple(range(1, h.ndim))
    var, mean = torch.var_mean(h, dim=dims, keepdim=True)
    return (h - mean).abs() < n_std * var.sqrt()


def masked_feature_kd(
    fS: list[torch.Tensor], fT: list[torch.Tensor], n_std: float = 2.0
) -> torch.Tensor:
    """Mean over the pairs of ``mean((m_S * hS - m_T * hT)^2)``, each with its own outlier mask."""
    if not fS or len(fS) != len(fT):
        raise ValueError(f"masked feature KD needs paired features, got {len(fS)} and {len(fT)}")
    total = 0.0
    for hS, hT in zip(fS, fT, strict=True):
        hT = hT.detach()
        total = total + F.mse_loss(outlier_mask(hS.detach(), n_std) * hS, outlier_mask(hT) * hT)
    return total / len(fS)


def feature_weight(progress: float | None, start: float = 1e-2) -> float:
    """``b_f``: ``start`` at the beginning of training, falling linearly to 0 at its end."""
    if progress is None:
        raise ValueError("the feature weight b_f needs progress (the share of training done)")
    return start * (1.0 - min(1.0, max(0.0, float(progress))))


class RecipeKD(Objective):
    """The output-KD term of a recipe, OutKD or LIFT(+PLACE) at mean reduction."""

    def __init__(
        self,
        kd: str = "outkd",
        group_size: int | None = 16,
        coarse: str = "l1",
        schedule: str = "adaptive",
    ):
        super().__init__()
        if kd not in KD_TERMS:
            raise ValueError(f"kd must be one of {KD_TERMS}, got {kd!r}")
        if schedule not in ("adaptive", "none"):
            raise ValueError(f"schedule must be 'adaptive' or 'none' here, got {schedule!r}")
        if coarse not in COARSE_NORMS:
            raise ValueError(f"coarse must be one of {COARSE_NORMS}, got {coarse!r}")
        if kd == "lift+place" and (
            isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2
        ):
            raise ValueError(
                f"group_size (PLACE's K) must be a whole number of at least 2, got {group_size!r}"
            )
        self.kd, self.coarse, self.schedule = kd, coarse, schedule
        self.group_size = group_size if kd == "lift+place" else None

    def kd_term(self, eS: torch.Tensor, eT: torch.Tensor) -> tuple[torch.Tensor, dict]:
        eT = eT.detach()
        if self.kd == "outkd":
            kd = F.mse_loss(eS, eT)
            return kd, {"kd": kd}
        per_sample = eS[0].numel()
        L_coarse, L_fine, w = lift_terms(eS, eT, self.group_size, self.coarse)
        if self.schedule == "none":
            w = torch.ones_like(w)
        coarse, fine = L_coarse / per_sample, L_fine / per_sample
        kd = coarse + w * fine
        return kd, {"kd": kd, "coarse": coarse, "fine": fine, "w": w}


class TinyFusionKD(RecipeKD):
    """``alpha * KD + (1 - alpha) * L_task + b_f * masked feature KD`` (alpha 0.9).

    ``teacher_blocks[i]``: the teacher block whose output student block i is held to (TinyFusion
    pairs a kept block with the last teacher block it stands for; ``liftkd.stages.dit.paired_blocks``).
    With a width-pruned student, linear adapters map its tokens to the teacher's width."""

    name = "tinyfusion"
    label = "TinyFusion KD"
    feature_level = "sub-blocks"  # a DiT's taps are its transformer blocks at either level

    def __init__(
        self,
        teacher_blocks: tuple[int, ...] | list[int] | None = None,
        student_widths: list[int] | None = None,
        teacher_widths: list[int] | None = None,
        tokens: bool = True,
        alpha: float = 0.9,
        feat_start: float = 1e-2,
        n_std: float = 2.0,
        kd: str = "outkd",
        group_size: int | None = 16,
        coarse: str = "l2",
        schedule: str = "adaptive",
    ):
        super().__init__(kd, group_size, coarse, schedule)
        self.alpha, self.feat_start, self.n_std = alpha, feat_start, n_std
        self.teacher_blocks = list(teacher_blocks) if teacher_blocks is not None else None
        self.uses_features = self.teacher_blocks is not None and feat_start > 0
        self.adapters = None
        if self.uses_features and student_widths and teacher_widths:
            paired = [teacher_widths[i] for i in self.teacher_blocks]
            if len(student_widths) != len(paired):
                raise ValueError(
                    f"{len(student_widths)} student blocks but {len(paired)} teacher_blocks"
                )
            if list(student_widths) != paired:
                self.adapters = FitNetAdapters(list(student_widths), paired, tokens=True)

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task = F.mse_loss(eS, eps)
        kd, parts = self.kd_term(eS, eT)
        total = self.alpha * kd + (1 - self.alpha) * task
        parts["task"] = task
        if self.uses_features:
            if not fS or not fT:
                raise ValueError("tinyfusion needs the tapped features fS and fT")
            paired_T = [fT[i] for i in self.teacher_blocks]
            hS = self.adapters(fS) if self.adapters is not None else fS
            feat = masked_feature_kd(hS, paired_T, self.n_std)
            b_f = feature_weight(progress, self.feat_start)
            total = total + b_f * feat
            parts.update(feat=feat, b_f=b_f)
        return self.output(total, parts)


class BKSDMKD(RecipeKD):
    """``L_task + lam_out * KD + lam_feat * sum over blocks of mean((fS_l - fT_l)^2)``, weights 1.

    The features are the outputs of every down and up block (``feature_level = "blocks"``);
    block removal alone keeps the widths, and then no adapters are made. A student also cut
    narrower (``latent.width_ratio``) has its block outputs mapped to the teacher's widths by
    FitNet adapters, as TinyFusion's and the pixel FeatKD's are. Built without a student and
    teacher (``build_objective("bksdm")``) it taps nothing: ``L_task + KD``."""

    name = "bksdm"
    label = "BK-SDM KD"
    feature_level = "blocks"

    def __init__(
        self,
        student_widths: list[int] | None = None,
        teacher_widths: list[int] | None = None,
        tokens: bool = False,
        lam_out: float = 1.0,
        lam_feat: float = 1.0,
        kd: str = "outkd",
        group_size: int | None = 16,
        coarse: str = "l1",
        schedule: str = "adaptive",
    ):
        super().__init__(kd, group_size, coarse, schedule)
        self.lam_out, self.lam_feat = lam_out, lam_feat
        # built by name alone (no widths), as LIFT: L_task + KD, no features tapped
        self.uses_features = lam_feat > 0 and student_widths is not None
        self.adapters = None
        if self.uses_features and teacher_widths is not None:
            if list(student_widths) != list(teacher_widths):  # (a count mismatch raises there)
                self.adapters = FitNetAdapters(list(student_widths), list(teacher_widths), tokens)

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None) -> LossOutput:
        check_outputs(eps, eS, eT)
        task = F.mse_loss(eS, eps)
        kd, parts = self.kd_term(eS, eT)
        total = task + self.lam_out * kd
        parts["task"] = task
        if self.uses_features:
            if not fS or not fT or len(fS) != len(fT):
                raise ValueError(
                    "bksdm needs the block outputs fS and fT of equal count (the same blocks)"
                )
            hS = self.adapters(fS) if self.adapters is not None else fS
            feat = sum(F.mse_loss(s, t.detach()) for s, t in zip(hS, fT, strict=True))
            total = total + self.lam_feat * feat
            parts["feat"] = feat
        return self.output(total, parts)


def recipe_label(kd: str, group_size: int | None, base: str) -> str:
    """``TinyFusion KD`` or ``TinyFusion KD + LIFT+PLACE (K=16)``: what a table prints."""
    if kd == "outkd":
        return base
    return f"{base}, LIFT+PLACE (K={group_size})" if kd == "lift+place" else f"{base}, LIFT"
