import pytest

from liftkd.config import PROFILES, get_profile


def test_overrides_dotted_and_section():
    p = get_profile("cpu", **{"teacher.steps": 7})
    assert p.teacher.steps == 7 and p.teacher.batch_size == get_profile("cpu").teacher.batch_size
    q = get_profile("cpu", teacher={"steps": 9, "lr": 5e-4})
    assert (q.teacher.steps, q.teacher.lr) == (9, 5e-4)


def test_nested_overrides_and_lists():
    p = get_profile("cpu", **{"analysis.kd.steps": 5, "pruning.ratios": [0.5, 0.9]})
    assert p.analysis.kd.steps == 5 and p.analysis.kd.lr == get_profile("cpu").analysis.kd.lr
    assert p.pruning.ratios == (0.5, 0.9)
    q = get_profile("cpu", analysis={"kd.steps": 7, "n_images": 3})
    assert q.analysis.kd.steps == 7 and q.analysis.n_images == 3


def test_none_override_keeps_profile_value():
    assert (
        get_profile("smoke", **{"teacher.steps": None}).teacher.steps
        == get_profile("smoke").teacher.steps
    )


@pytest.mark.parametrize("bad", [{"teacher.stepz": 1}, {"nosection": 1}, {"teacher": {"foo": 1}}])
def test_unknown_settings_are_errors(bad):
    with pytest.raises(ValueError, match="unknown"):
        get_profile("cpu", **bad)


def test_unknown_profile():
    with pytest.raises(ValueError, match="unknown profile"):
        get_profile("laptop")


@pytest.mark.parametrize("name", ["smoke", "cpu"])
def test_offline_profiles_allow_a_real_90_percent_cut(name):
    """Every width has >= 10 channels per GroupNorm group and per head (DESIGN.md's trap)."""
    u = get_profile(name).unet
    for width in u.block_out_channels:
        assert width % u.norm_num_groups == 0 and width // u.norm_num_groups >= 10
    assert u.attention_head_dim >= 10
    assert all(w % u.attention_head_dim == 0 for w in u.block_out_channels[-1:])


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_profile_serialises(name):
    d = get_profile(name).to_dict()
    assert d["name"] == name and isinstance(d["unet"]["block_out_channels"], tuple)


EXPERIMENT_SECTIONS = ("dit", "pruning", "analysis", "capacity", "distill", "dit_kd", "latent")


def test_every_profile_states_every_experiment_section():
    """No experiment section has a default: a profile that left one out would run on another
    profile's sizes (the gpu profile once ran claim 7 on the smoke DiT)."""
    import dataclasses

    from liftkd.config import Profile

    fields = {f.name: f for f in dataclasses.fields(Profile)}
    for name in EXPERIMENT_SECTIONS:
        assert fields[name].default is dataclasses.MISSING, name
        assert fields[name].default_factory is dataclasses.MISSING, name
    with pytest.raises(TypeError, match="dit_kd"):
        Profile(**{k: v for k, v in vars(get_profile("smoke")).items() if k != "dit_kd"})


@pytest.mark.parametrize("section", EXPERIMENT_SECTIONS)
def test_each_profiles_sections_are_its_own(section):
    """The gpu profile sizes every section for itself: none equals the smoke or cpu one (the
    DiT, latent and capacity sections included), and the gpu paths' KD jobs are judged on as many
    images as the sweep's."""
    gpu = getattr(get_profile("gpu"), section)
    assert gpu != getattr(get_profile("smoke"), section)
    assert gpu != getattr(get_profile("cpu"), section)


def test_the_gpu_profiles_backbone_paths_follow_its_sweep_protocol():
    g = get_profile("gpu")
    for kd in (g.dit_kd.kd, g.latent.kd):
        assert (kd.eval_samples, kd.final_samples) == (
            g.distill.eval_samples,
            g.distill.final_samples,
        )
        assert kd.ddim_steps == g.distill.eval_ddim_steps and len(kd.seeds) >= 3
    assert g.dit.num_layers > g.dit_kd.keep > 0


def test_the_sweeps_step_count_is_set_per_ratio_only():
    from liftkd.config import SettingsError, validate_recorded

    with pytest.raises(SettingsError, match=r"distill.train.steps = 500 would not be read"):
        get_profile("smoke", **{"distill.train.steps": 500})
    with pytest.raises(SettingsError, match=r"'capacity.train.steps' = None"):
        get_profile("smoke", **{"capacity.train": {"steps": None, "batch_size": 8}})
    # results written when the setting held a (never read) value still read
    import dataclasses

    old = dataclasses.asdict(get_profile("smoke"))
    old["distill"]["train"]["steps"] = 1000
    assert validate_recorded(old) == get_profile("smoke")
