"""The capacity floor (from-scratch students) and the standard error every FID carries."""

import numpy as np
import pytest
import torch

from liftkd.config import get_profile
from liftkd.measure import bootstrap, evaluation
from liftkd.stages import capacity
from tests.conftest import smoke_pair


def test_from_scratch_keeps_the_shapes_and_draws_new_weights():
    _, _, student = smoke_pair(0.5)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    a = capacity.from_scratch(student, seed=0)
    b = capacity.from_scratch(student, seed=0)
    c = capacity.from_scratch(student, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert {k: v.shape for k, v in sa.items()} == {k: v.shape for k, v in before.items()}
    convs = [k for k in sa if k.endswith("conv1.weight")]
    assert convs and all(not torch.equal(sa[k], before[k]) for k in convs)  # re-initialised
    assert all(torch.equal(sa[k], sb[k]) for k in sa)  # the seed decides
    assert any(not torch.equal(sa[k], sc[k]) for k in convs)
    assert all(torch.equal(v, before[k]) for k, v in student.state_dict().items())  # untouched
    x = torch.randn(2, 1, 8, 8)
    assert a(x, torch.tensor([1, 500])).sample.shape == x.shape


def test_fid_standard_error_is_the_bootstrap_over_the_images(monkeypatch):
    # stand-ins: each image's "features" are 8 seeded normals shifted by its mean pixel value,
    # the reference N(0, I); the SE is the bootstrap's and, away from FID 0, falls as
    # 1/sqrt(images)
    def fake_score(profile, run_dir, images, reference=None):
        return {"fid": float(images.float().mean()), "kid": 0.0, "kid_std": 0.0}

    def fake_features(profile, run_dir, images):
        g = torch.Generator().manual_seed(len(images))
        feats = (
            torch.randn(len(images), 8, generator=g) + images.float().mean(dim=(1, 2, 3))[:, None]
        )
        return feats, {"mu": torch.zeros(8), "sigma": torch.eye(8)}

    monkeypatch.setattr(evaluation, "score", fake_score)
    monkeypatch.setattr(evaluation, "fid_features", fake_features)
    images = torch.ones(400, 1, 2, 2, dtype=torch.uint8)  # features shifted by 1: FID about 8
    out = evaluation.fid_with_se(None, None, images)
    assert out["fid"] == 1.0 and "kid_std" not in out
    feats, _ = fake_features(None, None, images)
    ref = bootstrap.Reference(mu=np.zeros(8), sigma=np.eye(8))
    assert out["fid_se"] == pytest.approx(bootstrap.fid_se(feats.double().numpy(), ref))
    four_times = evaluation.fid_with_se(None, None, torch.ones(1600, 1, 2, 2, dtype=torch.uint8))
    assert 0.35 < four_times["fid_se"] / out["fid_se"] < 0.65  # 1/sqrt(4) = 0.5
    # identical images: no sampling error
    monkeypatch.setattr(
        evaluation,
        "fid_features",
        lambda p, r, im: (torch.ones(len(im), 8), {"mu": torch.zeros(8), "sigma": torch.eye(8)}),
    )
    assert evaluation.fid_with_se(None, None, images)["fid_se"] == pytest.approx(0.0, abs=1e-9)


def test_the_highest_generating_ratio_is_read_against_the_threshold(monkeypatch):
    fids = {0.5: 40.0, 0.7: 99.9, 0.9: 100.0}  # recognisable below 100
    monkeypatch.setattr(
        capacity,
        "reference",
        lambda *a, **k: {"recognisable": 100.0, "teacher": {"fid": 10.0}},
    )
    monkeypatch.setattr(
        capacity,
        "train_from_scratch",
        lambda profile, run_dir, teacher, r, progress=True: {"ratio": r, "fid": fids[r]},
    )
    profile = get_profile("smoke", **{"capacity.ratios": [0.9, 0.5, 0.7]})
    out = capacity.capacity_floor(profile, "unused", None)
    assert [r["ratio"] for r in out["rows"]] == [0.5, 0.7, 0.9]
    assert [r["generates"] for r in out["rows"]] == [True, True, False]
    assert out["highest_generating"] == 0.7 and out["threshold"] == 100.0
    fids[0.5] = fids[0.7] = 500.0
    assert capacity.capacity_floor(profile, "unused", None)["highest_generating"] is None
