import pytest
import torch

from liftkd.config import get_profile
from liftkd.models.presets import build_unet
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.sampling import ddim_sample, initial_noise, unet_eps


@pytest.fixture
def setup():
    p = get_profile("smoke")
    model = build_unet(p.unet, 8, 1).eval()
    return unet_eps(model), noise_scheduler(p.diffusion)


def test_samples_do_not_depend_on_batch_size(setup):
    eps_fn, sched = setup
    kw = dict(n=6, shape=(1, 8, 8), num_inference_steps=5, seed=3, progress=False, as_uint8=False)
    a = ddim_sample(eps_fn, sched, batch_size=6, **kw)
    b = ddim_sample(eps_fn, sched, batch_size=4, **kw)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    # image i comes from seed + i: the first three of a larger draw are the same images
    c = ddim_sample(eps_fn, sched, **{**kw, "n": 3}, batch_size=3)
    torch.testing.assert_close(a[:3], c, atol=1e-5, rtol=0)


def test_uint8_output_and_distinct_images(setup):
    eps_fn, sched = setup
    x = ddim_sample(eps_fn, sched, 4, (1, 8, 8), num_inference_steps=3, progress=False)
    assert x.dtype == torch.uint8 and x.shape == (4, 1, 8, 8)
    assert not torch.equal(initial_noise(2, (1, 4, 4), 0)[0], initial_noise(2, (1, 4, 4), 0)[1])


def test_bad_arguments(setup):
    eps_fn, sched = setup
    with pytest.raises(ValueError, match="positive"):
        ddim_sample(eps_fn, sched, 0, (1, 8, 8))
    with pytest.raises(ValueError, match="eta"):
        ddim_sample(eps_fn, sched, 2, (1, 8, 8), eta=1.0)


def test_latents_are_not_clipped_at_any_step(setup):
    """A data set of one point outside [-1, 1] (as latents are), and the exact eps for it: unclamped
    DDIM lands on the point; clamped (for images) it cannot leave [-1, 1]. Clipping each step's
    predicted x0, diffusers' default, made latent teachers score FID 192 instead of 13."""
    _, sched = setup
    x0 = torch.full((1, 4, 4), 3.0)
    abar = sched.alphas_cumprod

    def exact_eps(x, t):
        a = abar[t].view(-1, 1, 1, 1)
        return (x - a.sqrt() * x0) / (1 - a).sqrt()

    kw = dict(n=2, shape=(1, 4, 4), num_inference_steps=10, progress=False, as_uint8=False)
    free = ddim_sample(exact_eps, sched, clamp=False, **kw)
    torch.testing.assert_close(free, x0.expand(2, 1, 4, 4), atol=1e-3, rtol=0)
    assert ddim_sample(exact_eps, sched, **kw).abs().max() <= 1.0


def test_a_trainable_model_is_sampled_without_a_graph_through_its_steps(setup):
    """A student straight from pruning or training has parameters that require gradients.
    Sampling it used to record autograd's graph through every DDIM step, keeping each step's
    activations: 14 GB for 250 images of the cpu 50% student, which got make reproduce's
    notebook 02 killed for memory beside notebook 06."""
    _, sched = setup
    model = build_unet(get_profile("smoke").unet, 8, 1).eval().requires_grad_(True)
    seen = []

    def eps_fn(x, t):
        seen.append(torch.is_grad_enabled())
        return model(x, t).sample

    x = ddim_sample(eps_fn, sched, 2, (1, 8, 8), num_inference_steps=3, progress=False)
    assert seen == [False] * 3
    floats = ddim_sample(eps_fn, sched, 2, (1, 8, 8), 3, progress=False, as_uint8=False)
    assert floats.grad_fn is None and not floats.requires_grad and x.dtype == torch.uint8
    assert torch.is_grad_enabled()  # the caller's mode is left as it was
