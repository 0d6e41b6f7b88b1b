"""The claim verdicts follow their rules: each rule can come out either way on made-up rows."""

import math

from liftkd import claims, report

RATIOS = [0.5, 0.7, 0.9]


def _rows(fids: dict[str, list[float]], curves: dict | None = None, shares=None) -> list[dict]:
    """One seed's rows: fids[objective] = FID at each ratio; the curve flat unless given."""
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
                    "seed": 0,
                    "fid": fid,
                    "status": "diverged" if math.isnan(fid) else "converged",
                    "fid_curve": curve,
                    "coarse_share_curve": {0: share[0], 200: share[1]},
                    "params": int(1000 * (1 - ratio)),
                    "steps": 200,
                }
            )
    return rows


BASE = {"outkd": [10, 20, 400], "featkd": [9, 25, 600], "outkd+featkd": [11, 22, 500]}


def test_claim3_supported_when_place_is_best_and_not_when_a_baseline_wins():
    good = _rows({**BASE, "lift+place": [9.1, 19, 100], "lift": [9.5, 21, 150]})
    assert claims.claim3(good, RATIOS)["verdict"] == "supported"
    bad = _rows({**BASE, "lift+place": [12, 19, 100], "lift": [9.5, 21, 150]})
    c = claims.claim3(bad, RATIOS)
    assert c["verdict"] == "not supported" and "50%" in c["why"]


def test_claim1_sharp_degradation_rule():
    assert claims.claim1(_rows(BASE), RATIOS)["verdict"] == "supported"
    flat = {k: [v[0], v[0], v[0] * 1.2] for k, v in BASE.items()}
    assert claims.claim1(_rows(flat), RATIOS)["verdict"] == "not supported"


def test_claim4_needs_a_contrast_at_the_highest_ratio():
    fids = {**BASE, "lift+place": [9, 19, 100]}
    assert claims.claim4(_rows(fids), RATIOS)["verdict"] == "not supported"  # all stable
    wobbly = {("outkd", 0.9): {0: 5000.0, 100: 300.0, 200: 900.0}}
    assert claims.claim4(_rows(fids, wobbly), RATIOS)["verdict"] == "supported"
    still_falling = {("lift+place", 0.9): {0: 5000.0, 100: 300.0, 200: 100.0}}
    rows = _rows(fids, still_falling)
    for r in rows:
        if r["objective"] == "lift+place" and r["ratio"] == 0.9:
            r["status"] = "did not converge"
    assert claims.claim4(rows, RATIOS)["verdict"] == "inconclusive"


def test_claim5_place_and_adaptive_weight():
    fids = {
        **BASE,
        "lift+place": [9, 19, 100],
        "lift": [10, 21, 150],
        "lift+place:schedule=none": [math.nan, math.nan, 130],
    }
    rows = [r for r in _rows(fids) if not math.isnan(r["fid"]) or ":" not in r["objective"]]
    assert claims.claim5(rows, RATIOS, 0.9, 16)["verdict"] == "supported"
    fids["lift"] = [8, 15, 90]
    rows = [r for r in _rows(fids) if not math.isnan(r["fid"]) or ":" not in r["objective"]]
    assert claims.claim5(rows, RATIOS, 0.9, 16)["verdict"] == "not supported"


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


def test_same_fid_within_tolerance_or_seed_spread():
    assert claims.compare((100.0, 0.0), (104.0, 0.0)) == 0
    assert claims.compare((100.0, 0.0), (120.0, 0.0)) == -1
    assert claims.compare((100.0, 15.0), (120.0, 10.0)) == 0  # within the seeds' spread
    assert claims.compare((math.nan, 0.0), (120.0, 0.0)) == 1


def test_claims_markdown_and_table_over_seeds():
    rows = _rows({**BASE, "lift+place": [9, 19, 100], "lift": [10, 21, 150]})
    second = [{**r, "seed": 1, "fid": r["fid"] * 1.1} for r in rows]
    table = report.table(rows + second, "main")
    cell = next(t for t in table if t["objective"] == "outkd" and t["ratio"] == 0.5)
    assert cell["seeds"] == 2 and math.isclose(cell["fid"], 10.5)
    assert cell["fid_sd"] > 0
    text = claims.claims_markdown(claims.check_claims(rows, RATIOS, 0.9, 16))
    assert text.count("\n| ") == 8  # header and seven claims


def test_no_verdict_on_stability_when_nobody_generates():
    fids = {**BASE, "lift+place": [9, 19, 100]}
    c = claims.claim4(_rows(fids), RATIOS, teacher_fid=2.0)  # every FID at 90% > 20 x 2
    assert c["verdict"] == "inconclusive" and "learnt" in c["why"]
    assert claims.claim4(_rows(fids), RATIOS, teacher_fid=50.0)["verdict"] == "not supported"
