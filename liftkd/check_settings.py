"""``python -m liftkd.check_settings``: a profile and its overrides checked before anything runs.

make runs it before it creates a run folder: an unknown profile, an unknown or ill-typed
setting, an objective spec with a bad option, a missing image folder, a pretrained teacher that
cannot serve the data, a run folder name make cannot handle, or a run folder whose teacher,
students or KD jobs were made with other settings is then one clear message, not a traceback
from inside a notebook an hour later.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liftkd.config import Profile, SettingsError, resolve_profile

# characters make cannot have in a file name it builds (spaces split names, ':' ends a target,
# '%' is a pattern, '#' a comment, '$' a variable) or that the recipes' shell lines would mangle
_MAKE_UNSAFE = set(" \t\n:%#$;*?[]\\'\"`|&<>(){}")


def check_run_dir(run_dir: str) -> None:
    bad = sorted(set(run_dir) & _MAKE_UNSAFE)
    if bad:
        raise SettingsError(
            f"the run folder {run_dir!r} (RUN_NAME or RUN_DIR) holds {' '.join(repr(c) for c in bad)}: "
            "make cannot name files there; use letters, digits, '-', '_', '.' and '/'"
        )


def check_objectives(profile: Profile) -> None:
    """Every objective spec of the sweep and of the DiT and latent paths builds."""
    from liftkd.method.objectives import check_spec

    where = {
        "distill.objectives": profile.distill.objectives,
        "distill.ablations": profile.distill.ablations,
        "dit_kd.kd.objectives": profile.dit_kd.kd.objectives,
        "latent.kd.objectives": profile.latent.kd.objectives,
    }
    for setting, specs in where.items():
        for spec in specs:
            try:
                check_spec(spec, profile.distill.group_size)
            except ValueError as err:
                raise SettingsError(f"{setting}: {err}") from None


def check_data(profile: Profile) -> None:
    """An image folder exists and holds enough images to split (no image is read here)."""
    from liftkd.data import check_folder

    data = profile.data
    if data.name != "folder":
        return
    if not Path(data.path).is_dir():
        raise SettingsError(
            f"data.path {data.path!r} is not a folder: give the folder of your images"
        )
    try:
        check_folder(data)
    except ValueError as err:
        raise SettingsError(f"data.path: {err}") from None


def check_pretrained(profile: Profile) -> None:
    """A local pretrained teacher is a UNet2DModel for images of the data's channels."""
    source = profile.pretrained_teacher
    if source is None:
        return
    from liftkd.models.presets import check_unet_folder, hub_id_reachable  # diffusers: seconds

    if Path(source).exists():
        try:
            check_unet_folder(Path(source), profile.data.channels)
        except (FileNotFoundError, ValueError) as err:
            raise SettingsError(f"pretrained_teacher: {err}") from None
    elif not hub_id_reachable(source):
        raise SettingsError(
            f"pretrained_teacher {source!r} is not a local folder, is not in the hub cache, and "
            "the hub is out of reach (offline machines: download it once elsewhere and pass the "
            "folder)"
        )


def check_jobs(profile: Profile, run_dir: str) -> None:
    """No KD job folder of the run holds a job made with other settings than these."""
    from liftkd.runs import CorruptFileError
    from liftkd.stages.sweep.jobs import every_job, job_from_name, remember_job, sweep_dir

    planned = {(j.group, j.ratio) for j in every_job(profile)}
    folder = sweep_dir(run_dir)
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        try:
            job = job_from_name(profile, path.name)
        except ValueError:
            continue  # not a job of this profile's sweep: nothing of this run reads it
        if (job.group, job.ratio) in planned:
            try:
                remember_job(run_dir, job, profile, write=False)
            except CorruptFileError as err:
                raise SettingsError(str(err)) from None


def check(profile_name: str, overrides: str | dict | None, run_dir: str | None = None):
    """The resolved profile; :class:`SettingsError` if a setting or the run folder disagrees."""
    from liftkd.runs import CorruptFileError, remember

    profile = resolve_profile(profile_name, overrides)
    check_objectives(profile)
    check_data(profile)
    check_pretrained(profile)
    if run_dir:
        check_run_dir(run_dir)
        try:
            for part in ("teacher", "students"):
                remember(run_dir, part, profile, write=False)
        except CorruptFileError as err:
            raise SettingsError(str(err)) from None
        check_jobs(profile, run_dir)
    return profile


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m liftkd.check_settings", description=__doc__.split("\n")[0]
    )
    p.add_argument("--profile", default="cpu", help="smoke | cpu | gpu")
    p.add_argument("--overrides", default="{}", help="settings by dotted name, a YAML mapping")
    p.add_argument("--run-dir", default=None, help="the run folder the settings will be used in")
    args = p.parse_args(argv)
    try:
        profile = check(args.profile, args.overrides, args.run_dir)
    except SettingsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"settings: profile {profile.name}, {args.overrides} ok")


if __name__ == "__main__":
    main()
