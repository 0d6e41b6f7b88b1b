"""The DDPM forward process, said once: the noise scheduler and the noising of clean images.

Every part of the project that noises images (teacher training, KD, the pruning criterion's
gradients, the error analysis, the benchmarks) calls ``forward_noise``, and scores the noise
prediction with ``liftkd.method.losses.task_loss``. The draw order is fixed (noise first, then
timesteps, both from the caller's generator), so that a seed means the same batch everywhere.
"""

from __future__ import annotations

import torch
from diffusers import DDPMScheduler

from liftkd.config import DiffusionConfig


def noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The DDPM schedule of a profile (what its teacher was trained with)."""
    return DDPMScheduler(
        num_train_timesteps=cfg.num_train_timesteps,
        beta_schedule=cfg.beta_schedule,
        beta_start=cfg.beta_start,
        beta_end=cfg.beta_end,
    )


def forward_noise(
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    t: torch.Tensor | int | None = None,
    noise: torch.Tensor | None = None,
    antithetic: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_t, t, noise)``: clean images ``x0`` (floats in [-1, 1]) noised to timesteps ``t``.

    ``noise`` and ``t`` are drawn from ``generator`` when not given (noise first, then t uniform
    over the scheduler's training timesteps); an int ``t`` is used for every image. With
    ``antithetic`` the first half of the batch draws t and the second half takes T-1-t (the
    authors' DDPM training; an odd batch drops the last pair's partner).
    """
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    if t is None:
        T, B = scheduler.config.num_train_timesteps, x0.shape[0]
        if antithetic:
            half = torch.randint(0, T, ((B + 1) // 2,), generator=generator)
            t = torch.cat([half, T - 1 - half])[:B].to(x0.device)
        else:
            t = torch.randint(0, T, (B,), generator=generator).to(x0.device)
    elif isinstance(t, int):
        t = torch.full((x0.shape[0],), t, dtype=torch.long, device=x0.device)
    return scheduler.add_noise(x0, noise, t), t, noise
