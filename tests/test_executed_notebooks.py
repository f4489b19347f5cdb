"""The executed copies of the series (``docs/notebooks``, ``make docs`` in ``cpu``) show every figure they draw and
state no number in their prose that the run did not print (``docs/notebook_checks.py``); the checker itself is
tested on small notebooks built here, each with the defect it must find. The notebooks CI runs in ``cpu``
(``tests/test_notebooks_cpu.py``) go through the same checks."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
from notebook_checks import ALLOWED, check_notebook, expected_figures  # noqa: E402

EXECUTED = sorted((ROOT / "docs" / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PNG = {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 640x480 with 1 Axes>"}


def test_every_notebook_has_an_executed_copy():
    assert {p.name for p in EXECUTED} == {p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    assert set(ALLOWED) <= {p.stem for p in EXECUTED}, "ALLOWED names a notebook that does not exist"


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_executed_copy_shows_its_figures_and_prints_its_numbers(path):
    nb = nbformat.read(path, as_version=4)
    assert all(c.get("outputs") is not None for c in nb.cells if c.cell_type == "code")
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{path.name} was never executed"
    assert check_notebook(path, nb) == []


@pytest.mark.parametrize("path", EXECUTED, ids=lambda p: p.stem)
def test_executed_copy_runs_todays_code(path):
    """An executed copy whose code differs from the source would check yesterday's notebook (the install cell,
    a no-op where radlib is installed, may differ)."""
    def code(p):
        return [c.source for c in nbformat.read(p, as_version=4).cells
                if c.cell_type == "code" and "install" not in c.metadata.get("tags", [])]
    executed, source = code(path), code(ROOT / "notebooks" / path.name)
    assert executed == source, f"re-run it: python docs/build_notebooks.py --only {path.name[:2]}"


# ------------------------------------------------------------------------------------------------ the checker
@pytest.mark.parametrize("source, n", [
    ("plt.show()", 1),
    ("fig = image_grid(x)\ndisplay(fig)", 1),
    ("display(auroc_bars(r))\nplt.show()", 2),
    ("for k in ks:\n    plt.plot(k)\n    plt.show()", 1),  # a loop draws at least once
    ("for a in A:\n    for b in B:\n        display(image_grid(b))", 1),
    ("if SHOW:\n    plt.show()", 0),  # a branch may not run in this profile
    ("try:\n    display(fig)\nexcept ImportError:\n    pass", 0),
    ("display(Markdown('**x**'))\ndisplay(r.eval)\ndisplay(explorer.widget)", 0),
    ("%matplotlib inline\nplt.show()", 1),
    ("image_grid(x)", 0),  # not shown at all: the test of the figure count is the images it finds
])
def test_expected_figures(source, n):
    assert expected_figures(source) == n


def _nb(*cells):
    return new_notebook(cells=list(cells))


def test_checker_finds_a_figure_that_never_rendered(tmp_path):
    """The defect of 02 before the fix: plt.show() after a radlib Figure that pyplot does not know shows nothing."""
    silent = new_code_cell("image_grid(x, suptitle='grid')\nplt.show()", outputs=[])
    shown = new_code_cell("display(image_grid(x))", outputs=[new_output("display_data", data=PNG)])
    assert check_notebook(tmp_path / "a.ipynb", _nb(shown)) == []
    problems = check_notebook(tmp_path / "a.ipynb", _nb(shown, silent))
    assert problems == ["a.ipynb: cell 1 draws 1 figure(s) but shows 0: \"image_grid(x, suptitle='grid')\""]


def test_checker_finds_a_number_typed_by_hand(tmp_path):
    printed = new_code_cell("print(f'{gap:.3f}')", outputs=[new_output("stream", name="stdout", text="+0.210\n")])
    assert check_notebook(tmp_path / "b.ipynb", _nb(printed, new_markdown_cell("the gap is +0.210"))) == []
    stale = new_markdown_cell("the gap is +0.17 (it was, last week); 3 seeds, `lr=0.05`, $\\tau = 0.5$, "
                              "[v1.2](https://x.org/2.5)")
    assert check_notebook(tmp_path / "b.ipynb", _nb(printed, stale)) == \
        ["b.ipynb: markdown cell 1 states +0.17, which no output of this run prints"]
    md_output = new_code_cell("display(Markdown(text))", outputs=[
        new_output("display_data", data={"text/markdown": "COBRA keeps **41.7**", "text/plain": "<Markdown>"})])
    assert check_notebook(tmp_path / "b.ipynb", _nb(md_output, new_markdown_cell("as printed: 41.7"))) == []


def test_checker_allows_only_listed_constants(tmp_path):
    paper = new_markdown_cell("the paper's MVTec average (89.1 clean / 75.1 attacked)")
    assert check_notebook(tmp_path / "08_industrial_inspection.ipynb", _nb(paper)) == []
    assert len(check_notebook(tmp_path / "01_other.ipynb", _nb(paper))) == 2


def test_nbval_runs_the_checks_on_every_notebook_it_executes(tmp_path):
    """notebooks/conftest.py: under nbval an executed notebook that hides a figure or states an unprinted number
    fails (its last cell), and one that does neither passes."""
    import shutil
    import subprocess

    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / "conftest.py", tmp_path / "notebooks" / "conftest.py")
    (tmp_path / "docs").symlink_to(ROOT / "docs")
    good = _nb(new_code_cell("print('gap 0.25')"), new_markdown_cell("the gap is 0.25"),
               new_code_cell("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')\n"
                             "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"))
    bad = _nb(new_code_cell("print('gap 0.25')"), new_markdown_cell("the gap is 0.31"),
              new_code_cell("from matplotlib.figure import Figure\nfig = Figure()\nfig.add_subplot().plot([0, 1])\n"
                            "import matplotlib.pyplot as plt\nplt.show()"))
    for name, nb in (("good", good), ("bad", bad)):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, tmp_path / "notebooks" / f"{name}.ipynb")
    run = lambda name: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "pytest", f"notebooks/{name}.ipynb", "--nbval-lax", "--nbval-current-env",
         "-p", "no:cacheprovider", "-q"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    ok, failed = run("good"), run("bad")
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert failed.returncode == 1, failed.stdout[-2000:]
    assert "bad.ipynb: markdown cell 1 states 0.31, which no output of this run prints" in failed.stdout
    assert "bad.ipynb: cell 2 draws 1 figure(s) but shows 0" in failed.stdout
