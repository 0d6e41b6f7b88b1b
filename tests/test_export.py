"""A trained student taken out as a folder that loads back as a diffusers pipeline."""

import json

import pytest
import torch
from diffusers import DDIMPipeline

from liftkd.diffusion import noise_scheduler
from liftkd.export import CARD, WEIGHTS, export_student, load_pipeline, load_student
from tests.conftest import smoke_pair


@pytest.fixture(scope="module")
def pruned():
    p, _, student = smoke_pair(0.7)
    return p, student.eval()


def test_export_round_trip_samples_as_the_student_does(pruned, tmp_path):
    p, student = pruned
    card = {"objective": "lift+place", "pruning ratio": 0.7, "FID": 12.3, "seed": 0}
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config, card)
    assert {f.name for f in folder.iterdir()} >= {WEIGHTS, "README.md", CARD}
    assert "lift+place" in (folder / "README.md").read_text()
    assert json.loads((folder / CARD).read_text())["FID"] == 12.3
    back = load_student(folder)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        torch.testing.assert_close(back(x, t).sample, student(x, t).sample)
    pipe = load_pipeline(folder)
    assert isinstance(pipe, DDIMPipeline)
    images = pipe(batch_size=2, num_inference_steps=3, output_type="np").images
    assert images.shape == (2, 8, 8, 1)


def test_a_damaged_or_missing_export_is_named(pruned, tmp_path):
    p, student = pruned
    with pytest.raises(FileNotFoundError, match="not an exported liftkd student"):
        load_student(tmp_path)
    folder = export_student(student, tmp_path / "out", noise_scheduler(p.diffusion).config)
    (folder / WEIGHTS).write_bytes(b"truncated")
    with pytest.raises(ValueError, match="export is damaged"):
        load_student(folder)
