"""The authors' choices as named options: each changes what it says, and nothing else by default."""

import copy
import dataclasses

import pytest
import torch

from liftkd.config import TrainConfig, get_profile
from liftkd.method.lift import lift_terms
from liftkd.method.objectives import build_objective, label
from liftkd.models.presets import build_unet
from liftkd.stages.kd_job import set_dropout
from liftkd.training.diffusion import forward_noise, noise_scheduler
from liftkd.training.distill import KDGroup, KDModule, distill_group
from tests.conftest import smoke_pair


def test_coarse_scale_is_the_authors_unless_set():
    g = torch.Generator().manual_seed(0)
    eT = torch.randn(3, 2, 8, 8, generator=g)
    eS = 0.7 * eT + 0.2 + 0.3 * torch.randn(3, 2, 8, 8, generator=g)
    # LIFT: the authors' constant 32 by default; "n" the 64 elements per (sample, channel)
    by_default, fine, w = lift_terms(eS, eT)
    by_32, fine32, w32 = lift_terms(eS, eT, coarse_scale=32)
    by_n, fine_n, w_n = lift_terms(eS, eT, coarse_scale="n")
    torch.testing.assert_close(by_default, by_32)
    torch.testing.assert_close(by_32, by_n * 32 / 64)
    torch.testing.assert_close(fine32, fine)
    torch.testing.assert_close(fine_n, fine)
    torch.testing.assert_close(w32, w)
    # PLACE: K by default, so "n" changes nothing; a constant replaces K
    place_k, _, _ = lift_terms(eS, eT, group_size=16)
    place_n, _, _ = lift_terms(eS, eT, group_size=16, coarse_scale="n")
    place_1, _, _ = lift_terms(eS, eT, group_size=16, coarse_scale=1)
    torch.testing.assert_close(place_n, place_k)
    torch.testing.assert_close(place_1, place_k / 16)
    # the objective: default LIFT is the authors' (x32), "n" is labelled
    out_default = build_objective("lift")(eT, eS, eT)
    out_32 = build_objective("lift", coarse_scale=32)(eT, eS, eT)
    torch.testing.assert_close(out_default.total, out_32.total)
    assert label("lift") == "LIFT"
    assert label("lift:coarse_scale=n") == "LIFT (coarse xn)"
    assert label("lift:coarse_scale=8") == "LIFT (coarse x8)"
    for bad in (0, "m", float("inf")):
        with pytest.raises(ValueError, match="coarse_scale must be a number above 0 or 'n'"):
            build_objective("lift", coarse_scale=bad)


def test_antithetic_timesteps_pair_t_with_T_minus_1_minus_t():
    sched = noise_scheduler(get_profile("smoke").diffusion)
    x0 = torch.zeros(6, 1, 4, 4)
    _, t, _ = forward_noise(sched, x0, torch.Generator().manual_seed(1), antithetic=True)
    assert torch.equal(t[3:], 999 - t[:3])
    _, plain, _ = forward_noise(sched, x0, torch.Generator().manual_seed(1))
    assert not torch.equal(plain[3:], 999 - plain[:3])
    _, odd, _ = forward_noise(sched, torch.zeros(5, 1, 4, 4), torch.Generator(), antithetic=True)
    assert len(odd) == 5 and torch.equal(odd[3:], 999 - odd[:2])


@pytest.fixture(scope="module")
def pair():
    p, teacher, student = smoke_pair(0.5)
    images = torch.randint(0, 256, (32, 1, 8, 8), dtype=torch.uint8)
    return p, teacher, student, images


def _featkd(student, teacher):
    example = {"sample": torch.randn(2, 1, 8, 8), "timestep": torch.tensor([1, 2])}
    torch.manual_seed(0)
    return build_objective("outkd+featkd", student, teacher, example)


def test_clip_scope_leaves_the_adapters_gradient_alone(pair):
    _, teacher, student, _ = pair
    grads = {}
    for clip in ("model+adapters", "model"):
        s = copy.deepcopy(student)
        group = KDGroup({"a": KDModule(s, _featkd(s, teacher))}, clip)
        for prm in group.parameters():
            prm.grad = torch.full_like(prm, 10.0)  # far above the clipping norm
        group.clip_gradients(1.0)
        member = group.member("a")
        grads[clip] = (
            torch.cat([p.grad.flatten() for p in member.student.parameters()]).norm(),
            torch.cat([p.grad.flatten() for p in member.objective.parameters()]).norm(),
        )
    assert grads["model"][0] == pytest.approx(1.0, rel=1e-4)  # the student is clipped
    assert grads["model"][1] > 10.0  # the adapters are not
    total = (grads["model+adapters"][0] ** 2 + grads["model+adapters"][1] ** 2).sqrt()
    assert total == pytest.approx(1.0, rel=1e-4)  # clipped as one
    with pytest.raises(ValueError, match="clip must be"):
        KDGroup({"a": KDModule(student, _featkd(student, teacher))}, "adapters")


def test_the_optimiser_option(pair, tmp_path):
    p, teacher, student, images = pair
    ends = {}
    for name, wd in (("adamw", 0.0), ("adam", 0.0), ("adamw", 0.5), ("adam", 0.5)):
        cfg = TrainConfig(steps=3, batch_size=8, warmup_steps=0, weight_decay=wd, optimizer=name)
        s = copy.deepcopy(student)
        obj = build_objective("outkd")
        res = distill_group(
            {"o": s},
            teacher,
            {"o": obj},
            images,
            cfg,
            noise_scheduler(p.diffusion),
            tmp_path / f"{name}{wd}",
            progress=False,
        )
        ends[(name, wd)] = torch.cat(
            [v.flatten() for v in res.model.state_dict().values() if v.is_floating_point()]
        )
    torch.testing.assert_close(ends[("adam", 0.0)], ends[("adamw", 0.0)])  # no decay: the same
    assert not torch.allclose(ends[("adam", 0.5)], ends[("adamw", 0.5)])  # decay coupled or not


def test_student_dropout_is_set_on_every_dropout_layer():
    p = get_profile("gpu")
    unet = build_unet(
        dataclasses.replace(
            p.unet, block_out_channels=(32, 32, 32, 32), norm_num_groups=8, attention_head_dim=32
        ),
        32,
        3,
    )
    rates = {m.p for m in set_dropout(unet, 0.3).modules() if isinstance(m, torch.nn.Dropout)}
    assert rates == {0.3} and unet.training
    assert {m.p for m in set_dropout(unet, None).modules() if isinstance(m, torch.nn.Dropout)} == {
        0.3
    }


def test_the_options_are_resolved_and_default_to_this_project_s_protocol():
    p = get_profile("cpu", **{"distill.train.optimizer": "adam", "distill.student_dropout": 0.1})
    assert p.distill.train.optimizer == "adam" and p.distill.student_dropout == 0.1
    d = get_profile("cpu").distill
    assert (d.train.optimizer, d.train.antithetic, d.train.clip, d.student_dropout) == (
        "adamw",
        False,
        "model+adapters",
        None,
    )
    with pytest.raises(ValueError, match="'distill.train.clip' = 'all'"):
        get_profile("cpu", **{"distill.train.clip": "all"})


def test_gradient_terms_measure_each_term_on_eS():
    from liftkd.method.diagnostics import gradient_terms

    g = torch.Generator().manual_seed(0)
    eT = torch.randn(4, 1, 8, 8, generator=g)
    eS = 0.5 * eT + 0.3 + 0.2 * torch.randn(4, 1, 8, 8, generator=g)
    eps = torch.randn(4, 1, 8, 8, generator=g)
    out = gradient_terms(build_objective("outkd"), eps, eS, eT)
    assert set(out) == {"grad_task", "grad_outkd", "cos_outkd"}
    assert out["cos_outkd"] == pytest.approx(1.0)  # OutKD descends straight along eT - eS
    # its per-sample gradient is 2 (eS - eT): the norm of that, averaged over the samples
    expected = (2 * (eS - eT)).flatten(1).norm(dim=1).mean().item()
    assert out["grad_outkd"] == pytest.approx(expected, rel=1e-5)
    lift = gradient_terms(build_objective("lift+place", group_size=16), eps, eS, eT)
    assert set(lift) == {"grad_task", "grad_coarse", "grad_fine", "cos_coarse"}
    assert -1.0 <= lift["cos_coarse"] <= 1.0 and lift["grad_coarse"] > 0
    assert set(gradient_terms(build_objective("nokd"), eps, eS, eT)) == {"grad_task"}


def _lift_place_run(pair, run_dir, diagnose_every=0):
    p, teacher, student, images = pair
    return distill_group(
        {"o": copy.deepcopy(student)},
        teacher,
        {"o": build_objective("lift+place", group_size=4)},
        images,
        TrainConfig(steps=6, batch_size=8, warmup_steps=0),
        noise_scheduler(p.diffusion),
        run_dir,
        progress=False,
        diagnose_every=diagnose_every,
    )


def test_the_kd_loop_logs_diagnostics_every_so_many_steps(pair, tmp_path):
    res = _lift_place_run(pair, tmp_path / "diagnosed", diagnose_every=3)
    assert [r["step"] for r in res.history if "o/grad_coarse" in r] == [0, 3]
    plain = _lift_place_run(pair, tmp_path / "plain")
    for a, b in zip(res.history, plain.history, strict=True):  # measuring changes no step
        assert a["loss"] == b["loss"]


def test_the_group_size_rule_for_other_resolutions():
    """The paper's K = 16 at 64 x 64 keeps 1/256 of a channel per group; the rule keeps that
    share, never below 4 elements, and the cpu ablations train its K beside the paper's 16."""
    from liftkd.method.lift import place_group_size
    from liftkd.method.objectives import parse_spec

    assert place_group_size(64 * 64) == 16
    assert place_group_size(128 * 128) == 64
    assert place_group_size(32 * 32) == 4 and place_group_size(16 * 16) == 4
    assert place_group_size(8 * 8) == 4
    with pytest.raises(ValueError, match="cannot hold a group of 4"):
        place_group_size(2)
    cpu = get_profile("cpu")
    ks = {parse_spec(s, 16)[1].get("group_size") for s in cpu.distill.ablations}
    assert place_group_size(cpu.data.resolution**2) in ks
    assert cpu.distill.group_size == 16  # the paper's K in the main comparison
