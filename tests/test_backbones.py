"""Claim 7's other backbones: the DiT path (depth pruning, TinyFusion's recipe) and the latent
path (autoencoder, BK-SDM's block removal and recipe), and what the two share with the pixel
sweep (labels, features, KD steps, the verdict of claim 7)."""

import math

import pytest
import torch
import torch.nn.functional as F

from liftkd.config import SettingsError, get_profile
from liftkd.data import ImageSet
from liftkd.method.features import feature_widths
from liftkd.method.lift import lift_terms
from liftkd.method.objectives import build_objective, label
from liftkd.method.recipes import feature_weight, masked_feature_kd, outlier_mask
from liftkd.models.block_removal import bk_sdm_plan, remove_blocks, removed_blocks
from liftkd.models.checkpoints import load_model, save_model
from liftkd.models.presets import build_dit, build_unet
from liftkd.results import claims
from liftkd.stages import dit, kd_job, kd_runs
from liftkd.stages.dit import (
    calibration_blocks,
    calibration_loss,
    dit_training_set,
    fix_label_dropout,
    make_student,
    paired_blocks,
    uniform_blocks,
)
from liftkd.stages.latent import build_autoencoder, decode, encode, latent_scale, reconstruct
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.distill import KDGroup, KDModule, kd_group_loss_fn


@pytest.fixture(scope="module")
def smoke():
    return get_profile("smoke")


def _dit(profile):
    torch.manual_seed(0)
    return fix_label_dropout(build_dit(profile.dit, 8, 1)).eval()


def _latent_unet(profile):
    torch.manual_seed(0)
    return build_unet(profile.latent.unet, 4, 4).eval()


def _dit_inputs(b=4):
    g = torch.Generator().manual_seed(1)
    return {
        "hidden_states": torch.randn(b, 1, 8, 8, generator=g),
        "timestep": torch.tensor([10, 200, 500, 900])[:b],
        "class_labels": torch.tensor([0, 3, 7, 9])[:b],
    }


# ---------------------------------------------------------------- DiT: which blocks, and pairs


def test_uniform_blocks_and_their_teacher_pairs():
    assert uniform_blocks(8, 4) == [0, 2, 4, 6]
    assert uniform_blocks(6, 3) == [0, 2, 4]
    assert uniform_blocks(4, 4) == [0, 1, 2, 3]
    # TinyFusion's D14-from-28 pairing: student block i is held to teacher block 2i + 1
    assert paired_blocks(uniform_blocks(28, 14), 28) == list(range(1, 28, 2))
    assert paired_blocks([0, 3, 5], 7) == [2, 4, 6]
    with pytest.raises(ValueError, match="keep must be"):
        uniform_blocks(4, 5)


def test_calibration_blocks_drop_the_least_harmful_block_each_time(smoke):
    teacher = _dit(smoke)
    torch.manual_seed(0)
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    labels = torch.arange(8) % 10
    sched = noise_scheduler(smoke.diffusion)
    kept, rows = calibration_blocks(teacher, 2, images, labels, sched, seed=3)
    assert len(kept) == 2 and [r["blocks_left"] for r in rows] == [3, 2]
    # the first removal is the block whose absence costs least on the same fixed batch
    from liftkd.training.diffusion import forward_noise

    x_t, t, noise = forward_noise(sched, images, torch.Generator().manual_seed(3))
    losses = {
        b: calibration_loss(teacher, x_t, t, noise, labels, [k for k in range(4) if k != b])
        for b in range(4)
    }
    assert rows[0]["removed"] == min(losses, key=losses.get)
    assert rows[0]["loss"] == pytest.approx(min(losses.values()))


def test_dit_student_round_trips_through_the_model_file(smoke, tmp_path):
    teacher = _dit(smoke)
    student, info = make_student(smoke, teacher)
    assert info["keep"] == [0, 2] and info["pairs"] == [1, 3]
    assert len(student.transformer_blocks) == 2
    # the kept blocks start as the teacher's
    for i, j in enumerate(info["keep"]):
        a, b = (
            student.transformer_blocks[i].state_dict(),
            teacher.transformer_blocks[j].state_dict(),
        )
        assert all(torch.equal(a[k], b[k]) for k in a)
    save_model(student, tmp_path / "s.pt")
    back = load_model(tmp_path / "s.pt")
    with torch.no_grad():
        assert torch.equal(student.eval()(**_dit_inputs()).sample, back(**_dit_inputs()).sample)


def test_unlabelled_images_train_a_one_class_dit_and_too_many_classes_is_a_clear_error(
    smoke, monkeypatch
):
    images = torch.zeros(6, 1, 8, 8, dtype=torch.uint8)
    monkeypatch.setattr(dit, "load_splits", lambda cfg: (ImageSet(images, None), None))
    train_set, classes = dit_training_set(smoke)
    assert classes == 1 and torch.equal(train_set.labels, torch.zeros(6, dtype=torch.int64))

    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    monkeypatch.setattr(dit, "load_splits", lambda cfg: (ImageSet(images, labels), None))
    assert dit_training_set(smoke)[1] == 3  # samples cycle through the data's 3 classes
    many = torch.tensor([0, 1, 2, 3, 4, smoke.dit.num_classes])
    monkeypatch.setattr(dit, "load_splits", lambda cfg: (ImageSet(images, many), None))
    with pytest.raises(ValueError, match=f"set dit.num_classes: {smoke.dit.num_classes + 1}"):
        dit_training_set(smoke)


def test_label_dropout_is_off_in_the_models_and_drawn_once_for_all(smoke):
    """Teacher and every student get the same labels, the null class included, whatever mode
    each model is in."""
    teacher = _dit(smoke)
    student, info = make_student(smoke, teacher)
    student.train()
    assert all(
        m.dropout_prob == 0.0 for m in student.modules() if type(m).__name__ == "LabelEmbedding"
    )
    seen = {}

    def spy(name):
        def hook(module, args, kwargs):
            seen.setdefault(name, []).append(kwargs["class_labels"].clone())

        return hook

    members = {}
    for spec in ("tinyfusion", "tinyfusion:kd=lift+place"):
        s = fix_label_dropout(make_student(smoke, teacher)[0]).train()
        s.register_forward_pre_hook(spy(spec), with_kwargs=True)
        obj = build_objective(
            spec.split(":")[0],
            s,
            teacher,
            _dit_inputs(2),
            teacher_blocks=tuple(info["pairs"]),
            **({"kd": "lift+place"} if ":" in spec else {}),
        )
        members[spec] = KDModule(s, obj)
    teacher.register_forward_pre_hook(spy("teacher"), with_kwargs=True)
    group = KDGroup(members)
    seen.clear()  # (sizing the adapters ran the students once)
    loss_fn = kd_group_loss_fn(
        teacher, noise_scheduler(smoke.diffusion), 10, label_drop=0.5, null_class=10
    )
    labels = torch.arange(16) % 10
    loss, _ = loss_fn(
        group, torch.rand(16, 1, 8, 8) * 2 - 1, torch.Generator().manual_seed(0), 0.1, labels=labels
    )
    assert torch.isfinite(loss)
    t_labels = seen["teacher"][0]
    assert (t_labels == 10).any() and (t_labels != 10).any()  # some dropped to the null class
    kept = t_labels != 10
    assert torch.equal(t_labels[kept], labels[kept])
    for spec in members:
        assert torch.equal(seen[spec][0], t_labels)


# ---------------------------------------------------------------- TinyFusion's recipe


def test_outlier_mask_drops_massive_activations_per_sample():
    h = torch.zeros(2, 16, 8)
    h[0] = torch.linspace(-1, 1, 128).reshape(16, 8)
    h[1] = torch.linspace(-1, 1, 128).reshape(16, 8) * 100  # another scale: its own statistics
    h[0, 3, 4] = 50.0  # a massive activation
    m = outlier_mask(h)
    assert not m[0, 3, 4]
    assert m[0].sum() == 127  # everything else of sample 0 is within 2 sd
    assert m[1].all()  # sample 1 is judged by its own spread
    assert outlier_mask(h, n_std=100.0)[0, 3, 4]  # a wider band keeps it


def test_masked_feature_kd_ignores_outliers_and_averages_the_pairs():
    torch.manual_seed(0)
    hS, hT = torch.randn(2, 10, 6), torch.randn(2, 10, 6)
    mS, mT = outlier_mask(hS), outlier_mask(hT)
    expected = F.mse_loss(mS * hS, mT * hT)
    assert masked_feature_kd([hS], [hT]) == pytest.approx(float(expected))
    # two pairs: the mean of their terms
    assert masked_feature_kd([hS, hS], [hT, hS]) == pytest.approx(float(expected) / 2)
    # a huge teacher outlier changes nothing where it is masked out
    spiked = hT.clone()
    spiked[0, 0, 0] = 1e4
    assert masked_feature_kd([hS], [spiked]) < 10 * float(expected)


def test_feature_weight_falls_linearly_from_1e_2_to_0():
    assert feature_weight(0.0) == pytest.approx(1e-2)
    assert feature_weight(0.5) == pytest.approx(5e-3)
    assert feature_weight(1.0) == 0.0
    assert feature_weight(0.25, start=2.0) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="progress"):
        feature_weight(None)


def test_tinyfusion_objective_is_its_formula(smoke):
    torch.manual_seed(0)
    eps, eS, eT = torch.randn(3, 4, 1, 8, 8).unbind(0)
    fS, fT = [torch.randn(4, 16, 8)], [torch.randn(4, 16, 8), torch.randn(4, 16, 8)]
    out = build_objective("tinyfusion", teacher_blocks=(1,))(eps, eS, eT, fS, fT, progress=0.5)
    expected = 0.9 * F.mse_loss(eS, eT) + 0.1 * F.mse_loss(eS, eps)
    expected = expected + 5e-3 * masked_feature_kd(fS, [fT[1]])
    assert float(out.total) == pytest.approx(float(expected), rel=1e-6)
    # LIFT+PLACE in place of OutKD, at the per-element scale of the others
    lp = build_objective("tinyfusion", teacher_blocks=(1,), kd="lift+place", group_size=16)
    out = lp(eps, eS, eT, fS, fT, progress=0.5)
    c, f, w = lift_terms(eS, eT, 16, "l2")
    kd = (c + w * f) / 64
    assert float(out.parts["kd"]) == pytest.approx(float(kd), rel=1e-5)
    assert out.parts["coarse"] > 0 and 0 <= float(out.parts["w"]) <= 1
    assert label("tinyfusion:kd=lift+place") == "TinyFusion KD, LIFT+PLACE (K=16)"


# ---------------------------------------------------------------- latent: autoencoder and BK-SDM


def test_autoencoder_shapes_scale_and_floor(smoke):
    torch.manual_seed(0)
    ae = build_autoencoder(smoke.latent.autoencoder, 8, 1).eval()
    images = (torch.rand(6, 1, 8, 8) * 255).to(torch.uint8)
    z = encode(ae, images)
    assert z.shape == (6, smoke.latent.autoencoder.latent_channels, 4, 4)
    scale = latent_scale(z)
    assert float((z * scale).std()) == pytest.approx(1.0, rel=1e-4)
    back = decode(ae, z * scale, scale)
    assert back.dtype == torch.uint8 and back.shape == images.shape
    assert torch.equal(back, reconstruct(ae, images))  # the floor's images: encoded and decoded
    with pytest.raises(ValueError, match="divisible"):
        build_autoencoder(smoke.latent.autoencoder, 7, 1)


def test_a_missing_pretrained_autoencoder_is_a_clear_error(tmp_path):
    from liftkd.stages.latent import get_autoencoder

    p = get_profile("smoke", **{"latent.autoencoder.pretrained": str(tmp_path / "nope")})
    with pytest.raises(FileNotFoundError, match="no AutoencoderKL there"):
        get_autoencoder(p, tmp_path)


def test_bk_sdm_small_removes_the_mid_block_and_a_layer_per_block(smoke, tmp_path):
    unet = _latent_unet(smoke)
    plan = bk_sdm_plan(unet, "small")
    assert plan[-1] == "mid_block" and len(plan) == 2 * len(unet.down_blocks) + 1
    student = remove_blocks(unet, plan)
    assert student.mid_block is None and unet.mid_block is not None  # a copy was cut
    assert all(len(b.resnets) == 1 for b in student.down_blocks)
    assert all(len(b.resnets) == 2 for b in student.up_blocks)
    # the kept layers are the teacher's; the block outputs keep their widths (BK-SDM's feature KD)
    assert torch.equal(
        student.down_blocks[0].resnets[0].conv1.weight, unet.down_blocks[0].resnets[0].conv1.weight
    )
    x = {"sample": torch.randn(2, 4, 4, 4), "timestep": torch.tensor([5, 500])}
    level = "blocks"
    assert feature_widths(student, x, level) == feature_widths(unet, x, level)
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in unet.parameters())
    save_model(student, tmp_path / "s.pt")
    back = load_model(tmp_path / "s.pt")
    with torch.no_grad():
        assert torch.equal(student.eval()(**x).sample, back(**x).sample)
    base = remove_blocks(unet, bk_sdm_plan(unet, "base"))
    assert base.mid_block is not None


def test_bk_sdm_needs_two_layers_per_block(smoke):
    thin = build_unet(get_profile("smoke").unet, 8, 1)  # one layer per block
    with pytest.raises(ValueError, match="layers_per_block >= 2"):
        bk_sdm_plan(thin)
    with pytest.raises(ValueError, match="unknown block-removal plan"):
        bk_sdm_plan(_latent_unet(smoke), "tiny")


def test_bksdm_objective_is_its_formula(smoke):
    teacher = _latent_unet(smoke)
    student = remove_blocks(teacher, bk_sdm_plan(teacher))
    x = {"sample": torch.randn(2, 4, 4, 4), "timestep": torch.tensor([5, 500])}
    obj = build_objective("bksdm", student, teacher, x)
    assert obj.uses_features and obj.feature_level == "blocks"
    torch.manual_seed(0)
    eps, eS, eT = torch.randn(3, 2, 4, 4, 4).unbind(0)
    fS = [torch.randn(2, 20, 4, 4), torch.randn(2, 40, 2, 2)]
    fT = [torch.randn(2, 20, 4, 4), torch.randn(2, 40, 2, 2)]
    out = obj(eps, eS, eT, fS, fT, progress=0.3)
    expected = F.mse_loss(eS, eps) + F.mse_loss(eS, eT)
    expected = expected + F.mse_loss(fS[0], fT[0]) + F.mse_loss(fS[1], fT[1])
    assert float(out.total) == pytest.approx(float(expected), rel=1e-6)
    assert not build_objective("bksdm").uses_features  # built by name alone: task + KD
    assert obj.adapters is None  # block removal alone keeps every width


def test_bksdm_maps_a_narrower_students_blocks_to_the_teachers_widths(smoke):
    """``latent.width_ratio``: the student cut narrower after the removal; BK-SDM's feature
    term compares adapted block outputs, and the adapters learn with the student."""
    import dataclasses

    from liftkd.stages.latent import make_student

    teacher = _latent_unet(smoke)
    narrow = dataclasses.replace(smoke, latent=dataclasses.replace(smoke.latent, width_ratio=0.5))
    student, plan = make_student(narrow, teacher)
    wide, _ = make_student(smoke, teacher)
    assert plan == bk_sdm_plan(teacher) and removed_blocks(student) == plan
    n = sum(p.numel() for p in student.parameters())
    assert n < sum(p.numel() for p in wide.parameters()) / 2
    x = {"sample": torch.randn(2, 4, 4, 4), "timestep": torch.tensor([5, 500])}
    assert feature_widths(student, x, "blocks") == [10, 20, 20, 10]
    obj = build_objective("bksdm", student, teacher, x)
    assert [a.weight.shape[:2] for a in obj.adapters.adapters] == [
        (20, 10),
        (40, 20),
        (40, 20),
        (20, 10),
    ]
    torch.manual_seed(0)
    eps, eS, eT = torch.randn(3, 2, 4, 4, 4).unbind(0)
    fS = [torch.randn(2, c, 2, 2) for c in (10, 20, 20, 10)]
    fT = [torch.randn(2, c, 2, 2) for c in (20, 40, 40, 20)]
    out = obj(eps, eS, eT, fS, fT, progress=0.3)
    with torch.no_grad():
        hS = [a(f) for a, f in zip(obj.adapters.adapters, fS, strict=True)]
        feat = sum(F.mse_loss(h, t) for h, t in zip(hS, fT, strict=True))
        expected = F.mse_loss(eS, eps) + F.mse_loss(eS, eT) + feat
    assert float(out.total.detach()) == pytest.approx(float(expected), rel=1e-6)
    out.total.backward()
    assert all(a.weight.grad.abs().sum() > 0 for a in obj.adapters.adapters)


# ---------------------------------------------------------------- one KD step, every objective


@pytest.mark.parametrize("path", ["dit", "latent"])
def test_one_kd_step_under_every_objective_of_each_path(smoke, path, tmp_path):
    """Each path's two objectives train side by side: one optimisation step of the real loop
    changes every student, with finite losses."""
    cfg = smoke.dit_kd.kd if path == "dit" else smoke.latent.kd
    if path == "dit":
        teacher = _dit(smoke)
        student, info = make_student(smoke, teacher)
        data = (torch.rand(32, 1, 8, 8) * 255).to(torch.uint8)
        extra = dict(labels=torch.arange(32) % 10, label_drop=0.1, null_class=10)
        options = {"teacher_blocks": tuple(info["pairs"])}
        example = _dit_inputs(2)
    else:
        teacher = _latent_unet(smoke)
        student = remove_blocks(teacher, bk_sdm_plan(teacher))
        data = torch.randn(32, 4, 4, 4)
        extra, options = {}, {}
        example = {"sample": torch.randn(2, 4, 4, 4), "timestep": torch.tensor([5, 500])}
    backbone = kd_job.Backbone(
        name=path,
        teacher=teacher.requires_grad_(False),
        student=student,
        data=data,
        sampler=lambda m, n: None,
        example=lambda: example,
        options=options,
        **extra,
    )
    from dataclasses import replace

    one = replace(cfg, train=replace(cfg.train, steps=2, checkpoint_every=1), evaluations=2)
    job = kd_runs.backbone_jobs(path, one, tmp_path)[0]
    result = kd_job.train(backbone, job, smoke, progress=False)
    assert [int(d) for d in result.ema.diverged_at] == [-1, -1]
    for spec in one.objectives:
        assert all(math.isfinite(h[f"{spec}/loss"]) for h in result.history)
        trained = result.model.member(spec).student.state_dict()
        assert any(not torch.equal(v, student.state_dict()[k]) for k, v in trained.items())
    # run again: found finished, nothing trained
    assert kd_job.train(backbone, job, smoke, progress=False).steps_run == 0


# ---------------------------------------------------------------- claim 7


def _result(base_fids, ours_fids, se=1.0, threshold=1000.0):
    rows = [
        {"objective": "b", "label": "B", "seed": s, "fid": f, "fid_se": se}
        for s, f in enumerate(base_fids)
    ] + [
        {"objective": "o", "label": "O", "seed": s, "fid": f, "fid_se": se}
        for s, f in enumerate(ours_fids)
    ]
    return {
        "rows": rows,
        "comparison": {"baseline": "b", "ours": "o"},
        "reference": {"recognisable": threshold, "teacher_final": {"fid": 10.0}},
    }


def test_claim7_verdicts_on_both_sides_of_the_noise():
    win = _result([50, 52], [40, 41])  # ours lower by 10 > 2 * sqrt(2) * 1 on both seeds
    noise = _result([50, 52], [48, 51])  # within 2 combined SE on a seed
    loss = _result([40, 41], [50, 52])
    assert claims.claim7(win, win)["verdict"] == "supported"
    assert claims.claim7(win, noise)["verdict"] == "inconclusive"
    assert claims.claim7(win, loss)["verdict"] == "not supported"
    assert claims.claim7()["verdict"] == "inconclusive"
    assert "not run" in claims.claim7(win, None)["measured"]
    # just beyond and just within 2 combined SE (2 * sqrt(2) = 2.83)
    assert claims.claim7(_result([50, 50], [47.1, 47.1]), win)["verdict"] == "supported"
    assert claims.claim7(_result([50, 50], [47.3, 47.3]), win)["verdict"] == "inconclusive"
    # a student that does not generate decides nothing
    assert claims.claim7(_result([2000, 2000], [1500, 1500]), win)["verdict"] == "inconclusive"


def test_claim7_names_each_teacher_beside_the_pixel_one():
    dit = _result([50, 52], [40, 41])
    dit["reference"]["teacher_final"] = {"fid": 31.25, "fid_se": 1.5}
    measured = claims.claim7(dit, None, pixel_teacher={"fid": 14.6, "fid_se": 0.83})["measured"]
    assert (
        "DiT:" in measured
        and "(teacher 31.2 ± 1.5; the pixel U-Net teacher 14.6 ± 0.83" in measured
    )
    # without the sweep's teacher (jobs saved before it was recorded) the path's own teacher only
    assert "pixel U-Net teacher" not in claims.claim7(dit, None)["measured"]
    # the verdict does not depend on it
    assert (
        claims.claim7(dit, dit, pixel_teacher={"fid": 14.6})["verdict"]
        == claims.claim7(dit, dit)["verdict"]
    )


def test_backbone_settings_are_checked():
    with pytest.raises(SettingsError, match="evaluations must divide"):
        get_profile("smoke", **{"dit_kd.kd.evaluations": 3})
    with pytest.raises(SettingsError, match="dit_kd.selection"):
        get_profile("smoke", **{"dit_kd.selection": "best"})
    with pytest.raises(SettingsError, match="latent.removal"):
        get_profile("smoke", **{"latent.removal": "tiny"})


def test_a_diverged_student_is_recorded_while_the_other_trains_on(smoke, tmp_path, monkeypatch):
    from dataclasses import replace

    from liftkd.method.recipes import RecipeKD

    real = RecipeKD.kd_term

    def broken(self, eS, eT):  # LIFT+PLACE's term turns NaN: that student diverges
        kd, parts = real(self, eS, eT)
        return (kd * math.nan, parts) if self.kd == "lift+place" else (kd, parts)

    monkeypatch.setattr(RecipeKD, "kd_term", broken)
    teacher = _latent_unet(smoke).requires_grad_(False)
    backbone = kd_job.Backbone(
        name="latent",
        teacher=teacher,
        student=remove_blocks(teacher, bk_sdm_plan(teacher)),
        data=torch.randn(32, 4, 4, 4),
        sampler=lambda m, n: None,
        example=lambda: {"sample": torch.randn(2, 4, 4, 4), "timestep": torch.tensor([5, 500])},
    )
    cfg = smoke.latent.kd
    cfg = replace(cfg, train=replace(cfg.train, steps=4, checkpoint_every=1), evaluations=2)
    job = kd_runs.backbone_jobs("latent", cfg, tmp_path)[0]
    result = kd_job.train(backbone, job, smoke, progress=False)
    assert [int(d) for d in result.ema.diverged_at] == [-1, 0]
    assert all(math.isfinite(h["bksdm/loss"]) for h in result.history)
    evals = [
        {"objective": o, "step": s, "fid": f, "fid_se": 0.2, "fid_final": f, "n_final": 60}
        for o in cfg.objectives
        for s, f in ((0, 900.0), (2, 48.2), (4, 48.0 if o == "bksdm" else math.nan))
    ]
    rows = kd_job.summarise(job, evals, 1000.0, job.labels())
    assert [r["status"] for r in rows] == ["converged", "diverged"]
