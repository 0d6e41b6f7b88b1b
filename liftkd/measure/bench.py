"""Benchmarks (``make bench``): cost of each objective, and sampling latency of pruned students.

Run as ``python -m liftkd.measure.bench --out figures/bench``. Writes ``objectives.csv`` and
``objectives.md`` (forward+backward of each objective against OutKD, and its share of a whole
KD step), ``latency.csv`` / ``latency.md`` (DDIM seconds per image of the cpu teacher and its
students at 0.3-0.9 pruning) and ``side_by_side.csv`` / ``.md`` (what one teacher forward for
all of a ratio's students saves against training them one at a time). Numbers are from this machine and its thread count, recorded beside
them with the versions and the commit.

A "KD step" here is what a distillation step costs besides the objective: a teacher forward
pass, a student forward and backward pass and an optimiser step, with the cpu profile's U-Net
(30, 60, 120) as teacher and its 90%-pruned student, at the resolution and channel count of each
row. The paper's models are larger, so this step is cheaper than theirs and the share is an upper
bound of what the objective costs there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from liftkd.config import get_profile
from liftkd.method.objectives import build_objective
from liftkd.models.presets import build_unet
from liftkd.models.pruning import prune
from liftkd.results.plots import write_table
from liftkd.runs import write_results
from liftkd.training.diffusion import forward_noise, noise_scheduler

# (name, channels, resolution): every profile's output size, and the paper's pixel-space ones
SIZES = [
    ("smoke 8x8", 1, 8),
    ("cpu 16x16", 1, 16),
    ("mnist 28x28", 1, 28),
    ("cifar 32x32x3", 3, 32),
    ("celeba 64x64x3", 3, 64),
]
OBJECTIVES_FILE = "objectives.csv"


def place_label(group_size: int) -> str:
    """The row label of PLACE with K = ``group_size`` in ``objectives.csv``."""
    return f"lift+place K={group_size}"


OBJECTIVES = [
    ("outkd", {}),
    ("lift", {}),
    # remainder="merge" where K does not divide H*W (28x28 and K=64: 784 = 11 * 64 + 80)
    *((place_label(k), {"group_size": k, "remainder": "merge"}) for k in (4, 16, 64)),
    ("dist", {}),
]


def place_overhead_pct(bench_dir: str | Path, resolution: int, group_size: int) -> float | None:
    """PLACE's share of a KD step (percent) at ``resolution`` from ``make bench``'s results in
    ``bench_dir``; None when they are missing or have no such row."""
    import csv

    path = Path(bench_dir) / OBJECTIVES_FILE
    if not path.exists():
        return None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            same_size = row["shape"].endswith(f"x{resolution}x{resolution}")
            if same_size and row["objective"] == place_label(group_size):
                return float(row["share_of_kd_step_pct"])
    return None


def _best_time(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def objective_seconds(name: str, options: dict, eps, eS, eT, repeats: int) -> float:
    objective = build_objective(name.split(" ")[0], **options)
    leaf = eS.detach().clone().requires_grad_()

    def step():
        out = objective(eps, leaf, eT, progress=0.5)
        out.total.backward()
        leaf.grad = None

    return _best_time(step, repeats)


def kd_step_seconds(channels: int, resolution: int, batch: int, repeats: int) -> float:
    p = get_profile("cpu")
    teacher = build_unet(p.unet, resolution, channels).eval()
    student, _ = prune(teacher, 0.9, "magnitude", progress=False)
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-4)
    sched = noise_scheduler(p.diffusion)
    x0 = torch.rand(batch, channels, resolution, resolution) * 2 - 1
    x_t, t, _ = forward_noise(sched, x0, torch.Generator().manual_seed(0))

    def step():
        with torch.no_grad():
            eT = teacher(x_t, t).sample
        eS = student(x_t, t).sample
        loss = (eS - eT).square().mean()  # a stand-in objective; its own cost is measured apart
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return _best_time(step, repeats, warmup=1)


def bench_objectives(batch: int, repeats: int) -> list[dict]:
    rows = []
    for label, channels, res in SIZES:
        g = torch.Generator().manual_seed(0)
        shape = (batch, channels, res, res)
        eT = torch.randn(shape, generator=g)
        eS = 0.8 * eT + 0.3 * torch.randn(shape, generator=g)
        eps = torch.randn(shape, generator=g)
        step = kd_step_seconds(channels, res, batch, max(2, repeats // 5))
        base = None
        for name, options in OBJECTIVES:
            sec = objective_seconds(name, options, eps, eS, eT, repeats)
            base = sec if name == "outkd" else base
            rows.append(
                {
                    "size": label,
                    "shape": "x".join(map(str, shape)),
                    "objective": name,
                    "fwd_bwd_ms": 1e3 * sec,
                    "vs_outkd": sec / base,
                    "kd_step_ms": 1e3 * step,
                    "share_of_kd_step_pct": 100 * sec / (step + sec),
                }
            )
            print(
                f"{label:>15} {name:>16}: {1e3 * sec:8.3f} ms, {100 * sec / (step + sec):5.2f}% of a KD step"
            )
    return rows


def bench_latency(batch: int) -> list[dict]:
    from liftkd.measure.evaluation import costs

    p = get_profile("cpu")
    teacher = build_unet(p.unet, p.data.resolution, p.data.channels).eval()
    rows = []
    base = costs(teacher, p, latency_batch=batch)
    rows.append({"model": "teacher", "ratio": 0.0, **base, "latency_vs_teacher": 1.0})
    for ratio in (0.3, 0.5, 0.7, 0.9):
        student, _ = prune(teacher, ratio, "magnitude", progress=False)
        c = costs(student, p, latency_batch=batch)
        rows.append(
            {
                "model": f"student {ratio}",
                "ratio": ratio,
                **c,
                "latency_vs_teacher": c["latency_s_per_image"] / base["latency_s_per_image"],
            }
        )
        print(
            f"student {ratio}: {1e3 * c['latency_s_per_image']:.2f} ms/image ({rows[-1]['latency_vs_teacher']:.2f}x)"
        )
    return rows


def group_step_seconds(members: dict, teacher, batch: int, res: int, repeats: int) -> float:
    """One side-by-side KD step (teacher forward, every student's forward/backward, clipping,
    AdamW) of a ``KDGroup`` made of ``members``."""
    from liftkd.training.distill import KDGroup, kd_group_loss_fn
    from liftkd.training.train import step_generator

    group = KDGroup(members)
    loss_fn = kd_group_loss_fn(teacher, noise_scheduler(get_profile("cpu").diffusion), 1000)
    opt = torch.optim.AdamW(group.parameters(), lr=1e-4)
    x0 = torch.rand(batch, 1, res, res) * 2 - 1

    def step():
        loss, _ = loss_fn(group, x0, step_generator(0, 0), 0.5)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        group.clip_gradients(1.0)
        opt.step()

    return _best_time(step, repeats, warmup=1)


def bench_side_by_side(batch: int, repeats: int) -> list[dict]:
    """What training a ratio's objectives side by side saves: one group step against the sum of
    one-student steps (each with its own teacher forward), cpu profile, random weights."""
    import copy

    from liftkd.training.distill import KDModule

    p = get_profile("cpu")
    res = p.data.resolution
    teacher = build_unet(p.unet, res, p.data.channels).eval().requires_grad_(False)
    example = {"sample": torch.randn(2, 1, res, res), "timestep": torch.tensor([10, 500])}
    rows = []
    for ratio in p.distill.ratios:
        student, _ = prune(teacher, ratio, "magnitude", progress=False)
        members = {}
        for name in p.distill.objectives:
            s = copy.deepcopy(student).train()
            opts = {"group_size": p.distill.group_size} if name == "lift+place" else {}
            members[name] = KDModule(s, build_objective(name, s, teacher, example, **opts))
        alone = sum(
            group_step_seconds({n: copy.deepcopy(m)}, teacher, batch, res, repeats)
            for n, m in members.items()
        )
        together = group_step_seconds(members, teacher, batch, res, repeats)
        rows.append(
            {
                "ratio": ratio,
                "students": len(members),
                "separate_s_per_step": alone,
                "side_by_side_s_per_step": together,
                "saving_pct": 100 * (1 - together / alone),
            }
        )
        print(f"{ratio:.0%}: separately {alone:.3f} s, side by side {together:.3f} s per step")
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m liftkd.measure.bench", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", default="figures/bench", help="folder for the tables and bench.json")
    ap.add_argument(
        "--batch", type=int, default=32, help="batch size of the objective and KD steps"
    )
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats (the best is kept)")
    ap.add_argument("--latency-batch", type=int, default=64, help="images per sampling-latency run")
    ap.add_argument("--skip-latency", action="store_true", help="leave out the sampling latency")
    ap.add_argument(
        "--skip-side-by-side", action="store_true", help="leave out the side-by-side saving"
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    rows = bench_objectives(args.batch, args.repeats)
    write_table(
        rows,
        out / Path(OBJECTIVES_FILE).stem,
        f"Objective cost, forward+backward, batch {args.batch}, "
        f"{torch.get_num_threads()} CPU threads",
    )
    results = {"objectives": rows, "settings": vars(args)}
    if not args.skip_latency:
        lat = bench_latency(args.latency_batch)
        write_table(
            lat,
            out / "latency",
            f"DDIM sampling latency per image, cpu profile, batch {args.latency_batch}",
        )
        results["latency"] = lat
    if not args.skip_side_by_side:
        sbs = bench_side_by_side(args.batch, max(3, args.repeats // 4))
        write_table(
            sbs,
            out / "side_by_side",
            f"A ratio's objectives trained side by side (one teacher forward) against one at a "
            f"time, batch {args.batch}, {torch.get_num_threads()} CPU threads",
        )
        results["side_by_side"] = sbs
    write_results(out / "bench.json", results, notebook="make bench")


if __name__ == "__main__":
    main()
