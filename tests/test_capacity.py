"""The capacity floor (from-scratch students) and the standard error every FID carries."""

import math
import statistics

import torch

from liftkd.config import get_profile
from liftkd.measure import evaluation
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


def test_fid_standard_error_from_the_parts(monkeypatch):
    # stand-ins whose "FID" of a set is its mean pixel value: the parts are known in advance
    def fake_score(profile, run_dir, images, reference=None):
        return {"fid": float(images.float().mean()), "kid": 0.0, "kid_std": 0.0}

    def fake_parts(profile, run_dir, images, parts):
        size = len(images) // parts
        return [float(images[i * size : (i + 1) * size].float().mean()) for i in range(parts)]

    monkeypatch.setattr(evaluation, "score", fake_score)
    monkeypatch.setattr(evaluation, "fid_parts", fake_parts)
    images = torch.cat([torch.full((3, 1, 2, 2), v, dtype=torch.uint8) for v in (10, 20, 40, 50)])
    out = evaluation.fid_with_se(None, None, images, parts=4)
    assert out["fid"] == 30.0 and "kid_std" not in out
    assert math.isclose(out["fid_se"], statistics.stdev([10, 20, 40, 50]) / 2)
    # identical parts: no sampling error
    same = torch.full((8, 1, 2, 2), 7, dtype=torch.uint8)
    assert evaluation.fid_with_se(None, None, same, parts=2)["fid_se"] == 0.0


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
