"""Knowledge distillation: pruned students trained against a frozen teacher, each with an objective.

``distill_group(students, teacher, objectives, images, cfg, scheduler, run_dir)`` runs the common
training loop (``liftkd.training.train``: resume, EMA, divergence check) on a ``KDGroup`` of
``KDModule(student, objective)``, so that each objective's adapters, if any, are trained with its
student. Each step draws x_0, noise and t, runs the teacher once without gradients (tapping its
features when an objective needs them), and every student on the same x_t, minimising
``objective(eps, eS, eT, fS, fT, progress)``: the teacher's cost is paid once, and the comparison
between objectives is paired. Each student has its own gradient clipping; a student whose loss
or gradient becomes non-finite is marked diverged at that step and frozen, and the others go on.
Class-conditional models (DiT) are given the batch's labels: one draw per step, label dropout
included, the same for the teacher and every student (``shared_labels``).

``distill(student, teacher, objective, ...)`` is the same with one student.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn as nn
from diffusers import DDPMScheduler

from liftkd.config import TrainConfig
from liftkd.method.diagnostics import gradient_terms
from liftkd.method.features import FeatureTap
from liftkd.method.losses import NonFiniteLoss, Objective
from liftkd.runs import load_torch
from liftkd.training.diffusion import forward_noise
from liftkd.training.train import TrainResult, train


class KDModule(nn.Module):
    """The student and the objective's trainable parts, as one module for the optimiser."""

    def __init__(self, student: nn.Module, objective: Objective):
        super().__init__()
        self.student = student
        self.objective = objective

    def forward(self, x_t, t, noise, eT, fT, progress, diagnose: bool = False, cond=None):
        level = self.objective.feature_level
        tap = (
            FeatureTap(self.student, level=level) if self.objective.uses_features else nullcontext()
        )
        with tap:
            eS = self.student(x_t, t, **(cond or {})).sample
        fS = tap.features if self.objective.uses_features else None
        out = self.objective(noise, eS, eT, fS, fT, progress=progress)
        if diagnose:  # what each term asks of eS (liftkd.method.diagnostics); logged with the parts
            out.parts.update(gradient_terms(self.objective, noise, eS, eT, progress))
        return out


def shared_labels(
    labels: torch.Tensor, g: torch.Generator, drop_prob: float, null_class: int
) -> torch.Tensor:
    """The step's class labels, each replaced by ``null_class`` with probability ``drop_prob``
    (classifier-free guidance's label dropout) by a draw from the step's generator: given to the
    teacher and every student alike, whose own label dropout is then switched off."""
    if drop_prob <= 0:
        return labels
    drop = torch.rand(labels.shape, generator=g).to(labels.device) < drop_prob
    return torch.where(drop, torch.full_like(labels, null_class), labels)


def teacher_step(
    teacher: nn.Module,
    scheduler: DDPMScheduler,
    x0: torch.Tensor,
    g: torch.Generator,
    features: bool | str,
    part: slice = slice(None),
    antithetic: bool = False,
    cond: dict | None = None,
):
    """Draw noise and timesteps from ``g`` for the global batch ``x0``, keep this process's
    ``part`` and run the frozen teacher on it once: (x_t, t, noise, eT, teacher features or None).

    ``features``: False, True (the sub-blocks) or a level of ``liftkd.method.features``; ``cond``: keyword
    inputs of the model (``class_labels``), already this process's part."""
    x_t, t, noise = forward_noise(scheduler, x0, g, antithetic=antithetic)
    x_t, t, noise = x_t[part], t[part], noise[part]
    if next(teacher.parameters()).device != x0.device:
        teacher.to(x0.device)
    level = features if isinstance(features, str) else "sub-blocks"
    tap = FeatureTap(teacher, detach=True, level=level) if features else nullcontext()
    with torch.no_grad(), tap:
        eT = teacher(x_t, t, **(cond or {})).sample
    return x_t, t, noise, eT, tap.features if features else None


class KDGroup(nn.Module):
    """Students trained side by side, each a ``KDModule``; ``diverged_at[i]`` is -1 while member i
    trains, else the step at which its loss or gradient became non-finite (saved with the
    checkpoint, so that a resumed run keeps it frozen)."""

    def __init__(
        self, members: dict[str, KDModule], clip: str = "model+adapters", diagnose_every: int = 0
    ):
        super().__init__()
        self.diagnose_every = diagnose_every  # every so many steps, log liftkd.method.diagnostics
        if clip not in ("model+adapters", "model"):
            raise ValueError(f"clip must be 'model+adapters' or 'model', got {clip!r}")
        self.clip = clip  # "model": the student's gradient is clipped, the adapters' left alone
        if not members:
            raise ValueError("a KD group needs at least one student")
        self.names = list(members)
        # ModuleDict keys may not contain dots
        self.members = nn.ModuleDict({_key(n): m for n, m in members.items()})
        self.register_buffer("diverged_at", torch.full((len(members),), -1, dtype=torch.long))
        levels = {m.objective.feature_level for m in members.values() if m.objective.uses_features}
        if len(levels) > 1:
            raise ValueError(
                f"the students of a group tap features at one level (one teacher pass), got {levels}"
            )
        # what the teacher's pass taps: False, or the level every feature objective uses
        self.uses_features = levels.pop() if levels else False
        self._step = 0

    def member(self, name: str) -> KDModule:
        return self.members[_key(name)]

    def active(self) -> list[int]:
        return [i for i in range(len(self.names)) if int(self.diverged_at[i]) < 0]

    def forward(self, x_t, t, noise, eT, fT, progress, step: int, cond: dict | None = None):
        self._step = step
        total, parts = None, {}
        for i, name in enumerate(self.names):
            if int(self.diverged_at[i]) >= 0:
                parts[f"{name}/loss"] = math.nan
                continue
            try:
                diagnose = bool(self.diagnose_every) and step % self.diagnose_every == 0
                out = self.member(name)(x_t, t, noise, eT, fT, progress, diagnose, cond)
            except NonFiniteLoss:
                out = None
            if out is None or not torch.isfinite(out.total):
                self.diverged_at[i] = step
                parts[f"{name}/loss"] = math.nan
                continue
            total = out.total if total is None else total + out.total
            parts[f"{name}/loss"] = out.total.detach()
            parts.update({f"{name}/{k}": v for k, v in out.parts.items()})
        if total is None:  # every student has diverged: the loop stops with TrainingDiverged
            total = torch.tensor(math.nan, device=x_t.device)
        return total, parts

    def clip_gradients(self, max_norm: float) -> torch.Tensor:
        """Clip each student's gradient on its own; freeze a student whose norm is non-finite.

        Returns the largest finite norm (what the loop logs and checks)."""
        norms = []
        for i in self.active():
            member = self.member(self.names[i])
            scope = member.student if self.clip == "model" else member
            params = [p for p in scope.parameters() if p.grad is not None]
            if not params:
                continue
            norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            if torch.isfinite(norm):
                norms.append(norm)
            else:
                self.diverged_at[i] = self._step
                for p in params:
                    p.grad = None
        return torch.stack(norms).max() if norms else torch.tensor(0.0)


def _key(name: str) -> str:
    return name.replace(".", "_")


def kd_group_loss_fn(
    teacher: nn.Module,
    scheduler: DDPMScheduler,
    steps: int,
    antithetic: bool = False,
    label_drop: float = 0.0,
    null_class: int | None = None,
):
    """The loss of a ``KDGroup``: one teacher forward (features tapped once) for all students.

    With labels (class-conditional models), each step's labels go through ``shared_labels``
    (``label_drop``, ``null_class``) and reach the teacher and every student the same."""
    teacher.requires_grad_(False).eval()

    def loss_fn(
        model, x0: torch.Tensor, g: torch.Generator, progress: float, part=slice(None), labels=None
    ):
        group = model.module if hasattr(model, "module") else model
        cond = None
        if labels is not None:
            y = shared_labels(labels, g, label_drop, null_class if null_class is not None else -1)
            cond = {"class_labels": y[part]}
        x_t, t, noise, eT, fT = teacher_step(
            teacher, scheduler, x0, g, group.uses_features, part, antithetic, cond
        )
        return model(x_t, t, noise, eT, fT, progress, round(progress * steps), cond)

    return loss_fn


def distill_group(
    students: dict[str, nn.Module],
    teacher: nn.Module,
    objectives: dict[str, Objective],
    images: torch.Tensor,
    cfg: TrainConfig,
    scheduler: DDPMScheduler,
    run_dir: str | Path,
    desc: str = "kd",
    progress: bool = True,
    snapshots: str | None = "ema",
    snapshot_every: int | None = None,
    accelerator=None,
    diagnose_every: int = 0,
    labels: torch.Tensor | None = None,
    label_drop: float = 0.0,
    null_class: int | None = None,
) -> TrainResult:
    """Train every ``students[name]`` with ``objectives[name]`` side by side (see the module
    docstring). The result's ``ema`` is a ``KDGroup``: ``ema.member(name).student`` is the EMA
    student, ``ema.diverged_at`` who diverged where. ``images`` may be float latents; ``labels``
    (one class per image) condition a class-conditional teacher and students."""
    if labels is not None and label_drop > 0 and null_class is None:
        raise ValueError("label_drop needs null_class, the label that stands for 'no class'")
    if set(students) != set(objectives):
        raise ValueError(
            f"one objective per student: students {sorted(students)}, "
            f"objectives {sorted(objectives)}"
        )
    members = {n: KDModule(students[n], objectives[n]) for n in students}
    group = KDGroup(members, cfg.clip, diagnose_every)
    return train(
        group,
        kd_group_loss_fn(teacher, scheduler, cfg.steps, cfg.antithetic, label_drop, null_class),
        images,
        cfg,
        run_dir,
        desc,
        progress,
        accelerator=accelerator,
        keep_snapshots=snapshots or False,
        snapshot_every=snapshot_every,
        labels=labels,
    )


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
    snapshots: str | None = None,
) -> TrainResult:
    """Train one ``student`` (in place) by KD: ``distill_group`` with one member, named after its
    objective. The result's ``ema.member(objective.name).student`` is the EMA student."""
    return distill_group(
        {objective.name: student},
        teacher,
        {objective.name: objective},
        images,
        cfg,
        scheduler,
        run_dir,
        desc,
        progress,
        snapshots=snapshots,
    )


def load_snapshot(student: nn.Module, path: str | Path, member: str | None = None) -> nn.Module:
    """Load ``student``'s weights from a ``KDGroup`` snapshot (``snapshots="model"`` or ``"ema"``).

    ``member`` names the student in the group; it may be left out when the group has one."""
    state = load_torch(path, "a KD snapshot", "delete it and run the training again")
    keys = {k.split(".")[1] for k in state if k.startswith("members.")}
    if member is None:
        if len(keys) != 1:
            raise ValueError(f"{path} holds the students {sorted(keys)}: name the member to load")
        (key,) = keys
    else:
        key = _key(member)
        if key not in keys:
            raise KeyError(f"{path} holds no student {member!r}; it holds {sorted(keys)}")
    prefix = f"members.{key}.student."
    student.load_state_dict({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    return student.eval()
