"""The sweep's results gathered for notebook 05: per-student rows, tables over seeds, curves.

Reads only what notebook 04 saved (``FIGURES_DIR/04_distill/<job>.json``); computes nothing anew.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from liftkd.claims import mean_fid


def load_jobs(folder: str | Path, profile_name: str | None = None) -> list[dict]:
    """Every job result in ``folder`` (its ``results`` with ``meta`` beside), sorted by name."""
    jobs = []
    for path in sorted(Path(folder).glob("*.json")):
        blob = json.loads(path.read_text())
        res = blob.get("results", {})
        if "rows" not in res:
            continue
        if profile_name and blob.get("meta", {}).get("profile", {}).get("name") != profile_name:
            continue
        jobs.append({**res, "meta": blob.get("meta", {})})
    if not jobs:
        raise FileNotFoundError(
            f"no job results in {folder}: run the sweep first (make sweep PROFILE=...)"
        )
    return jobs


def student_rows(jobs: list[dict]) -> list[dict]:
    """One row per trained student, with its job's costs."""
    out = []
    for job in jobs:
        for row in job["rows"]:
            out.append({**row, "macs": job["student_costs"]["macs"]})
    return out


def _spread(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def table(rows: list[dict], group: str = "main") -> list[dict]:
    """Ratio x objective: FID (mean, sd over seeds), KID, precision, recall, size, status."""
    cells = defaultdict(list)
    for r in rows:
        if r["group"] == group:
            cells[(float(r["ratio"]), r["objective"])].append(r)
    order = {o: i for i, o in enumerate(dict.fromkeys(r["objective"] for r in rows))}
    out = []
    for (ratio, _obj), rs in sorted(cells.items(), key=lambda kv: (kv[0][0], order[kv[0][1]])):
        fid, fid_sd = mean_fid(rs)

        def avg(key, rs=rs):
            vals = [float(r[key]) for r in rs if r.get(key) is not None]
            return statistics.fmean(vals) if vals else math.nan

        statuses = [r["status"] for r in rs]
        out.append(
            {
                "ratio": ratio,
                "objective": rs[0]["label"],
                "seeds": len(rs),
                "fid": fid,
                "fid_sd": fid_sd,
                "kid": avg("kid"),
                "precision": avg("precision"),
                "recall": avg("recall"),
                "params": rs[0].get("params"),
                "macs": rs[0].get("macs"),
                "status": ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))),
                "steps": rs[0]["steps"],
            }
        )
    return out


def pivot(table_rows: list[dict]) -> list[dict]:
    """The paper's layout: one row per ratio, one FID column per objective (mean ± sd)."""
    out = defaultdict(dict)
    for r in table_rows:
        cell = f"{r['fid']:.1f}" if not math.isnan(r["fid"]) else "diverged"
        if r["seeds"] > 1 and not math.isnan(r["fid"]):
            cell += f" ± {r['fid_sd']:.1f}"
        if "did not" in r["status"] or "diverged" in r["status"]:
            cell += " *"  # not converged by the end (or diverged)
        out[r["ratio"]].update({"pruning": f"{r['ratio']:.0%}", "params": r["params"]})
        out[r["ratio"]][r["objective"]] = cell
    return [out[k] for k in sorted(out)]


def curves(rows: list[dict], key: str = "fid_curve") -> dict[float, dict[str, tuple]]:
    """ratio -> {label: (steps, values)} of one seed-averaged curve per objective."""
    acc = defaultdict(lambda: defaultdict(list))
    for r in rows:
        acc[float(r["ratio"])][r["label"]].append(
            {int(k): float(v) if v is not None else math.nan for k, v in r[key].items()}
        )
    out = {}
    for ratio, by_label in acc.items():
        out[ratio] = {}
        for lab, cs in by_label.items():
            steps = sorted(cs[0])
            out[ratio][lab] = (steps, [statistics.fmean(c[s] for c in cs) for s in steps])
    return out
