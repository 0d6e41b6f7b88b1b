"""The claim verdicts follow their rules: each rule can come out either way on made-up rows."""

import math

import pytest

from liftkd.measure import rules
from liftkd.results import claims, report

RATIOS = [0.5, 0.7, 0.9]


def _rows(fids: dict[str, list[float]], curves: dict | None = None, shares=None, se=1.0, seed=0):
    """One seed's rows: fids[objective] = FID at each ratio, each with standard error ``se``;
    the curve flat unless given."""
    rows = []
    for obj, per_ratio in fids.items():
        for ratio, fid in zip(RATIOS, per_ratio, strict=True):
            curve = (curves or {}).get((obj, ratio), {0: 5000.0, 100: fid * 1.05, 200: fid})
            share = (shares or {}).get(ratio, (0.5, 0.2))
            rows.append(
                {
                    "objective": obj,
                    "label": obj,
                    "group": "ablation" if ":" in obj else "main",
                    "ratio": ratio,
                    "seed": seed,
                    "fid": fid,
                    "fid_se": se,
                    "status": "diverged" if math.isnan(fid) else "converged",
                    "fid_curve": curve,
                    "coarse_share_curve": {0: share[0], 200: share[1]},
                    "params": int(1000 * (1 - ratio)),
                    "steps": 200,
                }
            )
    return rows


BASE = {"outkd": [10, 20, 400], "featkd": [9, 25, 600], "outkd+featkd": [11, 22, 500]}


def test_claim3_a_baseline_must_win_beyond_noise_on_every_seed_to_refute_it():
    # SE 1 on both sides: the margin is 2 * sqrt(2) = 2.83
    good = _rows({**BASE, "lift+place": [9.1, 19, 100], "lift": [9.5, 21, 150]})
    assert claims.claim3(good, RATIOS)["verdict"] == "supported"
    inside = _rows({**BASE, "lift+place": [11.8, 19, 100]})  # FeatKD 9: 2.8 ahead
    assert claims.claim3(inside, RATIOS)["verdict"] == "supported"
    beyond = _rows({**BASE, "lift+place": [11.9, 19, 100]})  # 2.9 ahead
    c = claims.claim3(beyond, RATIOS)
    assert c["verdict"] == "not supported" and "featkd at 50%" in c["why"]
    # behind beyond the noise on seed 0 but not on seed 1: within noise
    other_seed = _rows({**BASE, "lift+place": [10.5, 19, 100]}, seed=1)
    assert claims.claim3(beyond + other_seed, RATIOS)["verdict"] == "supported"


def test_claim3_leaves_out_pairs_where_neither_student_generates():
    """Beyond the noise either way, a pair of students that both fail to generate (below the
    capacity floor) neither refutes nor supports the claim."""
    dead = {"status": "does not generate"}
    rows = [
        {**r, **dead} if r["ratio"] == 0.9 else r
        for r in _rows({**BASE, "lift+place": [9.1, 19, 900]})  # 300-500 behind at 90%
    ]
    c = claims.claim3(rows, RATIOS)
    assert c["verdict"] == "supported" and "neither student generates: outkd at 90%" in c["why"]
    only_dead = [r for r in rows if r["ratio"] == 0.9]
    c = claims.claim3(only_dead, RATIOS)
    assert c["verdict"] == "inconclusive" and "no pair to compare" in c["why"]
    # LIFT+PLACE alive where the baselines are not: a comparison, LIFT+PLACE ahead
    alive = [
        {**r, "status": "converged"} if r["objective"] == "lift+place" else r for r in only_dead
    ]
    alive = [{**r, "fid": 50.0} if r["objective"] == "lift+place" else r for r in alive]
    assert claims.claim3(alive, RATIOS)["verdict"] == "supported"
    # and behind a generating baseline, refuted
    behind = [{**r, "status": "converged"} if r["objective"] == "outkd" else r for r in only_dead]
    assert claims.claim3(behind, RATIOS)["verdict"] == "not supported"


def test_claim1_compares_the_baselines_degradation_with_lift_place():
    """LIFT+PLACE 9 -> 19 -> 100 grows x11.1; a baseline is sharp at >= 1.5 x that (x16.7),
    mild at <= x11.1."""
    ours = {"lift+place": [9, 19, 100]}
    sharp = {o: [10, 20, 10 * 16.8] for o in ("outkd", "featkd", "outkd+featkd")}
    assert claims.claim1(_rows({**ours, **sharp}), RATIOS)["verdict"] == "supported"
    short = {**sharp, "featkd": [10, 20, 10 * 16.6]}  # just under 1.5x: not every baseline
    assert claims.claim1(_rows({**ours, **short}), RATIOS)["verdict"] == "inconclusive"
    mild = {**sharp, "outkd": [10, 20, 111]}  # x11.1, no worse than LIFT+PLACE's
    c = claims.claim1(_rows({**ours, **mild}), RATIOS)
    assert c["verdict"] == "not supported" and "outkd" in c["why"]
    collapsed = {**sharp, "outkd": [10, 20, math.nan]}  # a baseline that diverged: sharp
    assert claims.claim1(_rows({**ours, **collapsed}), RATIOS)["verdict"] == "supported"
    # any growth at all is not enough: BASE grows x40 but LIFT+PLACE x50
    assert claims.claim1(_rows({**BASE, "lift+place": [9, 19, 450]}), RATIOS)["verdict"] == (
        "not supported"
    )
    two = [r for r in _rows({**ours, **sharp}) if r["ratio"] != 0.7]
    c = claims.claim1(two, [0.5, 0.9])
    assert c["verdict"] == "inconclusive" and "fewer than three ratios" in c["why"]


def test_claim1_reads_the_trend_study_beside_the_sweep():
    """One sweep ratio (90%) and the trend study's two (50%, 70%): three ratios, judged."""
    rows = _rows({**BASE, "lift+place": [9, 19, 100]})
    for r in rows:
        if r["ratio"] != 0.9:
            r["group"] = "trend"
    c = claims.claim1(rows, [0.9])
    assert c["verdict"] == "supported" and "50% -> 90%" in c["measured"]  # x40-67 vs x11
    alone = [r for r in rows if r["group"] == "main"]
    c = claims.claim1(alone, [0.9])
    assert c["verdict"] == "inconclusive" and "make trend" in c["why"]
    # the trend rows are read by claim 1 only
    assert {r for (_, r) in claims._by(rows)} == {0.9}


def test_claim4_needs_a_contrast_at_the_highest_ratio():
    fids = {**BASE, "lift+place": [9, 19, 100]}
    assert claims.claim4(_rows(fids), RATIOS)["verdict"] == "not supported"  # all stable
    wobbly = {("outkd", 0.9): {0: 5000.0, 100: 300.0, 200: 900.0}}
    assert claims.claim4(_rows(fids, wobbly), RATIOS)["verdict"] == "supported"
    rows = _rows(fids)

    def set_status(obj, status):
        for r in rows:
            if r["objective"] == obj and r["ratio"] == 0.9:
                r["status"] = status

    # a baseline merely not shown flat has not failed: no contrast yet
    set_status("outkd", "still changing")
    c = claims.claim4(rows, RATIOS)
    assert c["verdict"] == "inconclusive" and "not a failure" in c["why"]
    set_status("featkd", "does not generate")  # a baseline that failed outright
    assert claims.claim4(rows, RATIOS)["verdict"] == "supported"
    set_status("featkd", "converged")
    set_status("lift+place", "undetermined")
    c = claims.claim4(rows, RATIOS)  # nobody shown to converge: the budget decides nothing
    assert c["verdict"] == "inconclusive" and "longer or less noisy run" in c["why"]
    set_status("outkd", "converged")
    c = claims.claim4(rows, RATIOS)  # every baseline converged, LIFT+PLACE was not shown to
    assert c["verdict"] == "not supported" and "every KD baseline was" in c["why"]


def test_claim5_place_and_adaptive_weight():
    fids = {
        **BASE,
        "lift+place": [9, 19, 100],
        "lift": [10, 21, 150],
        "lift+place:schedule=none": [math.nan, math.nan, 130],
    }
    rows = [r for r in _rows(fids) if not math.isnan(r["fid"]) or ":" not in r["objective"]]
    # LIFT+PLACE 9 vs LIFT 10 at 50% is within noise: PLACE's effect is mixed over ratios
    c = claims.claim5(rows, RATIOS, 0.9, 16)
    assert c["verdict"] == "inconclusive" and "within noise" in c["why"]
    fids["lift"] = [12, 22, 150]
    rows = [r for r in _rows(fids) if not math.isnan(r["fid"]) or ":" not in r["objective"]]
    assert claims.claim5(rows, RATIOS, 0.9, 16)["verdict"] == "supported"
    fids["lift"] = [8, 15, 90]
    rows = [r for r in _rows(fids) if not math.isnan(r["fid"]) or ":" not in r["objective"]]
    assert claims.claim5(rows, RATIOS, 0.9, 16)["verdict"] == "not supported"


def test_claim5_every_fixed_schedule_must_lose_to_the_adaptive_weight():
    """w = 1, linear and cosine at 90%: the adaptive weight (100) beats all three by more than
    2.83 (SE 1 each), or the claim fails on the one it does not beat."""
    fids = {**BASE, "lift+place": [9, 19, 100], "lift": [12, 22, 150]}
    for name in ("none", "linear", "cosine"):
        fids[f"lift+place:schedule={name}"] = [math.nan, math.nan, 110]

    def rows_of(f):
        return [r for r in _rows(f) if not math.isnan(r["fid"]) or ":" not in r["objective"]]

    c = claims.claim5(rows_of(fids), RATIOS, 0.9, 16)
    assert c["verdict"] == "supported"
    assert {"adaptive w beats w = 1", "adaptive w beats w linear", "adaptive w beats w cosine"} <= {
        part.split(":")[0] for part in c["why"].split("; ")
    }
    fids["lift+place:schedule=cosine"] = [math.nan, math.nan, 97.1]  # cosine 2.9 ahead
    c = claims.claim5(rows_of(fids), RATIOS, 0.9, 16)
    assert c["verdict"] == "not supported" and "adaptive w beats w cosine: worse" in c["why"]
    fids["lift+place:schedule=cosine"] = [math.nan, math.nan, 98.0]  # 2.0: within noise
    c = claims.claim5(rows_of(fids), RATIOS, 0.9, 16)
    assert c["verdict"] == "inconclusive" and "cosine: within noise" in c["why"]
    assert "diff -10" in c["measured"]  # each comparison's paired evidence is shown


def test_claim5_without_the_ablation_job_cannot_be_supported():
    """make reproduce without make ablation (the cpu profile): PLACE beating LIFT is half the
    claim; the fixed schedules are named as not trained, and a loss to LIFT still decides."""
    fids = {**BASE, "lift+place": [9, 19, 100], "lift": [12, 22, 150]}
    c = claims.claim5(_rows(fids), RATIOS, 0.9, 16)
    assert c["verdict"] == "inconclusive" and "PLACE adds to LIFT: yes" in c["why"]
    assert "make ablation" in c["why"] and "fixed schedules: not trained" in c["measured"]
    fids["lift"] = [8, 15, 90]
    c = claims.claim5(_rows(fids), RATIOS, 0.9, 16)
    assert c["verdict"] == "not supported" and "PLACE adds to LIFT: worse" in c["why"]


def test_claim3_reads_the_authors_recipe_apart():
    """The authors' recipe's students share their specs with the main job's: they are compared
    with each other, never mixed into this scale's recipe."""
    main = _rows({**BASE, "lift+place": [9.1, 19, 100]})
    theirs = [
        {**r, "group": "authors"}
        for r in _rows({"outkd": [10, 20, 90], "lift+place": [9.5, 19.5, 100]})
    ]
    c = claims.claim3(main + theirs, RATIOS)
    assert c["verdict"] == "not supported" and c["why"].endswith("outkd at 90% (authors' recipe)")
    assert "90% (authors' recipe): LIFT+PLACE 100" in c["measured"]
    fine = [{**r, "fid": r["fid"] - 20} if r["objective"] == "lift+place" else r for r in theirs]
    assert claims.claim3(main + fine, RATIOS)["verdict"] == "supported"
    # this scale's rows alone are what claim 5 and the others read
    assert all(r["group"] != "authors" for rs in claims._by(main + theirs).values() for r in rs)


def test_claim2_reports_the_teacher_free_control_beside_the_oracle():
    from liftkd.stages.error_study import OFFLINE

    assert claims.OFFLINE == OFFLINE
    rows = _rows(BASE, shares={0.5: (0.3, 0.1), 0.7: (0.4, 0.2), 0.9: (0.6, 0.3)})
    probe = [
        {"model": "50% OutKD", "sampler": "plain", "fid": 90.0},
        {"model": "50% OutKD", "sampler": "probe-corrected", "fid": 40.0},
        {"model": "50% OutKD", "sampler": OFFLINE, "fid": 95.0},
    ]
    c = claims.claim2(rows, RATIOS, probe)
    assert c["verdict"] == "supported"  # the claim is the oracle's; the control is reported
    assert "90 -> 95 (does not improve every student without the teacher)" in c["measured"]
    probe[-1]["fid"] = 80.0
    assert "(improves without the teacher)" in claims.claim2(rows, RATIOS, probe)["measured"]


def test_claim2_parts():
    rows = _rows(BASE, shares={0.5: (0.3, 0.1), 0.7: (0.4, 0.2), 0.9: (0.6, 0.3)})
    probe = [
        {"model": "50% OutKD", "sampler": "plain", "fid": 90.0},
        {"model": "50% OutKD", "sampler": "probe-corrected", "fid": 40.0},
    ]
    assert claims.claim2(rows, RATIOS, probe)["verdict"] == "supported"
    rows = _rows(BASE, shares={0.5: (0.5, 0.1), 0.7: (0.4, 0.2), 0.9: (0.3, 0.3)})
    c = claims.claim2(rows, RATIOS, probe)
    assert c["verdict"] == "not supported" and "grows with the ratio" in c["why"]
    assert "an oracle" in c["measured"]  # the correction asks the teacher: said so


def test_claim2_reads_notebook_03s_ratio_trend_where_the_sweep_has_one_ratio():
    """The review's case: a coarse share of about 0.5 at 50% but 0.07 at 80% after pruning."""
    one = [r for r in _rows(BASE, shares={0.9: (0.6, 0.3)}) if r["ratio"] == 0.9]
    probe = [
        {"model": "80% OutKD", "sampler": "plain", "fid": 900.0},
        {"model": "80% OutKD", "sampler": "probe-corrected", "fid": 200.0},
    ]
    falling = {
        "0.5": [{"coarse_share": 0.47}, {"coarse_share": 0.64}],
        "0.8": [
            {"coarse_share": 0.01},
            {"coarse_share": 0.13},
        ],
    }
    c = claims.claim2(one, [0.9], probe, after_pruning=falling)
    assert c["verdict"] == "not supported"
    assert "grows with the ratio (notebook 03, after pruning)" in c["why"]
    assert "80%: 0.07" in c["measured"] and "50%: 0.5" in c["measured"]
    rising = {"0.5": falling["0.8"], "0.8": falling["0.5"]}
    assert claims.claim2(one, [0.9], probe, after_pruning=rising)["verdict"] == "supported"


def _seed(fid, se, seed=0):
    return {"seed": seed, "fid": fid, "fid_se": se}


def test_a_win_needs_twice_the_combined_standard_error_on_every_seed():
    # SE 1 and 1: margin 2 * sqrt(2) = 2.83
    assert rules.compare([_seed(100.0, 1.0)], [_seed(102.8, 1.0)]) == 0
    assert rules.compare([_seed(100.0, 1.0)], [_seed(102.9, 1.0)]) == -1
    assert rules.compare([_seed(102.9, 1.0)], [_seed(100.0, 1.0)]) == 1
    # two seeds: a win on both is a win; a win on one only is not
    a = [_seed(100.0, 1.0, 0), _seed(100.0, 1.0, 1)]
    assert rules.compare(a, [_seed(103.0, 1.0, 0), _seed(103.0, 1.0, 1)]) == -1
    assert rules.compare(a, [_seed(103.0, 1.0, 0), _seed(101.0, 1.0, 1)]) == 0
    # a diverged seed loses
    assert rules.compare([_seed(math.nan, 0.0)], [_seed(120.0, 1.0)]) == 1
    assert rules.compare([_seed(math.nan, 0.0)], [_seed(math.nan, 0.0)]) == 0


def test_a_win_also_needs_the_seed_level_test():
    """Three seeds, each a win beyond 2 SE of its difference: the seed-level t (mean difference
    over its SE over seeds, against Student's t at 95%, 2 degrees of freedom: 4.30) decides."""
    a = [_seed(100.0, 0.5, s) for s in range(3)]
    steady = [_seed(100.0 + d, 0.5, s) for s, d in enumerate((3.0, 3.1, 3.2))]
    assert rules.compare(a, steady) == -1 and rules.compare(steady, a) == 1
    # every seed beyond 2 SE, but one seed's gap ten times the others': t = 1.34, not a win
    erratic = [_seed(100.0 + d, 0.5, s) for s, d in enumerate((3.0, 3.1, 30.0))]
    evidence = rules.comparison(a, erratic)
    assert [p["sign"] for p in evidence["per_seed"]] == [-1, -1, -1]
    assert evidence["seed_test"] == 0 and evidence["outcome"] == 0
    assert evidence["mean"] == pytest.approx(-12.0333, abs=1e-3)
    # either side of the critical value 4.30
    assert rules.seed_test([-1.0, -1.0, -1.9]) == -1  # t = 4.33
    assert rules.seed_test([-1.0, -1.0, -2.0]) == 0  # t = 4.0
    assert rules.seed_test([-1.0]) is None


def test_convergence_rule_on_each_side_of_its_thresholds():
    """The trend of the last three evaluations against 5% of the last FID (here 2.0). Three
    evenly spaced points with SE s: the change is last - first, its SE sqrt(2) s."""
    conv = rules.convergence
    tiny = [0.1] * 3  # 2 SE of the change: 0.283
    assert conv([100.0, 100.0, 100.0], tiny, 100.0) == "does not generate"
    # shown flat: |change| + 2 SE within 2.0
    assert conv([41.7, 41.0, 40.0], tiny, 100.0) == "converged"  # 1.7 + 0.283 = 1.983
    assert conv([41.75, 41.0, 40.0], tiny, 100.0) == "undetermined"  # 2.033: not shown flat
    # shown moving: |change| - 2 SE beyond 2.0
    assert conv([42.3, 41.0, 40.0], tiny, 100.0) == "still changing"  # 2.3 - 0.283 = 2.017
    assert conv([42.25, 41.0, 40.0], tiny, 100.0) == "undetermined"  # 1.967: not shown moving
    assert conv([37.7, 39.0, 40.0], tiny, 100.0) == "still changing"  # rising counts too
    # the middle point does not move a three-point line's slope; the level rule it replaced
    # called this converged (every point within 5% of the last)
    assert conv([41.5, 38.5, 40.0], tiny, 100.0) == "converged"
    # a flat curve is only shown flat when its noise allows: 2 sqrt(2) s <= 2.0 needs s <= 0.707
    assert conv([40.0, 40.0, 40.0], [0.7] * 3, 100.0) == "converged"
    assert conv([40.0, 40.0, 40.0], [0.71] * 3, 100.0) == "undetermined"
    # the review's case: LIFT (x32) seed 1, 41.0 -> 35.7 -> 34.2, was "converged" by levels
    assert conv([41.0, 35.7, 34.2], [0.9] * 3, 100.0) == "still changing"
    # the steps place the points: the same FIDs, the last evaluation far later, a gentler line
    assert conv([41.0, 40.0, 39.0], tiny, 100.0) == "undetermined"  # 2.0 +- 0.283 vs 1.95
    assert conv([41.0, 40.0, 39.0], tiny, 100.0, steps=[0, 1, 10]) == "converged"  # 1.65 +- 0.26
    assert conv([40.0, 40.0, 40.0, 41.0], [0.1] * 4, 100.0, last=4) == "converged"
    assert conv([41.0, 40.0], [0.1, 0.1], 100.0) == "too few evaluations"
    assert conv([40.0, math.nan], [0.1] * 2, 100.0) == "diverged"
    assert conv([math.nan, 40.0, 40.0, 40.0], [0.1] * 4, 100.0) == "converged"  # NaN 4th last
    assert conv([40.0, math.nan, 40.0, 40.0], [0.1] * 4, 100.0) == "undetermined"
    assert conv([], [], 100.0) == "diverged"


def test_a_saved_curve_is_judged_by_the_rule_of_today():
    row = {
        "fid_curve": {"0": 5000.0, "100": 41.0, "200": 35.7, "300": 34.2},
        "fid_se_curve": {"0": 80.0, "100": 0.9, "200": 0.9, "300": 0.9},
    }
    assert rules.curve_status(row, 1000.0, 0.05, 3) == "still changing"  # step 0 left out
    row["fid_curve"] = {"0": 5000.0, "100": 34.0, "200": 34.1, "300": 34.0}
    row["fid_se_curve"] = {"0": 80.0, "100": 0.2, "200": 0.2, "300": 0.2}
    assert rules.curve_status(row, 1000.0, 0.05, 3) == "converged"
    assert rules.curve_status(row, 30.0, 0.05, 3) == "does not generate"


def test_recognisable_threshold_is_the_blurred_images_fid():
    points = {"uniform_noise": {"fid": 9000.0}, "blurred_holdout": {"fid": 1776.0}}
    assert rules.recognisable_threshold(points) == 1776.0


def test_claims_markdown_and_table_over_seeds():
    rows = _rows({**BASE, "lift+place": [9, 19, 100], "lift": [10, 21, 150]})
    second = [{**r, "seed": 1, "fid": r["fid"] * 1.1} for r in rows]
    table = report.table(rows + second, "main")
    cell = next(t for t in table if t["objective"] == "outkd" and t["ratio"] == 0.5)
    assert cell["seeds"] == 2 and math.isclose(cell["fid"], 10.5)
    assert cell["fid_sd"] > 0 and cell["fid_se"] == 1.0
    assert report.pivot(table)[0]["outkd"] == "10.5 ± 0.71 (SE 1)"
    text = claims.claims_markdown(claims.check_claims(rows, RATIOS, 0.9, 16))
    assert text.count("\n| ") == 8  # header and seven claims


def test_no_verdict_on_stability_when_nobody_generates():
    rows = _rows({**BASE, "lift+place": [9, 19, 100]})
    for r in rows:
        if r["ratio"] == 0.9:
            r["status"] = "does not generate"
    c = claims.claim4(rows, RATIOS)
    assert c["verdict"] == "inconclusive" and "generates" in c["why"]


def test_the_difference_se_is_the_two_ses_in_quadrature():
    assert rules.diff_se({"fid_se": 3.0}, {"fid_se": 4.0}) == 5.0
    assert rules.diff_se({"fid_se": 3.0}, {}) == 3.0  # a row without an SE counts as exact
    # compare() uses it: a gap of 9.9 is inside 2 x 5, a gap of 10.1 beyond it
    assert rules.compare([_seed(10.0, 3.0)], [_seed(19.9, 4.0)]) == 0
    assert rules.compare([_seed(10.0, 3.0)], [_seed(20.1, 4.0)]) == -1


def test_the_tables_follow_the_claims_in_one_file():
    text = claims.with_tables(
        "# claims\n\n| 1 | ... |\n",
        {"05_fid_table": "# FID by ratio\n\n| a |\n|---|\n| 1 |\n", "07_latent_table": None},
    )
    assert text.startswith("# claims\n")
    assert "## The tables behind the verdicts" in text
    assert "## FID by ratio" in text and "(files: `05_fid_table.md`, `05_fid_table.csv`)" in text
    assert "07_latent_table" not in text  # a notebook that has not run adds nothing
    assert claims.with_tables("# claims\n", {"06_dit_table": None}) == "# claims\n"


def test_students_of_one_job_are_compared_on_their_paired_se():
    """A bootstrap's paired SE (same job) replaces the SEs in quadrature: a gap of 3 is inside
    2 x hypot(2, 2) = 5.7 but beyond 2 x 1.0."""
    a = {"job": "j", "objective": "a", "seed": 0, "fid": 10.0, "fid_se": 2.0}
    b = {"job": "j", "objective": "b", "seed": 0, "fid": 13.0, "fid_se": 2.0}
    assert rules.compare([a], [b]) == 0
    a["paired_se"], b["paired_se"] = {"b": 1.0}, {"a": 1.0}
    assert rules.diff_se(a, b) == 1.0 and rules.compare([a], [b]) == -1
    # students of two jobs have no paired SE: back to the bound
    assert rules.diff_se(a, {**b, "job": "other"}) == math.hypot(2.0, 2.0)


def _regime(fids: dict[str, float], seeds=(0, 1), se=1.0, status=None):
    """The regime's rows at 75%: ``fids[objective]`` on every seed (seed s adds s / 10)."""
    rows = []
    for s in seeds:
        for obj, fid in fids.items():
            f = fid + s / 10
            rows.append(
                {
                    "objective": obj,
                    "label": obj,
                    "group": "main",
                    "ratio": 0.75,
                    "seed": s,
                    "fid": f,
                    "fid_se": se,
                    "status": (status or {}).get(obj, "converged"),
                    "fid_curve": {0: 5000.0, 100: f * 1.05, 200: f},
                    "params": 100,
                    "steps": 200,
                }
            )
    return rows


def test_the_regime_judges_kd_against_no_kd_both_ways():
    """A baseline degrades in the regime when w/o KD beats it beyond 2 SE of the difference on
    every seed (SE 1 each: 2.83); collapses when it stops generating where w/o KD does not."""

    def verdict(rows, obj="outkd"):
        vs = claims.regime_verdicts(rows, 0.75, 16)
        return next(v for v in vs if v["text"].startswith(obj))["verdict"]

    base = {"nokd": 40.0, "lift": 35.0, "lift+place": 30.0}
    assert verdict(_regime({**base, "outkd": 43.0})) == "supported"  # 3.0 worse: degrades
    assert verdict(_regime({**base, "outkd": 42.5})) == "inconclusive"  # 2.5: within noise
    assert verdict(_regime({**base, "outkd": 36.0})) == "not supported"  # KD helps
    dead = _regime({**base, "outkd": 41.0}, status={"outkd": "does not generate"})
    assert verdict(dead) == "supported"
    both = _regime(
        {**base, "outkd": 30.0}, status={"outkd": "does not generate", "nokd": "does not generate"}
    )
    assert verdict(both) == "inconclusive"  # 10 better, but w/o KD does not generate either
    none = {o: "does not generate" for o in ("nokd", "outkd", "lift", "lift+place")}
    vs = claims.regime_verdicts(_regime({**base, "outkd": 41.0}, status=none), 0.75, 16)
    assert [v["verdict"] for v in vs] == ["inconclusive"] * 4
    assert "neither generates" in vs[3]["why"] and "no pair to compare" in vs[1]["why"]
    vs = claims.regime_verdicts(_regime({**base, "outkd": 43.0, "outkd+featkd": 39.0}), 0.75, 16)
    assert [v["claim"] for v in vs] == ["R", "R", "R3", "R4", "R5"]
    assert vs[1]["verdict"] == "inconclusive"  # OutKD+FeatKD 1 better than w/o KD: noise
    assert vs[2]["verdict"] == "supported"  # LIFT+PLACE beats both baselines
    assert vs[4]["verdict"] == "supported" and "PLACE adds to LIFT: yes" in vs[4]["why"]
    nobase = claims.regime_verdicts(_regime({"outkd": 43.0, "lift+place": 30.0}), 0.75, 16)
    assert nobase[0]["verdict"] == "inconclusive" and "no w/o KD" in nobase[0]["why"]


def test_the_regime_section_joins_claims_md_once_it_has_run():
    checked = claims.check_claims(_rows({**BASE, "lift+place": [9, 19, 100]}), RATIOS, 0.9, 16)
    before = claims.claims_markdown(checked, "header")
    assert "paper's regime" not in before
    verdicts = claims.regime_verdicts(_regime({"nokd": 40.0, "outkd": 43.0}), 0.75, 16)
    after = claims.claims_markdown(
        checked, "header", {"header": "the regime", "verdicts": verdicts}
    )
    assert after.startswith(before) and "## In the paper's regime" in after
    assert "| R | outkd collapses or degrades" in after and "the regime" in after
