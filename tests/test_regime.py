"""The paper's regime (make regime): its run's settings, and how far its student is cut."""

import json

import pytest

from liftkd.config import SettingsError, get_profile, resolve_profile
from liftkd.models.presets import build_unet
from liftkd.models.pruning import prune
from liftkd.stages import regime
from liftkd.stages.sweep.jobs import plan


def test_the_regime_run_is_the_profile_with_its_unet_ratio_objectives_and_the_authors_recipe():
    base = get_profile("cpu")
    tree = regime.regime_overrides("cpu", "{distill.eval_samples: 100, distill.seeds: [5]}")
    run = resolve_profile("cpu", tree)
    assert run.unet == base.regime.unet and run.teacher == base.teacher
    assert run.pruning.ratios == run.capacity.ratios == run.distill.ratios == (0.75,)
    assert run.distill.eval_samples == 100  # the user's own settings stay
    # the floor's steps are the regime's own, the rest of its recipe the profile's
    assert run.capacity.train.steps == base.regime.capacity_steps != base.capacity.train.steps
    assert run.capacity.train.lr == base.capacity.train.lr
    smoke = resolve_profile("smoke", regime.regime_overrides("smoke"))  # no steps of its own
    assert smoke.capacity.train == get_profile("smoke").capacity.train
    jobs = plan(run)  # the regime's one job per seed, nothing else of the sweep
    assert [j.name for j in jobs] == [f"main_r0.75_s{s}" for s in (0, 1, 2)]
    assert jobs[0].objectives == ("nokd", "outkd", "outkd+featkd", "lift", "lift+place")
    assert jobs[0].train.optimizer == "adam" and jobs[0].train.lr == jobs[0].train.lr_min == 2e-4
    assert jobs[0].train.antithetic and jobs[0].train.steps == 2400
    assert jobs[0].dropout == base.distill.authors_dropout == 0.1
    for study in ("grid", "trend"):
        assert plan(run, study=study) == []


def test_the_overrides_travel_as_json_and_a_profile_without_a_regime_says_so(capsys):
    regime.main(["overrides", "--profile", "smoke"])
    text = capsys.readouterr().out
    assert resolve_profile("smoke", text).distill.ratios == (0.75,)  # make passes the text
    assert json.loads(text)["distill.train"]["optimizer"] == "adam"
    with pytest.raises(SettingsError, match=r"no regime study \(regime\.unet"):
        regime.overrides(get_profile("gpu"))
    with pytest.raises(SystemExit, match="no regime study"):
        regime.main(["overrides", "--profile", "gpu"])


def test_make_regime_seeds_lists_those_seeds_jobs_alone(capsys):
    """make regime SEEDS=2: the sweep's list takes SEEDS over the seeds the regime's overrides
    give (make regime-teacher, then one make per seed)."""
    from liftkd.stages.sweep.__main__ import main as sweep

    regime.main(["overrides", "--profile", "cpu"])
    text = capsys.readouterr().out
    sweep(["list", "--profile", "cpu", "--overrides", text])
    assert capsys.readouterr().out.split() == ["main_r0.75_s0", "main_r0.75_s1", "main_r0.75_s2"]
    sweep(["list", "--profile", "cpu", "--overrides", text, "--seeds", "2"])
    assert capsys.readouterr().out.split() == ["main_r0.75_s2"]
    with pytest.raises(SystemExit):  # a bad seed is refused as in the profile
        sweep(["list", "--profile", "cpu", "--overrides", text, "--seeds", "-1"])
    assert "greater than or equal to 0" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["smoke", "cpu"])
def test_the_regime_student_normalises_one_channel_per_group(name):
    """The profile's regime teacher cut at its ratio: one channel per GroupNorm group at most
    levels of the U-Net (the paper's 90% DDPM student's regime), the sweep's students several."""
    p = get_profile(name)
    teacher = build_unet(p.regime.unet, p.data.resolution, p.data.channels)
    student, report = prune(teacher, p.regime.ratio, "magnitude", progress=False)
    shares = regime.shares(teacher, student, report.to_dict())
    assert shares["teacher"]["one_per_group"] == 0
    s = shares["student"]
    assert s["one_per_group"] > 0 and max(map(int, s["channels_per_group"])) <= 4, s
    norm2 = [b.resnets[0].norm2 for b in student.down_blocks]  # one per level of the U-Net
    one = [n.num_channels == n.num_groups for n in norm2]
    assert sum(one) > len(one) / 2, [(n.num_channels, n.num_groups) for n in norm2]
    assert shares["student_params"] < shares["teacher_params"] / 10
    sweep = build_unet(p.unet, p.data.resolution, p.data.channels)
    cut, _ = prune(sweep, max(p.distill.ratios), "magnitude", progress=False)
    if name == "cpu":  # the sweep's 80% student keeps 2, 4 and 8 channels per group
        assert regime.norm_shares(cut)["one_per_group"] == 0


def test_a_resnet_block_with_one_channel_per_group_ignores_its_time_embedding():
    """The count notebook 08 reports (``time_blind``) is of blocks whose output does not move
    when the time embedding does, and only those."""
    import torch
    from diffusers.models.resnet import ResnetBlock2D

    x = torch.randn(2, 16, 8, 8)
    t1, t2 = torch.randn(2, 32), torch.randn(2, 32)
    for groups, norm in [(16, "default"), (8, "default"), (16, "scale_shift")]:
        block = ResnetBlock2D(
            in_channels=16, temb_channels=32, groups=groups, time_embedding_norm=norm
        ).eval()
        with torch.no_grad():
            moved = (block(x, t1) - block(x, t2)).abs().max().item()
        assert regime.time_blind(block) == (moved < 1e-5), (groups, norm, moved)
    assert regime.time_blind(block) is False and moved > 1e-2  # scale_shift sees the timestep
    p = get_profile("cpu")
    cut, _ = prune(build_unet(p.regime.unet, 16, 1), p.regime.ratio, "magnitude", progress=False)
    shares = regime.norm_shares(cut)
    assert 0 < shares["time_blind"] <= shares["resnets"]


def test_the_regime_header_says_how_many_blocks_cannot_see_the_timestep():
    from liftkd.results.claims import regime_header

    p = resolve_profile("cpu", regime.regime_overrides("cpu"))
    student = {"groupnorms": 27, "one_per_group": 21, "resnets": 11, "time_blind": 11}
    teacher = {"groupnorms": 27, "one_per_group": 0, "resnets": 11, "time_blind": 0}
    shares = {"teacher": teacher, "student": student, "teacher_params": 10, "student_params": 1}
    assert "11 of its 11 ResNet blocks cannot see the timestep" in regime_header(
        p, [], shares, None
    )
    older = {**shares, "student": {"groupnorms": 27, "one_per_group": 21}}  # saved before the count
    assert "cannot see" not in regime_header(p, [], older, None)
