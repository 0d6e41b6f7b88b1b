import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# (B, C, H, W) of the outputs the objectives and the probe must handle: every profile's size
# (smoke 8x8, cpu 16x16), MNIST 28x28, CIFAR 32x32x3, CelebA 64x64x3, and a DiT's 4-channel latent
OUTPUT_SHAPES = [
    (4, 1, 8, 8),
    (4, 1, 16, 16),
    (2, 1, 28, 28),
    (2, 3, 32, 32),
    (2, 3, 64, 64),
    (2, 4, 16, 16),
]


def smoke_pair(ratio: float = 0.5):
    """(smoke profile, an 8x8 smoke U-Net teacher with seeded random weights, its student pruned
    at ``ratio`` by magnitude): the small pair most tests distil, export or measure."""
    from liftkd.config import get_profile
    from liftkd.models.presets import build_unet
    from liftkd.models.pruning import prune

    p = get_profile("smoke")
    torch.manual_seed(0)
    teacher = build_unet(p.unet, 8, 1).eval()
    student, _ = prune(teacher, ratio, "magnitude", progress=False)
    return p, teacher, student


if os.environ.get("PYTEST_XDIST_WORKER"):
    # two workers on two cores: one thread each, torch's and numpy's BLAS (two threads each spin
    # against each other), and the same for the commands the tests start
    from liftkd.training.train import set_threads

    set_threads(1)


def pytest_collection_modifyitems(items):
    """The longest tests first (marked ``longest``): on two workers, one starts the smoke run's
    few minutes at once and the other works through the rest beside it."""
    items.sort(key=lambda item: item.get_closest_marker("longest") is None)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def python():
    """The interpreter running the tests (the project's venv under make test)."""
    return sys.executable
