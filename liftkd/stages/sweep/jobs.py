"""The sweep's plan: which jobs a profile asks for, each resolved from the profile once.

A job is named ``{group}_r{ratio}_s{seed}`` (``main_r0.9_s0``, ``ablation_r0.9_s0``): ``main``
trains the profile's ``distill.objectives`` at one ratio, ``ablation`` its ``distill.ablations``
at ``distill.ablation_ratio``, ``authors`` its ``distill.authors_objectives`` there under the
authors' DDPM recipe (``distill.authors_train``, students' dropout ``distill.authors_dropout``).
``make reproduce`` trains the main jobs and the groups of ``distill.in_reproduce``; each of
``ablation`` and ``authors`` is also a study of its own (``make ablation``, ``make authors``), and
two more studies lie beside the sweep (``plan(profile, study=...)``, never in ``make reproduce``):
``grid`` (``make grid``) its ``distill.grid_objectives`` there, on ``distill.grid_seeds`` (split
in order into ``distill.grid_jobs`` parts, ``grid_r0.8_s0_p0``, ``grid_r0.8_s0_p1``, ...: jobs
side by side whose students pair as one job's do), and ``trend`` (``make trend``) the main
objectives at ``distill.trend_ratios``. ``plan(profile)`` lists every job; ``job_from_name`` rebuilds one
from its name, which is all that make passes around (``python -m liftkd.stages.sweep list`` prints the
names, so the ratios and seeds are stated only in the profile).

Long because the plan of the sweep and of its four studies, the job names and the job folders
belong together: make, notebooks 04 and 05 and the settings check all read them from here.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from liftkd.config import Profile, TrainConfig
from liftkd.method.objectives import check_spec
from liftkd.training.train_state import checkpoint_interval, eval_steps

GROUPS = ("main", "ablation", "authors", "grid", "trend")
# job groups that run as studies, one make target each (make ablation, make authors, make grid,
# make trend); the first two are also in make reproduce when distill.in_reproduce names them
STUDIES = ("ablation", "authors", "grid", "trend")
# what a run's sweep writes: run_dir/distill/<job>/{checkpoint.pt, history.csv, snapshots/, ...}
# (liftkd.stages.kd_job: evals.csv, samples_final.pt)
DISTILL_DIR = "distill"
RESULTS = "results.json"  # the job's summary, written last: its presence means the job is done
REFERENCE = "reference.json"  # the teacher and the floor under the sweep's evaluation settings
SETTINGS = "settings.json"  # the settings the job was trained and evaluated with (job_settings)
# the distill settings that shape a job's students and evaluations, beside its own (Job)
_JOB_SHAPING = (
    "group_size",
    "evaluations",
    "eval_samples",
    "final_samples",
    "eval_ddim_steps",
    "probe_timesteps",
    "probe_images",
    "diagnose_every",
    "student_dropout",
)


@dataclasses.dataclass(frozen=True)
class Job:
    group: str  # "main", "ablation" or "authors"
    ratio: float
    seed: int
    objectives: tuple[str, ...]
    train: TrainConfig  # resolved: steps, seed, checkpoint interval
    evaluations: int = 4
    dropout: float | None = None  # the students' dropout in training (None: as pruned)
    part: int | None = None  # which part of a study split into several jobs (distill.grid_jobs)

    @property
    def name(self) -> str:
        return job_name(self.group, self.ratio, self.seed, self.part)

    @property
    def eval_steps(self) -> list[int]:
        return eval_steps(self.train.steps, self.evaluations)


def job_name(group: str, ratio: float, seed: int, part: int | None = None) -> str:
    return f"{group}_r{ratio:g}_s{seed}" + ("" if part is None else f"_p{part}")


def split_in_order(items: tuple[str, ...], parts: int) -> list[tuple[str, ...]]:
    """``items`` cut in order into ``parts`` runs as even as possible (the first ones longer)."""
    size, extra = divmod(len(items), parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (k < extra)
        out.append(tuple(items[start:end]))
        start = end
    return out


def _grid_part(cfg, part: int | None) -> tuple[str, ...]:
    """The objectives of the grid study's job ``part`` (None: the study unsplit)."""
    if cfg.grid_jobs == 1:
        if part is not None:
            raise ValueError("the grid study is one job (distill.grid_jobs 1): its name has no _p")
        return cfg.grid_objectives
    if part is None or not 0 <= part < cfg.grid_jobs:
        names = ", ".join(f"_p{k}" for k in range(cfg.grid_jobs))
        raise ValueError(
            f"the grid study runs as {cfg.grid_jobs} jobs (distill.grid_jobs): its names end "
            f"with one of {names}"
        )
    return split_in_order(cfg.grid_objectives, cfg.grid_jobs)[part]


def make_job(
    profile: Profile,
    group: str,
    ratio: float,
    seed: int,
    objectives: list[str] | None = None,
    steps: int | None = None,
    part: int | None = None,
) -> Job:
    """The job of ``group`` at ``ratio`` and ``seed`` (and ``part``, for a grid study split
    into several jobs), resolved from the profile."""
    cfg = profile.distill
    if group not in GROUPS:
        raise ValueError(f"unknown job group {group!r}; choose one of {GROUPS}")
    if part is not None and group != "grid":
        raise ValueError(f"only the grid study's jobs come in parts, not a {group!r} job")
    if not 0 <= seed < 2**32:
        raise ValueError(f"a job's seed must be a whole number from 0 to 2^32 - 1, got {seed}")
    if steps is None:
        ref = ratio if group in ("main", "trend") else cfg.ablation_ratio
        ratios, counts = (
            (cfg.trend_ratios, cfg.trend_steps) if group == "trend" else (cfg.ratios, cfg.steps)
        )
        matches = [s for r, s in zip(ratios, counts, strict=True) if math.isclose(r, ref)]
        if not matches:
            where = "trend_ratios" if group == "trend" else "ratios"
            raise ValueError(
                f"ratio {ratio} is not in the profile's distill.{where} {ratios}; "
                "pass steps explicitly"
            )
        steps = matches[0]
    if objectives is None and group == "grid":
        objectives = _grid_part(cfg, part)
    elif objectives is None:
        objectives = {
            "main": cfg.objectives,
            "trend": cfg.trend_objectives or cfg.objectives,
            "ablation": cfg.ablations,
            "authors": cfg.authors_objectives,
        }[group]
    for spec in objectives:
        check_spec(spec)  # fail here, not an hour into training
    every = eval_steps(steps, cfg.evaluations)[0]
    recipe = cfg.authors_train if group == "authors" else cfg.train
    train_cfg = dataclasses.replace(
        recipe,
        steps=steps,
        seed=seed,
        checkpoint_every=checkpoint_interval(every, recipe.checkpoint_every),
    )
    dropout = cfg.authors_dropout if group == "authors" else cfg.student_dropout
    return Job(
        group,
        float(ratio),
        int(seed),
        tuple(objectives),
        train_cfg,
        cfg.evaluations,
        dropout,
        part,
    )


def every_job(profile: Profile) -> list[Job]:
    """The sweep's jobs and every study's, each once: what a run folder may hold."""
    found = [*plan(profile), *(j for s in STUDIES for j in plan(profile, study=s))]
    return list({j.name: j for j in found}.values())


def plan(profile: Profile, seeds: list[int] | None = None, study: str | None = None) -> list[Job]:
    """Every job of the sweep (``make reproduce``): each ratio's main job for every seed, and
    the ablation job and the authors' recipe for theirs where ``distill.in_reproduce`` names them
    (``seeds`` replaces all three); with ``study`` (one of ``STUDIES``), that study's jobs
    instead."""
    cfg = profile.distill

    def seeds_of(
        group: str,
    ) -> list[int]:  # the ablation or authors' jobs' seeds (none: no students)
        own, students = {
            "ablation": (cfg.ablation_seeds, cfg.ablations),
            "authors": (cfg.authors_seeds, cfg.authors_objectives),
        }[group]
        if not students:
            return []
        return list(seeds if seeds is not None else own or cfg.seeds)

    if study in ("ablation", "authors"):
        return [make_job(profile, study, cfg.ablation_ratio, s) for s in seeds_of(study)]
    if study == "grid":
        grid = seeds if seeds is not None else cfg.grid_seeds
        if not cfg.grid_objectives:
            return []
        parts = [None] if cfg.grid_jobs == 1 else range(cfg.grid_jobs)
        return [
            make_job(profile, "grid", cfg.ablation_ratio, s, part=k) for s in grid for k in parts
        ]
    if study == "trend":
        trend = seeds if seeds is not None else cfg.trend_seeds
        return [make_job(profile, "trend", r, s) for s in trend for r in cfg.trend_ratios]
    if study is not None:
        raise ValueError(f"unknown study {study!r}; choose one of {STUDIES}")
    main = seeds if seeds is not None else cfg.seeds
    ablation, authors = ([] if g not in cfg.in_reproduce else seeds_of(g) for g in STUDIES[:2])
    jobs = []
    for seed in dict.fromkeys([*main, *ablation, *authors]):  # seed by seed, each once
        if seed in main:
            jobs += [make_job(profile, "main", r, seed) for r in cfg.ratios]
        if seed in ablation:
            jobs.append(make_job(profile, "ablation", cfg.ablation_ratio, seed))
        if seed in authors:
            jobs.append(make_job(profile, "authors", cfg.ablation_ratio, seed))
    return jobs


def sweep_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / DISTILL_DIR


def job_dir(run_dir: str | Path, job: Job | str) -> Path:
    """The folder of a job (or of a job name)."""
    return sweep_dir(run_dir) / (job if isinstance(job, str) else job.name)


def parse_job_name(name: str) -> tuple[str, float, int]:
    """``"main_r0.9_s0"`` -> ("main", 0.9, 0) (``split_job_name`` also reads a part)."""
    return split_job_name(name)[:3]


def split_job_name(name: str) -> tuple[str, float, int, int | None]:
    """``"grid_r0.8_s0_p1"`` -> ("grid", 0.8, 0, 1); ``"main_r0.9_s0"`` -> ("main", 0.9, 0, None)."""
    try:
        group, r, s, *p = name.split("_")
        if not (r.startswith("r") and s.startswith("s")) or len(p) > 1:
            raise ValueError
        if p and not (p[0].startswith("p") and p[0][1:].isdigit()):
            raise ValueError
        return group, float(r[1:]), int(s[1:]), int(p[0][1:]) if p else None
    except ValueError:
        raise ValueError(
            f"job names look like main_r0.9_s0, got {name!r} (a split study's part: grid_r0.8_s0_p1)"
        ) from None


def job_from_name(
    profile: Profile, name: str, objectives: list[str] | None = None, steps: int | None = None
) -> Job:
    """The job called ``name`` (``main_r0.9_s0``), resolved from the profile."""
    group, ratio, seed, part = split_job_name(name)
    return make_job(profile, group, ratio, seed, objectives, steps, part)


def job_settings(profile: Profile, job: Job) -> dict:
    """What a finished job's numbers depend on, flattened: its objectives and training (the
    checkpoint interval aside) and the sweep's evaluation settings. A job whose settings differ
    from these is another job, not a resumption."""
    from liftkd.runs import _flat, _jsonable

    train = {f"train.{k}": v for k, v in _flat(_jsonable(job.train)).items()}
    train.pop("train.checkpoint_every")
    distill = {f"distill.{k}": _jsonable(getattr(profile.distill, k)) for k in _JOB_SHAPING}
    if job.group == "authors":  # its students' dropout is the recipe's, not distill.student_dropout
        distill.pop("distill.student_dropout")
        distill["dropout"] = job.dropout
    return {"objectives": list(job.objectives), **train, **distill}


def remember_job(run_dir: str | Path, job: Job, profile: Profile, write: bool = True) -> None:
    """Refuse a job folder that holds a job made with other settings (``distill.steps``,
    ``distill.objectives``, ...); record them the first time. A folder finished before settings
    were recorded is judged by the profile in its results."""
    from liftkd.config import validate_recorded
    from liftkd.runs import remember_at

    folder = job_dir(run_dir, job)
    record = folder / SETTINGS
    what = f"the job {job.name} in {folder}"
    results = folder / RESULTS
    if not record.exists() and results.exists():
        import json

        saved = json.loads(results.read_text()).get("meta", {}).get("profile")
        if saved:
            before = validate_recorded(saved)
            then = job_settings(before, job_from_name(before, job.name))
            remember_at(record, then, what, write=True)
    remember_at(record, job_settings(profile, job), what, write)


def check_result_settings(path: Path, blob: dict, profile: Profile) -> None:
    """Refuse a saved job result (notebook 04's ``{"results", "meta"}``) that was made with
    other settings than ``profile`` gives its job now."""
    from liftkd.config import SettingsError, validate_recorded
    from liftkd.runs import settings_diff

    res = blob["results"]
    name = res.get("job") or path.stem
    then_profile = validate_recorded(blob["meta"]["profile"])
    then_job = job_from_name(then_profile, name)
    if "objectives" in res and "train" in res:  # what the job trained (notebook 04 may set them)
        then_job = dataclasses.replace(
            then_job, objectives=tuple(res["objectives"]), train=TrainConfig(**res["train"])
        )
    then = job_settings(then_profile, then_job)
    diff = settings_diff(then, job_settings(profile, job_from_name(profile, name)))
    if diff:
        raise SettingsError(
            f"{path} holds the job {name} made with other settings than the profile now asks "
            f"for ({diff}); run the job again with these settings (delete its folder in the run "
            "folder first), or give the settings it was made with"
        )
