"""``python -m liftkd.stages.sweep list|check|train``: the sweep's job names, one name checked, or one
job's training.

``list`` is where make gets its jobs (one name per line); ``check`` is how ``make distill-<job>``
refuses a name the profile has no job for before it makes a folder; ``train`` is the entry point
for ``accelerate launch`` on several GPUs, before notebook 04 evaluates the finished job.
"""

from __future__ import annotations

import argparse
import sys

from liftkd.config import SettingsError, parse_overrides, resolve_profile
from liftkd.stages.sweep.jobs import STUDIES, job_from_name, plan


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m liftkd.stages.sweep",
        description="List the sweep's jobs, check a job name, or train one job (under "
        "accelerate launch for several GPUs).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="the jobs of a profile, one name per line")
    ck = sub.add_parser("check", help="exit 0 if the profile has a job of this name")
    tr = sub.add_parser("train", help="train one job's students (resumes; no-op when finished)")
    for a in (ls, ck, tr):
        a.add_argument("--profile", default="cpu", help="smoke | cpu | gpu")
        a.add_argument(
            "--overrides", default="{}", help="profile settings by dotted name, a YAML mapping"
        )
    ls.add_argument("--seeds", type=int, nargs="*", help="training seeds (default: the profile's)")
    ls.add_argument(
        "--study",
        choices=STUDIES,
        help="a study's jobs instead (make ablation, authors, grid, trend)",
    )
    tr.add_argument("--run-dir", required=True, help="the run folder (teacher, students, jobs)")
    for a in (ck, tr):
        a.add_argument("--job", required=True, help="a job name, e.g. main_r0.8_s0")
    args = p.parse_args(argv)
    try:
        # SEEDS replace the profile's seeds and the overrides' (make regime gives its own),
        # checked as every seed is
        overrides = parse_overrides(args.overrides)
        if args.cmd == "list" and args.seeds:
            overrides["distill.seeds"] = args.seeds
        profile = resolve_profile(args.profile, overrides)
        if args.cmd == "list":
            print("\n".join(job.name for job in plan(profile, args.seeds or None, args.study)))
            return
        job = job_from_name(profile, args.job)
    except (SettingsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if args.cmd == "check":
        return
    # torch and diffusers: only here
    from liftkd.stages.kd_job import train
    from liftkd.stages.sweep.pixel import kd_job, load_models, unet_backbone

    teacher, student, _ = load_models(profile, args.run_dir, job.ratio)
    backbone = unet_backbone(profile, teacher, student, job)
    train(backbone, kd_job(profile, args.run_dir, job), profile)


if __name__ == "__main__":
    main()
