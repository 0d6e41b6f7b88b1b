"""A trained student taken out as a folder that diffusers loads with no liftkd installed."""

import json
import subprocess
import sys

import pytest
import torch
from diffusers import DDIMPipeline, LDMPipeline

from liftkd.config import get_profile
from liftkd.models.block_removal import bk_sdm_plan, remove_blocks
from liftkd.models.presets import build_dit, build_unet
from liftkd.models.pruning import prune, prune_depth
from liftkd.results.export import CARD, PIPELINE, export_student, load_pipeline, load_student
from liftkd.results.model_card import card_text
from liftkd.stages.dit import fix_label_dropout
from liftkd.stages.latent import build_autoencoder, decode
from liftkd.training.diffusion import noise_scheduler
from tests.conftest import smoke_pair

# run in a fresh interpreter where `import liftkd` fails: what a user without liftkd has
WITHOUT_LIFTKD = 'import sys; sys.modules["liftkd"] = None\n'


def _without_liftkd(code: str, tmp_path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_LIFTKD + code], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _and_the_card(folder) -> str:
    """The card's own loading snippet, to run after a check: it prints how many images it drew."""
    text = (folder / "README.md").read_text()
    return "\n" + text.split("```python\n", 1)[1].split("\n```", 1)[0] + "\nprint(len(images))"


def _pruned_unet_check(folder, pipeline: str, printed: str) -> str:
    """Code that loads ``folder`` as ``pipeline`` with the copied pruned U-Net class, checks its
    U-Net against io.pt (``same``), samples two images and prints the class, ``printed`` and
    the images' shape."""
    return f"""
import torch
from diffusers import {pipeline}
pipe = {pipeline}.from_pretrained({str(folder)!r}, trust_remote_code=True)
io = torch.load("io.pt")
with torch.no_grad():
    same = torch.equal(pipe.unet(io["x"], io["t"]).sample, io["y"])
images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
print(type(pipe.unet).__name__, {printed}, images.shape)
"""


@pytest.fixture(scope="module")
def pruned():
    p, _, student = smoke_pair(0.7)
    return p, student.eval()


def _unet_io(student, tmp_path):
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        y = student(x, t).sample
    torch.save({"x": x, "t": t, "y": y}, tmp_path / "io.pt")
    return x, t, y


@pytest.mark.slow
def test_a_pruned_unet_loads_with_plain_diffusers_and_computes_what_it_did(pruned, tmp_path):
    p, student = pruned
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config)
    assert {f.name for f in folder.iterdir()} == {PIPELINE, "unet", "scheduler", CARD, "README.md"}
    _unet_io(student, tmp_path)
    said = _without_liftkd(
        _pruned_unet_check(folder, "DDIMPipeline", "same") + _and_the_card(folder), tmp_path
    )
    assert said.split() == ["PrunedUNet2DModel", "True", "(2,", "8,", "8,", "1)", "16"]


def test_export_round_trip_samples_as_the_student_does(pruned, tmp_path):
    p, student = pruned
    card = {"objective": "lift+place", "pruning ratio": 0.7, "FID": 12.3, "seed": 0}
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config, card)
    assert "lift+place" in (folder / "README.md").read_text()
    assert json.loads((folder / CARD).read_text())["FID"] == 12.3
    back = load_student(folder)
    x, t, y = _unet_io(student, tmp_path)
    with torch.no_grad():
        torch.testing.assert_close(back(x, t).sample, y, rtol=0, atol=0)
    pipe = load_pipeline(folder)
    assert isinstance(pipe, DDIMPipeline)
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1)
    # exported again over itself: the same folder, nothing left over
    export_student(student, folder, noise_scheduler(p.diffusion).config, card)
    assert {f.name for f in folder.iterdir()} == {PIPELINE, "unet", "scheduler", CARD, "README.md"}


@pytest.mark.slow
def test_a_depth_pruned_dit_is_a_plain_diffusers_model(tmp_path):
    p = get_profile("smoke")
    torch.manual_seed(0)
    teacher = fix_label_dropout(build_dit(p.dit, 8, 1)).eval()
    student = prune_depth(teacher, [0, len(teacher.transformer_blocks) - 1]).eval()
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config)
    assert (folder / "transformer" / "config.json").exists() and (folder / "scheduler").is_dir()
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([3, 700]), torch.tensor([0, 1])
    with torch.no_grad():
        y = student(x, timestep=t, class_labels=labels).sample
    torch.save({"x": x, "t": t, "labels": labels, "y": y}, tmp_path / "io.pt")
    said = _without_liftkd(
        f"""
import torch
from diffusers import DDIMScheduler, DiTTransformer2DModel
model = DiTTransformer2DModel.from_pretrained({str(folder)!r}, subfolder="transformer").eval()
DDIMScheduler.from_pretrained({str(folder)!r}, subfolder="scheduler")
io = torch.load("io.pt")
with torch.no_grad():
    print(len(model.transformer_blocks), torch.equal(model(io["x"], timestep=io["t"],
          class_labels=io["labels"]).sample, io["y"]))
"""
        + _and_the_card(folder),
        tmp_path,
    )
    assert said.split() == ["2", "True", "16"]
    back = load_student(folder)
    with torch.no_grad():
        assert torch.equal(back(x, timestep=t, class_labels=labels).sample, y)


@pytest.mark.slow
def test_a_latent_student_and_its_autoencoder_load_as_a_plain_ldm_pipeline(tmp_path):
    """BK-SDM's cut (the same layer out of every block, the mid block out) is a plain
    UNet2DModel with one layer fewer per block; with its autoencoder, an LDMPipeline."""
    p = get_profile("smoke")
    torch.manual_seed(0)
    teacher = build_unet(p.latent.unet, 4, 4).eval()
    student = remove_blocks(teacher, bk_sdm_plan(teacher)).eval()
    ae = build_autoencoder(p.latent.autoencoder, 8, 1).eval()
    folder = export_student(
        student,
        tmp_path / "out",
        noise_scheduler(p.diffusion).config,
        autoencoder=ae,
        latent_scale=0.5,
    )
    x, t = torch.randn(2, 4, 4, 4), torch.tensor([5, 500])
    with torch.no_grad():
        y = student(x, t).sample
        z = torch.randn(2, 4, 4, 4)
        images = decode(ae, z, scale=0.5)  # liftkd's decoding of latents trained at scale 0.5
    torch.save({"x": x, "t": t, "y": y, "z": z, "images": images}, tmp_path / "io.pt")
    said = _without_liftkd(
        f"""
import torch
from diffusers import LDMPipeline
pipe = LDMPipeline.from_pretrained({str(folder)!r})
io = torch.load("io.pt")
with torch.no_grad():
    same = torch.equal(pipe.unet(io["x"], io["t"]).sample, io["y"])
    z = io["z"] / pipe.vqvae.config.scaling_factor  # what LDMPipeline decodes
    decoded = ((pipe.vqvae.decode(z).sample.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
print(type(pipe.unet).__name__, pipe.unet.config.layers_per_block, same,
      torch.equal(decoded, io["images"]), pipe.scheduler.config.clip_sample, images.shape)
"""
        + _and_the_card(folder),
        tmp_path,
    )
    expected = ["UNet2DModel", "1", "True", "True", "False", "(2,", "8,", "8,", "1)", "16"]
    assert said.split() == expected
    assert isinstance(load_pipeline(folder), LDMPipeline)


@pytest.mark.slow
def test_a_latent_student_cut_narrower_too_loads_as_a_pruned_unet_without_liftkd(tmp_path):
    """BK-SDM's cut, then channel pruning (``latent.width_ratio``): the pruned U-Net layout on
    the cut config (one layer fewer per block, no mid block), in an LDMPipeline."""
    p = get_profile("smoke")
    torch.manual_seed(0)
    teacher = build_unet(p.latent.unet, 4, 4).eval()
    cut, _ = prune(remove_blocks(teacher, bk_sdm_plan(teacher)), 0.5, "magnitude", progress=False)
    cut = cut.eval()
    ae = build_autoencoder(p.latent.autoencoder, 8, 1).eval()
    scheduler = noise_scheduler(p.diffusion).config
    folder = export_student(cut, tmp_path / "out", scheduler, autoencoder=ae, latent_scale=0.5)
    assert json.loads((folder / "unet" / "config.json").read_text())["layers_per_block"] == 1
    x, t = torch.randn(2, 4, 4, 4), torch.tensor([5, 500])
    with torch.no_grad():
        y = cut(x, t).sample
        assert torch.equal(load_student(folder)(x, t).sample, y)
    torch.save({"x": x, "t": t, "y": y}, tmp_path / "io.pt")
    said = _without_liftkd(
        _pruned_unet_check(folder, "LDMPipeline", "pipe.unet.mid_block, same"), tmp_path
    )
    assert said.split() == ["PrunedUNet2DModel", "None", "True", "(2,", "8,", "8,", "1)"]


def test_what_no_diffusers_class_states_keeps_the_liftkd_loader_and_says_why(tmp_path):
    p = get_profile("smoke")
    torch.manual_seed(0)
    teacher = build_unet(p.latent.unet, 4, 4).eval()
    # one layer out of the first level only: no layers_per_block states that
    student = remove_blocks(teacher, ["down_blocks.0.resnets.1", "up_blocks.1.resnets.1"]).eval()
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config)
    assert not (folder / PIPELINE).exists()
    card = json.loads((folder / CARD).read_text())
    assert card["diffusers form"].startswith("none: blocks were removed from it unevenly (")
    assert "liftkd.results.export import load_pipeline" in (folder / "README.md").read_text()
    x, t = torch.randn(2, 4, 4, 4), torch.tensor([5, 500])
    with torch.no_grad():
        assert torch.equal(load_student(folder)(x, t).sample, student(x, t).sample)
    # a DiT cut in width as well has no DiT config either
    dit = fix_label_dropout(build_dit(p.dit, 8, 1)).eval()
    narrow, _ = prune(prune_depth(dit, [0, 1]), 0.5, "magnitude", progress=False)
    out = export_student(narrow.eval(), tmp_path / "dit", {})
    assert "narrower than a DiT config" in json.loads((out / CARD).read_text())["diffusers form"]


def test_the_card_rounds_its_numbers_and_pairs_them_with_their_errors():
    card = {"FID": 0.47266087419762115, "FID SE": 0.0312016, "parameters": 1234567, "seed": 0}
    card |= {"intended use": "Research.", "limits": "Small."}
    text = card_text(card, "unet")
    assert "| FID | 0.4727 ± 0.0312 (standard error) |" in text
    assert "| parameters | 1,234,567 |" in text and "FID SE" not in text
    assert "0.47266" not in text and "## Limits\n\nSmall." in text
    assert text.startswith("---\nlibrary_name: diffusers")
    assert 'DDIMPipeline.from_pretrained("this folder", trust_remote_code=True)' in text


def test_a_damaged_or_missing_export_is_named(pruned, tmp_path):
    p, student = pruned
    with pytest.raises(FileNotFoundError, match="not an exported liftkd student"):
        load_student(tmp_path)
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config)
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="export is damaged"):
        load_student(folder)
