import pytest
import torch

from liftkd.config import ClassifierConfig, get_profile
from liftkd.data import load_splits
from liftkd.feature_extractor import accuracy, load_classifier, save_classifier, train_classifier
from liftkd.metrics import fidelity, macs_per_image
from liftkd.models import build_unet


@pytest.fixture(scope="module")
def digits_and_classifier(tmp_path_factory):
    train, holdout = load_splits(get_profile("smoke").data)
    clf = train_classifier(
        train, ClassifierConfig(epochs=8, width=16, feature_dim=32), progress=False
    )
    path = tmp_path_factory.mktemp("clf") / "clf.pt"
    save_classifier(clf, path)
    return train, holdout, clf, path


def test_classifier_learns_digits(digits_and_classifier):
    _, holdout, clf, path = digits_and_classifier
    acc = accuracy(clf, holdout)
    assert acc > 0.8  # chance is 0.1
    assert accuracy(load_classifier(path), holdout) == acc


def test_fid_orders_real_blur_and_noise(digits_and_classifier):
    train, holdout, _, path = digits_and_classifier
    real = fidelity(holdout.images, train.images, "classifier", path)
    noise = torch.randint(0, 256, holdout.images.shape, dtype=torch.uint8)
    bad = fidelity(noise, train.images, "classifier", path)
    assert set(real) == {"fid", "kid", "kid_std", "precision", "recall"}
    assert real["fid"] < bad["fid"] and real["precision"] > bad["precision"]
    same = fidelity(train.images, train.images, "classifier", path)
    assert same["fid"] == pytest.approx(0.0, abs=1e-3)


def test_fidelity_errors(digits_and_classifier):
    train, _, _, path = digits_and_classifier
    with pytest.raises(ValueError, match="uint8"):
        fidelity(train.images.float(), train.images, "classifier", path)
    with pytest.raises(ValueError, match="classifier_path"):
        fidelity(train.images, train.images, "classifier")
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
