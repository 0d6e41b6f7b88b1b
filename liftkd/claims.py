"""The paper's claims (METHOD.md, 1-7) checked against the sweep's saved results, with a verdict.

Every verdict follows a rule written here, applied to measured numbers; nothing is set by hand.
Verdicts: "supported", "not supported", or "inconclusive" (with why). Two FIDs are "the same"
when they differ by less than ``tol`` (5%) of the smaller, or, with several seeds, when the gap is
within their spread; a student is "stable" when no evaluation raises its FID by more than
``tol_curve`` (10%) over the one before and it did not diverge.

Long because each of the seven claims has its own rule, thresholds and wording of the verdict;
they stay in one file so that every rule can be read, and checked, in one place.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

from liftkd.report import mean_fid

KD_BASELINES = ("outkd", "featkd", "outkd+featkd")
OURS = "lift+place"


def _by(rows: list[dict]) -> dict[tuple[str, float], list[dict]]:
    out = defaultdict(list)
    for r in rows:
        out[(r["objective"], float(r["ratio"]))].append(r)
    return out


def compare(a: tuple[float, float], b: tuple[float, float], tol: float = 0.05) -> int:
    """-1 when FID ``a`` is clearly lower (better) than ``b``, +1 when clearly higher, 0 when the
    same (within ``tol`` relative, or within the sum of the seeds' spreads). NaN is worst."""
    (ma, sa), (mb, sb) = a, b
    if math.isnan(ma) and math.isnan(mb):
        return 0
    if math.isnan(ma):
        return 1
    if math.isnan(mb):
        return -1
    gap = abs(ma - mb)
    if gap <= tol * min(ma, mb) or gap <= sa + sb:
        return 0
    return -1 if ma < mb else 1


def _curve(curve: dict) -> list[tuple[int, float]]:
    """A {step: value} curve (keys int, or str after JSON) as sorted (step, value) pairs."""
    return sorted((int(k), float(v) if v is not None else math.nan) for k, v in curve.items())


def stable(curve: dict, tol_curve: float = 0.10) -> bool:
    """No evaluation after the first trained one raises FID by more than ``tol_curve``."""
    fids = [v for k, v in _curve(curve) if k > 0]
    if not fids or any(math.isnan(f) for f in fids):
        return False
    return all(b <= a * (1 + tol_curve) for a, b in zip(fids, fids[1:], strict=False))


def _fmt(x: float) -> str:
    return "NaN" if x is None or math.isnan(x) else f"{x:.3g}"


def claim1(rows, ratios, tol_sharp: float = 2.0) -> dict:
    """Conventional KD degrades sharply (FID at the highest ratio >= tol_sharp x at the lowest,
    or diverged) as the pruning ratio grows."""
    g = _by(rows)
    lo, hi = min(ratios), max(ratios)
    parts, sharp = [], []
    for obj in [o for o in (*KD_BASELINES, OURS) if g[(o, lo)] and g[(o, hi)]]:
        f_lo, f_hi = mean_fid(g[(obj, lo)])[0], mean_fid(g[(obj, hi)])[0]
        factor = f_hi / f_lo if not math.isnan(f_hi) else math.inf
        parts.append(f"{obj}: {_fmt(f_lo)} -> {_fmt(f_hi)} (x{_fmt(factor)})")
        if obj in KD_BASELINES:
            sharp.append(factor >= tol_sharp)
    if not sharp:
        verdict, why = "inconclusive", "no KD baseline was trained at both ratios"
    elif all(sharp):
        verdict, why = "supported", f"every KD baseline's FID grew >= {tol_sharp:g}x"
    elif not any(sharp):
        verdict, why = "not supported", f"no KD baseline's FID grew {tol_sharp:g}x"
    else:
        verdict, why = "inconclusive", "some KD baselines degraded sharply, others did not"
    return {
        "claim": 1,
        "text": "Conventional KD degrades sharply, or collapses, as the pruning ratio grows",
        "measured": f"FID at {lo:.0%} -> {hi:.0%}: " + "; ".join(parts),
        "verdict": verdict,
        "why": why,
    }


def claim2(rows, ratios, probe_corrected: list[dict] | None, large: float = 0.25) -> dict:
    """The probe explains a large share (>= ``large``) of the KD error, more so early in training
    and under aggressive pruning; probe-corrected sampling improves a student."""
    g = _by(rows)
    start, end = {}, {}
    for r in ratios:
        curves = [_curve(row["coarse_share_curve"]) for row in g[("outkd", r)]]
        if curves:
            start[r] = statistics.fmean(c[0][1] for c in curves)
            end[r] = statistics.fmean(c[-1][1] for c in curves)
    checks = {
        "large share after pruning": all(v >= large for v in start.values()),
        "falls over training": all(end[r] < start[r] for r in start),
        "grows with the ratio (after pruning)": all(
            start[a] <= start[b] for a, b in zip(sorted(start), sorted(start)[1:], strict=False)
        ),
    }
    measured = "OutKD coarse share, after pruning -> after training: " + "; ".join(
        f"{r:.0%}: {start[r]:.2f} -> {end[r]:.2f}" for r in sorted(start)
    )
    if probe_corrected:
        tuned = [
            (p, c)
            for p in probe_corrected
            if p.get("sampler") == "plain" and "pruned" not in p["model"]
            for c in probe_corrected
            if c.get("sampler") == "probe-corrected" and c["model"] == p["model"]
        ]
        checks["probe correction improves fine-tuned students"] = bool(tuned) and all(
            c["fid"] < p["fid"] for p, c in tuned
        )
        measured += "; probe-corrected FID (notebook 03): " + "; ".join(
            f"{p['model']}: {_fmt(p['fid'])} -> {_fmt(c['fid'])}" for p, c in tuned
        )
    held = [k for k, v in checks.items() if v]
    failed = [k for k, v in checks.items() if not v]
    if not failed:
        verdict, why = "supported", "all parts hold: " + ", ".join(held)
    elif not checks["large share after pruning"]:
        verdict, why = (
            "not supported",
            f"the coarse share is below {large:g} at some ratio; " + _held_failed(held, failed),
        )
    else:
        verdict, why = "not supported", "as stated (every part): " + _held_failed(held, failed)
    return {
        "claim": 2,
        "text": "A two-coefficient probe explains a large share of the KD error, more so early "
        "and under aggressive pruning; probe-corrected sampling improves a student",
        "measured": measured,
        "verdict": verdict,
        "why": why,
    }


def _held_failed(held, failed) -> str:
    return f"holds: {', '.join(held) or 'none'}; fails: {', '.join(failed)}"


def claim3(rows, ratios, tol: float = 0.05) -> dict:
    g = _by(rows)
    worse, parts = [], []
    for r in sorted(ratios):
        present = [o for o in KD_BASELINES if g[(o, r)]]
        if not g[(OURS, r)] or not present:
            continue
        ours = mean_fid(g[(OURS, r)])
        best = min(present, key=lambda o: _nan_last(mean_fid(g[(o, r)])[0]))
        c = compare(ours, mean_fid(g[(best, r)]), tol)
        parts.append(
            f"{r:.0%}: LIFT+PLACE {_fmt(ours[0])} vs best KD baseline {best} "
            f"{_fmt(mean_fid(g[(best, r)])[0])}"
        )
        if c > 0:
            worse.append(f"{r:.0%}")
    if not parts:
        return {
            "claim": 3,
            "text": "LIFT+PLACE is at least as good as every KD baseline at every pruning ratio",
            "measured": "LIFT+PLACE and a KD baseline were not both trained at any ratio",
            "verdict": "inconclusive",
            "why": "not run",
        }
    verdict = "supported" if not worse else "not supported"
    why = (
        f"at every ratio LIFT+PLACE is better than or within {tol:.0%} of the best KD baseline"
        if not worse
        else f"a KD baseline is clearly better at {', '.join(worse)}"
    )
    return {
        "claim": 3,
        "text": "LIFT+PLACE is at least as good as every KD baseline at every pruning ratio",
        "measured": "; ".join(parts),
        "verdict": verdict,
        "why": why,
    }


def _nan_last(x: float) -> float:
    return math.inf if math.isnan(x) else x


def claim4(
    rows, ratios, tol_curve: float = 0.10, teacher_fid: float | None = None, collapse: float = 20.0
) -> dict:
    """Stable convergence at the highest ratio. A student whose final FID is above ``collapse``
    times the teacher's has not learnt to generate; when every student there is so, stability
    says nothing and the verdict is inconclusive."""
    g = _by(rows)
    hi = max(ratios)

    def state(obj):
        rs = g[(obj, hi)]
        if not rs:
            return None
        ok = all(stable(r["fid_curve"], tol_curve) for r in rs)
        statuses = sorted({r["status"] for r in rs})
        return ok, statuses

    ours = state(OURS)
    base = {o: state(o) for o in KD_BASELINES if state(o) is not None}
    measured = "; ".join(
        f"{o}: {'stable' if s[0] else 'unstable'}, {'/'.join(s[1])}"
        for o, s in [(OURS, ours), *base.items()]
        if s is not None
    )
    unstable_base = [o for o, s in base.items() if not s[0] or s[1] != ["converged"]]
    finals = [mean_fid(g[(o, hi)])[0] for o in (OURS, *base)]
    collapsed = teacher_fid is not None and all(
        math.isnan(f) or f > collapse * teacher_fid for f in finals
    )
    if collapsed:
        measured += f"; every final FID > {collapse:g}x the teacher's ({_fmt(teacher_fid)})"
    if ours is None:
        verdict, why = "inconclusive", "no LIFT+PLACE run at the highest ratio"
    elif collapsed:
        verdict, why = (
            "inconclusive",
            f"no student at {hi:.0%} learnt to generate in this run (FID above {collapse:g}x "
            "the teacher's); flat curves at that level say nothing about stability",
        )
    elif not ours[0] or "diverged" in ours[1]:
        verdict, why = "not supported", "LIFT+PLACE's own curve was unstable or diverged"
    elif ours[1] != ["converged"]:
        verdict, why = (
            "inconclusive",
            "LIFT+PLACE was stable but its FID was still changing by more than "
            f"{tol_curve:.0%} at the end: a longer run is needed",
        )
    elif not unstable_base:
        verdict, why = "not supported", "every KD baseline also converged stably at this scale"
    else:
        verdict, why = (
            "supported",
            f"LIFT+PLACE converged stably; not so: {', '.join(unstable_base)}",
        )
    return {
        "claim": 4,
        "text": f"At the most aggressive ratio ({hi:.0%}) LIFT+PLACE converges stably where the "
        "baselines do not",
        "measured": measured,
        "verdict": verdict,
        "why": why,
    }


def claim5(
    rows,
    ratios,
    ablation_ratio: float,
    group_size: int,
    tol: float = 0.05,
    teacher_fid: float | None = None,
    collapse: float = 20.0,
) -> dict:
    """PLACE against LIFT at every ratio, the adaptive weight against w = 1 at the ablation ratio.
    Comparisons between students that both have FID above ``collapse`` x the teacher's (neither
    generates) are left out."""
    g = _by(rows)

    def alive(*fids: float) -> bool:
        return teacher_fid is None or any(f <= collapse * teacher_fid for f in fids)

    ours_spec = OURS
    parts, checks = [], {}
    both = [
        r
        for r in sorted(ratios)
        if g[(ours_spec, r)]
        and g[("lift", r)]
        and alive(mean_fid(g[(ours_spec, r)])[0], mean_fid(g[("lift", r)])[0])
    ]
    place_vs_lift = [
        compare(mean_fid(g[(ours_spec, r)]), mean_fid(g[("lift", r)]), tol) for r in both
    ]
    parts.append(
        "LIFT+PLACE vs LIFT: "
        + "; ".join(
            f"{r:.0%}: {_fmt(mean_fid(g[(ours_spec, r)])[0])} vs {_fmt(mean_fid(g[('lift', r)])[0])}"
            for r in sorted(ratios)
            if g[(ours_spec, r)] and g[("lift", r)]
        )
    )
    if both:
        checks["PLACE adds to LIFT"] = _direction(place_vs_lift)
    fixed = "lift+place:schedule=none"
    if g[(fixed, ablation_ratio)]:
        c = compare(
            mean_fid(g[(ours_spec, ablation_ratio)]), mean_fid(g[(fixed, ablation_ratio)]), tol
        )
        pair = (
            mean_fid(g[(ours_spec, ablation_ratio)])[0],
            mean_fid(g[(fixed, ablation_ratio)])[0],
        )
        checks["adaptive w beats w = 1"] = (
            _direction([c]) if alive(*pair) else "not comparable (neither student generates)"
        )
        parts.append(
            f"adaptive w vs w=1 at {ablation_ratio:.0%}: "
            f"{_fmt(mean_fid(g[(ours_spec, ablation_ratio)])[0])} vs {_fmt(mean_fid(g[(fixed, ablation_ratio)])[0])}"
        )
    others = sorted(
        {o for o, r in g if r == ablation_ratio and o.startswith("lift+place:") and o != fixed}
    )
    if others:
        parts.append(
            f"other ablations at {ablation_ratio:.0%} (K={group_size} default): "
            + "; ".join(
                f"{o.split(':', 1)[1]}: {_fmt(mean_fid(g[(o, ablation_ratio)])[0])}" for o in others
            )
        )
    values = list(checks.values())
    if not values:
        verdict, why = "inconclusive", "neither LIFT nor the fixed-weight ablation was compared"
    elif all(v == "better" for v in values):
        verdict, why = "supported", "; ".join(f"{k}: yes" for k in checks)
    elif any(v == "worse" for v in values):
        verdict, why = "not supported", "; ".join(f"{k}: {v}" for k, v in checks.items())
    else:
        verdict, why = (
            "inconclusive",
            "; ".join(f"{k}: {v}" for k, v in checks.items())
            + (f" (differences within {tol:.0%} count as the same)"),
        )
    return {
        "claim": 5,
        "text": "PLACE adds to LIFT; the adaptive weight beats a fixed schedule (ablations)",
        "measured": " | ".join(parts),
        "verdict": verdict,
        "why": why,
    }


def _direction(cs: list[int]) -> str:
    if all(c < 0 for c in cs):
        return "better"
    if any(c > 0 for c in cs):
        return "worse"
    return "the same or mixed"


def claim6(rows, place_overhead_pct: float | None) -> dict:
    by_ratio = defaultdict(set)
    for r in rows:
        if r.get("params") is not None:
            by_ratio[float(r["ratio"])].add(int(r["params"]))
    same = all(len(v) == 1 for v in by_ratio.values()) and bool(by_ratio)
    measured = "student parameters per ratio, over every objective: " + "; ".join(
        f"{r:.0%}: {sorted(v)}" for r, v in sorted(by_ratio.items())
    )
    if place_overhead_pct is not None:
        measured += f"; PLACE's loss: {place_overhead_pct:.2f}% of a KD step (training only)"
    return {
        "claim": 6,
        "text": "No extra parameters or inference cost",
        "measured": measured,
        "verdict": "supported" if same else "not supported",
        "why": "every trained student of a ratio has the same parameters (same architecture, same "
        "sampling cost); the adapters and coefficients exist only during training"
        if same
        else "students of one ratio differ in size",
    }


def claim7() -> dict:
    return {
        "claim": 7,
        "text": "It holds for pixel and latent space, U-Net and DiT",
        "measured": "only a pixel-space U-Net is distilled in this profile",
        "verdict": "inconclusive",
        "why": "not tested here: no latent-space or DiT teacher is trained in these profiles",
    }


def check_claims(
    rows: list[dict],
    ratios: list[float],
    ablation_ratio: float,
    group_size: int,
    probe_corrected: list[dict] | None = None,
    place_overhead_pct: float | None = None,
    teacher_fid: float | None = None,
) -> list[dict]:
    """Claims 1-7 with measured numbers and verdicts, from the sweep's per-student rows."""
    return [
        claim1(rows, ratios),
        claim2(rows, ratios, probe_corrected),
        claim3(rows, ratios),
        claim4(rows, ratios, teacher_fid=teacher_fid),
        claim5(rows, ratios, ablation_ratio, group_size, teacher_fid=teacher_fid),
        claim6(rows, place_overhead_pct),
        claim7(),
    ]


def claims_markdown(claims: list[dict], header: str = "") -> str:
    lines = ["# The paper's claims at this scale", ""]
    if header:
        lines += [header, ""]
    lines += ["| # | claim | measured | verdict | why |", "|---|---|---|---|---|"]
    for c in claims:
        cells = [str(c["claim"]), c["text"], c["measured"], f"**{c['verdict']}**", c["why"]]
        lines.append("| " + " | ".join(x.replace("|", "/") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def header(profile, jobs: list[dict], rows: list[dict]) -> str:
    """The line above the claims table: the setting, the scale (teacher and floor), the seeds and
    the commit the numbers came from."""
    ref = jobs[0]["reference"]
    d, res = profile.distill, profile.data.resolution
    steps = ", ".join(f"{r:.0%}: {s}" for r, s in zip(d.ratios, d.steps, strict=True))
    commit = jobs[0]["meta"].get("git", {}).get("commit") or "?"
    return (
        f"Profile `{profile.name}`: {profile.data.name} at {res}x{res}, "
        f"teacher FID {ref['teacher']['fid']:.2f}, real-vs-real floor {ref['floor']['fid']:.2f} "
        f"({ref.get('features', 'classifier features')}, {ref['n_samples']} samples, "
        f"{ref['ddim_steps']} DDIM steps); "
        f"KD steps {steps}, batch {d.train.batch_size}, seeds {sorted({r['seed'] for r in rows})}. "
        f"Commit {commit[:10]}. Written by notebook 05 from the saved results; rules in "
        "liftkd/claims.py."
    )
