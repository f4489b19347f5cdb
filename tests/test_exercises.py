"""The self-checking exercises (``radlib.exercises``): every solution in ``notebooks/solutions`` passes its check,
the unsolved scaffold is reported (not an error), a plausible wrong answer fails, and every notebook holds at least
two scaffolds with a ``# your code`` gap, the profile and time they need, and a check of the right key."""
from __future__ import annotations

import importlib.util
import math
import re
from pathlib import Path

import jupytext
import pytest
import torch

from radlib.exercises import EXERCISES, check_exercise
from radlib.metrics import auroc

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "notebooks" / "solutions"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _solution(key: str):
    path = next(SOLUTIONS.glob(f"{key[:2]}_*.py"))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, EXERCISES[key].function)


def _stub(*args, **kwargs):
    raise NotImplementedError


# one plausible mistake per exercise: each must fail its check
WRONG = {
    "00.1": lambda s, y: float(100 * (s[y == 1][:, None] > s[y == 0][None, :]).double().mean()),  # ties as 0
    "00.2": lambda c, a, y: torch.where(y == 1, a, c),  # attacks the anomalies instead
    "01.1": lambda s, y: float(100 * (s.argsort().argsort()[y == 1].double().mean() / len(s))),  # not U
    "01.2": lambda x, g, x0, e, a, sg: (x + sg * a * g.sign()).clamp(0, 1),  # no projection on the ball
    "02.1": lambda n, k: torch.arange(k).repeat(n),  # image-major
    "02.2": lambda x, k: torch.stack([torch.rot90(i, -int(t) % 4, dims=(1, 2)) for i, t in zip(x, k)]),  # clockwise
    "03.1": lambda n, k, v: {"positive": v * k * n * (v - 1), "opposite": v * k * n * (k - 1),
                             "spurious_negative": v * k * n * (n - 1), "negative": v * k * n * (k - 1) * (n - 1)},
    "03.2": lambda n, k, v: (lambda r: ((r // n) % k)[:, None] == ((r // n) % k)[None, :])(torch.arange(v * k * n)),
    "04.1": lambda z: z @ z.T,  # not normalised
    "04.2": lambda z, v, k: torch.nn.functional.softplus(  # no temperature
        (torch.nn.functional.normalize(z, dim=1).reshape(v, k, -1, z.shape[1])[:, :1]
         * torch.nn.functional.normalize(z, dim=1).reshape(v, k, -1, z.shape[1])[:, 1:]).sum(-1)).mean(),
    "05.1": lambda x, eps, g: (x + eps * torch.randn(x.shape, generator=g).sign()).clamp(0, 1),  # corners only
    "05.2": lambda step, total, warm: 0.5 * (1 + math.cos(math.pi * min(1.0, step / total))),  # no warm-up
    "06.1": lambda a, y: a.max(0).values,  # the worst case of normals only
    "06.2": lambda lo, up, y: auroc((lo + up) / 2, y),  # the clean AUROC, not the certified one
    "07.1": lambda c, a: (c - a).norm(dim=1),  # Euclidean, not cosine
    "07.2": lambda n, a: 1 - torch.nn.functional.cosine_similarity(n.mean(0), a.mean(0), dim=0),  # not unit rows
    "08.1": lambda d, m: (d.abs().sum(1, keepdim=True) * m).flatten(1).sum(1) / d.abs().sum(1).flatten(1).sum(1),
    "08.2": lambda te, tr, k: torch.cdist(te.flatten(1), tr.flatten(1)).pow(2).topk(k, largest=False).values.mean(1),
    "09.1": lambda v: (sum(v) / len(v), float(torch.tensor(v, dtype=torch.float64).std(unbiased=False))),
    "09.2": lambda q, b, k: (1 - (q @ b.T).topk(k, dim=1).values).mean(1),  # not normalised
    "10.1": lambda d, c: (100 * float(c[d].sum()) / int(c.sum()), 100 * float(c[d].sum()) / len(d)),  # swapped
    "10.2": lambda s, keep: s.argsort()[-max(1, int(keep * len(s))):].sort().values,  # keeps the highest
}


def test_every_exercise_has_a_wrong_answer_here():
    assert set(WRONG) == set(EXERCISES)


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_solution_passes(key, capsys):
    assert check_exercise(key, _solution(key)) is True
    assert capsys.readouterr().out == f"exercise {key} ({EXERCISES[key].function}): correct\n"


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_scaffold_is_reported_not_raised(key, capsys):
    assert check_exercise(key, _stub) is False
    assert "is not solved yet" in capsys.readouterr().out


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_wrong_answer_fails(key):
    with pytest.raises(AssertionError, match=f"^{re.escape(key)} "):
        check_exercise(key, WRONG[key])


def test_bad_calls():
    with pytest.raises(KeyError, match="no exercise '99.9'; known: 00.1, 00.2"):
        check_exercise("99.9", _stub)
    with pytest.raises(TypeError, match=r"^check_exercise\('00.1', \.\.\.\) needs your function, got int$"):
        check_exercise("00.1", 3)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_two_scaffolds(path):
    """At least two exercises of this notebook as a scaffold: the function with a `# your code` gap raising
    NotImplementedError, then check_exercise with the key; the markdown before it says the profile and time."""
    nb = jupytext.read(path)
    number = path.name[:2]
    keys = {k for k in EXERCISES if k.startswith(number + ".")}
    assert len(keys) >= 2, f"notebook {number} needs >= 2 self-checking exercises in radlib.exercises"
    found = set()
    for i, cell in enumerate(nb.cells):
        m = re.search(r'check_exercise\("(\d\d\.\d+)", (\w+)\)', cell.source) if cell.cell_type == "code" else None
        if not m:
            continue
        key, fn = m.groups()
        assert key in keys, f"{path.name} checks {key}, which is not one of its exercises"
        assert fn == EXERCISES[key].function and f"def {fn}(" in cell.source
        assert "# your code" in cell.source and "raise NotImplementedError" in cell.source
        before = nb.cells[i - 1]
        assert before.cell_type == "markdown" and f"Exercise {key}" in before.source
        assert re.search(r"any profile|every profile|`(smoke|cpu|lab|paper)`", before.source) and \
            re.search(r"\d+ ?(s|min|seconds?|minutes?)\b", before.source), \
            f"{path.name}: say which profile exercise {key} needs and how long it takes"
        assert f"solutions/{path.name}" in before.source, "point to the solution file"
        found.add(key)
    assert found == keys, f"{path.name}: scaffolds for {sorted(keys - found)} are missing"
