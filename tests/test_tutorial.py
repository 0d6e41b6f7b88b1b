"""The teaching notebook's computations say what its text says; the notebook runs from scratch."""

import subprocess

import pytest

from liftkd import tutorial
from tests.conftest import REPO


def test_a_shifted_scaled_student_is_all_coarse_and_the_probe_inverts_it():
    facts = tutorial.explain_fit(*tutorial.toy_pair(shift=0.5, scale=0.6, noise=0.0))
    assert facts["beta1"] == pytest.approx(1 / 0.6) and facts["beta0"] == pytest.approx(-0.5 / 0.6)
    assert facts["coarse share"] == pytest.approx(1.0) and facts["fine"] < 1e-20


def test_the_parts_add_up_and_match_their_moment_formulas():
    facts = tutorial.explain_fit(*tutorial.toy_pair(shift=0.3, scale=1.4, noise=0.7, seed=2))
    assert abs(facts["coarse + fine - total"]) < 1e-10 * facts["total"]
    assert abs(facts["residual . 1"]) < 1e-10 and abs(facts["residual . x"]) < 1e-10
    assert facts["coarse per pixel"] == pytest.approx(facts["coarse per pixel, from moments"])
    assert facts["fine per pixel"] == pytest.approx(facts["fine per pixel, from moments"])
    assert 0.0 < facts["coarse share"] < 1.0


def test_noise_moves_error_to_the_fine_part():
    shares = [r["coarse share"] for r in tutorial.noise_sweep(0.5, 0.6, [0.0, 0.2, 0.5])]
    assert shares[0] > shares[1] > shares[2]


def test_lift_descent_removes_the_coarse_part_and_opens_w():
    eS, eT = tutorial.toy_pair(0.5, 0.6, 0.2)
    rows = tutorial.lift_descent(eS, eT, steps=60, lr=0.05)
    assert rows[0]["w"] == 0.0 and rows[-1]["w"] > 0.9
    assert rows[-1]["coarse"] < 0.01 * rows[0]["coarse"]
    assert rows[-1]["beta1"] == pytest.approx(1.0, abs=0.05)


def test_place_groups_explain_more_as_coarse():
    eS, eT = tutorial.toy_pair(0.5, 0.6, 0.5)
    rows = tutorial.place_groups(eS.float(), eT.float(), [None, 16, 4])
    assert [r["fits per channel"] for r in rows] == [1, 4, 16]
    shares = [r["coarse share"] for r in rows]
    assert shares[0] < shares[1] < shares[2]
    one_group = tutorial.place_groups(eS.float(), eT.float(), [64])[0]
    assert one_group["coarse share"] == pytest.approx(rows[0]["coarse share"], rel=1e-4)


@pytest.mark.slow
def test_the_tutorial_runs_alone_from_scratch(tmp_path):
    """What CI runs: the notebook with no other notebook before it, into an empty folder."""
    done = subprocess.run(
        ["make", "--no-print-directory", "tutorial", f"TUTORIAL_DIR={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    for png in ("toy_coarse_share.png", "real_pair_over_timesteps.png", "lift_descent.png"):
        assert (tmp_path / "figures" / png).stat().st_size > 1000
    assert (tmp_path / "tutorial_moment_decomposition.ipynb").exists()
