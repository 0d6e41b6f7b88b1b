"""The notebooks: structure, and the smoke profile run end to end through papermill."""

import json
import subprocess

import nbformat
import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "PROFILE" in tagged[0].source and "RUN_DIR" in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit without outputs"
    )


@pytest.mark.slow
def test_smoke_profile_end_to_end(tmp_path, python):
    run_dir, figures = tmp_path / "run", tmp_path / "figures"
    run_dir.mkdir()
    for path in NOTEBOOKS:
        args = ["--no-progress-bar", "--start-timeout", "300", "-p", "PROFILE", "smoke"]
        args += ["-p", "RUN_DIR", str(run_dir), "-p", "FIGURES_DIR", str(figures)]
        done = subprocess.run(
            [python, "-m", "papermill", str(path), str(run_dir / path.name), *args],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (
            f"{path.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    fx = json.loads((figures / "00_feature_extractor.json").read_text())
    assert 0.1 < fx["results"]["classifier"]["holdout_accuracy"] <= 1.0
    assert fx["results"]["floor"]["fid"] < fx["results"]["reference_points"]["uniform_noise"]["fid"]
    teacher = json.loads((figures / "01_teacher.json").read_text())
    r = teacher["results"]
    assert r["train_steps"] == 60 and r["n_samples"] == 200 and r["costs"]["params"] > 0
    assert teacher["meta"]["profile"]["name"] == "smoke"
    for png in ["00_real_images.png", "01_teacher_samples.png", "01_teacher_loss.png"]:
        assert (figures / png).stat().st_size > 1000
