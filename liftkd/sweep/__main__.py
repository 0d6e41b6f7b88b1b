"""``python -m liftkd.sweep list|train``: the sweep's job names, or one job's training.

``list`` is where make gets its jobs (one name per line); ``train`` is the entry point for
``accelerate launch`` on several GPUs, before notebook 04 evaluates the finished job.
"""

from __future__ import annotations

import argparse

from liftkd.config import get_profile, parse_overrides
from liftkd.sweep.jobs import job_from_name, plan


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m liftkd.sweep",
        description="List the sweep's jobs, or train one (under accelerate launch for several GPUs).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="the jobs of a profile, one name per line")
    tr = sub.add_parser("train", help="train one job's students (resumes; no-op when finished)")
    for a in (ls, tr):
        a.add_argument("--profile", default="cpu", help="smoke | cpu | gpu")
        a.add_argument(
            "--overrides", default="{}", help="profile settings by dotted name, a YAML mapping"
        )
    ls.add_argument("--seeds", type=int, nargs="*", help="training seeds (default: the profile's)")
    tr.add_argument("--run-dir", required=True, help="the run folder (teacher, students, jobs)")
    tr.add_argument("--job", required=True, help="a job name, e.g. main_r0.8_s0")
    args = p.parse_args(argv)
    profile = get_profile(args.profile, **parse_overrides(args.overrides))
    if args.cmd == "list":
        print("\n".join(job.name for job in plan(profile, args.seeds or None)))
        return
    from liftkd.sweep.training import load_models, train_job  # torch and diffusers: only here

    job = job_from_name(profile, args.job)
    teacher, student, _ = load_models(profile, args.run_dir, job.ratio)
    train_job(job, profile, args.run_dir, teacher, student)


if __name__ == "__main__":
    main()
