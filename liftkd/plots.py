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
    fig.tight_layout()
    _save(fig, path)
    return fig


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
    fig.tight_layout()
    _save(fig, path)
    return fig


def _save(fig, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
