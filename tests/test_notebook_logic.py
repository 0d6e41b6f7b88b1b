"""Notebooks orchestrate and show; the package computes.

Every code cell of every notebook is parsed, and:

- no function, class or lambda is defined in a notebook (it belongs in ``liftkd`` with a test);
- no private name (``_name``, ``obj._name``) is used: notebooks call the package's public API;
- no path is written into a code cell: folders come from the parameters cell;
- "logic" lines (inside loops, conditionals, with/try blocks and comprehensions, and lines with
  arithmetic, comparisons or boolean operators, path joins ``folder / "file"`` aside) stay at
  most ``LOGIC_BUDGET`` across all notebooks together.
"""

import ast

import nbformat
import pytest

from tests.conftest import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
LOGIC_BUDGET = 40
COMPOUND = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)
EXPRESSIONS = (
    ast.ListComp,
    ast.SetComp,
    ast.DictComp,
    ast.GeneratorExp,
    ast.IfExp,
    ast.BoolOp,
    ast.Compare,
    ast.BinOp,
)


def _code_cells(path):
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            params = "parameters" in cell.metadata.get("tags", [])
            # IPython's trailing ';' (no echo) is valid Python too; magics are not used here
            yield i, params, ast.parse(cell.source)


def _is_path_join(node) -> bool:
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Div)
        and (isinstance(node.right, ast.Constant | ast.JoinedStr))
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__") and name != "_"


def scan(path) -> dict:
    """What a notebook's code cells hold: definitions, private names, paths, logic lines."""
    found = {"definitions": [], "private": [], "paths": [], "logic": set()}
    for i, params, tree in _code_cells(path):
        for node in ast.walk(tree):
            where = (i, getattr(node, "lineno", 0))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
                found["definitions"].append(where)
            if isinstance(node, ast.Name) and _private(node.id):
                found["private"].append((*where, node.id))
            if isinstance(node, ast.Attribute) and _private(node.attr):
                found["private"].append((*where, node.attr))
            if isinstance(node, ast.alias) and _private(node.name.split(".")[-1]):
                found["private"].append((*where, node.name))
            if (
                not params
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and "/" in node.value
            ):
                found["paths"].append((*where, node.value))
            if params:
                continue
            if isinstance(node, COMPOUND) or (
                isinstance(node, EXPRESSIONS) and not _is_path_join(node)
            ):
                end = getattr(node, "end_lineno", node.lineno)
                found["logic"].update((path.stem, i, n) for n in range(node.lineno, end + 1))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_no_definitions_private_names_or_paths(path):
    found = scan(path)
    assert not found["definitions"], f"def/class/lambda at (cell, line) {found['definitions']}"
    assert not found["private"], f"private names at {found['private']}"
    assert not found["paths"], f"hard-coded paths at {found['paths']}"


def test_logic_across_all_notebooks_fits_the_budget():
    per_notebook = {p.stem: len(scan(p)["logic"]) for p in NOTEBOOKS}
    assert sum(per_notebook.values()) <= LOGIC_BUDGET, per_notebook


def test_the_scan_finds_what_it_forbids(tmp_path):
    """The rules above can fail: a notebook with each kind of logic is caught."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('RUN_DIR = "runs/cpu"')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from liftkd import plots\n"
            "def helper(x):\n    return x\n"
            "f = lambda y: y\n"
            "plots._finish(None, 'figures/bench/objectives.csv')\n"
            "total = 0\n"
            "for v in [1, 2]:\n    total = total + v\n"
            "ok = RUN_DIR / 'x.png'\n"
        ),
    ]
    path = tmp_path / "bad.ipynb"
    nbformat.write(nb, path)
    found = scan(path)
    assert len(found["definitions"]) == 2
    assert [p[-1] for p in found["private"]] == ["_finish"]
    assert [p[-1] for p in found["paths"]] == ["figures/bench/objectives.csv"]
    # the loop's two lines; the path join is not logic
    assert sorted(n for _, _, n in found["logic"]) == [7, 8]
