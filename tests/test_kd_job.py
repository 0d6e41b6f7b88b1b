"""One KD job for every backbone (liftkd.stages.kd_job, liftkd.stages.kd_runs): one evaluation protocol, one
results schema, whatever the backbone."""

import math
from dataclasses import replace

import pytest
import torch

from liftkd.config import BackboneKDConfig, TrainConfig
from liftkd.stages import kd_job, kd_runs
from tests.conftest import smoke_pair


def _backbone(p, teacher, student, calls):
    """A pixel backbone whose sampler records how many images each call asked for; the images
    of model m are filled with a value of their own, so scores tell the models apart."""

    def sampler(model, n):
        calls.append(n)
        value = 7 if model is teacher else 100 + len(calls)
        return torch.full((n, 1, 8, 8), value, dtype=torch.uint8)

    return kd_job.Backbone(
        name="unet",
        teacher=teacher.requires_grad_(False),
        student=student,
        data=(torch.rand(32, 1, 8, 8) * 255).to(torch.uint8),
        sampler=sampler,
        example=lambda: {"sample": torch.randn(2, 1, 8, 8), "timestep": torch.tensor([5, 500])},
    )


@pytest.fixture
def fake_scores(monkeypatch):
    """FID is the images' mean value and its SE their count: what was scored is visible."""

    def fid_with_se(profile, run_dir, images):
        fid = float(images.float().mean())
        return {"fid": fid, "kid": 0.0, "precision": 1.0, "recall": 1.0, "fid_se": len(images)}

    def fid_features(profile, run_dir, images):  # four seeded normals per image, N(0, I) reference
        g = torch.Generator().manual_seed(len(images))
        feats = torch.randn(len(images), 4, generator=g) + images.float().mean()
        return feats, {"mu": torch.zeros(4), "sigma": torch.eye(4)}

    monkeypatch.setattr(kd_job, "fid_with_se", fid_with_se)
    monkeypatch.setattr(kd_job, "fid_features", fid_features)


def _cfg(steps=4, evaluations=2, eval_samples=40, final_samples=60):
    return BackboneKDConfig(
        objectives=("outkd", "nokd"),
        train=TrainConfig(steps=steps, batch_size=8, warmup_steps=1, checkpoint_every=1),
        seeds=(0,),
        evaluations=evaluations,
        eval_samples=eval_samples,
        final_samples=final_samples,
        converged_evals=2,
    )


def test_the_curve_keeps_one_sample_count_and_the_final_fid_its_own(tmp_path, fake_scores):
    """Every point of the curve is scored on eval_samples images (the last one too, on the first
    images of the final draw); the final FID on final_samples; the pruned student is sampled once
    for every objective; the rows follow one schema."""
    p, teacher, student = smoke_pair()
    calls = []
    backbone = _backbone(p, teacher, student, calls)
    job = kd_runs.backbone_jobs("unet", _cfg(), tmp_path)[0]
    kd_job.train(backbone, job, p, progress=False)
    evals = kd_job.evaluate(backbone, job, p, tmp_path, progress=False)
    # step 0 once (shared), step 2 per objective, step 4 per objective with the final count
    assert calls == [40, 40, 40, 60, 60]
    by = {(r["objective"], r["step"]): r for r in evals}
    assert {r["fid_se"] for r in evals} == {40}  # the curve: 40 images at every step
    assert by[("outkd", 0)]["fid"] == by[("nokd", 0)]["fid"]  # one pruned student
    last = by[("outkd", 4)]
    assert last["n_final"] == 60 and last["fid_final_se"] == 60
    assert math.isnan(by[("outkd", 2)]["fid_final"]) and by[("outkd", 2)]["n_final"] == 0
    rows = kd_job.summarise(job, evals, 1000.0, job.labels(), {"backbone": "unet"})
    assert [r["objective"] for r in rows] == ["outkd", "nokd"]
    assert rows[0]["fid"] == last["fid_final"] and rows[0]["n_final"] == 60
    assert sorted(rows[0]["fid_curve"]) == [0, 2, 4] and rows[0]["backbone"] == "unet"
    # the final FID's SE: a bootstrap of the 60 final images' features, paired with the other
    # objective's (the four-part SE kept beside it)
    assert rows[0]["fid_se_method"] == "bootstrap" and rows[0]["fid_se_parts"] == 60
    assert set(rows[0]["paired_se"]) == {"nokd"} and rows[0]["fid_se"] > 0
    saved = torch.load(job.folder / kd_job.FINAL_FEATURES, weights_only=True)
    assert {k: tuple(v.shape) for k, v in saved["features"].items()} == {
        "outkd": (60, 4),
        "nokd": (60, 4),
    }
    # run again: nothing is sampled anew
    kd_job.evaluate(backbone, job, p, tmp_path, progress=False)
    assert len(calls) == 5


def test_evaluations_of_another_protocol_are_refused_not_mixed_in(tmp_path, fake_scores):
    """An evals.csv written under other columns (the DiT/latent protocol before the one KD job)
    is named, not read as if it were measured the same way."""
    p, teacher, student = smoke_pair()
    backbone = _backbone(p, teacher, student, [])
    job = kd_runs.backbone_jobs("unet", _cfg(), tmp_path)[0]
    kd_job.train(backbone, job, p, progress=False)
    (job.folder / kd_job.EVALS).write_text("objective,label,step,diverged,fid,fid_se,n\n")
    with pytest.raises(ValueError, match="another protocol.*move it away"):
        kd_job.evaluate(backbone, job, p, tmp_path, progress=False)


def test_the_reference_is_scored_once_under_the_protocol(tmp_path, fake_scores, monkeypatch):
    """The teacher is sampled once (max of the two counts), scored on the curve's count and on
    the final count, cached; extra image sets are scored beside it."""
    p, teacher, _ = smoke_pair()
    monkeypatch.setattr(kd_runs, "fid_with_se", kd_job.fid_with_se)  # the fake above
    monkeypatch.setattr(kd_runs, "score", lambda pr, rd, images: {"fid": len(images)})
    monkeypatch.setattr(kd_runs, "floor", lambda pr, rd, n: {"fid": 0.5, "n": n})
    monkeypatch.setattr(
        kd_runs, "reference_points", lambda pr, rd: {"blurred_holdout": {"fid": 900.0}}
    )
    monkeypatch.setattr(kd_runs, "features_label", lambda pr, rd: "test features")
    calls = []
    sampler = _backbone(p, teacher, teacher, calls).sampler
    protocol = kd_runs.backbone_protocol(_cfg())
    path = tmp_path / "reference.json"
    extra = {"autoencoder_floor": torch.zeros(12, 1, 8, 8, dtype=torch.uint8)}
    ref = kd_runs.reference(teacher, sampler, protocol, p, tmp_path, path, extra, progress=False)
    assert calls == [60]
    assert ref["teacher"]["fid"] == 40 and ref["teacher_final"]["fid_se"] == 60
    assert ref["floor"] == {"fid": 0.5, "n": 40} and ref["recognisable"] == 900.0
    assert ref["autoencoder_floor"]["fid_se"] == 12
    again = kd_runs.reference(teacher, sampler, protocol, p, tmp_path, path, progress=False)
    assert again == ref and calls == [60]


def test_backbone_jobs_are_one_per_seed_with_checkpoints_on_evaluations(tmp_path):
    cfg = replace(_cfg(steps=30, evaluations=3), seeds=(0, 3))
    cfg = replace(cfg, train=replace(cfg.train, checkpoint_every=4))
    jobs = kd_runs.backbone_jobs("dit", cfg, tmp_path)
    assert [j.seed for j in jobs] == [0, 3] and [j.train.seed for j in jobs] == [0, 3]
    assert jobs[1].folder == tmp_path / "dit" / "kd_s3" == kd_runs.job_dir(tmp_path, "dit", 3)
    assert jobs[0].protocol.eval_steps == (10, 20, 30)
    assert jobs[0].train.checkpoint_every == 2  # the largest divisor of 10 not above 4
