"""Metrics: FID, KID and precision/recall through torch-fidelity; parameters, MACs, latency.

The counting functions need torch and torch-pruning only (pruning reports sizes with them);
torch-fidelity and the offline extractor are imported when FID is first computed.
``fidelity(generated, reference, ...)`` compares two sets of uint8 images on the features of the
profile's extractor: the offline classifier (``liftkd.measure.feature_extractor``) or InceptionV3 (gpu
profile). Precision and recall use k = 5 neighbours, as in the paper.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

PRC_NEIGHBOURS = 5


class _TensorImages(Dataset):
    def __init__(self, images: torch.Tensor, channels: int | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"expected uint8 (N, C, H, W) images, got {images.dtype} {tuple(images.shape)}"
            )
        if channels == 3 and images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def _extractor_kwargs(extractor: str, weights_path: str | Path | None) -> tuple[dict, int | None]:
    """torch-fidelity's keyword arguments naming the extractor, and the channels it needs."""
    from liftkd.measure import feature_extractor

    if extractor == "offline":
        if weights_path is None:
            raise ValueError("extractor='offline' needs weights_path, the extractor's file")
        return {
            "feature_extractor": feature_extractor.ensure_registered(),
            "feature_extractor_weights_path": str(weights_path),
        }, None
    if extractor == "inception":
        kwargs: dict = {"feature_extractor": "inception-v3-compat"}
        if weights_path is not None:
            if not Path(weights_path).is_file():
                raise FileNotFoundError(
                    f"inception_weights {weights_path} is not a file: copy torch-fidelity's "
                    "weights-inception-2015-12-05-6726825d.pth there (any machine with internet "
                    "downloads it on first use), or leave inception_weights unset to download"
                )
            kwargs["feature_extractor_weights_path"] = str(weights_path)
        return kwargs, 3
    raise ValueError(f"unknown extractor {extractor!r}; choose 'offline' or 'inception'")


def fidelity(
    generated: torch.Tensor,
    reference: torch.Tensor,
    extractor: str = "offline",
    weights_path: str | Path | None = None,
    batch_size: int = 500,
) -> dict[str, float]:
    """FID, KID (mean, std) and precision/recall of ``generated`` against ``reference``.

    ``extractor``: "offline" (a network trained here, ``liftkd.measure.feature_extractor``; needs its
    file as ``weights_path``) or "inception" (InceptionV3: from the local weights file
    ``weights_path`` when given, else downloaded by torch-fidelity on first use). Both inputs are
    uint8 ``(N, C, H, W)``.
    """
    import torch_fidelity

    n = min(len(generated), len(reference))
    if n <= PRC_NEIGHBOURS:
        raise ValueError(
            f"precision and recall compare each image with its {PRC_NEIGHBOURS} nearest "
            f"neighbours: both sides need at least {PRC_NEIGHBOURS + 1} images, got "
            f"{len(generated)} generated and {len(reference)} reference images"
        )
    named, channels = _extractor_kwargs(extractor, weights_path)
    m = torch_fidelity.calculate_metrics(
        input1=_TensorImages(generated, channels),
        input2=_TensorImages(reference, channels),
        fid=True,
        kid=True,
        prc=True,
        prc_neighborhood=PRC_NEIGHBOURS,
        kid_subset_size=min(1000, n),
        batch_size=batch_size,
        cuda=torch.cuda.is_available(),
        save_cpu_ram=True,
        cache=False,
        verbose=False,
        **named,
    )
    return {
        "fid": float(m["frechet_inception_distance"]),
        "kid": float(m["kernel_inception_distance_mean"]),
        "kid_std": float(m["kernel_inception_distance_std"]),
        "precision": float(m["precision"]),
        "recall": float(m["recall"]),
    }


_REFERENCE_STATS: dict[tuple, dict] = {}  # FID statistics of reference sets, per process


def _feature_fn(extractor: str, weights_path: str | Path | None, batch_size: int):
    """The FID features of uint8 images, as torch-fidelity's ``fidelity`` extracts them."""
    from torch_fidelity.utils import (
        create_feature_extractor,
        get_featuresdict_from_dataset,
        resolve_feature_layer_for_metric,
    )

    named, channels = _extractor_kwargs(extractor, weights_path)
    layer = resolve_feature_layer_for_metric("fid", **named)
    cuda = torch.cuda.is_available()
    net = create_feature_extractor(named["feature_extractor"], [layer], cuda=cuda, **named)

    def features(images: torch.Tensor) -> torch.Tensor:
        data = _TensorImages(images, channels)
        return get_featuresdict_from_dataset(data, net, batch_size, cuda, True, False)[layer]

    return features


def fid_features(
    generated: torch.Tensor,
    reference: torch.Tensor,
    extractor: str = "offline",
    weights_path: str | Path | None = None,
    batch_size: int = 500,
) -> tuple[torch.Tensor, dict]:
    """``generated``'s FID features ``(N, D)`` and the reference's FID statistics (``mu``,
    ``sigma``), the reference's kept for the process: every later call reuses them."""
    import hashlib

    from torch_fidelity.metric_fid import fid_features_to_statistics

    features = _feature_fn(extractor, weights_path, batch_size)
    stamp = Path(weights_path).stat().st_mtime_ns if weights_path else None  # a retrained file
    key = (extractor, str(weights_path), stamp, hashlib.sha1(reference.numpy().tobytes()).digest())
    if key not in _REFERENCE_STATS:
        _REFERENCE_STATS[key] = fid_features_to_statistics(features(reference))
    return features(generated), _REFERENCE_STATS[key]


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: torch.nn.Module, inputs) -> int:
    """MACs of ``model(*inputs)`` or ``model(**inputs)`` (torch-pruning's counter: convolutions,
    linear layers and norms; the attention products are not counted, a small share at these
    resolutions)."""
    import torch_pruning as tp

    macs, _ = tp.utils.count_ops_and_params(model, inputs)
    return int(macs)


def macs_per_image(model: torch.nn.Module, resolution: int, channels: int) -> int:
    """MACs of one U-Net forward pass on one ``channels`` x ``resolution``^2 image."""
    x = torch.zeros(1, channels, resolution, resolution)
    t = torch.zeros(1, dtype=torch.long)
    return count_macs(model, (x, t))


def latency_per_image(
    sample_fn: Callable[[int], object], batch_size: int, repeats: int = 2
) -> float:
    """Seconds per image of ``sample_fn(batch_size)``: best of ``repeats`` after one warm-up."""
    sample_fn(min(batch_size, 4))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sample_fn(batch_size)
        best = min(best, time.perf_counter() - t0)
    return best / batch_size
