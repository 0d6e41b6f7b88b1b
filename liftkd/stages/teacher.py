"""The teacher of a profile: trained here with the denoising loss, or loaded pretrained.

``get_teacher(profile, run_dir)`` returns the EMA teacher; it trains (or resumes training) in
``run_dir/teacher`` and saves the result there with ``save_pretrained``, or loads
``profile.pretrained_teacher`` when one is named. From the shell::

    python -m liftkd.stages.teacher --profile smoke --run-dir runs/smoke --overrides '{teacher.steps: 100}'
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet2DModel

from liftkd.config import Profile, SettingsError, resolve_profile
from liftkd.data import load_splits
from liftkd.method.losses import task_loss
from liftkd.models.presets import build_unet, load_unet
from liftkd.runs import load_torch, remember, save_torch
from liftkd.training.diffusion import forward_noise, noise_scheduler
from liftkd.training.train import TrainResult, train

TEACHER_DIR = "teacher"
MODEL_DIR = "model"  # save_pretrained output inside the teacher folder
SAMPLES_FILE = "teacher_samples.pt"  # notebook 01's samples, scored again at other counts later


def denoising_loss(scheduler: DDPMScheduler, antithetic: bool = False):
    """``L_task`` (mean over elements, the usual DDPM loss), t uniform (``liftkd.training.diffusion``)."""

    def loss_fn(model, x0: torch.Tensor, g: torch.Generator, progress: float, part=slice(None)):
        x_t, t, noise = forward_noise(scheduler, x0, g, antithetic=antithetic)  # global batch
        pred = model(x_t[part], t[part]).sample
        return task_loss(pred, noise[part], reduction="mean"), {}

    return loss_fn


def train_teacher(profile: Profile, run_dir: str | Path, progress: bool = True) -> TrainResult:
    """Train (or resume) the profile's teacher in ``run_dir/teacher``."""
    train_set, _ = load_splits(profile.data)
    torch.manual_seed(profile.teacher.seed)
    model = build_unet(profile.unet, profile.data.resolution, profile.data.channels)
    loss_fn = denoising_loss(noise_scheduler(profile.diffusion), profile.teacher.antithetic)
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
    """(EMA teacher in eval mode, its training result or None when loaded pretrained).

    Refuses a run folder whose teacher was made with other data, model or training settings."""
    remember(run_dir, "teacher", profile)
    if profile.pretrained_teacher is not None:
        return load_unet(profile.pretrained_teacher, profile.data.channels).eval(), None
    result = train_teacher(profile, run_dir, progress)
    out = Path(run_dir) / TEACHER_DIR / MODEL_DIR
    if result.steps_run > 0 or not (out / "config.json").exists():
        result.ema.save_pretrained(out)
    return result.ema.eval(), result


def training_summary(result: TrainResult | None) -> dict:
    """Steps, time and the final loss of a teacher's training (all None for a pretrained one)."""
    if result is None:
        return {"train_steps": None, "final_loss_mean_last_100": None, "train_seconds": None}
    last = [row["loss"] for row in result.history[-100:]]
    return {
        "train_steps": len(result.history),
        "steps_run_now": result.steps_run,
        "resumed_from": result.resumed_from,
        "final_loss_mean_last_100": sum(last) / len(last) if last else None,
        "train_seconds": result.seconds,
    }


def save_samples(samples: torch.Tensor, run_dir: str | Path) -> Path:
    return save_torch(samples, Path(run_dir) / SAMPLES_FILE)


def load_samples(
    run_dir: str | Path, n: int | None = None, missing_ok: bool = False
) -> torch.Tensor | None:
    """The first ``n`` of the teacher's samples saved by notebook 01 (uint8); None when the run
    folder does not hold them and ``missing_ok`` (notebook 05 drawn from committed results)."""
    path = Path(run_dir) / SAMPLES_FILE
    if not path.exists():
        if missing_ok:
            return None
        raise FileNotFoundError(f"{path} is missing: run notebook 01 (the teacher) first")
    return load_torch(path, "the teacher's samples", "run notebook 01 again")[:n]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m liftkd.stages.teacher",
        description="Train (or resume) the teacher of a profile in a run folder, or load the "
        "pretrained one it names; the same settings as make's PROFILE and OVERRIDES.",
    )
    p.add_argument("--profile", default="cpu", help="smoke | cpu | gpu (default: cpu)")
    p.add_argument("--run-dir", required=True, help="run folder; training resumes from it")
    p.add_argument(
        "--overrides",
        default="{}",
        help="settings by dotted name, a YAML mapping, e.g. '{data.name: folder, data.path: imgs}'",
    )
    p.add_argument("--steps", type=int, default=None, help="teacher.steps (a shortcut)")
    p.add_argument("--checkpoint-every", type=int, default=None, help="teacher.checkpoint_every")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        profile = resolve_profile(
            args.profile,
            args.overrides,
            **{"teacher.steps": args.steps, "teacher.checkpoint_every": args.checkpoint_every},
        )
        _, result = get_teacher(profile, args.run_dir, progress=not args.no_progress)
    except SettingsError as err:
        raise SystemExit(f"error: {err}") from None
    if result is not None:
        last = result.history[-1]["loss"] if result.history else float("nan")
        print(
            f"teacher done: {len(result.history)} steps, {result.steps_run} run now, "
            f"resumed from {result.resumed_from}, last loss {last:.4f}"
        )


if __name__ == "__main__":
    main()
