"""FID standard errors and paired differences by a bootstrap over images, on features extracted
once.

Every student of a KD job samples image i from the same initial noise (seed + i), so the students'
FID errors are correlated and a difference between two of them is far better determined than the
two SEs in quadrature suggest. The bootstrap keeps that pairing: each replicate draws one set of
image indices (with replacement) and applies it to every student at once, so a replicate of
FID(a) - FID(b) compares the same noises. The reference (the training split) is fixed and shared:
its statistics are computed once and are not resampled (its error is common to every score and
cancels from every difference).

FID itself is the usual ``||mu - mu_r||^2 + Tr(S + S_r - 2 (S^1/2_r S S^1/2_r)^1/2)``; the trace
term is taken through the reference's symmetric square root, so each replicate costs one
symmetric eigen-decomposition (``fid_of_stats`` equals torch-fidelity's to rounding).
"""

from __future__ import annotations

import math

import numpy as np

N_BOOT = 200  # replicates: the SE's own relative error is about 1 / sqrt(2 * N_BOOT), 5%


def stats_of(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of ``(N, D)`` features, as FID takes them (unbiased covariance)."""
    f = np.asarray(features, dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


class Reference:
    """The reference set's statistics and the square root of its covariance, computed once."""

    def __init__(self, features: np.ndarray | None = None, mu=None, sigma=None):
        if features is not None:
            mu, sigma = stats_of(features)
        self.mu = np.asarray(mu, dtype=np.float64)
        self.sigma = np.asarray(sigma, dtype=np.float64)
        w, v = np.linalg.eigh(self.sigma)
        self.sqrt_sigma = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        self.trace = float(np.trace(self.sigma))


def fid_of_stats(mu: np.ndarray, sigma: np.ndarray, ref: Reference) -> float:
    """The Frechet distance between N(mu, sigma) and the reference's Gaussian."""
    inner = ref.sqrt_sigma @ sigma @ ref.sqrt_sigma
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    cross = float(np.sqrt(np.clip(eig, 0, None)).sum())
    diff = mu - ref.mu
    return float(diff @ diff + np.trace(sigma) + ref.trace - 2 * cross)


def fid(features: np.ndarray, ref: Reference) -> float:
    return fid_of_stats(*stats_of(features), ref)


def replicates(
    features: dict[str, np.ndarray], ref: Reference, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, np.ndarray]:
    """``{name: n_boot FIDs}``: replicate k of every set uses the same image indices (the sets
    must be paired image by image: the same number of images, image i from the same noise)."""
    sizes = {len(f) for f in features.values()}
    if len(sizes) != 1:
        raise ValueError(
            f"paired sets must hold the same number of images, got "
            f"{ {k: len(v) for k, v in features.items()} }"
        )
    (n,) = sizes
    if n < 2:
        raise ValueError(f"a bootstrap over {n} image(s) says nothing: give at least 2")
    rng = np.random.default_rng(seed)
    out = {name: np.empty(n_boot) for name in features}
    data = {name: np.asarray(f, dtype=np.float64) for name, f in features.items()}
    for k in range(n_boot):
        idx = rng.integers(0, n, n)
        for name, f in data.items():
            out[name][k] = fid(f[idx], ref)
    return out


def fid_se(features: np.ndarray, ref: Reference, n_boot: int = N_BOOT, seed: int = 0) -> float:
    """The bootstrap SE of one image set's FID."""
    return float(np.std(replicates({"x": features}, ref, n_boot, seed)["x"], ddof=1))


def summary(
    features: dict[str, np.ndarray], ref: Reference, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, dict]:
    """Per set: ``fid`` (on all its images), ``fid_se`` (the bootstrap SD) and ``paired_se``, the
    SE of FID(this) - FID(other) for every other set, from the same replicates."""
    reps = replicates(features, ref, n_boot, seed)
    out = {}
    for name, f in features.items():
        out[name] = {
            "fid": fid(f, ref),
            "fid_se": float(np.std(reps[name], ddof=1)),
            "paired_se": {
                other: float(np.std(reps[name] - reps[other], ddof=1))
                for other in features
                if other != name
            },
            "n_boot": n_boot,
        }
    return out


def seed_level(differences: list[float]) -> dict:
    """The seed-level view of one comparison: the mean of the per-seed differences, its SE over
    seeds (sd / sqrt(seeds); NaN with one seed) and t = mean / SE."""
    d = [x for x in differences if not math.isnan(x)]
    if not d:
        return {"mean": math.nan, "se": math.nan, "t": math.nan, "seeds": 0}
    mean = sum(d) / len(d)
    if len(d) < 2:
        return {"mean": mean, "se": math.nan, "t": math.nan, "seeds": 1}
    se = float(np.std(d, ddof=1)) / math.sqrt(len(d))
    return {"mean": mean, "se": se, "t": mean / se if se > 0 else math.inf, "seeds": len(d)}
