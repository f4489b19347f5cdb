"""Checks on an executed notebook: every figure it draws is rendered, and its prose states no measured number that
the run did not print.

    python docs/notebook_checks.py docs/notebooks/*.ipynb      # one line per problem, exit 1 if any

Used by ``docs/build_notebooks.py`` (a notebook whose executed copy fails is a failed build), by
``tests/test_executed_notebooks.py`` on the committed executed copies, and on the notebooks CI runs in ``cpu``.

**Figures.** A code cell's *figure statements* are ``plt.show()`` and ``display(...)`` of a figure (a radlib
figure helper's result or a variable named ``fig...``), found with :mod:`ast`. A statement at the top level of the
cell counts once; one inside a top-level ``for`` loop counts once for the loop (it draws at least once); one under
an ``if``/``try``/``with``/``def`` counts zero (the branch may not run in this profile). The executed cell must hold
at least that many ``image/png`` outputs: an unregistered Figure passed to ``plt.show()`` leaves none.

**Numbers.** Every decimal number in a markdown cell (``0.167``, ``93.4``; not integers, not inside a link or
inline-code span, not in a LaTeX ``$...$`` formula) must occur in the text or Markdown outputs of that notebook's
code cells, unless the notebook lists it in ``ALLOWED`` with the reason (a constant such as a paper's table). A
number typed by hand goes stale when the run changes; a number printed by the run cannot.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

# radlib helpers that return a matplotlib Figure (shown with display(...))
FIGURE_HELPERS = {"image_grid", "auroc_bars", "loss_curves", "plot_score_histograms", "figure", "auroc_vs_eps",
                  "plot_auroc_vs_eps", "methods_auroc_vs_eps", "embedding_figure"}

# numbers a notebook's prose may state without printing them: constants, each with its reason
ALLOWED: dict[str, dict[str, str]] = {
    "02_pseudo_anomalies": {"0.5": "exercise: a quantile to try", "0.99": "exercise: a quantile to try"},
    "03_spurious_negative_pairs": {"2.1": "a section number of the CSI paper",
                                   "0.7": "cos(sign(u), u) of a dense gradient: about sqrt(2/pi) = 0.8",
                                   "0.8": "cos(sign(u), u) of a dense gradient: about sqrt(2/pi) = 0.8"},
    "07_interactive_embeddings": {"0.0": "exercise: a UMAP min_dist to try", "0.1": "exercise: a UMAP min_dist to try",
                                  "0.5": "exercise: a UMAP min_dist to try"},
    "08_industrial_inspection": {"89.1": "the paper's MVTec AD average (clean), labelled as the paper's",
                                 "75.1": "the paper's MVTec AD average (attacked), labelled as the paper's"},
    "10_contaminated_training_data": {"2508.07441": "the arXiv number of LLBNAD",
                                      "0.2": "the official LLBNAD keep threshold (a constant of their code)"},
}

_DECIMAL = re.compile(r"(?<![\w.])[-+−]?\d+\.\d+(?![\w.])")
_SKIP_SPANS = re.compile(r"`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$|\]\([^)]*\)|https?://\S+", re.S)


def _is_figure_call(node: ast.AST) -> bool:
    if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
        return False
    call = node.value
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr == "show" and isinstance(f.value, ast.Name) and f.value.id == "plt":
        return True
    if isinstance(f, ast.Name) and f.id == "display" and call.args:
        arg = call.args[0]
        if isinstance(arg, ast.Name):
            return arg.id.startswith("fig")
        if isinstance(arg, ast.Call):
            name = arg.func.attr if isinstance(arg.func, ast.Attribute) else getattr(arg.func, "id", "")
            return name in FIGURE_HELPERS
    return False


def _direct_figures(body: list[ast.stmt]) -> bool:
    """Whether a loop body draws on every pass: a figure statement not under a branch (nested loops count)."""
    for node in body:
        if _is_figure_call(node):
            return True
        if isinstance(node, (ast.For, ast.While)) and _direct_figures(node.body):
            return True
    return False


def expected_figures(source: str) -> int:
    """The least number of figures a code cell draws (see the module docstring); 0 for cells that do not parse
    (IPython magics are stripped first)."""
    lines = [ln for ln in source.splitlines() if not ln.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return 0
    n = 0
    for node in tree.body:
        if _is_figure_call(node):
            n += 1
        elif isinstance(node, ast.For) and _direct_figures(node.body):
            n += 1
    return n


def _images(cell) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def _output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for key in ("text/plain", "text/markdown", "text/html"):
            value = out.get("data", {}).get(key)
            if value:
                parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def _normal(number: str) -> str:
    return number.replace("−", "-").lstrip("+-")


def check_figures(nb) -> list[str]:
    """One line per code cell that drew fewer images than it has figure statements."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        want, got = expected_figures(cell.source), _images(cell)
        if got < want:
            first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
            problems.append(f"cell {i} draws {want} figure(s) but shows {got}: {first!r}")
    return problems


def check_numbers(nb, name: str) -> list[str]:
    """One line per decimal number in the prose that no code output of the notebook contains."""
    printed = "\n".join(_output_text(c) for c in nb.cells if c.cell_type == "code")
    printed_numbers = {_normal(m) for m in _DECIMAL.findall(printed)}
    allowed = ALLOWED.get(name, {})
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = _SKIP_SPANS.sub(" ", cell.source)
        for number in _DECIMAL.findall(text):
            n = _normal(number)
            if n in printed_numbers or n in allowed:
                continue
            problems.append(f"markdown cell {i} states {number}, which no output of this run prints")
    return problems


def check_notebook(path: str | Path, nb=None) -> list[str]:
    """Every problem of an executed notebook (``nb`` if given, else read from ``path``), one line each."""
    path = Path(path)
    nb = nb if nb is not None else nbformat.read(path, as_version=4)
    name = path.stem
    return [f"{path.name}: {p}" for p in check_figures(nb) + check_numbers(nb, name)]


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv is not None else sys.argv[1:]
    if not paths:
        print("usage: python docs/notebook_checks.py EXECUTED.ipynb ...", file=sys.stderr)
        return 2
    problems = [p for path in paths for p in check_notebook(path)]
    print("\n".join(problems) if problems else f"{len(paths)} notebook(s): every figure shown, no stale number")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
