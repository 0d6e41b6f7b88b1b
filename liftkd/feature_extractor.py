"""The offline feature extractor: a small CNN classifier trained on the training split.

torch-fidelity's InceptionV3 downloads its weights, which this machine cannot. FID, KID and
precision/recall are therefore computed on the penultimate features of a classifier trained here
on the training split, registered with torch-fidelity as ``liftkd-classifier``. Such numbers are
"FID on classifier features", comparable with each other, not with Inception FIDs in papers; every
one is reported beside its floor (held-out real images against training images).
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

EXTRACTOR_NAME = "liftkd-classifier"
FEATURE_NAME = "penultimate"


class DigitClassifier(nn.Module):
    """Two conv stages, a 2x2 pooled map, a ``feature_dim`` feature layer, a linear head."""

    def __init__(self, channels: int, n_classes: int, width: int = 32, feature_dim: int = 128):
        super().__init__()
        self.hparams = dict(
            channels=channels, n_classes=n_classes, width=width, feature_dim=feature_dim
        )

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.body = nn.Sequential(
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
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _shift_augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Random translation by up to ``max_shift`` pixels (zero padding is background = -1)."""
    pad = F.pad(x, [max_shift] * 4, value=-1.0)
    h, w = x.shape[-2:]
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=g).tolist()
    return pad[..., dy : dy + h, dx : dx + w]


def train_classifier(
    train: ImageSet, cfg: ClassifierConfig, progress: bool = True
) -> DigitClassifier:
    """Train the extractor on labelled images; Adam with cosine decay, shift augmentation."""
    if train.labels is None:
        raise ValueError(
            "the offline feature extractor is a classifier and needs labels; this dataset has "
            "none (put images in one sub-folder per class, or use feature_extractor='inception')"
        )
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    n_classes = int(train.labels.max()) + 1
    model = DigitClassifier(train.images.shape[1], n_classes, cfg.width, cfg.feature_dim)
    x_all, y_all = to_model_range(train.images), train.labels
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    model.train()
    bar = tqdm(total=total, desc="classifier", disable=not progress)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(train), generator=g)
        for i in range(steps_per_epoch):
            idx = perm[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            x = _shift_augment(x_all[idx], g)
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


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


def save_classifier(model: DigitClassifier, path: str | Path) -> None:
    save_torch({"hparams": model.hparams, "state_dict": model.state_dict()}, path)


def load_classifier(path: str | Path) -> DigitClassifier:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no feature extractor at {path}: run notebook 00_feature_extractor (make reproduce) first"
        )
    blob = load_torch(path, "the offline feature extractor", "delete it to have it trained again")
    model = DigitClassifier(**blob["hparams"])
    model.load_state_dict(blob["state_dict"])
    return model.eval()


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity adapter: uint8 (B, C, H, W) in, the classifier's penultimate features out.

    torch-fidelity builds it as ``cls(name, features_list, **kwargs)`` with the keyword
    arguments of ``calculate_metrics``; ``feature_extractor_weights_path`` names the saved
    classifier.
    """

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{EXTRACTOR_NAME} needs feature_extractor_weights_path")
        self.classifier = load_classifier(feature_extractor_weights_path)

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
        return (self.classifier.features(to_model_range(x)).double(),)


def ensure_registered() -> str:
    if EXTRACTOR_NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(EXTRACTOR_NAME, ClassifierFeatureExtractor)
    return EXTRACTOR_NAME
