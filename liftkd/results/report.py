"""KD jobs' results summarised: the tables over seeds and the curves of notebooks 05, 06 and 07.

``loss_summary`` turns a job's loss history into windowed means (notebook 04). The rest reads
only what the notebooks saved (``FIGURES_DIR/04_distill/<job>.json``, the rows of
``liftkd.stages.kd_job.summarise``) and computes nothing anew.

Long because every table notebook 05 shows (the main table, its pivot, the ablations, the
authors' recipe beside this scale's, the DiT and latent tables) is built here from the same
rows, and they are read together.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

from liftkd.measure.rules import mean_fid, restatus
from liftkd.runs import load_torch
from liftkd.stages.kd_job import FINAL_SAMPLES
from liftkd.stages.sweep.jobs import check_result_settings, every_job, job_dir, split_job_name

# the DiT and latent paths' tables (notebooks 06 and 07)
BACKBONE_COLUMNS = [
    "objective",
    "fid",
    "fid_sd",
    "fid_se",
    "fid_seeds",
    "seeds",
    "params",
    "status",
]


def _num(x) -> float:
    return math.nan if x is None or x == "" else float(x)


def loss_summary(history_path: str | Path, specs: list[str], window: int = 20) -> dict:
    """Each objective's loss parts averaged over windows of ``window`` steps (for the figures and
    the results file; the full per-step history stays in ``history.csv``)."""
    import pandas as pd

    hist = pd.read_csv(history_path)
    bins = hist["step"] // window
    out = {}
    for spec in specs:
        cols = {c.split("/", 1)[1]: c for c in hist.columns if c.startswith(f"{spec}/")}
        means = hist[list(cols.values())].groupby(bins).mean()
        out[spec] = {"step": [int((b + 1) * window) for b in means.index]}
        out[spec].update({part: means[c].round(6).tolist() for part, c in cols.items()})
    return out


def diverged_steps(result, specs) -> dict[str, int]:
    """``{spec: the step its student diverged at, or -1}`` from a job's training result."""
    return {spec: int(result.ema.diverged_at[i]) for i, spec in enumerate(specs)}


def final_samples(run_dir: str | Path, job_name: str, labels: dict[str, str], n: int = 20):
    """``{label: the first n final samples}`` of a job's students (what ``evaluate_job`` kept in
    the run folder; empty when the run folder is not at hand)."""
    path = job_dir(run_dir, job_name) / FINAL_SAMPLES
    if not path.exists():
        return {}
    kept = load_torch(
        path, "a job's final samples", "delete it and run the job's notebook 04 again"
    )
    return {lab: kept[spec][:n] for spec, lab in labels.items() if spec in kept}


def load_jobs(folder: str | Path, profile=None) -> list[dict]:
    """Every job result in ``folder`` (its ``results`` with ``meta`` beside), sorted by name.
    With ``profile``, only the results of that profile's sweep: its name, and a (group, ratio,
    part) that its plan trains (any seed), so that files of an earlier plan left in the folder
    (a grid study split otherwise) are not mixed in; a job of the plan made with other settings
    (steps, objectives, evaluations) is an error naming them, never mixed in."""
    wanted = None
    if profile is not None:
        wanted = {(j.group, float(j.ratio), j.part) for j in every_job(profile)}
    jobs = []
    for path in sorted(Path(folder).glob("*.json")):
        blob = json.loads(path.read_text())
        res = blob.get("results", {})
        if "rows" not in res:
            continue
        if profile is not None and (
            blob.get("meta", {}).get("profile", {}).get("name") != profile.name
            or (res.get("group"), float(res.get("ratio", -1)), _part(res.get("job", path.stem)))
            not in wanted
        ):
            continue
        if profile is not None:
            check_result_settings(path, blob, profile)
        jobs.append({**res, "meta": blob.get("meta", {})})
    if not jobs:
        raise FileNotFoundError(
            f"no job results in {folder}: run the sweep first (make sweep PROFILE=...)"
        )
    return jobs


def _part(name: str) -> int | None | str:
    """The part of a split study's job named ``name`` (None: not split; a name that does not
    parse: itself, which no plan wants)."""
    try:
        return split_job_name(name)[3]
    except ValueError:
        return name


AUTHORS = "authors"  # the job group of the authors' recipe (liftkd.stages.sweep.jobs)
SWEEP_GROUPS = ("main", "ablation")  # this scale's recipe: what the figures of the sweep show
AUTHORS_LABEL = " (authors' recipe)"  # what its students' labels end with


def student_rows(jobs: list[dict], profile=None) -> list[dict]:
    """One row per trained student, with its job's costs; with ``profile``, statuses by
    today's rule (``restatus``, the profile's thresholds, the job's recognisable threshold). The
    authors' recipe's students keep their objective's spec and say so in their label."""
    out = []
    for job in jobs:
        rows = [{**row, "macs": job["student_costs"]["macs"]} for row in job["rows"]]
        if job["group"] == AUTHORS:
            rows = [{**r, "label": r["label"] + AUTHORS_LABEL} for r in rows]
        if profile is not None:
            d = profile.distill
            threshold = job["reference"]["recognisable"]
            rows = restatus(rows, threshold, d.converged_within, d.converged_evals)
        out += rows
    return out


def cross_pairs(jobs: list[dict], run_dir, saved) -> dict[str, dict[str, float]]:
    """Paired SEs between the students of different jobs of one (ratio, seed) (``"job|spec"`` ->
    ``{"job|spec": SE}``, ``liftkd.stages.kd_job.cross_job_bootstrap``) from the final features
    in ``run_dir``, written to ``saved`` (a JSON file beside the figures). A pair whose features
    are not in ``run_dir`` (a job scored in another run folder) keeps what ``saved`` holds for
    it; without either, the SEs add in quadrature."""
    from liftkd.stages.kd_job import cross_job_bootstrap

    groups = defaultdict(dict)
    for job in jobs:
        groups[(float(job["ratio"]), int(job["seed"]))][job["job"]] = job_dir(run_dir, job["job"])
    out = {}
    for (_, seed), folders in groups.items():
        if len(folders) > 1:
            out.update(cross_job_bootstrap(folders, seed))
    saved = Path(saved)
    before = json.loads(saved.read_text()) if saved.exists() else {}
    names = {job["job"] for job in jobs}
    merged = {
        key: {k: v for k, v in partners.items() if k.split("|")[0] in names}
        for key, partners in before.items()
        if key.split("|")[0] in names
    }
    for key, partners in out.items():
        merged.setdefault(key, {}).update(partners)
    if out:
        saved.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def with_pairs(rows: list[dict], pairs: dict[str, dict[str, float]]) -> list[dict]:
    """The rows with each student's ``cross_paired_se`` (``cross_pairs``) where it has one."""
    return [
        {**r, "cross_paired_se": pairs[key]}
        if (key := f"{r.get('job')}|{r['objective']}") in pairs
        else r
        for r in rows
    ]


def backbone_markdown(results: dict | None, kd, title: str) -> str | None:
    """The table of a DiT or latent path's students (notebook 06 or 07's ``results``) with
    statuses by today's rule and the path's thresholds (``kd``: its ``BackboneKDConfig``); None
    when the path has not run."""
    from liftkd.results.plots import markdown_table

    if results is None:
        return None
    threshold = results["reference"]["recognisable"]
    rows = restatus(results["rows"], threshold, kd.converged_within, kd.converged_evals)
    return markdown_table(table(rows, group=None, columns=BACKBONE_COLUMNS), title)


RATIO_GROUPS = ("main", "trend")  # every ratio's main objectives: the sweep's and make trend's


def table(rows: list[dict], group: str | tuple | None = "main", columns=None) -> list[dict]:
    """Ratio x objective: FID (mean, sd over seeds), KID, precision, recall, size, status, over
    the rows of ``group`` (a job group or several; None: every row, as the DiT and latent
    paths' rows, which have no ratio), with only ``columns`` when given."""
    groups = (group,) if isinstance(group, str) else group
    cells = defaultdict(list)
    for r in rows:
        if groups is None or r.get("group") in groups:
            ratio = r.get("ratio")
            cells[(None if ratio is None else float(ratio), r["objective"])].append(r)
    order = {o: i for i, o in enumerate(dict.fromkeys(r["objective"] for r in rows))}
    out = []
    for (ratio, _obj), rs in sorted(
        cells.items(), key=lambda kv: (kv[0][0] or 0.0, order[kv[0][1]])
    ):
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
                "fid_se": avg("fid_se"),
                "fid_seeds": " / ".join(f"{_num(r['fid']):.1f}" for r in rs),
                "kid": avg("kid"),
                "precision": avg("precision"),
                "recall": avg("recall"),
                "params": rs[0].get("params"),
                "macs": rs[0].get("macs"),
                "status": ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses))),
                "steps": rs[0]["steps"],
            }
        )
    return [{k: r[k] for k in columns} for r in out] if columns else out


def pivot(table_rows: list[dict]) -> list[dict]:
    """The paper's layout: one row per ratio, one FID column per objective (mean ± sd over seeds,
    and the mean standard error of one seed's FID in brackets); * marks a student that did not
    converge on every seed."""
    out = defaultdict(dict)
    for r in table_rows:
        cell = f"{r['fid']:.3g}" if not math.isnan(r["fid"]) else "diverged"
        if r["seeds"] > 1 and not math.isnan(r["fid"]):
            cell += f" ± {r['fid_sd']:.2g}"
        if not math.isnan(r.get("fid_se", math.nan)):
            cell += f" (SE {r['fid_se']:.2g})"
        if r["status"] != f"{r['seeds']} converged":
            cell += " *"  # not converged on every seed (or diverged, or does not generate)
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


def group_rows(rows: list[dict], group: str) -> list[dict]:
    return [r for r in rows if r["group"] == group]


def this_recipe(rows: list[dict], ratio: float | None = None) -> list[dict]:
    """The main and ablation jobs' rows (this scale's recipe), at ``ratio`` when given."""
    return [
        r
        for r in rows
        if r["group"] in SWEEP_GROUPS and (ratio is None or math.isclose(float(r["ratio"]), ratio))
    ]


def recipe_table(rows: list[dict], ratio: float) -> list[dict]:
    """Each objective of the authors' recipe at ``ratio`` beside the same objective under this
    scale's recipe (the main job): final FID per recipe (mean ± sd over seeds, mean SE), the
    difference authors - this scale seed by seed (two jobs of one seed sample the same noises:
    the paired SE across jobs, ``cross_paired_se``, or SEs in quadrature without it),
    its seed-level mean and SE, and the verdict of ``rules.compare``."""
    from liftkd.measure.rules import comparison

    ours = this_recipe(rows, ratio)
    theirs = [r for r in group_rows(rows, AUTHORS) if math.isclose(float(r["ratio"]), ratio)]
    out = []
    for spec in dict.fromkeys(r["objective"] for r in theirs):
        a = [r for r in theirs if r["objective"] == spec]
        b = [r for r in ours if r["objective"] == spec and r["group"] == "main"]
        if not b:
            continue
        c = comparison(a, b)
        verdict = {-1: "authors' better", 1: "this scale's better", 0: "within noise or mixed"}
        out.append(
            {
                "objective": b[0]["label"],
                "this scale's recipe": _cell(b),
                "authors' recipe": _cell(a),
                "difference per seed (authors - this)": ", ".join(
                    f"{p['diff']:+.3g} ± {p['se']:.2g}" for p in c["per_seed"]
                ),
                "mean difference": f"{c['mean']:+.3g}"
                + ("" if math.isnan(c["seed_se"]) else f" ± {c['seed_se']:.2g} (seeds)"),
                "verdict": verdict[c["outcome"]],
            }
        )
    return out


GRID = "grid"  # the job group of the K x coarse-term study (make grid)


def grid_lines(rows: list[dict]) -> dict:
    """The grid study's final FIDs (mean over seeds, mean SE): ``{"lines": {coarse norm: (Ks,
    FIDs, SEs)}, "controls": {label: (FID, SE)}}`` for the students without a K (w/o KD, OutKD,
    the L1 OutKD, LIFT); empty without the grid's results."""
    from liftkd.method.objectives import parse_spec

    by = defaultdict(list)
    for r in group_rows(rows, GRID):
        by[r["objective"]].append(r)
    lines, controls = defaultdict(list), {}
    for spec, rs in by.items():
        fid, _ = mean_fid(rs)
        se = statistics.fmean(_num(r.get("fid_se")) for r in rs)
        name, options = parse_spec(spec)
        if name == "lift+place" and "group_size" in options:
            lines[options.get("coarse", "l1").upper()].append((options["group_size"], fid, se))
        else:
            controls[rs[0]["label"]] = (fid, se)
    if not by:
        return {}
    return {
        "lines": {k: tuple(map(list, zip(*sorted(v), strict=True))) for k, v in lines.items()},
        "controls": controls,
    }


GRID_BASELINES = ("outkd", "outkd:norm=l1", "lift")  # what each K is set against


def grid_paired_table(rows: list[dict]) -> list[dict]:
    """Each LIFT+PLACE student of the grid study (a K and a coarse norm) against the grid's
    OutKD, L1 OutKD and LIFT of the same seed: FID(K) - FID(control) seed by seed with its
    paired SE (same noises within a job and across the grid's jobs, ``rules.diff_se``), and
    the outcome of ``rules.comparison`` ("K better", "control better" or "within noise";
    with one seed, the per-seed test alone). Empty without the grid's results."""
    from liftkd.measure.rules import comparison
    from liftkd.method.objectives import parse_spec

    by = defaultdict(list)
    for r in group_rows(rows, GRID):
        by[r["objective"]].append(r)
    controls = [(spec, by[spec]) for spec in GRID_BASELINES if by.get(spec)]
    words = {-1: "K better", 1: "control better", 0: "within noise"}
    out = []
    for spec, rs in by.items():
        name, options = parse_spec(spec)
        if name != "lift+place" or "group_size" not in options:
            continue
        line = {"objective": rs[0]["label"], "fid": _cell(rs)}
        for _, base in controls:
            c = comparison(rs, base)
            diffs = ", ".join(
                "diverged" if math.isnan(p["diff"]) else f"{p['diff']:+.3g} ± {p['se']:.2g}"
                for p in c["per_seed"]
            )
            line[f"- {base[0]['label']}"] = f"{diffs} ({words[c['outcome']]})"
        out.append(line)
    return out


def write_grid_table(rows: list[dict], path) -> str | None:
    """The grid study's table (``table`` of its job group), its markdown; None without it."""
    from liftkd.results.plots import write_table

    grid = table(rows, GRID)
    if not grid:
        return None
    markdown = write_table(
        grid, path, "The K x coarse-term grid at the aggressive ratio (make grid)"
    )
    paired = grid_paired_table(rows)
    if paired:
        path = Path(path)
        markdown += "\n\n" + write_table(
            paired,
            path.with_name(path.name + "_paired"),
            "Each K against the grid's controls: FID(K) - FID(control) per seed ± its paired SE "
            "(same noises), and which is better beyond 2 SE on every seed and by the "
            "seed-level test (one seed: the per-seed test alone, no verdict)",
        )
    return markdown


def write_recipe_table(recipes: list[dict], path, ratio: float) -> str | None:
    """``recipe_table``'s rows written as a table (``plots.write_table``), its markdown; None
    when the sweep has no authors' recipe job."""
    from liftkd.results.plots import write_table

    if not recipes:
        return None
    return write_table(
        recipes,
        path,
        f"The authors' recipe beside this scale's at {ratio:.0%} (final FID; the difference "
        "authors - this scale seed by seed ± its SE, paired across the two jobs: same noises)",
    )


def _cell(rs: list[dict]) -> str:
    fid, sd = mean_fid(rs)
    ses = [_num(r.get("fid_se")) for r in rs]
    spread = f" ± {sd:.2g} sd" if len(rs) > 1 else ""
    return (
        f"{fid:.3g}{spread} (SE {statistics.fmean(ses):.2g}) [{len(rs)} seed{'s' * (len(rs) > 1)}]"
    )


def job_names(jobs: list[dict]) -> list[str]:
    return [j["job"] for j in jobs]


def job_commits(jobs: list[dict]) -> list[str]:
    """The commits the jobs were run at (more than one: the sweep spans code changes)."""
    return sorted({str(j["meta"].get("git", {}).get("commit")) for j in jobs})


def reference_fids(jobs: list[dict]) -> tuple[float, float]:
    """(teacher FID, real-vs-real floor) under the sweep's evaluation settings."""
    ref = jobs[0]["reference"]
    return ref["teacher"]["fid"], ref["floor"]["fid"]


def teacher_final(jobs: list[dict]) -> dict | None:
    """The sweep's teacher scored as its students' final FIDs are (sample count, sampler,
    features): ``{"fid", "fid_se", ...}``, or None for jobs saved before it was recorded."""
    return jobs[0]["reference"].get("teacher_final")


def features_of(jobs: list[dict]) -> str:
    """What the sweep's FIDs are computed on ("classifier features", ...)."""
    return jobs[0]["reference"].get("features", "classifier features")


def ratios(rows: list[dict], group: str = "main") -> list[float]:
    return sorted({float(r["ratio"]) for r in rows if r["group"] == group})


def job_at(jobs: list[dict], ratio: float, group: str = "main") -> dict:
    """The first job of ``group`` at ``ratio`` (the lowest seed: jobs are sorted by name)."""
    for job in jobs:
        if job["group"] == group and math.isclose(float(job["ratio"]), ratio):
            return job
    raise KeyError(f"no {group} job at ratio {ratio}")


def samples_at(jobs: list[dict], run_dir, ratio: float, teacher_samples=None, n: int = 20):
    """``{label: samples}`` of every student of the lowest seed at ``ratio`` (main and ablation
    jobs), the teacher's first when given; empty without the run folder."""
    seed = min(int(j["seed"]) for j in jobs)
    grids = {} if teacher_samples is None else {"teacher": teacher_samples[:n]}
    for job in jobs:
        if job["group"] not in SWEEP_GROUPS:
            continue
        if math.isclose(float(job["ratio"]), ratio) and int(job["seed"]) == seed:
            grids.update(final_samples(run_dir, job["job"], job["labels"], n))
    return grids if len(grids) > (teacher_samples is not None) else {}


def ablation_table(rows: list[dict], ratio: float) -> list[dict]:
    """The LIFT rows of the main job at ``ratio`` beside the ablation job's rows."""
    main = [
        r for r in table(rows, "main") if r["ratio"] == ratio and r["objective"].startswith("LIFT")
    ]
    return main + table(rows, "ablation")


def fid_by_objective(table_rows: list[dict]) -> dict[str, tuple[list, list]]:
    """``{objective label: (ratios, FIDs)}``: the lines of FID against pruning ratio."""
    out: dict[str, tuple[list, list]] = {}
    for r in table_rows:
        xs, ys = out.setdefault(r["objective"], ([], []))
        xs.append(r["ratio"])
        ys.append(r["fid"])
    return out


def diagnosed(jobs: list[dict], ratio: float, specs: list[str]) -> dict:
    """``{spec: loss and gradient-term curves}`` of the named objectives at ``ratio``, from the
    lowest seed's main and ablation jobs (for ``liftkd.results.plots.gradient_terms``)."""
    seed = min(int(j["seed"]) for j in jobs)
    out = {}
    for job in jobs:
        if job["group"] not in SWEEP_GROUPS:
            continue
        if math.isclose(float(job["ratio"]), ratio) and int(job["seed"]) == seed:
            out.update({s: c for s, c in job["losses"].items() if s in specs})
    return {s: out[s] for s in specs if s in out}


def all_labels(jobs: list[dict]) -> dict[str, str]:
    """``{spec: label}`` over the main and ablation jobs."""
    return {
        spec: lab
        for job in jobs
        if job["group"] in SWEEP_GROUPS
        for spec, lab in job["labels"].items()
    }


def read_backbone(path: str | Path) -> dict | None:
    """A DiT or latent path's results (notebook 06 or 07) with the commit they were made at
    (``commit``), or None when the path has not run."""
    path = Path(path)
    if not path.exists():
        return None
    blob = json.loads(path.read_text())
    return {**blob["results"], "commit": blob.get("meta", {}).get("git", {}).get("commit")}


def backbone_tables(backbones: dict, profile) -> dict[str, str | None]:
    """``backbone_markdown`` of the DiT and latent paths (``backbones``: notebook 05's results by
    name, None for a path not run), keyed by their tables' file stems."""
    paths = (("dit", "06_dit", profile.dit_kd.kd), ("latent", "07_latent", profile.latent.kd))
    return {
        f"{stem}_table": backbone_markdown(
            backbones.get(name),
            kd,
            f"{name} path (notebook {stem[:2]}): final FIDs, statuses by today's rule",
        )
        for name, stem, kd in paths
    }


REGIME_RESULTS = "08_regime.json"  # notebook 08's results, in the regime's figures folder
REGIME_TABLE = "08_regime_table"  # its table of final FIDs (.md, .csv)


def read_regime(folder: str | Path) -> dict | None:
    """The regime study's results (notebook 08, in ``folder``, the regime's figures) with the
    commit they were made at, or None before ``make regime`` has run."""
    return read_backbone(Path(folder) / REGIME_RESULTS)


def regime_tables(folder: str | Path, regime: dict | None) -> dict[str, str | None]:
    """The regime's table of final FIDs for claims.md, keyed by its path from the figures
    folder (``regime/08_regime_table``); nothing before ``make regime`` has run."""
    path = Path(folder) / f"{REGIME_TABLE}.md"
    if regime is None or not path.exists():
        return {}
    return {f"{Path(folder).name}/{REGIME_TABLE}": path.read_text()}
