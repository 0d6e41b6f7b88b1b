"""Several processes: a KD job under accelerate on 2 CPU processes ends where one process ends.

The batch is global: both processes draw the same batch, noise and timesteps and each takes its
half; the gradients are averaged. (On a CPU-only machine, ``accelerate launch --multi_gpu``
starts the processes with the gloo backend; ``--cpu`` alone starts one.)
"""

import shutil
import subprocess

import pytest
import torch

from liftkd.training.train_state import HISTORY, read_history
from tests.conftest import REPO

OVERRIDES = (
    "{teacher.steps: 10, teacher.checkpoint_every: 5, distill.objectives: [outkd, outkd+featkd], "
    "distill.ablations: [], distill.steps: [4, 4], distill.evaluations: 2, "
    "distill.train.batch_size: 16}"
)


def _train(run_dir, launcher, python):
    job = ["-m", "liftkd.stages.sweep", "train", "--profile", "smoke", "--run-dir", str(run_dir)]
    job += ["--job", "main_r0.5_s0", "--overrides", OVERRIDES]
    done = subprocess.run([*launcher, *job], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    folder = run_dir / "distill" / "main_r0.5_s0"
    ckpt = torch.load(folder / "checkpoint.pt", weights_only=True)
    return {**ckpt, "history": read_history(folder / HISTORY, ckpt["step"])}


@pytest.mark.slow
def test_two_processes_end_where_one_process_ends(tmp_path, python):
    one = _train(tmp_path / "one", [python], python)  # also trains the teacher, prunes the student
    two_dir = tmp_path / "two"
    two_dir.mkdir()
    for part in ("teacher", "students", "settings"):
        shutil.copytree(tmp_path / "one" / part, two_dir / part)
    accelerate = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    two = _train(two_dir, accelerate, python)
    assert one["step"] == two["step"] == 4
    for part in ("model", "ema"):
        for k, v in one[part].items():
            if v.dtype.is_floating_point:
                torch.testing.assert_close(two[part][k], v, rtol=1e-4, atol=1e-5, msg=k)
    # the logged loss is the whole batch's (the mean over the two halves)
    assert [r["loss"] for r in two["history"]] == pytest.approx(
        [r["loss"] for r in one["history"]], rel=1e-5
    )
    assert len(one["history"]) == 4
