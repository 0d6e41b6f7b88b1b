"""Figures and tables drawn from saved results: sample grids, curves, maps, bars, Markdown.

Every function writes its figure to ``path`` and returns it, so that a notebook shows it too.

Long because it holds one function per kind of figure the notebooks draw (about twenty short
ones), so that no notebook builds a figure by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; notebooks still show the returned figures
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def image_grid(images: torch.Tensor, nrow: int = 10) -> np.ndarray:
    """uint8 (N, C, H, W) -> one (rows*H, nrow*W, C) array with 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = int(np.ceil(n / nrow))
    grid = np.full((rows * (h + 1) - 1, nrow * (w + 1) - 1, c), 255, dtype=np.uint8)
    for i, img in enumerate(images.permute(0, 2, 3, 1).numpy()):
        r, q = divmod(i, nrow)
        grid[r * (h + 1) : r * (h + 1) + h, q * (w + 1) : q * (w + 1) + w] = img
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 10, title: str | None = None):
    grid = image_grid(images, nrow)
    scale = max(1.0, 6.0 / (grid.shape[1] / 40))
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 40 * scale, grid.shape[0] / 40 * scale + 0.4))
    ax.imshow(
        grid.squeeze(-1) if grid.shape[-1] == 1 else grid,
        cmap="gray",
        vmin=0,
        vmax=255,
        interpolation="nearest",
    )
    ax.axis("off")
    if title:
        ax.set_title(title)
    return finish(fig, path)


def loss_curve(
    history: Sequence[dict],
    path: str | Path,
    key: str = "loss",
    smooth: int = 50,
    title: str | None = None,
):
    steps = np.array([row["step"] for row in history])
    values = np.array([row[key] for row in history])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, values, alpha=0.3, lw=0.8, label="per step")
    if len(values) >= smooth:
        kernel = np.ones(smooth) / smooth
        ax.plot(
            steps[smooth - 1 :],
            np.convolve(values, kernel, mode="valid"),
            lw=1.8,
            label=f"mean of {smooth}",
        )
    ax.set_xlabel("step")
    ax.set_ylabel(key)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return finish(fig, path)


def finish(fig, path: str | Path):
    """Lay out, write to ``path`` and return the figure (so that a notebook shows it)."""
    fig.tight_layout()
    _save(fig, path)
    return fig


def _save(fig, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def lines(
    series: dict[str, tuple],
    path: str | Path,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    logx: bool = False,
    ax=None,
    marker: str = "o",
):
    """One line per entry of ``series``: ``{label: (xs, ys)}``."""
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(6, 3.8))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker=marker, ms=4, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if logx:
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    if own:
        return finish(fig, path)
    return ax


def heatmaps(
    maps: dict[str, torch.Tensor],
    path: str | Path,
    ncols: int = 6,
    title: str | None = None,
    shared_scale: bool = False,
):
    """A grid of 2-D maps (error per pixel), each with its own colour scale unless shared."""
    n = len(maps)
    ncols = min(ncols, n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 2.2 * nrows + 0.4), squeeze=False)
    vmax = max(float(m.max()) for m in maps.values()) if shared_scale else None
    for ax, (label, m) in zip(axes.flat, maps.items(), strict=False):
        im = ax.imshow(m.numpy(), cmap="magma", vmin=0, vmax=vmax)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def bars(
    values: dict[str, float],
    path: str | Path,
    ylabel: str,
    title: str | None = None,
    reference: tuple[str, float] | None = None,
    logy: bool = False,
):
    fig, ax = plt.subplots(figsize=(max(4, 1.1 * len(values) + 1), 3.6))
    ax.bar(list(values), list(values.values()), color="#4c72b0")
    for i, v in enumerate(values.values()):
        ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
    if reference is not None:
        ax.axhline(reference[1], color="k", ls="--", lw=1, label=reference[0])
        ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.tick_params(axis="x", labelsize=8, rotation=20)
    if title:
        ax.set_title(title)
    return finish(fig, path)


def markdown_table(
    rows: list[dict] | dict[str, dict],
    title: str | None = None,
    columns: Sequence[str] | None = None,
) -> str:
    """``rows`` (a list of dicts, or ``{name: dict}`` for one row per name) as a Markdown table;
    ``columns`` picks and orders the columns (default: every key, in order of appearance)."""
    if isinstance(rows, dict):
        rows = [{"name": name, **row} for name, row in rows.items()]
    keys = list(columns or dict.fromkeys(k for r in rows for k in r))

    def fmt(v) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    out = ([f"# {title}", ""] if title else []) + [
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    out += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(out) + "\n"


def write_table(rows: list[dict], stem: str | Path, title: str | None = None) -> str:
    """``rows`` as ``stem.csv`` and a Markdown ``stem.md``; returns the Markdown."""
    import csv

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    text = markdown_table(rows, title)
    stem.with_suffix(".md").write_text(text)
    return text


def sample_rows(rows: dict[str, torch.Tensor], path: str | Path, title: str | None = None):
    """One labelled row of uint8 samples per entry: the objectives side by side (nothing is
    drawn, and None returned, when ``rows`` is empty)."""
    n = len(rows)
    if n == 0:
        return None
    fig, axes = plt.subplots(n, 1, figsize=(7, 0.8 * n + 0.5), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items(), strict=True):
        grid = image_grid(images, nrow=len(images))
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return finish(fig, path)


def cost_shares(cost_rows: list[dict], path: str | Path):
    """Parameters, MACs and latency of each student as a share of the teacher's, against ratio."""
    ratios = [r["ratio"] for r in cost_rows]
    series = {
        k: (ratios, [r[k + "_share"] for r in cost_rows])
        for k in ("params", "macs", "latency_s_per_image")
    }
    return lines(
        series,
        path,
        "channel pruning ratio",
        "share of the teacher",
        logy=True,
        title="What pruning removes",
    )


def coarse_share_by_timestep(rows_by_ratio: dict[float, list[dict]], path, title: str):
    """The probe's coarse share of the KD error against the timestep, one line per ratio."""
    series = {
        f"{r:.0%} pruned": ([x["t"] for x in rows], [x["coarse_share"] for x in rows])
        for r, rows in rows_by_ratio.items()
    }
    return lines(series, path, "timestep t", "coarse share of the KD error", title=title)


def coarse_share_during_kd(during_rows: list[dict], path):
    """Two panels over KD steps, one line per ratio: the coarse share and the KD error (means
    over timesteps; rows as ``liftkd.stages.error_study.during_rows`` makes them)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, ylabel, logy in (
        (axes[0], "coarse_share", "coarse share (mean over t)", False),
        (axes[1], "kd_error", "KD error per image (mean over t)", True),
    ):
        series = {}
        for row in during_rows:
            xs, ys = series.setdefault(f"{row['ratio']:.0%} pruned", ([], []))
            xs.append(row["step"])
            ys.append(row[key])
        title = "Coarse share during OutKD" if key == "coarse_share" else "KD error during OutKD"
        lines(series, None, "OutKD step", ylabel, ax=ax, logy=logy, title=title)
    return finish(fig, path)


def probe_corrected_bars(rows: list[dict], path, features: str = "classifier features"):
    """FID of plain and probe-corrected sampling per student, the floor (first row) as a line."""
    return bars(
        {f"{r['model']}\n{r.get('sampler', '')}": r["fid"] for r in rows[1:]},
        path,
        f"FID ({features})",
        title="Probe-corrected sampling",
        reference=("floor", rows[0]["fid"]),
        logy=True,
    )


def kd_losses(losses: dict, labels: dict[str, str], path, title: str):
    """Two panels, one line per objective: the task loss and the whole objective over training
    (``losses`` as ``liftkd.results.report.loss_summary`` makes them)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for spec, curve in losses.items():
        axes[0].plot(curve["step"], curve["task"], label=labels[spec])
        axes[1].plot(curve["step"], curve["loss"], label=labels[spec])
    for ax, name in zip(
        axes, ("task loss $\\|\\epsilon - \\epsilon_S\\|^2$", "objective (total)"), strict=True
    ):
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.suptitle(title)
    return finish(fig, path)


def kd_evaluations(
    evals: list[dict],
    labels: dict[str, str],
    teacher_fid: float,
    path,
    title,
    features: str = "classifier features",
):
    """Two panels over training, one line per objective: FID (the teacher's as a dashed line)
    and the probe's coarse share of the KD error (``evals`` as ``evaluate_job`` returns them)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for spec, label in labels.items():
        mine = sorted((r for r in evals if r["objective"] == spec), key=lambda r: r["step"])
        steps = [r["step"] for r in mine]
        axes[0].plot(steps, [r["fid"] for r in mine], marker="o", label=label)
        axes[1].plot(steps, [r["coarse_share"] for r in mine], marker="o", label=label)
    axes[0].axhline(teacher_fid, color="k", ls="--", lw=1, label="teacher")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(f"FID ({features})")
    axes[1].set_ylabel("coarse share of the KD error")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return finish(fig, path)


def curves_per_ratio(curves: dict[float, dict[str, tuple]], teacher_fid: float, path):
    """One panel per ratio, one FID curve per objective over training, the teacher's dashed."""
    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.8), squeeze=False)
    for ax, ratio in zip(axes[0], sorted(curves), strict=True):
        lines(curves[ratio], None, "step", "FID", title=f"{ratio:.0%} pruned", logy=True, ax=ax)
        ax.axhline(teacher_fid, color="k", ls="--", lw=1)
    return finish(fig, path)


def lift_descent(rows: list[dict], path, title: str):
    """Two panels over gradient steps: the coarse and fine parts of the error, and the
    coefficients with LIFT's weight w (rows as ``liftkd.tutorial.lift_descent`` makes them)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    steps = [r["step"] for r in rows]
    for ax, keys, ylabel in (
        (axes[0], ("coarse", "fine"), "part of the KD error"),
        (axes[1], ("beta0", "beta1", "w"), "coefficient, weight"),
    ):
        series = {k: (steps, [r[k] for r in rows]) for k in keys}
        lines(series, None, "gradient step on eS", ylabel, ax=ax, marker="")
    fig.suptitle(title)
    return finish(fig, path)


def gradient_terms(losses: dict, labels: dict[str, str], path, title: str):
    """Two panels over training: the per-sample gradient norm each term of each objective puts
    on eS (log scale; line style by term), and the cosine of the coarse term's descent direction
    with eT - eS (``losses`` as ``liftkd.results.report.loss_summary`` makes them; nothing is drawn, and
    None returned, when the job logged no diagnostics). A term at zero, such as the fine term
    while w = 0, has no point on the log scale."""
    styles = {"task": ":", "outkd": "-", "coarse": "-", "fine": "--"}
    found = [s for s, c in losses.items() if any(k.startswith("grad_") for k in c)]
    if not found:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))

    def finite(curve, key):  # the windows that hold a diagnostic step, joined up
        xs = np.asarray(curve["step"], dtype=float)
        ys = np.asarray(curve.get(key, [np.nan] * len(xs)), dtype=float)
        keep = np.isfinite(ys)
        return xs[keep], ys[keep]

    for i, spec in enumerate(found):
        curve, colour = losses[spec], f"C{i}"
        for term, ls in styles.items():
            xs, ys = finite(curve, f"grad_{term}")
            if ys.size:
                label = f"{labels[spec]}: {term}"
                axes[0].plot(xs, ys, ls=ls, marker="o", ms=3, color=colour, label=label)
        xs, ys = finite(curve, "cos_coarse")
        if ys.size:
            axes[1].plot(xs, ys, marker="o", ms=3, color=colour, label=labels[spec])
    axes[0].set_yscale("log")
    axes[0].set_ylabel("per-sample gradient norm on eS")
    axes[1].set_ylabel("cosine(coarse descent, eT - eS)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title)
    return finish(fig, path)


def capacity_floor(floor: dict, path, features: str = "classifier features"):
    """FID (log, with standard errors) and final training loss of each ratio's architecture
    trained from scratch, beside the recognisable threshold and the teacher (``floor`` as
    ``liftkd.stages.capacity.capacity_floor`` returns it)."""
    rows = floor["rows"]
    ratios = [r["ratio"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    axes[0].errorbar(
        ratios,
        [r["fid"] for r in rows],
        yerr=[2 * r["fid_se"] for r in rows],
        marker="o",
        capsize=3,
        label="from scratch (± 2 SE)",
    )
    axes[0].axhline(
        floor["threshold"], color="C3", ls="--", label="recognisable below (blurred real)"
    )
    axes[0].axhline(floor["teacher_fid"], color="C2", ls=":", label="teacher")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(f"FID ({features})")
    axes[1].plot(ratios, [r["final_loss"] for r in rows], marker="o")
    axes[1].set_ylabel("training loss, last 100 steps")
    for ax in axes:
        ax.set_xlabel("channel pruning ratio")
        ax.grid(alpha=0.3)
    for r in rows:
        axes[0].annotate(
            f"{r['param_share']:.1%}",
            (r["ratio"], r["fid"]),
            fontsize=7,
            textcoords="offset points",
            xytext=(4, 4),
        )
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"capacity floor: students trained from scratch for {rows[0]['steps']} steps "
        "(labels: share of the teacher's parameters)"
    )
    return finish(fig, path)


def final_fids(rows: list[dict], path, title: str, reference: float | None = None):
    """Each objective's final FID: every seed (a point) and the spread over seeds (the mean and
    its range across them, in black) (``rows``: the students of one ratio, as
    ``liftkd.stages.kd_job.summarise`` makes them; each seed's own SE is in the paired figure)."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(
        {"objective": r["label"], "seed": f"seed {int(r['seed'])}", "fid": float(r["fid"])}
        for r in rows
    )
    labels = list(dict.fromkeys(df["objective"]))
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(labels)), 3.8))
    sns.stripplot(
        data=df,
        x="objective",
        y="fid",
        hue="seed",
        order=labels,
        dodge=df["seed"].nunique() > 1,
        size=6,
        ax=ax,
    )
    sns.pointplot(
        data=df,
        x="objective",
        y="fid",
        order=labels,
        errorbar=("pi", 100),  # the range over seeds
        color="k",
        markers="_",
        markersize=14,
        linestyle="none",
        capsize=0.15,
        ax=ax,
        label="mean, range over seeds",
    )
    if reference is not None:
        ax.axhline(reference, color="C3", ls="--", label="recognisable below")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("")
    ax.set_ylabel("final FID")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title)
    return finish(fig, path)


def paired_differences(rows: list[dict], baseline: str, path, title: str):
    """FID(objective) - FID(``baseline``) seed by seed (same seed: the same batches, noises and
    sampling noise), with +- 2 SE of the difference (``liftkd.measure.rules.diff_se``). Below
    zero the objective is better; an interval across zero is within noise. Returns the rows
    drawn (objective, seed, difference, se) or None when no seed has the baseline."""
    import pandas as pd
    import seaborn as sns

    from liftkd.measure.rules import diff_se

    base = {int(r["seed"]): r for r in rows if r["objective"] == baseline}
    drawn = [
        {
            "objective": r["label"],
            "seed": f"seed {int(r['seed'])}",
            "difference": float(r["fid"]) - float(base[int(r["seed"])]["fid"]),
            "se": diff_se(r, base[int(r["seed"])]),
        }
        for r in rows
        if r["objective"] != baseline and int(r["seed"]) in base
    ]
    if not drawn:
        return None
    # each interval as three values whose mean is the difference and whose range is +- 2 SE:
    # seaborn then places and dodges the points and their intervals by itself
    long = pd.DataFrame(
        {**d, "value": d["difference"] + k * 2 * d["se"]} for d in drawn for k in (-1, 0, 1)
    )
    labels = list(dict.fromkeys(long["objective"]))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.6))
    sns.pointplot(
        data=long,
        y="objective",
        x="value",
        hue="seed",
        order=labels,
        estimator="mean",
        errorbar=("pi", 100),
        dodge=0.4 if long["seed"].nunique() > 1 else False,  # seaborn divides by levels - 1
        linestyle="none",
        capsize=0.1,
        ax=ax,
    )
    ax.axvline(0, color="k", lw=1)
    base_label = next(iter(base.values()))["label"]
    ax.set_xlabel(f"FID minus {base_label}'s, same seed (+- 2 SE; below 0: better)")
    ax.set_ylabel("")
    ax.set_xscale("symlog", linthresh=10)
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7)
    ax.set_title(title)
    finish(fig, path)
    return drawn


def backbone_curves(rows: list[dict], path, title: str, teacher_fid: float | None = None):
    """FID over KD of every (objective, seed) of a backbone path (``liftkd.stages.kd_job.summarise``
    rows: ``fid_curve`` maps each step, 0 the pruned student, to the FID on the curve's images)."""
    series = {
        f"{r['label']} (s{r['seed']})": tuple(
            zip(*sorted((int(k), float(v)) for k, v in r["fid_curve"].items()), strict=True)
        )
        for r in rows
    }
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    lines(series, path, "KD step", "FID", title, logy=True, ax=ax)
    if teacher_fid is not None:
        ax.axhline(teacher_fid, color="k", ls=":", label="teacher")
        ax.legend(fontsize=7)
    return finish(fig, path)


def k_grid(grid: dict, path, features: str = "classifier features", title: str = ""):
    """FID against PLACE's K (log scale), one line per coarse norm with ± 2 SE bars, and the
    controls (w/o KD, OutKD, L1 OutKD, LIFT) as horizontal lines with their ± 2 SE bands
    (``liftkd.results.report.grid_lines``); nothing drawn, None returned, without the grid."""
    if not grid:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for norm, (ks, fids, ses) in grid["lines"].items():
        ax.errorbar(
            ks,
            fids,
            yerr=[2 * s for s in ses],
            marker="o",
            capsize=3,
            label=f"LIFT+PLACE, {norm} coarse",
        )
    for i, (name, (fid, se)) in enumerate(grid["controls"].items()):
        color = f"C{i + 2}"
        ax.axhline(fid, color=color, ls="--", lw=1, label=name)
        ax.axhspan(fid - 2 * se, fid + 2 * se, color=color, alpha=0.12)
    ax.set_xscale("log", base=2)
    ks = sorted({k for ks, _, _ in grid["lines"].values() for k in ks})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_yscale("log")
    ax.set_xlabel("PLACE's group size K (elements per fit)")
    ax.set_ylabel(f"final FID ({features})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title(title or "The K x coarse-term grid (make grid)")
    return finish(fig, path)
