"""The pixel U-Net as a KD backbone: its ``liftkd.stages.kd_job.Backbone``, a sweep job as a
``liftkd.stages.kd_job.KDJob``, and the teacher's reference scores under the sweep's protocol.

Everything a job writes lives in ``run_dir/distill/<job>/`` (``liftkd.stages.kd_job``). Training runs in
notebook 04's process, or first under ``accelerate launch`` on several GPUs (``python -m
liftkd.stages.sweep train ...``); the notebook then finds the finished checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import load_splits, to_model_range
from liftkd.measure.evaluation import eval_profile, sample
from liftkd.stages.kd_job import Backbone, KDJob, Protocol
from liftkd.stages.kd_runs import reference as kd_reference
from liftkd.stages.sweep.jobs import REFERENCE, Job, job_dir, remember_job, sweep_dir


def protocol(profile: Profile, job: Job) -> Protocol:
    """The sweep's evaluation protocol for ``job`` (the ``distill`` settings)."""
    cfg = profile.distill
    return Protocol.of(cfg, job.eval_steps, cfg.eval_ddim_steps, cfg.probe_timesteps)


def kd_job(profile: Profile, run_dir: str | Path, job: Job) -> KDJob:
    """The sweep job as a KD job; its folder must not hold a job made with other settings."""
    return KDJob(
        name=job.name,
        folder=job_dir(run_dir, job),
        seed=job.train.seed,
        objectives=job.objectives,
        train=job.train,
        protocol=protocol(profile, job),
        check_settings=lambda: remember_job(run_dir, job, profile),
    )


def sampler(profile: Profile):
    """``(model, n) -> n uint8 images`` with the sweep's DDIM settings (image i from seed + i)."""
    ev = eval_profile(profile)
    return lambda model, n: sample(model, ev, n=n, progress=False)


def unet_backbone(profile: Profile, teacher, student, job: Job | None = None) -> Backbone:
    """The pixel U-Net's backbone: the training images, the sweep's sampler, and held-out images
    for the probe's coarse share over training; the students' dropout is ``job``'s (the
    profile's ``distill.student_dropout`` without one)."""
    train_split, holdout = load_splits(profile.data)
    res, ch = profile.data.resolution, profile.data.channels
    probe = holdout.random_subset(profile.distill.probe_images, seed=1).images
    return Backbone(
        name="unet",
        teacher=teacher,
        student=student,
        data=train_split.images,
        sampler=sampler(profile),
        example=lambda: {
            "sample": torch.randn(2, ch, res, res),
            "timestep": torch.tensor([10, 500]),
        },
        group_size=profile.distill.group_size,
        student_dropout=profile.distill.student_dropout if job is None else job.dropout,
        probe_images=to_model_range(probe),
        diagnose_every=profile.distill.diagnose_every,
    )


def load_models(profile: Profile, run_dir: str | Path, ratio: float, backbone: str = "unet"):
    """(teacher, student, pruning report): the run's EMA teacher, frozen, and its pruned student
    at ``ratio`` (pruned now if missing)."""
    from diffusers import UNet2DModel

    from liftkd.stages.students import get_student
    from liftkd.stages.teacher import get_teacher

    teacher, _ = get_teacher(profile, run_dir, progress=False)
    if backbone != "unet" or not isinstance(teacher, UNet2DModel):
        raise ValueError(
            f"backbone {backbone!r}: this profile's teacher is a {type(teacher).__name__}; the "
            "sweep distils UNet2DModel teachers (the DiT and latent paths are notebooks 06 and 07)"
        )
    student, report = get_student(profile, run_dir, teacher, ratio, progress=False)
    return teacher.eval().requires_grad_(False), student, report


def reference(profile: Profile, run_dir: str | Path, teacher, progress: bool = True) -> dict:
    """The teacher, the real-vs-real floor and the recognisable threshold under the sweep's
    protocol (``liftkd.stages.kd_job.reference``), computed once per run and shared by every job."""
    p = Protocol.of(profile.distill, (), profile.distill.eval_ddim_steps)
    path = sweep_dir(run_dir) / REFERENCE
    return kd_reference(teacher, sampler(profile), p, profile, run_dir, path, progress=progress)
