"""The standard worst-case evaluation: Square on the score, transfer attacks, the per-sample worst case, the two new
masking checks, and ``--attack standard`` from the CLI."""
import json

import numpy as np
import pytest
import torch

from radlib.__main__ import main
from radlib.attacks import attack_score
from radlib.checks import masking_checks
from radlib.evaluate import evaluate
from radlib.metrics import auroc
from radlib.specs import AttackSpec, standard_attacks


def _data(n=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.tensor([0] * (n // 2) + [1] * (n // 2))
    x = (torch.rand(n, 1, 8, 8, generator=g) * 0.6 + 0.1 * y.view(-1, 1, 1, 1).float()).clamp(0, 1)
    return x, y


def _linear(seed):
    w = torch.randn(64, generator=torch.Generator().manual_seed(seed)) * 0.05 + 1

    def score(b):
        return b.flatten(1) @ w / 64
    return score


def test_the_worst_case_is_the_per_sample_worst_and_below_every_attack():
    x, y = _data()
    score = _linear(0)
    specs = standard_attacks("8/255", steps=5, restarts=2, queries=30, surrogates=["other"])
    r = evaluate(score, x, y, attacks=specs, surrogates={"other": _linear(1)}, seed=3)
    *singles, worst = r.attacks
    assert [a.spec.method for a in singles] == ["apgd", "square", "pgd"] and worst.spec.method == "worst"
    expect = np.array([max(a.scores[i] for a in singles) if y[i] == 0 else min(a.scores[i] for a in singles)
                       for i in range(len(y))])  # a naive loop
    assert np.array_equal(worst.scores, expect)
    assert worst.auroc == auroc(expect, y.numpy()) <= min(a.auroc for a in singles)
    assert r.robust_auroc == worst.auroc  # the headline number is the worst case
    assert sum(worst.protocol["worst_by"].values()) == len(y) and worst.protocol["of"] == [a.spec.name for a in singles]
    assert "worst-3@8/255" in r.table()


def test_standard_is_a_shorthand_and_transfer_needs_its_surrogate():
    x, y = _data()
    r = evaluate(_linear(0), x, y, attacks="standard")
    assert [a.spec.name for a in r.attacks] == ["apgd-100@8/255,restarts=3", "square-1000@8/255", "worst-2@8/255"]
    with pytest.raises(ValueError, match=r"crafted on surrogate 'nope', which is not in surrogates \(\[\]\)"):
        evaluate(_linear(0), x, y, attacks=["pgd-5@8/255,surrogate=nope"])
    with pytest.raises(ValueError, match="attacks must be a list of attacks or 'standard', got 'strong'"):
        evaluate(_linear(0), x, y, attacks="strong")


def test_the_worst_case_refuses_attacks_of_another_ball():
    x, y = _data()
    with pytest.raises(ValueError, match=r"'worst-2@8/255' combines attacks of one ball \(linf eps 8/255\); "
                                         r"\['pgd-2@4/255'\] use another"):
        evaluate(_linear(0), x, y, attacks=["pgd-2@8/255", "pgd-2@4/255", "worst-2@8/255"])


def test_a_transfer_from_the_score_itself_is_the_white_box_attack():
    x, y = _data()
    score = _linear(0)
    r = evaluate(score, x, y, attacks=["pgd-5@8/255", "pgd-5@8/255,surrogate=self"], surrogates={"self": score})
    assert np.array_equal(r.attacks[0].scores, r.attacks[1].scores)
    assert r.attacks[1].protocol["surrogate"] == "self" and "transfer" in r.attacks[1].spec.describe()


def test_square_on_the_score_respects_the_mode_and_the_ball():
    x, y = _data()
    adv = attack_score(_linear(0), x, y, eps=8 / 255, steps=20, method="square", mode="in",
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(adv[y == 1], x[y == 1])  # anomalies untouched by an in-attack
    assert float((adv - x).abs().max()) <= 8 / 255 + 1e-6
    # normals pushed up (on average: Square starts from random stripes, as published, not from the clean image)
    assert float(_linear(0)(adv)[y == 0].mean()) > float(_linear(0)(x)[y == 0].mean())
    spec = AttackSpec.from_string("square-200@8/255,mode=in")
    assert spec.method == "square" and spec.steps == 200 and spec.alpha_effective is None


class _Rounded:
    """A score through torch.round: zero gradient, so every gradient attack is blind (gradient masking)."""

    def __call__(self, b):
        return torch.round(_linear(0)(b) * 50) / 50


def test_the_new_checks_catch_a_masked_score_and_pass_an_honest_one():
    x, y = _data(48)
    masked = {c.name: c for c in masking_checks(_Rounded(), x, y, eps=16 / 255, steps=5, restarts=2, queries=100,
                                                surrogate=_linear(1), verbose=False)}
    assert not masked["gradient-free Square-100 does not beat the gradient attack"].passed
    assert not masked["transfer attack does not beat the gradient attack"].passed
    honest = {c.name: c for c in masking_checks(_linear(0), x, y, eps=16 / 255, steps=5, restarts=2, queries=100,
                                                surrogate=_linear(1), verbose=False)}
    assert honest["gradient-free Square-100 does not beat the gradient attack"].passed
    assert honest["transfer attack does not beat the gradient attack"].passed


def test_cli_attack_standard_with_a_surrogate(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", "max_train=24,max_test=30,width=8,low_res_size=16")
    base = ["train", "--data", "digits", "--category", "0", "--method", "csi", "--profile", "smoke", "--epochs", "1"]
    assert main([*base, "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--seed", "1", "--out", str(tmp_path / "b")]) == 0
    js = tmp_path / "e.json"
    assert main(["evaluate", "--ckpt", str(tmp_path / "a" / "last.pt"), "--attack", "standard", "--steps", "2",
                 "--queries", "10", "--surrogate", str(tmp_path / "b" / "last.pt"), "--json", str(js)]) == 0
    d = json.loads(js.read_text())
    names = [a["name"] for a in d["attacks"]]
    assert names == ["apgd-2@8/255,restarts=3", "square-10@8/255", "pgd-2@8/255,surrogate=surrogate",
                     "worst-3@8/255"]
    assert d["attacks"][-1]["auroc"] <= min(a["auroc"] for a in d["attacks"][:-1])
    assert d["protocol"]["surrogate"].endswith("b/last.pt")
