"""The forward process and the task loss, used by every part of the project."""

import pytest
import torch

from liftkd.config import get_profile
from liftkd.method.losses import task_loss
from liftkd.training.diffusion import forward_noise, noise_scheduler


def test_forward_noise_draws_noise_then_timesteps_from_the_generator():
    sched = noise_scheduler(get_profile("smoke").diffusion)
    x0 = torch.rand(5, 1, 8, 8) * 2 - 1
    x_t, t, noise = forward_noise(sched, x0, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    expected_noise = torch.randn(x0.shape, generator=g)
    expected_t = torch.randint(0, 1000, (5,), generator=g)
    assert torch.equal(noise, expected_noise) and torch.equal(t, expected_t)
    torch.testing.assert_close(x_t, sched.add_noise(x0, expected_noise, expected_t))


def test_forward_noise_with_a_fixed_timestep_and_noise():
    sched = noise_scheduler(get_profile("smoke").diffusion)
    x0, noise = torch.zeros(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    x_t, t, same = forward_noise(sched, x0, t=999, noise=noise)
    assert same is noise and t.tolist() == [999] * 3
    alpha_bar = sched.alphas_cumprod[999]
    torch.testing.assert_close(x_t, (1 - alpha_bar).sqrt() * noise)


def test_task_loss_reductions_differ_by_the_element_count():
    a, b = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    per_sample_sum = task_loss(a, b, "sum")
    torch.testing.assert_close(per_sample_sum, ((a - b) ** 2).sum() / 4)
    torch.testing.assert_close(per_sample_sum, task_loss(a, b, "mean") * 3 * 8 * 8)
    with pytest.raises(ValueError, match="reduction must be one of"):
        task_loss(a, b, "none")
