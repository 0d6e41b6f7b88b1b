"""A sweep job's students measured over training, and the scale they are read against.

``evaluate_job`` scores every student of a job at step 0 (the pruned student) and at every
evaluation step (FID with its standard error, KID, precision, recall and the probe's coarse share
of the KD error), appending to ``evals.csv`` one row at a time, so that an interrupted job
re-measures nothing. Every step is scored on ``distill.eval_samples`` images (the curve); the last
step also on ``distill.final_samples`` (the final FID, whose first images are the curve's). The
last step's samples are kept for the figures. ``reference`` caches the teacher's and the
floor's scores under the sweep's evaluation settings, shared by every job of a run (under a
file lock: two jobs of ``make -j2`` may ask at once).
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from pathlib import Path

import torch

from liftkd.analysis import decomposition_over_timesteps
from liftkd.claims import recognisable_threshold
from liftkd.config import Profile
from liftkd.data import load_splits, to_model_range
from liftkd.diffusion import noise_scheduler
from liftkd.distill import KDGroup, KDModule
from liftkd.evaluation import features_label, fid_parts, floor, reference_points, sample, score
from liftkd.locks import claim, locked, replacing
from liftkd.metrics import count_parameters
from liftkd.runs import append_row, load_torch, read_rows, save_torch
from liftkd.sweep.jobs import (
    EVALS,
    FINAL_SAMPLES,
    REFERENCE,
    Job,
    job_dir,
    remember_job,
    sweep_dir,
)
from liftkd.sweep.training import build_group
from liftkd.train import snapshot_path


def eval_profile(profile: Profile) -> Profile:
    """The profile with the sweep's evaluation sampling (fewer images and DDIM steps)."""
    cfg = profile.distill
    sampling = dataclasses.replace(
        profile.sampling, n_samples=cfg.eval_samples, num_inference_steps=cfg.eval_ddim_steps
    )
    return dataclasses.replace(profile, sampling=sampling)


def fid_with_se(profile: Profile, run_dir: str | Path, images: torch.Tensor, parts: int) -> dict:
    """The scores of ``images`` (FID, KID, precision, recall) and ``fid_se``, the standard error
    of their FID: the images split into ``parts`` equal parts, each scored alone; the spread of the
    parts' FIDs over sqrt(parts) estimates the sampling error of the FID of all of them (variance
    falls as 1/n; the reference set is fixed and shared by every score)."""
    out = {k: v for k, v in score(profile, run_dir, images).items() if k != "kid_std"}
    out["fid_se"] = statistics.stdev(fid_parts(profile, run_dir, images, parts)) / math.sqrt(parts)
    return out


def probe_shares(student, teacher, images, profile: Profile) -> dict:
    """The probe's coarse share of the KD error (and its parts) at the sweep's timesteps."""
    rows = decomposition_over_timesteps(
        student,
        teacher,
        images,
        noise_scheduler(profile.diffusion),
        profile.distill.probe_timesteps,
    )
    out = {f"coarse_share_t{r['t']}": r["coarse_share"] for r in rows}
    total = sum(r["total"] for r in rows)
    out["coarse_share"] = sum(r["coarse"] for r in rows) / total if total > 0 else math.nan
    out["kd_error"] = total / len(rows)
    return out


def evaluate_job(
    job: Job,
    profile: Profile,
    run_dir: str | Path,
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    progress: bool = True,
) -> list[dict]:
    """Score every student at every evaluation step (cached in ``evals.csv``); returns all rows.

    Step 0 is the pruned student before any training, the same for every objective. The
    samples of the last step are kept in ``samples_final.pt`` for the figures."""
    d = job_dir(run_dir, job)
    claim(d, f"the KD job {job.name}")  # one process appends to its evals.csv
    remember_job(run_dir, job, profile)
    path = d / EVALS
    done = {(r["objective"], int(r["step"])) for r in read_rows(path)}
    ev = eval_profile(profile)
    _, holdout = load_splits(profile.data)
    probe_images = to_model_range(
        holdout.random_subset(profile.distill.probe_images, seed=1).images
    )
    students, objectives = build_group(job, profile, teacher, student)
    group = KDGroup({s: KDModule(students[s], objectives[s]) for s in job.objectives})
    cfg = profile.distill
    columns = ["objective", "step", "diverged", "fid", "fid_se", "kid", "precision", "recall"]
    columns += ["fid_final", "fid_final_se", "n_final"]
    columns += [f"coarse_share_t{t}" for t in profile.distill.probe_timesteps]
    columns += ["coarse_share", "kd_error", "params", "seconds"]
    nan_scores = dict.fromkeys(
        ["fid", "fid_se", "kid", "precision", "recall", "fid_final", "fid_final_se"], math.nan
    )
    final_samples = d / FINAL_SAMPLES
    kept = load_torch(final_samples, "a job's final samples") if final_samples.exists() else {}
    pruned_row = None
    for step in [0, *job.eval_steps]:
        todo = [s for s in job.objectives if (s, step) not in done]
        if not todo:
            continue
        if step:
            snap = snapshot_path(d, step)
            if not snap.exists():
                raise FileNotFoundError(f"{snap} is missing: train the job first")
            group.load_state_dict(
                load_torch(snap, "an evaluation snapshot", "delete it and retrain the job")
            )
            group.eval()
        for i, spec in enumerate(job.objectives):
            if spec not in todo:
                continue
            t0 = time.perf_counter()
            diverged = int(group.diverged_at[i]) if step else -1
            row = {"objective": spec, "step": step, "diverged": diverged >= 0 and diverged < step}
            final = step == job.eval_steps[-1]
            if row["diverged"]:
                row.update(nan_scores, n_final=0)
            elif step == 0 and pruned_row is not None:
                row.update(pruned_row)  # every objective starts from the same pruned student
            else:
                s = (group.member(spec).student if step else student).eval()
                n = max(cfg.eval_samples, cfg.final_samples) if final else cfg.eval_samples
                images = sample(s, ev, n=n, progress=False)
                curve = images[: cfg.eval_samples]  # image i comes from seed + i: same as before
                row.update(fid_with_se(ev, run_dir, curve, cfg.fid_parts))
                if final:
                    whole = fid_with_se(ev, run_dir, images, cfg.fid_parts)
                    row.update(fid_final=whole["fid"], fid_final_se=whole["fid_se"], n_final=n)
                else:
                    row.update(fid_final=math.nan, fid_final_se=math.nan, n_final=0)
                row.update(probe_shares(s, teacher, probe_images, profile))
                row["params"] = count_parameters(s)
                if step == 0:
                    pruned_row = {k: v for k, v in row.items() if k not in ("objective",)}
                if final:
                    kept[spec] = images[:100]
                    save_torch(kept, final_samples)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            append_row(path, row, columns)
            if progress:
                print(f"[{job.name}] step {step:>5} {spec:<28} FID {row['fid']:.2f}", flush=True)
    return read_rows(path)


def reference(profile: Profile, run_dir: str | Path, teacher, progress: bool = True) -> dict:
    """The teacher, the real-vs-real floor and the recognisable threshold (the blurred held-out
    images' FID, ``liftkd.claims.recognisable_threshold``) under the sweep's evaluation settings
    (cached). The teacher is also scored on ``distill.final_samples`` images, beside the students'
    final FIDs."""

    path = sweep_dir(run_dir) / REFERENCE
    with locked(path):
        if path.exists():
            return json.loads(path.read_text())
        ev = eval_profile(profile)
        cfg = profile.distill
        images = sample(teacher, ev, n=max(cfg.eval_samples, cfg.final_samples), progress=progress)
        points = reference_points(ev, run_dir)
        out = {
            "teacher": score(ev, run_dir, images[: cfg.eval_samples]),
            "teacher_final": fid_with_se(ev, run_dir, images, cfg.fid_parts),
            "floor": floor(ev, run_dir, ev.sampling.n_samples),
            "recognisable": recognisable_threshold(points),
            "reference_points": {k: v["fid"] for k, v in points.items()},
            "n_samples": ev.sampling.n_samples,
            "final_samples": len(images),
            "features": features_label(profile, run_dir),
            "ddim_steps": ev.sampling.num_inference_steps,
        }
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(out, indent=1) + "\n")
        return out
