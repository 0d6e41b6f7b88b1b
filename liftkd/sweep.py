"""The KD sweep: one job trains the students of a (ratio, seed) side by side, then measures them.

A job is named ``{group}_r{ratio}_s{seed}`` (``main_r0.9_s0``, ``ablation_r0.9_s0``): ``main`` trains
the profile's ``distill.objectives``, ``ablation`` its ``distill.ablations``. Everything a job
writes lives in ``run_dir/distill/<job>/``:

- ``checkpoint.pt``, ``history.csv``, ``snapshots/step_K.pt`` (EMA weights at each evaluation):
  training, resumable (``liftkd.train``);
- ``evals.csv``: FID, KID, precision, recall and the probe's coarse share of every student at
  every evaluation step, appended one row at a time, so an interrupted job re-measures nothing;
- ``results.json``: the job's summary (final metrics, convergence, divergence, costs), written
  last: its presence means the job is done (what make checks).

Training runs in the notebook's process, or first under ``accelerate launch`` on several GPUs
(``python -m liftkd.sweep train ...``); the notebook then finds the finished checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fcntl
import json
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from liftkd.config import Profile, TrainConfig, get_profile
from liftkd.data import load_splits, to_model_range
from liftkd.distill import KDGroup, KDModule, distill_group
from liftkd.losses import build_objective
from liftkd.models import count_parameters, noise_scheduler
from liftkd.train import SNAPSHOTS

GROUPS = ("main", "ablation")
EVALS = "evals.csv"
RESULTS = "results.json"
REFERENCE = "reference.json"

LABELS = {
    "nokd": "w/o KD",
    "outkd": "OutKD",
    "featkd": "FeatKD",
    "outkd+featkd": "OutKD+FeatKD",
    "lift": "LIFT",
    "lift+place": "LIFT+PLACE",
    "dist": "DIST",
    "normfeatkd": "NormFeatKD",
}


# ---- objective specs ----------------------------------------------------------------------


def _value(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_spec(spec: str, group_size: int | None = None) -> tuple[str, dict]:
    """``"lift+place:group_size=4,coarse=l2"`` -> ("lift+place", {"group_size": 4, "coarse": "l2"}).

    PLACE without an explicit ``group_size`` gets ``group_size`` (the sweep's K)."""
    name, _, rest = spec.partition(":")
    options = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"objective option {item!r} in {spec!r} is not key=value")
        options[key.strip()] = _value(val.strip())
    if name == "lift+place" and group_size is not None:
        options.setdefault("group_size", group_size)
    return name, options


def label(spec: str, group_size: int | None = None) -> str:
    """A reader's name for an objective spec: ``LIFT+PLACE (K=16)``, ``LIFT+PLACE (K=16, w=1)``."""
    name, options = parse_spec(spec, group_size)
    bits = []
    if "group_size" in options:
        bits.append(f"K={options.pop('group_size')}")
    schedule = options.pop("schedule", None)
    if schedule is not None:
        bits.append("w=1" if schedule == "none" else f"w {schedule}")
    bits += [f"{k}={v}" for k, v in options.items()]
    base = LABELS.get(name, name)
    return f"{base} ({', '.join(bits)})" if bits else base


# ---- the plan -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Job:
    group: str  # "main" or "ablation"
    ratio: float
    seed: int
    objectives: tuple[str, ...]
    train: TrainConfig  # resolved: steps, seed, checkpoint interval
    evaluations: int = 4

    @property
    def name(self) -> str:
        return job_name(self.group, self.ratio, self.seed)

    @property
    def eval_steps(self) -> list[int]:
        return eval_steps(self.train.steps, self.evaluations)


def job_name(group: str, ratio: float, seed: int) -> str:
    return f"{group}_r{ratio:g}_s{seed}"


def eval_steps(steps: int, evaluations: int) -> list[int]:
    """``evaluations`` evenly spaced steps, the last one ``steps``."""
    if evaluations < 1 or steps % evaluations:
        raise ValueError(f"{evaluations} evaluations must divide {steps} steps evenly")
    every = steps // evaluations
    return [every * (i + 1) for i in range(evaluations)]


def _checkpoint_every(eval_every: int, target: int) -> int:
    """The largest divisor of ``eval_every`` not above ``target``: checkpoints fall on evaluations."""
    return max(d for d in range(1, min(eval_every, target) + 1) if eval_every % d == 0)


def make_job(
    profile: Profile,
    group: str,
    ratio: float,
    seed: int,
    objectives: list[str] | None = None,
    steps: int | None = None,
) -> Job:
    """The job of ``group`` at ``ratio`` and ``seed``, resolved from the profile."""
    cfg = profile.distill
    if group not in GROUPS:
        raise ValueError(f"unknown job group {group!r}; choose one of {GROUPS}")
    if steps is None:
        ref = cfg.ablation_ratio if group == "ablation" else ratio
        matches = [s for r, s in zip(cfg.ratios, cfg.steps, strict=True) if math.isclose(r, ref)]
        if not matches:
            raise ValueError(
                f"ratio {ratio} is not in the profile's distill.ratios {cfg.ratios}; "
                "pass steps explicitly"
            )
        steps = matches[0]
    if objectives is None:
        objectives = cfg.ablations if group == "ablation" else cfg.objectives
    for spec in objectives:
        parse_spec(spec)  # fail here, not an hour into training
    every = eval_steps(steps, cfg.evaluations)[0]
    train_cfg = dataclasses.replace(
        cfg.train,
        steps=steps,
        seed=seed,
        checkpoint_every=_checkpoint_every(every, cfg.train.checkpoint_every),
    )
    return Job(group, float(ratio), int(seed), tuple(objectives), train_cfg, cfg.evaluations)


def plan(profile: Profile, seeds: list[int] | None = None) -> list[Job]:
    """Every job of the sweep: each ratio's main job, and the ablation job, for every seed."""
    cfg = profile.distill
    jobs = []
    for seed in seeds if seeds is not None else cfg.seeds:
        jobs += [make_job(profile, "main", r, seed) for r in cfg.ratios]
        if cfg.ablations:
            jobs.append(make_job(profile, "ablation", cfg.ablation_ratio, seed))
    return jobs


def job_dir(run_dir: str | Path, job: Job) -> Path:
    return Path(run_dir) / "distill" / job.name


# ---- training -----------------------------------------------------------------------------


def build_group(
    job: Job, profile: Profile, teacher: torch.nn.Module, student: torch.nn.Module
) -> tuple[dict, dict]:
    """One copy of ``student`` and one objective per spec of the job."""
    import copy

    res, ch = profile.data.resolution, profile.data.channels
    example = {"sample": torch.randn(2, ch, res, res), "timestep": torch.tensor([10, 500])}
    students, objectives = {}, {}
    for spec in job.objectives:
        name, options = parse_spec(spec, profile.distill.group_size)
        students[spec] = copy.deepcopy(student).train()
        objectives[spec] = build_objective(name, students[spec], teacher, example, **options)
    return students, objectives


def train_job(
    job: Job,
    profile: Profile,
    run_dir: str | Path,
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    progress: bool = True,
    accelerator=None,
):
    """Train (or resume, or find finished) the job's students; returns ``TrainResult``."""
    train_split, _ = load_splits(profile.data)
    students, objectives = build_group(job, profile, teacher, student)
    return distill_group(
        students,
        teacher,
        objectives,
        train_split.images,
        job.train,
        noise_scheduler(profile.diffusion),
        job_dir(run_dir, job),
        desc=job.name,
        progress=progress,
        snapshots="ema",
        snapshot_every=job.eval_steps[0],
        accelerator=accelerator,
    )


def load_group_snapshot(group: KDGroup, path: str | Path) -> KDGroup:
    group.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return group.eval()


# ---- evaluation ---------------------------------------------------------------------------


def read_evals(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            {k: _value(v) if v != "" else None for k, v in row.items()} for row in csv.DictReader(f)
        ]


def _append_row(path: Path, row: dict, columns: list[str]) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        if new:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


def eval_profile(profile: Profile) -> Profile:
    """The profile with the sweep's evaluation sampling (fewer images and DDIM steps)."""
    cfg = profile.distill
    sampling = dataclasses.replace(
        profile.sampling, n_samples=cfg.eval_samples, num_inference_steps=cfg.eval_ddim_steps
    )
    return dataclasses.replace(profile, sampling=sampling)


def probe_shares(student, teacher, images, profile: Profile) -> dict:
    """The probe's coarse share of the KD error (and its parts) at the sweep's timesteps."""
    from liftkd.analysis import decomposition_over_timesteps

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
    from liftkd.evaluation import sample, score

    d = job_dir(run_dir, job)
    path = d / EVALS
    done = {(r["objective"], int(r["step"])) for r in read_evals(path)}
    ev = eval_profile(profile)
    _, holdout = load_splits(profile.data)
    probe_images = to_model_range(
        holdout.random_subset(profile.distill.probe_images, seed=1).images
    )
    students, objectives = build_group(job, profile, teacher, student)
    group = KDGroup({s: KDModule(students[s], objectives[s]) for s in job.objectives})
    columns = ["objective", "step", "diverged", "fid", "kid", "precision", "recall"]
    columns += [f"coarse_share_t{t}" for t in profile.distill.probe_timesteps]
    columns += ["coarse_share", "kd_error", "params", "seconds"]
    final_samples = d / "samples_final.pt"
    kept = torch.load(final_samples) if final_samples.exists() else {}
    pruned_row = None
    for step in [0, *job.eval_steps]:
        todo = [s for s in job.objectives if (s, step) not in done]
        if not todo:
            continue
        if step:
            snap = d / SNAPSHOTS / f"step_{step}.pt"
            if not snap.exists():
                raise FileNotFoundError(f"{snap} is missing: train the job first")
            load_group_snapshot(group, snap)
        for i, spec in enumerate(job.objectives):
            if spec not in todo:
                continue
            t0 = time.perf_counter()
            diverged = int(group.diverged_at[i]) if step else -1
            row = {"objective": spec, "step": step, "diverged": diverged >= 0 and diverged < step}
            if row["diverged"]:
                row.update(fid=math.nan, kid=math.nan, precision=math.nan, recall=math.nan)
            elif step == 0 and pruned_row is not None:
                row.update(pruned_row)  # every objective starts from the same pruned student
            else:
                s = (group.member(spec).student if step else student).eval()
                images = sample(s, ev, progress=False)
                row.update({k: v for k, v in score(ev, run_dir, images).items() if k != "kid_std"})
                row.update(probe_shares(s, teacher, probe_images, profile))
                row["params"] = count_parameters(s)
                if step == 0:
                    pruned_row = {k: v for k, v in row.items() if k not in ("objective",)}
                if step == job.eval_steps[-1]:
                    kept[spec] = images[:100]
                    torch.save(kept, final_samples)
            row["seconds"] = round(time.perf_counter() - t0, 1)
            _append_row(path, row, columns)
            if progress:
                print(f"[{job.name}] step {step:>5} {spec:<28} FID {row['fid']:.2f}", flush=True)
    return read_evals(path)


def convergence(fids: list[float], within: float) -> str:
    """ "converged" when the last two FIDs are within ``within`` of each other (relative to the
    last), "diverged" when the last is NaN, else "did not converge"."""
    if not fids or math.isnan(fids[-1]):
        return "diverged"
    if len(fids) < 2 or math.isnan(fids[-2]):
        return "did not converge"
    return "converged" if abs(fids[-1] - fids[-2]) <= within * fids[-1] else "did not converge"


def summarise(job: Job, profile: Profile, evals: list[dict], history_path: Path) -> list[dict]:
    """One row per objective: final metrics, status, and the FID curve."""
    rows = []
    for spec in job.objectives:
        mine = sorted((r for r in evals if r["objective"] == spec), key=lambda r: r["step"])
        trained = [r for r in mine if r["step"] > 0]
        fids = [float(r["fid"]) for r in trained]
        last = trained[-1] if trained else {}
        rows.append(
            {
                "job": job.name,
                "group": job.group,
                "ratio": job.ratio,
                "seed": job.seed,
                "objective": spec,
                "label": label(spec, profile.distill.group_size),
                "status": convergence(fids, profile.distill.converged_within),
                "fid": last.get("fid"),
                "kid": last.get("kid"),
                "precision": last.get("precision"),
                "recall": last.get("recall"),
                "coarse_share": last.get("coarse_share"),
                "fid_curve": {int(r["step"]): r["fid"] for r in mine},
                "coarse_share_curve": {int(r["step"]): r["coarse_share"] for r in mine},
                "params": last.get("params"),
                "steps": job.train.steps,
            }
        )
    return rows


def loss_summary(history_path: str | Path, specs: list[str], window: int = 20) -> dict:
    """Each objective's loss parts averaged over windows of ``window`` steps (for the figures and
    the results file; the full per-step history stays in ``history.csv``)."""
    import pandas as pd

    hist = pd.read_csv(history_path)
    bins = hist["step"] // window
    out = {}
    for spec in specs:
        cols = {c.split("/", 1)[1]: c for c in hist.columns if c.startswith(f"{spec}/")}
        means = hist[list(cols.values())].groupby(bins).mean()
        out[spec] = {"step": [int((b + 1) * window) for b in means.index]}
        out[spec].update({part: means[c].round(6).tolist() for part, c in cols.items()})
    return out


# ---- shared reference numbers -------------------------------------------------------------


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # two jobs of make -j2 may ask at once
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reference(profile: Profile, run_dir: str | Path, teacher, progress: bool = True) -> dict:
    """The teacher and the real-vs-real floor under the sweep's evaluation settings (cached)."""
    from liftkd.evaluation import floor, sample, score

    path = Path(run_dir) / "distill" / REFERENCE
    with _locked(path):
        if path.exists():
            return json.loads(path.read_text())
        ev = eval_profile(profile)
        images = sample(teacher, ev, progress=progress)
        out = {
            "teacher": score(ev, run_dir, images),
            "floor": floor(ev, run_dir, ev.sampling.n_samples),
            "n_samples": ev.sampling.n_samples,
            "ddim_steps": ev.sampling.num_inference_steps,
        }
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        os.replace(tmp, path)
        return out


# ---- command line: training under accelerate launch ---------------------------------------


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m liftkd.sweep",
        description="List the sweep's jobs, or train one (under accelerate launch for several GPUs).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="the jobs of a profile, one per line")
    tr = sub.add_parser("train", help="train one job's students (resumes; no-op when finished)")
    for a in (ls, tr):
        a.add_argument("--profile", default="cpu")
        a.add_argument("--overrides", default="{}", help="profile overrides as JSON")
    ls.add_argument("--seeds", type=int, nargs="*")
    tr.add_argument("--run-dir", required=True)
    tr.add_argument("--job", required=True, help="e.g. main_r0.9_s0")
    args = p.parse_args(argv)
    profile = get_profile(args.profile, **json.loads(args.overrides))
    if args.cmd == "list":
        for job in plan(profile, args.seeds):
            print(job.name)
        return
    group, ratio, seed = parse_job_name(args.job)
    job = make_job(profile, group, ratio, seed)
    teacher, student = load_models(profile, args.run_dir, ratio)
    train_job(job, profile, args.run_dir, teacher, student)


def parse_job_name(name: str) -> tuple[str, float, int]:
    try:
        group, r, s = name.split("_")
        return group, float(r.removeprefix("r")), int(s.removeprefix("s"))
    except ValueError:
        raise ValueError(f"job names look like main_r0.9_s0, got {name!r}") from None


def load_models(profile: Profile, run_dir: str | Path, ratio: float):
    """The run's teacher (EMA) and its pruned student at ``ratio`` (pruned now if missing)."""
    from liftkd.students import get_student
    from liftkd.teacher import get_teacher

    teacher, _ = get_teacher(profile, run_dir, progress=False)
    student, _ = get_student(profile, run_dir, teacher, ratio, progress=False)
    return teacher.eval().requires_grad_(False), student


if __name__ == "__main__":
    main()
