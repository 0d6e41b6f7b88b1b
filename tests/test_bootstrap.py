"""The bootstrap over images: FID as torch-fidelity computes it, SEs that match the sampling
spread of independent draws, and paired differences whose SE has a closed form."""

import math

import numpy as np
import pytest

from liftkd.measure import bootstrap

D, N = 8, 400


def _reference():
    return bootstrap.Reference(mu=np.zeros(D), sigma=np.eye(D))  # the exact N(0, I)


def test_fid_equals_torch_fidelitys():
    from torch_fidelity.metric_fid import fid_statistics_to_metric

    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, D)) @ rng.normal(size=(D, D))
    b = rng.normal(size=(500, D)) + 0.3
    ref = bootstrap.Reference(b)
    mu, sigma = bootstrap.stats_of(a)
    theirs = fid_statistics_to_metric(
        {"mu": mu, "sigma": sigma}, {"mu": ref.mu, "sigma": ref.sigma}, False
    )["frechet_inception_distance"]
    assert bootstrap.fid(a, ref) == pytest.approx(theirs, rel=1e-6)
    assert bootstrap.fid(b, ref) == pytest.approx(0.0, abs=1e-8)


def test_the_bootstrap_se_matches_the_spread_of_independent_draws():
    rng = np.random.default_rng(1)
    ref = _reference()
    shift = np.full(D, 0.2)
    draws = [bootstrap.fid(rng.normal(size=(N, D)) + shift, ref) for _ in range(300)]
    true_se = float(np.std(draws, ddof=1))
    one = {"x": rng.normal(size=(N, D)) + shift}
    se = bootstrap.summary(one, ref, n_boot=300)["x"]["fid_se"]
    assert 0.75 * true_se < se < 1.33 * true_se


def test_a_paired_difference_has_the_se_of_its_closed_form():
    """b is a shifted copy of a's images (a itself off the reference by s): FID(b) - FID(a) =
    |d|^2 + 2 d . (mean(a) - 0) exactly (same covariance), whose SE is 2 |d| / sqrt(N), while each
    FID alone varies with 2 |s + d| / sqrt(N): the unpaired sqrt(SE_a^2 + SE_b^2) is far larger."""
    rng = np.random.default_rng(2)
    a = rng.normal(size=(N, D)) + np.full(D, 1.5 / math.sqrt(D))  # |s| = 1.5
    d = np.full(D, 0.5 / math.sqrt(D))  # |d| = 0.5
    out = bootstrap.summary({"a": a, "b": a + d}, _reference(), n_boot=400)
    expected = 2 * 0.5 / math.sqrt(N)
    assert out["b"]["paired_se"]["a"] == pytest.approx(expected, rel=0.15)
    assert out["a"]["paired_se"]["b"] == out["b"]["paired_se"]["a"]
    unpaired = math.hypot(out["a"]["fid_se"], out["b"]["fid_se"])
    assert out["b"]["paired_se"]["a"] < unpaired / 2


def test_unpaired_sets_are_refused():
    with pytest.raises(ValueError, match="same number of images"):
        bootstrap.replicates({"a": np.zeros((5, D)), "b": np.zeros((6, D))}, _reference())


def test_the_seed_level_view():
    v = bootstrap.seed_level([-3.0, -5.0, -4.0])
    assert v["mean"] == -4.0 and v["se"] == pytest.approx(1 / math.sqrt(3))
    assert v["t"] == pytest.approx(-4.0 * math.sqrt(3))
    assert math.isnan(bootstrap.seed_level([2.0])["se"])
