"""The objectives by name: the registry, their spec strings, and a reader's label for each.

A spec names a registered objective and its options after a colon, the form the profiles and
the sweep use: ``"lift+place:group_size=4,coarse=l2"``. ``build_objective`` makes one from a
name and keyword options; ``parse_spec`` turns a spec into both; ``label`` gives the name a
table prints (``LIFT+PLACE (K=16, w=1)``).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from liftkd.config import parse_scalar
from liftkd.features import feature_widths
from liftkd.lift import LIFT, PLACE
from liftkd.losses import DIST, FeatKD, NormFeatKD, Objective, OutFeatKD, OutKD, TaskOnly
from liftkd.recipes import BKSDMKD, TinyFusionKD, recipe_label

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
    if name in _FEATURE_OBJECTIVES and student is not None and teacher is not None:
        if example_inputs is None:
            raise ValueError("feature objectives need example_inputs to size their adapters")
        level = cls.feature_level
        options.setdefault("student_widths", feature_widths(student, example_inputs, level))
        options.setdefault("teacher_widths", feature_widths(teacher, example_inputs, level))
        from diffusers import DiTTransformer2DModel

        options.setdefault("tokens", isinstance(student, DiTTransformer2DModel))
    return cls(**options)


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
        bits.append(f"coarse x{scale:g}")
    bits += [f"{k}={v}" for k, v in options.items()]
    base = OBJECTIVES[name].label
    return f"{base} ({', '.join(bits)})" if bits else base
