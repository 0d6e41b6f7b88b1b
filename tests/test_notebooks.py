"""The notebooks: structure, and the smoke profile run end to end through papermill."""

import json
import re
import subprocess

import nbformat
import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_and_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "PROFILE" in tagged[0].source and "RUN_DIR" in tagged[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "commit without outputs"
    )


# What the smoke profile's make reproduce measures, pinned: the smoke numbers mean nothing as
# science, but every one of them moves when the code's behaviour does (seeds, batches, noises and
# the torch thread count are fixed). A change that moves them on purpose updates them here and
# says why in its commit. FIDs to 2% (another CPU's kernels round differently), losses to 1%.
SMOKE_METRICS = {
    "teacher_fid": 0.7470,
    "teacher_loss_last_100": 0.3013,
    "main_r0.9_s0": {"nokd": 0.4492, "outkd": 0.4611, "lift+place": 0.3604},
    "06_dit": {("tinyfusion", 0): 0.3548, ("tinyfusion:kd=lift+place", 1): 0.3598},
    "07_latent": {("bksdm", 0): 0.8486, ("bksdm:kd=lift+place", 1): 0.8519},
}
FID_REL, LOSS_REL = 0.02, 0.01


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """One make reproduce on the smoke profile from an empty folder: (make command, run folder,
    figures)."""
    root = tmp_path_factory.mktemp("smoke")
    run_dir, figures = root / "run", root / "figures"
    # one torch thread per notebook on any machine: the pinned metrics depend on it
    make = ["make", "--no-print-directory", "PROFILE=smoke", "JOBS=2", "THREADS=1"]
    make += [f"RUN_DIR={run_dir}"]
    make += [f"FIGURES={figures}"]
    done = subprocess.run([*make, "reproduce"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, (
        f"make reproduce failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    )
    # the whole run's wall time closes it, beside where each stage's time is kept
    assert re.search(r"^done in \d+ min: .*timings\.txt\)$", done.stdout, re.M), done.stdout[-2000:]
    return make, run_dir, figures


@pytest.mark.slow
@pytest.mark.longest
def test_smoke_profile_end_to_end(smoke_run, tmp_path, python):
    """make reproduce on the smoke profile: every notebook, the sweep two jobs at a time; then a
    rerun does nothing, and a job whose results are missing is the only one redone; then the
    DiT and latent paths of the same run (one test, so that one worker runs both on the one
    shared run: pytest-xdist's xdist_group did not keep them together here)."""
    make, run_dir, figures = smoke_run

    fx = json.loads((figures / "00_feature_extractor.json").read_text())
    assert 0.1 < fx["results"]["extractor"]["holdout_accuracy"] <= 1.0
    assert fx["results"]["extractor"]["kind"] == "classifier"  # the digits have labels
    assert fx["results"]["floor"]["fid"] < fx["results"]["reference_points"]["uniform_noise"]["fid"]
    teacher = json.loads((figures / "01_teacher.json").read_text())
    r = teacher["results"]
    assert r["train_steps"] == 60 and r["n_samples"] == 120 and r["costs"]["params"] > 0
    assert r["teacher"]["fid"] == pytest.approx(SMOKE_METRICS["teacher_fid"], rel=FID_REL)
    loss = r["final_loss_mean_last_100"]
    assert loss == pytest.approx(SMOKE_METRICS["teacher_loss_last_100"], rel=LOSS_REL)
    assert teacher["meta"]["profile"]["name"] == "smoke"
    for png in ["00_real_images.png", "01_teacher_samples.png", "01_teacher_loss.png"]:
        assert (figures / png).stat().st_size > 1000

    # the sweep: every job, every objective, evaluated at step 0 and at each evaluation step
    jobs = ["main_r0.5_s0", "main_r0.9_s0", "ablation_r0.9_s0", "authors_r0.9_s0"]
    for job in jobs:
        res = json.loads((figures / "04_distill" / f"{job}.json").read_text())["results"]
        assert len(res["rows"]) == len(res["objectives"]) >= 1
        assert {row["status"] for row in res["rows"]} <= {
            "converged",
            "still changing",
            "undetermined",
            "does not generate",
        }
        # the final FIDs' SEs: a joint bootstrap of the job's final images, paired
        for row in res["rows"]:
            assert row["fid_se_method"] == "bootstrap" and row["fid_se"] > 0
            assert set(row["paired_se"]) == set(res["objectives"]) - {row["objective"]}
        steps = sorted({e["step"] for e in res["evals"]})
        assert steps == [0, *res["eval_steps"]]
        assert res["student_costs"]["params"] < res["teacher_params"]
        assert (figures / "04_distill" / f"{job}_samples.png").stat().st_size > 1000
    fids = json.loads((figures / "04_distill" / "main_r0.9_s0.json").read_text())["results"]
    fids = {row["objective"]: row["fid"] for row in fids["rows"]}
    assert fids == pytest.approx(SMOKE_METRICS["main_r0.9_s0"], rel=FID_REL)
    for stem in ("06_dit", "07_latent"):
        rows = json.loads((figures / f"{stem}.json").read_text())["results"]["rows"]
        got = {(row["objective"], row["seed"]): row["fid"] for row in rows}
        want = SMOKE_METRICS[stem]
        assert {k: got[k] for k in want} == pytest.approx(want, rel=FID_REL), stem
    claims = (figures / "claims.md").read_text()
    for n in range(1, 8):
        assert f"\n| {n} |" in claims
    assert (
        claims.count("**supported**")
        + claims.count("**not supported**")
        + claims.count("**inconclusive**")
        == 7
    )
    assert (figures / "05_fid_table.md").exists() and (figures / "05_fid_vs_ratio.png").exists()
    assert (figures / "05_paired_differences.png").stat().st_size > 1000
    # students of two jobs of one seed are paired by one bootstrap in notebook 05
    assert (figures / "05_cross_paired_se.json").stat().st_size > 100
    # the authors' recipe beside this scale's, a table of its own
    assert "(files: `05_authors_recipe.md`" in claims and "(authors' recipe)" in claims
    # one file of results: the verdicts, then the tables they were decided from
    assert (
        "## The tables behind the verdicts" in claims and "(files: `07_latent_table.md`" in claims
    )
    timings = (run_dir / "timings.txt").read_text()
    assert all(f"04_distill {job} (smoke)" in timings for job in jobs)
    # claim 7's two backbones ran inside make reproduce, and row 7 is decided from them
    assert "06_dit (smoke)" in timings and "07_latent (smoke)" in timings
    row7 = next(line for line in claims.splitlines() if line.startswith("| 7 |"))
    assert "DiT" in row7 and "latent" in row7

    # a trained student taken out, with its card, and sampled as a diffusers pipeline
    out = tmp_path / "exported"
    export = subprocess.run(
        [python, "-m", "liftkd.results.export", "--run-dir", str(run_dir), "--job", "main_r0.9_s0"]
        + ["--objective", "lift+place", "--out", str(out), "--profile", "smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    card = json.loads((out / "card.json").read_text())
    job_row = next(
        r
        for r in json.loads((figures / "04_distill" / "main_r0.9_s0.json").read_text())["results"][
            "rows"
        ]
        if r["objective"] == "lift+place"
    )
    assert card["FID"] == job_row["fid"] and card["pruning ratio"] == 0.9
    assert card["FID SE"] == job_row["fid_se"] > 0 and card["teacher FID, same protocol SE"] > 0
    assert f"{card['FID']:.4g} ± " in (out / "README.md").read_text()
    assert (out / "model_index.json").exists()  # diffusers' own pipeline folder
    from liftkd.results.export import load_pipeline

    images = load_pipeline(out)(batch_size=2, num_inference_steps=2, output_type="np").images
    assert images.shape == (2, 8, 8, 1)

    # nothing changed: nothing to do
    again = subprocess.run([*make, "reproduce"], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "papermill" not in again.stdout + again.stderr
    assert (run_dir / "timings.txt").read_text() == timings

    # a job that did not finish (its results missing) is the only one run again, and its
    # training and evaluations are found on disk, not redone; the README's one-job target keeps
    # what it made (make used to delete results.json as an intermediate file at the end, so the
    # job counted as unfinished and export refused it)
    results = run_dir / "distill" / "main_r0.9_s0" / "results.json"
    results.unlink()
    evals = (run_dir / "distill" / "main_r0.9_s0" / "evals.csv").read_text()
    one = subprocess.run([*make, "distill-main_r0.9_s0"], cwd=REPO, capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-4000:]
    added = (run_dir / "timings.txt").read_text()[len(timings) :]
    assert "04_distill main_r0.9_s0" in added and "main_r0.5_s0" not in added
    assert "0 steps run now" in one.stdout + one.stderr
    assert results.exists() and "rm " not in one.stdout + one.stderr
    assert (run_dir / "distill" / "main_r0.9_s0" / "evals.csv").read_text() == evals
    # make reproduce would now run notebook 05 alone (it reads the job's new results.json)
    plan = subprocess.run([*make, "-n", "reproduce"], cwd=REPO, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert set(re.findall(r"notebooks/(\w+)\.ipynb", plan.stdout)) == {"05_results"}

    # the finished sweep asked for with other settings: refused before anything runs, not
    # "up to date" (and notebook 05 then mixing the old jobs in)
    before = (run_dir / "timings.txt").read_text()
    changed = subprocess.run(
        [*make, "reproduce", "OVERRIDES={distill.steps: [40, 40]}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert changed.returncode != 0 and "train.steps: 20 -> 40" in changed.stderr, changed.stderr
    assert (run_dir / "timings.txt").read_text() == before

    # the K x coarse-term study beside the sweep: its job, then notebook 05 draws and tables it
    assert "grid_r0.9_s0" not in timings and not (figures / "05_k_grid.png").exists()
    grid = subprocess.run([*make, "grid"], cwd=REPO, capture_output=True, text=True)
    assert grid.returncode == 0, grid.stderr[-4000:]
    assert (figures / "05_k_grid.png").stat().st_size > 1000
    # its two jobs (distill.grid_jobs), and one table of both jobs' 8 students
    timings = (run_dir / "timings.txt").read_text()
    assert all(f"04_distill grid_r0.9_s0_p{k} (smoke)" in timings for k in (0, 1))
    assert (figures / "05_k_grid.md").read_text().count("| 0.9 |") == 8
    assert "(files: `05_k_grid.md`" in (figures / "claims.md").read_text()
    # the trend study: the main objectives at 70% too; claim 1 then has its three ratios
    trend = subprocess.run([*make, "trend"], cwd=REPO, capture_output=True, text=True)
    assert trend.returncode == 0, trend.stderr[-4000:]
    row1 = next(
        line
        for line in (figures / "claims.md").read_text().splitlines()
        if line.startswith("| 1 |")
    )
    assert "50% -> 90%" in row1 and "fewer than three ratios" not in row1
    assert "| 70% |" in (figures / "05_fid_table.md").read_text()

    # the paper's regime: a run of its own in run/regime (its teacher, its students cut to one
    # channel per GroupNorm group, one KD job), notebook 08, then 05 adds its verdicts; its
    # first part (notebooks 00-02) alone first, as make regime-teacher runs it
    assert "## In the paper's regime" not in (figures / "claims.md").read_text()
    first = subprocess.run([*make, "regime-teacher"], cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-4000:]
    assert (run_dir / "regime" / "02_pruning.ipynb").exists()
    assert not (run_dir / "regime" / "08_regime.ipynb").exists()
    assert "04_distill" not in (run_dir / "regime" / "timings.txt").read_text()
    reg = subprocess.run([*make, "regime"], cwd=REPO, capture_output=True, text=True)
    assert reg.returncode == 0, reg.stderr[-4000:]
    timed = (run_dir / "regime" / "timings.txt").read_text()
    assert timed.count("02_pruning (smoke)") == 1, timed  # not run again
    blob = json.loads((figures / "regime" / "08_regime.json").read_text())
    assert blob["meta"]["profile"]["distill"]["ratios"] == [0.75]
    s = blob["results"]["shares"]["student"]
    assert s["one_per_group"] > s["groupnorms"] / 2, s
    assert len(blob["results"]["table"]) == 5  # w/o KD, OutKD, OutKD+FeatKD, LIFT, LIFT+PLACE
    assert (figures / "regime" / "08_regime_paired_differences.png").stat().st_size > 1000
    claims = (figures / "claims.md").read_text()
    assert "## In the paper's regime" in claims and "\n| R3 |" in claims
    assert "(files: `regime/08_regime_table.md`" in claims
    assert "04_distill main_r0.75_s0 (smoke)" in timed

    _dit_and_latent_paths_run_alone_and_resume(smoke_run, tmp_path, python)


def _unlabelled_folder(path, n=300):
    """sklearn's 8x8 digits written as PNG files in one flat folder: no class sub-folders."""
    from PIL import Image
    from sklearn.datasets import load_digits

    path.mkdir()
    for i, img in enumerate(load_digits().images[:n]):
        Image.fromarray((img * 255 / 16).astype("uint8")).save(path / f"img_{i:04d}.png")
    return path


@pytest.mark.slow
def test_an_unlabelled_image_folder_runs_offline(tmp_path):
    """A user's folder of images without classes, through the notebooks where labels matter: the
    autoencoder's features stand in for the classifier's (00), every table's features label
    says so (``evaluation.features_label``, which 02's tables, the sweep's reference and the
    claims' header print), and the DiT is unconditional (06). The rest of the pipeline reads no
    labels; the smoke run covers it."""
    from liftkd.config import resolve_profile
    from liftkd.measure.evaluation import features_label

    images = _unlabelled_folder(tmp_path / "my_images")
    run_dir, figures = tmp_path / "run", tmp_path / "figures"
    overrides = f"{{data.name: folder, data.path: {images}}}"
    done = subprocess.run(
        ["make", "--no-print-directory", "PROFILE=smoke", "RUN_NAME=mine"]
        + [f"RUN_DIR={run_dir}", f"FIGURES={figures}", f"OVERRIDES={overrides}", "dit"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    fx = json.loads((figures / "00_feature_extractor.json").read_text())["results"]
    assert fx["extractor"]["kind"] == "autoencoder" and fx["extractor"]["holdout_mse"] < 1.0
    assert fx["floor"]["fid"] < fx["reference_points"]["uniform_noise"]["fid"]
    profile = resolve_profile("smoke", overrides)
    assert features_label(profile, run_dir) == "autoencoder features"
    # unlabelled images: the DiT path trains a one-class (unconditional) DiT
    dit = json.loads((figures / "06_dit.json").read_text())["results"]
    assert dit["student"]["classes"] == 1 and all(r["fid"] > 0 for r in dit["rows"])


def _dit_and_latent_paths_run_alone_and_resume(smoke_run, tmp_path, python):
    """The DiT and latent paths of the smoke run: both to their results (two objectives, two
    seeds each, with standard errors, versions and commit); make dit latent from an empty folder
    plans only notebooks 00, 06 and 07; a rerun of 06 finds its training and evaluations on disk;
    claim 7 reads the two results files."""
    from liftkd.results import claims
    from liftkd.runs import read_results

    make, run_dir, figures = smoke_run
    alone = ["make", "-n", "--no-print-directory", "PROFILE=smoke", f"RUN_DIR={tmp_path / 'new'}"]
    plan = subprocess.run([*alone, "dit", "latent"], cwd=REPO, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-3000:]
    notebooks = set(re.findall(r"notebooks/(\w+)\.ipynb", plan.stdout))  # 00: the FIDs' features
    assert notebooks == {"00_feature_extractor", "06_dit", "07_latent"}, plan.stdout[-3000:]
    assert not (tmp_path / "new").exists()
    results = {}
    for stem, objectives in (
        ("06_dit", {"tinyfusion", "tinyfusion:kd=lift+place"}),
        ("07_latent", {"bksdm", "bksdm:kd=lift+place"}),
    ):
        blob = json.loads((figures / f"{stem}.json").read_text())
        res = results[stem] = blob["results"]
        assert {r["objective"] for r in res["rows"]} == objectives
        assert sorted({r["seed"] for r in res["rows"]}) == [0, 1]
        assert all(r["fid_se"] > 0 and r["n_final"] == 60 for r in res["rows"])
        assert res["reference"]["teacher"]["fid"] > 0
        assert blob["meta"]["versions"]["diffusers"] and "git" in blob["meta"]
        assert blob["meta"]["profile"]["name"] == "smoke"
        for suffix in ("final_fids.png", "fid_during_kd.png", "table.md"):
            assert (figures / f"{stem}_{suffix}").stat().st_size > 100
    assert results["07_latent"]["reference"]["autoencoder_floor"]["fid"] > 0
    assert results["06_dit"]["student"]["keep"] == [0, 2]
    assert results["07_latent"]["student"]["removed"][-1] == "mid_block"

    # a student of each path taken out with its card (tests/test_export.py loads such folders
    # where liftkd is not installed)
    for stem, spec, marker in (
        ("06_dit", "tinyfusion:kd=lift+place", "transformer"),
        ("07_latent", "bksdm:kd=lift+place", "vqvae"),
    ):
        out = tmp_path / f"exported_{stem}"
        args = ["--run-dir", run_dir, "--results", figures / f"{stem}.json", "--objective", spec]
        args += ["--seed", "1", "--out", out]
        export = subprocess.run(
            [python, "-m", "liftkd.results.export", *map(str, args)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert export.returncode == 0, export.stderr[-3000:]
        card = json.loads((out / "card.json").read_text())
        row = next(r for r in results[stem]["rows"] if r["objective"] == spec and r["seed"] == 1)
        assert card["FID"] == row["fid"] and card["FID SE"] == row["fid_se"]
        assert (out / marker).is_dir() and "diffusers form" not in card

    evals = (run_dir / "dit" / "kd_s1" / "evals.csv").read_text()
    (run_dir / "06_dit.ipynb").unlink()
    redo = subprocess.run([*make, "dit"], cwd=REPO, capture_output=True, text=True)
    assert redo.returncode == 0, redo.stderr[-4000:]
    assert (run_dir / "dit" / "kd_s1" / "evals.csv").read_text() == evals
    # the shared run left up to date (notebook 05 reads 06's results again)
    assert subprocess.run([*make, "reproduce"], cwd=REPO, capture_output=True).returncode == 0

    verdict = claims.claim7(
        read_results(figures / "06_dit.json"), read_results(figures / "07_latent.json")
    )
    assert verdict["verdict"] in ("supported", "not supported", "inconclusive")
    assert "DiT" in verdict["measured"] and "latent" in verdict["measured"]
