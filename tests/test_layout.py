"""The package's layout: imports run one way (down the layers below), no cycle, short modules.

An import inside a function counts as much as one at the top of a file.
"""

import ast

from tests.conftest import REPO

PACKAGE = REPO / "liftkd"
# bottom first; a module imports only from its own layer or the ones before it
LAYERS = [
    {"sections", "profiles", "config", "features", "plots", "probe", "rules", "locks"},
    {"pruned_unet", "model_card", "claims"},
    {"data", "diffusion", "models", "runs", "losses", "block_removal"},
    {"checkpoints", "feature_extractor", "metrics", "train_state"},
    {"lift", "sampling", "train", "recipes", "student_layouts"},
    {"student_folder"},
    {
        "objectives",
        "analysis",
        "pruning",
        "teacher",
        "distill",
        "sweep.jobs",
        "tutorial",
        "diagnostics",
    },
    {"evaluation"},
    {"students", "kd_job", "kd_runs"},
    {"sweep.pixel", "error_study", "report"},
    {"capacity"},
    {"bench", "sweep.__main__", "check_settings"},
    {"dit", "latent"},
    {"export"},
]
LONG = 300  # lines; a longer module says why in its docstring ("Long because ...")


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
                if node.module == "liftkd":
                    deps |= {a.name for a in node.names}
                else:
                    deps.add(node.module.removeprefix("liftkd."))
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
