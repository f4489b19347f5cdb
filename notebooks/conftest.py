"""Under nbval (``make test`` runs every notebook it does not run in ``cpu`` this way, in ``smoke``), each executed
notebook also goes through ``docs/notebook_checks.py``: a figure a cell draws but does not show, or a decimal number
in the prose that no output of this run prints, fails the notebook's last code cell with one line per problem.
(The four ``cpu`` notebooks get the same checks in ``tests/test_notebooks_cpu.py``.)"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs"))
from notebook_checks import check_notebook  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when != "call" or type(item).__name__ != "IPyNbCell":
        return
    report = outcome.get_result()
    nbfile = item.parent
    outputs = nbfile.__dict__.setdefault("_radlib_outputs", {})
    outputs[item.cell_num] = list(item.test_outputs or [])
    cells = [i for i in item.session.items if i.parent is nbfile]
    if item is not cells[-1] or not report.passed:
        return
    nb = copy.deepcopy(nbfile.nb)
    for num, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):
        cell.outputs = outputs.get(num, [])
    problems = check_notebook(Path(str(nbfile.fspath)), nb)
    if problems:
        report.outcome = "failed"
        report.longrepr = "docs/notebook_checks.py on the executed notebook:\n" + "\n".join(problems)
