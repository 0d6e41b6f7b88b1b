"""The offline feature extractors: small CNNs trained here on the training split.

torch-fidelity's InceptionV3 downloads its weights, which an offline machine cannot (a user who
has the weights file points ``inception_weights`` at it instead). FID, KID and precision/recall
are then computed on the features of a network trained here, registered with torch-fidelity as
``liftkd-offline``:

- ``classifier``: the penultimate features of a digit/class classifier (labelled data; the
  default when the images have labels): "FID on classifier features";
- ``autoencoder``: the bottleneck of a denoising autoencoder, which needs no labels (an
  unlabelled image folder): "FID on autoencoder features".

Such numbers are comparable with each other within one extractor, never with Inception FIDs in
papers; every one is reported beside its floor (held-out real images against training images).
The saved file says which kind it holds.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from tqdm.auto import tqdm

from liftkd.config import ClassifierConfig
from liftkd.data import ImageSet, to_model_range
from liftkd.runs import load_torch, save_torch

EXTRACTOR_NAME = "liftkd-offline"
FEATURE_NAME = "penultimate"
KINDS = ("classifier", "autoencoder")
LABELS = {"classifier": "classifier features", "autoencoder": "autoencoder features"}


def _encoder(channels: int, width: int, feature_dim: int) -> nn.Sequential:
    """Two conv stages, a 2x2 pooled map and a ``feature_dim`` feature layer."""

    def block(c_in: int, c_out: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(channels, width),
        *block(width, width),
        nn.MaxPool2d(2),
        *block(width, 2 * width),
        *block(2 * width, 2 * width),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(8 * width, feature_dim),
        nn.ReLU(),
    )


class DigitClassifier(nn.Module):
    """Two conv stages, a 2x2 pooled map, a ``feature_dim`` feature layer, a linear head."""

    def __init__(self, channels: int, n_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.hparams = dict(
            channels=channels, n_classes=n_classes, width=width, feature_dim=feature_dim
        )
        self.body = _encoder(channels, width, feature_dim)
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ImageAutoencoder(nn.Module):
    """The classifier's encoder, and a decoder back to the image: trained to rebuild a shifted,
    noised image, it needs no labels; its bottleneck is the feature layer."""

    def __init__(self, channels: int, resolution: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        if resolution % 2:
            raise ValueError(f"the autoencoder needs an even resolution, got {resolution}")
        self.hparams = dict(
            channels=channels, resolution=resolution, width=width, feature_dim=feature_dim
        )
        side = resolution // 2
        self.body = _encoder(channels, width, feature_dim)
        self.decoder = nn.Sequential(
            nn.Linear(feature_dim, 2 * width * side * side),
            nn.ReLU(),
            nn.Unflatten(1, (2 * width, side, side)),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.body(x))


def _shift_augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding is background = -1)."""
    pad = F.pad(x, [max_shift] * 4, value=-1.0)
    h, w = x.shape[-2:]
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=g).tolist()
    return pad[..., dy : dy + h, dx : dx + w]


def _fit(
    model: nn.Module,
    n: int,
    cfg: ClassifierConfig,
    g: torch.Generator,
    batch_loss,
    desc: str,
    progress: bool,
) -> nn.Module:
    """The extractors' one training loop: ``cfg.epochs`` shuffled passes over ``n`` images,
    ``batch_loss(indices)`` on each batch, Adam with cosine decay."""
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    model.train()
    bar = tqdm(total=total, desc=desc, disable=not progress)
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(steps_per_epoch):
            loss = batch_loss(perm[i * cfg.batch_size : (i + 1) * cfg.batch_size])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.4f}")
    bar.close()
    return model.eval()


def train_classifier(
    train: ImageSet, cfg: ClassifierConfig, progress: bool = True
) -> DigitClassifier:
    """Train the extractor on labelled images: cross-entropy on shifted copies."""
    if train.labels is None:
        raise ValueError(
            "the classifier extractor needs labels and these images have none: use "
            "feature_extractor: autoencoder (or auto), or put the images in one sub-folder per class"
        )
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    n_classes = int(train.labels.max()) + 1
    model = DigitClassifier(train.images.shape[1], n_classes, cfg.width, cfg.feature_dim)
    x_all, y_all = to_model_range(train.images), train.labels

    def batch_loss(idx):
        return F.cross_entropy(model(_shift_augment(x_all[idx], g)), y_all[idx])

    return _fit(model, len(train), cfg, g, batch_loss, "classifier", progress)


def train_autoencoder(
    train: ImageSet, cfg: ClassifierConfig, progress: bool = True
) -> ImageAutoencoder:
    """Train the label-free extractor: rebuild each image from a shifted, noised copy (MSE)."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    c, h = train.images.shape[1], train.images.shape[2]
    model = ImageAutoencoder(c, h, cfg.width, cfg.feature_dim)
    x_all = to_model_range(train.images)

    def batch_loss(idx):
        x = _shift_augment(x_all[idx], g)
        return F.mse_loss(model(x + 0.1 * torch.randn(x.shape, generator=g)), x)

    return _fit(model, len(train), cfg, g, batch_loss, "autoencoder", progress)


@torch.no_grad()
def reconstruction_error(model: ImageAutoencoder, data: ImageSet, batch_size: int = 500) -> float:
    """Mean squared error of the autoencoder's rebuild, on images in [-1, 1]."""
    model.eval()
    total = 0.0
    for i in range(0, len(data), batch_size):
        x = to_model_range(data.images[i : i + batch_size])
        total += F.mse_loss(model(x), x, reduction="sum").item()
    return total / data.images.numel()


@torch.no_grad()
def accuracy(model: DigitClassifier, data: ImageSet, batch_size: int = 500) -> float:
    if data.labels is None:
        raise ValueError("accuracy needs labels")
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        logits = model(to_model_range(data.images[i : i + batch_size]))
        correct += (logits.argmax(1) == data.labels[i : i + batch_size]).sum().item()
    return correct / len(data)


def save_extractor(model: DigitClassifier | ImageAutoencoder, path: str | Path, **extra) -> None:
    kind = "classifier" if isinstance(model, DigitClassifier) else "autoencoder"
    blob = {"kind": kind, "hparams": model.hparams, "state_dict": model.state_dict(), **extra}
    save_torch(blob, path)


def load_extractor(path: str | Path) -> DigitClassifier | ImageAutoencoder:
    """The saved extractor, whichever kind the file holds (a file without a kind: a classifier)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no feature extractor at {path}: run notebook 00_feature_extractor (make reproduce) first"
        )
    blob = load_torch(path, "the offline feature extractor", "delete it to have it trained again")
    cls = ImageAutoencoder if blob.get("kind") == "autoencoder" else DigitClassifier
    model = cls(**blob["hparams"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


def kind_of(path: str | Path) -> str:
    """ "classifier" or "autoencoder": the kind of extractor a saved file holds."""
    blob = load_torch(path, "the offline feature extractor", "delete it to have it trained again")
    return blob.get("kind", "classifier")


class OfflineFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity adapter: uint8 (B, C, H, W) in, the saved extractor's features out.

    torch-fidelity builds it as ``cls(name, features_list, **kwargs)`` with the keyword
    arguments of ``calculate_metrics``; ``feature_extractor_weights_path`` names the saved
    extractor (either kind).
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{EXTRACTOR_NAME} needs feature_extractor_weights_path")
        self.network = load_extractor(feature_extractor_weights_path)

    @staticmethod
    def get_provided_features_list():
        return (FEATURE_NAME,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return FEATURE_NAME

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        if x.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images, got {x.dtype}")
        return (self.network.features(to_model_range(x)).double(),)


def ensure_registered() -> str:
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, OfflineFeatureExtractor)
    return EXTRACTOR_NAME
