"""The KD sweep: job plans and names, make's job list, students trained side by side, divergence."""

import copy
import math
import re
import subprocess

import pytest
import torch

from liftkd.config import SettingsError, TrainConfig, get_profile, resolve_profile
from liftkd.method.losses import LossOutput, Objective
from liftkd.method.objectives import build_objective, parse_spec
from liftkd.models.presets import build_unet
from liftkd.models.pruning import prune
from liftkd.results import claims
from liftkd.stages.sweep import jobs
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.distill import KDGroup, KDModule, distill, distill_group, load_snapshot
from liftkd.training.train import TrainingDiverged
from tests.conftest import REPO, smoke_pair

# ---- specs and plans ----------------------------------------------------------------------


def test_cpu_plan_is_the_issue_sweep():
    """Issues 10 and 19: the aggressive ratio (0.8) only, every objective on three seeds in make
    reproduce; the ablations (fixed schedules, K, the coarse norm and scale) and the authors'
    recipe on two, as studies of their own (make ablation, make authors); six evaluations,
    2,000 final samples."""
    profile = get_profile("cpu")
    assert [j.name for j in jobs.plan(profile)] == [f"main_r0.8_s{s}" for s in (0, 1, 2)]
    studies = {s: [j.name for j in jobs.plan(profile, study=s)] for s in ("ablation", "authors")}
    assert studies == {g: [f"{g}_r0.8_s{s}" for s in (0, 1)] for g in ("ablation", "authors")}
    planned = {j.name: j for j in jobs.every_job(profile)}
    # the profiles that keep them in make reproduce list them with the main jobs, seed by seed
    smoke = [j.name for j in jobs.plan(get_profile("smoke"))]
    assert smoke == ["main_r0.5_s0", "main_r0.9_s0", "ablation_r0.9_s0", "authors_r0.9_s0"]
    kept = resolve_profile("cpu", {"distill.in_reproduce": ["authors"]})
    assert [j.name for j in jobs.plan(kept, [1])] == ["main_r0.8_s1", "authors_r0.8_s1"]
    main = planned["main_r0.8_s0"]
    assert main.objectives == (
        "nokd",
        "outkd",
        "featkd",
        "outkd+featkd",
        "lift",
        "lift+place",
    )
    ablation = planned["ablation_r0.8_s0"]
    # the ablation job trains as long as the main job of its ratio, on the same batches (seed)
    assert ablation.train == main.train
    assert "lift+place:schedule=none" in ablation.objectives
    assert "lift+place:coarse=l2" in ablation.objectives
    assert {"lift+place:schedule=linear", "lift+place:schedule=cosine"} <= set(ablation.objectives)
    assert "lift:coarse_scale=n" in ablation.objectives  # the default LIFT is the authors' x32
    # the authors' recipe: the same batches and steps, their optimiser, EMA, dropout, timesteps
    authors = planned["authors_r0.8_s0"]
    assert authors.objectives == ("outkd", "lift+place")
    assert authors.train.steps == main.train.steps and authors.train.seed == main.train.seed
    t = authors.train
    assert (t.optimizer, t.lr, t.lr_min, t.warmup_steps) == ("adam", 2e-4, 2e-4, 0)
    assert (t.ema_decay, t.antithetic, t.clip, authors.dropout) == (0.9999, True, "model", 0.1)
    assert main.dropout is None and main.train.optimizer == "adamw"
    # the K x coarse-term study beside the sweep (make grid), not in make reproduce: two jobs of
    # one seed, the L1 line with an L1 OutKD and LIFT, the L2 line with w/o KD and OutKD
    l1, l2 = jobs.plan(profile, study="grid")
    assert (l1.name, l2.name) == ("grid_r0.8_s0_p0", "grid_r0.8_s0_p1")
    assert l1.train == l2.train == main.train and l1.group == l2.group == "grid"
    assert l1.objectives[:2] == ("outkd:norm=l1", "lift") and l2.objectives[:2] == ("nokd", "outkd")
    for part, coarse in ((l1, "l1"), (l2, "l2")):
        place = [parse_spec(s, 16)[1] for s in part.objectives[2:]]
        assert [o["group_size"] for o in place] == [2, 4, 8, 16, 64]
        assert {o.get("coarse", "l1") for o in place} == {coarse}  # L1: the default
    assert jobs.job_from_name(profile, "grid_r0.8_s0_p1") == l2
    # the trend study: what claim 1 reads at 50% and 70%, as long as at 80% (claim 1)
    trend = {j.name: j for j in jobs.plan(profile, study="trend")}
    assert set(trend) == {f"trend_r{r}_s{s}" for r in (0.5, 0.7) for s in (0, 1)}
    read = ("outkd", "featkd", "outkd+featkd", "lift+place")
    assert set(read) == {*claims.KD_BASELINES, claims.OURS}
    assert all(j.objectives == read for j in trend.values())
    # without distill.trend_objectives, the main objectives
    plain = resolve_profile("cpu", {"distill.trend_objectives": []})
    assert jobs.make_job(plain, "trend", 0.5, 0).objectives == main.objectives
    assert {j.train.steps for j in trend.values()} == {main.train.steps}
    assert jobs.job_from_name(profile, "trend_r0.5_s0") == trend["trend_r0.5_s0"]
    with pytest.raises(ValueError, match="not in the profile's distill.trend_ratios"):
        jobs.job_from_name(profile, "trend_r0.6_s0")
    ks = {parse_spec(s, 16)[1]["group_size"] for s in ablation.objectives if "place" in s}
    assert ks == {4, 16}
    for job in planned.values():  # checkpoints fall on evaluation steps, the last at the end
        assert job.eval_steps[-1] == job.train.steps and len(job.eval_steps) >= 6
        assert all(s % job.train.checkpoint_every == 0 for s in job.eval_steps)
    d = profile.distill
    assert d.final_samples >= 2000 and d.converged_evals == 3 and d.converged_within == 0.05
    assert 0.8 in profile.capacity.ratios and 0.9 in profile.capacity.ratios


def test_bad_jobs_fail_before_training():
    profile = get_profile("cpu")
    with pytest.raises(ValueError, match="not in the profile"):
        jobs.make_job(profile, "main", 0.7, 0)
    with pytest.raises(ValueError, match="unknown job group"):
        jobs.make_job(profile, "extra", 0.9, 0)
    with pytest.raises(ValueError, match="divide"):
        jobs.eval_steps(1001, 4)
    with pytest.raises(ValueError, match="unknown objective 'liftt'"):
        jobs.make_job(profile, "main", 0.8, 0, objectives=["outkd", "liftt"])
    for bad in ("r0.9", "main_0.9_0", "main_rx_s0"):
        with pytest.raises(ValueError, match="main_r0.9_s0"):
            jobs.parse_job_name(bad)
    assert jobs.parse_job_name("ablation_r0.9_s2") == ("ablation", 0.9, 2)
    assert jobs.split_job_name("grid_r0.8_s1_p1") == ("grid", 0.8, 1, 1)
    for bad in ("grid_r0.8_s0_1", "grid_r0.8_s0_p", "grid_r0.8_s0_p1_p2"):
        with pytest.raises(ValueError, match="grid_r0.8_s0_p1"):
            jobs.split_job_name(bad)
    # a split study's job needs its part, an unsplit one none, and only the grid has parts
    for name, match in (
        ("grid_r0.8_s0", "runs as 2 jobs"),
        ("grid_r0.8_s0_p2", "runs as 2 jobs"),
        ("main_r0.8_s0_p0", "only the grid"),
    ):
        with pytest.raises(ValueError, match=match):
            jobs.job_from_name(profile, name)
    one = get_profile("cpu", **{"distill.grid_jobs": 1})
    assert jobs.job_from_name(one, "grid_r0.8_s0").objectives == one.distill.grid_objectives
    with pytest.raises(ValueError, match="one job"):
        jobs.job_from_name(one, "grid_r0.8_s0_p0")
    with pytest.raises(SettingsError, match="grid_jobs = 15 would leave a job without a student"):
        get_profile("cpu", **{"distill.grid_jobs": 15})


def test_a_split_grid_keeps_every_objective_once_in_order():
    items = tuple("abcdefg")
    for parts in range(1, 8):
        split = jobs.split_in_order(items, parts)
        assert len(split) == parts and sum(split, ()) == items
        assert max(map(len, split)) - min(map(len, split)) <= 1 and all(split)


def test_a_job_is_rebuilt_from_its_name_alone():
    profile = get_profile("cpu")
    for job in jobs.plan(profile, seeds=[0, 3]):
        assert jobs.job_from_name(profile, job.name) == job
    short = jobs.job_from_name(profile, "main_r0.5_s1", objectives=["outkd"], steps=60)
    assert short.objectives == ("outkd",) and short.train.steps == 60 and short.train.seed == 1
    assert jobs.job_dir("runs/x", short) == jobs.job_dir("runs/x", "main_r0.5_s1")


def _listed_by_make(*variables: str) -> list[str]:
    """The job names ``make list-sweep`` prints with these variables (``NAME=value``)."""
    return subprocess.run(
        ["make", "--no-print-directory", "list-sweep", *variables],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()


@pytest.mark.parametrize(
    "profile, seeds", [("smoke", ""), ("cpu", ""), ("gpu", ""), ("smoke", "1 2")]
)
@pytest.mark.slow
def test_make_gets_its_jobs_from_the_profile(profile, seeds):
    """The Makefile states no ratio or seed: it asks ``python -m liftkd.stages.sweep list``."""
    make = _listed_by_make(f"PROFILE={profile}", f"SEEDS={seeds}")
    chosen = [int(s) for s in seeds.split()] or None
    assert make == [j.name for j in jobs.plan(get_profile(profile), chosen)]
    assert {jobs.parse_job_name(n)[2] for n in make} == set(
        chosen or get_profile(profile).distill.seeds
    )


@pytest.mark.parametrize(
    "study, seeds",
    [("trend", ""), ("trend", "1"), ("grid", ""), ("ablation", ""), ("authors", "1")],
)
@pytest.mark.slow
def test_make_runs_a_studys_seeds_one_make_at_a_time(study, seeds):
    """make trend SEEDS=1 (and make grid) run the jobs ``list-sweep STUDY=...`` names: the
    study's plan for those seeds, every seed of the profile's without SEEDS."""
    make = _listed_by_make("PROFILE=cpu", f"STUDY={study}", f"SEEDS={seeds}")
    chosen = [int(s) for s in seeds.split()] or None
    profile = get_profile("cpu")
    assert make == [j.name for j in jobs.plan(profile, chosen, study)] and make
    everyone = getattr(profile.distill, f"{study}_seeds")
    assert {jobs.parse_job_name(n)[2] for n in make} == set(chosen or everyone)


@pytest.mark.slow
def test_a_study_the_profile_lacks_names_its_setting():
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "trend", "PROFILE=gpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert "the gpu profile has no trend study: distill.trend_ratios is empty" in done.stderr


def test_the_makefile_states_no_sweep_ratio():
    text = (REPO / "Makefile").read_text()
    assert not re.findall(r"\b0\.[0-9]+\b", text), "ratios belong to the profiles"
    assert "SWEEP_RATIOS" not in text and "ABLATION_RATIO" not in text


@pytest.mark.slow
def test_gpu_profile_resolves_and_its_ratios_are_reachable():
    profile = get_profile("gpu")
    d = profile.distill
    assert d.train.lr == d.train.lr_min == 2e-4 and d.train.ema_decay == 0.9999
    assert d.final_samples == 50_000 and d.eval_ddim_steps == 100 and len(d.seeds) >= 3
    assert profile.feature_extractor == "inception"
    planned = jobs.plan(profile)
    assert len(planned) == 4 * len(d.seeds)
    # the dry run: the make targets of the sweep, under accelerate launch when asked
    dry = subprocess.run(
        ["make", "-n", "sweep", "PROFILE=gpu", "LAUNCH=accelerate launch --multi_gpu"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert dry.count("accelerate launch --multi_gpu -m liftkd.stages.sweep train") == len(planned)
    # the teacher's architecture (random weights, nothing downloaded) prunes at the top ratio
    teacher = build_unet(profile.unet, profile.data.resolution, profile.data.channels)
    student, report = prune(teacher, max(d.ratios), "magnitude")
    assert report.param_ratio < 0.15


# ---- side by side -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    profile, teacher, student = smoke_pair(0.5)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    return profile, teacher, student, images


def _objective(name, student, teacher, **opts):
    example = {"sample": torch.randn(2, 1, 8, 8), "timestep": torch.tensor([1, 2])}
    return build_objective(name, student, teacher, example, **opts)


CFG = TrainConfig(steps=6, batch_size=8, warmup_steps=2, checkpoint_every=3, seed=3)


@pytest.mark.slow
def test_side_by_side_equals_training_each_student_alone(tiny, tmp_path):
    """One teacher forward for all is only a saving: every student ends exactly as if trained
    alone on the same seed (same batches, noise, timesteps; own clipping and optimiser state)."""
    profile, teacher, student, images = tiny
    sched = noise_scheduler(profile.diffusion)
    names = ["outkd", "featkd", "lift+place"]
    students = {n: copy.deepcopy(student) for n in names}
    opts = {"lift+place": {"group_size": 4}}
    objectives = {n: _objective(n, students[n], teacher, **opts.get(n, {})) for n in names}
    initial = copy.deepcopy(objectives)  # the FitNet adapters' initial weights
    group = distill_group(
        students, teacher, objectives, images, CFG, sched, tmp_path / "g", progress=False
    )
    for n in names:
        alone = copy.deepcopy(student)
        obj = copy.deepcopy(initial[n])
        res = distill(alone, teacher, obj, images, CFG, sched, tmp_path / n, progress=False)
        ours = group.ema.member(n).student.state_dict()
        for k, v in res.ema.member(obj.name).student.state_dict().items():
            torch.testing.assert_close(ours[k], v, rtol=1e-5, atol=1e-6, msg=f"{n}: {k}")
    assert (group.ema.diverged_at == -1).all()
    # the snapshots the evaluations sample from are the EMA weights
    snaps = sorted(p.name for p in (tmp_path / "g" / "snapshots").iterdir())
    assert snaps == ["step_0.pt", "step_3.pt", "step_6.pt"]
    last = torch.load(tmp_path / "g" / "snapshots" / "step_6.pt", weights_only=True)
    for k, v in group.ema.state_dict().items():
        torch.testing.assert_close(last[k], v)


class _BlowsUp(Objective):
    """OutKD that returns NaN from ``at`` (share of training) on."""

    def __init__(self, at: float):
        super().__init__()
        self.at = at

    def forward(self, eps, eS, eT, fS=None, fT=None, progress=None):
        loss = (eS - eT).square().flatten(1).sum(1).mean()
        if progress >= self.at:
            loss = loss * math.nan
        return LossOutput(loss, {})


def test_a_diverged_student_is_frozen_and_the_others_go_on(tiny, tmp_path):
    profile, teacher, student, images = tiny
    sched = noise_scheduler(profile.diffusion)
    students = {"bad": copy.deepcopy(student), "good": copy.deepcopy(student)}
    objectives = {"bad": _BlowsUp(at=0.5), "good": _objective("outkd", students["good"], teacher)}
    res = distill_group(students, teacher, objectives, images, CFG, sched, tmp_path, progress=False)
    assert res.ema.diverged_at.tolist() == [3, -1]  # progress 3/6 = 0.5
    assert all(math.isnan(r["bad/loss"]) for r in res.history[3:])
    assert all(math.isfinite(r["good/loss"]) for r in res.history)
    # frozen from the step it diverged: its weights are those after step 3 (the checkpoint)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 6 and ckpt["model"]["diverged_at"].tolist() == [3, -1]

    # resuming (here: extending) keeps it frozen; the summary calls it diverged
    longer = TrainConfig(**{**CFG.__dict__, "steps": 9})
    students2 = {"bad": copy.deepcopy(student), "good": copy.deepcopy(student)}
    objectives2 = {"bad": _BlowsUp(at=0.0), "good": _objective("outkd", students2["good"], teacher)}
    res2 = distill_group(
        students2, teacher, objectives2, images, longer, sched, tmp_path, progress=False
    )
    assert res2.ema.diverged_at.tolist() == [3, -1] and res2.steps_run == 3


def test_every_student_diverged_stops_the_run(tiny, tmp_path):
    profile, teacher, student, images = tiny
    students = {"a": copy.deepcopy(student)}
    with pytest.raises(TrainingDiverged):
        distill_group(
            students,
            teacher,
            {"a": _BlowsUp(at=0.0)},
            images,
            CFG,
            noise_scheduler(profile.diffusion),
            tmp_path,
            progress=False,
        )


def test_group_needs_one_objective_per_student(tiny, tmp_path):
    profile, teacher, student, images = tiny
    with pytest.raises(ValueError, match="one objective per student"):
        distill_group(
            {"a": student},
            teacher,
            {"b": _BlowsUp(1.0)},
            images,
            CFG,
            noise_scheduler(profile.diffusion),
            tmp_path,
        )
    with pytest.raises(ValueError, match="at least one"):
        KDGroup({})
    assert isinstance(KDGroup({"x.y": KDModule(student, _BlowsUp(1.0))}).member("x.y"), KDModule)


def test_one_student_snapshots_load_by_member_name(tiny, tmp_path):
    profile, teacher, student, images = tiny
    sched = noise_scheduler(profile.diffusion)
    res = distill(
        copy.deepcopy(student),
        teacher,
        build_objective("outkd"),
        images,
        CFG,
        sched,
        tmp_path,
        progress=False,
        snapshots="model",
    )
    snap = tmp_path / "snapshots" / "step_6.pt"
    loaded = load_snapshot(copy.deepcopy(student), snap)
    trained = res.model.member("outkd").student.state_dict()
    for k, v in loaded.state_dict().items():
        torch.testing.assert_close(v, trained[k])
    assert load_snapshot(copy.deepcopy(student), snap, member="outkd") is not None
    with pytest.raises(KeyError, match="no student 'lift'"):
        load_snapshot(copy.deepcopy(student), snap, member="lift")


def test_make_reads_without_the_venv(tmp_path):
    """On a fresh clone nothing is installed yet: reading the Makefile must not ask Python."""
    (tmp_path / "Makefile").write_text((REPO / "Makefile").read_text())
    done = subprocess.run(["make", "help"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "make reproduce" in done.stdout and "liftkd.stages.sweep" not in done.stderr
