"""The objectives: values, gradients (where they flow and where they must not), options."""

import pytest
import torch

from liftkd.method.features import FeatureTap
from liftkd.method.lift import LIFT, PLACE, fixed_weight, lift_terms
from liftkd.method.objectives import OBJECTIVES, build_objective
from liftkd.models.pruning import example_inputs
from tests.conftest import OUTPUT_SHAPES, smoke_pair


def _pair(shape, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    eT = torch.randn(shape, generator=g, dtype=dtype)
    eS = (0.6 * eT + 0.2 + 0.4 * torch.randn(shape, generator=g, dtype=dtype)).requires_grad_()
    eps = torch.randn(shape, generator=g, dtype=dtype)
    return eps, eS, eT


@pytest.mark.parametrize("shape", OUTPUT_SHAPES, ids=str)
def test_lift_equals_place_with_one_group_per_channel(shape):
    eps, eS, eT = _pair(shape, dtype=torch.float64)
    N = shape[2] * shape[3]
    # with its coarse term scaled by the elements per fit (not the authors' 32), LIFT is PLACE
    # with one group per channel
    a, b = LIFT(coarse_scale="n")(eps, eS, eT), PLACE(group_size=N)(eps, eS, eT)
    torch.testing.assert_close(a.total, b.total)
    (ga,) = torch.autograd.grad(a.total, eS)
    (gb,) = torch.autograd.grad(b.total, eS)
    torch.testing.assert_close(ga, gb)


@pytest.mark.parametrize("shape", OUTPUT_SHAPES, ids=str)
def test_place_runs_on_every_profile_size(shape):
    eps, eS, eT = _pair(shape)
    out = PLACE(group_size=16)(eps, eS, eT)
    out.total.backward()
    assert torch.isfinite(out.total) and torch.isfinite(eS.grad).all()
    assert set(out.parts) == {"task", "kd", "coarse", "fine", "w"}


def test_zero_kd_when_student_is_teacher():
    eT = torch.randn(3, 1, 8, 8)
    for name in ("outkd", "lift", "lift+place", "dist"):
        out = build_objective(name)(eT.clone(), eT.clone(), eT)
        assert out.parts["kd"].abs() < 1e-4 and out.parts["task"] == 0
    out = LIFT()(eT, eT.clone(), eT)
    assert out.parts["w"] == pytest.approx(1.0, abs=1e-5)


def test_lift_value_by_hand():
    """One sample, one channel: the formulas of docs/method.md written out."""
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]], dtype=torch.float64)
    y = 2.0 * x + 1.0 + torch.tensor([[[[0.1, -0.1], [-0.1, 0.1]]]], dtype=torch.float64)
    xm, ym = x.mean(), y.mean()
    b1 = ((x - xm) * (y - ym)).mean() / (((x - xm) ** 2).mean() + 1e-7)
    b0 = ym - b1 * xm
    coarse = 32 * ((b1 - 1).abs() + b0.abs())  # the authors' constant scale
    fine = (y - (b0 + b1 * x)).square().sum()
    w = 1 - min(1.0, float((b1 - 1).abs() + b0.abs()))
    L_coarse, L_fine, w_got = lift_terms(x, y)
    torch.testing.assert_close(L_coarse, coarse)
    torch.testing.assert_close(L_fine, fine)
    assert float(w_got) == pytest.approx(max(w, 0.0))


def test_gradients_reach_the_student_only():
    eps, eS, eT = _pair((2, 1, 8, 8))
    eT.requires_grad_()
    out = PLACE(group_size=16)(eps, eS, eT)
    assert out.parts["w"].grad_fn is None and not out.parts["w"].requires_grad
    gS, gT = torch.autograd.grad(out.total, [eS, eT], allow_unused=True)
    assert gS is not None and gS.abs().sum() > 0
    assert gT is None or gT.abs().sum() == 0


def test_fine_term_coefficients_are_detached():
    """d L_fine / d eS = -2 b1 (eT - b0 - b1 eS) exactly when b0, b1 are constants."""
    _, eS, eT = _pair((1, 1, 4, 4), dtype=torch.float64)
    _, L_fine, _ = lift_terms(eS, eT)
    (g,) = torch.autograd.grad(L_fine, eS)
    x, y = eS.detach().flatten(), eT.flatten()
    b1 = ((x - x.mean()) * (y - y.mean())).mean() / (((x - x.mean()) ** 2).mean() + 1e-7)
    b0 = y.mean() - b1 * x.mean()
    torch.testing.assert_close(g.flatten(), -2 * b1 * (y - b0 - b1 * x))


def test_weight_w_is_not_differentiated():
    """Total gradient equals grad(L_coarse) + w * grad(L_fine) with w a constant."""
    eps, eS, eT = _pair((2, 1, 8, 8), dtype=torch.float64)
    out = LIFT()(eps, eS, eT)
    (g_total,) = torch.autograd.grad(out.total, eS)
    L_coarse, L_fine, w = lift_terms(eS, eT)
    task = (eS - eps).square().flatten(1).sum(1).mean()
    (g_parts,) = torch.autograd.grad(task + L_coarse + w.item() * L_fine, eS)
    torch.testing.assert_close(g_total, g_parts)


@pytest.mark.parametrize("coarse", ["l1", "l2"])
def test_coarse_term_gradcheck(coarse):
    torch.manual_seed(0)
    eS = torch.randn(2, 2, 4, 4, dtype=torch.float64, requires_grad=True)
    eT = torch.randn(2, 2, 4, 4, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: lift_terms(s, eT, coarse=coarse)[0], (eS,))
    assert torch.autograd.gradcheck(
        lambda s: lift_terms(s, eT, group_size=4, coarse=coarse)[0], (eS,)
    )


def test_constant_student_channel_has_finite_loss_and_gradient():
    eT = torch.randn(2, 1, 8, 8)
    eS = torch.zeros(2, 1, 8, 8, requires_grad=True)
    out = PLACE(group_size=16)(torch.randn_like(eT), eS, eT)
    out.total.backward()
    assert torch.isfinite(out.total) and torch.isfinite(eS.grad).all()


def test_schedules_and_ablations():
    eps, eS, eT = _pair((2, 1, 8, 8))
    assert fixed_weight("linear", 0.25) == 0.25 and fixed_weight("none", None) == 1.0
    assert fixed_weight("cosine", 0.0) == 0.0 and fixed_weight("cosine", 1.0) == pytest.approx(1.0)
    assert fixed_weight("sigmoid", 0.1) < 0.05 < 0.95 < fixed_weight("sigmoid", 0.9)
    with pytest.raises(ValueError, match="needs progress"):
        LIFT(schedule="linear")(eps, eS, eT)
    out = LIFT(schedule="linear")(eps, eS, eT, progress=0.5)
    assert out.parts["w"] == pytest.approx(0.5)
    coarse_only = LIFT(terms="coarse")(eps, eS, eT)
    fine_only = LIFT(terms="fine", schedule="none")(eps, eS, eT)
    torch.testing.assert_close(coarse_only.parts["kd"], coarse_only.parts["coarse"])
    torch.testing.assert_close(fine_only.parts["kd"], fine_only.parts["fine"])
    l2 = LIFT(coarse="l2")(eps, eS, eT)
    assert l2.parts["coarse"] != coarse_only.parts["coarse"]
    for bad in (dict(schedule="step"), dict(terms="all"), dict(coarse="l3")):
        with pytest.raises(ValueError):
            LIFT(**bad)


def test_bad_inputs_are_clear_errors():
    eps, eS, eT = _pair((2, 1, 8, 8))
    with pytest.raises(ValueError, match="must have one"):
        build_objective("outkd")(eps, eS, eT[:, :, :4])
    with pytest.raises(ValueError, match="unknown objective"):
        build_objective("kd")
    with pytest.raises(ValueError, match="needs a group size"):
        PLACE(group_size=None)
    with pytest.raises(ValueError, match="taps features"):
        build_objective("featkd")


def test_feature_objectives_on_a_pruned_unet():
    _, teacher, student = smoke_pair(0.5)
    inputs = example_inputs(teacher, batch=2)
    x, t = inputs["sample"], inputs["timestep"]
    for name in ("featkd", "outkd+featkd", "normfeatkd", "lift+place"):
        objective = build_objective(name, student=student, teacher=teacher, example_inputs=inputs)
        with FeatureTap(student) as s_tap:
            eS = student(x, t).sample
        with torch.no_grad(), FeatureTap(teacher, detach=True) as t_tap:
            eT = teacher(x, t).sample
        out = objective(torch.randn_like(eS), eS, eT, s_tap.features, t_tap.features)
        out.total.backward()
        parts = out.parts
        assert parts["feat"] > 0
        # the FitNet term enters at weight 1 alone (FeatKD) and 1e-6 beside an output term
        feat_weight = 1.0 if name in ("featkd", "normfeatkd") else 1e-6
        expected = parts["task"] + parts.get("kd", 0.0) + feat_weight * parts["feat"]
        torch.testing.assert_close(out.total.detach(), expected)
        adapter = objective.adapters.adapters[0]
        assert adapter.weight.grad is not None and adapter.weight.abs().max() <= 0.005
        assert all(p.grad is None for p in teacher.parameters())
        student.zero_grad()


def test_every_objective_is_registered_and_callable():
    eps, eS, eT = _pair((2, 1, 8, 8))
    for name in OBJECTIVES:
        if name in ("featkd", "outkd+featkd", "normfeatkd"):
            continue
        out = build_objective(name)(eps, eS, eT, progress=0.5)
        assert torch.isfinite(out.total) and "task" in out.parts, name


def test_lift_without_the_fitnet_term_taps_no_features():
    _, teacher, student = smoke_pair(0.5)
    inputs = example_inputs(teacher, batch=2)
    with_term = build_objective("lift", student=student, teacher=teacher, example_inputs=inputs)
    without = build_objective(
        "lift", student=student, teacher=teacher, example_inputs=inputs, feat_weight=0
    )
    assert with_term.uses_features and with_term.adapters is not None
    assert not without.uses_features and without.adapters is None
    assert not list(without.parameters())  # nothing for the optimiser: LIFT itself learns nothing
    with pytest.raises(ValueError, match="needs the tapped features"):
        eS = student(inputs["sample"], inputs["timestep"]).sample
        with_term(torch.randn_like(eS), eS, eS.detach())


def test_l1_outkd_is_the_absolute_error_summed():
    eps, eS, eT = _pair((2, 1, 4, 4), dtype=torch.float64)
    out = build_objective("outkd", norm="l1")(eps, eS, eT)
    want = (eS - eT).abs().flatten(1).sum(1).mean()
    torch.testing.assert_close(out.parts["kd"], want)
    torch.testing.assert_close(out.total, out.parts["task"] + want)
    with pytest.raises(ValueError, match="norm must be one of"):
        build_objective("outkd", norm="l3")
