"""The capacity floor: how far the teacher can be cut before a student cannot learn at all.

For every ratio of ``capacity.ratios`` the pruned architecture (the sweep's student at that ratio,
same shapes) is re-initialised and trained from scratch with the denoising loss alone, no teacher,
on one short budget (``capacity.train``); each is then sampled and scored as the sweep scores its
students (``distill.eval_samples`` images, ``distill.eval_ddim_steps`` DDIM steps, FID with its
standard error). A ratio whose student's FID stays above the recognisable threshold
(``liftkd.measure.rules.recognisable_threshold``) is below the floor: KD at that ratio distils into a
model that cannot generate, and every comparison of objectives there says nothing.

Each ratio trains in ``run_dir/capacity/r<ratio>/`` (resumable) and leaves ``result.json``.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import load_splits
from liftkd.locks import replacing
from liftkd.measure.evaluation import eval_profile, fid_with_se, sample
from liftkd.measure.metrics import count_parameters
from liftkd.runs import load_torch, save_torch
from liftkd.stages.students import get_student
from liftkd.stages.sweep.pixel import reference
from liftkd.stages.teacher import denoising_loss
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.train import train

CAPACITY_DIR = "capacity"
RESULT = "result.json"


def from_scratch(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """A copy of ``model`` with the same shapes and freshly initialised weights."""
    torch.manual_seed(seed)
    fresh = copy.deepcopy(model)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh.train().requires_grad_(True)


def train_from_scratch(
    profile: Profile, run_dir: str | Path, teacher: torch.nn.Module, ratio: float, progress=True
) -> dict:
    """Train the ratio's architecture from scratch (or find it trained) and score it."""
    folder = Path(run_dir) / CAPACITY_DIR / f"r{ratio:g}"
    done = folder / RESULT
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    cfg = profile.capacity.train
    pruned, report = get_student(profile, run_dir, teacher, ratio, progress=False)
    model = from_scratch(pruned, cfg.seed)
    images, _ = load_splits(profile.data)
    loss_fn = denoising_loss(noise_scheduler(profile.diffusion), cfg.antithetic)
    result = train(model, loss_fn, images.images, cfg, folder, f"from scratch r{ratio:g}", progress)
    ev = eval_profile(profile)
    generated = sample(result.ema, ev, progress=False)
    scores = fid_with_se(ev, run_dir, generated)
    tail = [r["loss"] for r in result.history[-100:]]
    out = {
        "ratio": ratio,
        "params": count_parameters(pruned),
        "param_share": count_parameters(pruned) / report["params_before"],
        "widths": [b.resnets[0].conv1.out_channels for b in pruned.down_blocks],
        "steps": cfg.steps,
        "final_loss": statistics.fmean(tail) if tail else float("nan"),
        **scores,
        "n_samples": len(generated),
        "seconds": time.perf_counter() - t0,
    }
    save_torch(generated[:20].clone(), folder / "samples.pt")
    with replacing(done) as tmp:
        tmp.write_text(json.dumps(out, indent=1) + "\n")
    return out


def capacity_floor(
    profile: Profile, run_dir: str | Path, teacher: torch.nn.Module, progress: bool = True
) -> dict:
    """Every ratio of ``capacity.ratios`` trained from scratch: ``{"rows", "threshold",
    "teacher_fid", "highest_generating"}``; the threshold and the teacher's FID are the sweep's
    (``liftkd.stages.sweep.pixel.reference``, computed once per run)."""
    ref = reference(profile, run_dir, teacher, progress=progress)
    rows = [
        train_from_scratch(profile, run_dir, teacher, r, progress)
        for r in sorted(profile.capacity.ratios)
    ]
    threshold = ref["recognisable"]
    for row in rows:
        row["generates"] = row["fid"] < threshold
    generating = [r["ratio"] for r in rows if r["generates"]]
    return {
        "rows": rows,
        "threshold": threshold,
        "teacher_fid": ref["teacher"]["fid"],
        "highest_generating": max(generating) if generating else None,
    }


def samples(run_dir: str | Path, rows: list[dict]) -> dict[str, torch.Tensor]:
    """``{"r0.8 (FID x)": 20 samples}`` of each from-scratch student, for a figure."""
    out = {}
    for r in rows:
        path = Path(run_dir) / CAPACITY_DIR / f"r{r['ratio']:g}" / "samples.pt"
        if path.exists():
            out[f"{r['ratio']:.0%} (FID {r['fid']:.0f})"] = load_torch(path, "from-scratch samples")
    return out
