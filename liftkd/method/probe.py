"""The linear probe and the coarse/fine split of the distillation error (the paper's analysis).

For one fit, ``x`` = the student's prediction eS and ``y`` = the teacher's eT over its N elements.
Ordinary least squares of the teacher on the student, with intercept and population moments:

    beta1 = Cov(x, y) / (Var(x) + eps)        beta0 = mean(y) - beta1 * mean(x)

With ``eps = 0`` the KD error e = y - x splits exactly, because the residual of a least-squares
fit with intercept is orthogonal to 1 and to x:

    ||e||^2 = ||(beta1 - 1) x + beta0||^2 + ||y - (beta0 + beta1 x)||^2
               coarse (two coefficients)     fine (the residual)

A fit is one (sample, channel) (LIFT), or one group of ``group_size`` elements of a (sample,
channel) after ranking them by difficulty d = (eT - eS)^2 (PLACE). Everything here works on any
``(B, C, H, W)`` tensors: U-Net outputs, unpatchified DiT outputs, latents.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

REMAINDER_MODES = ("error", "merge")


def ols_fit(
    x: torch.Tensor, y: torch.Tensor, eps: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(beta0, beta1) of y ~ beta0 + beta1 * x over the last dimension.

    A constant x (zero variance) gets beta1 = 0 and beta0 = mean(y), the minimum-norm solution,
    instead of 0/0, whatever ``eps``.
    """
    mx, my = x.mean(-1, keepdim=True), y.mean(-1, keepdim=True)
    dx = x - mx
    var_x = (dx * dx).mean(-1)
    cov = (dx * (y - my)).mean(-1)
    flat = var_x <= 0
    beta1 = torch.where(
        flat, torch.zeros_like(cov), cov / torch.where(flat, torch.ones_like(var_x), var_x + eps)
    )
    beta0 = my.squeeze(-1) - beta1 * mx.squeeze(-1)
    return beta0, beta1


def difficulty_order(eS: torch.Tensor, eT: torch.Tensor) -> torch.Tensor:
    """Indices that sort the N elements of every (b, c) by (eT - eS)^2, ascending (no gradient)."""
    with torch.no_grad():
        d = (eT - eS).flatten(2).square()
        return d.argsort(dim=-1)


def grouped(
    eS: torch.Tensor,
    eT: torch.Tensor,
    group_size: int | None = None,
    remainder: str = "error",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The fits of a batch as ``[(x, y), ...]`` chunks, each ``(B, C, G, n)``.

    ``group_size=None``: one fit per (b, c), a single chunk with G = 1 and n = N. Otherwise the
    elements are ranked by difficulty and cut into groups of ``group_size``. When N is not a
    multiple of the group size, ``remainder="error"`` raises (the authors' behaviour) and
    ``remainder="merge"`` folds the N % K hardest elements into the last group, returned as a
    second chunk of one group of K + N % K elements.
    """
    if eS.shape != eT.shape or eS.ndim < 3:
        raise ValueError(
            f"student and teacher outputs must have the same (B, C, ...) shape, got {tuple(eS.shape)} "
            f"and {tuple(eT.shape)}"
        )
    B, C = eS.shape[:2]
    x, y = eS.reshape(B, C, -1), eT.reshape(B, C, -1)
    N = x.shape[-1]
    if group_size is None:
        return [(x.unsqueeze(2), y.unsqueeze(2))]
    if remainder not in REMAINDER_MODES:
        raise ValueError(f"remainder must be one of {REMAINDER_MODES}, got {remainder!r}")
    if isinstance(group_size, bool) or int(group_size) != group_size:
        raise ValueError(f"group size K must be a whole number, got {group_size!r}")
    K = int(group_size)
    if K < 2 or K > N:
        raise ValueError(
            f"group size K must be in [2, N]; got K = {K} for N = {N} elements per channel"
        )
    r = N % K
    if r and remainder == "error":
        raise ValueError(
            f"N = {N} elements per channel is not a multiple of the group size K = {K} "
            f"(remainder {r}); choose K dividing N, or remainder='merge'"
        )
    order = difficulty_order(eS, eT)
    xs, ys = x.gather(-1, order), y.gather(-1, order)
    n_full = N // K - (1 if r else 0)
    chunks = []
    if n_full:
        cut = n_full * K
        chunks.append(
            (xs[..., :cut].reshape(B, C, n_full, K), ys[..., :cut].reshape(B, C, n_full, K))
        )
    if r:
        chunks.append((xs[..., n_full * K :].unsqueeze(2), ys[..., n_full * K :].unsqueeze(2)))
    return chunks


@dataclass
class Decomposition:
    """Per fit, shapes (B, C, G): coefficients and the two parts of the squared KD error (sums)."""

    beta0: torch.Tensor
    beta1: torch.Tensor
    coarse: torch.Tensor  # ||(beta1 - 1) x + beta0||^2
    fine: torch.Tensor  # ||y - (beta0 + beta1 x)||^2
    total: torch.Tensor  # ||y - x||^2
    n: torch.Tensor  # elements per fit

    @property
    def coarse_share(self) -> torch.Tensor:
        """Coarse part over the whole error, summed over every fit (a scalar)."""
        return self.coarse.sum() / self.total.sum().clamp_min(torch.finfo(self.total.dtype).tiny)


@torch.no_grad()
def decompose(
    eS: torch.Tensor,
    eT: torch.Tensor,
    group_size: int | None = None,
    eps: float = 0.0,
    remainder: str = "error",
) -> Decomposition:
    """Fit the probe and split ``||eT - eS||^2`` into coarse and fine parts, per fit.

    With ``eps = 0`` (the default here), coarse + fine = total up to rounding.
    """
    parts = {k: [] for k in ("beta0", "beta1", "coarse", "fine", "total", "n")}
    for x, y in grouped(eS.double(), eT.double(), group_size, remainder):
        b0, b1 = ols_fit(x, y, eps)
        fit = b0.unsqueeze(-1) + b1.unsqueeze(-1) * x
        parts["beta0"].append(b0)
        parts["beta1"].append(b1)
        parts["coarse"].append((fit - x).square().sum(-1))
        parts["fine"].append((y - fit).square().sum(-1))
        parts["total"].append((y - x).square().sum(-1))
        parts["n"].append(torch.full_like(b0, x.shape[-1]))
    out = {k: torch.cat(v, dim=2).to(eS.dtype) for k, v in parts.items()}
    return Decomposition(**out)


@torch.no_grad()
def corrected(eS: torch.Tensor, eT: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """The probe-corrected student ``beta0 + beta1 * eS`` fitted per (b, c) against the teacher."""
    B, C = eS.shape[:2]
    x, y = eS.reshape(B, C, -1), eT.reshape(B, C, -1)
    b0, b1 = ols_fit(x, y, eps)
    return (b0.unsqueeze(-1) + b1.unsqueeze(-1) * x).reshape(eS.shape)


@torch.no_grad()
def error_map(eS: torch.Tensor, eT: torch.Tensor) -> torch.Tensor:
    """Squared KD error per pixel, summed over channels, averaged over the batch: (H, W)."""
    return (eT - eS).square().sum(1).mean(0)
