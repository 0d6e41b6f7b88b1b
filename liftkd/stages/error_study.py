"""Notebook 03's experiments: the probe's decomposition of the KD error on the run's students.

Each function takes the run's teacher and a fixed set of held-out images (floats in [-1, 1]),
noised the same way for every student (``liftkd.measure.analysis``), so that numbers across ratios,
timesteps and training steps are paired:

- ``after_pruning``: the decomposition of each pruned student, before any training;
- ``during_outkd``: each student fine-tuned with OutKD for a few hundred steps, its weights kept
  at every checkpoint, and decomposed at each;
- ``where_the_error_is``: the error per pixel across timesteps and across OutKD steps;
- ``probe_corrected_sampling``: plain against probe-corrected sampling (the teacher asked at every
  step, an oracle) and against its teacher-free control (one affine fit per channel and sampling
  timestep, made once on held-out images), before and after OutKD.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import load_splits
from liftkd.measure import analysis
from liftkd.measure.evaluation import floor, sample, score
from liftkd.method.objectives import build_objective
from liftkd.stages.students import get_student
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.distill import distill, load_snapshot
from liftkd.training.sampling import ddim_timesteps
from liftkd.training.train_state import list_snapshots, snapshot_path

ANALYSIS_DIR = "analysis"
OFFLINE = "offline affine (no teacher)"  # the teacher-free control's sampler name


def outkd_dir(run_dir: str | Path, ratio: float) -> Path:
    return Path(run_dir) / ANALYSIS_DIR / f"outkd_{ratio:.2f}"


def after_pruning(profile: Profile, run_dir, teacher, images) -> dict[float, list[dict]]:
    """``{ratio: one row per timestep}`` for the pruned students before training."""
    cfg = profile.analysis
    scheduler = noise_scheduler(profile.diffusion)
    out = {}
    for ratio in cfg.ratios:
        student, _ = get_student(profile, run_dir, teacher, ratio)
        out[ratio] = analysis.decomposition_over_timesteps(
            student, teacher, images, scheduler, cfg.timesteps, cfg.seed
        )
    return out


def during_outkd(profile: Profile, run_dir, teacher, images):
    """Train (or resume) each ratio's OutKD student, keeping its weights at every checkpoint;
    returns (``{ratio: {step: rows per timestep}}``, ``{ratio: training history}``)."""
    cfg = profile.analysis
    scheduler = noise_scheduler(profile.diffusion)
    train, _ = load_splits(profile.data)
    during, histories = {}, {}
    for ratio in cfg.ratios:
        student, _ = get_student(profile, run_dir, teacher, ratio)
        run = outkd_dir(run_dir, ratio)
        result = distill(
            copy.deepcopy(student),
            teacher,
            build_objective("outkd"),
            train.images,
            cfg.kd,
            scheduler,
            run,
            desc=f"OutKD {ratio:.0%}",
            snapshots="model",
        )
        histories[ratio] = result.history
        during[ratio] = {
            step: analysis.decomposition_over_timesteps(
                load_snapshot(copy.deepcopy(student), path),
                teacher,
                images,
                scheduler,
                cfg.timesteps,
                cfg.seed,
            )
            for step, path in list_snapshots(run).items()
        }
    return during, histories


def where_the_error_is(profile: Profile, run_dir, teacher, images) -> dict:
    """Error maps of the most pruned student across timesteps (before training) and across its
    OutKD snapshots (at the middle timestep), with the share of the error held by the top 10%
    of pixels of each map. ``during_outkd`` must have run."""
    cfg = profile.analysis
    scheduler = noise_scheduler(profile.diffusion)
    worst = max(cfg.ratios)
    student, _ = get_student(profile, run_dir, teacher, worst)
    t_mid = cfg.timesteps[len(cfg.timesteps) // 2]
    by_t = analysis.error_maps(student, teacher, images, scheduler, cfg.timesteps, cfg.seed)
    by_step = {
        step: analysis.error_maps(
            load_snapshot(copy.deepcopy(student), path),
            teacher,
            images,
            scheduler,
            [t_mid],
            cfg.seed,
        )[t_mid]
        for step, path in list_snapshots(outkd_dir(run_dir, worst)).items()
    }
    return {
        "ratio": worst,
        "t_mid": t_mid,
        "by_timestep": by_t,
        "by_step": by_step,
        "concentration_top10pct": {
            "timesteps": {t: analysis.concentration(m) for t, m in by_t.items()},
            "iterations": {k: analysis.concentration(m) for k, m in by_step.items()},
        },
    }


def probe_corrected_sampling(
    profile: Profile, run_dir, teacher, teacher_samples: torch.Tensor, images: torch.Tensor
) -> tuple[list[dict], torch.Tensor]:
    """Plain, probe-corrected and offline-corrected sampling of each ratio's student before and
    after OutKD, from the same noise, scored beside the floor and the teacher on as many images;
    the offline coefficients are fitted on ``images`` (held-out, in [-1, 1]) at the sampler's
    timesteps.

    Returns (rows, a grid: the teacher's samples, then per student plain, corrected and offline)."""
    cfg = profile.analysis
    n = len(teacher_samples)
    scheduler = noise_scheduler(profile.diffusion)
    timesteps = ddim_timesteps(scheduler, profile.sampling.num_inference_steps)
    rows = [
        {"model": "floor (held-out real)", **floor(profile, run_dir, n=n)},
        {"model": "teacher", **score(profile, run_dir, teacher_samples)},
    ]
    grid = [teacher_samples[:10]]
    for ratio in cfg.corrected_ratios:
        student, _ = get_student(profile, run_dir, teacher, ratio)
        tuned = load_snapshot(
            copy.deepcopy(student), snapshot_path(outkd_dir(run_dir, ratio), cfg.kd.steps)
        )
        for label, model in (("pruned", student), (f"OutKD {cfg.kd.steps} steps", tuned)):
            plain = sample(model, profile, n=n)
            fixed = sample(analysis.probe_corrected(model.eval(), teacher), profile, n=n)
            coefs = analysis.offline_coefficients(model, teacher, images, scheduler, timesteps)
            offline = sample(analysis.offline_corrected(model.eval(), coefs), profile, n=n)
            samplers = (("plain", plain), ("probe-corrected", fixed), (OFFLINE, offline))
            for sampler, drawn in samplers:
                rows.append(
                    {
                        "model": f"{ratio:.0%} {label}",
                        "sampler": sampler,
                        **score(profile, run_dir, drawn),
                    }
                )
            grid += [plain[:10], fixed[:10], offline[:10]]
    return rows, torch.cat(grid)


def flat_rows(rows_by_ratio: dict[float, list[dict]]) -> list[dict]:
    """``after_pruning``'s result as one table row per (ratio, timestep)."""
    return [{"ratio": r, **row} for r, rows in rows_by_ratio.items() for row in rows]


def during_rows(during: dict[float, dict[int, list[dict]]]) -> list[dict]:
    """``during_outkd``'s result as one row per (ratio, step): means over the timesteps."""
    return [
        {
            "ratio": ratio,
            "step": step,
            "coarse_share": sum(r["coarse_share"] for r in rows) / len(rows),
            "kd_error": sum(r["total"] for r in rows) / len(rows),
        }
        for ratio, by_step in during.items()
        for step, rows in by_step.items()
    ]


def at_last_step(during: dict[float, dict[int, list[dict]]]) -> dict[float, list[dict]]:
    """``{ratio: rows per timestep}`` at each OutKD run's last snapshot."""
    return {ratio: by_step[max(by_step)] for ratio, by_step in during.items()}


def final_losses(histories: dict[float, list[dict]]) -> dict[float, dict]:
    """The last logged step of each OutKD run."""
    return {ratio: history[-1] for ratio, history in histories.items()}
