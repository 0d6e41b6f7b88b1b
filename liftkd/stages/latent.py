"""The latent path: an autoencoder, a latent U-Net teacher on its latents, and a BK-SDM student,
for notebook 07.

- **Autoencoder.** A small diffusers ``AutoencoderKL`` trained here on the training split
  (reconstruction MSE plus a small KL term, as Stable Diffusion's), or any trained
  ``AutoencoderKL`` folder (``latent.autoencoder.pretrained``). Latents are the posterior means
  times a scale that gives the training latents unit standard deviation (Stable Diffusion's
  ``scaling_factor``, measured here rather than assumed).
- **Its floor.** Held-out images encoded and decoded, scored as samples are: no latent model can
  score better than its autoencoder lets it.
- **Teacher and student.** A ``UNet2DModel`` trained on the latents with the denoising loss; the
  student is the teacher with BK-SDM's blocks removed (``liftkd.models.block_removal``), and
  with ``latent.width_ratio`` its channels cut as the pixel students' are.
- **Samples** are drawn in latent space by DDIM (not clamped) and decoded to uint8 images.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DModel

from liftkd.config import AutoencoderConfig, Profile
from liftkd.data import load_splits, to_model_range, to_uint8
from liftkd.models.block_removal import bk_sdm_plan, remove_blocks
from liftkd.models.presets import build_unet
from liftkd.models.pruning import prune
from liftkd.stages.teacher import denoising_loss
from liftkd.training.diffusion import noise_scheduler
from liftkd.training.sampling import ddim_sample, unet_eps
from liftkd.training.train import TrainResult, train

LATENT_DIR = "latent"


def build_autoencoder(cfg: AutoencoderConfig, resolution: int, channels: int) -> AutoencoderKL:
    levels = len(cfg.block_out_channels)
    if resolution % 2 ** (levels - 1):
        raise ValueError(f"resolution {resolution} is not divisible by 2^{levels - 1}")
    for width in cfg.block_out_channels:
        if width % cfg.norm_num_groups:
            raise ValueError(f"autoencoder width {width} is not a multiple of norm_num_groups")
    return AutoencoderKL(
        in_channels=channels,
        out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(cfg.block_out_channels),
        layers_per_block=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_num_groups=cfg.norm_num_groups,
        sample_size=resolution,
    )


def autoencoder_loss(kl_weight: float):
    """Reconstruction MSE of a sampled latent, plus ``kl_weight`` times the KL to N(0, I)."""

    def loss_fn(model, x0, g, progress, part=slice(None)):
        x = x0[part]
        posterior = model.encode(x).latent_dist
        eps = torch.randn(posterior.mean.shape, generator=g).to(x.device)
        rec = model.decode(posterior.mean + posterior.std * eps).sample
        mse, kl = F.mse_loss(rec, x), posterior.kl().mean()
        return mse + kl_weight * kl, {"mse": mse.detach(), "kl": kl.detach()}

    return loss_fn


def get_autoencoder(
    profile: Profile, run_dir: str | Path, progress: bool = True
) -> tuple[AutoencoderKL, TrainResult | None]:
    """(the autoencoder in eval mode, its training result, or None when loaded from a folder)."""
    cfg, data = profile.latent.autoencoder, profile.data
    if cfg.pretrained is not None:
        folder = Path(cfg.pretrained)
        if not (folder / "config.json").exists():
            raise FileNotFoundError(
                f"latent.autoencoder.pretrained = {folder}: no AutoencoderKL there "
                "(expected the config.json that save_pretrained writes)"
            )
        ae = AutoencoderKL.from_pretrained(folder)
        if ae.config.in_channels != data.channels:
            raise ValueError(
                f"the autoencoder in {folder} takes {ae.config.in_channels} channels; the "
                f"data has {data.channels}"
            )
        return ae.eval().requires_grad_(False), None
    train_set, _ = load_splits(data)
    torch.manual_seed(cfg.train.seed)
    ae = build_autoencoder(cfg, data.resolution, data.channels)
    result = train(
        ae,
        autoencoder_loss(cfg.kl_weight),
        train_set.images,
        cfg.train,
        Path(run_dir) / LATENT_DIR / "autoencoder",
        "autoencoder",
        progress,
    )
    return result.ema.eval().requires_grad_(False), result


@torch.no_grad()
def encode(ae: AutoencoderKL, images: torch.Tensor, scale: float = 1.0, batch: int = 500):
    """Posterior means of uint8 ``images``, times ``scale``."""
    out = [
        ae.encode(to_model_range(images[i : i + batch])).latent_dist.mean
        for i in range(0, len(images), batch)
    ]
    return torch.cat(out) * scale


@torch.no_grad()
def decode(ae: AutoencoderKL, latents: torch.Tensor, scale: float = 1.0, batch: int = 500):
    """uint8 images of scaled ``latents``."""
    out = [ae.decode(latents[i : i + batch] / scale).sample for i in range(0, len(latents), batch)]
    return to_uint8(torch.cat(out).clamp(-1, 1))


def latent_scale(latents: torch.Tensor) -> float:
    """The factor that gives ``latents`` unit standard deviation."""
    return float(1.0 / latents.std().clamp_min(1e-8))


def reconstruct(ae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """``images`` encoded and decoded (uint8): what the autoencoder's floor is scored on."""
    return decode(ae, encode(ae, images))


def latent_shape(ae: AutoencoderKL, profile: Profile) -> tuple[int, int, int]:
    levels = len(ae.config.block_out_channels)
    side = profile.data.resolution // 2 ** (levels - 1)
    return (ae.config.latent_channels, side, side)


def train_latent_teacher(
    profile: Profile, run_dir: str | Path, latents: torch.Tensor, progress: bool = True
) -> TrainResult:
    """Train (or resume) the latent U-Net teacher on scaled ``latents`` in ``run_dir/latent/teacher``."""
    cfg = profile.latent
    torch.manual_seed(cfg.teacher.seed)
    c, side, _ = latents.shape[1:]
    model = build_unet(cfg.unet, side, c)
    return train(
        model,
        denoising_loss(noise_scheduler(profile.diffusion)),
        latents,
        cfg.teacher,
        Path(run_dir) / LATENT_DIR / "teacher",
        "latent teacher",
        progress,
    )


def make_student(profile: Profile, teacher: UNet2DModel) -> tuple[UNet2DModel, list[str]]:
    """The teacher without BK-SDM's blocks (``latent.removal``), then cut narrower by
    ``latent.width_ratio`` if set: (student, what was removed)."""
    plan = bk_sdm_plan(teacher, profile.latent.removal)
    student = remove_blocks(teacher, plan)
    if profile.latent.width_ratio > 0:
        student, _ = prune(student, profile.latent.width_ratio, "magnitude", progress=False)
    return student.train().requires_grad_(True), plan


def sample_latent(
    unet: UNet2DModel,
    ae: AutoencoderKL,
    scale: float,
    profile: Profile,
    n: int,
    seed: int = 0,
    ddim_steps: int = 25,
    batch_size: int = 250,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """``n`` uint8 images: latents by DDIM from seed + i, decoded."""
    shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    z = ddim_sample(
        unet_eps(unet.to(device).eval()),
        noise_scheduler(profile.diffusion),
        n,
        shape,
        num_inference_steps=ddim_steps,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=False,
        as_uint8=False,
        clamp=False,
    )
    return decode(ae.to(device), z.to(device), scale).cpu()


def latent_backbone(profile: Profile, run_dir: str | Path, progress: bool = True):
    """(the latent path's ``liftkd.stages.kd_job.Backbone``, a dict of what made it: the autoencoder, its latent
    scale and shape, the removal plan, the teacher's training result)."""
    from liftkd.stages.kd_job import Backbone

    ae, ae_result = get_autoencoder(profile, run_dir, progress)
    train_set, _ = load_splits(profile.data)
    raw = encode(ae, train_set.images)
    scale = latent_scale(raw)
    latents = raw * scale
    result = train_latent_teacher(profile, run_dir, latents, progress)
    teacher = result.ema.eval().requires_grad_(False)
    student, plan = make_student(profile, teacher)
    c, side = latents.shape[1], latents.shape[2]

    def example():
        return {"sample": torch.randn(2, c, side, side), "timestep": torch.tensor([10, 500])}

    def sampler(model, n):
        return sample_latent(model, ae, scale, profile, n, 0, profile.latent.kd.ddim_steps)

    backbone = Backbone(
        name=LATENT_DIR,
        teacher=teacher,
        student=student,
        data=latents,
        sampler=sampler,
        example=example,
    )
    info = {
        "autoencoder": ae,
        "autoencoder_result": ae_result,
        "scale": scale,
        "latent_shape": (c, side, side),
        "removed": plan,
        "teacher_result": result,
    }
    return backbone, info
