"""The objectives by name: the registry, their spec strings, and a reader's label for each.

A spec names a registered objective and its options after a colon, the form the profiles and
the sweep use: ``"lift+place:group_size=4,coarse=l2"``. ``build_objective`` makes one from a
name and keyword options; ``parse_spec`` turns a spec into both; ``label`` gives the name a
table prints (``LIFT+PLACE (K=16, w=1)``).
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn

from liftkd.config import parse_scalar
from liftkd.method.features import feature_widths
from liftkd.method.lift import LIFT, PER_ELEMENT, PLACE
from liftkd.method.losses import DIST, FeatKD, NormFeatKD, Objective, OutFeatKD, OutKD, TaskOnly
from liftkd.method.recipes import BKSDMKD, TinyFusionKD, recipe_label

OBJECTIVES: dict[str, type[Objective]] = {
    cls.name: cls
    for cls in (TaskOnly, OutKD, FeatKD, OutFeatKD, LIFT, PLACE, DIST, NormFeatKD)
    + (TinyFusionKD, BKSDMKD)
}
# objectives that can tap features: given a student and a teacher, their adapters are sized here
_FEATURE_OBJECTIVES = {
    "featkd",
    "outkd+featkd",
    "normfeatkd",
    "lift",
    "lift+place",
    "tinyfusion",
    "bksdm",
}


def build_objective(
    name: str,
    student: nn.Module | None = None,
    teacher: nn.Module | None = None,
    example_inputs: dict[str, torch.Tensor] | None = None,
    **options,
) -> Objective:
    """The objective registered as ``name`` with ``options``.

    With ``student``, ``teacher`` and ``example_inputs`` (keyword inputs of one forward pass),
    objectives that use features get adapters sized from the tapped features; LIFT and PLACE then
    carry the 1e-6 FitNet term of the paper's DDPM setting (``feat_weight=0`` removes it).
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    cls = OBJECTIVES[name]
    check_options(name, options)
    if name in _FEATURE_OBJECTIVES and student is not None and teacher is not None:
        if example_inputs is None:
            raise ValueError("feature objectives need example_inputs to size their adapters")
        level = cls.feature_level
        options.setdefault("student_widths", feature_widths(student, example_inputs, level))
        options.setdefault("teacher_widths", feature_widths(teacher, example_inputs, level))
        from diffusers import DiTTransformer2DModel

        options.setdefault("tokens", isinstance(student, DiTTransformer2DModel))
    return cls(**options)


# options that weigh a term (0 turns it off) and options that must be above 0
_WEIGHTS = {"lam", "lam_f", "lam_out", "lam_feat", "feat_weight", "beta", "gamma", "alpha"}
_WEIGHTS |= {"feat_start", "n_std"}
_POSITIVE = {"var_eps", "coarse_scale"}
# options build_objective fills in from the models, not the user's to set in a spec
_INTERNAL = {"student_widths", "teacher_widths", "tokens", "teacher_blocks", "normalised"}
_INTERNAL |= {"required"}


def options_of(name: str) -> list[str]:
    """The options a spec may give the objective ``name`` (its constructor's, by name)."""
    cls = OBJECTIVES[name]
    names = set()
    for klass in cls.__mro__:  # PLACE passes **kwargs on to LIFT
        init = klass.__dict__.get("__init__")
        if init is not None:
            names |= {
                p.name
                for p in inspect.signature(init).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
            }
        if klass is Objective:
            break
    return sorted(names - _INTERNAL)


def check_options(name: str, options: dict) -> None:
    """Refuse an option ``name`` does not have, or a weight that is not a number >= 0 (> 0 for
    ``var_eps`` and ``coarse_scale``), before the objective is built."""
    valid = options_of(name)
    for key, value in options.items():
        if key in _INTERNAL:
            continue
        if key not in valid:
            raise ValueError(
                f"objective {name!r} has no option {key!r}; its options: {', '.join(valid)}"
            )
        if key == "coarse_scale" and value == PER_ELEMENT:
            continue  # LIFT's coarse term scaled by the elements per fit
        if key in _WEIGHTS | _POSITIVE:
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if (
                not number
                or not math.isfinite(value)
                or value < 0
                or (key in _POSITIVE and value == 0)
            ):
                need = "above 0" if key in _POSITIVE else "0 or more"
                if key == "coarse_scale":
                    need += f" or {PER_ELEMENT!r} (the elements per fit)"
                raise ValueError(
                    f"objective {name!r}: option {key} must be a number {need}, got {value!r}"
                )


def check_spec(spec: str, group_size: int | None = None) -> tuple[str, dict]:
    """``parse_spec`` and the objective built once from the spec's options alone: every bad
    option value is an error naming the spec, as the settings check gives it before a run."""
    name, options = parse_spec(spec, group_size)
    # feature objectives are built here with one stand-in level of adapters (8 channels)
    stand_in = {"student_widths": [8], "teacher_widths": [8]} if name in _FEATURE_OBJECTIVES else {}
    try:
        build_objective(name, **stand_in, **options)
    except (TypeError, ValueError) as err:
        raise ValueError(f"objective spec {spec!r}: {err}") from None
    return name, options


def parse_spec(spec: str, group_size: int | None = None) -> tuple[str, dict]:
    """``"lift+place:group_size=4,coarse=l2"`` -> ("lift+place", {"group_size": 4, "coarse": "l2"}).

    PLACE without an explicit ``group_size`` gets ``group_size`` (the sweep's K)."""
    name, _, rest = spec.partition(":")
    if name not in OBJECTIVES:
        raise ValueError(
            f"unknown objective {name!r} in spec {spec!r}; choose one of {sorted(OBJECTIVES)}"
        )
    options = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"objective option {item!r} in {spec!r} is not key=value")
        options[key.strip()] = parse_scalar(val.strip())
    if name == "lift+place" and group_size is not None:
        options.setdefault("group_size", group_size)
    return name, options


def label(spec: str, group_size: int | None = None) -> str:
    """A reader's name for an objective spec: ``LIFT+PLACE (K=16)``, ``LIFT+PLACE (K=16, w=1)``."""
    name, options = parse_spec(spec, group_size)
    if name in ("tinyfusion", "bksdm"):
        kd = options.get("kd", "outkd")
        return recipe_label(kd, options.get("group_size", 16), OBJECTIVES[name].label)
    bits = []
    if "group_size" in options:
        bits.append(f"K={options.pop('group_size')}")
    schedule = options.pop("schedule", None)
    if schedule is not None:
        bits.append("w=1" if schedule == "none" else f"w {schedule}")
    scale = options.pop("coarse_scale", None)
    if scale is not None:
        bits.append(f"coarse x{scale}" if scale == PER_ELEMENT else f"coarse x{scale:g}")
    bits += [f"{k}={v}" for k, v in options.items()]
    base = OBJECTIVES[name].label
    return f"{base} ({', '.join(bits)})" if bits else base
