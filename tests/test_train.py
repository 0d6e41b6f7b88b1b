"""The training loop: reproducibility, resume after a kill, divergence, and what a rerun does."""

import dataclasses
import os
import signal
import subprocess
import time

import pytest
import torch

from liftkd.config import get_profile
from liftkd.data import load_splits
from liftkd.models.presets import build_unet
from liftkd.stages.teacher import denoising_loss, train_teacher
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.train import CHECKPOINT, TrainingDiverged, lr_at, train
from liftkd.training.train_state import HISTORY, append_history, read_history


def _profile(steps=6, every=3, seed=0):
    return get_profile("smoke", teacher={"steps": steps, "checkpoint_every": every, "seed": seed})


def _losses(result):
    return [row["loss"] for row in result.history]


def test_same_seed_same_losses(tmp_path):
    a = train_teacher(_profile(), tmp_path / "a", progress=False)
    b = train_teacher(_profile(), tmp_path / "b", progress=False)
    c = train_teacher(_profile(seed=1), tmp_path / "c", progress=False)
    assert _losses(a) == _losses(b)
    assert _losses(a) != _losses(c)
    for pa, pb in zip(a.ema.parameters(), b.ema.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_finished_run_trains_no_more_and_can_be_extended(tmp_path):
    first = train_teacher(_profile(steps=4, every=2), tmp_path, progress=False)
    again = train_teacher(_profile(steps=4, every=2), tmp_path, progress=False)
    assert first.steps_run == 4 and again.steps_run == 0 and _losses(again) == _losses(first)
    longer = train_teacher(_profile(steps=6, every=2), tmp_path, progress=False)
    assert longer.resumed_from == 4 and longer.steps_run == 2 and len(longer.history) == 6


def test_other_settings_in_the_same_folder_are_refused(tmp_path):
    train_teacher(_profile(steps=2, every=2), tmp_path, progress=False)
    p = get_profile("smoke", teacher={"steps": 2, "checkpoint_every": 2, "lr": 5e-4})
    with pytest.raises(ValueError, match="lr: 0.001 -> 0.0005"):
        train_teacher(p, tmp_path, progress=False)


def test_non_finite_loss_raises_and_keeps_last_good_checkpoint(tmp_path):
    p = get_profile("smoke")
    train_set, _ = load_splits(p.data)
    model = build_unet(p.unet, 8, 1)
    good = denoising_loss(noise_scheduler(p.diffusion))

    def explodes_at_step_5(model, x0, g, progress, part):
        loss, parts = good(model, x0, g, progress, part)
        explodes_at_step_5.calls += 1
        return (loss * float("nan") if explodes_at_step_5.calls == 6 else loss), parts

    explodes_at_step_5.calls = 0
    cfg = dataclasses.replace(p.teacher, steps=10, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match="step 5; last good checkpoint: step 4") as info:
        train(model, explodes_at_step_5, train_set.images, cfg, tmp_path, progress=False)
    assert info.value.step == 5 and info.value.last_good_step == 4
    assert torch.load(tmp_path / CHECKPOINT, weights_only=False)["step"] == 4


def test_lr_schedule_warms_up_then_decays():
    cfg = get_profile("cpu").teacher
    assert lr_at(0, cfg) < lr_at(cfg.warmup_steps - 1, cfg) == pytest.approx(cfg.lr)
    assert lr_at(cfg.steps, cfg) == pytest.approx(cfg.lr_min)
    assert lr_at(cfg.warmup_steps, cfg) > lr_at(cfg.steps // 2, cfg) > lr_at(cfg.steps - 1, cfg)


def test_bad_input_is_a_clear_error(tmp_path):
    p = get_profile("smoke")
    model = build_unet(p.unet, 8, 1)
    # uint8 pixels or float latents, (N, C, H, W); one label per image
    with pytest.raises(ValueError, match="uint8 pixels or float latents"):
        train(model, None, torch.zeros(4, 1, 8, 8, dtype=torch.int32), p.teacher, tmp_path)
    with pytest.raises(ValueError, match="uint8 pixels or float latents"):
        train(model, None, torch.zeros(4, 8, 8), p.teacher, tmp_path)
    with pytest.raises(ValueError, match="one class per image"):
        images = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
        train(model, None, images, p.teacher, tmp_path, labels=torch.zeros(3, dtype=torch.long))


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path, python):
    """Kill a smoke teacher run with SIGKILL mid-way, rerun the same command, compare."""
    steps, every = 150, 10
    cmd = [
        python,
        "-m",
        "liftkd.stages.teacher",
        "--profile",
        "smoke",
        "--run-dir",
        str(tmp_path / "run"),
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(every),
        "--no-progress",
    ]
    ckpt = tmp_path / "run" / "teacher" / CHECKPOINT
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(ckpt, weights_only=False)["step"]
    assert 0 < killed_at < steps, "the run was not interrupted mid-way"

    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"resuming from step {killed_at} of {steps}" in out.stdout + out.stderr
    resumed = torch.load(ckpt, weights_only=False)
    history = read_history(ckpt.parent / HISTORY, steps)
    assert resumed["step"] == steps == resumed["history_rows"] == len(history)
    assert [int(r["step"]) for r in history] == list(range(steps))

    # the resumed run is the uninterrupted run, loss for loss
    p = get_profile("smoke", teacher={"steps": steps, "checkpoint_every": every})
    straight = train_teacher(p, tmp_path / "straight", progress=False)
    assert [r["loss"] for r in history] == pytest.approx(_losses(straight), rel=1e-5)


def test_snapshots_are_listed_in_step_order(tmp_path):
    from liftkd.training.train_state import list_snapshots, snapshot_path

    assert list_snapshots(tmp_path) == {}
    for step in (100, 5, 20):
        snapshot_path(tmp_path, step).parent.mkdir(exist_ok=True)
        snapshot_path(tmp_path, step).touch()
    (tmp_path / "snapshots" / "step_x.pt").touch()  # not a snapshot name: ignored
    assert list(list_snapshots(tmp_path)) == [5, 20, 100]
    assert list_snapshots(tmp_path)[20] == tmp_path / "snapshots" / "step_20.pt"


def test_the_history_is_appended_at_each_checkpoint_not_rewritten(tmp_path):
    """A checkpoint holds no history (it would grow with every save); history.csv grows by
    appending, so what was written stays byte for byte; a new column rewrites it once."""
    path = tmp_path / HISTORY
    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(3)]
    assert append_history(rows, 0, path) == 3
    before = path.read_text()
    rows += [{"step": 3, "loss": 0.2}, {"step": 4, "loss": 0.1}]
    assert append_history(rows, 3, path) == 5
    assert path.read_text().startswith(before) and path.read_text().count("\n") == 6
    rows.append({"step": 5, "loss": 0.05, "grad/task": 2.0})  # a column not seen before
    assert append_history(rows, 5, path) == 6
    assert read_history(path, 6) == rows


def test_rows_after_the_checkpoint_are_cut_on_resume(tmp_path):
    """An interruption between the history's append and the checkpoint leaves rows of steps the
    checkpoint has not trained: the resumed run writes them again, as an uninterrupted run."""
    first = train_teacher(_profile(steps=2, every=2), tmp_path, progress=False)
    hist = tmp_path / "teacher" / HISTORY
    assert "history" not in torch.load(tmp_path / "teacher" / CHECKPOINT, weights_only=False)
    with open(hist, "a") as f:
        f.write("2,99.0,0.001,1.0\n")  # a row the checkpoint does not count
    resumed = train_teacher(_profile(steps=4, every=2), tmp_path, progress=False)
    straight = train_teacher(_profile(steps=4, every=2), tmp_path / "straight", progress=False)
    assert _losses(resumed) == _losses(straight) and _losses(resumed)[:2] == _losses(first)
    assert [r["loss"] for r in read_history(hist, 4)] == _losses(straight)
    with pytest.warns(UserWarning, match="holds 4 of the 6 steps"):
        read_history(hist, 6)


def test_set_threads_limits_numpys_blas_as_well_as_torch(python):
    """Two jobs on one thread each must not each run numpy's BLAS on every core (the bootstrap
    was 40x slower so): set_threads caps the BLAS pools already loaded and the ones to come.
    In a fresh interpreter, whose BLAS starts at every core."""
    code = (
        "import os, numpy, threadpoolctl\n"
        "from liftkd.training.train import set_threads\n"
        "blas = lambda: {i['num_threads'] for i in threadpoolctl.threadpool_info()"
        " if i['user_api'] == 'blas'}\n"
        "before = blas()\n"
        "assert set_threads(1) == 1\n"
        "print(sorted(before), sorted(blas()), os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    env = {k: v for k, v in os.environ.items() if "NUM_THREADS" not in k}
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    assert out[0] != "[]", "numpy's BLAS was not found"
    if out[0] == "[1]":
        pytest.skip("numpy's BLAS starts at one thread on this machine: nothing to cap")
    assert out[1:] == ["[1]", "1"], out
