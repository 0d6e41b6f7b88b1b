"""A trained student taken out as a folder diffusers loads: a sweep job's, or the DiT or
latent path's.

From the shell: ``python -m liftkd.results.export --run-dir runs/cpu --job main_r0.8_s0 --objective
lift+place --out exported/lift_place_r0.8`` (a sweep job's student: the EMA weights at the job's
last step, with a model card from the job's results), or ``python -m liftkd.results.export --run-dir
runs/cpu --results figures/06_dit.json --objective tinyfusion:kd=lift+place --seed 0 --out
exported/dit`` (the DiT or latent path's, its card from the path's results file). The folder's
format, and ``export_student`` for a student you trained yourself, are in
``liftkd.results.student_folder`` (imported here too).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from liftkd.results.model_card import job_card
from liftkd.results.student_folder import (
    CARD,
    PIPELINE,
    check_out,
    export_student,
    load_pipeline,
    load_student,
)

# the export API in one place for users: the folder's format lives in liftkd.results.student_folder
__all__ = [
    "CARD",
    "PIPELINE",
    "export_backbone_student",
    "export_job_student",
    "export_student",
    "load_pipeline",
    "load_student",
]


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
    from liftkd.measure.metrics import count_parameters, macs_per_image
    from liftkd.stages.students import get_student
    from liftkd.stages.sweep.jobs import RESULTS, job_dir, job_from_name
    from liftkd.stages.teacher import get_teacher
    from liftkd.training.diffusion import noise_scheduler
    from liftkd.training.distill import load_snapshot
    from liftkd.training.train_state import list_snapshots, snapshot_path

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
    results = blob["results"]
    row = next(r for r in results["rows"] if r["objective"] == objective)
    costs = {
        "parameters": count_parameters(student),
        "MACs per image": macs_per_image(student, profile.data.resolution, profile.data.channels),
    }
    card = job_card(profile, job, row, results, blob["meta"], costs)
    return export_student(student, out, noise_scheduler(profile.diffusion).config, card, overwrite)


def _results_of_a_path(path: Path) -> dict:
    """Notebook 06's or 07's results file, or an error that says what it is not."""
    if not path.is_file():
        raise FileNotFoundError(f"--results {path} does not exist: run make dit or make latent")
    try:
        blob = json.loads(path.read_text())
        if blob["results"]["backbone"] in ("dit", "latent") and "profile" in blob["meta"]:
            return blob
    except (ValueError, KeyError, TypeError):
        pass
    raise ValueError(f"--results {path} is not a results file of notebook 06 or 07 (06_dit.json)")


def export_backbone_student(
    results_file: str | Path,
    run_dir: str | Path,
    objective: str,
    seed: int,
    out: str | Path,
    overwrite: bool = False,
) -> Path:
    """Export one student of the DiT or latent path: its EMA weights at the job's last step,
    with a card from the path's results file (``06_dit.json`` or ``07_latent.json``), whose
    profile rebuilds the models; the latent student comes with its autoencoder."""
    check_out(out, overwrite)  # before any model is loaded
    import copy

    from liftkd.config import validate_recorded
    from liftkd.measure.evaluation import features_label
    from liftkd.measure.metrics import count_parameters
    from liftkd.results.model_card import backbone_card
    from liftkd.stages.kd_runs import job_dir
    from liftkd.training.diffusion import noise_scheduler
    from liftkd.training.distill import load_snapshot
    from liftkd.training.train_state import list_snapshots, snapshot_path

    blob = _results_of_a_path(Path(results_file))
    results, name = blob["results"], blob["results"]["backbone"]
    rows = [r for r in results["rows"] if r["objective"] == objective and r["seed"] == seed]
    if not rows:
        have = sorted({(r["objective"], r["seed"]) for r in results["rows"]})
        raise ValueError(
            f"{results_file} has no student {objective!r} of seed {seed}; it has {have}"
        )
    folder = job_dir(run_dir, name, seed)
    if not folder.is_dir() or not list_snapshots(folder):
        raise FileNotFoundError(f"{folder} holds no trained job: give the run folder it ran in")
    profile = validate_recorded(blob["meta"]["profile"])
    if name == "dit":
        from liftkd.stages.dit import dit_backbone

        backbone, _, _ = dit_backbone(profile, run_dir, progress=False)
        extra = {}
    else:
        from liftkd.stages.latent import latent_backbone

        backbone, info = latent_backbone(profile, run_dir, progress=False)
        extra = {"autoencoder": info["autoencoder"], "latent_scale": info["scale"]}
    last = snapshot_path(folder, max(list_snapshots(folder)))
    student = load_snapshot(copy.deepcopy(backbone.student), last, member=objective)
    costs = {"parameters": count_parameters(student)}
    features = features_label(profile, run_dir)
    card = backbone_card(profile, rows[0], results, blob["meta"], costs, features)
    config = noise_scheduler(profile.diffusion).config
    return export_student(student, out, config, card, overwrite, **extra)


def main(argv: list[str] | None = None) -> None:
    from liftkd.config import parse_overrides

    p = argparse.ArgumentParser(
        prog="python -m liftkd.results.export",
        description="Export one trained student (a sweep job's, or the DiT or latent path's) as "
        "a folder diffusers loads.",
    )
    p.add_argument("--run-dir", required=True, help="the run folder, e.g. runs/cpu")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--job", help="a finished sweep job, e.g. main_r0.8_s0")
    which.add_argument(
        "--results", help="the DiT or latent path's results, e.g. figures/06_dit.json"
    )
    p.add_argument(
        "--objective", required=True, help="the student's objective spec, e.g. lift+place"
    )
    p.add_argument("--seed", type=int, default=0, help="with --results: the job's seed")
    p.add_argument("--out", required=True, help="the folder to write")
    p.add_argument(
        "--profile", default="cpu", help="with --job: the profile the run used (smoke | cpu | gpu)"
    )
    p.add_argument(
        "--overrides", default="{}", help="with --job: the run's settings, a YAML mapping"
    )
    p.add_argument(
        "--overwrite", action="store_true", help="write over the files a non-empty --out holds"
    )
    args = p.parse_args(argv)
    try:
        if args.results:
            out = export_backbone_student(
                args.results, args.run_dir, args.objective, args.seed, args.out, args.overwrite
            )
        else:
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
