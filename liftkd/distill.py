"""Knowledge distillation: a pruned student trained against a frozen teacher with an objective.

``distill(student, teacher, objective, images, cfg, scheduler, run_dir)`` runs the common training
loop (``liftkd.train``: resume, EMA, divergence check) on ``KDModule(student, objective)``, so that
the objective's adapters, if any, are trained with the student. Each step draws x_0, noise and t,
runs the teacher without gradients (tapping its features when the objective needs them) and
the student through the module, and minimises ``objective(eps, eS, eT, fS, fT, progress)``.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
from diffusers import DDPMScheduler

from liftkd.config import TrainConfig
from liftkd.features import FeatureTap
from liftkd.losses import Objective
from liftkd.train import TrainResult, train


class KDModule(nn.Module):
    """The student and the objective's trainable parts, as one module for the optimiser."""

    def __init__(self, student: nn.Module, objective: Objective):
        super().__init__()
        self.student = student
        self.objective = objective

    def forward(self, x_t, t, noise, eT, fT, progress):
        tap = FeatureTap(self.student) if self.objective.uses_features else nullcontext()
        with tap:
            eS = self.student(x_t, t).sample
        fS = tap.features if self.objective.uses_features else None
        return self.objective(noise, eS, eT, fS, fT, progress=progress)


def kd_loss_fn(teacher: nn.Module, scheduler: DDPMScheduler):
    teacher.requires_grad_(False).eval()
    T = scheduler.config.num_train_timesteps

    def loss_fn(model: nn.Module, x0: torch.Tensor, g: torch.Generator, progress: float):
        kd = model.module if hasattr(model, "module") else model  # DDP keeps the module inside
        noise = torch.randn(x0.shape, generator=g).to(x0.device)
        t = torch.randint(0, T, (x0.shape[0],), generator=g).to(x0.device)
        x_t = scheduler.add_noise(x0, noise, t)
        if next(teacher.parameters()).device != x0.device:
            teacher.to(x0.device)
        tap = FeatureTap(teacher, detach=True) if kd.objective.uses_features else nullcontext()
        with torch.no_grad(), tap:
            eT = teacher(x_t, t).sample
        fT = tap.features if kd.objective.uses_features else None
        out = model(x_t, t, noise, eT, fT, progress)
        return out.total, out.parts

    return loss_fn


def distill(
    student: nn.Module,
    teacher: nn.Module,
    objective: Objective,
    images: torch.Tensor,
    cfg: TrainConfig,
    scheduler: DDPMScheduler,
    run_dir: str | Path,
    desc: str = "kd",
    progress: bool = True,
    keep_snapshots: bool = False,
) -> TrainResult:
    """Train ``student`` (in place) by KD; the result's ``ema.student`` is the EMA student."""
    module = KDModule(student, objective)
    return train(
        module,
        kd_loss_fn(teacher, scheduler),
        images,
        cfg,
        run_dir,
        desc,
        progress,
        keep_snapshots=keep_snapshots,
    )


def load_snapshot(student: nn.Module, path: str | Path) -> nn.Module:
    """Load the student's weights from a ``KDModule`` snapshot (``train(keep_snapshots=True)``)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    student.load_state_dict(
        {k[len("student.") :]: v for k, v in state.items() if k.startswith("student.")}
    )
    return student.eval()
