"""One training loop for every model of the project, on Hugging Face accelerate.

``train(model, loss_fn, images, cfg, run_dir)`` runs ``cfg.steps`` optimisation steps of
``loss_fn(model, x0, generator, progress, part) -> (loss, parts)`` on batches drawn from
``images`` (``progress`` is the share of training done, in [0, 1)); the same code runs on a CPU,
one GPU, or several (``accelerate launch``). ``images`` are uint8 pixels (scaled to [-1, 1]) or
float latents (used as they are); with ``labels`` (one class per image) the loss is also given
the batch's classes, ``loss_fn(..., labels=y)``.

**Several processes.** ``cfg.batch_size`` is the global batch. Every process draws the same
batch, noise and timesteps from the step's generator, and computes its loss on its own slice
``part`` of them (process k of P: rows k * B/P to (k + 1) * B/P); the data-parallel wrapper
averages the gradients, which for a loss averaged over the batch is the gradient of the whole
batch. So a run on P processes ends where the one-process run ends, to float tolerance (a
statistic taken over the batch inside a loss, such as LIFT's adaptive weight, is taken over each
slice). B must be a multiple of P. With ``keep_snapshots=True`` (or ``"model"``) the weights at
every checkpoint are also kept, as ``run_dir/snapshots/step_K.pt``, for analyses over training;
with ``"ema"`` their EMA is kept instead (what evaluations over training sample from);
``snapshot_every`` keeps only the checkpoints at multiples of it (and the last).

A model that defines ``clip_gradients(max_norm) -> norm`` clips its own gradients (a group of
students side by side clips each student on its own); others are clipped as one.

What it guarantees:

- **Resume.** A checkpoint (model, EMA, optimiser, step) is written atomically to
  ``run_dir/checkpoint.pt`` every ``cfg.checkpoint_every`` steps and at the end, after the steps'
  losses are appended to ``run_dir/history.csv`` (``liftkd.training.train_state``: the files and how they
  are read back). Running the same call again continues from it; a finished run returns at once
  without training.
- **Reproducibility.** Step ``k`` draws its batch indices, noise, timesteps and dropout from a
  generator seeded by ``(cfg.seed, k)``, so the same seed gives the same losses, and a resumed
  run the same losses as an uninterrupted one.
- **Divergence.** A non-finite loss or gradient norm raises :class:`TrainingDiverged` naming the
  step; the last good checkpoint stays on disk untouched.

Long because these guarantees hold together in one loop (a checkpoint, its snapshots, the resume
check and the divergence stop share the loop's state); split, they would be harder to check.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from liftkd.config import SettingsError, TrainConfig
from liftkd.data import to_model_range
from liftkd.locks import exclusive
from liftkd.runs import save_torch
from liftkd.training.train_state import (
    CHECKPOINT,
    HISTORY,
    SNAPSHOTS,
    append_history,
    check_resumable,
    config_dict,
    history_of,
    read_checkpoint,
    snapshot_path,
    write_history,
)

LossFn = Callable[
    [torch.nn.Module, torch.Tensor, torch.Generator, float, slice], tuple[torch.Tensor, dict]
]


class TrainingDiverged(RuntimeError):
    """The loss or the gradient became NaN or infinite."""

    def __init__(self, message: str, step: int, last_good_step: int | None):
        super().__init__(message)
        self.step = step
        self.last_good_step = last_good_step


@dataclass
class TrainResult:
    model: torch.nn.Module  # the trained weights (unwrapped, on CPU)
    ema: torch.nn.Module  # their exponential moving average: use this one for sampling
    history: list[dict] = field(default_factory=list)  # one row per step
    resumed_from: int | None = None  # the checkpoint step a run continued from, if any
    steps_run: int = 0  # optimisation steps taken by this call
    seconds: float = 0.0  # wall time of this call


def step_generator(seed: int, step: int) -> torch.Generator:
    """The generator of one step: independent streams for every (seed, step)."""
    state = np.random.SeedSequence([seed, step, 0]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to ``cfg.lr_min`` at ``cfg.steps``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


def describe_schedule(cfg: TrainConfig) -> str:
    """A reader's line for ``cfg``'s optimiser and learning-rate schedule (``lr_at``)."""
    optimiser = {"adamw": "AdamW", "adam": "Adam"}[cfg.optimizer]
    if cfg.lr_min == cfg.lr:
        shape = f"flat at {cfg.lr:g}" + (
            f" after {cfg.warmup_steps} warm-up steps" if cfg.warmup_steps else ""
        )
    else:
        shape = (
            f"{cfg.warmup_steps} warm-up steps to {cfg.lr:g}, then cosine decay to {cfg.lr_min:g}"
        )
    return f"{optimiser}, {shape} (liftkd.training.train.lr_at)"


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    ema_p = [p for p in ema.parameters()]
    model_p = [p.detach() for p in model.parameters()]
    torch._foreach_lerp_(ema_p, model_p, 1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay with a warm-up, so that short runs are not dominated by the initial weights."""
    return min(decay, (1 + step) / (10 + step))


BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def set_threads(threads: int | None) -> int:
    """Use ``threads`` CPU threads (None: leave the defaults): torch's, and numpy's BLAS too (the
    bootstrap and the FID statistics). Two jobs side by side on one thread each would otherwise
    each run BLAS on every core: the FID bootstrap measured 40x slower that way (14.5 s against
    0.35 s for 500 images, docs/experiments.md). Returns torch's number in use."""
    if threads:
        torch.set_num_threads(int(threads))
        for name in BLAS_THREAD_VARIABLES:  # for BLAS libraries loaded from now on
            os.environ[name] = str(int(threads))
        threadpool_limits(limits=int(threads))  # and for the ones loaded already (numpy's)
    return torch.get_num_threads()


def train(
    model: torch.nn.Module,
    loss_fn: LossFn,
    images: torch.Tensor,
    cfg: TrainConfig,
    run_dir: str | Path,
    desc: str = "train",
    progress: bool = True,
    accelerator: Accelerator | None = None,
    keep_snapshots: bool | str = False,
    snapshot_every: int | None = None,
    labels: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` on uint8 ``images`` or float latents (N, C, H, W); see the module docstring.

    One process at a time trains in ``run_dir``: a second one is refused at once
    (:class:`liftkd.locks.FolderBusyError`) rather than racing the first for its checkpoint. A
    finished training writes nothing, so any number of processes load it at once (the jobs of
    ``make -j2`` each load the run's teacher)."""
    args = (model, loss_fn, images, cfg, Path(run_dir), desc, progress, accelerator)
    more = (keep_snapshots, snapshot_every, labels)
    ckpt_path = Path(run_dir) / CHECKPOINT
    ckpt = read_checkpoint(ckpt_path)
    if ckpt is not None and ckpt.get("step", 0) >= cfg.steps:
        return _train(*args, *more, ckpt)
    with exclusive(run_dir, f"training {desc!r}"):
        # read again under the lock: another process may have trained on since the first read
        return _train(*args, *more, read_checkpoint(ckpt_path))


def _train(
    model,
    loss_fn,
    images,
    cfg,
    run_dir,
    desc,
    progress,
    accelerator,
    keep_snapshots,
    snapshot_every,
    labels,
    ckpt,
) -> TrainResult:
    if images.ndim != 4 or not (images.dtype == torch.uint8 or images.is_floating_point()):
        raise ValueError(
            "images must be uint8 pixels or float latents (N, C, H, W), got "
            f"{images.dtype} {tuple(images.shape)}"
        )
    if labels is not None and labels.shape != (len(images),):
        raise ValueError(
            f"labels must hold one class per image ({len(images)}), got {tuple(labels.shape)}"
        )
    if cfg.steps is None:
        raise SettingsError(f"{desc}: no step count given (steps is None): set the steps to train")
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise ValueError(
            f"steps and batch_size must be positive, got {cfg.steps}, {cfg.batch_size}"
        )
    if keep_snapshots not in (False, True, "model", "ema", None):
        raise ValueError(
            f"keep_snapshots must be False, True, 'model' or 'ema', got {keep_snapshots!r}"
        )
    snapshot_ema = keep_snapshots == "ema"
    t_call = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT
    # without a GPU, accelerate forms a process group only when told the run is on the CPU
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    P = accelerator.num_processes
    if cfg.batch_size % P:
        raise ValueError(
            f"batch_size {cfg.batch_size} is the global batch: it must be a multiple of the "
            f"{P} processes"
        )
    local = cfg.batch_size // P
    part = slice(accelerator.process_index * local, (accelerator.process_index + 1) * local)

    ema = copy.deepcopy(model).requires_grad_(False).eval()
    optimizers = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
    opt = optimizers[cfg.optimizer](model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, resumed_from = 0, [], None
    if ckpt is not None:
        check_resumable(ckpt["config"], cfg, ckpt_path)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        start, history, resumed_from = ckpt["step"], history_of(ckpt, run_dir), ckpt["step"]
        if start < cfg.steps:
            accelerator.print(f"[{desc}] resuming from step {start} of {cfg.steps} ({ckpt_path})")
    if start >= cfg.steps:
        return TrainResult(
            model.eval(), ema, history, resumed_from, 0, time.perf_counter() - t_call
        )
    # the history file from here on holds exactly the checkpoint's rows, then grows by appending
    written = 0
    if history and accelerator.is_main_process:
        write_history(history, run_dir / HISTORY)
        written = len(history)

    model.train()
    model, opt = accelerator.prepare(model, opt)
    ema.to(accelerator.device)
    last_good = resumed_from

    def save(step: int) -> None:
        nonlocal written
        if accelerator.is_main_process:
            # the history first: the checkpoint never counts rows the file does not hold
            written = append_history(history, written, run_dir / HISTORY)
            save_torch(
                {
                    "step": step,
                    "model": accelerator.unwrap_model(model).state_dict(),
                    "ema": ema.state_dict(),
                    "optimizer": opt.state_dict(),
                    "history_rows": len(history),
                    "config": config_dict(cfg),
                },
                ckpt_path,
            )
            if keep_snapshots and (step % (snapshot_every or 1) == 0 or step == cfg.steps):
                (run_dir / SNAPSHOTS).mkdir(exist_ok=True)
                weights = ema if snapshot_ema else accelerator.unwrap_model(model)
                save_torch(weights.state_dict(), snapshot_path(run_dir, step))
        accelerator.wait_for_everyone()

    if keep_snapshots and start == 0 and accelerator.is_main_process:
        (run_dir / SNAPSHOTS).mkdir(exist_ok=True)
        save_torch(accelerator.unwrap_model(model).state_dict(), snapshot_path(run_dir, 0))
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=desc,
        disable=not (progress and accelerator.is_main_process),
    )
    for step in range(start, cfg.steps):
        g = step_generator(cfg.seed, step)  # one global batch: the same on every process
        torch.manual_seed(g.initial_seed())  # dropout and anything else drawing from the global RNG
        lr = lr_at(step, cfg)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(images), (cfg.batch_size,), generator=g)
        x0 = images[idx] if images.is_floating_point() else to_model_range(images[idx])
        x0 = x0.to(accelerator.device)
        cond = {} if labels is None else {"labels": labels[idx].to(accelerator.device)}
        loss, parts = loss_fn(model, x0, g, step / cfg.steps, part, **cond)
        # what is logged and checked is the whole batch's: the mean over the processes' slices
        logged = loss.detach()
        if P > 1:
            logged = accelerator.reduce(logged, reduction="mean")
            parts = {
                k: accelerator.reduce(
                    torch.as_tensor(v, dtype=torch.float32, device=logged.device), reduction="mean"
                )
                for k, v in parts.items()
            }
        bad = None
        if not torch.isfinite(logged):
            bad = f"loss became {logged.item()}"
        else:
            opt.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            unwrapped = accelerator.unwrap_model(model)
            if hasattr(unwrapped, "clip_gradients"):
                grad_norm = unwrapped.clip_gradients(cfg.grad_clip)
            else:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if not torch.isfinite(grad_norm):
                bad = f"gradient norm became {grad_norm.item()}"
        if bad is not None:
            write_history(history, run_dir / "history_until_divergence.csv")
            where = (
                f"step {last_good} in {ckpt_path}" if last_good is not None else "none was written"
            )
            bar.close()
            raise TrainingDiverged(
                f"[{desc}] {bad} at step {step}; last good checkpoint: {where}", step, last_good
            )
        opt.step()
        ema_update(ema, accelerator.unwrap_model(model), ema_decay_at(step, cfg.ema_decay))
        row = {"step": step, "loss": logged.item(), "lr": lr, "grad_norm": float(grad_norm)}
        row.update({k: float(v) for k, v in parts.items()})
        history.append(row)
        bar.update()
        bar.set_postfix(loss=f"{row['loss']:.4f}")
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            save(done)
            last_good = done
    bar.close()
    unwrapped = accelerator.unwrap_model(model).cpu().eval()
    return TrainResult(
        unwrapped, ema.cpu(), history, resumed_from, cfg.steps - start, time.perf_counter() - t_call
    )
