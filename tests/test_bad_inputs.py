"""Hostile and careless input: each case ends in a clear error (class, message, exit code 2 and one line on
the CLI) or a correct result. Fixtures are tiny and generated here."""
import io
import json
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from radlib.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from radlib.data import DatasetError, load
from radlib.data.download import extract_archive
from radlib.data.folder import read_image
from radlib.evaluate import AttackSpec
from radlib.pipeline import run_method
from radlib.profiles import PROFILES, apply_overrides
from radlib.record import load_run
from radlib.train import TrainConfig, TrainingDiverged, load_trained, train

ENV = {**os.environ, "RADLIB_DEVICE": "cpu", "RADLIB_PROFILE": "smoke"}
ENV.pop("RADLIB_DEBUG", None)


def cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "radlib", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or ENV, timeout=600)


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, (n, err)
    return err


def _train_surfaces(out, category="metal", *extra):
    return cli("train", "--data", "surfaces", "--category", category, "--method", "csi", "--profile", "smoke",
               "--epochs", "1", "--out", out, *extra)


# 1, 2, 8 -------------------------------------------------------------------- the data a checkpoint belongs to
@pytest.fixture(scope="module")
def metal_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "metal"
    proc = _train_surfaces(out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_evaluate_uses_the_trained_category_and_names_its_data(metal_run, tmp_path):
    js = tmp_path / "e.json"
    proc = cli("evaluate", "--ckpt", metal_run / "last.pt", "--steps", "1", "--max-test", "24", "--json", js)
    assert proc.returncode == 0, proc.stderr
    p = json.loads(js.read_text())["protocol"]
    assert (p["dataset"], p["category"], p["image_size"]) == ("surfaces", "metal", 32)
    assert p["n_test"] == 24 and "root" in p and p["n_train"] > 0
    assert "category metal" in proc.stdout


def test_resume_refuses_other_data(metal_run):
    err = one_line_error(_train_surfaces(metal_run, "wood"), "holds a run on other data", "'metal' -> 'wood'")
    assert "use another --out" in err


def test_train_stores_an_absolute_root_and_evaluate_takes_root(tmp_path):
    data = tmp_path / "mine"
    _folder_dataset(data)
    proc = cli("train", "--data", "folder", "--root", "mine", "--method", "csi", "--profile", "smoke", "--epochs",
               "1", "--image-size", "16", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert load_run(tmp_path / "run" / "last.pt")[0].data["root"] == str(data.resolve())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = cli("evaluate", "--ckpt", tmp_path / "run" / "last.pt", "--steps", "1", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr
    moved = tmp_path / "moved"
    data.rename(moved)
    one_line_error(cli("evaluate", "--ckpt", tmp_path / "run" / "last.pt", "--steps", "1", cwd=elsewhere))
    proc = cli("evaluate", "--ckpt", tmp_path / "run" / "last.pt", "--steps", "1", "--root", moved, cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr


def _folder_dataset(root, size=12, n=6, empty_defect=False):
    rng = np.random.default_rng(0)
    for sub, count in (("train/good", n), ("test/good", 3), ("test/crack", 3)):
        d = root / sub
        d.mkdir(parents=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(d / f"{i}.png")
    if empty_defect:
        (root / "test" / "hole").mkdir()


# 3 --------------------------------------------------------------------------------------------- zero
@pytest.mark.parametrize("flag", ["--epochs", "--image-size"])
def test_zero_is_rejected_not_ignored(flag, tmp_path):
    proc = cli("train", "--data", "surfaces", flag, "0", "--out", tmp_path / "x")
    assert proc.returncode == 2 and "must be >= 1, got 0" in proc.stderr
    assert not (tmp_path / "x").exists()


# 4 ------------------------------------------------------------------------------------ damaged checkpoints
class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("kind", ["empty", "garbage", "truncated", "pickle", "list", "no-config"])
def test_damaged_checkpoints_raise_one_clear_error(kind, tmp_path, metal_run):
    path = tmp_path / f"{kind}.pt"
    good = (metal_run / "last.pt").read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 10)
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "pickle":
        buf = io.BytesIO()
        torch.save({"config": _Evil()}, buf)
        path.write_bytes(buf.getvalue())
    elif kind == "list":
        torch.save([1, 2, 3], path)
    else:
        save_checkpoint({"model": {}}, path)
    with pytest.raises(CheckpointError) as info:
        load_trained(path, device="cpu")
    msg = str(info.value)
    assert str(path) in msg and len(msg.splitlines()) == 1
    for advice in ("weights_only=False", "set to `False`", "Re-running", "arbitrary code", "file an issue"):
        assert advice not in msg, msg  # torch's text advises loading unsafely: never pass it on
    if kind == "pickle":
        assert "safe loading refuses (" in msg and "posix.system" in msg, msg
    elif kind in ("empty", "garbage", "truncated"):
        assert "is damaged or not a torch checkpoint" in msg, msg
    err = one_line_error(cli("evaluate", "--ckpt", path, "--steps", "1"), str(path))
    assert "weights_only=False" not in err and "pwned" not in err


def test_missing_checkpoint_names_the_path(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*nothing.pt"):
        load_checkpoint(tmp_path / "nothing.pt")


# 5 ------------------------------------------------------------------------------ divergence on the last step
def test_a_blow_up_on_the_last_step_is_not_saved(tmp_path, monkeypatch):
    """The losses of the last step are finite (computed before the update); the update itself leaves NaN
    weights. The loss check cannot see it: the parameter check must refuse to save and return them."""
    import radlib.train as T
    real = T.build_optimizer
    steps = {"done": 0, "total": 4}  # 2 epochs x 2 steps

    def poisoned(model, *a, **kw):
        opt = real(model, *a, **kw)

        def nan_after_the_last(optimizer, args, kwargs):
            steps["done"] += 1
            if steps["done"] == steps["total"]:
                with torch.no_grad():
                    next(model.parameters()).fill_(float("nan"))

        opt.register_step_post_hook(nan_after_the_last)
        return opt

    images = (torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, batch_size=4, epochs=2,
                      optimizer="adam", lr=1e-3, warmup_epochs=0, log_every=1)
    monkeypatch.setattr(T, "build_optimizer", poisoned)
    with pytest.raises(TrainingDiverged, match="parameters .* became NaN/inf by epoch 2"):
        train(cfg, images, out=tmp_path / "run", progress=False, device="cpu")
    saved = load_checkpoint(tmp_path / "run" / "last.pt")  # epoch 1's checkpoint stays; epoch 2 is refused
    assert saved["epoch"] == 1 and steps["done"] == 4


# 6 --------------------------------------------------------------------------------- impossible attacks
@pytest.mark.parametrize("eps", [2, "300/255", 1.5])
def test_linf_eps_beyond_the_pixel_range_is_rejected(eps):
    with pytest.raises(ValueError, match="larger than the whole"):
        AttackSpec(eps=eps)


def test_zero_attack_steps_and_bad_training_eps_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="steps must be an int >= 1"):
        AttackSpec(eps=8 / 255, steps=0)
    with pytest.raises(ValueError, match=r"eps must be in \[0, 1\]"):
        TrainConfig(eps=5)
    with pytest.raises(ValueError, match=r"eval_eps must be in \[0, 1\]"):
        apply_overrides(PROFILES["smoke"], "eval_eps=-1")
    with pytest.raises(ValueError, match=r"train_eps must be in \[0, 1\]"):
        apply_overrides(PROFILES["smoke"], "train_eps=5")
    proc = cli("evaluate", "--ckpt", tmp_path / "x.pt", "--steps", "0")
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr
    one_line_error(cli("evaluate", "--ckpt", tmp_path / "x.pt", "--eps", "300/255"), "larger than the whole")


# 7 ---------------------------------------------------------------------------------- fail before the work
def test_a_test_split_without_both_classes_fails_before_training(monkeypatch):
    ds = load("digits", normal="0", image_size=12, max_train=16, max_test=1, seed=0)
    monkeypatch.setattr("radlib.pipeline.train", lambda *a, **k: pytest.fail("trained before validating"))
    with pytest.raises(ValueError, match="an AUROC needs both"):
        run_method("csi", ds, "smoke", device="cpu", progress=False)


def test_out_that_is_a_file_and_json_in_a_missing_folder_fail_first(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    one_line_error(_train_surfaces(f), "is a file")
    images = (torch.rand(4, 3, 12, 12) * 255).to(torch.uint8)
    with pytest.raises(ValueError, match="is a file"):
        train(TrainConfig(method="csi", dataset="digits", image_size=12, width=4), images, out=f, progress=False)
    one_line_error(cli("evaluate", "--ckpt", tmp_path / "missing.pt", "--json", tmp_path / "no" / "e.json"),
                   "does not exist")


# 9 ------------------------------------------------------------------------------------- silent oddities
def test_tiny_images_warn(tmp_path):
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(tmp_path / "dot.png")
    with pytest.warns(RuntimeWarning, match="upsampled more than 8x"):
        read_image(tmp_path / "dot.png", 32, 3)


def test_empty_defect_folder_is_skipped_with_a_warning(tmp_path):
    _folder_dataset(tmp_path / "d", empty_defect=True)
    with pytest.warns(RuntimeWarning, match="hole .* hold no images"):
        ds = load("folder", root=str(tmp_path / "d"), image_size=12)
    assert ds.defect_types == ("good", "crack")


def test_duplicate_override_key_is_rejected():
    with pytest.raises(ValueError, match="'epochs' is given twice"):
        apply_overrides(PROFILES["smoke"], "epochs=1,epochs=2")


def test_extraction_does_not_follow_an_existing_symlink_outside(tmp_path):
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "evil").symlink_to(outside, target_is_directory=True)
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tf:
        data = b"payload"
        info = tarfile.TarInfo("evil/planted.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(DatasetError, match="symlink there points outside"):
        extract_archive(archive, dest)
    assert not (outside / "planted.txt").exists()


# 10 ---------------------------------------------------------------------------------- one-line CLI errors
def test_expected_errors_are_one_line_and_debug_shows_the_traceback(tmp_path):
    one_line_error(cli("train", "--data", "nonexistent", "--out", tmp_path / "x"), "radlib train: error:")
    env = {**ENV, "RADLIB_DEBUG": "1"}
    proc = cli("train", "--data", "nonexistent", "--out", tmp_path / "x", env=env)
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = cli("--debug", "evaluate", "--ckpt", tmp_path / "none.pt")
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "CheckpointError" in proc.stderr


# 11 ------------------------------------------------------------------------------------------------ reprs
def test_dataset_reprs_are_one_line_summaries():
    ds = load("digits", normal="3", image_size=12, seed=0)
    for obj in (ds, ds.train, ds.test):
        text = repr(obj)
        assert "\n" not in text and len(text) < 200 and "tensor(" not in text, text
    assert "digits/3" in repr(ds) and "anomalous" in repr(ds.test)
