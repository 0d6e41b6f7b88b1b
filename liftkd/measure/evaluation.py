"""Evaluating a generator the same way everywhere: samples, FID/KID/PR beside the floor, costs.

The reference set is always the training split. The floor is the held-out split scored against
it with the same extractor and the same number of images as a generator gets (FID is biased by
sample size), so a reader can tell what a number means: a generator at the floor is as close to
the training images as unseen real images are.

Every KD job's students are evaluated over training by ``liftkd.stages.kd_job``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from liftkd.config import Profile
from liftkd.data import ImageSet, load_splits
from liftkd.measure import bootstrap
from liftkd.measure import feature_extractor as fx
from liftkd.measure.metrics import (
    count_parameters,
    fidelity,
    latency_per_image,
    macs_per_image,
)
from liftkd.measure.metrics import fid_features as metrics_fid_features
from liftkd.runs import load_torch
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.sampling import EpsFn, ddim_sample, unet_eps

CLASSIFIER_FILE = "feature_extractor.pt"


def classifier_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / CLASSIFIER_FILE


def offline_kind(profile: Profile, train: ImageSet | None = None) -> str | None:
    """The offline extractor a profile uses ("classifier" or "autoencoder"; None: Inception).
    ``auto`` picks the classifier for labelled images, the autoencoder otherwise."""
    if profile.feature_extractor == "inception":
        return None
    if profile.feature_extractor != "auto":
        return profile.feature_extractor
    if train is None:
        train, _ = load_splits(profile.data)
    return "classifier" if train.labels is not None else "autoencoder"


def features_label(profile: Profile, run_dir: str | Path) -> str:
    """What the FIDs of a run are computed on, for every table: "classifier features",
    "autoencoder features" or "Inception features"."""
    if profile.feature_extractor == "inception":
        return "Inception features"
    path = classifier_path(run_dir)
    kind = fx.kind_of(path) if path.exists() else offline_kind(profile)
    return fx.LABELS[kind]


def get_feature_extractor(profile: Profile, run_dir: str | Path, progress: bool = True):
    """The profile's offline extractor, trained on the training split or loaded from
    ``run_dir``: (network, path, trained_now). One made with other settings, other data or of
    another kind is trained again, not reused."""
    train, _ = load_splits(profile.data)
    kind = offline_kind(profile, train)
    if kind is None:
        raise ValueError("this profile computes FID on Inception features: no extractor to train")
    path = classifier_path(run_dir)
    key = {
        "kind": kind,
        "classifier": dataclasses.asdict(profile.classifier),
        "data": dataclasses.asdict(profile.data),
    }
    if path.exists():
        blob = load_torch(
            path, "the offline feature extractor", "delete it to have it trained again"
        )
        if blob.get("key") == key:
            return fx.load_extractor(path), path, False
    if kind == "classifier":
        model = fx.train_classifier(train, profile.classifier, progress)
    else:
        model = fx.train_autoencoder(train, profile.classifier, progress)
    fx.save_extractor(model, path, key=key)
    return model, path, True


def score(
    profile: Profile, run_dir: str | Path, images: torch.Tensor, reference: ImageSet | None = None
) -> dict:
    """FID, KID, precision and recall of uint8 ``images`` against the training split."""
    if reference is None:
        reference, _ = load_splits(profile.data)
    if profile.feature_extractor == "inception":
        return fidelity(images, reference.images, "inception", profile.inception_weights)
    return fidelity(images, reference.images, "offline", classifier_path(run_dir))


def fid_features(profile: Profile, run_dir: str | Path, images: torch.Tensor):
    """``images``' FID features (a float32 ``(N, D)`` tensor) and the training split's FID
    statistics (``mu``, ``sigma``), on the profile's extractor: what ``liftkd.measure.bootstrap``
    resamples."""
    reference, _ = load_splits(profile.data)
    if profile.feature_extractor == "inception":
        args = ("inception", profile.inception_weights)
    else:
        args = ("offline", classifier_path(run_dir))
    feats, ref = metrics_fid_features(images, reference.images, *args)
    return feats.float(), {"mu": ref["mu"], "sigma": ref["sigma"]}


def fid_with_se(profile: Profile, run_dir: str | Path, images: torch.Tensor) -> dict:
    """The scores of ``images`` (FID, KID, precision, recall) and ``fid_se``, the standard error
    of their FID: the bootstrap over the images (``liftkd.measure.bootstrap``, on their features;
    the reference set is fixed and shared by every score)."""
    out = {k: v for k, v in score(profile, run_dir, images).items() if k != "kid_std"}
    feats, ref = fid_features(profile, run_dir, images)
    reference = bootstrap.Reference(mu=ref["mu"], sigma=ref["sigma"])
    out["fid_se"] = bootstrap.fid_se(feats.double().numpy(), reference)
    return out


def eval_profile(profile: Profile) -> Profile:
    """The profile with the KD sweep's evaluation sampling (fewer images and DDIM steps)."""
    cfg = profile.distill
    sampling = dataclasses.replace(
        profile.sampling, n_samples=cfg.eval_samples, num_inference_steps=cfg.eval_ddim_steps
    )
    return dataclasses.replace(profile, sampling=sampling)


def floor(profile: Profile, run_dir: str | Path, n: int | None = None) -> dict:
    """The real-vs-real floor: ``n`` held-out images (a fixed random subset; all by default)
    against the training split."""
    train, holdout = load_splits(profile.data)
    images = holdout.images if n is None else holdout.random_subset(n).images
    return score(profile, run_dir, images, train)


def sample(
    eps_fn: EpsFn | torch.nn.Module,
    profile: Profile,
    n: int | None = None,
    seed: int | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``n`` uint8 images (default: the profile's FID count) with the profile's DDIM settings."""
    s = profile.sampling
    if isinstance(eps_fn, torch.nn.Module):
        eps_fn = unet_eps(eps_fn.to(device).eval())
    shape = (profile.data.channels, profile.data.resolution, profile.data.resolution)
    return ddim_sample(
        eps_fn,
        noise_scheduler(profile.diffusion),
        n or s.n_samples,
        shape,
        num_inference_steps=s.num_inference_steps,
        eta=s.eta,
        seed=s.seed if seed is None else seed,
        batch_size=s.batch_size,
        device=device,
        progress=progress,
    )


def costs(model: torch.nn.Module, profile: Profile, latency_batch: int = 64) -> dict:
    """Parameters, MACs per forward pass, and DDIM sampling seconds per image (CPU, this host)."""
    res, ch = profile.data.resolution, profile.data.channels
    model = model.eval()

    def run(b: int) -> None:
        sample(model, profile, n=b, progress=False)

    return {
        "params": count_parameters(model),
        "macs": macs_per_image(model, res, ch),
        "latency_s_per_image": latency_per_image(run, latency_batch),
        "latency_batch": latency_batch,
        "latency_threads": torch.get_num_threads(),
        "ddim_steps": profile.sampling.num_inference_steps,
    }


def reference_points(profile: Profile, run_dir: str | Path, seed: int = 0) -> dict:
    """FID of two bad 'generators', to calibrate the scale: uniform noise, blurred held-out."""
    import torch.nn.functional as F

    train, holdout = load_splits(profile.data)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(0, 256, holdout.images.shape, generator=g, dtype=torch.uint8)
    x = holdout.images.float()
    k = torch.ones(x.shape[1], 1, 3, 3) / 9.0  # 3x3 box blur, twice
    for _ in range(2):
        x = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])
    blurred = x.round().clamp(0, 255).to(torch.uint8)
    return {
        "uniform_noise": score(profile, run_dir, noise, train),
        "blurred_holdout": score(profile, run_dir, blurred, train),
    }


def extractor_report(profile: Profile, run_dir: str | Path) -> dict:
    """Notebook 00: the offline extractor trained (or reloaded), with how well it does its own
    task (a classifier's accuracy, an autoencoder's rebuild error); empty on Inception features."""
    if profile.feature_extractor == "inception":
        return {}
    t0 = time.perf_counter()
    train, holdout = load_splits(profile.data)
    net, path, trained_now = get_feature_extractor(profile, run_dir)
    kind = offline_kind(profile, train)
    out = {"kind": kind, "features": fx.LABELS[kind]}
    if kind == "classifier":
        out.update(
            holdout_accuracy=fx.accuracy(net, holdout), train_accuracy=fx.accuracy(net, train)
        )
    else:
        out.update(
            holdout_mse=fx.reconstruction_error(net, holdout),
            train_mse=fx.reconstruction_error(net, train),
        )
    out.update(trained_now=trained_now, seconds=time.perf_counter() - t0, path=str(path))
    return out


def scale(profile: Profile, run_dir: str | Path) -> dict:
    """Notebook 00: the floor at the profile's sample count and the two bad generators."""
    t0 = time.perf_counter()
    out = {
        "floor": floor(profile, run_dir, n=profile.sampling.n_samples),
        "reference_points": reference_points(profile, run_dir),
    }
    out["metric_seconds"] = time.perf_counter() - t0
    return out


def saved_floor(profile: Profile, run_dir: str | Path, results_00: str | Path) -> dict:
    """The floor notebook 00 measured (its results file), or measured now if it is missing."""
    path = Path(results_00)
    if path.exists():
        return json.loads(path.read_text())["results"]["floor"]
    return floor(profile, run_dir, n=profile.sampling.n_samples)
