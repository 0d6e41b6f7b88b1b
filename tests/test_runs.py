import json

from liftkd.config import get_profile
from liftkd.runs import read_results, write_results


def test_results_carry_config_versions_and_commit(tmp_path):
    p = get_profile("smoke")
    path = write_results(tmp_path / "r.json", {"fid": 1.5}, p, notebook="x")
    blob = json.loads(path.read_text())
    assert read_results(path) == {"fid": 1.5}
    meta = blob["meta"]
    assert meta["profile"]["teacher"]["seed"] == p.teacher.seed
    assert {"torch", "diffusers", "torch-pruning", "python"} <= set(meta["versions"])
    assert "commit" in meta["git"] and meta["notebook"] == "x"
