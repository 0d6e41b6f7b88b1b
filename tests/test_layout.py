"""The package's layout: imports run one way (down the layers below), no cycle, short modules.

An import inside a function counts as much as one at the top of a file.
"""

import ast

from tests.conftest import REPO

PACKAGE = REPO / "liftkd"
# bottom first; a module imports only from its own layer or the ones before it
LAYERS = [
    {
        "sections",
        "profiles",
        "config",
        "method.features",
        "results.plots",
        "method.probe",
        "measure.rules",
        "measure.bootstrap",
        "locks",
    },
    {"models.pruned_unet", "results.model_card", "results.claims"},
    {
        "data",
        "training.diffusion",
        "models.presets",
        "runs",
        "method.losses",
        "models.block_removal",
    },
    {"models.checkpoints", "measure.feature_extractor", "measure.metrics", "training.train_state"},
    {
        "method.lift",
        "training.sampling",
        "training.train",
        "method.recipes",
        "results.student_layouts",
    },
    {"results.student_folder"},
    {
        "method.objectives",
        "measure.analysis",
        "models.pruning",
        "stages.teacher",
        "training.distill",
        "stages.sweep.jobs",
        "stages.regime",
        "tutorial",
        "method.diagnostics",
    },
    {"measure.evaluation"},
    {"stages.students", "stages.kd_job", "stages.kd_runs"},
    {"stages.sweep.pixel", "stages.error_study", "results.report"},
    {"stages.capacity"},
    {"measure.bench", "stages.sweep.__main__", "check_settings"},
    {"stages.dit", "stages.latent"},
    {"results.export"},
]
LONG = 300  # lines; a longer module says why in its docstring ("Long because ...")


def _module_names() -> set[str]:
    """Every module of the package by dotted name (``stages.kd_job``); packages' __init__ aside."""
    return {
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py"
    }


NAMES = _module_names()


def _modules() -> dict[str, set[str]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            continue
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("liftkd")
            ):
                base = "" if node.module == "liftkd" else node.module.removeprefix("liftkd.")
                for a in node.names:
                    # from liftkd.room import module: the module; from liftkd.module import name
                    sub = f"{base}.{a.name}" if base else a.name
                    deps.add(sub if sub in NAMES else base)
            elif isinstance(node, ast.Import):
                deps |= {
                    a.name.removeprefix("liftkd.")
                    for a in node.names
                    if a.name.startswith("liftkd.")
                }
        out[".".join(parts)] = deps - {".".join(parts)}
    return out


def _layer(module: str) -> int:
    for i, layer in enumerate(LAYERS):
        if module in layer:
            return i
    raise AssertionError(f"liftkd.{module} is in no layer of tests/test_layout.py: place it")


def test_every_import_runs_down_the_layers():
    ups = [
        f"{m} (layer {_layer(m)}) imports {d} (layer {_layer(d)})"
        for m, deps in _modules().items()
        for d in deps
        if _layer(d) > _layer(m)
    ]
    assert not ups, ups


def test_no_import_cycle():
    graph = _modules()
    done, stack = set(), []

    def visit(m):
        if m in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(m) :], m]))
        if m in done:
            return
        stack.append(m)
        for d in graph.get(m, ()):
            visit(d)
        stack.pop()
        done.add(m)

    for m in graph:
        visit(m)


def test_long_modules_say_why():
    for path in PACKAGE.rglob("*.py"):
        lines = path.read_text().count("\n")
        if lines > LONG:
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert "Long because" in doc, (
                f"{path.name}: {lines} lines and no reason in its docstring"
            )


def test_no_two_modules_share_a_name():
    """Rooms by stage, and no module name used twice (``evaluation`` beside
    ``sweep/evaluation`` once made a reader guess which one a notebook meant)."""
    stems = [n.rsplit(".", 1)[-1] for n in NAMES if not n.endswith("__main__")]
    assert sorted(s for s in set(stems) if stems.count(s) > 1) == []
    rooms = {n.split(".")[0] for n in NAMES if "." in n}
    assert rooms == {"method", "models", "training", "measure", "stages", "results"}
