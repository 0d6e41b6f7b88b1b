"""KD jobs of the DiT and latent paths (notebooks 06 and 07): one job per seed trains the
backbone's recipe and the recipe with LIFT+PLACE side by side, then scores them over training.

A ``Backbone`` bundles what differs between the paths: teacher, student, training data (uint8
images, or float latents), labels for a class-conditional model, and how a model's samples are
drawn as uint8 images. Everything else is the pixel sweep's: ``liftkd.distill.distill_group``
(one teacher forward per step, paired batches, per-student divergence, resume), FIDs with their
standard errors (``liftkd.sweep.evaluation.fid_with_se``) on the profile's extractor, and the
convergence rule of ``liftkd.claims``.

A job writes ``run_dir/<backbone>/kd_s<seed>/``: the training checkpoint and EMA snapshots, and
``evals.csv``, one row per (objective, step), appended as it goes, so that an interrupted job
re-measures nothing.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn

from liftkd.claims import convergence
from liftkd.config import BackboneKDConfig, Profile
from liftkd.diffusion import noise_scheduler
from liftkd.distill import KDGroup, KDModule, distill_group
from liftkd.locks import claim
from liftkd.objectives import build_objective, label, parse_spec
from liftkd.runs import append_row, load_torch, read_rows
from liftkd.sweep.evaluation import fid_with_se
from liftkd.sweep.jobs import eval_steps
from liftkd.train import TrainResult, snapshot_path

EVALS = "evals.csv"
COLUMNS = ["objective", "label", "step", "diverged", "fid", "fid_se", "n", "seconds"]


@dataclass
class Backbone:
    name: str  # "dit" or "latent": the folder under the run
    teacher: nn.Module
    student: nn.Module
    data: torch.Tensor  # the training split: uint8 images or float latents
    sampler: Callable[[nn.Module, int, int], torch.Tensor]  # (model, n, seed) -> uint8 images
    example: dict  # keyword inputs of one forward pass (sizes the adapters)
    labels: torch.Tensor | None = None
    label_drop: float = 0.0
    null_class: int | None = None
    options: dict = field(default_factory=dict)  # extra options of every objective


def job_dir(run_dir: str | Path, backbone: str, seed: int) -> Path:
    return Path(run_dir) / backbone / f"kd_s{seed}"


def build_members(backbone: Backbone, specs: tuple[str, ...], seed: int):
    """(students, objectives) by spec: copies of the student; adapters seeded by ``seed``."""
    torch.manual_seed(seed)
    students, objectives = {}, {}
    for spec in specs:
        name, options = parse_spec(spec)
        students[spec] = copy.deepcopy(backbone.student).train().requires_grad_(True)
        objectives[spec] = build_objective(
            name, students[spec], backbone.teacher, backbone.example, **backbone.options, **options
        )
    return students, objectives


def train_job(
    backbone: Backbone,
    cfg: BackboneKDConfig,
    seed: int,
    profile: Profile,
    run_dir: str | Path,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume, or find finished) the job of ``seed`` (one process at a time)."""
    claim(job_dir(run_dir, backbone.name, seed), f"the {backbone.name} KD job of seed {seed}")
    students, objectives = build_members(backbone, cfg.objectives, seed)
    train_cfg = replace(cfg.train, seed=seed)
    every = eval_steps(train_cfg.steps, cfg.evaluations)[0]
    if every % train_cfg.checkpoint_every:
        train_cfg = replace(train_cfg, checkpoint_every=math.gcd(every, train_cfg.checkpoint_every))
    backbone.teacher.eval().requires_grad_(False)
    return distill_group(
        students,
        backbone.teacher,
        objectives,
        backbone.data,
        train_cfg,
        noise_scheduler(profile.diffusion),
        job_dir(run_dir, backbone.name, seed),
        desc=f"{backbone.name} KD s{seed}",
        progress=progress,
        snapshots="ema",
        snapshot_every=every,
        labels=backbone.labels,
        label_drop=backbone.label_drop,
        null_class=backbone.null_class,
    )


def evaluate_job(
    backbone: Backbone,
    cfg: BackboneKDConfig,
    seed: int,
    profile: Profile,
    run_dir: str | Path,
    progress: bool = True,
) -> list[dict]:
    """FID (with its standard error) of every student at every evaluation step; the last step
    also on ``cfg.final_samples`` images. Cached in ``evals.csv``."""
    d = job_dir(run_dir, backbone.name, seed)
    claim(d, f"the {backbone.name} KD job of seed {seed}")  # one process appends to evals.csv
    path = d / EVALS
    done = {(r["objective"], int(r["step"])) for r in read_rows(path)}
    students, objectives = build_members(backbone, cfg.objectives, seed)
    group = KDGroup({s: KDModule(students[s], objectives[s]) for s in cfg.objectives})
    steps = eval_steps(cfg.train.steps, cfg.evaluations)
    for step in steps:
        if all((s, step) in done for s in cfg.objectives):
            continue
        snap = snapshot_path(d, step)
        if not snap.exists():
            raise FileNotFoundError(f"{snap} is missing: train the job first")
        group.load_state_dict(load_torch(snap, "an evaluation snapshot", "train the job again"))
        for i, spec in enumerate(cfg.objectives):
            if (spec, step) in done:
                continue
            t0 = time.perf_counter()
            diverged = 0 <= int(group.diverged_at[i]) < step
            row = {"objective": spec, "label": label(spec), "step": step, "diverged": diverged}
            final = step == steps[-1]
            if diverged:
                row.update(fid=math.nan, fid_se=math.nan, n=0)
            else:
                n = cfg.final_samples if final else cfg.eval_samples
                images = backbone.sampler(group.member(spec).student.eval(), n, 0)
                scores = fid_with_se(profile, run_dir, images, cfg.fid_parts)
                row.update(fid=scores["fid"], fid_se=scores["fid_se"], n=n)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            append_row(path, row, COLUMNS)
            if progress:
                where = f"[{backbone.name} s{seed}] step {step:>5}"
                print(f"{where} {row['label']:<36} FID {row['fid']:.2f}", flush=True)
    return read_rows(path)


def summarise(rows_by_seed: dict[int, list[dict]], threshold: float) -> list[dict]:
    """One row per (objective, seed): the final FID and its SE, and the convergence status of
    the run (``liftkd.claims.convergence``; the last FID is on more images than the others)."""
    out = []
    for seed, rows in sorted(rows_by_seed.items()):
        for spec in dict.fromkeys(r["objective"] for r in rows):
            curve = sorted(
                (r for r in rows if r["objective"] == spec), key=lambda r: int(r["step"])
            )
            fids = [float(r["fid"]) for r in curve]
            ses = [float(r["fid_se"]) for r in curve]
            out.append(
                {
                    "objective": spec,
                    "label": curve[-1]["label"],
                    "seed": seed,
                    "fid": fids[-1],
                    "fid_se": ses[-1],
                    "n": int(curve[-1]["n"]),
                    "status": convergence(fids, ses, threshold),
                    "curve": [(int(r["step"]), float(r["fid"])) for r in curve],
                }
            )
    return out


def reference(
    backbone: Backbone,
    cfg: BackboneKDConfig,
    profile: Profile,
    run_dir: str | Path,
    extra: dict[str, torch.Tensor] | None = None,
) -> dict:
    """The scale a path's students are read against: the teacher's FID on ``cfg.final_samples``
    images (with SE), the real-vs-real floor, the recognisable threshold (blurred held-out
    images, ``liftkd.claims.recognisable_threshold``) and the FID of any ``extra`` image sets
    (the latent path's autoencoder floor)."""
    from liftkd.claims import recognisable_threshold
    from liftkd.evaluation import floor, reference_points

    images = backbone.sampler(backbone.teacher, cfg.final_samples, 0)
    points = reference_points(profile, run_dir)
    out = {
        "teacher": fid_with_se(profile, run_dir, images, cfg.fid_parts),
        "floor": floor(profile, run_dir)["fid"],
        "recognisable": recognisable_threshold(points),
        "final_samples": cfg.final_samples,
        "ddim_steps": cfg.ddim_steps,
        "teacher_params": sum(p.numel() for p in backbone.teacher.parameters()),
        "student_params": sum(p.numel() for p in backbone.student.parameters()),
    }
    for name, imgs in (extra or {}).items():
        out[name] = fid_with_se(profile, run_dir, imgs, cfg.fid_parts)
    return out


def compare_rows(rows: list[dict], baseline: str, ours: str) -> dict:
    """The comparison claim 7 reads: every seed's final FIDs of ``ours`` against ``baseline``,
    and the verdict of ``liftkd.claims.compare`` (-1: ours wins beyond noise on every seed,
    +1: the baseline does, 0: within noise or mixed)."""
    from liftkd.claims import compare

    a = [r for r in rows if r["objective"] == ours]
    b = [r for r in rows if r["objective"] == baseline]
    return {"baseline": baseline, "ours": ours, "result": compare(a, b), "seeds": len(a)}


def run_all(
    backbone: Backbone,
    cfg: BackboneKDConfig,
    profile: Profile,
    run_dir: str | Path,
    progress: bool = True,
) -> dict[int, list[dict]]:
    """Every seed's job trained (or resumed, or found finished) and scored: ``{seed: rows}``."""
    out = {}
    for seed in cfg.seeds:
        train_job(backbone, cfg, seed, profile, run_dir, progress)
        out[seed] = evaluate_job(backbone, cfg, seed, profile, run_dir, progress)
    return out


def table(rows: list[dict]) -> list[dict]:
    """One line per objective: final FID mean ± sd over seeds, the mean SE, each seed's status."""
    import statistics

    out = []
    for spec in dict.fromkeys(r["objective"] for r in rows):
        mine = [r for r in rows if r["objective"] == spec]
        fids = [r["fid"] for r in mine]
        sd = statistics.stdev(fids) if len(fids) > 1 else 0.0
        out.append(
            {
                "objective": mine[0]["label"],
                "final FID": f"{statistics.fmean(fids):.2f} ± {sd:.2f}",
                "mean SE": round(statistics.fmean(r["fid_se"] for r in mine), 2),
                "seeds": len(mine),
                "images": mine[0]["n"],
                "status": ", ".join(f"s{r['seed']}: {r['status']}" for r in mine),
            }
        )
    return out


def comparison_text(comparison: dict) -> str:
    """A reader's sentence for ``compare_rows``'s result."""
    word = {
        -1: "LIFT+PLACE wins beyond noise on every seed",
        1: "the baseline wins beyond noise on every seed",
        0: "within noise, or mixed over seeds",
    }[comparison["result"]]
    return f"{label(comparison['ours'])} against {label(comparison['baseline'])}: {word}"
