"""radlib's structure: one job per module, no import circle, one method registry, one config mapping, and the
docstring examples of the public entry points run (they are documentation that is checked)."""
from __future__ import annotations

import ast
import re
import dataclasses
import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest
import torch

import radlib

ROOT = Path(radlib.__file__).parent
MODULES = sorted(m.name for m in pkgutil.walk_packages([str(ROOT)], prefix="radlib.") if m.name != "radlib.__main__")


def _module_path(name: str) -> Path:
    rel = Path(*name.split(".")[1:])
    return ROOT / rel / "__init__.py" if (ROOT / rel).is_dir() else (ROOT / rel).with_suffix(".py")


def _imports(name: str, type_checking: bool = False) -> set[str]:
    """Every radlib module ``name`` imports explicitly, at module level or inside a function; the
    ``if TYPE_CHECKING:`` imports (which never run, but which a type checker and a reader follow) too when
    ``type_checking``."""
    path = _module_path(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and
                   getattr(block.test, "id", getattr(block.test, "attr", None)) == "TYPE_CHECKING"
                   for stmt in block.body for n in ast.walk(stmt)}  # annotations only: never run
    for node in ast.walk(tree):
        if id(node) in typing_only and not type_checking:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("radlib")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("radlib"):
                continue
            for a in node.names:  # `from . import attacks` names a module, `from .x import f` a member of x
                sub = f"{target}.{a.name}"
                found.add(sub if sub in MODULES else target)
    found.discard(name)
    return {m for m in found if m in MODULES or m == "radlib"}


def test_no_import_circle():
    """No circle through any import: module level, inside functions, or under TYPE_CHECKING."""
    graph = {m: _imports(m, type_checking=True) - {"radlib"} for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in MODULES:
        if m not in state:
            visit(m)
    # the direction that used to be a circle: checks build on certify, certify knows nothing of them
    assert "radlib.checks" not in graph["radlib.certify"] and "radlib.evaluate" not in graph["radlib.certify"]
    assert "radlib.certify" in graph["radlib.checks"]
    # config -> methods -> train (TYPE_CHECKING) -> config was one until methods typed its loss settings itself
    assert "radlib.train" not in graph["radlib.methods"] and "radlib.config" not in graph["radlib.methods"]


def test_the_import_walker_sees_a_circle():  # the test above must be able to fail
    assert "radlib.attacks.engine" in _imports("radlib.attacks.training")
    assert "radlib.losses" in _imports("radlib.attacks.training")
    assert {"radlib.attacks", "radlib.losses"} <= _imports("radlib.step")


@pytest.mark.parametrize("name", MODULES)
def test_every_module_is_small_and_states_its_job(name):
    path = _module_path(name)
    n_lines = len(path.read_text().splitlines())
    assert n_lines <= 420, f"{path.relative_to(ROOT.parent)} has {n_lines} lines: split it by job"
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc.splitlines()[0]) > 20, f"{name}: the first docstring line must say the module's job"
    assert "DESIGN.md" not in path.read_text(), f"{name} points to a DESIGN.md that is not in the repository"


# ------------------------------------------------------------------------------------------------ docstrings
#: the public entry points' modules: each carries at least one example, and every example runs
DOCUMENTED = ["radlib.methods", "radlib.config", "radlib.train", "radlib.pipeline", "radlib.evaluate", "radlib.checks",
              "radlib.metrics", "radlib.specs", "radlib.results", "radlib.knn", "radlib.gaussian",
              "radlib.features", "radlib.images", "radlib.attacks", "radlib.attacks.engine", "radlib.certify",
              "radlib.profiles", "radlib.data", "radlib.pseudo_anomaly", "radlib.score", "radlib.embed",
              "radlib.losses", "radlib.purify", "radlib.reference", "radlib.record", "radlib.data.decode",
              "radlib.attacks.square", "radlib.validate", "radlib.step", "radlib.distributed", "radlib.sweep"]


@pytest.mark.parametrize("name", DOCUMENTED)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has no docstring example"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see above)"


# ------------------------------------------------------------------------------------------------ registry
def test_a_toy_method_is_added_through_the_registry_alone(tmp_path):
    """A new method = one Method record + its loss: train, score (its own score kind) and the CLI see it."""
    from radlib import losses, methods
    from radlib.__main__ import build_parser
    from radlib.data import load
    from radlib.evaluate import evaluate
    from radlib.score import fit_score
    from radlib.train import TrainConfig, load_trained, train

    def align(z, labels, n_views, cfg, center):  # pull the views of a row together, nothing else
        u = torch.nn.functional.normalize(z, dim=1).view(n_views, -1, z.shape[1])
        return (1 - (u[0] * u[1]).sum(1)).mean()

    toy = methods.Method("toy_align", "views pulled together, one ATPT view", "align", align, attacks=("atpt",),
                         own_score="knn")
    methods.register(toy)
    try:
        with pytest.raises(ValueError, match="already registered"):
            methods.register(toy)
        ds = load("digits", normal="0", image_size=12, channels=1, max_train=32, max_test=40, seed=0)
        cfg = TrainConfig(method="toy_align", dataset="digits", image_size=12, channels=1, width=4, epochs=1,
                          batch_size=8, seed=0)
        assert cfg.adversarial and cfg.policy().K == 4
        res = train(cfg, ds, out=tmp_path, progress=False, device="cpu")
        assert {"align", "loss"} <= set(res.history[0]) and "nt_xent" not in res.history[0]
        assert load_trained(tmp_path / "last.pt", device="cpu").config.method == "toy_align"
        score = fit_score(res, ds.train.images)  # "own" = the record's score: kNN
        assert type(score).__name__ == "KNNScore"
        r = evaluate(score, ds.test, attacks=["pgd-1@2/255"])
        assert 0 <= r.robust_auroc <= 100
        assert build_parser().parse_args(["train", "--method", "toy_align", "--out", str(tmp_path)]).method == "toy_align"
        assert callable(losses.nt_xent)
    finally:
        methods.unregister("toy_align")
    with pytest.raises(ValueError, match="unknown method 'toy_align'"):
        TrainConfig(method="toy_align")


def test_method_records_are_checked():
    from radlib.methods import Method

    def loss(*a):
        return torch.zeros(())

    with pytest.raises(ValueError, match="in that order"):
        Method("bad", "", "l", loss, attacks=("rtp", "atpt"), head=True)
    with pytest.raises(ValueError, match="needs head=True"):
        Method("bad", "", "l", loss, attacks=("rtp",))
    with pytest.raises(ValueError, match="need pseudo-anomaly chunks"):
        Method("bad", "", "l", loss, head=True, pseudo_anomalies=False)
    with pytest.raises(ValueError, match="identifier"):
        Method("two words", "", "l", loss)


def test_registry_states_what_the_trainer_did_before():
    """The records say what the trainer's string tests said (the loss terms each method logs are in test_train)."""
    from radlib.methods import METHODS
    assert {m for m, r in METHODS.items() if r.adversarial} == {"cobra", "cobra_no_opposite", "adv_contrastive",
                                                                 "supcon"}
    assert {m for m, r in METHODS.items() if r.head} == {"cobra", "cobra_no_opposite", "csi"}
    assert {m for m, r in METHODS.items() if r.opposite} == {"cobra"}
    assert [m for m, r in METHODS.items() if not r.pseudo_anomalies] == ["msc"] == [
        m for m, r in METHODS.items() if r.own_score == "knn"]


# ------------------------------------------------------------------------------------------------ config path
def test_profile_to_config_mapping_is_one_tested_place():
    from radlib.profiles import PROFILES, Profile
    from radlib.train import PROFILE_FIELDS, TrainConfig
    profile_fields = {f.name for f in dataclasses.fields(Profile)}
    config_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(PROFILE_FIELDS) <= profile_fields and set(PROFILE_FIELDS.values()) <= config_fields
    for p in PROFILES.values():
        for dataset in ("digits", "surfaces"):
            cfg = TrainConfig.from_profile(p, method="cobra", dataset=dataset, n_train=500)
            for pf, cf in PROFILE_FIELDS.items():
                assert getattr(cfg, cf) == getattr(p, pf), (p.name, pf)
            assert cfg.epochs == p.epochs_for(500)
            assert cfg.image_size == (p.low_res_size if dataset == "digits" else p.image_size)
            assert cfg.crop == (dataset == "digits")


def test_default_config_is_the_cpu_recipe():
    from radlib.profiles import PROFILES
    from radlib.train import TrainConfig
    assert TrainConfig() == TrainConfig.from_profile(PROFILES["cpu"], epochs=10)
    assert TrainConfig().warmup_epochs < TrainConfig().epochs  # a run that is not all warm-up


def test_make_test_runs_the_static_checks():
    """`make test` (the CI command) runs ruff and mypy on radlib/ before the tests (the `lint` target)."""
    make = (ROOT.parent / "Makefile").read_text()
    assert re.search(r"^test: venv lint$", make, re.M)
    lint = make.split("\nlint: venv\n", 1)[1].split("\n\n", 1)[0]
    assert "$(BIN)/ruff check radlib" in lint and "$(BIN)/mypy" in lint
    import tomllib
    tool = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]
    assert tool["mypy"]["files"] == ["radlib"] and {"F", "B"} <= set(tool["ruff"]["lint"]["select"])


def _private_imports(path: Path, package: str | None) -> list[str]:
    """``from radlib... import _name`` (or from a ``_module``) in one file, as 'path:line name'."""
    out = []
    lines = path.read_text().splitlines()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            if package is None:
                continue
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith("radlib"):
            continue
        private_module = any(part.startswith("_") and not part.startswith("__") for part in target.split("."))
        names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        if (private_module or names) and "reaching inside" not in lines[node.lineno - 1]:
            out.append(f"{path.name}:{node.lineno} {target} {names}")
    return out


def test_no_private_name_crosses_a_module():
    """No radlib module, benchmark or test imports another module's _private name (or a _module); a test that
    must reach inside says so on the line (`# reaching inside: why`)."""
    found = []
    for name in MODULES:
        path = _module_path(name)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found += _private_imports(path, package)
    for folder in ("benchmarks", "tests"):
        for path in sorted((ROOT.parent / folder).glob("*.py")):
            found += _private_imports(path, None)
    assert not found, "private names imported across modules:\n" + "\n".join(found)


def test_each_public_name_has_one_home():
    """A module's __all__ lists what it defines; re-exports are the packages' job (their __init__)."""
    import inspect

    elsewhere = []
    for name in MODULES:
        if _module_path(name).name == "__init__.py":
            continue
        mod = importlib.import_module(name)
        for public in getattr(mod, "__all__", []):
            obj = getattr(mod, public)
            home = getattr(obj, "__module__", name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and home != name:
                elsewhere.append(f"{name}.{public} lives in {home}")
    assert not elsewhere, elsewhere
