"""What a training leaves on disk, and how it is read back: the checkpoint, the loss history,
the EMA snapshots (``liftkd.training.train`` writes them).

- ``checkpoint.pt``: model, EMA, optimiser, step and the number of history rows, written whole
  by rename every ``checkpoint_every`` steps; a read without the folder's lock sees the old file
  or the new one.
- ``history.csv``: one row per step (loss, its parts, learning rate, gradient norm), **appended**
  at each checkpoint, never rewritten (a run of 800k steps would otherwise write its whole history
  at every save). It is appended before the checkpoint that counts its rows is written, so on
  resume it holds at least those rows; rows of steps after the checkpoint (an interruption
  between the two writes) are cut off then.
- ``snapshots/step_K.pt``: the weights (or their EMA) at chosen steps, for evaluations over
  training.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
import warnings
from pathlib import Path

from liftkd.config import TrainConfig
from liftkd.locks import replacing
from liftkd.runs import load_torch, read_rows

CHECKPOINT = "checkpoint.pt"
HISTORY = "history.csv"
SNAPSHOTS = "snapshots"
# settings that may change between an interrupted run and its resumption
RESUMABLE_CHANGES = {"steps", "checkpoint_every"}


def eval_steps(steps: int, evaluations: int) -> list[int]:
    """``evaluations`` evenly spaced steps, the last one ``steps``."""
    if evaluations < 1 or steps % evaluations:
        raise ValueError(f"{evaluations} evaluations must divide {steps} steps evenly")
    every = steps // evaluations
    return [every * (i + 1) for i in range(evaluations)]


def checkpoint_interval(eval_every: int, target: int) -> int:
    """The largest divisor of ``eval_every`` not above ``target``: checkpoints fall on evaluations."""
    return max(d for d in range(1, min(eval_every, target) + 1) if eval_every % d == 0)


def snapshot_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / SNAPSHOTS / f"step_{step}.pt"


def list_snapshots(run_dir: str | Path) -> dict[int, Path]:
    """The snapshots a run kept, ``{step: path}`` in step order."""
    found = {}
    for path in (Path(run_dir) / SNAPSHOTS).glob("step_*.pt"):
        m = re.fullmatch(r"step_(\d+)\.pt", path.name)
        if m:
            found[int(m.group(1))] = path
    return dict(sorted(found.items()))


def write_history(history: list[dict], path: Path) -> None:
    """The whole history as one CSV file, written by rename."""
    if not history:
        return
    keys = list(dict.fromkeys(k for row in history for k in row))
    with replacing(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def _header(path: Path) -> list[str]:
    with open(path, newline="") as f:
        return next(csv.reader(f), [])


def append_history(history: list[dict], written: int, path: Path) -> int:
    """Add ``history[written:]`` to ``path`` (the rows before are there already); returns the
    rows the file now holds. A row with a column the file has not seen rewrites it whole once."""
    new = history[written:]
    if not new:
        return written
    keys = _header(path) if written and path.exists() else []
    if not keys or not set(k for row in new for k in row) <= set(keys):
        write_history(history, path)
        return len(history)
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=keys, restval="").writerows(new)
        f.flush()
        os.fsync(f.fileno())
    return len(history)


def read_history(path: Path, steps: int) -> list[dict]:
    """The rows of the first ``steps`` steps of a history file, numbers parsed, empty cells left
    out (rows of later steps came after the checkpoint; a resumed run writes the file anew from
    these rows before it appends to it)."""
    rows = read_rows(path) if path.exists() else []
    kept = [{k: v for k, v in r.items() if v is not None} for r in rows if int(r["step"]) < steps]
    if len(kept) != steps:
        warnings.warn(
            f"{path} holds {len(kept)} of the {steps} steps its checkpoint has trained; the loss "
            "history of the others is lost (the training itself is whole)",
            stacklevel=2,
        )
    return kept


def config_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)


def check_resumable(saved: dict, cfg: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint written with other training settings."""
    now = config_dict(cfg)
    # a setting added since the checkpoint was written had its default then
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    saved = {k: saved.get(k, defaults.get(k)) for k in now}
    diff = {k: (saved[k], now[k]) for k in now if k not in RESUMABLE_CHANGES and saved[k] != now[k]}
    if diff:
        changes = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{path} was written with other training settings ({changes}); "
            "use another run folder, or delete it to start over"
        )


def read_checkpoint(ckpt_path: Path) -> dict | None:
    """The training checkpoint, or None when there is none yet."""
    if not ckpt_path.exists():
        return None
    return load_torch(ckpt_path, "a training checkpoint", "delete it to start this training over")


def history_of(ckpt: dict, run_dir: Path) -> list[dict]:
    """The loss history up to a checkpoint's step: from ``history.csv``, or from the checkpoint
    itself where it was written before the history was appended to its own file."""
    if "history" in ckpt:
        return ckpt["history"]
    return read_history(run_dir / HISTORY, ckpt["step"])
