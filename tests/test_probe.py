"""The linear probe and the exact coarse/fine split of the KD error."""

from types import SimpleNamespace

import pytest
import torch

from liftkd.method.probe import corrected, decompose, grouped, ols_fit
from tests.conftest import OUTPUT_SHAPES


@pytest.mark.parametrize("shape", OUTPUT_SHAPES, ids=str)
@pytest.mark.parametrize("group_size", [None, 16])
def test_coarse_plus_fine_is_the_kd_error(shape, group_size):
    g = torch.Generator().manual_seed(0)
    eT = torch.randn(shape, generator=g, dtype=torch.float64)
    eS = 0.7 * eT + 0.3 + 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    d = decompose(eS, eT, group_size=group_size, eps=0.0)
    torch.testing.assert_close(d.coarse + d.fine, d.total, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(d.total.sum(), (eT - eS).square().sum())
    assert 0 < d.coarse_share < 1


def test_ols_matches_least_squares_solver():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 50, generator=g, dtype=torch.float64)
    y = 2.0 - 0.5 * x + 0.1 * torch.randn(5, 50, generator=g, dtype=torch.float64)
    b0, b1 = ols_fit(x, y)
    for i in range(5):
        A = torch.stack([torch.ones(50, dtype=torch.float64), x[i]], 1)
        sol = torch.linalg.lstsq(A, y[i, :, None]).solution.squeeze()
        torch.testing.assert_close(torch.stack([b0[i], b1[i]]), sol)


def test_student_equal_to_teacher_is_beta0_0_beta1_1():
    eT = torch.randn(2, 3, 8, 8)
    d = decompose(eT.clone(), eT, group_size=16)
    torch.testing.assert_close(d.beta1, torch.ones_like(d.beta1), atol=1e-5, rtol=0)
    torch.testing.assert_close(d.beta0, torch.zeros_like(d.beta0), atol=1e-5, rtol=0)
    assert d.total.abs().max() == 0


def test_pure_shift_and_scale_is_all_coarse():
    eS = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    d = decompose(eS, 3.0 * eS - 1.0)
    assert d.fine.abs().max() < 1e-20 and d.coarse_share == pytest.approx(1.0)
    torch.testing.assert_close(d.beta1, torch.full_like(d.beta1, 3.0))
    torch.testing.assert_close(corrected(eS, 3.0 * eS - 1.0), 3.0 * eS - 1.0)


def test_constant_channel_gives_no_nan():
    eS = torch.zeros(2, 1, 8, 8)
    eT = torch.randn(2, 1, 8, 8)
    for eps in (0.0, 1e-7):
        d = decompose(eS, eT, eps=eps)
        assert torch.isfinite(d.beta0).all() and torch.isfinite(d.beta1).all()
        torch.testing.assert_close(d.coarse + d.fine, d.total)


def test_groups_are_ranked_by_difficulty():
    eT = torch.zeros(1, 1, 4, 8)
    eS = torch.arange(32.0).view(1, 1, 4, 8)  # error grows with the index
    ((x, _),) = grouped(eS, eT, group_size=8)
    assert x.shape == (1, 1, 4, 8)
    assert torch.equal(x[0, 0, 0], torch.arange(8.0)) and torch.equal(
        x[0, 0, 3], torch.arange(24.0, 32.0)
    )


def test_group_size_not_dividing_n():
    eS, eT = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 6, 6)  # N = 36
    with pytest.raises(ValueError, match="N = 36 .* K = 16"):
        decompose(eS, eT, group_size=16)
    d = decompose(eS.double(), eT.double(), group_size=16, remainder="merge")
    # 36 = 16 + (16 + 4): one regular group and the last one holding the 4 extra elements
    assert d.n[0, 0].tolist() == [16.0, 20.0]
    torch.testing.assert_close(d.coarse + d.fine, d.total)
    with pytest.raises(ValueError, match="group size K must be in"):
        decompose(eS, eT, group_size=64)
    with pytest.raises(ValueError, match="same"):
        decompose(eS, eT[:, :, :5])


class _Affine(torch.nn.Module):
    """A stand-in model: eps = a(t) * x + c per channel, with diffusers' ``.sample`` output."""

    def __init__(self, a: torch.Tensor, c: torch.Tensor):
        super().__init__()
        self.a, self.c = a, c

    def forward(self, x, t):
        scale = self.a.view(1, -1, 1, 1) * (1 + t.float().view(-1, 1, 1, 1) / 1000)
        return SimpleNamespace(sample=scale * x + self.c.view(1, -1, 1, 1))


def test_offline_correction_recovers_a_known_affine_map_without_the_teacher():
    """A student off from its teacher by a fixed affine map per channel and timestep: the offline
    fit finds that map, and the offline-corrected student then predicts the teacher's eps."""
    from diffusers import DDPMScheduler

    from liftkd.measure import analysis

    teacher = _Affine(torch.tensor([1.0, -0.5]), torch.tensor([0.0, 0.2]))
    # eS = (eT - b0) / b1 with b1 = 2, b0 = (0.3, -0.1): then eT = b0 + b1 * eS exactly
    b0, b1 = torch.tensor([0.3, -0.1]), 2.0
    student = _Affine(teacher.a / b1, (teacher.c - b0) / b1)
    images = torch.rand(16, 2, 4, 4) * 2 - 1
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    coefs = analysis.offline_coefficients(student, teacher, images, scheduler, [10, 500])
    for t in (10, 500):
        torch.testing.assert_close(coefs[t][0], b0, atol=1e-5, rtol=0)
        torch.testing.assert_close(coefs[t][1], torch.full((2,), b1), atol=1e-5, rtol=0)
    eps_fn = analysis.offline_corrected(student, coefs)
    x, t = torch.randn(3, 2, 4, 4), torch.full((3,), 500)
    torch.testing.assert_close(eps_fn(x, t), teacher(x, t).sample, atol=1e-5, rtol=0)
    with pytest.raises(KeyError, match="no offline coefficients for timestep 20"):
        eps_fn(x, torch.full((3,), 20))
