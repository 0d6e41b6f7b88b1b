"""Students: the teacher pruned at a ratio with a criterion, made once and kept in the run folder;
and notebook 02's survey of them (sizes, layer widths, costs, quality before fine-tuning).

``get_student(profile, run_dir, teacher, ratio, criterion)`` prunes on the profile's fixed batch
(the first ``pruning.batch_size`` training images, one noise draw) and saves the student with
``liftkd.models.checkpoints``; later calls, in any notebook, load it instead of pruning again.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import load_splits, to_model_range
from liftkd.locks import locked, replacing
from liftkd.models.checkpoints import load_model, save_model
from liftkd.models.pruning import prune
from liftkd.runs import remember
from liftkd.training.diffusion import noise_scheduler

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
    remember(run_dir, "students", profile)
    criterion = criterion or profile.pruning.criterion
    path = student_path(run_dir, ratio, criterion)
    with locked(path):  # two jobs of make -j2 at one ratio: the second waits, then loads
        return _load_or_prune(profile, teacher, ratio, criterion, path, progress)


def _load_or_prune(profile, teacher, ratio, criterion, path, progress):
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
        rounding=cfg.rounding,
    )
    save_model(student, path)
    report_dict = report.to_dict()
    with replacing(report_path) as tmp:
        tmp.write_text(json.dumps(report_dict, indent=1) + "\n")
    return student, report_dict


def report_row(report: dict) -> dict:
    """One table row of a pruning report: sizes, shares of the teacher, achieved layer ratios."""
    achieved = [
        layer["achieved_ratio"] for layer in report["layers"] if layer["before"] != layer["after"]
    ]
    return {
        "criterion": report["criterion"],
        "ratio": report["ratio"],
        "applied_ratio": report.get("applied_ratio", report["ratio"]),
        "params": report["params_after"],
        "params_share": report["param_ratio"],
        "macs": report["macs_after"],
        "macs_share": report["macs_ratio"],
        "layers_cut": len(achieved),
        "layers_total": len(report["layers"]),
        "achieved_min": min(achieved) if achieved else 0.0,
        "achieved_max": max(achieved) if achieved else 0.0,
    }


def prune_all(profile: Profile, run_dir: str | Path, teacher: torch.nn.Module):
    """Notebook 02: every ratio with every criterion of the profile, pruned (or loaded).

    Returns (table rows, ``{(criterion, ratio): report}``)."""
    rows, reports = [], {}
    for criterion in profile.pruning.criteria:
        for ratio in profile.pruning.ratios:
            _, report = get_student(profile, run_dir, teacher, ratio, criterion)
            reports[(criterion, ratio)] = report
            rows.append(report_row(report))
    return rows, reports


def layer_rows(reports: dict, criterion: str) -> list[dict]:
    """The width of every layer before and after pruning, per ratio, for one criterion."""
    return [
        {
            "ratio": ratio,
            "layer": layer["name"],
            "kind": layer["kind"],
            "before": layer["before"],
            "after": layer["after"],
            "achieved_ratio": layer["achieved_ratio"],
        }
        for (crit, ratio), report in reports.items()
        if crit == criterion
        for layer in report["layers"]
    ]


def cost_rows(profile: Profile, run_dir: str | Path, teacher: torch.nn.Module) -> list[dict]:
    """Parameters, MACs and sampling latency of the teacher and each student, with their share
    of the teacher's."""
    from liftkd.measure.evaluation import costs

    teacher_costs = costs(teacher, profile)
    rows = [{"model": "teacher", "ratio": 0.0, **teacher_costs}]
    for ratio in profile.pruning.ratios:
        student, _ = get_student(profile, run_dir, teacher, ratio)
        rows.append({"model": f"student {ratio}", "ratio": ratio, **costs(student, profile)})
    for r in rows:
        for key in ("params", "macs", "latency_s_per_image"):
            r[key + "_share"] = r[key] / teacher_costs[key]
    return rows


def before_finetuning(
    profile: Profile, run_dir: str | Path, teacher: torch.nn.Module, teacher_samples: torch.Tensor
) -> tuple[list[dict], torch.Tensor]:
    """The students scored before any fine-tuning: every ratio of the default criterion, and
    every criterion at the middle ratio, beside the floor and the teacher on as many images.

    Returns (rows, a grid of 10 samples per ratio of the default criterion, teacher first)."""
    from liftkd.measure.evaluation import floor, sample, score

    n = len(teacher_samples)
    rows = [
        {"model": "floor (held-out real)", **floor(profile, run_dir, n=n)},
        {"model": "teacher", **score(profile, run_dir, teacher_samples)},
    ]
    grids = [teacher_samples[:10]]
    ratios = profile.pruning.ratios
    middle = ratios[len(ratios) // 2]
    for criterion in profile.pruning.criteria:
        for ratio in ratios:
            if criterion != profile.pruning.criterion and ratio != middle:
                continue
            student, _ = get_student(profile, run_dir, teacher, ratio, criterion)
            samples = sample(student, profile, n=n)
            rows.append(
                {
                    "model": f"{criterion} {ratio}",
                    "criterion": criterion,
                    "ratio": ratio,
                    **score(profile, run_dir, samples),
                }
            )
            if criterion == profile.pruning.criterion:
                grids.append(samples[:10])
    return rows, torch.cat(grids)
