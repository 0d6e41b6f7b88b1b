"""One KD job, for every backbone: students trained side by side, measured over training.

The pixel U-Net (notebook 04, once per sweep job), the DiT (06) and the latent U-Net (07) all run
their KD through this module. A ``Backbone`` holds what differs between them: the teacher and its
student, the training data (uint8 images or float latents), class labels, how a model's samples
are drawn as uint8 images, and the held-out inputs of the probe. A ``KDJob`` holds what one job
does: its folder, seed, objectives, training settings and ``Protocol``, the one evaluation
protocol every job follows:

- step 0 (the pruned student, the same for every objective) and ``protocol.eval_steps`` are
  scored on ``eval_samples`` images each (the curve: one sample count along it, so FID's
  small-sample bias does not move its last point); the last step also on ``final_samples``
  images (the final FID, whose first images are the curve's);
- every FID carries a standard error (``liftkd.measure.evaluation.fid_with_se``, a bootstrap over
  the images); the final FIDs also a paired one between students; the probe's coarse
  share of the KD error is measured where the backbone gives probe inputs;
- a student's status comes from the convergence rule of ``liftkd.measure.rules`` with the protocol's
  thresholds.

A job writes ``job.folder``: the training checkpoint and EMA snapshots (``liftkd.training.distill``),
``evals.csv`` (one row per (objective, step), appended as it goes, so that an interrupted job
re-measures nothing) and ``samples_final.pt`` (100 final samples per student, for the figures).
One process at a time owns the folder (``liftkd.locks.claim``). ``liftkd.stages.kd_runs`` runs a
backbone's jobs together and scores the teacher they are read against.

Long because the job's stages (its members, training, measuring, summary) share the protocol and
the columns of ``evals.csv``, and are read together.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from liftkd.config import Profile, TrainConfig
from liftkd.locks import claim
from liftkd.measure import bootstrap
from liftkd.measure.analysis import coarse_shares
from liftkd.measure.evaluation import fid_features, fid_with_se
from liftkd.measure.metrics import count_parameters
from liftkd.measure.rules import convergence
from liftkd.method.objectives import build_objective, label, parse_spec
from liftkd.runs import append_row, load_torch, read_rows, save_torch
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.distill import KDGroup, KDModule, distill_group
from liftkd.training.train import TrainResult
from liftkd.training.train_state import snapshot_path

EVALS = "evals.csv"  # a job's evaluations, one row per (objective, step)
FINAL_SAMPLES = "samples_final.pt"  # 100 samples of every student at the last evaluation
# the FID features of every final image of every student, and the reference's statistics: what
# the bootstrap of the final FIDs resamples (liftkd.measure.bootstrap)
FINAL_FEATURES = "features_final.pt"
SCORES = ("fid", "fid_se", "kid", "precision", "recall", "fid_final", "fid_final_se")

Sampler = Callable[[nn.Module, int], torch.Tensor]  # (model, n) -> n uint8 images, fixed seeds


@dataclass(frozen=True)
class Protocol:
    """How a job's students are measured (the same for every backbone)."""

    eval_steps: tuple[int, ...]  # evenly spaced, the last at the end of training
    eval_samples: int  # images per FID along the curve
    final_samples: int  # images per FID at the last step
    ddim_steps: int
    converged_within: float = 0.05  # liftkd.measure.rules.convergence
    converged_evals: int = 3
    probe_timesteps: tuple[int, ...] = ()  # the probe's coarse share at these (none: not measured)

    @classmethod
    def of(cls, cfg, eval_steps, ddim_steps: int, probe_timesteps=()) -> Protocol:
        """The protocol of a section that measures KD jobs (``distill``, or a path's ``kd``:
        both name their sample counts, FID parts and convergence thresholds alike)."""
        return cls(
            eval_steps=tuple(eval_steps),
            eval_samples=cfg.eval_samples,
            final_samples=cfg.final_samples,
            ddim_steps=ddim_steps,
            converged_within=cfg.converged_within,
            converged_evals=cfg.converged_evals,
            probe_timesteps=tuple(probe_timesteps),
        )

    def columns(self) -> list[str]:
        """The columns of ``evals.csv``."""
        cols = ["objective", "step", "diverged", *SCORES[:5], *SCORES[5:], "n_final"]
        cols += [f"coarse_share_t{t}" for t in self.probe_timesteps]
        return cols + ["coarse_share", "kd_error", "params", "seconds"]


@dataclass
class Backbone:
    """What one backbone's KD jobs share: models, data and sampling."""

    name: str  # "unet", "dit" or "latent"
    teacher: nn.Module
    student: nn.Module  # the pruned student every objective starts from
    data: torch.Tensor  # the training split: uint8 images or float latents
    sampler: Sampler
    # keyword inputs of one forward pass (sizes the FitNet adapters), drawn after the job's seed
    example: Callable[[], dict]
    labels: torch.Tensor | None = None  # class labels of ``data`` (a class-conditional model)
    label_drop: float = 0.0
    null_class: int | None = None
    options: dict = field(default_factory=dict)  # extra options of every objective
    group_size: int | None = None  # PLACE's K where a spec does not set it
    student_dropout: float | None = None  # None: the student's dropout as pruned
    probe_images: torch.Tensor | None = None  # held-out model inputs of the probe (None: no probe)
    diagnose_every: int = 0  # gradient-term diagnostics every so many steps (0: off)


@dataclass(frozen=True)
class KDJob:
    name: str  # "main_r0.8_s0" (sweep) or "kd_s0" (DiT, latent)
    folder: Path
    seed: int
    objectives: tuple[str, ...]
    train: TrainConfig  # resolved: steps, seed, a checkpoint interval that falls on evaluations
    protocol: Protocol
    # called before the job trains or measures: refuses a folder made with other settings
    check_settings: Callable[[], None] | None = None

    def labels(self, group_size: int | None = None) -> dict[str, str]:
        """``{spec: a reader's label}`` (PLACE's K filled in)."""
        return {spec: label(spec, group_size) for spec in self.objectives}


def set_dropout(model: nn.Module, p: float | None) -> nn.Module:
    """``model`` in train mode with every dropout layer at ``p`` (None: as it is)."""
    if p is not None:
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = p
    return model.train()


def build_members(backbone: Backbone, job: KDJob) -> tuple[dict, dict]:
    """(students, objectives) by spec: one copy of the student per objective. The FitNet adapters
    are initialised from the job's seed, whatever ran before in the process."""
    torch.manual_seed(job.seed)
    example = backbone.example()
    students, objectives = {}, {}
    for spec in job.objectives:
        name, options = parse_spec(spec, backbone.group_size)
        student = set_dropout(copy.deepcopy(backbone.student), backbone.student_dropout)
        students[spec] = student.requires_grad_(True)
        objectives[spec] = build_objective(
            name, student, backbone.teacher, example, **backbone.options, **options
        )
    return students, objectives


def _own(job: KDJob) -> None:
    claim(job.folder, f"the KD job {job.name}")  # one process writes a job's folder
    if job.check_settings is not None:
        job.check_settings()


def train(
    backbone: Backbone,
    job: KDJob,
    profile: Profile,
    progress: bool = True,
    accelerator=None,
) -> TrainResult:
    """Train (or resume, or find finished) the job's students side by side."""
    _own(job)
    students, objectives = build_members(backbone, job)
    backbone.teacher.eval().requires_grad_(False)
    return distill_group(
        students,
        backbone.teacher,
        objectives,
        backbone.data,
        job.train,
        noise_scheduler(profile.diffusion),
        job.folder,
        desc=job.name,
        progress=progress,
        snapshots="ema",
        snapshot_every=job.protocol.eval_steps[0],
        accelerator=accelerator,
        diagnose_every=backbone.diagnose_every,
        labels=backbone.labels,
        label_drop=backbone.label_drop,
        null_class=backbone.null_class,
    )


def _evals_of(path: Path, columns: list[str]) -> list[dict]:
    """The rows measured so far; an ``evals.csv`` of another protocol is refused, not mixed in."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        header = f.readline().strip().split(",")
    if header != [""] and header != columns:
        raise ValueError(
            f"{path} holds evaluations of another protocol (columns {header}, now {columns}); "
            "move it away and the job's students are measured again from their snapshots"
        )
    return read_rows(path)


def _measure(
    backbone, job, profile, run_dir, model, n: int, final: bool
) -> tuple[dict, torch.Tensor]:
    """One student's scores at one step: the curve's FID on ``eval_samples`` images, the final
    FID on all ``n`` at the last step, the probe's shares, its size."""
    p = job.protocol
    images = backbone.sampler(model, n)
    curve = images[: p.eval_samples]  # image i comes from seed + i: the curve's images
    row = fid_with_se(profile, run_dir, curve)
    if final:
        whole = fid_with_se(profile, run_dir, images)
        row.update(fid_final=whole["fid"], fid_final_se=whole["fid_se"], n_final=n)
    else:
        row.update(fid_final=math.nan, fid_final_se=math.nan, n_final=0)
    if backbone.probe_images is not None and p.probe_timesteps:
        row.update(
            coarse_shares(
                model,
                backbone.teacher,
                backbone.probe_images,
                noise_scheduler(profile.diffusion),
                p.probe_timesteps,
            )
        )
    else:
        row.update(coarse_share=math.nan, kd_error=math.nan)
    row["params"] = count_parameters(model)
    return row, images


def evaluate(
    backbone: Backbone,
    job: KDJob,
    profile: Profile,
    run_dir: str | Path,
    progress: bool = True,
) -> list[dict]:
    """Score every student at step 0 and at every evaluation step (cached in ``evals.csv``);
    returns all rows. The samples of the last step are kept in ``samples_final.pt``."""
    _own(job)
    p = job.protocol
    columns = p.columns()
    path = job.folder / EVALS
    done = {(r["objective"], int(r["step"])) for r in _evals_of(path, columns)}
    students, objectives = build_members(backbone, job)
    group = KDGroup({s: KDModule(students[s], objectives[s]) for s in job.objectives})
    final_samples = job.folder / FINAL_SAMPLES
    kept = load_torch(final_samples, "a job's final samples") if final_samples.exists() else {}
    pruned_row = None
    for step in [0, *p.eval_steps]:
        todo = [s for s in job.objectives if (s, step) not in done]
        if not todo:
            continue
        if step:
            snap = snapshot_path(job.folder, step)
            if not snap.exists():
                raise FileNotFoundError(f"{snap} is missing: train the job first")
            group.load_state_dict(
                load_torch(snap, "an evaluation snapshot", "delete it and train the job again")
            )
            group.eval()
        final = step == p.eval_steps[-1]
        for i, spec in enumerate(job.objectives):
            if spec not in todo:
                continue
            t0 = time.perf_counter()
            diverged = int(group.diverged_at[i]) if step else -1
            row = {"objective": spec, "step": step, "diverged": 0 <= diverged < step}
            if row["diverged"]:
                row.update(dict.fromkeys(SCORES, math.nan), n_final=0)
            elif step == 0 and pruned_row is not None:
                row.update(pruned_row)  # every objective starts from the same pruned student
            else:
                model = (group.member(spec).student if step else backbone.student).eval()
                n = max(p.eval_samples, p.final_samples) if final else p.eval_samples
                scores, images = _measure(backbone, job, profile, run_dir, model, n, final)
                row.update(scores)
                if step == 0:
                    pruned_row = scores
                if final:
                    kept[spec] = images[:100]
                    save_torch(kept, final_samples)
                    _keep_features(job.folder / FINAL_FEATURES, spec, profile, run_dir, images)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            append_row(path, row, columns)
            if progress:
                print(f"[{job.name}] step {step:>5} {spec:<28} FID {row['fid']:.2f}", flush=True)
    return read_rows(path)


def _keep_features(path: Path, spec: str, profile, run_dir, images: torch.Tensor) -> None:
    """Add ``spec``'s final images' FID features to the job's features file."""
    saved = load_torch(path, "a job's final features") if path.exists() else {"features": {}}
    feats, ref = fid_features(profile, run_dir, images)
    saved["features"][spec] = feats
    saved["reference"] = {k: torch.as_tensor(v) for k, v in ref.items()}
    save_torch(saved, path)


def final_bootstrap(job: KDJob, specs: list[str]) -> dict[str, dict]:
    """The bootstrap of the final FIDs of ``specs`` (``liftkd.measure.bootstrap.summary``: SE and
    the paired SE against each other, images resampled jointly, seeded by the job's seed), from
    the job's features file; {} where it is missing or lacks one of them (a job evaluated before
    the file existed, a diverged student)."""
    path = job.folder / FINAL_FEATURES
    if not path.exists():
        return {}
    saved = load_torch(path, "a job's final features", "delete it and the job's last evaluation")
    have = {s: saved["features"][s].double().numpy() for s in specs if s in saved["features"]}
    if len(have) < 1 or len({len(f) for f in have.values()}) != 1:
        return {}
    ref = bootstrap.Reference(
        mu=saved["reference"]["mu"].double().numpy(),
        sigma=saved["reference"]["sigma"].double().numpy(),
    )
    return bootstrap.summary(have, ref, seed=job.seed)


def cross_job_bootstrap(folders: dict[str, Path], seed: int) -> dict[str, dict[str, float]]:
    """The paired SEs between the students of several jobs of one seed and ratio (``folders``:
    job name -> folder): their final image i comes from the same noise in every job, so one
    bootstrap resamples them all jointly (``liftkd.measure.bootstrap.summary``). Keys are
    ``"job|spec"``; jobs without a features file, or with other image counts or another
    reference, are left out."""
    import numpy as np

    feats, ref = {}, None
    for name, folder in folders.items():
        path = Path(folder) / FINAL_FEATURES
        if not path.exists():
            continue
        saved = load_torch(
            path, "a job's final features", "delete it and the job's last evaluation"
        )
        mu = saved["reference"]["mu"].double().numpy()
        sigma = saved["reference"]["sigma"].double().numpy()
        if ref is None:
            ref = bootstrap.Reference(mu=mu, sigma=sigma)
        elif not (np.allclose(mu, ref.mu) and np.allclose(sigma, ref.sigma)):
            continue
        for spec, f in saved["features"].items():
            feats[f"{name}|{spec}"] = f.double().numpy()
    sizes = {len(f) for f in feats.values()}
    if len(feats) < 2 or len(sizes) != 1:
        return {}
    return {k: v["paired_se"] for k, v in bootstrap.summary(feats, ref, seed=seed).items()}


def _num(x) -> float:
    return math.nan if x is None or x == "" else float(x)


def summarise(
    job: KDJob, evals: list[dict], threshold: float, labels: dict, extra: dict | None = None
) -> list[dict]:
    """One row per objective: the final FID (on ``final_samples`` images) with its standard
    error, the other final metrics, the status by the convergence rule (against the recognisable
    ``threshold``, on the curve's FIDs, one sample count), the curves, and ``extra`` (the job's
    group and ratio, or its backbone)."""
    p = job.protocol
    boot = final_bootstrap(job, list(job.objectives))
    rows = []
    for spec in job.objectives:
        mine = sorted((r for r in evals if r["objective"] == spec), key=lambda r: int(r["step"]))
        trained = [r for r in mine if int(r["step"]) > 0]
        fids = [_num(r["fid"]) for r in trained]
        ses = [_num(r.get("fid_se")) for r in trained]
        last = trained[-1] if trained else {}
        rows.append(
            {
                "job": job.name,
                **(extra or {}),
                "seed": job.seed,
                "objective": spec,
                "label": labels[spec],
                "status": convergence(
                    fids,
                    ses,
                    threshold,
                    p.converged_within,
                    p.converged_evals,
                    steps=[int(r["step"]) for r in trained],
                ),
                "fid": _num(last.get("fid_final")),
                "fid_se": _num(last.get("fid_final_se")),
                "n_final": int(_num(last.get("n_final")) or 0) if last else 0,
                "kid": last.get("kid"),
                "precision": last.get("precision"),
                "recall": last.get("recall"),
                "coarse_share": last.get("coarse_share"),
                "fid_curve": {int(r["step"]): r["fid"] for r in mine},
                "fid_se_curve": {int(r["step"]): r.get("fid_se") for r in mine},
                "coarse_share_curve": {int(r["step"]): r.get("coarse_share") for r in mine},
                "params": last.get("params"),
                "steps": job.train.steps,
            }
        )
        if spec in boot:  # the final FID's bootstrap SE, and paired against the job's others
            rows[-1].update(
                fid_se_parts=rows[-1]["fid_se"],
                fid_se=boot[spec]["fid_se"],
                fid_se_method="bootstrap",
                paired_se=boot[spec]["paired_se"],
            )
    return rows
