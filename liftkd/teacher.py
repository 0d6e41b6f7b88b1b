"""The teacher of a profile: trained here with the denoising loss, or loaded pretrained.

``get_teacher(profile, run_dir)`` returns the EMA teacher; it trains (or resumes training) in
``run_dir/teacher`` and saves the result there with ``save_pretrained``, or loads
``profile.pretrained_teacher`` when one is named. From the shell::

    python -m liftkd.teacher --profile smoke --run-dir runs/smoke
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from liftkd.config import Profile, get_profile
from liftkd.data import load_splits
from liftkd.models import build_unet, load_unet, noise_scheduler
from liftkd.train import TrainResult, train

TEACHER_DIR = "teacher"
MODEL_DIR = "model"  # save_pretrained output inside the teacher folder


def denoising_loss(scheduler: DDPMScheduler):
    """``L_task = ||eps - eps_theta(x_t, t)||^2`` (mean over elements), t uniform."""
    T = scheduler.config.num_train_timesteps

    def loss_fn(model: torch.nn.Module, x0: torch.Tensor, g: torch.Generator, progress: float):
        noise = torch.randn(x0.shape, generator=g).to(x0.device)
        t = torch.randint(0, T, (x0.shape[0],), generator=g).to(x0.device)
        x_t = scheduler.add_noise(x0, noise, t)
        loss = F.mse_loss(model(x_t, t).sample, noise)
        return loss, {}

    return loss_fn


def train_teacher(profile: Profile, run_dir: str | Path, progress: bool = True) -> TrainResult:
    """Train (or resume) the profile's teacher in ``run_dir/teacher``."""
    train_set, _ = load_splits(profile.data)
    torch.manual_seed(profile.teacher.seed)
    model = build_unet(profile.unet, profile.data.resolution, profile.data.channels)
    loss_fn = denoising_loss(noise_scheduler(profile.diffusion))
    return train(
        model,
        loss_fn,
        train_set.images,
        profile.teacher,
        Path(run_dir) / TEACHER_DIR,
        "teacher",
        progress,
    )


def get_teacher(
    profile: Profile, run_dir: str | Path, progress: bool = True
) -> tuple[UNet2DModel, TrainResult | None]:
    """(EMA teacher in eval mode, its training result or None when loaded pretrained)."""
    if profile.pretrained_teacher is not None:
        return load_unet(profile.pretrained_teacher).eval(), None
    result = train_teacher(profile, run_dir, progress)
    out = Path(run_dir) / TEACHER_DIR / MODEL_DIR
    if result.steps_run > 0 or not (out / "config.json").exists():
        result.ema.save_pretrained(out)
    return result.ema.eval(), result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train (or resume) the teacher of a profile.")
    p.add_argument("--profile", default="cpu", choices=["smoke", "cpu", "gpu"])
    p.add_argument("--run-dir", required=True, help="run folder; training resumes from it")
    p.add_argument("--steps", type=int, default=None, help="override the profile's step count")
    p.add_argument("--checkpoint-every", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    profile = get_profile(
        args.profile,
        **{"teacher.steps": args.steps, "teacher.checkpoint_every": args.checkpoint_every},
    )
    _, result = get_teacher(profile, args.run_dir, progress=not args.no_progress)
    if result is not None:
        last = result.history[-1]["loss"] if result.history else float("nan")
        print(
            f"teacher done: {len(result.history)} steps, {result.steps_run} run now, "
            f"resumed from {result.resumed_from}, last loss {last:.4f}"
        )


if __name__ == "__main__":
    main()
