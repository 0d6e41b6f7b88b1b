"""A trained student taken out: a folder that diffusers users load in one call.

``export_student(student, folder, scheduler, card)`` writes

- ``model.safetensors``: the weights (safetensors: no pickle, loads anywhere);
- ``liftkd_model.json``: the model class, its base config and the attributes diffusers keeps
  (attention heads, channel counts), which with the weights' shapes rebuild the pruned model
  (``save_pretrained`` / ``from_pretrained`` know nothing of pruned shapes);
- ``scheduler_config.json``: the DDIM sampler's config, from the training noise schedule;
- ``README.md``: a model card (objective, pruning ratio, parameters, MACs, FID with its protocol,
  seed, commit), and ``card.json`` with the same facts for programs.

``load_pipeline(folder)`` rebuilds the student and returns a diffusers ``DDIMPipeline``::

    from liftkd.export import load_pipeline
    pipe = load_pipeline("exported/lift+place_r0.8")
    images = pipe(batch_size=16, num_inference_steps=50).images

From a finished sweep job: ``python -m liftkd.export --run-dir runs/cpu --job main_r0.8_s0
--objective lift+place --out exported/lift+place_r0.8`` (the EMA weights at the job's last step).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

from liftkd.block_removal import removed_blocks
from liftkd.checkpoints import MODEL_CLASSES, model_attrs, plain_config, rebuild
from liftkd.locks import replacing

WEIGHTS = "model.safetensors"
MODEL = "liftkd_model.json"
SCHEDULER = "scheduler_config.json"
CARD = "card.json"


def _write_json(path: Path, value: dict) -> None:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1, default=str) + "\n")


def _card_text(card: dict) -> str:
    lines = [f"# {card.get('title', 'A pruned diffusion student distilled with liftkd')}", ""]
    lines += [
        "A pruned `UNet2DModel` trained by knowledge distillation with liftkd, a reproduction of "
        "LIFT and PLACE (Han, Yeo, Yoo, CVPR 2026, arXiv 2605.19729).",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in card.items() if k != "title"]
    lines += [
        "",
        "Load it (liftkd rebuilds the pruned shapes):",
        "",
        "```python",
        "from liftkd.export import load_pipeline",
        "",
        f'pipe = load_pipeline("{card.get("folder", "this folder")}")',
        "images = pipe(batch_size=16, num_inference_steps=50).images",
        "```",
        "",
    ]
    return "\n".join(lines)


def check_out(folder: str | Path, overwrite: bool = False) -> Path:
    """``folder`` if an export may be written there: a new or empty folder, or an earlier export
    (replaced); a folder holding other files only with ``overwrite``. A file, or a place that
    cannot be written, is refused before anything is done."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"--out {folder} is a file, not a folder: name a folder to write")
    if folder.is_dir():
        ours = {WEIGHTS, MODEL, SCHEDULER, CARD, "README.md"}
        others = sorted(p.name for p in folder.iterdir() if p.name not in ours)
        earlier_export = (folder / MODEL).exists()
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
) -> Path:
    """Write ``student`` to ``folder`` (see the module docstring); returns the folder. A folder
    that holds other files than an earlier export is refused unless ``overwrite``."""
    from safetensors.torch import save_file

    name = type(student).__name__
    if name not in MODEL_CLASSES:
        raise TypeError(f"export handles {sorted(MODEL_CLASSES)}, got {name}")
    folder = check_out(folder, overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in student.state_dict().items()}
    with replacing(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "class": name})
    _write_json(
        folder / MODEL,
        {
            "class": name,
            "config": plain_config(student),
            "attrs": model_attrs(student),
            "removed": removed_blocks(student),
        },
    )
    _write_json(folder / SCHEDULER, {k: v for k, v in dict(scheduler_config).items()})
    card = {"folder": str(folder), **(card or {})}
    _write_json(folder / CARD, card)
    (folder / "README.md").write_text(_card_text(card))
    return folder


def load_student(folder: str | Path) -> nn.Module:
    """The exported student, rebuilt with its pruned shapes, in eval mode."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for needed in (WEIGHTS, MODEL):
        if not (folder / needed).exists():
            raise FileNotFoundError(
                f"{folder} is not an exported liftkd student: {needed} is missing "
                "(export one with liftkd.export.export_student or python -m liftkd.export)"
            )
    try:
        spec = json.loads((folder / MODEL).read_text())
        state = load_file(str(folder / WEIGHTS))
    except Exception as err:
        raise ValueError(
            f"{folder}: the export is damaged ({type(err).__name__}: {str(err)[:200]}); export again"
        ) from None
    return rebuild(spec["class"], spec["config"], state, spec["attrs"], spec.get("removed"))


def load_pipeline(folder: str | Path, device: str | torch.device = "cpu"):
    """A diffusers ``DDIMPipeline`` of the exported student and its sampler."""
    from diffusers import DDIMPipeline, DDIMScheduler

    student = load_student(folder)
    scheduler = DDIMScheduler.from_config(json.loads((Path(folder) / SCHEDULER).read_text()))
    return DDIMPipeline(unet=student, scheduler=scheduler).to(device)


def export_job_student(
    run_dir: str | Path,
    job_name: str,
    objective: str,
    out: str | Path,
    profile_name: str = "cpu",
    overrides: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Export one student of a finished sweep job: its EMA weights at the last step, with a card
    from the job's results (FID and its protocol, seed, commit)."""
    check_out(out, overwrite)  # before any model is loaded
    import copy

    from liftkd.config import get_profile
    from liftkd.diffusion import noise_scheduler
    from liftkd.distill import load_snapshot
    from liftkd.metrics import count_parameters, macs_per_image
    from liftkd.students import get_student
    from liftkd.sweep.jobs import RESULTS, job_dir, job_from_name
    from liftkd.teacher import get_teacher
    from liftkd.train import list_snapshots, snapshot_path

    profile = get_profile(profile_name, **(overrides or {}))
    job = job_from_name(profile, job_name)
    if objective not in job.objectives:
        raise ValueError(f"job {job_name} trained {list(job.objectives)}, not {objective!r}")
    folder = job_dir(run_dir, job)
    results_path = folder / RESULTS
    if not results_path.exists():
        raise FileNotFoundError(
            f"{results_path} is missing: the job has not finished (make distill-{job_name})"
        )
    blob = json.loads(results_path.read_text())
    teacher, _ = get_teacher(profile, run_dir, progress=False)
    pruned, _ = get_student(profile, run_dir, teacher, job.ratio, progress=False)
    last = max(list_snapshots(folder))
    student = load_snapshot(copy.deepcopy(pruned), snapshot_path(folder, last), member=objective)
    row = next(r for r in blob["results"]["rows"] if r["objective"] == objective)
    ref = blob["results"]["reference"]
    card = {
        "title": f"{row['label']} student, {job.ratio:.0%} channel pruning ({profile.name} profile)",
        "objective": objective,
        "pruning ratio": job.ratio,
        "parameters": count_parameters(student),
        "MACs per image": macs_per_image(student, profile.data.resolution, profile.data.channels),
        "FID": row["fid"],
        "FID protocol": f"{ref['n_samples']} samples, {ref['ddim_steps']} DDIM steps, FID on "
        + ref.get("features", "classifier features"),
        "teacher FID, same protocol": ref["teacher"]["fid"],
        "KD steps": job.train.steps,
        "seed": job.seed,
        "commit": blob["meta"].get("git", {}).get("commit"),
        "data": f"{profile.data.name} {profile.data.resolution}x{profile.data.resolution}",
    }
    return export_student(student, out, noise_scheduler(profile.diffusion).config, card, overwrite)


def main(argv: list[str] | None = None) -> None:
    from liftkd.config import parse_overrides

    p = argparse.ArgumentParser(
        prog="python -m liftkd.export",
        description="Export one trained student of a sweep job as a folder diffusers loads.",
    )
    p.add_argument("--run-dir", required=True, help="the run folder, e.g. runs/cpu")
    p.add_argument("--job", required=True, help="a finished job, e.g. main_r0.8_s0")
    p.add_argument(
        "--objective", required=True, help="the student's objective spec, e.g. lift+place"
    )
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument("--profile", default="cpu", help="the profile the run used: smoke | cpu | gpu")
    p.add_argument(
        "--overrides", default="{}", help="the run's settings by dotted name, a YAML mapping"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="write over the files a non-empty --out holds"
    )
    args = p.parse_args(argv)
    try:
        out = export_job_student(
            args.run_dir,
            args.job,
            args.objective,
            args.out,
            args.profile,
            parse_overrides(args.overrides),
            args.overwrite,
        )
    except (OSError, ValueError) as err:  # SettingsError and CorruptFileError are ValueErrors
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"exported to {out}")


if __name__ == "__main__":
    main()
