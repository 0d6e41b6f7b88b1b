"""A backbone's KD jobs run together: the reference scale its students are read against, one
job per seed of the DiT or latent path (notebooks 06 and 07), and the comparison claim 7 reads.

The jobs themselves are ``liftkd.stages.kd_job``'s, the same as the pixel sweep's (``liftkd.stages.sweep``),
which shares ``reference`` (``liftkd.stages.sweep.pixel.reference``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn as nn

from liftkd.config import BackboneKDConfig, Profile
from liftkd.locks import locked, replacing
from liftkd.measure.evaluation import features_label, fid_with_se, floor, reference_points, score
from liftkd.measure.metrics import count_parameters
from liftkd.measure.rules import compare, recognisable_threshold
from liftkd.method.objectives import label
from liftkd.stages.kd_job import Backbone, KDJob, Protocol, Sampler, evaluate, summarise, train
from liftkd.training.train_state import checkpoint_interval, eval_steps

REFERENCE = "reference.json"  # a backbone's reference scores, cached beside its jobs


def reference(
    teacher: nn.Module,
    sampler: Sampler,
    protocol: Protocol,
    profile: Profile,
    run_dir: str | Path,
    path: str | Path,
    extra: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> dict:
    """The scale a backbone's students are read against, under the protocol of its jobs, cached
    in ``path`` (under a file lock: two jobs may ask at once): the teacher on ``eval_samples``
    images and on ``final_samples`` (``teacher_final``, beside the students' final FIDs), the
    real-vs-real floor, the recognisable threshold (blurred held-out images,
    ``liftkd.measure.rules.recognisable_threshold``), and the FID of every uint8 image set of ``extra``
    (the latent path's autoencoder floor)."""
    path = Path(path)
    with locked(path):
        if path.exists():
            return json.loads(path.read_text())
        p = protocol
        if progress:
            print(
                f"scoring the teacher ({max(p.eval_samples, p.final_samples)} samples)", flush=True
            )
        images = sampler(teacher, max(p.eval_samples, p.final_samples))
        points = reference_points(profile, run_dir)
        out = {
            "teacher": score(profile, run_dir, images[: p.eval_samples]),
            "teacher_final": fid_with_se(profile, run_dir, images),
            "floor": floor(profile, run_dir, p.eval_samples),
            "recognisable": recognisable_threshold(points),
            "reference_points": {k: v["fid"] for k, v in points.items()},
            "n_samples": p.eval_samples,
            "final_samples": len(images),
            "features": features_label(profile, run_dir),
            "ddim_steps": p.ddim_steps,
            "teacher_params": count_parameters(teacher),
        }
        for name, images in (extra or {}).items():
            out[name] = fid_with_se(profile, run_dir, images)
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(out, indent=1) + "\n")
        return out


def backbone_protocol(cfg: BackboneKDConfig) -> Protocol:
    """The protocol of the DiT or latent path's jobs (``dit_kd.kd`` or ``latent.kd``)."""
    return Protocol.of(cfg, eval_steps(cfg.train.steps, cfg.evaluations), cfg.ddim_steps)


def job_dir(run_dir: str | Path, backbone: str, seed: int) -> Path:
    """The folder of the DiT or latent path's job of ``seed``."""
    return Path(run_dir) / backbone / f"kd_s{seed}"


def backbone_jobs(backbone: str, cfg: BackboneKDConfig, run_dir: str | Path) -> list[KDJob]:
    """One job per seed of ``cfg``: every objective of the path trained side by side."""
    p = backbone_protocol(cfg)
    every = checkpoint_interval(p.eval_steps[0], cfg.train.checkpoint_every)
    return [
        KDJob(
            name=f"{backbone}_kd_s{seed}",
            folder=job_dir(run_dir, backbone, seed),
            seed=seed,
            objectives=tuple(cfg.objectives),
            train=replace(cfg.train, seed=seed, checkpoint_every=every),
            protocol=p,
        )
        for seed in cfg.seeds
    ]


def run_backbone(
    backbone: Backbone,
    cfg: BackboneKDConfig,
    profile: Profile,
    run_dir: str | Path,
    extra: dict[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> tuple[list[dict], dict]:
    """Every seed's job of the DiT or latent path trained (or resumed, or found finished) and
    measured: (one summary row per (objective, seed), the reference scores, with ``extra``)."""
    jobs = backbone_jobs(backbone.name, cfg, run_dir)
    ref = reference(
        backbone.teacher,
        backbone.sampler,
        jobs[0].protocol,
        profile,
        run_dir,
        Path(run_dir) / backbone.name / REFERENCE,
        extra,
        progress,
    )
    rows = []
    for job in jobs:
        train(backbone, job, profile, progress)
        evals = evaluate(backbone, job, profile, run_dir, progress)
        labels = job.labels(backbone.group_size)
        rows += summarise(job, evals, ref["recognisable"], labels, {"backbone": backbone.name})
    return rows, ref


def compare_rows(rows: list[dict], baseline: str, ours: str) -> dict:
    """Every seed's final FIDs of ``ours`` against ``baseline`` and the verdict of
    ``liftkd.measure.rules.compare`` (-1: ours wins beyond noise on every seed, +1: the baseline does,
    0: within noise or mixed)."""
    a = [r for r in rows if r["objective"] == ours]
    b = [r for r in rows if r["objective"] == baseline]
    return {"baseline": baseline, "ours": ours, "result": compare(a, b), "seeds": len(a)}


def comparison_text(comparison: dict) -> str:
    """A reader's sentence for ``compare_rows``'s result."""
    word = {
        -1: "LIFT+PLACE wins beyond noise on every seed",
        1: "the baseline wins beyond noise on every seed",
        0: "within noise, or mixed over seeds",
    }[comparison["result"]]
    return f"{label(comparison['ours'])} against {label(comparison['baseline'])}: {word}"
