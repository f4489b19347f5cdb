"""radlib.purify (LLBNAD learning-bias purification), contamination as a share of the training set, several normal
classes, run_method(purify=...) and `radlib train --purify`."""
import json

import numpy as np
import pytest
import torch

import radlib.data as D
from radlib.__main__ import main
from radlib.data import Split
from radlib.pipeline import run_method
from radlib.record import load_run
from radlib.purify import Purification, aggregate_scores, purify, split_subsets


def _separable(n_normal=45, n_anom=5, seed=0):
    """A tight normal cluster (pixels 100..140) and anomalies of random 0/255 pixels, each far from the cluster
    and from every other anomaly: with D pixels a normal's distance to any normal is <= 40 sqrt(D), an anomaly's
    to anything else >= ~100 sqrt(D), so every kNN-based purification score separates them."""
    g = torch.Generator().manual_seed(seed)
    normal = (torch.rand(n_normal, 3, 8, 8, generator=g) * 40 + 100).to(torch.uint8)
    anom = ((torch.rand(n_anom, 3, 8, 8, generator=g) > 0.5) * 255).to(torch.uint8)
    perm = torch.randperm(n_normal + n_anom, generator=g)  # anomalies anywhere in the split
    images = torch.cat([normal, anom])[perm]
    flags = torch.tensor([False] * n_normal + [True] * n_anom)[perm]
    return Split(images, flags.long(), torch.zeros(len(flags), dtype=torch.long), contaminated=flags)


@pytest.mark.parametrize("exclude_own", [False, True])
@pytest.mark.parametrize("aggregate", ["mean", "max"])  # max_var rewards disagreement, not distance: see below
def test_separable_contamination_is_recalled_fully(aggregate, exclude_own):
    split = _separable()
    p = purify(split, "pixel_knn", keep=0.9, aggregate=aggregate, exclude_own=exclude_own, seed=1)
    assert len(p.kept) == 45 and len(p.dropped) == 5
    assert p.recall == 1.0 and p.precision == 1.0 and p.auroc == 100.0
    assert not split.contaminated[p.kept].any()
    np.testing.assert_array_equal(p.confusion(), [[45, 0], [0, 5]])
    # keeping more than the normals: every anomaly is still dropped first, precision = 5 / dropped
    loose = purify(split, "pixel_knn", keep=0.8, aggregate=aggregate, exclude_own=exclude_own, seed=1)
    assert loose.recall == 1.0 and loose.precision == pytest.approx(5 / 10)


def test_max_var_is_not_a_distance_score():
    # an anomaly far from *every* sub-model's bank gets similar (high) scores everywhere: small variance, so
    # max x variance can rank it below normals. That is why the official code keeps the mean (and radlib too).
    split = _separable()
    mean = purify(split, keep=0.9, aggregate="mean", exclude_own=True, seed=1)
    mv = purify(split, keep=0.9, aggregate="max_var", exclude_own=True, seed=1)
    assert mean.recall == 1.0 and mv.recall < 1.0


@pytest.mark.parametrize("n,s", [(6, 3), (7, 3), (50, 3), (51, 4), (100, 7)])
def test_subsets_are_disjoint_cover_and_follow_the_official_sizes(n, s):
    which = split_subsets(n, s, seed=3)
    assert which.shape == (n,) and set(which.tolist()) == set(range(s))  # every sample in exactly one subset
    sizes = torch.bincount(which, minlength=s).tolist()
    assert sizes[:-1] == [n // s] * (s - 1) and sizes[-1] == n - (s - 1) * (n // s)
    assert torch.equal(which, split_subsets(n, s, seed=3))
    if n >= 50:
        assert not torch.equal(which, split_subsets(n, s, seed=4))


def test_aggregates_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    sub = torch.randn(3, 20, generator=g).abs() * torch.tensor([[1.0], [5.0], [0.2]])
    mask = torch.rand(3, 20, generator=g) > 0.3
    mask[0, ~mask.any(0)] = True
    for standardize in (False, True):
        s = sub.double().numpy()
        if standardize:
            s = (s - s.mean(1, keepdims=True)) / s.std(1, ddof=1, keepdims=True)
        for how in ("mean", "max", "max_var"):
            got = aggregate_scores(sub, how, standardize=standardize, mask=mask).numpy()
            for i in range(20):
                v = s[mask[:, i].numpy(), i]
                ref = {"mean": v.mean(), "max": v.max(), "max_var": v.max() * v.var()}[how]
                assert got[i] == pytest.approx(ref, rel=1e-5, abs=1e-6), (how, standardize, i)


def test_seeded_runs_are_reproducible_and_trained_sub_models_work():
    split = _separable()
    a, b = purify(split, "pixel_knn", seed=5), purify(split, "pixel_knn", seed=5)
    assert torch.equal(a.kept, b.kept) and torch.equal(a.sub_scores, b.sub_scores)
    kw = dict(profile="smoke", seed=2, epochs=1, width=4)
    t1, t2 = purify(split, "csi", **kw), purify(split, "csi", **kw)  # trained sub-models, seeded
    assert t1.sub_scores.shape == (3, 50) and torch.equal(t1.sub_scores, t2.sub_scores)
    assert torch.equal(t1.kept, t2.kept) and t1.settings["profile"] == "smoke"


def test_bad_arguments_raise_clear_errors():
    split = _separable()
    for keep in (0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match=rf"keep must be a fraction in \(0, 1\], got {keep!r}"):
            purify(split, keep=keep)
    with pytest.raises(ValueError, match="subsets must be an int >= 2, got 1"):
        purify(split, subsets=1)
    with pytest.raises(ValueError, match="subsets=26 needs at least 52 training images \\(2 per subset\\), got 50"):
        purify(split, subsets=26)
    with pytest.raises(ValueError, match="method must be 'pixel_knn' or one of"):
        purify(split, "magic")
    with pytest.raises(ValueError, match=r"aggregate must be one of \('mean', 'max', 'max_var'\), got 'median'"):
        purify(split, aggregate="median")
    with pytest.raises(TypeError, match="data must be an ADDataset or a Split, got Tensor"):
        purify(split.images)
    with pytest.raises(ValueError, match="all-False column"):
        aggregate_scores(torch.ones(2, 3), mask=torch.tensor([[True, False, True], [True, False, True]]))


def test_no_flags_no_quality_numbers_and_apply():
    ds = D.load("digits", normal="0", image_size=8, max_train=60, max_test=60)
    p = purify(ds, keep=0.75)
    assert p.n_contaminated == 0 and p.recall is None and p.precision is None and p.auroc is None
    clean = p.apply(ds)
    assert len(clean.train) == 45 and torch.equal(clean.train.images, ds.train.images[p.kept])
    assert clean.test is ds.test and clean.meta["purification"]["n_kept"] == 45
    other = D.load("digits", normal="1", image_size=8, max_train=30, max_test=60)
    with pytest.raises(ValueError, match="computed on 60 training images, the dataset has 30"):
        p.apply(other)
    assert "kept 45 of 60" in p.to_markdown() and p.figure() is not None


# ---- contamination as a share of the training set; several normal classes -------------------------------------

@pytest.mark.parametrize("ratio", [0.05, 0.1, 0.2, 0.4])
def test_contamination_of_the_training_set(ratio):
    clean = D.load("digits", normal="3")
    dirty = D.load("digits", normal="3", contamination=ratio, contamination_of="train")
    moved = round(ratio / (1 - ratio) * len(clean.train))
    assert int(dirty.train.contaminated.sum()) == moved == dirty.meta["n_contaminated"]
    assert dirty.train.contaminated.float().mean().item() == pytest.approx(ratio, abs=0.5 / len(dirty.train) + 1e-9)
    assert dirty.meta["contamination_of"] == "train" and len(dirty.test) == len(clean.test) - moved
    with pytest.raises(ValueError, match="of must be 'test'"):
        D.contaminate(clean, 0.1, of="all")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"needs {round(9 * len(clean.train))} anomalies but the test split has only "
                                         rf"{int((clean.test.labels == 1).sum())} \(at least one must stay"):
        D.contaminate(clean, 0.9, of="train")


def test_several_normal_classes_one_vs_rest():
    from sklearn.datasets import load_digits
    single = [D.load("digits", normal=c) for c in ("0", "1")]
    both = D.load("digits", normal=["0", "1"])
    assert both.normal == "0,1" and D.load("digits", normal="1,0").normal == "0,1"
    assert len(both.train) == sum(len(d.train) for d in single)
    y = load_digits().target
    n_test_normal = int((both.test.labels == 0).sum())
    assert n_test_normal == sum(int((d.test.labels == 0).sum()) for d in single)
    assert len(both.test) == len(single[0].test) and int((both.test.labels == 1).sum()) < int((y > 1).sum())
    assert (both.test.defect[both.test.labels == 0] == 0).all() and both.defect_types[1] == "2"
    assert "several-vs-rest" in both.meta["protocol"]
    with pytest.raises(D.DatasetError, match="surfaces takes one normal category, got 'metal,wood'"):
        D.load("surfaces", normal=["metal", "wood"])
    with pytest.raises(D.DatasetError, match="name a class twice"):
        D.load("digits", normal="0,0")
    with pytest.raises(D.DatasetError, match="makes every class normal"):
        D.load("digits", normal=[str(i) for i in range(10)])
    with pytest.raises(D.DatasetError, match="unknown normal class '11'"):
        D.load("digits", normal="0,11")


# ---- stage 2: run_method and the CLI --------------------------------------------------------------------------

def test_run_method_trains_on_the_purified_set(monkeypatch):
    import radlib.pipeline as P
    seen = []
    real_train = P.train
    monkeypatch.setattr(P, "train", lambda cfg, data, **kw: seen.append(data.train.images) or real_train(cfg, data, **kw))
    ds = D.load("digits", normal="0", image_size=12, max_train=40, max_test=40, contamination=0.2,
                contamination_of="train")
    run = run_method("csi", ds, "smoke", progress=False, epochs=1, width=4, attacks=[],
                     purify={"method": "pixel_knn", "keep": 0.75})
    info = run.eval.protocol["purification"]
    p = purify(ds, keep=0.75)  # the same seed and settings as run_method's
    assert info["n_kept"] == int(0.75 * len(ds.train)) == len(seen[0])
    assert torch.equal(seen[0], ds.train.images[p.kept])  # trained on exactly the kept images
    assert info["recall"] is not None and info["method"] == "pixel_knn"
    ready = purify(ds, keep=0.75)
    again = run_method("csi", ds, "smoke", progress=False, epochs=1, width=4, attacks=[], purify=ready)
    assert again.eval.protocol["purification"]["n_kept"] == info["n_kept"]


def test_cli_train_purify_then_evaluate(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    out = tmp_path / "run"
    assert main(["train", "--data", "digits", "--category", "0", "--method", "csi", "--profile", "smoke",
                 "--epochs", "1", "--contamination", "0.2", "--purify", "--keep", "0.75", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "purification: pixel_knn" in text and "| injected anomalies |" in text
    record, _ = load_run(out / "last.pt")  # the purification lives in the run record
    kept = record.purification["kept"]
    assert (record.purification["method"], record.purification["keep"]) == ("pixel_knn", 0.75)
    assert record.data["contamination"] == 0.2 and record.data["load"]["contamination_of"] == "train"
    js = tmp_path / "eval.json"
    assert main(["evaluate", "--ckpt", str(out / "last.pt"), "--attack", "none", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["protocol"]["n_train"] == len(kept) == int(0.75 * record.data["n_train"])
    capsys.readouterr()
    assert main(["evaluate", "--ckpt", str(out / "last.pt"), "--attack", "none", "--max-test", "24",
                 "--json", str(js)]) == 0  # a subset of the verified test split: the moved anomalies stay out
    assert json.loads(js.read_text())["protocol"]["test_subset"].startswith("24 of ")
    assert main(["train", "--data", "digits", "--keep", "0", "--purify", "--out", str(tmp_path / "b"),
                 "--profile", "smoke", "--epochs", "1"]) == 2
    assert "keep must be a fraction in (0, 1], got 0.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--keep", "1.5", "--out", "x"])
    assert "must be in [0, 1], got 1.5" in capsys.readouterr().err


def test_purification_is_a_dataclass_with_the_documented_fields():
    p = purify(_separable(), keep=0.9)
    assert isinstance(p, Purification) and p.sub_scores.shape == (3, 50) and p.subset_of.shape == (50,)
    own, unseen = p.own_vs_unseen()
    c = p.contaminated
    # the learning bias on the separable set: anomalies score higher than normals in the sub-models that never
    # saw them
    assert unseen[c].min() > unseen[~c].max()
