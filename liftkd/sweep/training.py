"""Training one sweep job: every student of a (ratio, seed) side by side, resumable.

Everything a job writes lives in ``run_dir/distill/<job>/``: ``checkpoint.pt``, ``history.csv``
and ``snapshots/step_K.pt`` (the EMA weights at each evaluation step; ``liftkd.train``).
Evaluations (``liftkd.sweep.evaluation.evaluate_job``) and summaries (``liftkd.report``) read them.
Training runs in notebook 04's process, or first under ``accelerate launch`` on several GPUs
(``python -m liftkd.sweep train ...``); the notebook then finds the finished checkpoint.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import load_splits
from liftkd.diffusion import noise_scheduler
from liftkd.distill import distill_group
from liftkd.locks import claim
from liftkd.objectives import build_objective, parse_spec
from liftkd.sweep.jobs import Job, job_dir, remember_job


def build_group(
    job: Job, profile: Profile, teacher: torch.nn.Module, student: torch.nn.Module
) -> tuple[dict, dict]:
    """One copy of ``student`` and one objective per spec of the job. The objectives' FitNet
    adapters are initialised from the job's seed, whatever ran before in the process."""
    torch.manual_seed(job.train.seed)
    res, ch = profile.data.resolution, profile.data.channels
    example = {"sample": torch.randn(2, ch, res, res), "timestep": torch.tensor([10, 500])}
    students, objectives = {}, {}
    for spec in job.objectives:
        name, options = parse_spec(spec, profile.distill.group_size)
        students[spec] = set_dropout(copy.deepcopy(student), profile.distill.student_dropout)
        objectives[spec] = build_objective(name, students[spec], teacher, example, **options)
    return students, objectives


def set_dropout(model: torch.nn.Module, p: float | None) -> torch.nn.Module:
    """``model`` in train mode with every dropout layer at ``p`` (None: as it is)."""
    if p is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = p
    return model.train()


def train_job(
    job: Job,
    profile: Profile,
    run_dir: str | Path,
    teacher: torch.nn.Module,
    student: torch.nn.Module,
    progress: bool = True,
    accelerator=None,
):
    """Train (or resume, or find finished) the job's students; returns ``TrainResult``.

    The job's folder is this process's from here on (a second run of the same job is refused),
    and it must not hold a job trained with other settings."""
    claim(job_dir(run_dir, job), f"the KD job {job.name}")
    remember_job(run_dir, job, profile)
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
        diagnose_every=profile.distill.diagnose_every,
    )


def load_models(profile: Profile, run_dir: str | Path, ratio: float, backbone: str = "unet"):
    """(teacher, student, pruning report): the run's EMA teacher, frozen, and its pruned student
    at ``ratio`` (pruned now if missing)."""
    from diffusers import UNet2DModel

    from liftkd.students import get_student
    from liftkd.teacher import get_teacher

    teacher, _ = get_teacher(profile, run_dir, progress=False)
    if backbone != "unet" or not isinstance(teacher, UNet2DModel):
        raise ValueError(
            f"backbone {backbone!r}: this profile's teacher is a {type(teacher).__name__}; the "
            "sweep distils UNet2DModel teachers (DiT students are pruned by liftkd.pruning but "
            "have no trained teacher in these profiles)"
        )
    student, report = get_student(profile, run_dir, teacher, ratio, progress=False)
    return teacher.eval().requires_grad_(False), student, report
