"""Tests of radlib.reference: the pixel-kNN and untrained-network rows beside every robust number, and the verdict
that says from a run's numbers whether raw pixels or learning win."""
from __future__ import annotations

import numpy as np
import pytest

from radlib.certify import PixelKNNScore, certified_auroc
from radlib.evaluate import AttackSpec, evaluate
from radlib.pipeline import load_data, untrained
from radlib.score import fit_score
from radlib.profiles import get_profile
from radlib.reference import Reference, reference_rows, verdict
from radlib.results import AttackResult, EvalResult
from radlib.train import TrainConfig

ATTACK = AttackSpec(eps=4 / 255, steps=2)


@pytest.fixture(scope="module")
def tiny():
    return load_data("surfaces", "metal", 32, get_profile("smoke"), n_train=24, n_test=20)


def test_reference_rows_are_the_detectors_evaluated_as_the_trained_ones(tiny):
    profile = get_profile("smoke").replace(score="patch", width=8)
    refs = reference_rows(tiny, profile, [ATTACK, "pgd-2@8/255"], device="cpu", seed=3)
    assert list(refs) == ["pixel kNN", "untrained network"]
    pix, net = refs["pixel kNN"], refs["untrained network"]
    direct = evaluate(PixelKNNScore.fit(tiny.train.images, k=2), tiny.test, attacks=[ATTACK, "pgd-2@8/255"], seed=3)
    np.testing.assert_array_equal(pix.eval.clean_scores, direct.clean_scores)
    np.testing.assert_array_equal(pix.eval.attacks[1].scores, direct.attacks[1].scores)
    knn = PixelKNNScore.fit(tiny.train.images, k=2)
    for spec in (ATTACK, AttackSpec.from_string("pgd-2@8/255")):
        cert = certified_auroc(*knn.bounds(tiny.test.images, spec.eps), tiny.test.labels)
        assert pix.certified_under(spec.name) == cert <= pix.eval.auroc_under(spec.name) + 1e-9
    assert pix.certified_under("pgd-9@1/255") is None and net.certified is None
    # the untrained row: the cobra network training would start from for this seed, scored like the trained rows
    cfg = TrainConfig.from_profile(profile, method="cobra", dataset=tiny.name, image_size=tiny.image_size,
                                   n_train=len(tiny.train.images), category=tiny.normal, channels=tiny.channels, seed=3)
    ref = evaluate(fit_score(untrained(cfg), tiny.train.images, kind="patch", seed=3), tiny.test, attacks=[ATTACK],
                   seed=3)
    assert net.name == "untrained network (patch score)"
    np.testing.assert_allclose(net.eval.clean_scores, ref.clean_scores, rtol=1e-6)
    assert net.eval.auroc_under(ATTACK.name) == pytest.approx(ref.auroc_under(ATTACK.name))
    own = reference_rows(tiny, profile.replace(score="own"), [ATTACK], device="cpu")
    assert own["untrained network"].name == "untrained network (knn score)"  # an untrained head carries no signal
    assert list(reference_rows(tiny, profile, [ATTACK], untrained_network=False)) == ["pixel kNN"]


def test_reference_rows_keep_their_evaluations_in_the_cache(tiny, tmp_path, monkeypatch):
    import dataclasses

    import radlib.reference as reference
    profile = get_profile("smoke").replace(score="patch", width=8)
    first = reference_rows(tiny, profile, [ATTACK], device="cpu", seed=3, cache=tmp_path)
    (entry,) = tmp_path.iterdir()
    assert entry.name == "reference-surfaces-metal" and (entry / "evals.pt").is_file()
    real = reference.evaluate

    def no_attack(*a, **k):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(reference, "evaluate", no_attack)
    again = reference_rows(tiny, profile, [ATTACK], device="cpu", seed=3, cache=tmp_path)
    for row in ("pixel kNN", "untrained network"):
        a, b = first[row], again[row]
        assert a.name == b.name and a.certified == b.certified and a.eval.clean_auroc == b.eval.clean_auroc
        np.testing.assert_array_equal(a.eval.clean_scores, b.eval.clean_scores)
        np.testing.assert_array_equal(a.eval.attacks[0].scores, b.eval.attacks[0].scores)
    assert again["pixel kNN"].certified_under(ATTACK.name) == first["pixel kNN"].certified_under(ATTACK.name)
    # whatever decides a row is another evaluation: the seed, the attack, the test split, the network's width
    for kw in (dict(seed=4), dict(attacks=["pgd-2@8/255"]),
               dict(ds=dataclasses.replace(tiny, test=tiny.test.subset(np.arange(12)))),
               dict(profile=profile.replace(width=4))):
        args = dict(ds=tiny, profile=profile, attacks=[ATTACK], seed=3) | kw
        with pytest.raises(AssertionError, match="evaluated again"):
            reference_rows(args.pop("ds"), args.pop("profile"), args.pop("attacks"), device="cpu", cache=tmp_path,
                           **args)
    monkeypatch.setattr(reference, "evaluate", real)
    assert not list(tmp_path.glob("*/*.tmp")) and len(list(tmp_path.iterdir())) == 1
    monkeypatch.setenv("RADLIB_CACHE", str(tmp_path / "default"))  # where cache=True would write
    reference_rows(tiny, profile, [ATTACK], device="cpu", seed=3)  # cache=False: nothing is written
    assert not (tmp_path / "default").exists()
    reference_rows(tiny, profile, [ATTACK], device="cpu", seed=3, cache=True)
    assert [p.name for p in (tmp_path / "default").iterdir()] == ["reference-surfaces-metal"]


def _result(clean: float, robust: float) -> EvalResult:
    return EvalResult("toy", np.array([0, 1]), np.array([0.0, 1.0]), clean,
                      [AttackResult(ATTACK, np.array([0.0, 1.0]), robust, {})])


def test_verdict_says_which_side_wins_from_the_numbers():
    refs = {"pixel kNN": Reference("pixel kNN (no training)", _result(61.0, 7.3), {ATTACK.name: 3.9}),
            "untrained network": Reference("untrained network (patch score)", _result(58.5, 0.0))}
    text = verdict({"CSI": _result(80.0, 0.0), "COBRA": [_result(82.0, 31.0), _result(78.0, 21.0)]}, refs, ATTACK.name)
    assert "COBRA, keeps 26.0 AUROC (80.0 clean)" in text and "keeps 7.3 (61.0 clean, certified 3.9)" in text
    assert "untrained network 0.0 (58.5 clean)" in text and "Learning earns its place: +18.7 points" in text
    pixels = {"pixel kNN": Reference("pixel kNN (no training)", _result(100.0, 99.9), {ATTACK.name: 99.7})}
    text = verdict({"COBRA": _result(99.2, 95.1)}, pixels, ATTACK.name)
    assert "Raw pixels win by +4.8 points under attack" in text and "certified 99.7" in text
    text = verdict({"CSI": _result(52.5, 0.0)}, {"pixel kNN": Reference("p", _result(57.2, 3.2))}, ATTACK.name)
    assert "No trained detector here beats raw pixels under attack (+3.2 points" in text and "57.2 clean" in text
    text = verdict({"COBRA": _result(70.0, 40.0)}, {"pixel kNN": Reference("p", _result(93.0, 30.0))}, ATTACK.name)
    assert "a trade-off, not a win" in text and "+10.0 points" in text and "+23.0" in text
    with pytest.raises(ValueError, match="no trained detectors to compare"):
        verdict({}, refs, ATTACK.name)
    with pytest.raises(ValueError, match="refs must hold the 'pixel kNN' row"):
        verdict({"COBRA": _result(1, 1)}, {}, ATTACK.name)
    with pytest.raises(KeyError, match="no attack named 'pgd-3@1/255'"):
        verdict({"COBRA": _result(1, 1)}, refs, "pgd-3@1/255")
