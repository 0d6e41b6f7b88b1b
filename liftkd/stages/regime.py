"""The paper's regime at this scale (``make regime``, notebook 08).

The paper's 90% DDPM student keeps so few channels that most of its GroupNorm layers normalise
about one channel per group; the sweep's students keep several. The regime study is a run of
its own: the profile with :func:`overrides` applied (the regime's U-Net and teacher, the one
ratio pruned and trained from scratch, the regime's objectives as the only KD job, under the
authors' recipe), in ``<run folder>/regime`` with its figures in ``<figures>/regime``, so that
the sweep's notebooks and jobs run it unchanged. ``norm_shares`` says how far the cut student is
in the regime; notebook 08 tables the run and ``liftkd.results.claims.regime_verdicts`` judges
it; notebook 05 puts those verdicts beside the claims.

    python -m liftkd.stages.regime overrides --profile cpu [--overrides '{...}']

prints the overrides (JSON, which make passes as OVERRIDES), the user's own first.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter

import torch

from liftkd.config import NULL, Profile, SettingsError, parse_overrides, resolve_profile

REGIME_DIR = "regime"  # the regime's run folder and figures folder, inside the profile's


def overrides(profile: Profile) -> dict:
    """The settings that turn ``profile`` into its regime run, by dotted name: the regime's
    U-Net and teacher; pruning, the capacity floor (``regime.capacity_steps`` long when set) and
    the sweep at ``regime.ratio`` alone;
    one main job of ``regime.objectives`` on ``regime.seeds`` trained ``regime.steps`` with the
    authors' recipe (``distill.authors_train`` and its dropout); no ablation, authors', grid or
    trend job (their settings would not be read)."""
    reg = profile.regime
    if reg.unet is None:
        raise SettingsError(
            f"the {profile.name} profile has no regime study (regime.unet is not set); the cpu "
            "and smoke profiles have one"
        )
    d, r = profile.distill, [reg.ratio]

    def plain(cfg) -> dict:  # a section as overrides take it; an empty setting stays as it is
        return {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None}

    return {
        "unet": plain(reg.unet),
        "teacher": plain(reg.teacher or profile.teacher),
        "pruning.ratios": r,
        "capacity.ratios": r,
        **({"capacity.train.steps": reg.capacity_steps} if reg.capacity_steps else {}),
        "analysis.ratios": r,
        "analysis.corrected_ratios": r,
        "distill.ratios": r,
        "distill.steps": [reg.steps],
        "distill.ablation_ratio": reg.ratio,
        "distill.objectives": list(reg.objectives),
        "distill.seeds": list(reg.seeds),
        "distill.train": plain(d.authors_train),
        "distill.student_dropout": d.authors_dropout,
        "distill.ablations": [],
        "distill.authors_objectives": [],
        "distill.grid_objectives": [],
        "distill.trend_ratios": [],
        "distill.trend_steps": [],
    }


def regime_overrides(name: str, user: str | dict | None = None) -> dict:
    """The user's overrides, then the regime's over them (the regime's settings win; every
    other setting, the data say, stays the user's)."""
    mine = parse_overrides(user)
    return {**mine, **overrides(resolve_profile(name, mine))}


def to_json(tree: dict) -> str:
    """Overrides as one line of JSON (``null`` for an explicit None), for make."""
    return json.dumps(tree, default=lambda v: None if v is NULL else str(v))


def time_blind(block: torch.nn.Module) -> bool:
    """Whether a diffusers ResNet block cannot see the timestep. Its default time embedding is
    one number per channel added after the first convolution, just before a GroupNorm; with one
    channel per group, that GroupNorm subtracts each channel's own mean over space, and so the
    embedding, exactly (tests/test_regime.py shows the output does not move with it)."""
    norm2, proj = getattr(block, "norm2", None), getattr(block, "time_emb_proj", None)
    return (
        isinstance(norm2, torch.nn.GroupNorm)
        and proj is not None
        and getattr(block, "time_embedding_norm", None) == "default"
        and norm2.num_channels == norm2.num_groups
    )


def norm_shares(model: torch.nn.Module) -> dict:
    """How many channels each GroupNorm of ``model`` normalises per group: ``{"groupnorms": n,
    "one_per_group": how many normalise one channel per group, "channels_per_group": {count:
    layers}, "resnets": its ResNet blocks, "time_blind": how many of them cannot see the
    timestep (:func:`time_blind`)}``. The paper's regime has one at most levels."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    per = [m.num_channels // m.num_groups for m in norms]
    counts = Counter(per)
    resnets = [m for m in model.modules() if hasattr(m, "time_emb_proj")]
    return {
        "groupnorms": len(per),
        "one_per_group": counts.get(1, 0),
        "channels_per_group": {str(k): v for k, v in sorted(counts.items())},
        "resnets": len(resnets),
        "time_blind": sum(time_blind(m) for m in resnets),
    }


def shares(teacher: torch.nn.Module, student: torch.nn.Module, pruned: dict) -> dict:
    """The teacher's and the cut student's :func:`norm_shares` and parameter counts (``pruned``:
    the student's pruning report, ``liftkd.stages.students.get_student``)."""
    return {
        "teacher": norm_shares(teacher),
        "student": norm_shares(student),
        "teacher_params": int(pruned["params_before"]),
        "student_params": int(pruned["params_after"]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m liftkd.stages.regime", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("overrides", help="the regime run's overrides as JSON")
    cmd.add_argument("--profile", required=True)
    cmd.add_argument("--overrides", default="{}")
    args = parser.parse_args(argv)
    try:
        tree = regime_overrides(args.profile, args.overrides)
        resolve_profile(args.profile, tree)  # the regime run's profile must resolve
    except SettingsError as err:
        raise SystemExit(f"error: {err}") from None
    print(to_json(tree))


if __name__ == "__main__":
    main()
