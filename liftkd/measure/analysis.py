"""The error-decomposition analysis (notebook 03): where the KD error is, and how much is coarse.

Every function takes a student, the teacher, a fixed set of clean images (floats in [-1, 1]) and
noises them the same way (one noise draw per ``seed``), so that numbers across students,
timesteps and training iterations are paired.
"""

from __future__ import annotations

import math

import torch
from diffusers import DDPMScheduler

from liftkd.method.probe import corrected, decompose, error_map, ols_fit
from liftkd.training.diffusion import forward_noise
from liftkd.training.sampling import EpsFn


@torch.no_grad()
def predictions(student, teacher, images, scheduler, t_val: int, seed: int, batch: int = 128):
    """(eS, eT) on ``images`` noised to ``t_val`` with the noise of ``seed``, both in eval mode."""
    student.eval()
    teacher.eval()
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=g)
    eS, eT = [], []
    for i in range(0, len(images), batch):
        x0, n = images[i : i + batch], noise[i : i + batch]
        x_t, t, _ = forward_noise(scheduler, x0, t=t_val, noise=n)
        eS.append(student(x_t, t).sample)
        eT.append(teacher(x_t, t).sample)
    return torch.cat(eS), torch.cat(eT)


@torch.no_grad()
def decomposition_over_timesteps(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    images: torch.Tensor,
    scheduler: DDPMScheduler,
    timesteps: list[int],
    seed: int = 0,
    group_size: int | None = None,
) -> list[dict]:
    """One row per timestep: the KD error per image, its coarse and fine parts, the coefficients."""
    rows = []
    for t_val in timesteps:
        eS, eT = predictions(student, teacher, images, scheduler, t_val, seed)
        d = decompose(eS, eT, group_size=group_size, eps=0.0)
        B = eS.shape[0]
        rows.append(
            {
                "t": int(t_val),
                "total": float(d.total.sum() / B),
                "coarse": float(d.coarse.sum() / B),
                "fine": float(d.fine.sum() / B),
                "coarse_share": float(d.coarse_share),
                "mean_abs_beta1_minus_1": float((d.beta1 - 1).abs().mean()),
                "mean_abs_beta0": float(d.beta0.abs().mean()),
            }
        )
    return rows


@torch.no_grad()
def error_maps(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    images: torch.Tensor,
    scheduler: DDPMScheduler,
    timesteps: list[int],
    seed: int = 0,
) -> dict[int, torch.Tensor]:
    """Mean squared KD error per pixel, (H, W), at each timestep."""
    return {
        int(t): error_map(*predictions(student, teacher, images, scheduler, t, seed))
        for t in timesteps
    }


def probe_corrected(student: torch.nn.Module, teacher: torch.nn.Module) -> EpsFn:
    """``eps_fn`` that replaces eS by ``beta0 + beta1 * eS``, fitted against the teacher per
    (sample, channel) at every call: the paper's probe-corrected sampling. It needs the teacher at
    every step, so it is an analysis device, not a way to make a student cheaper."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return corrected(student(x, t).sample, teacher(x, t).sample)

    return eps_fn


@torch.no_grad()
def offline_coefficients(
    student: torch.nn.Module,
    teacher: torch.nn.Module,
    images: torch.Tensor,
    scheduler: DDPMScheduler,
    timesteps,
    seed: int = 0,
) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """``{t: (beta0, beta1)}``, one pair per channel of ``eT ~ beta0 + beta1 * eS`` at each
    timestep, pooled over ``images`` and their pixels: fitted once, offline, on held-out images,
    the teacher-free control of probe-corrected sampling."""
    out = {}
    for t_val in timesteps:
        eS, eT = predictions(student, teacher, images, scheduler, int(t_val), seed)
        C = eS.shape[1]
        x, y = eS.transpose(0, 1).reshape(C, -1), eT.transpose(0, 1).reshape(C, -1)
        out[int(t_val)] = ols_fit(x, y)
    return out


def offline_corrected(
    student: torch.nn.Module, coefficients: dict[int, tuple[torch.Tensor, torch.Tensor]]
) -> EpsFn:
    """``eps_fn`` that replaces eS by ``beta0(t) + beta1(t) * eS`` with ``offline_coefficients``
    (no teacher at sampling time: a student could ship with them)."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        step = int(t.flatten()[0])
        if step not in coefficients:
            raise KeyError(
                f"no offline coefficients for timestep {step}: fit them at the sampler's "
                f"timesteps (have {sorted(coefficients)[:5]}...)"
            )
        b0, b1 = coefficients[step]
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return b0.view(shape) + b1.view(shape) * student(x, t).sample

    return eps_fn


def concentration(emap: torch.Tensor, share: float = 0.1) -> float:
    """Fraction of the total error held by the ``share`` of pixels with the largest error."""
    flat = emap.flatten().sort(descending=True).values
    k = max(1, int(round(share * flat.numel())))
    return float(flat[:k].sum() / flat.sum().clamp_min(1e-30))


def coarse_shares(student, teacher, inputs, scheduler: DDPMScheduler, timesteps) -> dict:
    """The probe's coarse share of the KD error over ``timesteps`` together, each one's share
    (``coarse_share_t<t>``) and the mean KD error per timestep (``kd_error``): what a KD job
    records at each evaluation."""
    rows = decomposition_over_timesteps(student, teacher, inputs, scheduler, timesteps)
    out = {f"coarse_share_t{r['t']}": r["coarse_share"] for r in rows}
    total = sum(r["total"] for r in rows)
    out["coarse_share"] = sum(r["coarse"] for r in rows) / total if total > 0 else math.nan
    out["kd_error"] = total / len(rows)
    return out
