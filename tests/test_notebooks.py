"""The notebook series: every .ipynb has its jupytext py:percent twin, they are in sync, and each follows the
house structure (Colab badge + install first, learning goals, PROFILE switch, asserted checks, exercises)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import jupytext
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
ROOT = NB_DIR.parent
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
    assert re.search(r"^RADLIB_SOURCE = \"", install.source, re.M) and 'f"radlib[colab] @ {src}"' in install.source, \
        "the install cell installs the `colab` extra from the one RADLIB_SOURCE variable (a fork, a zip or a folder)"
    assert "RADLIB_CACHE" in install.source and "drive.mount" in install.source, "say how to keep the cache on Drive"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "RADLIB_PROFILE" in code and "get_profile" in code, "a PROFILE switch"
    assert re.search(r"^\s*assert ", code, re.M), "asserted 'what you should see' checks"
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert re.search(r"what you should see", text, re.I)
    assert re.search(r"exercises", text, re.I)
    assert all(not c.get("outputs") for c in cells if c.cell_type == "code"), "commit notebooks without outputs"


# distributions behind the import names the notebooks use (the rest is the standard library or radlib)
_DIST = {"torch": "torch", "torchvision": "torchvision", "numpy": "numpy", "matplotlib": "matplotlib",
         "seaborn": "seaborn", "umap": "umap-learn", "ipywidgets": "ipywidgets", "tqdm": "tqdm",
         "sklearn": "scikit-learn", "pandas": "pandas", "PIL": "pillow", "torchattacks": "torchattacks"}
# a Jupyter kernel, wherever the notebooks run, brings IPython; Colab brings google.colab
_KERNEL = {"IPython", "google"}


def test_colab_install_is_what_the_notebooks_import():
    """`radlib[colab]` = the base dependencies + the colab extra: every module a notebook imports, and no
    JupyterLab or jupytext (Colab brings its own Jupyter; they live in the `local` extra)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: re.split(r"[<>=!~\[ ;@]", req, maxsplit=1)[0].strip().lower()  # noqa: E731
    colab = {name(r) for r in project["dependencies"] + project["optional-dependencies"]["colab"]}
    assert not colab & {"jupyterlab", "jupytext", "notebook", "pytest"}, colab
    assert {"jupyterlab", "jupytext"} <= {name(r) for r in project["optional-dependencies"]["local"]}
    imported = set()
    for ipynb in IPYNBS:
        for cell in jupytext.read(ipynb).cells:
            if cell.cell_type == "code":
                imported |= set(re.findall(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", cell.source, re.M))
    third_party = imported - set(sys.stdlib_module_names) - {"radlib"} - _KERNEL
    unknown = third_party - set(_DIST)
    assert not unknown, f"notebooks import {sorted(unknown)}: add them to _DIST and to the colab install"
    missing = {_DIST[m] for m in third_party} - colab
    assert not missing, f"radlib[colab] does not install {sorted(missing)}, which the notebooks import"
