"""Students: the teacher pruned at a ratio with a criterion, made once and kept in the run folder.

``get_student(profile, run_dir, teacher, ratio, criterion)`` prunes on the profile's fixed batch
(the first ``pruning.batch_size`` training images, one noise draw) and saves the student with
``liftkd.checkpoints``; later calls, in any notebook, load it instead of pruning again.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from liftkd.checkpoints import load_model, save_model
from liftkd.config import Profile
from liftkd.data import load_splits, to_model_range
from liftkd.models import noise_scheduler
from liftkd.pruning import prune

STUDENTS_DIR = "students"


def student_path(run_dir: str | Path, ratio: float, criterion: str) -> Path:
    return Path(run_dir) / STUDENTS_DIR / f"{criterion}_{ratio:.2f}.pt"


def get_student(
    profile: Profile,
    run_dir: str | Path,
    teacher: torch.nn.Module,
    ratio: float,
    criterion: str | None = None,
    progress: bool = True,
) -> tuple[torch.nn.Module, dict]:
    """(student before fine-tuning, its pruning report as a dict)."""
    criterion = criterion or profile.pruning.criterion
    path = student_path(run_dir, ratio, criterion)
    report_path = path.with_suffix(".json")
    if path.exists() and report_path.exists():
        return load_model(path), json.loads(report_path.read_text())
    cfg = profile.pruning
    train, _ = load_splits(profile.data)
    batch = train.random_subset(cfg.batch_size, seed=cfg.seed)  # the one fixed batch, all classes
    images = to_model_range(batch.images)
    labels = batch.labels
    student, report = prune(
        teacher,
        ratio,
        criterion,
        images=images,
        scheduler=noise_scheduler(profile.diffusion),
        labels=labels if not hasattr(teacher, "conv_in") else None,
        threshold=cfg.threshold,
        timestep_stride=cfg.timestep_stride,
        seed=cfg.seed,
        progress=progress,
    )
    save_model(student, path)
    report_dict = report.to_dict()
    report_path.write_text(json.dumps(report_dict, indent=1) + "\n")
    return student, report_dict


def report_row(report: dict) -> dict:
    """One table row of a pruning report: sizes, shares of the teacher, achieved layer ratios."""
    achieved = [
        layer["achieved_ratio"] for layer in report["layers"] if layer["before"] != layer["after"]
    ]
    return {
        "criterion": report["criterion"],
        "ratio": report["ratio"],
        "params": report["params_after"],
        "params_share": report["param_ratio"],
        "macs": report["macs_after"],
        "macs_share": report["macs_ratio"],
        "layers_cut": len(achieved),
        "layers_total": len(report["layers"]),
        "achieved_min": min(achieved) if achieved else 0.0,
        "achieved_max": max(achieved) if achieved else 0.0,
    }
