"""The summaries and tables that notebooks 02-05 show, computed by the package from saved rows."""

import json
import math

import pytest
import torch

from liftkd.config import get_profile
from liftkd.measure import bench
from liftkd.results import claims, report
from liftkd.results.plots import markdown_table
from liftkd.stages import error_study, kd_job
from liftkd.stages.students import layer_rows
from liftkd.stages.sweep import jobs, pixel


def _row(objective, ratio, fid, group="main", seed=0, label=None):
    return {
        "objective": objective,
        "label": label or objective.upper(),
        "group": group,
        "ratio": ratio,
        "seed": seed,
        "fid": fid,
        "status": "converged",
        "params": 10,
        "steps": 100,
        "fid_curve": {0: 900.0, 100: fid},
    }


ROWS = [
    _row("outkd", 0.5, 10.0),
    _row("lift+place", 0.5, 12.0, label="LIFT+PLACE (K=16)"),
    _row("outkd", 0.9, 40.0),
    _row("lift+place", 0.9, 30.0, label="LIFT+PLACE (K=16)"),
    _row("lift+place:group_size=4", 0.9, 25.0, group="ablation", label="LIFT+PLACE (K=4)"),
]


def test_mean_fid_over_seeds_and_a_diverged_seed():
    assert report.mean_fid([{"fid": 10.0}, {"fid": 14.0}]) == (12.0, pytest.approx(2.828, 1e-3))
    assert report.mean_fid([{"fid": 10.0}]) == (10.0, 0.0)
    assert all(math.isnan(v) for v in report.mean_fid([{"fid": 10.0}, {"fid": math.nan}]))


def test_fid_lines_and_the_ablation_table():
    main = report.table(ROWS, "main")
    assert report.fid_by_objective(main) == {
        "OUTKD": ([0.5, 0.9], [10.0, 40.0]),
        "LIFT+PLACE (K=16)": ([0.5, 0.9], [12.0, 30.0]),
    }
    ablation = report.ablation_table(ROWS, 0.9)
    assert [r["objective"] for r in ablation] == ["LIFT+PLACE (K=16)", "LIFT+PLACE (K=4)"]
    assert report.ratios(ROWS) == [0.5, 0.9] and report.ratios(ROWS, "ablation") == [0.9]
    assert len(report.group_rows(ROWS, "ablation")) == 1


def test_jobs_found_by_ratio_and_their_samples(tmp_path):
    found = [
        {"job": "ablation_r0.9_s0", "group": "ablation", "ratio": 0.9, "seed": 0, "labels": {}},
        {"job": "main_r0.9_s0", "group": "main", "ratio": 0.9, "seed": 0, "labels": {"a": "A"}},
        {"job": "main_r0.9_s1", "group": "main", "ratio": 0.9, "seed": 1, "labels": {"a": "A"}},
    ]
    assert report.job_at(found, 0.9)["job"] == "main_r0.9_s0"
    with pytest.raises(KeyError):
        report.job_at(found, 0.5)
    assert report.samples_at(found, tmp_path, 0.9, torch.zeros(30, 1, 4, 4)) == {}
    folder = jobs.job_dir(tmp_path, "main_r0.9_s0")
    folder.mkdir(parents=True)
    torch.save({"a": torch.ones(50, 1, 4, 4, dtype=torch.uint8)}, folder / kd_job.FINAL_SAMPLES)
    grids = report.samples_at(found, tmp_path, 0.9, torch.zeros(30, 1, 4, 4, dtype=torch.uint8))
    assert list(grids) == ["teacher", "A"] and len(grids["A"]) == 20 and len(grids["teacher"]) == 20


def test_place_overhead_is_read_by_the_label_bench_writes(tmp_path):
    assert bench.place_overhead_pct(tmp_path, 8, 4) is None
    (tmp_path / bench.OBJECTIVES_FILE).write_text(
        "size,shape,objective,share_of_kd_step_pct\n"
        f"a,32x1x8x8,{bench.place_label(4)},0.98\n"
        f"b,32x1x28x28,{bench.place_label(4)},1.50\n"
        f"c,32x1x8x8,{bench.place_label(16)},0.95\n"
    )
    assert bench.place_overhead_pct(tmp_path, 8, 4) == 0.98
    assert bench.place_overhead_pct(tmp_path, 28, 4) == 1.50
    assert bench.place_overhead_pct(tmp_path, 8, 16) == 0.95
    assert bench.place_overhead_pct(tmp_path, 16, 4) is None


def test_markdown_table_from_rows_or_named_rows():
    text = markdown_table(
        {"teacher": {"fid": 1.23456}, "floor": {"fid": 0.5}}, columns=["name", "fid"]
    )
    assert text.splitlines() == [
        "| name | fid |",
        "|---|---|",
        "| teacher | 1.235 |",
        "| floor | 0.5 |",
    ]
    assert markdown_table([{"a": 1}], title="T").startswith("# T\n\n| a |")


def test_layer_rows_keep_one_criterion_in_ratio_order():
    layer = {"name": "conv", "kind": "conv", "before": 10, "after": 5, "achieved_ratio": 0.5}
    reports = {
        ("magnitude", 0.5): {"layers": [layer]},
        ("diff-pruning", 0.5): {"layers": [layer, {**layer, "name": "up"}]},
        ("diff-pruning", 0.9): {"layers": [{**layer, "after": 1, "achieved_ratio": 0.9}]},
    }
    rows = layer_rows(reports, "diff-pruning")
    assert [(r["ratio"], r["layer"], r["after"]) for r in rows] == [
        (0.5, "conv", 5),
        (0.5, "up", 5),
        (0.9, "conv", 1),
    ]


def test_error_study_summaries():
    during = {
        0.5: {0: [{"coarse_share": 0.4, "total": 10.0}, {"coarse_share": 0.2, "total": 20.0}]},
        0.9: {
            0: [{"coarse_share": 0.1, "total": 5.0}],
            20: [{"coarse_share": 0.3, "total": 1.0}],
        },
    }
    rows = error_study.during_rows(during)
    assert rows[0] == {
        "ratio": 0.5,
        "step": 0,
        "coarse_share": pytest.approx(0.3),
        "kd_error": 15.0,
    }
    assert [(r["ratio"], r["step"]) for r in rows] == [(0.5, 0), (0.9, 0), (0.9, 20)]
    assert error_study.at_last_step(during)[0.9] == [{"coarse_share": 0.3, "total": 1.0}]
    assert error_study.final_losses({0.5: [{"loss": 3.0}, {"loss": 2.0}]}) == {0.5: {"loss": 2.0}}


def test_claims_header_names_the_setting_and_the_commit():
    profile = get_profile("smoke")
    ref = {"teacher": {"fid": 0.74}, "floor": {"fid": 0.01}, "n_samples": 100, "ddim_steps": 10}
    found = [{"reference": ref, "meta": {"git": {"commit": "6f14786cc5abcdef"}}}]
    text = claims.header(profile, found, [{"seed": 1}, {"seed": 0}])
    assert "teacher FID 0.74 on 100 samples, real-vs-real floor 0.01" in text
    assert "One sampler protocol for the teacher and every student: DDIM 10 steps" in text
    assert "KD steps 50%: 20, 90%: 20" in text and "seeds [0, 1]" in text
    assert "Commit 6f14786cc5." in text
    assert "Commit ?." in claims.header(profile, [{"reference": ref, "meta": {}}], [])
    # the aggressive ratio's size beside the paper's, and the capacity floor
    found[0].update(teacher_params=1000, reference={**ref, "recognisable": 50.0})
    rows = [{"seed": 0, "ratio": 0.9, "params": 16}, {"seed": 0, "ratio": 0.5, "params": 250}]
    floor = {
        "rows": [
            {"ratio": 0.5, "fid": 12.0, "generates": True, "steps": 10},
            {"ratio": 0.9, "fid": 900.0, "generates": False, "steps": 10},
        ],
        "highest_generating": 0.5,
    }
    found[0]["reference"].update(teacher_final={"fid": 0.81, "fid_se": 0.031}, final_samples=400)
    text = claims.header(profile, found, rows, floor)
    assert "0.74 on 100 samples, 0.81 ± 0.031 SE on 400 (the final FIDs' protocol)" in text
    assert "recognisable below 50" in text
    assert "90% leaves 16 parameters, 1.6% of the teacher's (the paper's 90% student: 1.6%)" in text
    assert "50%: FID 12, 90%: FID 900 (no images)" in text
    assert "the highest ratio that learns to generate: 50%" in text


def test_a_jobs_summary_row_per_objective():
    profile = get_profile("smoke")
    job = jobs.make_job(profile, "main", 0.5, 0, objectives=["outkd", "lift+place"])
    evals = [
        {
            "objective": o,
            "step": s,
            "fid": f,
            "fid_se": 0.5,
            "fid_final": f - 1 if s == job.eval_steps[-1] else None,
            "fid_final_se": 0.25 if s == job.eval_steps[-1] else None,
            "n_final": 120 if s == job.eval_steps[-1] else 0,
            "kid": 0.1,
            "precision": 0.5,
            "recall": 0.5,
            "coarse_share": 0.2,
            "params": 7,
        }
        for o, curve in {"outkd": [900.0, 48.5, 48.0], "lift+place": [900.0, 80.0, 40.0]}.items()
        for s, f in zip([0, *job.eval_steps], curve, strict=False)
    ]
    kd = pixel.kd_job(profile, "unused", job)
    labels = kd.labels(profile.distill.group_size)
    rows = {r["objective"]: r for r in kd_job.summarise(kd, evals, 100.0, labels)}
    # the smoke profile judges the trend of its two evaluations: 48.5 -> 48 (+- 2 x 0.71) is
    # shown within 5% of 48 (2.4); 80 -> 40 is shown moving
    assert rows["outkd"]["status"] == "converged" and rows["outkd"]["fid"] == 47.0
    assert rows["outkd"]["fid_se"] == 0.25 and rows["outkd"]["n_final"] == 120
    assert rows["lift+place"]["status"] == "still changing"
    assert kd_job.summarise(kd, evals, 45.0, labels)[0]["status"] == "does not generate"
    assert rows["lift+place"]["label"] == "LIFT+PLACE (K=4)"  # the smoke profile's K
    assert rows["outkd"]["fid_curve"] == {0: 900.0, 10: 48.5, 20: 48.0}


def test_teacher_summary_and_samples(tmp_path):
    from types import SimpleNamespace

    from liftkd.stages import teacher

    assert teacher.training_summary(None)["train_steps"] is None  # a pretrained teacher
    history = [{"loss": float(i)} for i in range(150)]
    result = SimpleNamespace(history=history, steps_run=50, resumed_from=100, seconds=3.0)
    summary = teacher.training_summary(result)
    assert summary["train_steps"] == 150 and summary["final_loss_mean_last_100"] == 99.5
    with pytest.raises(FileNotFoundError, match="notebook 01"):
        teacher.load_samples(tmp_path)
    teacher.save_samples(torch.arange(6, dtype=torch.uint8).view(6, 1, 1, 1), tmp_path)
    assert teacher.load_samples(tmp_path, 4).flatten().tolist() == [0, 1, 2, 3]


def test_load_jobs_reads_only_the_profiles_sweep(tmp_path):
    """Files of an earlier plan (another ratio), or of another profile, are left out."""
    profile = get_profile("smoke")  # main at 0.5 and 0.9, ablations at 0.9

    def write(name, group, ratio, profile_name="smoke"):
        blob = {
            "results": {"job": name, "group": group, "ratio": ratio, "rows": []},
            "meta": {"profile": json.loads(json.dumps(get_profile(profile_name).to_dict()))},
        }
        (tmp_path / f"{name}.json").write_text(json.dumps(blob))

    write("main_r0.5_s0", "main", 0.5)
    write("main_r0.5_s3", "main", 0.5)  # another seed (SEEDS=...): kept
    write("ablation_r0.9_s0", "ablation", 0.9)
    write("main_r0.7_s0", "main", 0.7)  # an earlier plan's ratio
    write("ablation_r0.5_s0", "ablation", 0.5)  # an earlier plan's ablation ratio
    write("main_r0.9_s0", "main", 0.9, profile_name="cpu")
    found = [j["job"] for j in report.load_jobs(tmp_path, profile)]
    assert found == ["ablation_r0.9_s0", "main_r0.5_s0", "main_r0.5_s3"]
    assert len(report.load_jobs(tmp_path)) == 6
    with pytest.raises(FileNotFoundError, match="run the sweep first"):
        report.load_jobs(tmp_path, get_profile("gpu"))


def test_paired_differences_are_taken_seed_by_seed(tmp_path):
    from liftkd.results.plots import paired_differences

    def row(objective, seed, fid, se):
        return {"objective": objective, "label": objective.upper(), "seed": seed, "fid": fid} | {
            "fid_se": se
        }

    rows = [row("outkd", 0, 30.0, 1.0), row("outkd", 1, 40.0, 2.0)]
    rows += [row("lift+place", 0, 25.0, 1.0), row("lift+place", 1, 43.0, 2.0)]
    rows += [row("nokd", 2, 50.0, 1.0)]  # no OutKD of seed 2: nothing to pair it with
    drawn = paired_differences(rows, "outkd", tmp_path / "paired.png", "t")
    assert [(d["objective"], d["seed"], d["difference"]) for d in drawn] == [
        ("LIFT+PLACE", "seed 0", -5.0),
        ("LIFT+PLACE", "seed 1", 3.0),
    ]
    assert drawn[1]["se"] == pytest.approx(math.hypot(2.0, 2.0))
    assert (tmp_path / "paired.png").stat().st_size > 1000
    assert paired_differences(rows, "featkd", tmp_path / "none.png", "t") is None
    one_seed = [r for r in rows if r["seed"] == 0]  # one hue level: nothing to dodge
    assert len(paired_differences(one_seed, "outkd", tmp_path / "one.png", "t")) == 1


def test_final_fids_draws_one_seed_or_several(tmp_path):
    from liftkd.results.plots import final_fids

    rows = [
        {"objective": o, "label": o, "seed": s, "fid": f}
        for o, s, f in [("a", 0, 30.0), ("b", 0, 40.0), ("a", 1, 32.0), ("b", 1, 38.0)]
    ]
    final_fids(rows, tmp_path / "two.png", "t", reference=100.0)
    final_fids([r for r in rows if r["seed"] == 0], tmp_path / "one.png", "t")
    assert (tmp_path / "two.png").stat().st_size > 1000 and (tmp_path / "one.png").exists()


def test_the_authors_recipe_is_tabled_beside_this_scales_and_never_mixed_in():
    def row(group, spec, seed, fid):
        return {
            "job": f"{group}_r0.8_s{seed}",
            "group": group,
            "ratio": 0.8,
            "seed": seed,
            "objective": spec,
            "label": {"outkd": "OutKD", "lift+place": "LIFT+PLACE (K=16)"}[spec],
            "fid": fid,
            "fid_se": 1.0,
            "status": "converged",
        }

    rows = [
        row("main", s, seed, f)
        for s, f in (("outkd", 30.0), ("lift+place", 90.0))
        for seed in (0, 1)
    ]
    rows += [row("authors", "outkd", 0, 50.0), row("authors", "outkd", 1, 54.0)]
    (line,) = report.recipe_table(rows, 0.8)  # lift+place has no authors' run here
    assert line["objective"] == "OutKD"
    assert line["this scale's recipe"] == "30 ± 0 sd (SE 1) [2 seeds]"
    assert line["difference per seed (authors - this)"] == "+20 ± 1.4, +24 ± 1.4"
    assert line["mean difference"] == "+22 ± 2 (seeds)"
    # beyond 2 SE on each seed, but the seed-level t = 22 / 2 = 11 is below 12.7 (2 seeds)
    assert line["verdict"] == "within noise or mixed"
    rows[5]["fid"] = 51.0  # +20 and +21: t = 41
    assert report.recipe_table(rows, 0.8)[0]["verdict"] == "this scale's better"
    assert report.this_recipe(rows, 0.8) == rows[:4]
    jobs = [
        {
            "job": "authors_r0.8_s0",
            "group": "authors",
            "rows": rows[4:5],
            "student_costs": {"macs": 1},
        },
        {"job": "main_r0.8_s0", "group": "main", "rows": rows[:1], "student_costs": {"macs": 1}},
    ]
    labels = [r["label"] for r in report.student_rows(jobs)]
    assert labels == ["OutKD (authors' recipe)", "OutKD"]


def test_the_grid_study_is_drawn_from_its_own_rows_and_read_by_no_claim(tmp_path):
    from liftkd.results import plots

    def row(spec, label, fid):
        base = {"group": "grid", "ratio": 0.8, "seed": 0, "objective": spec, "label": label}
        return {**base, "fid": fid, "fid_se": 1.0, "status": "converged"}

    rows = [
        row("outkd", "OutKD", 30.0),
        row("outkd:norm=l1", "OutKD (norm=l1)", 33.0),
        row("lift+place:group_size=16", "K=16", 90.0),
        row("lift+place:group_size=4", "K=4", 25.0),
        row("lift+place:group_size=4,coarse=l2", "K=4 l2", 40.0),
    ]
    grid = report.grid_lines(rows)
    assert grid["lines"]["L1"] == ([4, 16], [25.0, 90.0], [1.0, 1.0])
    assert grid["lines"]["L2"] == ([4], [40.0], [1.0])
    assert grid["controls"] == {"OutKD": (30.0, 1.0), "OutKD (norm=l1)": (33.0, 1.0)}
    plots.k_grid(grid, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").stat().st_size > 1000
    assert report.grid_lines([]) == {} and plots.k_grid({}, tmp_path / "none.png") is None
    assert report.write_grid_table([], tmp_path / "none") is None
    # no claim reads the grid's students, though they share specs with the sweep's
    assert claims._by(rows) == {}


def test_the_grid_sets_each_k_against_its_controls_with_paired_ses(tmp_path):
    def row(spec, label, fid, seed=0, job="grid_r0.8_s0_p0", paired=None):
        return {
            "group": "grid",
            "job": job,
            "ratio": 0.8,
            "seed": seed,
            "objective": spec,
            "label": label,
            "fid": fid,
            "fid_se": 3.0,
            "status": "converged",
            "steps": 3000,
            "paired_se": paired or {},
        }

    k4 = "lift+place:group_size=4"
    rows = [
        # K=4 is 5 below OutKD with a paired SE of 1 (beyond 2 SE; in quadrature, 4.2, it
        # would not be), 1 below LIFT with a paired SE of 1 (within 2 SE)
        row(k4, "K=4", 25.0, paired={"outkd": 1.0, "lift": 1.0}),
        row("outkd", "OutKD", 30.0),
        row("lift", "LIFT", 26.0),
        row("nokd", "w/o KD", 20.0),  # no control of the grid table: no column
        # the L1 OutKD in the other job of the seed: paired across jobs
        {
            **row("outkd:norm=l1", "OutKD (norm=l1)", 21.0, job="grid_r0.8_s0_p1"),
            "cross_paired_se": {f"grid_r0.8_s0_p0|{k4}": 1.5},
        },
    ]
    rows[0]["cross_paired_se"] = {"grid_r0.8_s0_p1|outkd:norm=l1": 1.5}
    table = report.grid_paired_table(rows)
    assert [line["objective"] for line in table] == ["K=4"]
    line = table[0]
    assert line["- OutKD"] == "-5 ± 1 (K better)"
    assert line["- LIFT"] == "-1 ± 1 (within noise)"
    assert line["- OutKD (norm=l1)"] == "+4 ± 1.5 (control better)"
    assert "- w/o KD" not in line
    # a second seed: beyond 2 SE on both, but t = 4.5 / 0.5 = 9 is below 12.7 (2 seeds)
    rows.append(row(k4, "K=4", 26.0, seed=1, job="grid_r0.8_s1_p0", paired={"outkd": 1.0}))
    rows.append(row("outkd", "OutKD", 30.0, seed=1, job="grid_r0.8_s1_p0"))
    assert report.grid_paired_table(rows)[0]["- OutKD"] == "-5 ± 1, -4 ± 1 (within noise)"
    text = report.write_grid_table(rows, tmp_path / "05_k_grid")
    assert "Each K against the grid's controls" in text
    assert (tmp_path / "05_k_grid_paired.md").read_text() in text
    assert (tmp_path / "05_k_grid_paired.csv").exists()


def test_students_of_two_jobs_of_one_seed_are_paired_by_one_bootstrap(tmp_path):
    """Two jobs of one seed: the same sampling noise, so one student and a shifted copy of it
    in the other job differ by the shift with a paired SE far below the SEs in quadrature."""
    import torch

    from liftkd.measure import rules
    from liftkd.runs import save_torch

    g = torch.Generator().manual_seed(0)
    base = torch.randn(400, 4, generator=g) + 1.0
    ref = {"mu": torch.zeros(4), "sigma": torch.eye(4)}
    for name, feats in (("main_r0.8_s0", {"outkd": base}), ("ablation_r0.8_s0", {"x": base + 0.1})):
        save_torch(
            {"features": feats, "reference": ref},
            tmp_path / "distill" / name / kd_job.FINAL_FEATURES,
        )
    jobs_ = [{"job": n, "ratio": 0.8, "seed": 0} for n in ("main_r0.8_s0", "ablation_r0.8_s0")]
    saved = tmp_path / "pairs.json"
    pairs = report.cross_pairs(jobs_, tmp_path, saved)
    se = pairs["main_r0.8_s0|outkd"]["ablation_r0.8_s0|x"]
    a = {"job": "main_r0.8_s0", "objective": "outkd", "seed": 0, "fid": 4.0, "fid_se": 0.2}
    b = {"job": "ablation_r0.8_s0", "objective": "x", "seed": 0, "fid": 4.9, "fid_se": 0.2}
    a, b = report.with_pairs([a, b], pairs)
    assert rules.diff_se(a, b) == se < 0.5 * math.hypot(0.2, 0.2)
    # without the run folder's features, the saved pairs are read back; without either, none
    assert report.cross_pairs(jobs_, tmp_path / "gone", saved) == pairs
    assert report.cross_pairs(jobs_, tmp_path / "gone", tmp_path / "none.json") == {}
    # a third job scored here, the first two in another run folder: their saved pair is kept
    # (not overwritten by this folder's pairs alone), and a job no longer asked for is dropped
    here = tmp_path / "here"
    for name in ("grid_r0.8_s0", "trend_r0.8_s0"):
        save_torch(
            {"features": {"y": base + 0.2}, "reference": ref},
            here / "distill" / name / kd_job.FINAL_FEATURES,
        )
    new = [{"job": n, "ratio": 0.8, "seed": 0} for n in ("grid_r0.8_s0", "trend_r0.8_s0")]
    merged = report.cross_pairs(jobs_ + new, here, saved)
    assert merged["main_r0.8_s0|outkd"]["ablation_r0.8_s0|x"] == se
    assert "trend_r0.8_s0|y" in merged["grid_r0.8_s0|y"]
    only = report.cross_pairs(jobs_[:1] + new, here, saved)
    assert (
        "ablation_r0.8_s0|x" not in only and "ablation_r0.8_s0|x" not in only["main_r0.8_s0|outkd"]
    )
