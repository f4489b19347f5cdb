"""End-to-end learning claims on CPU (deterministic seeds; about 1.5 min together).

- a short CPU run of ``cobra`` on ``surfaces`` beats the random-init network's clean AUROC (training core);
(CSI learning and collapsing under attack is asserted with the ``cpu`` recipe in ``test_robust_gap.py``.)
"""
import warnings

import pytest
import torch

from radlib.data import load
from radlib.evaluate import evaluate
from radlib.models import build_model
from radlib.score import fit_score
from radlib.train import TrainConfig, TrainResult, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wood():
    return load("surfaces", normal="wood", image_size=32, n_train=256, n_test=200, seed=0)


def _cfg(method, **kw):
    base = dict(method=method, dataset="surfaces", category="wood", image_size=32, epochs=10, batch_size=32,
                width=16, attack_steps=1, warmup_epochs=1, optimizer="adam", lr=1e-3, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def _evaluate(result, ds, attacks=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        score = fit_score(result, ds.train.images)
    return evaluate(score, ds.test, attacks=list(attacks), batch_size=100, seed=0)


def test_cobra_cpu_run_beats_random_init(wood):
    cfg = _cfg("cobra")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        random_model = build_model(cfg.model_config()).eval()
    random_init = _evaluate(TrainResult(random_model, cfg, [], 0.0, None, None, cfg.policy()), wood)
    trained = train(cfg, wood, progress=False, device="cpu")  # time belongs in benchmarks/, never in a test
    cobra = _evaluate(trained, wood)
    assert cobra.clean_auroc > random_init.clean_auroc, (cobra.clean_auroc, random_init.clean_auroc)
