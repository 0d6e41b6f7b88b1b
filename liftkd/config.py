"""Profiles: every number a run depends on, in one resolved, serialisable object.

A profile (``liftkd.profiles``: smoke, cpu, gpu; its sections: ``liftkd.sections``) is resolved
once (``get_profile(name, **overrides)``, or ``resolve_profile`` with the notebooks' parameters),
written next to every result (``Profile.to_dict``) and never changed by the code that uses it.
Resolving checks every setting by type, range and shape: a bad value is a
:class:`SettingsError` naming the setting, the value and what is allowed, and an unknown name
lists the closest valid ones. The sections' classes are imported from here too.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any

from pydantic import TypeAdapter, ValidationError

from liftkd.profiles import PROFILES
from liftkd.sections import (
    PART_IMAGES,
    AnalysisConfig,
    AutoencoderConfig,
    BackboneKDConfig,
    CapacityConfig,
    ClassifierConfig,
    DataConfig,
    DiffusionConfig,
    DistillConfig,
    DiTConfig,
    DiTKDConfig,
    LatentConfig,
    Profile,
    PruningConfig,
    RegimeConfig,
    SamplingConfig,
    SettingsError,
    TrainConfig,
    UNetConfig,
)

__all__ = [
    "PART_IMAGES",
    "PROFILES",
    "AnalysisConfig",
    "AutoencoderConfig",
    "BackboneKDConfig",
    "CapacityConfig",
    "ClassifierConfig",
    "DataConfig",
    "DiffusionConfig",
    "DistillConfig",
    "DiTConfig",
    "DiTKDConfig",
    "LatentConfig",
    "Profile",
    "PruningConfig",
    "RegimeConfig",
    "SamplingConfig",
    "SettingsError",
    "validate_recorded",
    "TrainConfig",
    "UNetConfig",
    "get_profile",
    "parse_overrides",
    "parse_scalar",
    "resolve_profile",
    "validate",
]


def parse_scalar(text: str) -> int | float | bool | str:
    """A setting written as text (a spec option, a CSV cell) as the value it names."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _closest(name: str, options) -> str:
    near = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    return f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


def _set(tree: dict, path: list[str], value: Any, full: str) -> None:
    """Put ``value`` at ``path`` of the profile's nested dict, refusing names it does not have."""
    head, rest = path[0], path[1:]
    if not isinstance(tree, dict) or head not in tree:
        where = ".".join(full.split(".")[: len(full.split(".")) - len(rest) - 1])
        valid = sorted(tree) if isinstance(tree, dict) else []
        raise SettingsError(
            f"unknown setting {full!r}{_closest(head, valid)} (valid names"
            f"{' in ' + repr(where) if where else ''}: {', '.join(valid)})"
        )
    if rest:
        _set(tree[head], rest, value, full)
    elif isinstance(value, dict) and isinstance(tree[head], dict):
        for key, v in value.items():
            _set(tree[head], str(key).split("."), v, f"{full}.{key}")
    else:
        tree[head] = None if value is NULL else value


def _message(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        loc = [str(p) for p in e["loc"]]
        entry = next((p for p in loc if p.isdigit()), None)
        name = ".".join(p for p in loc if not p.isdigit())
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "value_error":
            lines.append(msg)
            continue
        where = f"setting {name!r}" + (f" (entry {entry})" if entry is not None else "")
        lines.append(f"{where} = {e['input']!r}: {msg}")
    return "; ".join(lines)


_PROFILE = TypeAdapter(Profile)


def validate(profile: Profile | dict) -> Profile:
    """The profile with every setting checked (type, range, shape); :class:`SettingsError` if not."""
    data = dataclasses.asdict(profile) if dataclasses.is_dataclass(profile) else profile
    try:
        return _PROFILE.validate_python(data)
    except ValidationError as err:
        raise SettingsError(_message(err)) from None
    except SettingsError:
        raise


def validate_recorded(tree: dict) -> Profile:
    """A profile as a results file or a run folder recorded it, brought up to today's sections
    and checked: results written before ``distill.train.steps`` became empty recorded the value
    it held then (never read: ``distill.steps`` gives each ratio's steps); results written
    before the bootstrap SEs recorded ``fid_parts`` (the old SE's split, gone)."""
    distill = dict(tree.get("distill") or {})
    distill.pop("fid_parts", None)
    if isinstance(distill.get("train"), dict):
        distill["train"] = {**distill["train"], "steps": None}
    tree = {**tree, "distill": distill} if "distill" in tree else dict(tree)
    for path in ("dit_kd", "latent"):
        section = tree.get(path)
        if isinstance(section, dict) and isinstance(section.get("kd"), dict):
            tree[path] = {
                **section,
                "kd": {k: v for k, v in section["kd"].items() if k != "fid_parts"},
            }
    return validate(tree)


class _Null:
    """An override's explicit ``null`` (or ``~``): the setting becomes None, as the gpu profile's
    ``{pretrained_teacher: null}`` asks (a plain None means "not given" to ``get_profile``)."""

    def __repr__(self) -> str:
        return "null"


NULL = _Null()


def _load_yaml(text: str) -> Any:
    """YAML, with an explicit ``null`` read as :data:`NULL` and an empty value as None."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("tag:yaml.org,2002:null", lambda _, node: NULL if node.value else None)
    return yaml.load(text, Loader=Loader)  # noqa: S506 (a SafeLoader)


def _check_values(tree: dict, prefix: str = "") -> None:
    """Refuse an override without a value: YAML reads ``{teacher.steps:5}`` (no space after the
    colon) as a key with no value, and ``{teacher.steps: }`` as None; both would change nothing."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _check_values(value, name + ".")
        elif value is None:
            hint = (
                f"; YAML needs a space after the colon: '{{{name.replace(':', ': ', 1)}}}'"
                if ":" in str(key)
                else f"; give one, e.g. '{{{name}: VALUE}}' (null: none, where a setting may be none)"
            )
            raise SettingsError(f"override {name!r} has no value{hint}")


def parse_overrides(text: str | dict | None) -> dict:
    """Overrides as the command lines and make take them: a YAML mapping of settings by dotted
    name, ``{teacher.steps: 100, data.name: folder}`` (JSON is YAML too: one syntax everywhere).
    Every override needs a value: one without (a missing space after a colon) is an error;
    ``null`` is a value (:data:`NULL`: the setting becomes None)."""
    if text is None:
        return {}
    if isinstance(text, dict):
        value = dict(text)
    else:
        import yaml

        try:
            value = _load_yaml(text)
        except yaml.YAMLError as err:
            raise SettingsError(f"overrides {text!r} are not YAML: {err}") from None
        if value is None or value is NULL:
            return {}
        if not isinstance(value, dict):
            raise SettingsError(
                "overrides must be a mapping of settings such as '{teacher.steps: 100}', "
                f"got {text!r}"
            )
    _check_values(value)
    return value


def get_profile(name: str, /, **overrides: Any) -> Profile:
    """The profile ``name`` with overrides applied, every setting checked.

    Overrides are dotted paths or section dicts: ``get_profile("cpu", **{"teacher.steps": 100})``,
    ``get_profile("cpu", teacher={"steps": 100})``, ``{"analysis.kd.steps": 50}``. ``None``
    values are ignored, so notebook parameters left at ``None`` keep the profile's value; ``NULL``
    sets a setting to None.
    """
    if name not in PROFILES:
        raise SettingsError(
            f"unknown profile {name!r}{_closest(str(name), PROFILES)}; choose one of {sorted(PROFILES)}"
        )
    if "name" in overrides:
        raise SettingsError(
            f"the profile's name is not a setting (an override gave {overrides['name']!r}): "
            "choose the profile with PROFILE=... (make) or --profile"
        )
    tree = dataclasses.asdict(PROFILES[name]())
    for key, value in overrides.items():
        if value is not None:
            _set(tree, str(key).split("."), value, str(key))
    return validate(tree)


def resolve_profile(
    name: str, overrides: str | dict | None = None, /, **parameters: Any
) -> Profile:
    """The profile of a notebook or a command line: ``name`` with ``overrides`` (make's
    OVERRIDES, a mapping or YAML text) and the notebook's own parameters by dotted name
    (``**{"teacher.steps": TEACHER_STEPS}``; None keeps the value the overrides or the profile
    give). A setting given both ways with two values is an error naming both."""
    merged = parse_overrides(overrides)
    for key, value in parameters.items():
        if value is None:
            continue
        if key in merged and merged[key] != value:
            raise SettingsError(
                f"setting {key!r} is given twice: {merged[key]!r} in the overrides and {value!r} "
                "as a parameter; give it once"
            )
        merged[key] = value
    return get_profile(name, **merged)
