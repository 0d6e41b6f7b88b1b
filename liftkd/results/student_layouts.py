"""How each kind of student is written: the diffusers form that states it, where one does.

``layout_of(student)`` picks the layout: ``unet`` (a channel-pruned U-Net: no diffusers config
states it, since its timestep embedding keeps the teacher's width while its first level is
narrower, so ``unet/pruned_unet.py`` cuts the config's architecture to the weights, see
``liftkd.models.pruned_unet``; after BK-SDM's cut as well, the config is the cut one),
``plain-unet`` (a U-Net that lost the same layer from every block, as
BK-SDM cuts: ``layers_per_block`` one lower), ``transformer`` (a DiT cut in depth:
``num_layers``), or ``liftkd`` (anything else: weights and what rebuilds them, read by liftkd).
The writers fill a folder; ``liftkd.results.student_folder`` moves it into place.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch.nn as nn

import liftkd.models.pruned_unet as pruned_unet
from liftkd.locks import replacing
from liftkd.models.block_removal import removed_blocks
from liftkd.models.checkpoints import MODEL_CLASSES, model_attrs, plain_config

WEIGHTS = "model.safetensors"  # the liftkd layout: what no diffusers class states
MODEL = "liftkd_model.json"
SCHEDULER = "scheduler_config.json"
CARD = "card.json"
PIPELINE = "model_index.json"  # the diffusers layout
UNET, TRANSFORMER, SCHEDULER_DIR, VAE = "unet", "transformer", "scheduler", "vqvae"
PLAIN_UNET = "plain-unet"  # a layout, not a folder: unet/ holds a plain UNet2DModel
# every name an export writes, in any layout (an earlier export's are replaced)
OURS = {
    WEIGHTS,
    MODEL,
    SCHEDULER,
    CARD,
    "README.md",
    PIPELINE,
    UNET,
    TRANSFORMER,
    SCHEDULER_DIR,
    VAE,
}


def write_json(path: Path, value: dict) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1, default=str) + "\n")


def _config_states(student: nn.Module, config: dict) -> bool:
    """Whether the model diffusers builds from ``config`` has the student's layers and shapes."""
    built = type(student).from_config(config).state_dict()
    return {k: v.shape for k, v in student.state_dict().items()} == {
        k: v.shape for k, v in built.items()
    }


def _config_without_blocks(student: nn.Module) -> dict | None:
    """The config of a U-Net that lost the same layer from every block (BK-SDM): one layer
    fewer per block is ``layers_per_block`` one lower (up blocks keep one more than down blocks,
    as diffusers builds them); None if the cut was uneven."""
    downs = {len(b.resnets) for b in student.down_blocks}
    ups = {len(b.resnets) for b in student.up_blocks}
    if len(downs) != 1 or ups != {next(iter(downs)) + 1}:
        return None
    return {**plain_config(student), "layers_per_block": next(iter(downs))}


def layout_of(student: nn.Module) -> tuple[str, str | None]:
    """(the folder layout a student is written in, why it is not diffusers' own, or None):
    ``unet`` (a channel-pruned U-Net: diffusers with ``unet/pruned_unet.py``), ``plain-unet``
    (a U-Net a config states, such as one without BK-SDM's blocks), ``transformer`` (a DiT cut
    in depth), or ``liftkd``."""
    name = type(student).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"export handles {sorted(MODEL_CLASSES)}, got {name}")
    if name == "DiTTransformer2DModel":  # cut in depth only, its config states it
        if _config_states(student, plain_config(student)):
            return TRANSFORMER, None
        return "liftkd", "its layers were cut narrower than a DiT config can state"
    if removed_blocks(student):
        config = _config_without_blocks(student)
        if config is None:
            return "liftkd", (
                f"blocks were removed from it unevenly ({', '.join(removed_blocks(student))}), "
                "which no diffusers config can state"
            )
        # the config states the blocks; a student also cut narrower is a pruned U-Net of it
        return (PLAIN_UNET if _config_states(student, config) else UNET), None
    return UNET, None


def _scheduler(folder: Path, scheduler_config: dict, latent: bool) -> None:
    from diffusers import DDIMScheduler

    # latents are not images in [-1, 1]: clipping each step's x0 there would distort them
    extra = {"clip_sample": False} if latent else {}
    # (as keywords: from_config reads a dict's own values back from its private entries)
    DDIMScheduler.from_config(dict(scheduler_config), **extra).save_pretrained(
        folder / SCHEDULER_DIR
    )


def _write_unet(student, folder, scheduler_config, autoencoder=None, latent_scale=None) -> None:
    """The diffusers pipeline folder of a U-Net: a ``DDIMPipeline``, or with an autoencoder an
    ``LDMPipeline`` (its ``vqvae`` is the ``AutoencoderKL``, its ``scaling_factor`` the scale
    the latents were trained at)."""
    import diffusers
    from diffusers import UNet2DModel
    from safetensors.torch import save_file

    # BK-SDM's cut: the config with one layer fewer per block (None: the teacher's config)
    base = _config_without_blocks(student) if removed_blocks(student) else None
    if base is not None and _config_states(student, base):
        model = UNet2DModel.from_config(base)
        model.load_state_dict(student.state_dict(), strict=True)
        model.save_pretrained(folder / UNET)
        unet_class = ["diffusers", "UNet2DModel"]
    else:
        config = dict(base or plain_config(student))
        config.update(
            _class_name=pruned_unet.PrunedUNet2DModel.__name__,
            _diffusers_version=diffusers.__version__,
            **{pruned_unet.ATTRS_KEY: model_attrs(student)},
        )
        (folder / UNET).mkdir()
        write_json(folder / UNET / "config.json", config)
        state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
        save_file(state, str(folder / UNET / pruned_unet.WEIGHTS_FILE), metadata={"format": "pt"})
        shutil.copyfile(pruned_unet.__file__, folder / UNET / "pruned_unet.py")
        unet_class = [Path(pruned_unet.__file__).stem, pruned_unet.PrunedUNet2DModel.__name__]
    _scheduler(folder, scheduler_config, latent=autoencoder is not None)
    pipeline = {
        "_class_name": "DDIMPipeline" if autoencoder is None else "LDMPipeline",
        "_diffusers_version": diffusers.__version__,
        UNET: unet_class,
        SCHEDULER_DIR: ["diffusers", "DDIMScheduler"],
    }
    if autoencoder is not None:
        ae = copy.deepcopy(autoencoder).eval()
        ae.register_to_config(scaling_factor=float(latent_scale))
        ae.save_pretrained(folder / VAE)
        pipeline[VAE] = ["diffusers", type(autoencoder).__name__]
    write_json(folder / PIPELINE, pipeline)


def _write_transformer(student, folder, scheduler_config, autoencoder=None, latent_scale=None):
    student.save_pretrained(folder / TRANSFORMER)
    _scheduler(folder, scheduler_config, latent=False)


def _write_liftkd(student, folder, scheduler_config, autoencoder=None, latent_scale=None):
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    save_file(state, str(folder / WEIGHTS), metadata={"format": "pt"})
    spec = {
        "class": type(student).__name__,
        "config": plain_config(student),
        "attrs": model_attrs(student),
        "removed": removed_blocks(student),
    }
    write_json(folder / MODEL, spec)
    write_json(folder / SCHEDULER, dict(scheduler_config))


WRITERS = {
    UNET: _write_unet,
    PLAIN_UNET: _write_unet,
    TRANSFORMER: _write_transformer,
    "liftkd": _write_liftkd,
}
