"""The objectives by name: registry, spec strings, labels; and a setting's text as a value."""

import pytest

from liftkd.config import parse_scalar
from liftkd.method.lift import LIFT, PLACE
from liftkd.method.objectives import OBJECTIVES, build_objective, label, parse_spec


def test_spec_options_are_parsed_and_place_gets_the_sweeps_k():
    assert parse_spec("outkd") == ("outkd", {})
    assert parse_spec("lift+place", 16) == ("lift+place", {"group_size": 16})
    assert parse_spec("lift", 16) == ("lift", {})  # K is PLACE's alone
    name, opts = parse_spec("lift+place:group_size=4,coarse=l2,schedule=none", 16)
    assert name == "lift+place" and opts == {"group_size": 4, "coarse": "l2", "schedule": "none"}
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("lift+place:group_size")
    with pytest.raises(ValueError, match="unknown objective 'outkdd'.*choose one of"):
        parse_spec("outkdd:lam=2")


def test_labels_come_from_the_registered_classes():
    assert label("lift+place:schedule=none", 16) == "LIFT+PLACE (K=16, w=1)"
    assert (
        label("lift+place:schedule=cosine,coarse=l2", 4) == "LIFT+PLACE (K=4, w cosine, coarse=l2)"
    )
    assert label("outkd+featkd") == "OutKD+FeatKD"
    assert label("nokd") == "w/o KD"
    labels = {cls.label for cls in OBJECTIVES.values()}
    assert len(labels) == len(OBJECTIVES) and "objective" not in labels  # each has its own


def test_a_spec_builds_the_objective_it_names():
    name, opts = parse_spec("lift+place:group_size=4,coarse=l2,var_eps=0.001")
    objective = build_objective(name, **opts)
    assert isinstance(objective, PLACE) and objective.group_size == 4
    assert objective.coarse == "l2" and objective.var_eps == 1e-3
    assert type(build_objective(*parse_spec("lift"))) is LIFT


@pytest.mark.parametrize(
    "text, value",
    [("4", 4), ("0.5", 0.5), ("1e-3", 1e-3), ("True", True), ("false", False), ("l2", "l2")],
)
def test_parse_scalar(text, value):
    parsed = parse_scalar(text)
    assert parsed == value and type(parsed) is type(value)
