"""Results on disk: every result JSON carries its resolved config, seed, versions and commit.

``write_results(path, results, profile)`` writes ``{"results": ..., "meta": ...}`` where ``meta``
holds the profile (resolved), the library versions, the git commit (and whether the tree had
uncommitted changes), the host and the time. ``read_results`` reads it back.

A run folder remembers the settings that shaped what it holds (``remember``): the teacher (data,
model, noise schedule, training), the students (pruning); a later call with other such settings
is refused, with the differences, instead of silently reusing the old teacher.

Also here: tables that grow one row at a time and survive an interruption (``append_row``,
``read_rows``). Locks on files and folders are in :mod:`liftkd.locks`.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import os
import platform
import subprocess
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

from liftkd.config import SettingsError, parse_scalar
from liftkd.locks import replacing

LIBRARIES = (
    "torch",
    "torchvision",
    "diffusers",
    "torch-pruning",
    "torch-fidelity",
    "accelerate",
    "numpy",
)


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(cwd: str | Path | None = None) -> dict[str, Any]:
    """HEAD and whether tracked files (figures/ aside) differ from it; ``None`` outside a repository."""
    cwd = Path(cwd or Path(__file__).resolve().parent)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            # outputs under figures/ are what a run writes, not a change of the code that made it
            [
                "git",
                "status",
                "--porcelain",
                "--untracked-files=no",
                "--",
                ".",
                ":(exclude)figures",
            ],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return {"commit": head, "dirty": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}


def run_metadata(profile: Any = None, **extra: Any) -> dict[str, Any]:
    import torch

    meta = {
        "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "versions": library_versions(),
        "git": git_commit(),
    }
    if profile is not None:
        meta["profile"] = profile.to_dict() if hasattr(profile, "to_dict") else profile
    meta.update(extra)
    return meta


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return _jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
        return x.item()
    return x


def write_results(
    path: str | Path, results: dict[str, Any], profile: Any = None, **extra: Any
) -> Path:
    """Write ``results`` with their metadata to ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"results": _jsonable(results), "meta": _jsonable(run_metadata(profile, **extra))}
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(blob, indent=2, sort_keys=False) + "\n")
    return path


def read_results(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())["results"]


class CorruptFileError(ValueError):
    """A file the project wrote cannot be read back (truncated, empty, or not ours)."""


def save_torch(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file, then renamed: an interruption leaves the old file."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        torch.save(obj, tmp)
    return path


def load_torch(path: str | Path, what: str, remedy: str = "delete it to have it made again") -> Any:
    """``torch.load`` with ``weights_only=True`` (tensors and plain containers only, no code);
    a missing or unreadable file is an error that names it, what it is, and what to do."""
    import torch

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} ({what}) does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, empty, foreign, or holding pickled classes
        first = (str(err).strip().splitlines() or [""])[0][:160]
        raise CorruptFileError(
            f"{path} ({what}) cannot be read: {type(err).__name__}: {first}; {remedy}"
        ) from None


def _whole_rows(path: Path) -> str:
    """The table's text up to its last complete row: every row ``append_row`` writes ends with
    a line break, so text after the last one is a row cut short (a full disk, a copy broken
    off), dropped here so that it is measured again rather than read half."""
    text = path.read_text() if path.exists() else ""
    if text and not text.endswith("\n"):
        cut = text[text.rfind("\n") + 1 :]
        warnings.warn(
            f"{path}: its last row was cut short ({cut[:60]!r}); it is left out", stacklevel=3
        )
        text = text[: len(text) - len(cut)]
    return text


def read_rows(path: str | Path) -> list[dict]:
    """The rows of a CSV table written by ``append_row``, values parsed (empty cells are None);
    a last row cut short is left out."""
    text = _whole_rows(Path(path))
    return [
        {k: parse_scalar(v) if v != "" else None for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text, newline=""))
    ]


def append_row(path: str | Path, row: dict, columns: list[str]) -> None:
    """Add one row to a CSV table (header first if new). The table is rewritten to a temporary
    file and renamed, so an interruption leaves the previous rows whole (and a row cut short by
    something else is dropped before the new one is added)."""
    path = Path(path)
    old = _whole_rows(path)
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        f.write(old)
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        if not old:
            w.writeheader()
        w.writerow(row)
        f.flush()
        os.fsync(f.fileno())


SETTINGS_DIR = "settings"
# what shapes a run's teacher and its students (training length may grow: a run resumes)
SHAPING = {
    "teacher": ("data", "unet", "diffusion", "teacher", "pretrained_teacher"),
    # (each student file is named by its ratio and criterion: those two may vary in one folder)
    "students": (
        "pruning.rounding",
        "pruning.threshold",
        "pruning.timestep_stride",
        "pruning.batch_size",
        "pruning.seed",
    ),
    # the DiT and latent paths (notebooks 06 and 07): their own models, on the run's data
    "dit": ("data", "diffusion", "dit", "dit_kd"),
    "latent": ("data", "diffusion", "latent"),
}
_MAY_CHANGE = {
    "teacher.steps",
    "teacher.checkpoint_every",
    "dit_kd.kd.seeds",  # more seeds add jobs beside the others
    "latent.kd.seeds",
}


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def shaping_settings(profile: Any, part: str) -> dict:
    """The settings of ``profile`` that shape ``part`` ("teacher", "students", "dit" or
    "latent"), flattened."""
    every = _flat(_jsonable(profile.to_dict()))
    names = SHAPING["teacher"] + (SHAPING["students"] if part == "students" else ())
    names = SHAPING[part] if part in ("dit", "latent") else names
    return {
        k: v
        for k, v in every.items()
        if any(k == n or k.startswith(n + ".") for n in names) and k not in _MAY_CHANGE
    }


def settings_diff(before: dict, now: dict) -> str:
    """``"name: old -> new, ..."`` over the settings that differ; empty when none does."""
    changed = {
        k: (before.get(k), now.get(k)) for k in {*before, *now} if before.get(k) != now.get(k)
    }
    return ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))


def read_settings(path: str | Path, what: str) -> dict:
    """A settings record written by :func:`remember_at`; a damaged one is named, with what to do."""
    path = Path(path)
    try:
        saved = json.loads(path.read_text())
        if not isinstance(saved, dict):
            raise ValueError(f"a {type(saved).__name__}, not a mapping of settings")
        return saved
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptFileError(
            f"{path} (the settings {what} was made with) cannot be read: "
            f"{type(err).__name__}: {str(err)[:160]}; if it was made with the settings you give "
            "now, delete this file to have it written again, else delete the folder it describes"
        ) from None


def remember_at(path: str | Path, now: dict, what: str, write: bool = True) -> None:
    """Refuse ``what`` if the settings recorded at ``path`` differ from ``now``; record ``now``
    the first time (unless ``write`` is False: a check only)."""
    path = Path(path)
    if path.exists():
        diff = settings_diff(read_settings(path, what), now)
        if diff:
            raise SettingsError(
                f"{what} was made with other settings ({diff}); use another RUN_NAME "
                "(make ... RUN_NAME=<new name>) or delete the folder"
            )
        return
    if write:
        path.parent.mkdir(parents=True, exist_ok=True)
        with replacing(path) as tmp:
            tmp.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")


def remember(run_dir: str | Path, part: str, profile: Any, write: bool = True) -> None:
    """Refuse to reuse ``run_dir``'s ``part`` if it was made with other shaping settings; record
    them the first time (unless ``write`` is False: a check only)."""
    remember_at(
        Path(run_dir) / SETTINGS_DIR / f"{part}.json",
        shaping_settings(profile, part),
        f"the {part.rstrip('s')} of the run folder {run_dir}",
        write,
    )
