"""DDIM sampling with one seed per image.

Image ``i`` starts from noise drawn with its own generator seeded ``seed + i``; DDIM with
``eta = 0`` is deterministic afterwards, so a sample does not depend on the batch size or on how
many images are drawn beside it (EDM's convention).

The network is any ``eps_fn(x_t, t) -> eps`` callable, so that the probe-corrected sampler of the
analysis (``beta0 + beta1 * eS`` in place of ``eS``) uses the same loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers import DDIMScheduler, DDPMScheduler
from tqdm.auto import tqdm

from liftkd.data import to_uint8

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unet_eps(model: torch.nn.Module) -> EpsFn:
    """Wrap a diffusers ``UNet2DModel`` as ``eps_fn(x_t, t)``."""

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model(x, t).sample

    return eps_fn


def initial_noise(n: int, shape: tuple[int, int, int], seed: int) -> torch.Tensor:
    """x_T for images ``seed .. seed + n - 1``, one generator per image."""
    return torch.stack(
        [torch.randn(shape, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)]
    )


def ddim_scheduler(
    train_scheduler: DDPMScheduler, num_inference_steps: int, clip_sample: bool = True
) -> DDIMScheduler:
    """The DDIM sampler of a training schedule. ``clip_sample`` clips each step's predicted x0 to
    [-1, 1] (diffusers' default, right for images); latents are not bounded and must not be."""
    sched = DDIMScheduler.from_config(train_scheduler.config, clip_sample=clip_sample)
    sched.set_timesteps(num_inference_steps)
    return sched


@torch.no_grad()
def ddim_timesteps(train_scheduler: DDPMScheduler, num_inference_steps: int) -> list[int]:
    """The timesteps ``ddim_sample`` visits, in its order."""
    return [int(t) for t in ddim_scheduler(train_scheduler, num_inference_steps).timesteps]


@torch.no_grad()  # a sample is never differentiated: no graph through the network's steps
def ddim_sample(
    eps_fn: EpsFn,
    train_scheduler: DDPMScheduler,
    n: int,
    shape: tuple[int, int, int],
    num_inference_steps: int = 50,
    eta: float = 0.0,
    seed: int = 0,
    batch_size: int = 250,
    device: torch.device | str = "cpu",
    progress: bool = True,
    as_uint8: bool = True,
    clamp: bool = True,
) -> torch.Tensor:
    """``n`` images of ``shape`` (C, H, W) by DDIM; uint8 by default, else floats in [-1, 1]
    (``clamp=False``: for latents, neither each step's predicted x0 nor the result is clipped)."""
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    if eta != 0.0:
        raise ValueError("per-image seeding covers eta = 0 (deterministic DDIM) only")
    out = []
    batches = range(0, n, batch_size)
    total = len(batches) * num_inference_steps
    bar = tqdm(total=total, desc="DDIM", disable=not progress, leave=False)
    for start in batches:
        b = min(batch_size, n - start)
        x = initial_noise(b, shape, seed + start).to(device)
        sched = ddim_scheduler(train_scheduler, num_inference_steps, clip_sample=clamp)
        for t in sched.timesteps:
            eps = eps_fn(x, t.expand(b).to(device))
            x = sched.step(eps, t, x, eta=eta).prev_sample
            bar.update()
        out.append((to_uint8(x) if as_uint8 else x.clamp(-1, 1) if clamp else x).cpu())
    bar.close()
    return torch.cat(out)
