"""The statistical rules every verdict uses: what counts as recognisable, converged, stable and
a win. ``liftkd.results.claims`` applies them to the seven claims; the KD jobs (``liftkd.stages.kd_job``) give
each student its status by them.

- **Recognisable** (:func:`recognisable_threshold`): a student's samples count as images of the
  data when its FID is below that of the blurred held-out images (two 3x3 box blurs), one of the
  two bad generators notebook 00 scores. Above it, a student "does not generate".
- **Converged** (:func:`convergence`): recognisable, and each of the last ``last`` (3) FIDs is
  within max(``n_se`` (2) combined standard errors, ``within`` (5%) of the last FID) of the last.
- **A win** (:func:`compare`): FID ``a`` beats ``b`` only when, on every seed, ``b - a`` exceeds
  ``n_se`` (2) times the combined standard error ``sqrt(se_a^2 + se_b^2)`` of that seed's two final
  FIDs; otherwise the two are "within noise". A diverged student loses to one that did not.
- **Stable**: no evaluation raises FID by more than ``tol_curve`` (10%) over the one before, and
  the student did not diverge.
"""

from __future__ import annotations

import math
import statistics

RECOGNISABLE = "blurred_holdout"  # the reference point (notebook 00) that bounds "recognisable"
N_SE = 2.0  # a difference counts when it exceeds this many combined standard errors


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


def convergence(
    fids: list[float],
    ses: list[float],
    threshold: float,
    within: float = 0.05,
    last: int = 3,
    n_se: float = N_SE,
) -> str:
    """A run's status from its FIDs over training (and their standard errors): "diverged" (the
    last is NaN), "does not generate" (the last is not below ``threshold``), "too few evaluations",
    "converged" (each of the last ``last`` FIDs within max(n_se combined SE, within x the last)
    of the last), else "still changing"."""
    if not fids or math.isnan(fids[-1]):
        return "diverged"
    if fids[-1] >= threshold:
        return "does not generate"
    if len(fids) < last:
        return "too few evaluations"
    f_end, se_end = fids[-1], ses[-1]
    for f, se in zip(fids[-last:-1], ses[-last:-1], strict=True):
        allowed = max(n_se * math.hypot(se, se_end), within * f_end)
        if math.isnan(f) or abs(f - f_end) > allowed:
            return "still changing"
    return "converged"


def diff_se(a: dict, b: dict) -> float:
    """The standard error of FID(a) - FID(b) for two students of one seed. Students of one KD job
    with a bootstrap of their final images (``paired_se``, ``liftkd.measure.bootstrap``) get the
    paired SE: images resampled jointly, since image i of each comes from the same noise. Others
    (results from before the bootstrap, or students of two jobs) get sqrt(SE_a^2 + SE_b^2), as if
    independent: their errors are positively correlated, so this is an upper bound."""
    paired = a.get("paired_se") or {}
    if a.get("job") is not None and a.get("job") == b.get("job") and b.get("objective") in paired:
        return nan_of(paired[b["objective"]])
    return math.hypot(nan_of(a.get("fid_se", 0.0)), nan_of(b.get("fid_se", 0.0)))


def compare(a: list[dict], b: list[dict], n_se: float = N_SE) -> int:
    """-1 when ``a`` wins (lower FID than ``b`` by more than ``n_se`` standard errors of the
    difference, ``diff_se``, on every seed both have), +1 when ``b`` wins, 0 when within noise or
    mixed. A diverged (NaN) seed loses to a finite one; both diverged is a tie."""
    ra = {int(r["seed"]): r for r in a}
    rb = {int(r["seed"]): r for r in b}
    seeds = sorted(set(ra) & set(rb))
    if not seeds:
        return 0
    signs = []
    for s in seeds:
        fa, fb = nan_of(ra[s]["fid"]), nan_of(rb[s]["fid"])
        if math.isnan(fa) or math.isnan(fb):
            signs.append(0 if math.isnan(fa) and math.isnan(fb) else (1 if math.isnan(fa) else -1))
            continue
        margin = n_se * diff_se(ra[s], rb[s])
        signs.append(-1 if fb - fa > margin else (1 if fa - fb > margin else 0))
    if all(x == -1 for x in signs):
        return -1
    if all(x == 1 for x in signs):
        return 1
    return 0


def curve_pairs(curve: dict) -> list[tuple[int, float]]:
    """A {step: value} curve (keys int, or str after JSON) as sorted (step, value) pairs."""
    return sorted((int(k), float(v) if v is not None else math.nan) for k, v in curve.items())


def stable(curve: dict, tol_curve: float = 0.10) -> bool:
    """No evaluation after the first trained one raises FID by more than ``tol_curve``."""
    fids = [v for k, v in curve_pairs(curve) if k > 0]
    if not fids or any(math.isnan(f) for f in fids):
        return False
    return all(b <= a * (1 + tol_curve) for a, b in zip(fids, fids[1:], strict=False))
