"""The folder of an exported student, which diffusers loads with no liftkd installed.

``export_student(student, folder, scheduler_config, card)`` writes, for a channel-pruned
``UNet2DModel`` (every pixel student), a diffusers pipeline folder:

- ``model_index.json``: a ``DDIMPipeline`` of the student and a ``DDIMScheduler``;
- ``unet/``: ``config.json`` (the architecture before the cut, with the attributes the weights
  cannot show), ``diffusion_pytorch_model.safetensors``, and ``pruned_unet.py``, the class that
  cuts the architecture to the weights' shapes (a pruned U-Net has no plain diffusers config: its
  timestep embedding keeps the teacher's width while its first level is narrower; see
  ``liftkd.models.pruned_unet``);
- ``scheduler/``: the DDIM sampler's config, from the training noise schedule;
- ``README.md``: a model card (objective, pruning ratio, parameters, MACs, FID with its standard
  error and protocol, the teacher's FID on the same protocol, recipe, seed, commit, intended use
  and limits), and ``card.json`` with the same facts for programs.

Loaded by diffusers alone::

    from diffusers import DDIMPipeline

    pipe = DDIMPipeline.from_pretrained("exported/lift_place_r0.8", trust_remote_code=True)
    images = pipe(batch_size=16, num_inference_steps=50).images

A latent student (a U-Net without BK-SDM's blocks: a plain ``UNet2DModel`` with one layer fewer
per block) comes with its autoencoder as an ``LDMPipeline`` (``vqvae/``, an ``AutoencoderKL``
whose ``scaling_factor`` is the latents' scale; no step's x0 clipped). A depth-pruned
``DiTTransformer2DModel`` is a plain diffusers model (``transformer/``). Whatever no diffusers
class states is written as ``model.safetensors`` and ``liftkd_model.json``, which
``load_pipeline`` rebuilds, and its card says why (``liftkd.results.student_layouts``).

``liftkd.results.export`` takes a student out of a finished sweep job into such a folder.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

import liftkd.models.pruned_unet as pruned_unet
from liftkd.models.checkpoints import rebuild
from liftkd.results.model_card import card_text
from liftkd.results.student_layouts import (
    CARD,
    MODEL,
    OURS,
    PIPELINE,
    PLAIN_UNET,
    SCHEDULER,
    SCHEDULER_DIR,
    TRANSFORMER,
    UNET,
    VAE,
    WEIGHTS,
    WRITERS,
    layout_of,
    write_json,
)


def check_out(folder: str | Path, overwrite: bool = False) -> Path:
    """``folder`` if an export may be written there: a new or empty folder, or an earlier export
    (replaced); a folder holding other files only with ``overwrite``. A file, or a place that
    cannot be written, is refused before anything is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--out {folder} is a file, not a folder: name a folder to write")
    if folder.is_dir():
        others = sorted(p.name for p in folder.iterdir() if p.name not in OURS)
        earlier_export = (folder / CARD).exists() and any(
            (folder / marker).exists() for marker in (MODEL, PIPELINE, TRANSFORMER)
        )
        held = [p.name for p in folder.iterdir()]
        if held and not earlier_export and not overwrite:
            raise FileExistsError(
                f"--out {folder} already holds files ({', '.join(sorted(held)[:5])}"
                f"{', ...' if len(held) > 5 else ''}) and is not an earlier export: name a new "
                "or empty folder, or pass --overwrite to write over them"
            )
        if others and earlier_export and not overwrite:
            raise FileExistsError(
                f"--out {folder} is an earlier export with other files beside it "
                f"({', '.join(others[:5])}): pass --overwrite to replace the export"
            )
    existing = folder
    while not existing.exists():
        existing = existing.parent
    try:  # a file made and removed at once: the one test that read-only mounts cannot fool
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise PermissionError(
            f"--out {folder}: nothing can be written in {existing} ({err.strerror or err})"
        ) from None
    return folder


def export_student(
    student: nn.Module,
    folder: str | Path,
    scheduler_config: dict,
    card: dict | None = None,
    overwrite: bool = False,
    autoencoder: nn.Module | None = None,
    latent_scale: float | None = None,
) -> Path:
    """Write ``student`` to ``folder`` (see the module docstring); returns the folder. A latent
    U-Net comes with its ``autoencoder`` and the ``latent_scale`` its latents were multiplied
    by. A folder that holds other files than an earlier export is refused unless
    ``overwrite``. The export is written beside, then moved in: an interrupted one leaves the
    earlier export whole."""
    layout, why_not = layout_of(student)
    if autoencoder is not None and (layout not in (UNET, PLAIN_UNET) or latent_scale is None):
        raise ValueError(
            "an autoencoder goes with a U-Net that diffusers can load, and its latent_scale"
        )
    folder = check_out(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    card = {"folder": str(folder), "class": type(student).__name__, **(card or {})}
    if why_not:
        card["diffusers form"] = f"none: {why_not}"
    shown = "latent" if autoencoder is not None else layout
    with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as tmp:
        tmp = Path(tmp)
        WRITERS[layout](student.eval(), tmp, scheduler_config, autoencoder, latent_scale)
        write_json(tmp / CARD, card)
        (tmp / "README.md").write_text(card_text(card, shown))
        for name in OURS:  # what an earlier export left, in this layout or another
            old = folder / name
            if old.is_dir():
                shutil.rmtree(old)
            elif old.exists():
                old.unlink()
        for new in tmp.iterdir():
            os.replace(new, folder / new.name)
    return folder


def _needed(folder: Path) -> None:
    if not (folder / CARD).exists() and not any(
        (folder / m).exists() for m in (PIPELINE, TRANSFORMER, MODEL)
    ):
        raise FileNotFoundError(
            f"{folder} is not an exported liftkd student: it holds no {PIPELINE}, "
            f"{TRANSFORMER}/ or {MODEL} (export one with liftkd.results.export.export_student or "
            "python -m liftkd.results.export)"
        )


def load_student(folder: str | Path) -> nn.Module:
    """The exported student, rebuilt with its pruned shapes, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    _needed(folder)
    try:
        if (folder / PIPELINE).exists():
            library, _ = json.loads((folder / PIPELINE).read_text())[UNET]
            if library == "diffusers":
                from diffusers import UNet2DModel

                return UNet2DModel.from_pretrained(folder, subfolder=UNET).eval()
            return pruned_unet.PrunedUNet2DModel.from_pretrained(folder, subfolder=UNET)
        if (folder / TRANSFORMER).exists():
            from diffusers import DiTTransformer2DModel

            return DiTTransformer2DModel.from_pretrained(folder, subfolder=TRANSFORMER).eval()
        spec = json.loads((folder / MODEL).read_text())
        state = load_file(str(folder / WEIGHTS))
    except Exception as err:
        raise ValueError(
            f"{folder}: the export is damaged ({type(err).__name__}: {str(err)[:200]}); export again"
        ) from None
    return rebuild(spec["class"], spec["config"], state, spec["attrs"], spec.get("removed"))


def load_pipeline(folder: str | Path, device: str | torch.device = "cpu"):
    """A diffusers pipeline of an exported U-Net student and its sampler: ``DDIMPipeline``, or
    ``LDMPipeline`` for a latent one (with its autoencoder)."""
    from diffusers import AutoencoderKL, DDIMPipeline, DDIMScheduler, LDMPipeline

    folder = Path(folder)
    student = load_student(folder)
    if (folder / SCHEDULER_DIR).exists():
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder=SCHEDULER_DIR)
    else:
        scheduler = DDIMScheduler.from_config(json.loads((folder / SCHEDULER).read_text()))
    if (folder / VAE).exists():
        ae = AutoencoderKL.from_pretrained(folder, subfolder=VAE).eval()
        return LDMPipeline(vqvae=ae, unet=student, scheduler=scheduler).to(device)
    return DDIMPipeline(unet=student, scheduler=scheduler).to(device)
