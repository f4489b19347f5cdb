"""Tests of radlib.evaluate: AUROC vs sklearn, attack specs, the protocol, masking checks, sweeps, figures."""
from __future__ import annotations

import functools
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from radlib.data import Split
from radlib.checks import masking_checks
from radlib.evaluate import evaluate, sweep, sweep_eps, sweep_steps
from radlib.metrics import auroc, format_eps, parse_eps
from radlib.results import Check, EvalResult
from radlib.specs import AttackSpec
from radlib.viz import plot_auroc_vs_eps, plot_score_histograms

try:
    from radlib.attacks import attack_score as _real_attack_score
except ImportError:  # pragma: no cover - only before attacks.py exists
    _real_attack_score = None


def _standin_attack_score(score_fn, x, labels, *, eps, steps=10, method="pgd", mode="both", norm="linf",
                          alpha=None, restarts=1, generator=None, batch_size=None):
    """Minimal L-inf PGD with the attacks.attack_score signature (used only if attacks.py is missing)."""
    sign = (1.0 - 2.0 * labels.float()).view(-1, 1, 1, 1)
    if mode != "both":
        sign = sign * (labels == (0 if mode == "in" else 1)).float().view(-1, 1, 1, 1)
    if eps == 0:
        return x.clone()
    step = alpha if alpha is not None else 2.5 * eps / max(steps, 1)
    best = None
    for _ in range(restarts):
        xa = (x + eps * (torch.rand(x.shape, generator=generator) * 2 - 1) * sign.abs()).clamp(0, 1)
        for _ in range(steps):
            xa.requires_grad_(True)
            with torch.enable_grad():
                (g,) = torch.autograd.grad(score_fn(xa).sum(), xa)
            xa = (x + (xa.detach() + step * sign * g.sign() - x).clamp(-eps, eps)).clamp(0, 1)
        best = xa if best is None else best
    return best.detach()


ATTACK = _real_attack_score or _standin_attack_score


class LinearScore:
    """score(x) = mean pixel value (higher = brighter = more anomalous); exact and differentiable."""

    name = "mean-pixel"
    device = torch.device("cpu")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1).mean(1)


class MaskedScore(LinearScore):
    """The same score behind torch.round: zero input gradient everywhere (deliberate gradient masking)."""

    name = "masked"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * 4).div(4).flatten(1).mean(1)


def toy_data(n_norm: int = 24, n_anom: int = 16, size: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.cat([torch.full((n_norm,), 0.42), torch.full((n_anom,), 0.58)])
    base = base + 0.05 * torch.randn(base.shape, generator=g)
    x = (base.view(-1, 1, 1, 1) + 0.1 * torch.randn(base.shape[0], 1, size, size, generator=g)).clamp(0, 1)
    labels = torch.cat([torch.zeros(n_norm), torch.ones(n_anom)]).long()
    perm = torch.randperm(len(labels), generator=g)
    return x[perm], labels[perm]


# ------------------------------------------------------------------------------------ auroc
@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.floats(-5, 5, allow_nan=False), st.booleans()), min_size=2, max_size=40))
def test_auroc_matches_sklearn(pairs):
    from sklearn.metrics import roc_auc_score

    y = np.array([int(b) for _, b in pairs])
    s = np.array([v for v, _ in pairs])
    if y.min() == y.max():
        with pytest.raises(ValueError, match="both"):
            auroc(s, y)
        return
    assert math.isclose(auroc(torch.tensor(s), torch.tensor(y)), 100 * roc_auc_score(y, s), abs_tol=1e-9)


def test_auroc_percent_and_errors():
    assert auroc([0.1, 0.2, 0.9, 0.8], [0, 0, 1, 1]) == 100.0
    assert auroc([0.9, 0.8, 0.1, 0.2], [0, 0, 1, 1]) == 0.0
    assert auroc([1, 1, 1, 1], [0, 1, 0, 1]) == 50.0
    with pytest.raises(ValueError, match="same length"):
        auroc([0.1, 0.2], [0, 1, 1])
    with pytest.raises(ValueError, match="non-finite"):
        auroc([0.1, float("nan")], [0, 1])
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        auroc([0.1, 0.2], [0, 2])


# ------------------------------------------------------------------------------------ specs
def test_eps_parsing_and_formatting():
    assert parse_eps("8/255") == 8 / 255 and parse_eps(" 0.5 ") == 0.5 and parse_eps(0) == 0.0
    assert format_eps(8 / 255) == "8/255" and format_eps(0) == "0" and format_eps(0.3) == "0.3"
    assert format_eps(0.5 / 255) == "0.5/255" and parse_eps(format_eps(0.5 / 255)) == 0.5 / 255
    for bad in ("abc", "1/0", "-1/255", float("inf")):
        with pytest.raises(ValueError):
            parse_eps(bad)
    with pytest.raises(TypeError):
        parse_eps(None)


def test_attack_spec_parsing_roundtrip():
    s = AttackSpec.from_string("pgd-100@8/255")
    assert (s.method, s.steps, s.eps, s.mode, s.norm, s.restarts, s.alpha, s.seed) == \
        ("pgd", 100, 8 / 255, "both", "linf", 1, None, None)
    assert s.name == "pgd-100@8/255"
    assert math.isclose(s.alpha_effective, 2.5 * (8 / 255) / 100)
    t = AttackSpec.from_string("APGD-50@0.5, mode=in, norm=l2, restarts=3, seed=7, name=mine")
    assert (t.method, t.steps, t.eps, t.mode, t.norm, t.restarts, t.seed, t.name) == \
        ("apgd", 50, 0.5, "in", "l2", 3, 7, "mine")
    assert t.alpha_effective is None and "APGD-50" in t.describe() and "normals" in t.describe()
    u = AttackSpec(eps="4/255", steps=20, alpha="1/255", mode="out", restarts=2, seed=1)
    assert AttackSpec.from_string(u.short()) == u
    assert u.replace(eps=2 / 255).name == "pgd-20@2/255,mode=out,alpha=1/255,restarts=2,seed=1"
    for bad in ("pgd100@8/255", "pgd-10@8/255,foo=1", "fgsm-1@8/255", "pgd-10@x", "pgd-10@8/255,restarts=a"):
        with pytest.raises(ValueError):
            AttackSpec.from_string(bad)
    with pytest.raises(ValueError, match="mode"):
        AttackSpec(mode="sideways")
    with pytest.raises(ValueError, match="restarts"):
        AttackSpec(restarts=0)
    with pytest.raises(ValueError, match="steps"):
        AttackSpec(steps=-1)


# ------------------------------------------------------------------------------------ evaluate
def test_evaluate_protocol_and_eps0():
    x, y = toy_data()
    res = evaluate(LinearScore(), x, y, attacks=["pgd-0@0", AttackSpec(eps=8 / 255, steps=5), "pgd-5@8/255,mode=in"],
                   batch_size=16, seed=3, attack_fn=ATTACK)
    assert res.clean_auroc == auroc(res.clean_scores, y) > 90
    # eps = 0 reproduces the clean scores exactly
    assert np.array_equal(res["pgd-0@0"].scores, res.clean_scores)
    assert res["pgd-0@0"].auroc == res.clean_auroc
    # the linear score under L-inf PGD: every normal moves up by <= eps, every anomaly down by <= eps
    att = res["pgd-5@8/255"]
    assert att.auroc < res.clean_auroc
    d = att.scores - res.clean_scores
    assert (d[y.numpy() == 0] > 0).all() and (d[y.numpy() == 1] < 0).all()
    assert np.abs(d).max() <= 8 / 255 + 1e-6
    # mode=in leaves the anomalies exactly clean
    inn = res["pgd-5@8/255,mode=in"]
    assert np.array_equal(inn.scores[y.numpy() == 1], res.clean_scores[y.numpy() == 1])
    for key in ("eps", "eps_str", "alpha", "steps", "restarts", "mode", "attacked", "norm", "precision",
                "allow_tf32_matmul", "seed", "n_normal", "n_anomalous", "seconds", "images_per_s", "method"):
        assert key in att.protocol, key
    assert att.protocol["n_normal"] == 24 and att.protocol["n_anomalous"] == 16 and att.protocol["seed"] == 3
    assert att.protocol["precision"].startswith("fp32") and att.protocol["eps_str"] == "8/255"
    assert inn.protocol["n_attacked"] == 24
    table = res.table()
    assert "pgd-5@8/255" in table and "| clean |" in table and f"{res.clean_auroc:.2f}" in table
    d = res.to_dict()
    json.dumps(d)
    assert d["attacks"][1]["auroc"] == att.auroc and len(d["clean_scores"]) == 40
    assert "scores" not in res.to_dict(include_scores=False)["attacks"][0]


def test_evaluate_split_input_and_batch_independence():
    x, y = toy_data()
    split = Split((x * 255).round().to(torch.uint8), y, y.clone())
    a = evaluate(LinearScore(), split, attacks=["pgd-3@4/255"], batch_size=7, attack_fn=ATTACK)
    b = evaluate(LinearScore(), split.images, split.labels, attacks=["pgd-3@4/255"], batch_size=40,
                 attack_fn=ATTACK)
    np.testing.assert_allclose(a.clean_scores, b.clean_scores, atol=1e-7)
    assert a.attacks[0].spec.name == "pgd-3@4/255"


def test_evaluate_keep_adversarial_within_ball():
    x, y = toy_data()
    res = evaluate(LinearScore(), x, y, attacks=["pgd-3@8/255"], keep_adversarial=True, attack_fn=ATTACK)
    adv = res.attacks[0].adversarial
    assert adv.shape == x.shape and (adv - x).abs().max() <= 8 / 255 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1


def test_evaluate_bad_inputs():
    x, y = toy_data()
    with pytest.raises(ValueError, match="labels are required"):
        evaluate(LinearScore(), x)
    with pytest.raises(ValueError, match="both normal"):
        evaluate(LinearScore(), x, torch.zeros(len(y)))
    with pytest.raises(ValueError, match="entries"):
        evaluate(LinearScore(), x, y[:-1])
    with pytest.raises(ValueError, match="unique"):
        evaluate(LinearScore(), x, y, attacks=["pgd-1@1/255", "pgd-1@1/255"])
    with pytest.raises(TypeError, match="AttackSpec"):
        evaluate(LinearScore(), x, y, attacks=[3])
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(LinearScore(), x, y, batch_size=0)
    with pytest.raises(TypeError, match="Split"):
        evaluate(LinearScore(), [1, 2], y)


def test_sweeps_and_figures():
    from matplotlib.figure import Figure

    x, y = toy_data()
    sw = sweep_eps(LinearScore(), x, [0, 4 / 255, "16/255", 64 / 255], steps=5, labels=y, attack_fn=ATTACK)
    assert [r.attacks[0].spec.eps for r in sw] == [0, 4 / 255, 16 / 255, 64 / 255]
    assert all(r.clean_auroc == sw[0].clean_auroc for r in sw)
    aucs = [r.robust_auroc for r in sw]
    assert aucs[0] == sw[0].clean_auroc and all(b <= a + 1e-9 for a, b in zip(aucs, aucs[1:]))
    assert aucs[-1] < 10
    st_ = sweep_steps(LinearScore(), x, [1, 4], eps=8 / 255, labels=y, attack_fn=ATTACK)
    assert [r.attacks[0].spec.steps for r in st_] == [1, 4]
    mixed = sweep(LinearScore(), x, [AttackSpec(eps=4 / 255, steps=5), AttackSpec(eps=8 / 255, steps=4)], labels=y,
                  attack_fn=ATTACK)  # the one sweep the two above build on: any attacks, in order
    assert [r.robust_auroc for r in mixed] == [sw[1].robust_auroc, st_[1].robust_auroc]
    with pytest.raises(ValueError, match="^duplicate attacks in the sweep"):
        sweep(LinearScore(), x, [AttackSpec(eps=4 / 255, steps=5)] * 2, labels=y, attack_fn=ATTACK)

    fig = plot_auroc_vs_eps(sw)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() == "AUROC (%)" and ax.get_legend() is not None
    fig2 = plot_score_histograms(sw[2])
    assert isinstance(fig2, Figure) and len(fig2.axes) == 2
    assert all(a.get_xlabel() and a.get_legend() is not None for a in fig2.axes)
    assert "AUROC" in fig2.axes[1].get_title()
    with pytest.raises(ValueError, match="no attacks"):
        plot_score_histograms(EvalResult("s", np.array([0, 1]), np.array([0.0, 1.0]), 100.0))


# ------------------------------------------------------------------------------------ masking checks
def test_masking_checks_pass_on_linear_score(capsys):
    x, y = toy_data()
    res = evaluate(LinearScore(), x, y, attacks=["pgd-5@8/255"], attack_fn=ATTACK)
    checks = masking_checks(LinearScore(), x, y, eps=8 / 255, steps=5, restarts=2, attack_fn=ATTACK, result=res)
    assert all(isinstance(c, Check) for c in checks) and len(checks) == 8
    assert all(c.passed for c in checks), "\n".join(map(str, checks))
    large = [c for c in checks if c.name.startswith("large eps")][0]
    assert large.data["auroc"] < 10
    assert "GRADIENT-MASKING CHECK FAILED" not in capsys.readouterr().out
    assert res.checks == checks and "Gradient-masking checks" in res.table() and "FAILED" not in res.table()


def test_masking_checks_catch_a_masked_score(capsys):
    x, y = toy_data()
    res = evaluate(MaskedScore(), x, y, attacks=["pgd-5@8/255"], attack_fn=ATTACK)
    checks = masking_checks(MaskedScore(), x, y, eps=8 / 255, steps=5, restarts=2, attack_fn=ATTACK, result=res)
    failed = {c.name for c in checks if not c.passed}
    assert "score gradient exists" in failed
    assert any(n.startswith("large eps") for n in failed)
    out = capsys.readouterr().out
    assert "!! GRADIENT-MASKING CHECK FAILED" in out
    assert "!! GRADIENT-MASKING CHECK FAILED" in res.table() and "NOT trustworthy" in res.table()


def test_masking_checks_bad_inputs():
    x, y = toy_data()
    with pytest.raises(ValueError, match="restarts"):
        masking_checks(LinearScore(), x, y, restarts=1, attack_fn=ATTACK)
    with pytest.raises(ValueError, match="eps"):
        masking_checks(LinearScore(), x, y, eps=0, attack_fn=ATTACK)


# ------------------------------------------------------------------------------------ with the real model
def _tiny_detector(K: int, size: int):
    from radlib.models import ModelConfig, ResNet18AD

    torch.manual_seed(0)
    m = ResNet18AD(ModelConfig(width=8, image_size=size, num_transforms=K)).eval()
    with torch.no_grad():
        m.transform_head.bias.fill_(2.0)
    return m


@pytest.mark.skipif(_real_attack_score is None, reason="radlib.attacks not available yet")
def test_ensemble_score_eps0_exact_with_random_policy():
    """K=2 random pseudo-anomalies + crop samples: the attack path (eps=0) reproduces the clean scores bit for bit."""
    from radlib.augment import random_resized_crop
    from radlib.pseudo_anomaly import CUTPASTE_POLICY
    from radlib.score import EnsembleScore

    model = _tiny_detector(2, 16)
    g = torch.Generator().manual_seed(0)
    train = torch.rand(8, 3, 16, 16, generator=g)
    test = torch.rand(10, 3, 16, 16, generator=g)
    y = torch.tensor([0, 1] * 5)
    sc = EnsembleScore.fit(model, train, CUTPASTE_POLICY, samples=2,
                           augment=functools.partial(random_resized_crop, scale=(0.54, 0.54)))
    res = evaluate(sc, test, y, attacks=["pgd-0@0", "pgd-1@8/255"], batch_size=4)
    assert np.array_equal(res["pgd-0@0"].scores, res.clean_scores)
    assert np.isfinite(res["pgd-1@8/255"].scores).all()


@pytest.mark.slow
@pytest.mark.skipif(_real_attack_score is None, reason="radlib.attacks not available yet")
def test_non_robust_detector_collapses_under_pgd():
    """A small rotation-prediction detector: clearly above chance clean, below 20 AUROC under PGD-20 @ 8/255."""
    from radlib.pseudo_anomaly import ROTATION_POLICY
    from radlib.score import EnsembleScore

    size = 16
    g = torch.Generator().manual_seed(0)

    def normals(n):  # oriented: a brighter band at the top of a noisy background
        x = 0.3 + 0.2 * torch.rand(n, 3, size, size, generator=g)
        x[:, :, :3, :] += 0.25
        return x.clamp(0, 1)

    def anomalies(n):  # rotation-ambiguous: bands at the top and the bottom
        x = normals(n)
        x[:, :, -3:, :] += 0.25
        return x.clamp(0, 1)

    model = _tiny_detector(4, size)
    train = normals(64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _epoch in range(4):  # rotation prediction (K=4 CE), no adversarial training
        perm = torch.randperm(len(train), generator=g)
        for i in range(0, len(train), 32):
            xe, lab = ROTATION_POLICY.expand(train[perm[i:i + 32]])
            loss = torch.nn.functional.cross_entropy(model(xe).logits, lab)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    sc = EnsembleScore.fit(model, train, ROTATION_POLICY)
    test = torch.cat([normals(20), anomalies(20)])
    y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
    res = evaluate(sc, test, y, attacks=["pgd-20@8/255"], batch_size=40)
    assert res.clean_auroc > 75, res.table()
    assert res.robust_auroc < 20, res.table()


def test_bf16_precision_is_recorded_close_to_fp32_and_keeps_the_invariants():
    from radlib.data import load
    from radlib.evaluate import AutocastScore
    from radlib.models import build_model
    from radlib.score import KNNScore

    ds = load("surfaces", normal="metal", image_size=32, n_train=32, n_test=24, seed=0)
    torch.manual_seed(0)
    model = build_model(image_size=32, num_transforms=2, width=8).eval()
    score = KNNScore.fit(model, ds.train.images, k=2, feature="features")
    specs = [AttackSpec(eps=0.0, steps=2), AttackSpec(eps=2 / 255, steps=3)]
    fp32 = evaluate(score, ds.test, attacks=specs, seed=0)
    bf16 = evaluate(score, ds.test, attacks=specs, seed=0, precision="bf16", keep_adversarial=True)
    assert fp32.protocol["precision"] == "fp32" and fp32.protocol["autocast"] is False
    assert bf16.protocol["precision"] == "bf16 autocast" and bf16.protocol["autocast"] is True
    assert bf16.attacks[1].protocol["precision"] == "bf16 autocast" and "bf16" in bf16.table()
    # bf16 keeps ~3 significant digits: scores agree to a few percent, AUROC to a few points here
    np.testing.assert_allclose(bf16.clean_scores, fp32.clean_scores, rtol=5e-2, atol=1e-2)
    assert abs(bf16.clean_auroc - fp32.clean_auroc) <= 10
    # invariants hold in bf16 too: eps=0 reproduces the clean scores exactly, the attack stays in its ball
    assert np.array_equal(bf16.attacks[0].scores, bf16.clean_scores)
    x = ds.test.images.float() / 255
    adv = bf16.attacks[1].adversarial
    assert adv is not None and adv.dtype == torch.float32
    assert float((adv - x).abs().max()) <= 2 / 255 + 1e-6 and float(adv.min()) >= 0 and float(adv.max()) <= 1
    wrapped = AutocastScore(score, "cpu")
    assert wrapped.name == score.name and wrapped(ds.test.images[:3].float() / 255).dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        evaluate(score, ds.test, precision="fp16")
