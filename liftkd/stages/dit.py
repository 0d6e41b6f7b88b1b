"""The DiT path: a class-conditional DiT teacher trained here, and its student made as TinyFusion
makes one (depth pruning), for notebook 06.

- **Labels.** A DiT is class-conditional and drops 10% of its labels in training (the null class
  ``num_classes``, for classifier-free guidance); diffusers draws that dropout inside every
  block's label embedding, separately for each model. Here it is drawn once per step from the
  step's generator (``liftkd.training.distill.shared_labels``) and the models' own dropout is switched off
  (``fix_label_dropout``): the teacher and every student see the same labels.
- **Which blocks the student keeps.** ``uniform_blocks`` keeps evenly spaced blocks (0, 2, 4, ...
  of 8): the pattern TinyFusion's released layer pairing assumes (student block i held to
  teacher block 2i + 1), and TinyFusion's finding is that the calibration loss right after
  pruning predicts poorly how well a student recovers. ``calibration_blocks`` is the greedy
  alternative (drop, one at a time, the block whose removal raises a fixed batch's denoising loss
  least), as a setting. ``paired_blocks`` gives the teacher block each kept block is held to.
- **Sampling.** Image i is of class i mod (the data's classes), from seed + i, by DDIM; guidance 1
  is no classifier-free guidance.
- **Unlabelled images.** Every image gets class 0: the DiT is then in effect unconditional, and
  the path runs as it does on labelled data (``dit_training_set``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import DDPMScheduler, DiTTransformer2DModel
from diffusers.models.embeddings import LabelEmbedding

from liftkd.config import Profile
from liftkd.data import ImageSet, load_splits, to_model_range
from liftkd.method.losses import task_loss
from liftkd.models.presets import build_dit
from liftkd.models.pruning import prune, prune_depth
from liftkd.training.diffusion import forward_noise, noise_scheduler
from liftkd.training.distill import shared_labels
from liftkd.training.sampling import ddim_sample
from liftkd.training.train import TrainResult, train

DIT_DIR = "dit"


def fix_label_dropout(model: DiTTransformer2DModel) -> DiTTransformer2DModel:
    """Switch off the label dropout inside ``model`` (the null-class embedding stays)."""
    for m in model.modules():
        if isinstance(m, LabelEmbedding):
            m.dropout_prob = 0.0
    return model


def null_class(model: DiTTransformer2DModel) -> int:
    return int(model.config.num_embeds_ada_norm)


def dit_denoising_loss(scheduler: DDPMScheduler, label_drop: float, null: int):
    """The DiT teacher's ``L_task`` (mean reduction) on the batch's labels, ``label_drop`` of them
    replaced by the null class."""

    def loss_fn(model, x0, g, progress, part=slice(None), labels=None):
        if labels is None:
            raise ValueError("a class-conditional DiT trains on labelled images")
        x_t, t, noise = forward_noise(scheduler, x0, g)
        y = shared_labels(labels, g, label_drop, null)
        pred = model(x_t[part], t[part], class_labels=y[part]).sample
        return task_loss(pred, noise[part], reduction="mean"), {}

    return loss_fn


def dit_training_set(profile: Profile) -> tuple[ImageSet, int]:
    """The DiT path's training images with their labels, and how many classes it samples: the
    data's own labels (at most ``dit.num_classes`` of them), or, for unlabelled images, class 0 for
    every image (one class: an unconditional DiT)."""
    train_set, _ = load_splits(profile.data)
    if train_set.labels is None:
        return ImageSet(train_set.images, torch.zeros(len(train_set), dtype=torch.int64)), 1
    classes = int(train_set.labels.max()) + 1
    if classes > profile.dit.num_classes:
        raise ValueError(
            f"the data has {classes} classes but the DiT embeds {profile.dit.num_classes}: "
            f"set dit.num_classes: {classes}"
        )
    return train_set, classes


def train_dit_teacher(profile: Profile, run_dir: str | Path, progress: bool = True) -> TrainResult:
    """Train (or resume) the DiT teacher in ``run_dir/dit/teacher``; the result's ``ema`` is it."""
    train_set, _ = dit_training_set(profile)
    torch.manual_seed(profile.dit_kd.teacher.seed)
    model = fix_label_dropout(
        build_dit(profile.dit, profile.data.resolution, profile.data.channels)
    )
    loss_fn = dit_denoising_loss(
        noise_scheduler(profile.diffusion), profile.dit_kd.label_drop, null_class(model)
    )
    return train(
        model,
        loss_fn,
        train_set.images,
        profile.dit_kd.teacher,
        Path(run_dir) / DIT_DIR / "teacher",
        "DiT teacher",
        progress,
        labels=train_set.labels,
    )


def uniform_blocks(n_blocks: int, keep: int) -> list[int]:
    """``keep`` evenly spaced block indices out of ``n_blocks``, the first one 0."""
    if not 1 <= keep <= n_blocks:
        raise ValueError(f"keep must be in [1, {n_blocks}], got {keep}")
    return sorted({i * n_blocks // keep for i in range(keep)})


def paired_blocks(keep: list[int], n_blocks: int) -> list[int]:
    """The teacher block each kept block is held to: the last teacher block before the next kept
    one (its output is what the next kept block reads in the teacher), the last block for the last."""
    keep = sorted(keep)
    return [nxt - 1 for nxt in keep[1:]] + [n_blocks - 1]


@torch.no_grad()
def calibration_loss(
    model: DiTTransformer2DModel,
    x_t: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
    labels: torch.Tensor,
    blocks: list[int] | None = None,
) -> float:
    """The denoising loss of ``model`` (or of it with only ``blocks``) on one fixed batch."""
    if blocks is not None:
        model = prune_depth(model, blocks)
    pred = model.eval()(x_t, t, class_labels=labels).sample
    return float(task_loss(pred, noise, reduction="mean"))


def calibration_blocks(
    teacher: DiTTransformer2DModel,
    keep: int,
    images: torch.Tensor,
    labels: torch.Tensor,
    scheduler: DDPMScheduler,
    seed: int = 0,
) -> tuple[list[int], list[dict]]:
    """Greedy block removal by calibration loss: (kept indices, one row per removal)."""
    g = torch.Generator().manual_seed(seed)
    x_t, t, noise = forward_noise(scheduler, images, g)
    kept = list(range(len(teacher.transformer_blocks)))
    rows = []
    while len(kept) > keep:
        losses = {
            b: calibration_loss(teacher, x_t, t, noise, labels, [k for k in kept if k != b])
            for b in kept
        }
        drop = min(losses, key=losses.get)
        kept.remove(drop)
        rows.append({"removed": drop, "loss": losses[drop], "blocks_left": len(kept)})
    return kept, rows


def make_student(
    profile: Profile, teacher: DiTTransformer2DModel, progress: bool = False
) -> tuple[DiTTransformer2DModel, dict]:
    """The DiT student of the profile and what made it: (student, {keep, pairs, ...})."""
    cfg = profile.dit_kd
    n = len(teacher.transformer_blocks)
    info: dict = {"teacher_blocks": n, "selection": cfg.selection}
    if cfg.selection == "uniform":
        keep = uniform_blocks(n, cfg.keep)
    else:
        train_set, _ = dit_training_set(profile)
        batch = train_set.random_subset(min(256, len(train_set)), seed=0)
        keep, info["calibration"] = calibration_blocks(
            teacher,
            cfg.keep,
            to_model_range(batch.images),
            batch.labels,
            noise_scheduler(profile.diffusion),
        )
    student = prune_depth(teacher, keep)
    if cfg.width_ratio > 0:
        student, report = prune(student, cfg.width_ratio, "magnitude", progress=progress)
        info["width_report"] = report.to_dict()
    info.update(keep=keep, pairs=paired_blocks(keep, n))
    return fix_label_dropout(student), info


def class_eps(model: DiTTransformer2DModel, labels: torch.Tensor, guidance: float = 1.0):
    """``eps_fn(x, t)`` of a DiT for images of ``labels`` (guidance > 1: classifier-free)."""
    null = torch.full_like(labels, null_class(model))

    def eps_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps = model(x, t, class_labels=labels.to(x.device)).sample[:, : x.shape[1]]
        if guidance == 1.0:
            return eps
        eps_u = model(x, t, class_labels=null.to(x.device)).sample[:, : x.shape[1]]
        return eps_u + guidance * (eps - eps_u)

    return eps_fn


def sample_dit(
    model: DiTTransformer2DModel,
    profile: Profile,
    n: int,
    seed: int = 0,
    ddim_steps: int = 25,
    batch_size: int = 250,
    guidance: float = 1.0,
    device: str | torch.device = "cpu",
    classes: int | None = None,
) -> torch.Tensor:
    """``n`` uint8 images, image i of class i mod ``classes`` (None: ``dit.num_classes``) and
    from seed + i."""
    model = model.to(device).eval()
    classes = classes or profile.dit.num_classes
    shape = (profile.data.channels, profile.data.resolution, profile.data.resolution)
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        labels = torch.arange(start, start + b) % classes
        out.append(
            ddim_sample(
                class_eps(model, labels, guidance),
                noise_scheduler(profile.diffusion),
                b,
                shape,
                num_inference_steps=ddim_steps,
                seed=seed + start,
                batch_size=b,
                device=device,
                progress=False,
            )
        )
    return torch.cat(out)


def dit_backbone(profile: Profile, run_dir: str | Path, progress: bool = True):
    """(the DiT path's ``liftkd.stages.kd_job.Backbone``, what made its student, the teacher's training
    result): the teacher trained (or resumed) here."""
    from liftkd.stages.kd_job import Backbone

    result = train_dit_teacher(profile, run_dir, progress)
    teacher = fix_label_dropout(result.ema.eval().requires_grad_(False))
    student, info = make_student(profile, teacher)
    train_set, info["classes"] = dit_training_set(profile)
    res, ch = profile.data.resolution, profile.data.channels
    cfg, classes = profile.dit_kd, info["classes"]

    def example():
        return {
            "hidden_states": torch.randn(2, ch, res, res),
            "timestep": torch.tensor([10, 500]),
            "class_labels": torch.tensor([0, 1]),
        }

    def sampler(model, n):
        return sample_dit(
            model, profile, n, 0, cfg.kd.ddim_steps, guidance=cfg.guidance, classes=classes
        )

    backbone = Backbone(
        name=DIT_DIR,
        teacher=teacher,
        student=student,
        data=train_set.images,
        sampler=sampler,
        example=example,
        labels=train_set.labels,
        label_drop=cfg.label_drop,
        null_class=null_class(teacher),
        options={"teacher_blocks": tuple(info["pairs"])},
    )
    return backbone, info, result
