"""Bad inputs, as a user or a hostile tester gives them: each is a clear error that names the
value and what is allowed, raised before anything is written or with what was written intact.

One parametrised case per input (settings, data, pruning, objectives, files, command lines),
then the cases where something was on disk before the error.
"""

import json
import subprocess
import sys

import pytest
import torch

from liftkd.config import SettingsError, get_profile, parse_overrides, resolve_profile
from liftkd.models.presets import build_unet

PY = sys.executable


def _profile(**overrides):
    return lambda: get_profile("smoke", **overrides)


def _objective(name, **options):
    from liftkd.method.objectives import build_objective

    return lambda: build_objective(name, **options)


def _call_objective(name, eps=None, eS=None, eT=None, **options):
    from liftkd.method.objectives import build_objective

    shape = (2, 1, 8, 8)
    eps = torch.zeros(shape) if eps is None else eps
    eS = torch.zeros(shape) if eS is None else eS
    eT = torch.zeros(shape) if eT is None else eT
    return lambda: build_objective(name, **options)(eps, eS, eT)


def _prune(ratio, criterion="magnitude", **kw):
    from liftkd.models.pruning import prune

    def run():
        teacher = build_unet(get_profile("smoke").unet, 8, 1)
        return prune(teacher, ratio, criterion, progress=False, **kw)

    return run


def _grouped(K, n=64):
    from liftkd.method.probe import grouped

    return lambda: grouped(torch.zeros(1, 1, n), torch.ones(1, 1, n), K)


NAN = torch.full((2, 1, 8, 8), float("nan"))

# (id, call, exception, a regex the message must match: it names the value and what is allowed)
CASES = [
    # settings
    (
        "resolution not a number",
        _profile(**{"data.resolution": "abc"}),
        SettingsError,
        r"'data.resolution' = 'abc'.*valid integer",
    ),
    (
        "resolution negative",
        _profile(**{"data.resolution": -8}),
        SettingsError,
        r"'data.resolution' = -8.*greater than or equal to 4",
    ),
    (
        "steps not whole",
        _profile(**{"teacher.steps": 2.5}),
        SettingsError,
        r"'teacher.steps' = 2.5.*valid integer",
    ),
    (
        "steps zero",
        _profile(**{"teacher.steps": 0}),
        SettingsError,
        r"'teacher.steps' = 0.*greater than or equal to 1",
    ),
    (
        "batch a word",
        _profile(**{"teacher.batch_size": "many"}),
        SettingsError,
        r"'teacher.batch_size' = 'many'",
    ),
    (
        "per-ratio list too short",
        _profile(**{"distill.steps": [20]}),
        SettingsError,
        r"distill.steps has 1 entries for 2 distill.ratios",
    ),
    (
        "convergence judged on more evaluations than a run has",
        _profile(**{"distill.converged_evals": 3}),
        SettingsError,
        r"converged_evals 3 is above distill.evaluations 2",
    ),
    (
        "final FID on too few images",
        _profile(**{"distill.final_samples": 5}),
        SettingsError,
        r"distill.final_samples.* 5.*greater than or equal to 6",
    ),
    (
        "one ratio out of range",
        _profile(**{"pruning.ratios": [0.5, 1.2]}),
        SettingsError,
        r"'pruning.ratios' \(entry 1\) = 1.2.*less than 1",
    ),
    (
        "ratio zero",
        _profile(**{"distill.ratios": [0.0, 0.9], "distill.steps": [5, 5]}),
        SettingsError,
        r"'distill.ratios' \(entry 0\) = 0.0.*greater than 0",
    ),
    (
        "unknown section",
        _profile(**{"techer.steps": 5}),
        SettingsError,
        r"unknown setting 'techer.steps'; did you mean 'teacher'",
    ),
    (
        "unknown key",
        _profile(**{"teacher.stesp": 5}),
        SettingsError,
        r"unknown setting 'teacher.stesp'; did you mean 'steps'.*valid names in 'teacher'",
    ),
    (
        "unknown criterion",
        _profile(**{"pruning.criterion": "l1"}),
        SettingsError,
        r"'pruning.criterion' = 'l1'.*'diff-pruning', 'taylor', 'magnitude' or 'random'",
    ),
    (
        "unknown data name",
        _profile(**{"data.name": "imagenet"}),
        SettingsError,
        r"'data.name' = 'imagenet'.*'digits', 'mnist', 'folder' or 'cifar10'",
    ),
    ("folder without path", _profile(**{"data.name": "folder"}), SettingsError, r"needs data.path"),
    (
        "channels two",
        _profile(**{"data.channels": 2}),
        SettingsError,
        r"'data.channels' = 2.*1 or 3",
    ),
    (
        "ablation ratio not swept",
        _profile(**{"distill.ablation_ratio": 0.7}),
        SettingsError,
        r"ablation_ratio 0.7 is not one of distill.ratios",
    ),
    (
        "K not whole",
        _profile(**{"distill.group_size": 2.7}),
        SettingsError,
        r"'distill.group_size' = 2.7",
    ),
    (
        "lr_min above lr",
        _profile(**{"teacher.lr_min": 0.1}),
        SettingsError,
        r"lr_min 0.1 is above lr",
    ),
    (
        "unknown profile",
        lambda: get_profile("smok"),
        SettingsError,
        r"unknown profile 'smok'; did you mean 'smoke'",
    ),
    (
        "overrides not a mapping",
        lambda: parse_overrides("[1, 2]"),
        SettingsError,
        r"must be a mapping of settings.*\[1, 2\]",
    ),
    ("overrides not YAML", lambda: parse_overrides("{a: [}"), SettingsError, r"are not YAML"),
    (
        "override without a space after the colon",
        lambda: parse_overrides("{teacher.steps:5}"),
        SettingsError,
        r"'teacher.steps:5' has no value; YAML needs a space after the colon: '\{teacher.steps: 5\}'",
    ),
    (
        "override with no value",
        lambda: parse_overrides("{teacher.steps: }"),
        SettingsError,
        r"override 'teacher.steps' has no value",
    ),
    (
        "nested override with no value",
        lambda: parse_overrides({"teacher": {"steps": None}}),
        SettingsError,
        r"override 'teacher.steps' has no value",
    ),
    (
        "profile name as an override",
        _profile(name="gpu"),
        SettingsError,
        r"the profile's name is not a setting \(an override gave 'gpu'\).*PROFILE=",
    ),
    (
        "a setting given as an override and as a parameter",
        lambda: resolve_profile("smoke", "{teacher.steps: 100}", **{"teacher.steps": 5}),
        SettingsError,
        r"'teacher.steps' is given twice: 100 in the overrides and 5 as a parameter",
    ),
    (
        "seed negative",
        _profile(**{"distill.seeds": [0, -1]}),
        SettingsError,
        r"'distill.seeds' \(entry 1\) = -1.*greater than or equal to 0",
    ),
    (
        "seed overflows the generators",
        _profile(**{"teacher.seed": 2**64}),
        SettingsError,
        r"'teacher.seed' = 18446744073709551616.*less than 4294967296",
    ),
    (
        "resolution the latent path cannot halve",
        _profile(**{"data.resolution": 10}),
        SettingsError,
        r"data.resolution 10 cannot be taken.*latent path divides it by 2.*multiple of 4; choose",
    ),
    (
        "resolution the DiT cannot cut into patches",
        _profile(**{"data.resolution": 12, "dit.patch_size": 8}),
        SettingsError,
        r"data.resolution 12 .*patches of dit.patch_size, so it must be a multiple of 8",
    ),
    (
        "KD steps that evaluations cannot divide",
        _profile(**{"distill.steps": [21, 20]}),
        SettingsError,
        r"distill.steps \[21, 20\]: \[21\] cannot be cut into distill.evaluations = 2",
    ),
    (
        "FIDs along training on fewer images than precision and recall need",
        _profile(**{"distill.eval_samples": 4}),
        SettingsError,
        r"distill.eval_samples.* 4.*greater than or equal to 6",
    ),
    # data
    (
        "missing image folder",
        lambda: __import__("liftkd.data").data.load_splits(
            get_profile("smoke", **{"data.name": "folder", "data.path": "/nonexistent/imgs"}).data
        ),
        FileNotFoundError,
        r"/nonexistent/imgs does not exist",
    ),
    (
        "cannot convert channels",
        lambda: __import__("liftkd.data").data._set_channels(
            torch.zeros(1, 2, 4, 4, dtype=torch.uint8), 3
        ),
        ValueError,
        r"cannot convert 2 channels to 3",
    ),
    (
        "images not uint8",
        lambda: __import__("liftkd.data").data.ImageSet(torch.zeros(2, 1, 4, 4), None),
        ValueError,
        r"uint8.*torch.float32",
    ),
    (
        "split too small",
        lambda: __import__("liftkd.data").data.stratified_split(None, 2, 0.2, 0),
        ValueError,
        r"2 images split .* both parts need at least 2",
    ),
    # pruning
    ("ratio one", _prune(1.0), Exception, r"ratio must be a number in \(0, 1\), got 1.0"),
    ("ratio a word", _prune("half"), Exception, r"got 'half'"),
    (
        "ratio far from any cut",
        _prune(0.51),
        Exception,
        r"ratio 0.51 would cut 0.600.*far from the ratio asked",
    ),
    ("ratio empties groups", _prune(0.95), Exception, r"ratio 0.95 would empty"),
    ("unknown pruning criterion", _prune(0.5, "l1"), Exception, r"unknown criterion 'l1'"),
    ("unknown rounding", _prune(0.5, rounding="up"), Exception, r"unknown rounding 'up'"),
    ("gradient criterion without images", _prune(0.5, "diff-pruning"), Exception, r"needs images"),
    # objectives
    ("unknown objective", _objective("lift+plac"), ValueError, r"unknown objective 'lift\+plac'"),
    (
        "lam negative",
        _objective("lift", lam=-1),
        ValueError,
        r"objective 'lift': option lam must be a number 0 or more, got -1",
    ),
    (
        "OutKD lam negative",
        _objective("outkd", lam=-0.5),
        ValueError,
        r"option lam must be a number 0 or more, got -0.5",
    ),
    (
        "var_eps negative",
        _objective("lift+place", var_eps=-1),
        ValueError,
        r"option var_eps must be a number above 0, got -1",
    ),
    (
        "var_eps zero on the class",
        lambda: __import__("liftkd.method.lift").method.lift.LIFT(var_eps=0.0),
        ValueError,
        r"var_eps must be a number above 0, got 0.0",
    ),
    (
        "PLACE given a bare number",
        lambda: __import__("liftkd.method.lift").method.lift.PLACE(1e-7),
        TypeError,
        r"PLACE takes its options by name, e.g. PLACE\(group_size=16, lam=1.0\); got 1e-07",
    ),
    (
        "LIFT given a bare number",
        lambda: __import__("liftkd.method.lift").method.lift.LIFT(1e-7),
        TypeError,
        r"LIFT takes its options by name.*got 1e-07 without a name",
    ),
    (
        "spec option not a number",
        lambda: __import__("liftkd.method.objectives").method.objectives.check_spec(
            "lift+place:group_size=abc"
        ),
        ValueError,
        r"spec 'lift\+place:group_size=abc'.*whole number of at least 2, got 'abc'",
    ),
    (
        "spec coarse scale negative",
        lambda: __import__("liftkd.method.objectives").method.objectives.check_spec(
            "lift:coarse_scale=-1"
        ),
        ValueError,
        r"spec 'lift:coarse_scale=-1'.*coarse_scale must be a number above 0 or 'n' \(the elements per fit\), got -1",
    ),
    (
        "spec unknown coarse norm",
        lambda: __import__("liftkd.method.objectives").method.objectives.check_spec(
            "lift:coarse=l3"
        ),
        ValueError,
        r"spec 'lift:coarse=l3'.*coarse must be one of \('l1', 'l2'\), got 'l3'",
    ),
    (
        "spec unknown option",
        lambda: __import__("liftkd.method.objectives").method.objectives.check_spec(
            "lift+place:foo=1"
        ),
        ValueError,
        r"'lift\+place' has no option 'foo'; its options: coarse, coarse_scale, .*var_eps",
    ),
    (
        "recipe spec with a bad K",
        lambda: __import__("liftkd.method.objectives").method.objectives.check_spec(
            "bksdm:kd=lift+place,group_size=abc"
        ),
        ValueError,
        r"spec 'bksdm:kd=lift\+place,group_size=abc'.*at least 2, got 'abc'",
    ),
    (
        "metrics on fewer images than precision and recall need",
        lambda: __import__("liftkd.measure.metrics").measure.metrics.fidelity(
            torch.zeros(3, 1, 8, 8, dtype=torch.uint8), torch.zeros(20, 1, 8, 8, dtype=torch.uint8)
        ),
        ValueError,
        r"5 nearest neighbours: both sides need at least 6 images, got 3 generated and 20",
    ),
    (
        "K not whole number",
        _objective("lift+place", group_size=2.7),
        ValueError,
        r"group_size \(PLACE's K\) must be a whole number.*2.7",
    ),
    ("K one", _objective("lift+place", group_size=1), ValueError, r"at least 2, got 1"),
    (
        "K does not divide N",
        _call_objective("lift+place", group_size=48),
        ValueError,
        r"N = 64 .* not a multiple of the group size K = 48",
    ),
    ("K above N", _grouped(128), ValueError, r"K = 128 for N = 64"),
    ("K fractional in the probe", _grouped(2.7), ValueError, r"whole number, got 2.7"),
    (
        "teacher output NaN",
        _call_objective("lift+place", eT=NAN, group_size=4),
        ValueError,
        r"eT \(the teacher's prediction\) holds 128 NaN",
    ),
    (
        "noise NaN",
        _call_objective("outkd", eps=NAN),
        ValueError,
        r"eps \(the true noise\) holds 128 NaN",
    ),
    (
        "student output NaN",
        _call_objective("outkd", eS=NAN),
        FloatingPointError,
        r"objective 'outkd': the loss is nan",
    ),
    (
        "shapes differ",
        _call_objective("outkd", eT=torch.zeros(2, 1, 4, 4)),
        ValueError,
        r"must have one .* shape; got \(2, 1, 8, 8\), \(2, 1, 8, 8\), \(2, 1, 4, 4\)",
    ),
    ("eS not a tensor", _call_objective("outkd", eS=[[0.0]]), TypeError, r"eS must be a tensor"),
    (
        "unknown schedule",
        _objective("lift", schedule="step"),
        ValueError,
        r"unknown weight schedule 'step'",
    ),
    (
        "unknown coarse norm",
        _objective("lift", coarse="l3"),
        ValueError,
        r"coarse must be one of \('l1', 'l2'\), got 'l3'",
    ),
    # jobs
    (
        "bad job name",
        lambda: __import__("liftkd.stages.sweep.jobs").stages.sweep.jobs.parse_job_name("main-0.9"),
        ValueError,
        r"job names look like main_r0.9_s0, got 'main-0.9'",
    ),
    (
        "job at a ratio not swept",
        lambda: __import__("liftkd.stages.sweep.jobs").stages.sweep.jobs.job_from_name(
            get_profile("smoke"), "main_r0.7_s0"
        ),
        ValueError,
        r"ratio 0.7 is not in the profile's distill.ratios",
    ),
    (
        "job of a negative seed",
        lambda: __import__("liftkd.stages.sweep.jobs").stages.sweep.jobs.job_from_name(
            get_profile("smoke"), "main_r0.5_s-1"
        ),
        ValueError,
        r"a job's seed must be a whole number from 0 to 2\^32 - 1, got -1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_a_bad_input_is_a_clear_error(case):
    _, call, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        call()


def test_there_are_at_least_forty_cases():
    assert len(CASES) + len(FILE_CASES) + len(CLI_CASES) >= 40


# ---- files: a truncated, empty or foreign file is named, with what to do -----------------


def _write(kind):
    def write(path):
        if kind == "empty":
            path.write_bytes(b"")
        elif kind == "truncated":
            torch.save({"x": torch.zeros(1000)}, path)
            path.write_bytes(path.read_bytes()[:300])
        elif kind == "foreign":
            path.write_text("not a torch file\n")

    return write


FILE_CASES = [
    (
        "model file empty",
        "liftkd.models.checkpoints:load_model",
        _write("empty"),
        r"model\.pt \(a pruned model file\) cannot be read.*delete it",
    ),
    (
        "model file truncated",
        "liftkd.models.checkpoints:load_model",
        _write("truncated"),
        r"model\.pt \(a pruned model file\) cannot be read",
    ),
    (
        "model file foreign",
        "liftkd.models.checkpoints:load_model",
        _write("foreign"),
        r"model\.pt \(a pruned model file\) cannot be read",
    ),
    (
        "classifier truncated",
        "liftkd.measure.feature_extractor:load_extractor",
        _write("truncated"),
        r"model\.pt \(the offline feature extractor\) cannot be read.*trained again",
    ),
    (
        "snapshot empty",
        "liftkd.training.distill:load_snapshot",
        _write("empty"),
        r"model\.pt \(a KD snapshot\) cannot be read",
    ),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_damaged_file_is_named_with_what_to_do(case, tmp_path):
    import importlib

    from liftkd.runs import CorruptFileError

    _, target, write, pattern = case
    module, fn = target.split(":")
    path = tmp_path / "model.pt"
    write(path)
    args = (torch.nn.Linear(1, 1), path) if fn == "load_snapshot" else (path,)
    with pytest.raises(CorruptFileError, match=pattern):
        getattr(importlib.import_module(module), fn)(*args)
    assert path.exists()  # the damaged file is left for the user to look at


def test_a_damaged_training_checkpoint_is_named_and_left_alone(tmp_path):
    from liftkd.config import TrainConfig
    from liftkd.runs import CorruptFileError
    from liftkd.training.train import train

    (tmp_path / "checkpoint.pt").write_bytes(b"\x80\x02garbage")
    before = (tmp_path / "checkpoint.pt").read_bytes()
    model = torch.nn.Linear(4, 4)
    images = torch.zeros(4, 1, 2, 2, dtype=torch.uint8)
    with pytest.raises(
        CorruptFileError,
        match=r"checkpoint\.pt \(a training checkpoint\).*start this training over",
    ):
        train(
            model,
            lambda m, x0, g, p, part: (m.weight.sum(), {}),
            images,
            TrainConfig(steps=2, batch_size=2),
            tmp_path,
            progress=False,
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


# ---- command lines ------------------------------------------------------------------------

CLI_CASES = [
    (
        "sweep list, unknown profile",
        ["-m", "liftkd.stages.sweep", "list", "--profile", "nope"],
        r"unknown profile 'nope'",
    ),
    (
        "sweep list, bad overrides",
        [
            "-m",
            "liftkd.stages.sweep",
            "list",
            "--profile",
            "smoke",
            "--overrides",
            "{distill.sedes: [1]}",
        ],
        r"unknown setting 'distill.sedes'; did you mean 'seeds'",
    ),
    (
        "teacher, unknown setting",
        [
            "-m",
            "liftkd.stages.teacher",
            "--profile",
            "smoke",
            "--run-dir",
            "RUN",
            "--overrides",
            "{teacher.stpes: 3}",
        ],
        r"error: unknown setting 'teacher.stpes'",
    ),
    (
        "settings check, bad type",
        [
            "-m",
            "liftkd.check_settings",
            "--profile",
            "smoke",
            "--overrides",
            "{data.resolution: big}",
        ],
        r"error: setting 'data.resolution' = 'big'",
    ),
    (
        "export, unfinished job",
        [
            "-m",
            "liftkd.results.export",
            "--run-dir",
            "RUN",
            "--job",
            "main_r0.5_s0",
            "--objective",
            "outkd",
            "--out",
            "RUN/x",
            "--profile",
            "smoke",
        ],
        r"results.json is missing: the job has not finished",
    ),
    (
        "export, a path's results missing",
        ["-m", "liftkd.results.export", "--run-dir", "RUN", "--results", "RUN/06_dit.json"]
        + ["--objective", "tinyfusion", "--out", "RUN/x"],
        r"06_dit.json does not exist: run make dit or make latent",
    ),
    (
        "export, a job and a path's results at once",
        [
            "-m",
            "liftkd.results.export",
            "--run-dir",
            "RUN",
            "--results",
            "a.json",
            "--job",
            "main_r0.5_s0",
        ]
        + ["--objective", "tinyfusion", "--out", "RUN/x"],
        r"argument --job: not allowed with argument --results",
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_a_bad_command_line_is_one_clear_message(case, tmp_path):
    _, args, pattern = case
    args = [a.replace("RUN", str(tmp_path)) for a in args]
    done = subprocess.run([PY, *args], capture_output=True, text=True)
    assert done.returncode != 0
    assert __import__("re").search(pattern, done.stderr), done.stderr[-2000:]
    assert not list(tmp_path.iterdir()), "nothing is written by a refused command"


# ---- a run folder used with other settings ------------------------------------------------


def test_a_run_folder_refuses_a_teacher_of_other_settings_and_keeps_its_files(tmp_path):
    from liftkd.runs import remember

    first = get_profile("smoke")
    remember(tmp_path, "teacher", first)
    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / "checkpoint.pt").write_bytes(b"weights")
    other = get_profile("smoke", **{"data.resolution": 16, "unet.dropout": 0.1})
    with pytest.raises(SettingsError, match=r"data.resolution: 8 -> 16.*another RUN_NAME"):
        remember(tmp_path, "teacher", other)
    # a longer training of the same teacher is a resumption, not another teacher
    remember(tmp_path, "teacher", get_profile("smoke", **{"teacher.steps": 120}))
    assert (tmp_path / "teacher" / "checkpoint.pt").read_bytes() == b"weights"
    saved = json.loads((tmp_path / "settings" / "teacher.json").read_text())
    assert saved["data.resolution"] == 8


def test_make_refuses_bad_settings_before_creating_anything(tmp_path):
    from tests.conftest import REPO

    run = tmp_path / "run"
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "reproduce",
            "PROFILE=smoke",
            f"RUN_DIR={run}",
            f"FIGURES={tmp_path / 'fig'}",
            "OVERRIDES={teacher.stpes: 3}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "unknown setting 'teacher.stpes'" in done.stderr
    assert not run.exists() and not (tmp_path / "fig").exists()
    done = subprocess.run(
        ["make", "--no-print-directory", "reproduce", "PROFILE=nope", f"RUN_DIR={run}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "unknown profile 'nope'" in done.stderr and not run.exists()
