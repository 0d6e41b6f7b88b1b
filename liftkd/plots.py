"""Figures drawn from saved results: sample grids and loss curves."""

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
    return _finish(fig, path)


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
    return _finish(fig, path)


def _finish(fig, path: str | Path):
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
        return _finish(fig, path)
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
    return _finish(fig, path)


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
    return _finish(fig, path)


def write_table(rows: list[dict], stem: str | Path, title: str | None = None) -> None:
    """``rows`` as ``stem.csv`` and a Markdown ``stem.md``."""
    import csv

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines_ = ([f"# {title}", ""] if title else []) + [
        "| " + " | ".join(keys) + " |",
        "|" + "---|" * len(keys),
    ]
    lines_ += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    stem.with_suffix(".md").write_text("\n".join(lines_) + "\n")


def sample_rows(rows: dict[str, torch.Tensor], path: str | Path, title: str | None = None):
    """One labelled row of uint8 samples per entry: the objectives side by side."""
    n = len(rows)
    fig, axes = plt.subplots(n, 1, figsize=(7, 0.8 * n + 0.5), squeeze=False)
    for ax, (label, images) in zip(axes[:, 0], rows.items(), strict=True):
        grid = image_grid(images, nrow=len(images))
        ax.imshow(grid.squeeze(-1) if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    return _finish(fig, path)
