"""The computations behind the teaching notebook on the moment decomposition.

Small, exact and fast: a toy "student" made from a "teacher" by a shift, a scale and noise, so
that a reader knows the answer before the probe gives it; the numbers that show why coarse plus
fine is exactly the whole error; and what LIFT and PLACE do with the two coefficients.
"""

from __future__ import annotations

import torch

from liftkd.method.lift import lift_terms
from liftkd.method.probe import decompose, ols_fit


def toy_pair(
    shift: float, scale: float, noise: float, shape=(1, 1, 8, 8), seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(eS, eT): a teacher output ``eT`` ~ N(0, 1) and a student ``eS = scale * eT + shift +
    noise * z``, z ~ N(0, 1) drawn independently; float64, so that the identities are exact to
    rounding."""
    g = torch.Generator().manual_seed(seed)
    eT = torch.randn(shape, generator=g, dtype=torch.float64)
    z = torch.randn(shape, generator=g, dtype=torch.float64)
    return scale * eT + shift + noise * z, eT


def explain_fit(eS: torch.Tensor, eT: torch.Tensor) -> dict:
    """Everything about the first (sample, channel) fit of ``eS`` against ``eT``: the two
    coefficients, the two parts of the error and their sum, the orthogonality that makes the sum
    exact, and the per-element moment formulas of each part."""
    x, y = eS[0, 0].flatten().double(), eT[0, 0].flatten().double()
    beta0, beta1 = (v.item() for v in ols_fit(x, y))
    fit = beta0 + beta1 * x
    residual = y - fit
    d = decompose(eS[:1, :1], eT[:1, :1])
    n = x.numel()
    rho = torch.corrcoef(torch.stack([x, y]))[0, 1].item()
    return {
        "beta0": beta0,
        "beta1": beta1,
        "total": d.total.item(),
        "coarse": d.coarse.item(),
        "fine": d.fine.item(),
        "coarse + fine - total": (d.coarse + d.fine - d.total).item(),
        "coarse share": (d.coarse / d.total).item(),
        # the residual is orthogonal to the constant and to x: why the parts add up exactly
        "residual . 1": residual.sum().item(),
        "residual . x": (residual * x).sum().item(),
        # per element: coarse = (mean y - mean x)^2 + (beta1 - 1)^2 Var x, fine = Var y (1 - rho^2)
        "coarse per pixel, from moments": (
            (y.mean() - x.mean()) ** 2 + (beta1 - 1) ** 2 * x.var(correction=0)
        ).item(),
        "coarse per pixel": d.coarse.item() / n,
        "fine per pixel, from moments": (y.var(correction=0) * (1 - rho**2)).item(),
        "fine per pixel": d.fine.item() / n,
    }


def noise_sweep(shift: float, scale: float, noises: list[float], seed: int = 0) -> list[dict]:
    """The decomposition of toy students with more and more noise: what is left to the fine part."""
    rows = []
    for noise in noises:
        facts = explain_fit(*toy_pair(shift, scale, noise, seed=seed))
        keep = ("beta0", "beta1", "coarse", "fine", "coarse share")
        rows.append({"noise": noise, **{k: facts[k] for k in keep}})
    return rows


def place_groups(eS: torch.Tensor, eT: torch.Tensor, group_sizes: list[int | None]) -> list[dict]:
    """The probe fitted per group of K difficulty-ranked elements (PLACE), for each K (None: one
    fit per channel, LIFT): how much of the error the coefficients then explain, and LIFT's
    adaptive weight w computed from them."""
    rows = []
    for K in group_sizes:
        d = decompose(eS, eT, group_size=K)
        _, _, w = lift_terms(eS, eT, group_size=K)
        rows.append(
            {
                "K": "N (LIFT)" if K is None else K,
                "fits per channel": d.beta0.shape[-1],
                "coarse share": d.coarse_share.item(),
                "mean abs(beta1 - 1) + mean abs(beta0)": (
                    (d.beta1 - 1).abs().mean() + d.beta0.abs().mean()
                ).item(),
                "w": w.item(),
            }
        )
    return rows


def lift_descent(
    eS: torch.Tensor, eT: torch.Tensor, steps: int = 60, lr: float = 0.05, group_size=None
) -> list[dict]:
    """Gradient descent on the student's output itself under L_LIFT = L_coarse + w * L_fine (no
    task term): which part of the error goes first. One row per step."""
    x = eS.detach().clone().requires_grad_()
    rows = []
    for step in range(steps + 1):
        L_coarse, L_fine, w = lift_terms(x, eT, group_size=group_size)
        d = decompose(x.detach(), eT)
        rows.append(
            {
                "step": step,
                "coarse": d.coarse.sum().item(),
                "fine": d.fine.sum().item(),
                "w": w.item(),
                "beta0": d.beta0.mean().item(),
                "beta1": d.beta1.mean().item(),
            }
        )
        if step == steps:
            break
        loss = L_coarse + w * L_fine
        (grad,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= lr * grad
    return rows
