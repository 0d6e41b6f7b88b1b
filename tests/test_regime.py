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
    jobs = plan(run)  # the regime's one job per seed, nothing else of the sweep
    assert [j.name for j in jobs] == ["main_r0.75_s0", "main_r0.75_s1"]
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


@pytest.mark.parametrize("name", ["smoke", "cpu"])
def test_the_regime_student_normalises_one_channel_per_group(name):
    """The profile's regime teacher cut at its ratio: one channel per GroupNorm group at most
    levels (the paper's 90% DDPM student's regime), the sweep's students several."""
    p = get_profile(name)
    teacher = build_unet(p.regime.unet, p.data.resolution, p.data.channels)
    student, report = prune(teacher, p.regime.ratio, "magnitude", progress=False)
    shares = regime.shares(teacher, student, report.to_dict())
    assert shares["teacher"]["one_per_group"] == 0
    s = shares["student"]
    assert s["one_per_group"] > s["groupnorms"] / 2, s
    assert shares["student_params"] < shares["teacher_params"] / 10
    sweep = build_unet(p.unet, p.data.resolution, p.data.channels)
    cut, _ = prune(sweep, max(p.distill.ratios), "magnitude", progress=False)
    if name == "cpu":  # the sweep's 80% student keeps 2, 4 and 8 channels per group
        assert regime.norm_shares(cut)["one_per_group"] == 0
