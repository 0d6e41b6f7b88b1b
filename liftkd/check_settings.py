"""``python -m liftkd.check_settings``: a profile and its overrides checked before anything runs.

make runs it before it creates a run folder: an unknown profile, an unknown or ill-typed
setting, or a run folder whose teacher or students were made with other settings is then one
clear message, not a traceback from inside a notebook an hour later.
"""

from __future__ import annotations

import argparse
import sys

from liftkd.config import SettingsError, get_profile, parse_overrides


def check(profile_name: str, overrides: str | dict | None, run_dir: str | None = None):
    """The resolved profile; :class:`SettingsError` if a setting or the run folder disagrees."""
    from liftkd.runs import remember

    profile = get_profile(profile_name, **parse_overrides(overrides))
    if run_dir:
        for part in ("teacher", "students"):
            remember(run_dir, part, profile, write=False)
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
