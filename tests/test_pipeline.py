"""Tests of radlib.pipeline's score choice: fit_score(kind=...) and run_method(score_kind=...)."""
from __future__ import annotations

import pytest
import torch

from radlib.data import load
from radlib.models import build_model
from radlib.pipeline import run_method, untrained
from radlib.score import fit_score
from radlib.profiles import get_profile
from radlib.score import EnsembleScore, KNNScore, PatchKNNScore
from radlib.train import TrainConfig, TrainResult


@pytest.fixture(scope="module")
def tiny():
    return load("surfaces", normal="wood", image_size=32, n_train=32, n_test=24, seed=0)


def _random_result(method: str) -> TrainResult:
    cfg = TrainConfig(method=method, dataset="surfaces", category="wood", image_size=32, width=8, epochs=1, seed=0)
    return untrained(cfg, device="cpu")


def test_untrained_is_train_s_starting_point_and_leaves_the_rng_alone():
    cfg = TrainConfig(method="csi", dataset="surfaces", category="wood", image_size=32, width=8, epochs=1, seed=3)
    state = torch.random.get_rng_state()
    a, b = untrained(cfg, device="cpu"), untrained(cfg, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    torch.manual_seed(cfg.seed)
    ref = build_model(cfg.model_config())
    for p, q, r in zip(a.model.parameters(), b.model.parameters(), ref.parameters()):
        assert torch.equal(p, q) and torch.equal(p, r)
    assert not a.model.training and a.seconds == 0.0 and a.history == [] and a.policy is not None


@pytest.mark.parametrize("method, own", [("cobra", EnsembleScore), ("csi", EnsembleScore), ("msc", KNNScore)])
def test_fit_score_kinds(tiny, method, own):
    res = _random_result(method)
    assert isinstance(fit_score(res, tiny.train.images), own)
    knn = fit_score(res, tiny.train.images, kind="knn")
    assert isinstance(knn, KNNScore) and knn(tiny.test.images).shape == (24,)
    patch = fit_score(res, tiny.train.images, kind="patch")
    assert isinstance(patch, PatchKNNScore) and patch.stage == 3 and patch(tiny.test.images).shape == (24,)
    with pytest.raises(ValueError, match="kind must be one of 'own', 'knn', 'patch', got 'pixels'"):
        fit_score(res, tiny.train.images, kind="pixels")  # type: ignore[arg-type]


def test_run_method_records_score_kind(tiny):
    profile = get_profile("smoke").replace(epochs=1, batch_size=16)
    run = run_method("csi", tiny, profile, device="cpu", attacks=[], progress=False, score_kind="knn", width=8)
    assert isinstance(run.score, KNNScore)
    assert run.eval.protocol["score_kind"] == "knn" and 0 <= run.eval.clean_auroc <= 100
