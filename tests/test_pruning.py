"""Structured pruning: real cuts, clear errors, DiT, and the save/load round trip."""

import subprocess

import pytest
import torch
from diffusers import DDIMScheduler

from liftkd.config import DiTConfig, get_profile
from liftkd.measure.metrics import count_parameters
from liftkd.models.checkpoints import load_model, save_model
from liftkd.models.presets import build_dit, build_unet
from liftkd.models.pruning import PruningError, check_ratio, kept_channels, prune, prune_depth
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.sampling import ddim_sample, unet_eps


@pytest.fixture(scope="module")
def smoke():
    p = get_profile("smoke")
    torch.manual_seed(0)
    return p, build_unet(p.unet, 8, 1).eval()


def _dit():
    """A class-conditional DiT of head dimension 20 (ten digit classes, 16x16), where 90% width
    pruning leaves 2 channels per head."""
    torch.manual_seed(0)
    return build_dit(DiTConfig(), 16, 1).eval()


def test_kept_channels_is_float_safe():
    # 10 * (1 - 0.9) is 0.999... in floating point: the trap that makes torch-pruning skip a group
    assert (
        kept_channels(10, 0.9) == 1 and kept_channels(10, 0.5) == 5 and kept_channels(30, 0.9) == 3
    )


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.7, 0.9])
def test_every_ratio_is_a_real_cut_of_every_layer(smoke, ratio):
    p, teacher = smoke
    student, report = prune(teacher, ratio, "magnitude", progress=False)
    cut = [layer for layer in report.layers if layer.name != "conv_out"]
    assert all(
        layer.achieved_ratio == pytest.approx(ratio, abs=1e-9)
        for layer in cut
        if layer.kind == "conv"
    )
    assert report.params_after == count_parameters(student) < report.params_before
    assert report.macs_after < report.macs_before
    assert count_parameters(teacher) == report.params_before  # the teacher is left alone
    if ratio == 0.9:
        assert report.param_ratio <= 0.03
    x = torch.randn(2, 1, 8, 8)
    assert student(x, torch.tensor([3, 700])).sample.shape == x.shape


def test_cpu_teacher_at_90_percent_keeps_under_3_percent():
    p = get_profile("cpu")
    teacher = build_unet(p.unet, p.data.resolution, p.data.channels)
    _, report = prune(teacher, 0.9, "random", progress=False)
    assert report.param_ratio <= 0.03
    widths = {layer.name: layer.after for layer in report.layers}
    assert widths["conv_in"] == 3 and widths["conv_out"] == 1


@pytest.mark.parametrize("criterion", ["diff-pruning", "taylor"])
def test_gradient_criteria(smoke, criterion):
    p, teacher = smoke
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    student, report = prune(
        teacher,
        0.5,
        criterion,
        images=images,
        scheduler=noise_scheduler(p.diffusion),
        timestep_stride=100,
        progress=False,
    )
    assert report.gradient_timesteps[0] == 0 and len(report.gradient_timesteps) <= 10
    assert all(q.grad is None for q in student.parameters())
    # a different criterion keeps different channels
    other, _ = prune(teacher, 0.5, "random", progress=False)
    assert not torch.equal(student.conv_in.weight, other.conv_in.weight)


def test_frozen_teacher_can_be_pruned_by_gradients(smoke):
    """An EMA teacher has requires_grad off; the gradient criteria must still work, on a copy."""
    import copy

    p, teacher = smoke
    frozen = copy.deepcopy(teacher).requires_grad_(False)
    images = torch.rand(4, 1, 8, 8) * 2 - 1
    _, report = prune(
        frozen,
        0.5,
        "diff-pruning",
        images=images,
        scheduler=noise_scheduler(p.diffusion),
        timestep_stride=250,
        progress=False,
    )
    assert report.gradient_timesteps and not any(q.requires_grad for q in frozen.parameters())


def test_diff_pruning_threshold_stops_accumulation(smoke):
    p, teacher = smoke
    images = torch.rand(8, 1, 8, 8) * 2 - 1
    sched = noise_scheduler(p.diffusion)
    _, every = prune(
        teacher,
        0.5,
        "diff-pruning",
        images=images,
        scheduler=sched,
        threshold=0.0,
        timestep_stride=50,
        progress=False,
    )
    _, early = prune(
        teacher,
        0.5,
        "diff-pruning",
        images=images,
        scheduler=sched,
        threshold=0.999,
        timestep_stride=50,
        progress=False,
    )
    assert len(every.gradient_timesteps) == 20 and len(early.gradient_timesteps) < 20


@pytest.mark.parametrize(
    "ratio, message",
    [
        (0.0, r"in \(0, 1\)"),
        (1.0, r"in \(0, 1\)"),
        (-0.2, r"in \(0, 1\)"),
        ("0.5", r"in \(0, 1\)"),
        (0.95, "largest ratio this model can reach is 0.9000"),
        (1e-9, "cuts nothing"),
    ],
)
def test_bad_ratios_are_clear_errors(smoke, ratio, message):
    _, teacher = smoke
    with pytest.raises(PruningError, match=message):
        prune(teacher, ratio, "magnitude", progress=False)


def test_layout_that_cannot_reach_the_ratio(smoke):
    p, _ = smoke
    import dataclasses

    narrow = build_unet(dataclasses.replace(p.unet, norm_num_groups=5, attention_head_dim=20), 8, 1)
    with pytest.raises(PruningError, match="groups of 4 channels.*can reach is 0.7500"):
        check_ratio(narrow, 0.9)


def test_unsupported_model_and_criterion(smoke):
    _, teacher = smoke
    with pytest.raises(PruningError, match="unsupported model Linear"):
        prune(torch.nn.Linear(4, 4), 0.5)
    with pytest.raises(PruningError, match="unknown criterion"):
        prune(teacher, 0.5, "l1")
    with pytest.raises(PruningError, match="needs images"):
        prune(teacher, 0.5, "diff-pruning")


def test_pruned_unet_works_with_diffusers_pipeline_and_sampler(smoke):
    p, teacher = smoke
    student, _ = prune(teacher, 0.7, "magnitude", progress=False)
    from diffusers import DDIMPipeline

    pipe = DDIMPipeline(
        unet=student, scheduler=DDIMScheduler.from_config(noise_scheduler(p.diffusion).config)
    )
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    x = ddim_sample(
        unet_eps(student),
        noise_scheduler(p.diffusion),
        3,
        (1, 8, 8),
        num_inference_steps=3,
        progress=False,
    )
    assert x.shape == (3, 1, 8, 8)


@pytest.mark.slow
def test_round_trip_in_a_fresh_process(smoke, tmp_path, python):
    _, teacher = smoke
    student, _ = prune(teacher, 0.9, "magnitude", progress=False)
    save_model(student, tmp_path / "student.pt")
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 600])
    torch.save({"x": x, "t": t}, tmp_path / "inputs.pt")
    with torch.no_grad():
        expected = student(x, t).sample
    code = (
        "import torch, sys; from liftkd.models.checkpoints import load_model; "
        f"m = load_model({str(tmp_path / 'student.pt')!r}); i = torch.load({str(tmp_path / 'inputs.pt')!r}); "
        f"torch.save(m(i['x'], i['t']).sample.detach(), {str(tmp_path / 'out.pt')!r})"
    )
    subprocess.run([python, "-c", code], check=True)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=0, atol=0)
    assert count_parameters(load_model(tmp_path / "student.pt")) == count_parameters(student)


def test_dit_pruning_and_round_trip(tmp_path):
    dit = _dit()
    images, labels = torch.rand(4, 1, 16, 16) * 2 - 1, torch.arange(4)
    student, report = prune(
        dit,
        0.5,
        "diff-pruning",
        images=images,
        labels=labels,
        scheduler=noise_scheduler(get_profile("smoke").diffusion),
        timestep_stride=250,
        progress=False,
    )
    assert report.params_after < report.params_before
    block = student.transformer_blocks[0]
    assert block.attn1.to_q.out_features == 40 and block.ff.net[0].proj.out_features == 160
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([3, 900]), torch.tensor([1, 7])
    with torch.no_grad():
        out = student(x, timestep=t, class_labels=y).sample
    assert out.shape == x.shape
    shallow = prune_depth(student, [0, 2])
    assert len(shallow.transformer_blocks) == 2 and count_parameters(shallow) < count_parameters(
        student
    )
    deep_cut, r90 = prune(dit, 0.9, "magnitude", progress=False)
    assert deep_cut.transformer_blocks[0].attn1.to_q.out_features == 8  # 4 heads x 2 of 20 dims
    assert r90.params_after < report.params_after
    save_model(shallow, tmp_path / "dit.pt")
    back = load_model(tmp_path / "dit.pt")
    with torch.no_grad():
        torch.testing.assert_close(
            back(x, timestep=t, class_labels=y).sample,
            shallow(x, timestep=t, class_labels=y).sample,
            rtol=0,
            atol=0,
        )
    with pytest.raises(PruningError, match="distinct block indices"):
        prune_depth(dit, [0, 0])
    with pytest.raises(PruningError, match="largest ratio"):
        prune(dit, 0.97, "magnitude", progress=False)


def test_diff_pruning_rounding_gives_the_published_cifar10_student():
    """google/ddpm-cifar10-32's architecture (random weights, nothing downloaded) at 0.3:
    Diff-Pruning's published student keeps 3 of every 4 channels, 19.8M parameters, 3.4G MACs."""
    p = get_profile("gpu")
    teacher = build_unet(p.unet, p.data.resolution, p.data.channels)
    student, report = prune(teacher, 0.3, "magnitude", progress=False, rounding="diff-pruning")
    assert report.ratio == 0.3 and report.applied_ratio == pytest.approx(0.25)
    assert report.params_after == pytest.approx(19.8e6, rel=0.02)  # measured: 20.13M
    assert report.macs_after == pytest.approx(3.4e9, rel=0.01)  # measured: 3.41G
    assert {
        layer.after / layer.before for layer in report.layers if layer.name.endswith("conv1")
    } == {0.75}
    with pytest.raises(PruningError, match="far from the ratio asked.*diff-pruning"):
        prune(teacher, 0.3, "magnitude", progress=False)  # torch-pruning's rounding keeps 2 of 4


def test_a_ratio_far_from_any_reachable_cut_is_refused():
    p = get_profile("smoke")
    teacher = build_unet(p.unet, 8, 1)  # groups of 10 channels: cuts of 0.1, 0.2, ...
    with pytest.raises(PruningError, match="ratio 0.01 cuts nothing|far from"):
        prune(teacher, 0.01, "magnitude", progress=False)
    with pytest.raises(PruningError, match="far from the ratio asked"):
        prune(teacher, 0.51, "magnitude", progress=False)  # 4 of 10 kept: a cut of 0.6
    with pytest.raises(PruningError, match="unknown rounding"):
        prune(teacher, 0.5, "magnitude", progress=False, rounding="ceil")
