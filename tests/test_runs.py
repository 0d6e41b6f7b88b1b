"""Results on disk: metadata, the git commit, growing tables, the lock."""

import json
import subprocess
import threading
import time

from liftkd.config import get_profile
from liftkd.locks import locked
from liftkd.runs import append_row, git_commit, read_results, read_rows, write_results


def test_results_carry_config_versions_and_notebook(tmp_path):
    p = get_profile("smoke")
    path = write_results(tmp_path / "r.json", {"fid": 1.5}, p, notebook="x")
    blob = json.loads(path.read_text())
    assert read_results(path) == {"fid": 1.5}
    meta = blob["meta"]
    assert meta["profile"]["teacher"]["seed"] == p.teacher.seed
    assert {"torch", "diffusers", "torch-pruning", "python"} <= set(meta["versions"])
    assert meta["notebook"] == "x"


def _git(repo, *args):
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_git_commit_is_head_and_dirty_ignores_figures(tmp_path):
    repo = tmp_path / "repo"
    (repo / "figures").mkdir(parents=True)
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("a = 1\n")
    (repo / "figures" / "fig.md").write_text("old\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    assert git_commit(repo) == {"commit": head, "dirty": False}
    (repo / "figures" / "fig.md").write_text("a run redrew it\n")
    assert git_commit(repo) == {"commit": head, "dirty": False}
    (repo / "code.py").write_text("a = 2\n")
    assert git_commit(repo) == {"commit": head, "dirty": True}
    outside = tmp_path / "plain"
    outside.mkdir()
    assert git_commit(outside) == {"commit": None, "dirty": None}


def test_rows_append_and_read_back_typed(tmp_path):
    path = tmp_path / "evals.csv"
    assert read_rows(path) == []
    cols = ["objective", "step", "diverged", "fid"]
    append_row(path, {"objective": "outkd", "step": 0, "diverged": False, "fid": 12.5}, cols)
    append_row(path, {"objective": "lift", "step": 10, "diverged": True}, cols)
    assert read_rows(path) == [
        {"objective": "outkd", "step": 0, "diverged": False, "fid": 12.5},
        {"objective": "lift", "step": 10, "diverged": True, "fid": None},
    ]
    assert path.read_text().count("objective") == 1  # one header


def test_locked_lets_one_holder_in_at_a_time(tmp_path):
    inside, overlaps = [], []

    def work():
        with locked(tmp_path / "ref.json"):
            inside.append(1)
            overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1, 1, 1]
