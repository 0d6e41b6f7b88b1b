"""Nothing lost, nothing silent: the inputs that used to delete, overwrite or double a user's
files, or pass unseen, each met the way a user meets it (make, a command line, a folder of
images, two processes at once) and now refused, warned about or handled, with the files intact.
"""

import dataclasses
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from liftkd.config import SettingsError, TrainConfig, get_profile
from tests.conftest import REPO, smoke_pair

PY = sys.executable


def _make(*args, cwd=REPO):
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=cwd, capture_output=True, text=True
    )


# ---- make: what a target deletes, and the names it cannot handle --------------------------


def test_clean_runs_deletes_a_run_folder_and_nothing_above_it(tmp_path):
    """An empty RUN_NAME, RUN_NAME=../.. or RUN_DIR=runs would have deleted every run, or the
    folder above the project; only a folder inside runs/ is deleted now."""
    project = tmp_path / "a" / "b" / "project"
    (project / "runs" / "keep").mkdir(parents=True)
    (project / "runs" / "old" / "teacher").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", project / "Makefile")
    (tmp_path / "a" / "sentinel").write_text("a user's file")
    for bad in (
        "RUN_NAME=../..",
        "RUN_NAME=",
        "PROFILE=",
        "RUN_DIR=runs",
        "RUN_DIR=.",
        "RUN_DIR=/",
    ):
        done = _make("clean-runs", bad, cwd=project)
        assert done.returncode != 0, (bad, done.stdout)
        assert "error" in done.stderr.lower() or "***" in done.stderr, done.stderr
    assert (tmp_path / "a" / "sentinel").exists() and (project / "runs" / "keep").is_dir()
    assert (project / "Makefile").exists()
    done = _make("clean-runs", "RUN_NAME=old", cwd=project)
    assert done.returncode == 0, done.stderr
    assert not (project / "runs" / "old").exists() and (project / "runs" / "keep").is_dir()


@pytest.mark.slow
def test_make_names_a_run_folder_it_cannot_build(tmp_path):
    done = _make("reproduce", "PROFILE=smoke", "RUN_NAME=my run")
    assert done.returncode != 0 and "holds a space" in done.stderr
    assert not (REPO / "runs" / "my").exists()
    done = _make("settings", "PROFILE=smoke", f"RUN_DIR={tmp_path}/it's")
    assert done.returncode != 0 and "make cannot name files there" in done.stderr


@pytest.mark.slow
def test_make_takes_overrides_that_hold_quotes(tmp_path):
    """A data.path with a ' in it used to break the shell lines of every recipe."""
    folder = tmp_path / "it's mine"
    run = tmp_path / "run"
    overrides = f'{{data.name: folder, data.path: "{folder}"}}'
    done = _make("settings", "PROFILE=smoke", f"RUN_DIR={run}", f"OVERRIDES={overrides}")
    assert done.returncode != 0
    assert f"data.path {str(folder)!r} is not a folder" in done.stderr, done.stderr
    for i in range(30):
        _png(folder / f"{i}.png", value=i * 8)
    done = _make("settings", "PROFILE=smoke", f"RUN_DIR={run}", f"OVERRIDES={overrides}")
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr
    assert not run.exists()


@pytest.mark.slow
def test_make_refuses_a_job_the_profile_has_not_before_making_its_folder(tmp_path):
    run = tmp_path / "run"
    done = _make("distill-nope", "PROFILE=smoke", f"RUN_DIR={run}", f"FIGURES={tmp_path}/fig")
    assert done.returncode != 0 and "job names look like main_r0.9_s0, got 'nope'" in done.stderr
    assert not (run / "distill" / "nope").exists() and not (tmp_path / "fig").exists()


@pytest.mark.slow
def test_make_settings_refuses_bad_objective_options_before_any_notebook(tmp_path):
    for overrides, message in [
        ("{distill.objectives: [outkd, 'lift+place:group_size=abc']}", "got 'abc'"),
        ("{distill.ablations: ['lift:coarse_scale=-1']}", "coarse_scale must be a number above 0"),
        ("{distill.objectives: ['lift:coarse=l3']}", "coarse must be one of"),
        ("{latent.kd.objectives: [bksdm, 'bksdm:foo=1']}", "has no option 'foo'"),
    ]:
        done = _make("settings", "PROFILE=smoke", f"RUN_DIR={tmp_path}", f"OVERRIDES={overrides}")
        assert done.returncode != 0 and message in done.stderr, (overrides, done.stderr)
        assert "Traceback" not in done.stderr


# ---- two processes on one job -------------------------------------------------------------

_HOLD = """
import sys, time
from liftkd.locks import claim
claim(sys.argv[1], "a test's job")
print("held", flush=True)
time.sleep(120)
"""


def _hold(folder):
    """A second process that holds ``folder`` as a running job does, until killed."""
    proc = subprocess.Popen(
        [PY, "-c", _HOLD, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_of_a_job_is_refused_and_changes_nothing(tmp_path):
    """Two runs of one job on one RUN_NAME used to double every evals.csv row, or one died on
    the other's checkpoint.pt.tmp. The second is refused at once; the first's files stay."""
    from liftkd.locks import FolderBusyError
    from liftkd.stages import kd_job
    from liftkd.stages.sweep import jobs, pixel

    p, teacher, student = smoke_pair()
    job = jobs.job_from_name(p, "main_r0.5_s0", objectives=["outkd"], steps=4)
    folder = jobs.job_dir(tmp_path, job)
    folder.mkdir(parents=True)
    (folder / "evals.csv").write_text("objective,step\noutkd,0\n")
    backbone = pixel.unet_backbone(p, teacher.requires_grad_(False), student)
    kd = pixel.kd_job(p, tmp_path, job)
    holder = _hold(folder)
    try:
        with pytest.raises(FolderBusyError, match=r"main_r0.5_s0.*is in use by process \d+"):
            kd_job.train(backbone, kd, p)
        assert sorted(f.name for f in folder.iterdir()) == [".in_use.lock", "evals.csv"]
        assert (folder / "evals.csv").read_text() == "objective,step\noutkd,0\n"
    finally:
        holder.kill()
        holder.wait()
    # the holder gone (killed, not cleaned up), the job runs
    result = kd_job.train(backbone, kd, p, progress=False)
    assert result.steps_run == 4 and (folder / "checkpoint.pt").exists()


def test_a_training_folder_is_one_process_at_a_time(tmp_path):
    from liftkd.locks import FolderBusyError
    from liftkd.training.train import train

    model = torch.nn.Linear(4, 4)
    images = torch.zeros(8, 1, 2, 2, dtype=torch.uint8)
    cfg = TrainConfig(steps=2, batch_size=2, warmup_steps=0)

    def loss(m, x0, g, progress, part):
        return m.weight.square().sum(), {}

    holder = _hold(tmp_path)
    try:
        with pytest.raises(FolderBusyError, match="training 'teacher'"):
            train(model, loss, images, cfg, tmp_path, "teacher", progress=False)
        assert not (tmp_path / "checkpoint.pt").exists()
    finally:
        holder.kill()
        holder.wait()
    assert train(model, loss, images, cfg, tmp_path, "teacher", progress=False).steps_run == 2


def test_a_finished_training_is_loaded_while_another_process_holds_its_folder(tmp_path):
    """The two jobs of make -j2 each load the run's teacher: a finished training is read, not
    written, so it needs no lock; one with steps left is still refused."""
    from liftkd.locks import FolderBusyError
    from liftkd.training.train import train

    model = torch.nn.Linear(4, 4)
    images = torch.zeros(8, 1, 2, 2, dtype=torch.uint8)
    cfg = TrainConfig(steps=2, batch_size=2, warmup_steps=0)

    def loss(m, x0, g, progress, part):
        return m.weight.square().sum(), {}

    trained = train(model, loss, images, cfg, tmp_path, "teacher", progress=False)
    holder = _hold(tmp_path)
    try:
        again = train(torch.nn.Linear(4, 4), loss, images, cfg, tmp_path, "teacher", False)
        assert again.steps_run == 0 and len(again.history) == 2
        assert torch.equal(again.ema.weight, trained.ema.weight)
        longer = dataclasses.replace(cfg, steps=3)
        with pytest.raises(FolderBusyError, match="training 'teacher'"):
            train(torch.nn.Linear(4, 4), loss, images, longer, tmp_path, "teacher", False)
    finally:
        holder.kill()
        holder.wait()


def test_a_replaced_file_is_whole_or_untouched(tmp_path):
    from liftkd.locks import replacing

    path = tmp_path / "table.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]
    with replacing(path) as tmp:
        assert tmp.parent == path.parent and str(os.getpid()) in tmp.name
        tmp.write_text("new\n")
    assert path.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [path]


# ---- export into a folder of the user's files ---------------------------------------------


def test_export_refuses_a_folder_that_holds_other_files(tmp_path):
    from liftkd.results.export import export_student, load_student

    p, _, student = smoke_pair()
    out = tmp_path / "mine"
    out.mkdir()
    (out / "README.md").write_text("my notes")
    (out / "data.csv").write_text("1,2")
    with pytest.raises(FileExistsError, match=r"already holds files \(README.md, data.csv\)"):
        export_student(student, out, {})
    assert (out / "README.md").read_text() == "my notes" and len(list(out.iterdir())) == 2
    # an earlier export is replaced without a word; other files beside it need --overwrite
    fresh = export_student(student, tmp_path / "new", {})
    export_student(student, fresh, {})
    assert load_student(fresh) is not None
    export_student(student, out, {}, overwrite=True)
    assert (out / "data.csv").read_text() == "1,2"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["a file", "unwritable"])
def test_export_command_names_an_out_it_cannot_write(tmp_path, where):
    out = tmp_path / "file.txt" if where == "a file" else "/sys/liftkd-export-test/out"
    if where == "a file":
        out.write_text("keep")
    cmd = [PY, "-m", "liftkd.results.export", "--run-dir", str(tmp_path / "run"), "--job"]
    cmd += ["main_r0.5_s0", "--objective", "outkd", "--out", str(out), "--profile", "smoke"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    expected = "is a file, not a folder" if where == "a file" else "nothing can be written in"
    assert expected in done.stderr, done.stderr
    assert not (tmp_path / "run").exists()


# ---- image folders ------------------------------------------------------------------------


def _png(path, value=128, side=8, dtype=np.uint8):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((side, side), value, dtype=dtype)).save(path)


def _folder_config(path, **kw):
    from liftkd.config import DataConfig

    return DataConfig(**{"name": "folder", "resolution": 8, "channels": 1, "path": str(path), **kw})


def test_one_class_folder_is_read_as_unlabelled(tmp_path):
    """One class sub-folder used to train a classifier of one class: loss 0, weights that never
    moved, FID on random features."""
    from liftkd.data import load_splits

    for i in range(20):
        _png(tmp_path / "cats" / f"{i}.png", value=i * 10)
    with pytest.warns(UserWarning, match=r"one class folder \('cats'\).*unlabelled"):
        train, holdout = load_splits(_folder_config(tmp_path, holdout_fraction=0.5))
    assert train.labels is None and holdout.labels is None and len(train) + len(holdout) == 20


def test_a_link_loop_does_not_repeat_images(tmp_path):
    from liftkd.data import load_splits

    for c in ("a", "b"):
        for i in range(10):
            _png(tmp_path / c / f"{i}.png", value=i * 20 + (c == "b"))
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "b" / "again").symlink_to(tmp_path / "b", target_is_directory=True)
    train, holdout = load_splits(_folder_config(tmp_path, holdout_fraction=0.5))
    assert len(train) + len(holdout) == 20
    assert sorted((train.labels == 0).tolist() + (holdout.labels == 0).tolist()).count(True) == 10


def test_sixteen_bit_images_keep_their_greys(tmp_path):
    from liftkd.data import load_splits

    for i in range(12):  # 16-bit greys from 0 to 2^16 - 1: they used to be clipped to white
        _png(tmp_path / f"{i:02d}.png", value=i * 5957, dtype=np.uint16)
    train, holdout = load_splits(_folder_config(tmp_path, holdout_fraction=0.5))
    values = sorted(torch.cat([train.images, holdout.images]).float().mean((1, 2, 3)).tolist())
    expected = [round(i * 5957 / 65535 * 255) for i in range(12)]
    assert values == pytest.approx(expected, abs=1)


def test_small_images_are_scaled_up_with_a_warning_and_do_not_shrink_the_rest(tmp_path):
    from liftkd.data import load_splits

    for i in range(12):
        _png(tmp_path / f"{i:02d}.png", value=200, side=16)
    _png(tmp_path / "tiny.png", value=50, side=1)
    with pytest.warns(
        UserWarning, match=r"1 of 13 images .* smaller than data.resolution 16 .*1x1"
    ):
        train, holdout = load_splits(_folder_config(tmp_path, resolution=16, holdout_fraction=0.5))
    assert train.images.shape[-2:] == (16, 16)
    assert torch.cat([train.images, holdout.images]).float().mean() > 180  # 16x16 kept whole
    (tmp_path / "tiny.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # images at the resolution or above: no warning
        load_splits(_folder_config(tmp_path, resolution=8, holdout_fraction=0.5))


def test_a_folder_too_small_for_the_metrics_is_named(tmp_path):
    """12 labelled images used to fail deep in torch-fidelity ("kthvalue(): k out of range")."""
    from liftkd.data import load_splits

    for c in ("a", "b"):
        for i in range(6):
            _png(tmp_path / c / f"{i}.png", value=i * 30)
    with pytest.raises(
        ValueError, match=r"12 images .* split 10 for training and 2 held out.*at least 6"
    ):
        load_splits(_folder_config(tmp_path))
    from liftkd.check_settings import check

    overrides = {"data.name": "folder", "data.path": str(tmp_path), "data.resolution": 8}
    with pytest.raises(SettingsError, match=r"data.path: 12 images .* at least 6"):
        check("smoke", overrides, None)  # make settings says so before any notebook runs


# ---- files the project wrote, damaged -----------------------------------------------------


def test_a_row_cut_short_is_dropped_and_measured_again(tmp_path):
    from liftkd.runs import append_row, read_rows

    path = tmp_path / "evals.csv"
    cols = ["objective", "step", "fid"]
    append_row(path, {"objective": "outkd", "step": 0, "fid": 12.5}, cols)
    append_row(path, {"objective": "outkd", "step": 10, "fid": 9.25}, cols)
    path.write_text(path.read_text()[:-6])  # the last row cut inside its FID
    with pytest.warns(UserWarning, match="last row was cut short"):
        assert read_rows(path) == [{"objective": "outkd", "step": 0, "fid": 12.5}]
    with pytest.warns(UserWarning):
        append_row(path, {"objective": "outkd", "step": 10, "fid": 9.25}, cols)
    assert [r["fid"] for r in read_rows(path)] == [12.5, 9.25]


@pytest.mark.parametrize("damage", [b"", b'{"data.name": "dig'])
def test_a_damaged_settings_record_is_named_with_what_to_do(tmp_path, damage):
    from liftkd.check_settings import check
    from liftkd.runs import CorruptFileError, remember

    p = get_profile("smoke")
    remember(tmp_path, "teacher", p)
    record = tmp_path / "settings" / "teacher.json"
    record.write_bytes(damage)
    with pytest.raises(CorruptFileError, match=r"teacher.json \(the settings the teacher of"):
        remember(tmp_path, "teacher", p)
    with pytest.raises(SettingsError, match=r"teacher.json .* cannot be read.*delete this file"):
        check("smoke", "{}", str(tmp_path))
    assert record.read_bytes() == damage


# ---- pretrained teachers ------------------------------------------------------------------


def _saved(tmp_path, model):
    model.save_pretrained(tmp_path / "teacher")
    return str(tmp_path / "teacher")


def test_a_pretrained_folder_of_another_model_is_refused(tmp_path):
    """It used to load as a randomly initialised UNet2DModel, after a few warnings."""
    from diffusers import AutoencoderKL

    from liftkd.check_settings import check
    from liftkd.models.presets import load_unet

    folder = _saved(tmp_path, AutoencoderKL(block_out_channels=(8,), norm_num_groups=4))
    with pytest.raises(ValueError, match=r"describes a AutoencoderKL, not a UNet2DModel"):
        load_unet(folder)
    with pytest.raises(SettingsError, match=r"pretrained_teacher: .*AutoencoderKL"):
        check("smoke", {"pretrained_teacher": folder})


def test_a_pretrained_teacher_of_other_channels_is_refused(tmp_path):
    from liftkd.check_settings import check
    from liftkd.models.presets import build_unet, load_unet

    folder = _saved(tmp_path, build_unet(get_profile("smoke").unet, 8, 3))
    with pytest.raises(ValueError, match=r"for 3-channel images, and the data has 1"):
        load_unet(folder, channels=1)
    with pytest.raises(SettingsError, match=r"3-channel images.*data.channels: 3"):
        check("smoke", {"pretrained_teacher": folder})
    assert load_unet(folder, channels=3).config.in_channels == 3


def test_an_unreachable_hub_is_said_at_once_without_retries(monkeypatch):
    """A hub id on an offline machine used to spend 46 s in diffusers' retries."""
    from diffusers import UNet2DModel
    from huggingface_hub import constants

    from liftkd.models import presets as models

    calls = []

    def from_pretrained(source, subfolder=None, local_files_only=False, **kw):
        calls.append(local_files_only)
        raise OSError("not in the cache")

    monkeypatch.setattr(UNet2DModel, "from_pretrained", from_pretrained)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(OSError, match=r"not a local folder, and the hub is out of reach"):
        models.load_unet("someone/some-unet")
    assert calls and all(calls), "only the local cache was asked"
    from liftkd.check_settings import check

    with pytest.raises(
        SettingsError, match=r"'someone/some-unet' is not a local folder, is not in"
    ):
        check("smoke", {"pretrained_teacher": "someone/some-unet"})  # make settings says it first


# ---- settings changed under finished work -------------------------------------------------


def test_a_finished_job_with_other_settings_is_refused_not_mixed_in(tmp_path):
    """A finished sweep whose distill.steps or objectives changed was 'up to date', and notebook
    05 mixed it in. Now the settings check, the job and notebook 05's reader all refuse it."""
    from liftkd.check_settings import check
    from liftkd.results.report import load_jobs
    from liftkd.stages.sweep import jobs

    p = get_profile("smoke")
    job = jobs.job_from_name(p, "main_r0.5_s0")
    jobs.remember_job(tmp_path, job, p)
    check("smoke", "{}", str(tmp_path))  # the same settings: fine
    for overrides, diff in [
        ({"distill.steps": [40, 20]}, r"train.steps: 20 -> 40"),
        (
            {"distill.objectives": ["nokd", "outkd"]},
            r"objectives: \['nokd', 'outkd', 'lift\+place'\]",
        ),
    ]:
        with pytest.raises(SettingsError, match=rf"job main_r0.5_s0 .*other settings \({diff}"):
            check("smoke", overrides, str(tmp_path))
    # notebook 05 reads the committed cpu sweep (every job of the sweep, and the studies' that
    # ran): the same profile, then a longer one
    cpu = get_profile("cpu")
    loaded = {j["job"] for j in load_jobs(REPO / "figures" / "04_distill", cpu)}
    planned = {j.name for j in jobs.plan(cpu)}
    possible = {j.name for j in jobs.every_job(cpu)}
    assert planned <= loaded <= possible and {"trend_r0.5_s0", "trend_r0.7_s0"} <= loaded - planned
    longer = get_profile("cpu", **{"distill.steps": [3600]})
    with pytest.raises(SettingsError, match=r"_r0.8_s0 made with other settings .*3000 -> 3600"):
        load_jobs(REPO / "figures" / "04_distill", longer)


def test_a_grid_result_of_an_earlier_split_is_left_out_not_misread(tmp_path):
    """The cpu grid ran as one job (grid_r0.8_s0) before distill.grid_jobs split it in two; a
    result of the other split left in the folder is not one of the plan's jobs: notebook 05
    leaves it out, and reads it under a profile that splits the grid that way."""
    import json

    from liftkd.results.report import load_jobs

    blob = json.loads((REPO / "figures" / "04_distill" / "main_r0.8_s0.json").read_text())
    main = dict(blob["results"])
    (tmp_path / "main_r0.8_s0.json").write_text(json.dumps(blob))
    one = get_profile("cpu", **{"distill.grid_jobs": 1})
    grid = {**main, "job": "grid_r0.8_s0", "group": "grid"}
    grid["objectives"] = list(one.distill.grid_objectives)
    (tmp_path / "grid_r0.8_s0.json").write_text(json.dumps({**blob, "results": grid}))
    assert [j["job"] for j in load_jobs(tmp_path, get_profile("cpu"))] == ["main_r0.8_s0"]
    blob["meta"]["profile"]["distill"]["grid_jobs"] = 1
    (tmp_path / "grid_r0.8_s0.json").write_text(json.dumps({"results": grid, "meta": blob["meta"]}))
    assert [j["job"] for j in load_jobs(tmp_path, one)] == ["grid_r0.8_s0", "main_r0.8_s0"]


@pytest.mark.slow
def test_the_teacher_command_takes_its_steps_from_the_overrides(tmp_path):
    """make help's example override, {teacher.steps: N}, used to crash every entry point with
    "got multiple values for keyword argument"."""
    cmd = [PY, "-m", "liftkd.stages.teacher", "--profile", "smoke", "--run-dir", str(tmp_path)]
    cmd += ["--overrides", "{teacher.steps: 3, teacher.checkpoint_every: 3}", "--no-progress"]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "teacher done: 3 steps" in done.stdout
    clash = subprocess.run([*cmd, "--steps", "5"], cwd=REPO, capture_output=True, text=True)
    assert clash.returncode != 0 and "'teacher.steps' is given twice: 3" in clash.stderr


def test_an_explicit_null_sets_a_setting_to_none_and_an_empty_value_is_refused():
    """The gpu profile's teacher is a hub model; `{pretrained_teacher: null}` trains one instead
    (it used to be dropped like a parameter left at None), while `{pretrained_teacher: }` says
    nothing and is refused."""
    from liftkd.config import resolve_profile

    assert get_profile("gpu").pretrained_teacher == "google/ddpm-cifar10-32"
    for text in ("{pretrained_teacher: null}", "{pretrained_teacher: ~, teacher.steps: 7}"):
        assert resolve_profile("gpu", text).pretrained_teacher is None
    with pytest.raises(SettingsError, match="'pretrained_teacher' has no value"):
        resolve_profile("gpu", "{pretrained_teacher: }")
    with pytest.raises(SettingsError, match="'teacher.steps' = None: Input should be a valid int"):
        resolve_profile("smoke", "{teacher.steps: null}")  # not a setting that may be none
