"""The notebook series: every .ipynb has its jupytext py:percent twin, they are in sync, and each follows the
house structure (Colab badge + install first, learning goals, PROFILE switch, asserted checks, exercises)."""
from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
IPYNBS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
PYS = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))


def test_series_exists_and_is_paired():
    assert IPYNBS, "no notebooks found"
    assert {p.stem for p in IPYNBS} == {p.stem for p in PYS}, "every .ipynb needs its .py twin and vice versa"
    numbers = [int(p.name[:2]) for p in IPYNBS]
    assert numbers == sorted(set(numbers)), "notebook numbers must be unique"


def _cells(nb):
    return [(c.cell_type, c.source.strip()) for c in nb.cells if c.source.strip()]


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_pair_in_sync(ipynb):
    a = jupytext.read(ipynb)
    b = jupytext.read(ipynb.with_suffix(".py"))
    assert _cells(a) == _cells(b), f"{ipynb.name} and its .py differ: run `make sync`"


@pytest.mark.parametrize("ipynb", IPYNBS, ids=lambda p: p.stem)
def test_house_structure(ipynb):
    nb = jupytext.read(ipynb)
    cells = nb.cells
    first = cells[0]
    assert first.cell_type == "markdown" and "colab.research.google.com" in first.source, "Colab badge first"
    assert ipynb.name in first.source, "the badge must open this notebook"
    assert re.search(r"what you will learn", first.source, re.I), "a 'What you will learn' list up front"
    install = cells[1]
    assert install.cell_type == "code" and "pip" in install.source and "install" in install.metadata.get("tags", [])
    assert re.search(r"^RADLIB_SOURCE = \"", install.source, re.M) and '"install", "-q", RADLIB_SOURCE]' in install.source, \
        "the install cell installs the one RADLIB_SOURCE variable set at its top (a fork, a zip or a folder)"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "RADLIB_PROFILE" in code and "get_profile" in code, "a PROFILE switch"
    assert re.search(r"^\s*assert ", code, re.M), "asserted 'what you should see' checks"
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert re.search(r"what you should see", text, re.I)
    assert re.search(r"exercises", text, re.I)
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), "commit notebooks without outputs"
