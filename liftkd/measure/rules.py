"""The statistical rules every verdict uses: what counts as recognisable, converged, stable and
a win. ``liftkd.results.claims`` applies them to the seven claims; the KD jobs (``liftkd.stages.kd_job``) give
each student its status by them.

- **Recognisable** (:func:`recognisable_threshold`): a student's samples count as images of the
  data when its FID is below that of the blurred held-out images (two 3x3 box blurs), one of the
  two bad generators notebook 00 scores. Above it, a student "does not generate".
- **Converged** (:func:`convergence`): recognisable, and the trend of the last ``last`` (3) FIDs
  (a weighted line through them, :func:`trend`) is shown flat: the change it implies over those
  evaluations stays within ``within`` (5%) of the last FID even at ``n_se`` (2) standard errors.
  "Still changing" when the change is beyond that tolerance even at ``n_se`` SEs; "undetermined"
  when the noise is too large to tell.
- **A win** (:func:`compare`): FID ``a`` beats ``b`` only when, on every seed, ``b - a`` exceeds
  ``n_se`` (2) standard errors of the difference (:func:`diff_se`: the bootstrap's paired SE for
  two students of one job, else ``sqrt(se_a^2 + se_b^2)``, an upper bound), and, with two seeds
  or more, the seed-level test agrees (:func:`seed_test`: the mean per-seed difference against
  its SE over seeds, Student's t at 95%, two-sided); otherwise the two are "within noise". A
  diverged student loses to one that did not.
- **Stable**: no evaluation raises FID by more than ``tol_curve`` (10%) over the one before, and
  the student did not diverge.
"""

from __future__ import annotations

import math
import statistics

RECOGNISABLE = "blurred_holdout"  # the reference point (notebook 00) that bounds "recognisable"
N_SE = 2.0  # a difference, or a trend, counts when it exceeds this many standard errors


def recognisable_threshold(reference_points: dict) -> float:
    """The FID below which samples count as recognisable: the blurred held-out images' FID
    (``liftkd.measure.evaluation.reference_points``)."""
    return float(reference_points[RECOGNISABLE]["fid"])


def nan_of(x) -> float:
    return float(x) if x is not None else math.nan


def mean_fid(rows: list[dict]) -> tuple[float, float]:
    """(mean, standard deviation) over seeds; NaN (a diverged seed) makes the mean NaN."""
    fids = [nan_of(r["fid"]) for r in rows]
    if not fids:
        return math.nan, math.nan
    if any(math.isnan(f) for f in fids):
        return math.nan, math.nan
    return statistics.fmean(fids), statistics.stdev(fids) if len(fids) > 1 else 0.0


def trend(steps: list[float], fids: list[float], ses: list[float]) -> tuple[float, float]:
    """The FID change over ``steps`` that a straight line through the evaluations implies, and
    its standard error: weighted least squares with weights 1 / SE^2 (each point's own sampling
    error), change = slope x (last step - first step), SE = span / sqrt(sum w (x - mean_w x)^2)."""
    w = [1.0 / max(se, 1e-9) ** 2 for se in ses]
    sw = sum(w)
    x_bar = sum(wi * x for wi, x in zip(w, steps, strict=True)) / sw
    sxx = sum(wi * (x - x_bar) ** 2 for wi, x in zip(w, steps, strict=True))
    if sxx <= 0:
        return math.nan, math.nan
    slope = sum(wi * (x - x_bar) * y for wi, x, y in zip(w, steps, fids, strict=True)) / sxx
    span = steps[-1] - steps[0]
    return slope * span, span / math.sqrt(sxx)


def convergence(
    fids: list[float],
    ses: list[float],
    threshold: float,
    within: float = 0.05,
    last: int = 3,
    n_se: float = N_SE,
    steps: list[float] | None = None,
) -> str:
    """A run's status from its FIDs over training, their standard errors and their ``steps``
    (default: evenly spaced). "diverged" (the last is NaN), "does not generate" (the last is not
    below ``threshold``), "too few evaluations", else the trend of the last ``last`` evaluations
    (``trend``) against a tolerance of ``within`` x the last FID: "converged" when the change the
    trend implies is inside the tolerance even at ``n_se`` SEs (shown flat), "still changing"
    when it is beyond the tolerance even at ``n_se`` SEs (shown moving), "undetermined" when its
    noise is too large to tell either."""
    if not fids or math.isnan(fids[-1]):
        return "diverged"
    if fids[-1] >= threshold:
        return "does not generate"
    if len(fids) < last:
        return "too few evaluations"
    xs = list(range(len(fids))) if steps is None else list(steps)
    window = slice(len(fids) - last, None)
    f, se, x = fids[window], [nan_of(s) for s in ses[window]], xs[window]
    if any(math.isnan(v) for v in f + se):
        return "undetermined"
    change, change_se = trend(x, f, se)
    tol = within * fids[-1]
    if abs(change) - n_se * change_se > tol:
        return "still changing"
    if abs(change) + n_se * change_se <= tol:
        return "converged"
    return "undetermined"


def curve_status(row: dict, threshold: float, within: float, last: int) -> str:
    """``convergence`` of a results row's curve (``fid_curve``, ``fid_se_curve``: the trained
    evaluations, step 0, the pruned student, left out): the rule applied to what was measured,
    so that results saved under an older rule are judged by today's."""
    se_curve = dict(curve_pairs(row.get("fid_se_curve") or {}))
    pairs = [(k, v) for k, v in curve_pairs(row["fid_curve"]) if k > 0]
    return convergence(
        [v for _, v in pairs],
        [se_curve.get(k, math.nan) for k, _ in pairs],
        threshold,
        within,
        last,
        steps=[k for k, _ in pairs],
    )


def diff_se(a: dict, b: dict) -> float:
    """The standard error of FID(a) - FID(b) for two students of one seed. Students of one KD job
    with a bootstrap of their final images (``paired_se``, ``liftkd.measure.bootstrap``) get the
    paired SE: images resampled jointly, since image i of each comes from the same noise; so do
    students of two jobs of one seed once notebook 05 has bootstrapped them together
    (``cross_paired_se``, ``liftkd.results.report.cross_pairs``). Others (results from before the
    bootstrap, or without the run folder's features) get sqrt(SE_a^2 + SE_b^2), as if
    independent: their errors are positively correlated, so this is an upper bound."""
    paired = a.get("paired_se") or {}
    if a.get("job") is not None and a.get("job") == b.get("job") and b.get("objective") in paired:
        return nan_of(paired[b["objective"]])
    across = a.get("cross_paired_se") or {}  # two jobs of one seed: image i from the same noise
    if f"{b.get('job')}|{b.get('objective')}" in across:
        return nan_of(across[f"{b['job']}|{b['objective']}"])
    return math.hypot(nan_of(a.get("fid_se", 0.0)), nan_of(b.get("fid_se", 0.0)))


T_LEVEL = 0.05  # the seed-level test's two-sided level


def seed_test(differences: list[float], level: float = T_LEVEL) -> int | None:
    """The seed-level test of per-seed differences FID(a) - FID(b): -1 when their mean is below
    0 beyond Student's t critical value (n - 1 degrees of freedom, two-sided ``level``) times its
    SE over seeds, +1 when above, 0 when not; None with fewer than two seeds (no spread to test
    against)."""
    from scipy.stats import t as student_t  # scipy comes with scikit-learn and torch-fidelity

    d = [x for x in differences if not math.isnan(x)]
    if len(d) < 2:
        return None
    mean = statistics.fmean(d)
    se = statistics.stdev(d) / math.sqrt(len(d))
    critical = float(student_t.ppf(1 - level / 2, len(d) - 1))
    if se == 0:
        return 0 if mean == 0 else (-1 if mean < 0 else 1)
    if mean / se < -critical:
        return -1
    if mean / se > critical:
        return 1
    return 0


def comparison(a: list[dict], b: list[dict], n_se: float = N_SE) -> dict:
    """``compare``'s evidence: per seed both have, the difference FID(a) - FID(b), its SE
    (``diff_se``) and sign (-1: a better beyond ``n_se`` SE, +1: b better, 0: within); the
    seed-level mean, SE and test (``seed_test``; None with one seed) of the finite differences;
    and ``outcome``: -1 when every seed and the seed-level test say a, +1 when they say b, else 0.
    A diverged (NaN) seed loses to a finite one; both diverged is a tie."""
    ra = {int(r["seed"]): r for r in a}
    rb = {int(r["seed"]): r for r in b}
    seeds = sorted(set(ra) & set(rb))
    per_seed = []
    for s in seeds:
        fa, fb = nan_of(ra[s]["fid"]), nan_of(rb[s]["fid"])
        if math.isnan(fa) or math.isnan(fb):
            sign = 0 if math.isnan(fa) and math.isnan(fb) else (1 if math.isnan(fa) else -1)
            per_seed.append({"seed": s, "diff": math.nan, "se": math.nan, "sign": sign})
            continue
        se = diff_se(ra[s], rb[s])
        margin = n_se * se
        sign = -1 if fb - fa > margin else (1 if fa - fb > margin else 0)
        per_seed.append({"seed": s, "diff": fa - fb, "se": se, "sign": sign})
    diffs = [p["diff"] for p in per_seed if not math.isnan(p["diff"])]
    level = seed_test(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    spread = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.nan
    signs = [p["sign"] for p in per_seed]
    outcome = 0
    for side in (-1, 1):
        if signs and all(x == side for x in signs) and level in (None, side):
            outcome = side
    return {
        "per_seed": per_seed,
        "mean": mean,
        "seed_se": spread,
        "seed_test": level,
        "seeds": len(seeds),
        "outcome": outcome,
    }


def compare(a: list[dict], b: list[dict], n_se: float = N_SE) -> int:
    """-1 when ``a`` wins (lower FID than ``b`` by more than ``n_se`` standard errors of the
    difference, ``diff_se``, on every seed both have, and by the seed-level test with two seeds
    or more), +1 when ``b`` wins, 0 when within noise or mixed (``comparison`` has the evidence).
    A diverged (NaN) seed loses to a finite one; both diverged is a tie."""
    return comparison(a, b, n_se)["outcome"]


def curve_pairs(curve: dict) -> list[tuple[int, float]]:
    """A {step: value} curve (keys int, or str after JSON) as sorted (step, value) pairs."""
    return sorted((int(k), float(v) if v is not None else math.nan) for k, v in curve.items())


def stable(curve: dict, tol_curve: float = 0.10) -> bool:
    """No evaluation after the first trained one raises FID by more than ``tol_curve``."""
    fids = [v for k, v in curve_pairs(curve) if k > 0]
    if not fids or any(math.isnan(f) for f in fids):
        return False
    return all(b <= a * (1 + tol_curve) for a, b in zip(fids, fids[1:], strict=False))


def restatus(rows: list[dict], threshold: float, within: float, last: int) -> list[dict]:
    """The rows with each status judged again from its curve by today's convergence rule
    (``rules.curve_status``): the rule, not the code that wrote the file, decides. A diverged
    student stays diverged."""
    return [
        r
        if r.get("status") == "diverged"
        else {**r, "status": curve_status(r, threshold, within, last)}
        for r in rows
    ]
