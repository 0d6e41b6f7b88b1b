import pytest
import torch

from liftkd.config import ClassifierConfig, get_profile
from liftkd.data import load_splits
from liftkd.measure.feature_extractor import (
    accuracy,
    kind_of,
    load_extractor,
    reconstruction_error,
    save_extractor,
    train_autoencoder,
    train_classifier,
)
from liftkd.measure.metrics import fidelity, macs_per_image
from liftkd.models.presets import build_unet


@pytest.fixture(scope="module")
def digits_and_classifier(tmp_path_factory):
    train, holdout = load_splits(get_profile("smoke").data)
    clf = train_classifier(
        train, ClassifierConfig(epochs=8, width=16, feature_dim=32), progress=False
    )
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    save_extractor(clf, path)
    return train, holdout, clf, path


def test_classifier_learns_digits(digits_and_classifier):
    _, holdout, clf, path = digits_and_classifier
    acc = accuracy(clf, holdout)
    assert acc > 0.8  # chance is 0.1
    assert accuracy(load_extractor(path), holdout) == acc


@pytest.mark.slow
def test_fid_orders_real_blur_and_noise(digits_and_classifier):
    train, holdout, _, path = digits_and_classifier
    real = fidelity(holdout.images, train.images, "offline", path)
    noise = torch.randint(0, 256, holdout.images.shape, dtype=torch.uint8)
    bad = fidelity(noise, train.images, "offline", path)
    assert set(real) == {"fid", "kid", "kid_std", "precision", "recall"}
    assert real["fid"] < bad["fid"] and real["precision"] > bad["precision"]
    same = fidelity(train.images, train.images, "offline", path)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)


def test_fidelity_errors(digits_and_classifier):
    train, _, _, path = digits_and_classifier
    with pytest.raises(ValueError, match="uint8"):
        fidelity(train.images.float(), train.images, "offline", path)
    with pytest.raises(ValueError, match="needs weights_path"):
        fidelity(train.images, train.images, "offline")
    with pytest.raises(
        FileNotFoundError, match="inception_weights /nowhere/inception.pth is not a file"
    ):
        fidelity(train.images, train.images, "inception", "/nowhere/inception.pth")
    with pytest.raises(ValueError, match="unknown extractor"):
        fidelity(train.images, train.images, "clip")


def test_classifier_needs_labels():
    train, _ = load_splits(get_profile("smoke").data)
    train.labels = None
    with pytest.raises(ValueError, match="needs labels"):
        train_classifier(train, ClassifierConfig(epochs=1))


def test_macs_grow_with_width():
    p = get_profile("smoke")
    small = build_unet(p.unet, 8, 1)
    wide = build_unet(type(p.unet)(**{**p.unet.__dict__, "block_out_channels": (40, 80)}), 8, 1)
    assert 0 < macs_per_image(small, 8, 1) < macs_per_image(wide, 8, 1)


@pytest.mark.slow
def test_the_label_free_extractor_orders_real_blur_and_noise(tmp_path):
    """The autoencoder needs no labels; its features still tell real images from noise."""
    import torch.nn.functional as F

    from liftkd.data import ImageSet, to_model_range

    train, holdout = load_splits(get_profile("smoke").data)
    unlabelled = ImageSet(train.images, None)
    ae = train_autoencoder(
        unlabelled, ClassifierConfig(epochs=30, width=16, feature_dim=32), progress=False
    )
    path = tmp_path / "ae.pt"
    save_extractor(ae, path)
    assert kind_of(path) == "autoencoder"
    # it learns its task: the rebuild beats the mean training image
    mean_image = to_model_range(train.images).mean(0)
    baseline = (to_model_range(holdout.images) - mean_image).square().mean().item()
    assert reconstruction_error(load_extractor(path), holdout) < 0.8 * baseline
    real = fidelity(holdout.images, train.images, "offline", path)
    blurred = F.avg_pool2d(holdout.images.float(), 3, 1, 1).round().to(torch.uint8)
    blur = fidelity(blurred, train.images, "offline", path)
    noise = fidelity(
        torch.randint(0, 256, holdout.images.shape, dtype=torch.uint8),
        train.images,
        "offline",
        path,
    )
    assert real["fid"] < blur["fid"] < noise["fid"]


def test_offline_extractor_kind_follows_the_labels():
    from liftkd.measure.evaluation import offline_kind

    labelled = get_profile("smoke")
    assert offline_kind(labelled) == "classifier"
    assert offline_kind(get_profile("smoke", feature_extractor="autoencoder")) == "autoencoder"
    assert offline_kind(get_profile("gpu")) is None
