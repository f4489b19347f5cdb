"""A dataset declares itself in one call: ``radlib.data.register(..., policy=, resolution=, sizes=)`` holds every fact
the rest of radlib asks about it (the pseudo-anomaly policy, the resolution a profile gives it, how its splits are
sized), and a toy dataset registered here trains, evaluates and purifies through the command line."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import torch

import radlib
from radlib.__main__ import main
from radlib.config import TrainConfig
from radlib.data import ADDataset, DatasetError, Split, dataset_info, register
from radlib.data.base import _REGISTRY  # reaching inside: the test removes the toy it registers
from radlib.pipeline import load_data
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import CUTPASTE_POLICY, ROTATION_POLICY, policy_for

ROOT = Path(radlib.__file__).parent


def _toy_split(g: torch.Generator, n: int, size: int, channels: int, anomalous: bool) -> Split:
    base = torch.rand(n, channels, 1, 1, generator=g) * 0.3 + 0.35
    x = base + 0.05 * torch.randn(n, channels, size, size, generator=g)
    if anomalous:  # a bright square at a random place
        for i, (r, c) in enumerate(torch.randint(0, size - size // 4, (n, 2), generator=g).tolist()):
            x[i, :, r:r + size // 4, c:c + size // 4] = 0.95
    labels = torch.full((n,), int(anomalous))
    return Split((x.clamp(0, 1) * 255).round().to(torch.uint8), labels, labels.clone())


@pytest.fixture
def toy():
    calls = []

    @register("toy_squares", "grey noise, anomalies carry a bright square (a test's data set)", embedded=True,
              policy="rotation", resolution="low", sizes="generated")
    def load_toy(*, normal=None, image_size=None, root=None, seed=0, download=True, channels=3, n_train=24,
                 n_test=16, **unknown):
        calls.append(dict(image_size=image_size, n_train=n_train, n_test=n_test))
        size = image_size or 16
        g = torch.Generator().manual_seed(seed)
        train = _toy_split(g, n_train, size, channels, False)
        test = Split.cat([_toy_split(g, n_test - n_test // 2, size, channels, False),
                          _toy_split(g, n_test // 2, size, channels, True)])
        return ADDataset(name="toy_squares", normal=normal or "plain", train=train, test=test,
                         defect_types=("good", "square"), meta={"seed": seed})

    yield calls
    _REGISTRY.pop("toy_squares", None)


def test_register_holds_every_fact(toy):
    info = dataset_info("toy_squares")
    assert (info.policy, info.resolution, info.sizes, info.embedded) == ("rotation", "low", "generated", True)
    assert policy_for("toy_squares") is ROTATION_POLICY and policy_for("casting") is CUTPASTE_POLICY
    smoke = get_profile("smoke")
    cfg = TrainConfig.from_profile(smoke, method="cobra", dataset="toy_squares")
    assert cfg.image_size == smoke.low_res_size and cfg.crop, "low resolution: low_res_size and random crops"
    ds = load_data("toy_squares", None, None, smoke)
    assert toy[-1] == dict(image_size=smoke.low_res_size, n_train=smoke.n_train, n_test=smoke.n_test)
    assert len(ds.train) == smoke.n_train
    assert dataset_info("casting").sizes == "capped" and dataset_info("digits").resolution == "low"


def test_register_bad_declarations():
    with pytest.raises(ValueError, match="^resolution must be 'low' or 'high', got 'medium'$"):
        register("x_bad", "d", resolution="medium")
    with pytest.raises(ValueError, match="^sizes must be 'generated' or 'capped', got 'all'$"):
        register("x_bad", "d", sizes="all")
    with pytest.raises(ValueError, match="^a dataset name must be a non-empty lower-case string, got 'Toy'$"):
        register("Toy", "d")
    with pytest.raises(DatasetError, match="^unknown dataset 'nope'; valid names: "):
        dataset_info("nope")
    with pytest.raises(ValueError, match="^no pseudo-anomaly policy for dataset 'nope'; known: "):
        policy_for("nope")


def test_a_registered_policy_name_must_exist():
    register("toy_unknown_policy", "d", policy="stripes")(lambda **kw: None)
    try:
        with pytest.raises(ValueError, match="names the policy 'stripes', which is not one of rotation, cutpaste"):
            policy_for("toy_unknown_policy")
    finally:
        _REGISTRY.pop("toy_unknown_policy")


def test_toy_dataset_through_the_cli(toy, tmp_path, capsys, monkeypatch):
    """One register(...) call, then train, evaluate and purify from the command line."""
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    run = tmp_path / "run"
    assert main(["train", "--data", "toy_squares", "--method", "csi", "--profile", "smoke", "--epochs", "1",
                 "--out", str(run)]) == 0
    js = tmp_path / "eval.json"
    assert main(["evaluate", "--ckpt", str(run / "last.pt"), "--attack", "pgd", "--steps", "1", "--json",
                 str(js)]) == 0
    protocol = json.loads(js.read_text())["protocol"]
    assert protocol["dataset"] == "toy_squares" and protocol["method"] == "csi"
    assert protocol["image_size"] == get_profile("smoke").low_res_size, "the size its registration asked for"
    pure = tmp_path / "pure"
    capsys.readouterr()
    assert main(["train", "--data", "toy_squares", "--method", "csi", "--profile", "smoke", "--epochs", "1",
                 "--contamination", "0.1", "--purify", "--keep", "0.8", "--out", str(pure)]) == 0
    out = capsys.readouterr().out
    assert "purification: pixel_knn" in out and "keep 0.8" in out, out[-500:]


def test_no_module_decides_by_a_dataset_name():
    """Resolution, sizes and policy come from the registration: no module compares a dataset's name or its
    policy's K to decide them (the loaders' own modules name themselves when they register)."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        if path.parent.name == "data":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(isinstance(c, ast.Constant) and c.value in
                                                     ("surfaces", "digits", "casting", "mvtec_ad", "cifar10")
                                                     for c in [node.left, *node.comparators]):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute) and node.left.attr == "K" \
                    and isinstance(node.left.value, ast.Call) and getattr(node.left.value.func, "id", "") == \
                    "policy_for":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} policy_for(...).K")
    assert not offenders, offenders
