"""The checkpoint cache (radlib.cache, run_method(cache=...)): a hit reproduces the trained run exactly, and
anything that decides the weights (config, images, radlib source) leads to another entry."""
import dataclasses

import numpy as np
import pytest
import torch

from radlib import cache as cache_mod
from radlib.cache import cache_dir, default_cache_root, images_digest, is_complete, resolve_cache
from radlib.record import load_run
from radlib.checkpoint import CheckpointError
from radlib.pipeline import load_data, run_method
from radlib.profiles import apply_overrides, get_profile
from radlib.train import TrainConfig

TINY = dict(epochs=2, width=4, attacks=["pgd-1@2/255"], progress=False, device="cpu")


@pytest.fixture(scope="module")
def ds():
    return load_data("digits", "0", 12, get_profile("smoke"), max_train=24, max_test=30)


def _weights(run):
    return torch.cat([v.detach().float().flatten() for v in run.train.model.state_dict().values()])


def test_second_call_is_a_hit_with_the_same_weights_scores_and_time(ds, tmp_path):
    first = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    assert not first.cached
    entries = list(tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].name.startswith("digits-0-csi-smoke-s0-")
    assert {"last.pt", "history.json", "run.json", "evals.pt"} == {p.name for p in entries[0].iterdir()}
    record, _ = load_run(entries[0] / "last.pt")  # the entry is described by its run record alone
    assert record.config.epochs == 2 and record.profile["name"] == "smoke" and record.data["n_train"] == 24
    assert record.trained_sha256 == images_digest(ds.train.images)
    calls = []
    second = run_method("csi", ds, "smoke", cache=tmp_path, on_epoch_end=lambda *a: calls.append(a), **TINY)
    assert second.cached and calls == []  # nothing trained
    assert torch.equal(_weights(first), _weights(second))
    assert np.array_equal(first.eval.attacks[0].scores, second.eval.attacks[0].scores)
    assert second.train.seconds == pytest.approx(first.train.history[-1]["seconds"], abs=0.05)  # not re-timed
    assert second.train.history == first.train.history


def test_config_images_and_source_each_change_the_entry(ds, monkeypatch, tmp_path):
    cfg = TrainConfig(method="csi", dataset="digits", category="0", image_size=12, width=4, epochs=1)
    x = ds.train.images
    base = cache_dir(cfg, x, root=tmp_path, profile="smoke")
    assert base == cache_dir(cfg, x.clone(), root=tmp_path, profile="smoke")
    for field, value in (("epochs", 2), ("eps", 4 / 255), ("seed", 1), ("lr", 5e-4), ("width", 8)):
        assert cache_dir(dataclasses.replace(cfg, **{field: value}), x, root=tmp_path, profile="smoke") != base, field
    changed = x.clone()
    changed[0, 0, 0, 0] ^= 1  # one bit of one pixel
    assert cache_dir(cfg, changed, root=tmp_path, profile="smoke") != base
    assert cache_dir(cfg, x[:-1], root=tmp_path, profile="smoke") != base
    monkeypatch.setattr(cache_mod, "source_digest", lambda: "edited")
    assert cache_dir(cfg, x, root=tmp_path, profile="smoke") != base


def test_a_changed_recipe_retrains(ds, tmp_path):
    run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    other = run_method("csi", ds, "smoke", cache=tmp_path, **{**TINY, "epochs": 3})
    assert not other.cached and len(other.train.history) == 3
    assert len(list(tmp_path.iterdir())) == 2


def test_an_interrupted_entry_resumes_and_a_damaged_one_is_refused(ds, tmp_path):
    def stop_after_epoch_1(epoch, *_):
        if epoch == 1:
            raise KeyboardInterrupt  # a Colab disconnect after the first checkpoint
    with pytest.raises(KeyboardInterrupt):
        run_method("csi", ds, "smoke", cache=tmp_path, on_epoch_end=stop_after_epoch_1, **TINY)
    (entry,) = tmp_path.iterdir()
    record, _ = load_run(entry / "last.pt")
    assert record.epoch == 1 and not is_complete(entry, record.config)
    run = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    assert not run.cached and len(run.train.history) == 2 and is_complete(entry, run.train.config)
    (entry / "last.pt").write_bytes(b"not a checkpoint")  # a damaged entry
    assert not is_complete(entry, run.train.config)
    with pytest.raises(CheckpointError, match=r"^the cache entry .* cannot be used \(.* is damaged or not a torch "
                                              r"checkpoint .*delete that folder and it is retrained$"):
        run_method("csi", ds, "smoke", cache=tmp_path, **TINY)


def test_the_images_digest_is_of_the_bytes():
    a = torch.arange(12, dtype=torch.uint8).reshape(1, 3, 2, 2)
    assert images_digest(a) == images_digest(a.clone()) != images_digest(a.float())
    assert images_digest(a) != images_digest(a.reshape(3, 1, 2, 2))


def test_out_and_cache_are_exclusive(ds, tmp_path):
    with pytest.raises(ValueError, match=r"^give either out= \(a run folder\) or cache= \(the checkpoint cache\), not both$"):
        run_method("csi", ds, "smoke", cache=tmp_path, out=tmp_path / "run", **TINY)


def test_where_the_cache_lives(monkeypatch, tmp_path):
    monkeypatch.delenv("RADLIB_CACHE", raising=False)
    project = tmp_path / "proj"
    (project / "radlib").mkdir(parents=True)
    (project / "radlib" / "__init__.py").write_text("")
    (project / "pyproject.toml").write_text("")
    (project / "notebooks").mkdir()
    monkeypatch.chdir(project / "notebooks")
    assert default_cache_root() == project.resolve() / "runs" / "cache"
    assert resolve_cache(True) == project.resolve() / "runs" / "cache"
    assert resolve_cache(False) is None and resolve_cache(None) is None
    assert resolve_cache(str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.chdir(tmp_path)
    assert default_cache_root() == tmp_path.resolve() / "runs" / "cache"
    monkeypatch.setenv("RADLIB_CACHE", str(tmp_path / "elsewhere"))
    assert resolve_cache(True) == tmp_path / "elsewhere"
    monkeypatch.setenv("RADLIB_CACHE", "off")
    assert resolve_cache(True) is None
    assert resolve_cache(tmp_path / "explicit") == tmp_path / "explicit"  # an explicit folder still counts


def test_source_digest_changes_with_any_module_byte_or_name(monkeypatch, tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "a.py").write_text("x = 1\n")
    (pkg / "sub" / "b.py").write_text("y = 2\n")
    (pkg / "notes.txt").write_text("not source")
    monkeypatch.setattr(cache_mod, "_PACKAGE", pkg)

    def digest():
        cache_mod.source_digest.cache_clear()
        return cache_mod.source_digest()

    base = digest()
    (pkg / "notes.txt").write_text("still not source")
    assert digest() == base  # only .py files count
    (pkg / "sub" / "b.py").write_text("y = 3\n")  # one byte of a nested module
    edited = digest()
    assert edited != base
    (pkg / "sub" / "b.py").rename(pkg / "sub" / "c.py")  # same bytes, another name
    assert digest() != edited
    cache_mod.source_digest.cache_clear()


def test_claims_are_asserted_in_real_profiles_only():
    assert get_profile("cpu").asserts_claims and get_profile("lab").asserts_claims
    assert get_profile("paper").asserts_claims and not get_profile("smoke").asserts_claims
    tiny = apply_overrides(get_profile("lab"), "epochs=1,n_train=32")
    assert tiny.overridden == ("epochs", "n_train") and not tiny.asserts_claims
    assert apply_overrides(tiny, "width=4").overridden == ("epochs", "n_train", "width")
    with pytest.raises(ValueError, match="expected FIELD=VALUE"):
        apply_overrides(get_profile("lab"), "overridden=x")


def test_snapshot_epochs_spread_like_linspace_and_refuse_bad_input():
    from radlib.pipeline import snapshot_epochs
    for epochs in range(1, 60):  # the reference: rounded np.linspace(1, epochs, min(epochs, 6)), deduplicated
        ref = sorted({int(round(e)) for e in np.linspace(1, epochs, min(epochs, 6))})
        assert snapshot_epochs(epochs) == ref, epochs
    assert snapshot_epochs(10, n=1) == [10] and snapshot_epochs(4, n=9) == [1, 2, 3, 4]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="epochs must be a positive int"):
            snapshot_epochs(bad)
    with pytest.raises(ValueError, match="n must be a positive int"):
        snapshot_epochs(5, n=0)


def test_snapshots_are_the_weights_of_those_epochs_and_a_cache_entry_serves_them(ds, tmp_path):
    seen = {}

    def hook(epoch, means, model):  # the reference: what the trainer's own callback sees after each epoch
        seen[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    kw = dict(TINY, epochs=3)
    plain = run_method("csi", ds, "smoke", cache=tmp_path, **kw)  # an entry written without snapshots
    (entry,) = tmp_path.iterdir()
    assert plain.snapshots == {} and not (entry / "snapshots.pt").exists()
    taken = run_method("csi", ds, "smoke", cache=tmp_path, snapshots=[1, 3], on_epoch_end=hook, **kw)
    assert not taken.cached and sorted(seen) == [1, 2, 3]  # trained again from the first epoch to take them
    assert sorted(taken.snapshots) == [1, 3] and (entry / "snapshots.pt").exists()
    for epoch in (1, 3):
        for k, v in seen[epoch].items():
            assert torch.equal(taken.snapshots[epoch][k], v), (epoch, k)
    assert torch.equal(_weights(taken), _weights(plain))  # seeded: the same weights as the first training
    seen.clear()
    served = run_method("csi", ds, "smoke", cache=tmp_path, snapshots=[1], on_epoch_end=hook, **kw)
    assert served.cached and seen == {} and sorted(served.snapshots) == [1]  # from the file, nothing trained
    assert all(torch.equal(served.snapshots[1][k], v) for k, v in taken.snapshots[1].items())
    again = run_method("csi", ds, "smoke", cache=tmp_path, snapshots=True, on_epoch_end=hook, **kw)
    assert not again.cached and sorted(again.snapshots) == [1, 2, 3]  # epoch 2 was not kept: trained again
    for bad, msg in (([0], r"snapshot epochs must lie in 1\.\.3 \(the run's epochs\), got \[0\]"),
                     ([4], r"snapshot epochs must lie in 1\.\.3 \(the run's epochs\), got \[4\]"),
                     ("1", "snapshots must be True, False or a list of epochs"),
                     ([1.0], "snapshots must be True, False or a list of epochs")):
        with pytest.raises(ValueError, match=msg):
            run_method("csi", ds, "smoke", cache=tmp_path, snapshots=bad, **kw)


def test_teaching_model_loads_what_run_method_trained(ds, tmp_path):
    from radlib.pipeline import teaching_model
    tiny = get_profile("smoke").replace(name="tiny", epochs=2, width=4)  # a trained teaching model (not smoke)
    run = run_method("csi", ds, tiny, cache=tmp_path, attacks=[], progress=False, device="cpu")
    model, desc = teaching_model(ds, tiny, device="cpu", cache=tmp_path)
    assert desc == "CSI trained 2 epochs" and len(list(tmp_path.iterdir())) == 1  # the same entry, no new one
    got = torch.cat([v.detach().float().flatten() for v in model.state_dict().values()])
    assert torch.equal(got, _weights(run)) and not model.training
    capped, desc = teaching_model(ds, tiny, device="cpu", cache=tmp_path, max_epochs=1)
    assert desc == "CSI trained 1 epoch" and len(list(tmp_path.iterdir())) == 2  # another config, its own entry


def _same_eval(a, b):
    assert a.score_name == b.score_name and a.clean_auroc == b.clean_auroc
    assert np.array_equal(a.labels, b.labels) and a.labels.dtype == b.labels.dtype == np.int64
    assert np.array_equal(a.clean_scores, b.clean_scores) and b.clean_scores.dtype == np.float64
    assert [x.spec for x in a.attacks] == [x.spec for x in b.attacks]
    for x, y in zip(a.attacks, b.attacks):
        assert x.auroc == y.auroc and np.array_equal(x.scores, y.scores)


def test_a_cached_run_keeps_its_evaluations_and_serves_the_same_one(ds, tmp_path, monkeypatch):
    import radlib.pipeline as pipeline
    from radlib.cache import EVALS_FILE
    first = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    assert not first.eval_cached
    (entry,) = tmp_path.iterdir()
    real_evaluate = pipeline.evaluate

    def no_attack(*a, **k):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(pipeline, "evaluate", no_attack)
    second = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    assert second.cached and second.eval_cached
    _same_eval(first.eval, second.eval)
    assert second.eval.protocol["method"] == "csi" and second.eval.protocol["profile"] == "smoke"
    # anything else that decides the numbers is another evaluation: the attack, the test images, the seed of it
    with pytest.raises(AssertionError, match="evaluated again"):
        run_method("csi", ds, "smoke", cache=tmp_path, **dict(TINY, attacks=["pgd-2@2/255"]))
    with pytest.raises(AssertionError, match="evaluated again"):
        run_method("csi", dataclasses.replace(ds, test=ds.test.subset(torch.arange(20))), "smoke", cache=tmp_path,
                   **TINY)
    with pytest.raises(AssertionError, match="evaluated again"):
        run_method("csi", ds, "smoke", cache=tmp_path, eval_batch_size=7, **TINY)
    monkeypatch.setattr(pipeline, "evaluate", real_evaluate)
    other = run_method("csi", ds, "smoke", cache=tmp_path, **dict(TINY, attacks=["pgd-2@2/255"]))
    assert other.cached and not other.eval_cached
    again = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)  # both evaluations are kept side by side
    assert again.eval_cached
    _same_eval(first.eval, again.eval)
    (entry / EVALS_FILE).write_bytes(b"not a torch file")  # a damaged file: evaluated again, and rewritten
    fresh = run_method("csi", ds, "smoke", cache=tmp_path, **TINY)
    assert not fresh.eval_cached
    _same_eval(first.eval, fresh.eval)
    assert run_method("csi", ds, "smoke", cache=tmp_path, **TINY).eval_cached


def test_without_a_cache_nothing_is_kept(ds, tmp_path):
    out = tmp_path / "run"
    run = run_method("csi", ds, "smoke", out=out, **TINY)
    assert not run.eval_cached and not (out / "evals.pt").exists()
    assert not run_method("csi", ds, "smoke", out=out, **TINY).eval_cached


def test_an_eval_result_survives_its_dict_and_a_dict_without_scores_is_refused(ds):
    from radlib.checks import masking_checks
    from radlib.results import EvalResult
    run = run_method("csi", ds, "smoke", **TINY)
    masking_checks(run.score, ds.test, eps=2 / 255, steps=2, restarts=2, eps_list=(1 / 255, 2 / 255),
                   steps_list=(1, 2), seed=0, result=run.eval)
    back = EvalResult.from_dict(run.eval.to_dict())
    _same_eval(run.eval, back)
    assert [(c.name, c.passed, c.detail) for c in back.checks] == [(c.name, c.passed, c.detail)
                                                                   for c in run.eval.checks]
    assert back.table() == run.eval.table()
    assert isinstance(back.to_dict()["protocol"]["torch"], str) and type(back.to_dict()["protocol"]["torch"]) is str
    with pytest.raises(ValueError, match=r"not a full EvalResult.to_dict\(\) \(include_scores=True\): missing "
                                         r"labels, clean_scores, attacks\[0\].scores"):
        EvalResult.from_dict(run.eval.to_dict(include_scores=False))


def test_an_entry_keeps_the_newest_evaluations(ds, tmp_path, monkeypatch):
    from radlib.cache import EVALS_FILE, eval_key, load_eval, store_eval
    from radlib.checkpoint import load_checkpoint
    run = run_method("csi", ds, "smoke", **TINY)
    monkeypatch.setattr(cache_mod, "MAX_EVALS", 3)
    keys = [eval_key(n=i) for i in range(5)]
    for key in keys:
        store_eval(tmp_path, key, run.eval)
    assert list(load_checkpoint(tmp_path / EVALS_FILE)["evals"]) == keys[2:]
    store_eval(tmp_path, keys[2], run.eval)  # stored again: now the newest
    assert list(load_checkpoint(tmp_path / EVALS_FILE)["evals"]) == [keys[3], keys[4], keys[2]]
    assert load_eval(tmp_path, keys[0]) is None and load_eval(tmp_path, keys[4]).clean_auroc == run.eval.clean_auroc
    assert eval_key(a=1, b=torch.zeros(2)) == eval_key(b=torch.zeros(2), a=1) != eval_key(a=1, b=torch.ones(2))
