"""The run record (radlib.record): one writer, one reader; evaluate, resume and the cache read nothing else.

Round trip, tampering (weights, config, epoch, centre, model config), data identity (overrides, a grown folder, a
symlinked checkpoint, replaced images on resume), the cache's digest check, and the CLI cases of the hostile-input
report of 2026-12-04 (ids in brackets: ../shared/reports/hostile-input-2026-12-04.md) that concern runs and their
outputs. Every test here fails on 2b9a6e4 (the commit the report probed)."""
import json
import os
import shutil
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

import radlib.__main__ as cli_mod
import radlib.train as train_mod
from radlib.__main__ import main
from radlib.checkpoint import CheckpointError, save_checkpoint
from radlib.data import load
from radlib.pipeline import evaluate_checkpoint, load_data, run_method
from radlib.profiles import get_profile
from radlib.record import FORMAT, data_identity, load_run, tensor_digest
from radlib.train import TrainConfig, load_trained, train

OVERRIDES = "max_train=24,max_test=30,width=8,low_res_size=16,eval_steps=1"
TRAIN = ["train", "--data", "digits", "--category", "0", "--method", "csi", "--profile", "smoke", "--epochs", "1"]


@pytest.fixture(autouse=True)
def _cpu(monkeypatch):
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    monkeypatch.delenv("RADLIB_DEBUG", raising=False)
    monkeypatch.delenv("RADLIB_PROFILE_OVERRIDES", raising=False)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run trained with profile overrides (24 training images, 30 test images at 16 px)."""
    out = tmp_path_factory.mktemp("rec") / "run"
    old = os.environ.get("RADLIB_PROFILE_OVERRIDES")
    os.environ["RADLIB_PROFILE_OVERRIDES"] = OVERRIDES
    os.environ["RADLIB_DEVICE"] = "cpu"
    try:
        assert main([*TRAIN, "--out", str(out)]) == 0
    finally:
        os.environ.pop("RADLIB_PROFILE_OVERRIDES") if old is None else os.environ.__setitem__(
            "RADLIB_PROFILE_OVERRIDES", old)
    return out


@pytest.fixture
def run_copy(run_dir, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run_dir, dst)
    return dst


def _error(capsys, *needles):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


# ------------------------------------------------------------------------------------------------ round trip
def test_the_record_holds_config_profile_overrides_data_and_digests(run_dir):
    record, state = load_run(run_dir / "last.pt")
    assert state["format"] == FORMAT and record.config.method == "csi" and record.epoch == 1
    assert record.profile["name"] == "smoke" and record.profile["max_train"] == 24 and record.profile["width"] == 8
    ds = load("digits", "0", image_size=16, max_train=24, max_test=30)
    assert record.data["n_train"] == 24 and record.data["n_test"] == 30 and record.data["image_size"] == 16
    assert record.data["train_sha256"] == data_identity(ds)["train_sha256"] == tensor_digest(ds.train.images,
                                                                                          ds.train.labels)
    assert record.trained_sha256 == tensor_digest(ds.train.images)
    view = json.loads((run_dir / "run.json").read_text())  # the human view says the same
    assert view["profile"]["max_train"] == 24 and view["data"]["train_sha256"] == record.data["train_sha256"]


def test_evaluate_reads_the_record_alone(run_copy):
    """[C2a, P9, P11, P12] Without the overrides in the environment, with the side files deleted or damaged, and
    through a symlink from another folder, evaluate uses the recorded profile and data."""
    (run_copy / "run.json").write_text("[1, 2]")  # a damaged view is never read
    (run_copy / "history.json").unlink()
    (run_copy / "data.json").write_text("[]")  # a stray file of older radlib is never read either
    link_dir = run_copy.parent / "elsewhere"
    link_dir.mkdir()
    (link_dir / "link.pt").symlink_to(run_copy / "last.pt")
    r = evaluate_checkpoint(link_dir / "link.pt", attack="none")
    p = r.protocol
    assert (p["n_train"], p["n_test"], p["image_size"], p["trained_profile"]) == (24, 30, 16, "smoke")
    assert p["data_matches_training"] and p["data_differs"] == []


# -------------------------------------------------------------------------------------------------- tamper
def _tamper(path, **changes):
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if key == "config":
            state["config"] = {**state["config"], **value}
        elif callable(value):
            value(state)
        else:
            state[key] = value
    torch.save(state, path)


def _nan_weight(state):
    k = next(k for k, v in state["model"].items() if v.is_floating_point())
    state["model"][k] = state["model"][k].clone().fill_(float("nan"))


def _wrong_shape(state):
    k = next(k for k, v in state["model"].items() if v.ndim == 4)
    state["model"][k] = state["model"][k][:, :1].clone()


@pytest.mark.parametrize("changes, field", [
    ({"config": {"method": "cobra"}}, "config"),            # [K1]
    ({"config": {"image_size": 32}}, "config"),             # [K6]
    ({"config": {"channels": 1}}, "config"),                # [K9]
    ({"config": {"dataset": "cifar10"}}, "config"),         # [K10]
    ({"epoch": -5}, "epoch"),                               # [K12]
    ({"model_config": "resnet"}, "model_config"),           # [K14]
    ({"center": "abc"}, "center"),                          # [K13]
    ({"x": _nan_weight}, "weights"),                        # [K8]
    ({"x": _wrong_shape}, "weights"),                       # [K4]
    ({"x": lambda s: s["model"].__setitem__("extra.weight", torch.zeros(1))}, "weights"),  # [K17]
    ({"data": None}, "data"),
    ({"purification": {"kept": [0], "method": "pixel_knn", "keep": 0.1}}, "purification"),
    ({"distributed": {"world_size": 2, "backend": "gloo", "sync_batchnorm": True}}, "distributed"),
])
def test_a_changed_field_or_weight_is_refused_naming_it(run_copy, changes, field, capsys):
    path = run_copy / "last.pt"
    _tamper(path, **changes)
    with pytest.raises(CheckpointError, match=rf"last\.pt: {field} changed after radlib wrote it"):
        load_trained(path)
    assert main(["evaluate", "--ckpt", str(path), "--attack", "none"]) == 2
    _error(capsys, f"{field} changed after radlib wrote it")


def test_a_record_written_before_the_distributed_field_reads_as_one_process(run_copy):
    """Records written before ``distributed`` existed (no field, no digest: the notebooks' caches) stay valid; a
    field without its digest does not."""
    path = run_copy / "last.pt"
    state = torch.load(path, weights_only=True)
    assert state["distributed"] is None and "distributed" in state["digests"]
    del state["distributed"], state["digests"]["distributed"]
    torch.save(state, path)
    record, _ = load_run(path)
    assert record.distributed is None and record.epoch == 1
    state["distributed"] = {"world_size": 2, "backend": "gloo", "sync_batchnorm": True}  # added by hand
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="distributed changed after radlib wrote it"):
        load_run(path)


def _flip_bytes_inside_a_weight(path, n=64):
    """Flip ``n`` bytes in the middle of the largest tensor stored in the checkpoint's zip (torch stores tensors
    uncompressed, and does not check the zip CRC on load)."""
    with zipfile.ZipFile(path) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    for i in range(start, start + n):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_flipped_bytes_in_a_cache_entry_are_refused_not_used(tmp_path):
    """[Q1] 64 flipped bytes inside a weight tensor of a cache entry: the entry is refused, never scored."""
    ds = load_data("digits", "0", 12, get_profile("smoke"), max_train=24, max_test=30)
    tiny = dict(epochs=1, width=4, attacks=[], progress=False)
    run_method("csi", ds, "smoke", cache=tmp_path, **tiny)
    (entry,) = tmp_path.iterdir()
    _flip_bytes_inside_a_weight(entry / "last.pt")
    with pytest.raises(CheckpointError, match=r"^the cache entry .* cannot be used \(.*last\.pt: weights changed "
                                              r"after radlib wrote it"):
        run_method("csi", ds, "smoke", cache=tmp_path, **tiny)


def test_a_cache_entry_holding_another_config_says_to_delete_it(tmp_path):
    """[Q3] the message speaks of the cache entry, not of --out or resume=False."""
    ds = load_data("digits", "0", 12, get_profile("smoke"), max_train=24, max_test=30)
    tiny = dict(width=4, attacks=[], progress=False)
    run_method("csi", ds, "smoke", cache=tmp_path / "a", epochs=1, **tiny)
    run_method("csi", ds, "smoke", cache=tmp_path / "b", epochs=2, **tiny)
    (a,), (b,) = (tmp_path / "a").iterdir(), (tmp_path / "b").iterdir()
    shutil.copy(b / "last.pt", a / "last.pt")
    with pytest.raises(CheckpointError, match=r"^the cache entry .* cannot be used \(.*another config \(epochs 2 -> "
                                              r"1\).*delete that folder and it is retrained$") as e:
        run_method("csi", ds, "smoke", cache=tmp_path / "a", epochs=1, **tiny)
    assert "resume=False" not in str(e.value) and "--out" not in str(e.value)


def test_an_old_checkpoint_gets_one_clear_line(tmp_path):
    save_checkpoint({"config": {}, "model": {}, "epoch": 1}, tmp_path / "last.pt")
    with pytest.raises(CheckpointError, match=r"written by an older radlib, without a run record .*retrain it"):
        load_trained(tmp_path / "last.pt")


# ------------------------------------------------------------------------------------------- data identity
def _folder(root, n_train=6, defects=("crack",), seed=0):
    rng = np.random.default_rng(seed)
    for sub, count in (("train/good", n_train), ("test/good", 3), *((f"test/{d}", 3) for d in defects)):
        d = root / sub
        d.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(d / f"{i}.png")


def test_a_grown_folder_is_refused_and_other_data_is_said(tmp_path, capsys):
    """[C2b] the folder grew after training (6 -> 12 training images, a new defect type)."""
    _folder(tmp_path / "data")
    assert main(["train", "--data", "folder", "--root", str(tmp_path / "data"), "--method", "csi", "--profile",
                 "smoke", "--epochs", "1", "--image-size", "16", "--out", str(tmp_path / "run")]) == 0
    _folder(tmp_path / "data", n_train=12, defects=("crack", "hole"), seed=1)
    capsys.readouterr()
    ckpt = str(tmp_path / "run" / "last.pt")
    assert main(["evaluate", "--ckpt", ckpt, "--attack", "none"]) == 2
    _error(capsys, "was trained on other data", "n_train 6 -> 12", "n_test 6 -> 9", "--other-data")
    js = tmp_path / "e.json"
    assert main(["evaluate", "--ckpt", ckpt, "--attack", "none", "--other-data", "--json", str(js)]) == 0
    assert "NOT the training data" in capsys.readouterr().out
    p = json.loads(js.read_text())["protocol"]
    assert p["data_matches_training"] is False and any(d.startswith("n_train 6 -> 12") for d in p["data_differs"])


def test_resume_refuses_replaced_images_of_the_same_count(tmp_path):
    """[I4] killed after epoch 1; the training images are replaced (same count); the rerun refuses to continue."""
    cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, epochs=2, batch_size=8)
    a = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)

    def killed(epoch, *_):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(cfg, a, out=tmp_path, progress=False, on_epoch_end=killed)
    with pytest.raises(ValueError, match=r"last\.pt was trained on other images \(SHA-256 [0-9a-f]{12} -> "
                                         r"[0-9a-f]{12}\)"):
        train(cfg, torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8), out=tmp_path, progress=False)
    assert len(train(cfg, a, out=tmp_path, progress=False).history) == 2  # the same images resume


def test_resume_with_another_config_names_the_fields(run_copy, capsys, monkeypatch):
    """[C3] --epochs 2 and --method cobra on a finished csi run: the fields are named, no library-only advice."""
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", OVERRIDES)
    assert main([*TRAIN[:-1], "2", "--out", str(run_copy)]) == 2
    err = _error(capsys, "holds a run with another config (epochs 1 -> 2)", "train into another folder")
    assert "resume=False" not in err
    args = [a if a != "csi" else "cobra" for a in TRAIN]
    assert main([*args, "--out", str(run_copy)]) == 2
    _error(capsys, "method 'csi' -> 'cobra'")


def test_resume_with_other_overrides_names_the_profile_field(run_copy, capsys, monkeypatch):
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", OVERRIDES.replace("width=8", "width=4"))
    assert main([*TRAIN, "--out", str(run_copy)]) == 2
    _error(capsys, "holds a run on other data or another profile", "profile width 8 -> 4")


# ------------------------------------------------------------------------------------------ output paths
def test_json_onto_the_checkpoint_is_refused_before_the_work(run_copy, capsys):
    """[P14] the trained checkpoint stays byte for byte."""
    before = (run_copy / "last.pt").read_bytes()
    assert main(["evaluate", "--ckpt", str(run_copy / "last.pt"), "--json", str(run_copy / "last.pt")]) == 2
    _error(capsys, "is the checkpoint itself")
    assert (run_copy / "last.pt").read_bytes() == before


def test_json_onto_a_folder_or_a_non_json_file_is_refused_before_the_work(run_copy, tmp_path, capsys, monkeypatch):
    """[P3] and a file that is not JSON; nothing is evaluated (the evaluation is never reached)."""
    monkeypatch.setattr("radlib.pipeline.evaluate_checkpoint", lambda *a, **k: pytest.fail("evaluated"))
    assert main(["evaluate", "--ckpt", str(run_copy / "last.pt"), "--json", str(tmp_path)]) == 2
    _error(capsys, "is a folder; give a file name")
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["evaluate", "--ckpt", str(run_copy / "last.pt"), "--json", str(notes)]) == 2
    _error(capsys, "exists and is not a JSON file")
    assert notes.read_text() == "my notes"


def test_read_only_outputs_are_refused_before_the_work(tmp_path, capsys, monkeypatch):
    """[P1, P2] a read-only --out or --json folder: one line, before any data is loaded."""
    monkeypatch.setattr(cli_mod.os, "access", lambda *a, **k: False)
    monkeypatch.setattr("radlib.pipeline.load_data", lambda *a, **k: pytest.fail("data loaded"))
    assert main([*TRAIN, "--out", str(tmp_path / "ro")]) == 2
    _error(capsys, f"--out {tmp_path / 'ro'} cannot be written")
    assert main(["evaluate", "--ckpt", str(tmp_path / "x.pt"), "--json", str(tmp_path / "e.json")]) == 2
    _error(capsys, "cannot be written")


def test_train_into_a_folder_that_is_not_a_run_is_refused_and_left_alone(tmp_path, capsys):
    """[P6] a folder holding data.json, history.json and purify.json but no last.pt."""
    folder = tmp_path / "mine"
    folder.mkdir()
    files = {"data.json": '{"mine": 1}', "history.json": "[1]", "purify.json": '{"kept": []}'}
    for name, text in files.items():
        (folder / name).write_text(text)
    assert main([*TRAIN, "--out", str(folder)]) == 2
    _error(capsys, "holds files that are not a radlib run (data.json, history.json, purify.json")
    assert {p.name: p.read_text() for p in folder.iterdir()} == files


@pytest.mark.parametrize("argv, needle", [
    (["--out", ""], "--out is empty text"),                                  # [P5]
    (["--keep", "0.5", "--out", "x"], "--keep applies to --purify only"),    # [V3]
])
def test_train_arguments_that_mean_nothing_are_refused(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*TRAIN, *argv]) == 2
    _error(capsys, needle)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", ["-1", "99999999999999999999"])
def test_seeds_outside_the_range_are_refused_by_the_parser(seed, tmp_path, capsys):
    """[C4, C5, M4]"""
    for cmd in (TRAIN, ["demo"]):
        with pytest.raises(SystemExit) as e:
            main([*cmd, "--seed", seed, "--out", str(tmp_path / "x")])
        assert e.value.code == 2
        assert "must be an integer in [0, 4294967295]" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_root_for_embedded_data_is_refused_not_recorded(tmp_path, capsys):
    """[C15] digits and surfaces read no folder: a root would be recorded in the run without being read."""
    for name in ("digits", "surfaces"):
        with pytest.raises(ValueError, match=rf"^{name} is embedded in radlib and reads no folder; drop root"):
            load(name, root="/nonexistent")
    assert main([*TRAIN, "--root", "/nonexistent", "--out", str(tmp_path / "x")]) == 2
    _error(capsys, "digits is embedded in radlib and reads no folder; drop root (--root /nonexistent)")
    assert not (tmp_path / "x").exists()


def test_library_seeds_and_sizes_are_checked():
    """[L1, L2, E5]"""
    with pytest.raises(ValueError, match=r"image_size must be an int in \[8, 1024\] or None, got 8\.5"):
        load("digits", "0", image_size=8.5)
    with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 4294967295\], got 1\.5"):
        load("digits", "0", seed=1.5)
    with pytest.raises(ValueError, match=r"warmup_epochs must be >= 0"):
        TrainConfig(warmup_epochs=-4)


def test_demo_out_onto_a_file_is_one_line(tmp_path, capsys):
    """[M1]"""
    f = tmp_path / "report"
    f.write_text("x")
    assert main(["demo", "--out", str(f)]) == 2
    _error(capsys, "is a file; give a folder for the report")


def test_demo_takes_a_root_for_folder_data(tmp_path, monkeypatch):
    """[M3] demo --data folder had no way to say where the folder is."""
    seen = {}
    monkeypatch.setattr("radlib.demo.run_demo", lambda **kw: seen.update(kw))
    assert main(["demo", "--data", "folder", "--root", str(tmp_path), "--out", str(tmp_path / "d")]) == 0
    assert seen["root"] == str(tmp_path) and seen["data"] == "folder"


@pytest.mark.parametrize("value", ["gpu", "CPU", "cpu ", "xla", "meta", "mps", "cuda", "cuda:7"])
def test_bad_devices_are_one_line_before_any_work(value, tmp_path, capsys, monkeypatch):
    """[E7-E9] from RADLIB_DEVICE and from --device; nothing is loaded or written first."""
    if value.startswith("cuda") and torch.cuda.is_available() or value == "mps" and torch.backends.mps.is_available():
        pytest.skip("the device exists here")
    monkeypatch.setattr("radlib.pipeline.load_data", lambda *a, **k: pytest.fail("data loaded"))
    monkeypatch.setenv("RADLIB_DEVICE", value)
    assert main([*TRAIN, "--out", str(tmp_path / "x")]) == 2
    _error(capsys, f"RADLIB_DEVICE={value!r}")
    assert not (tmp_path / "x").exists()
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    assert main(["evaluate", "--ckpt", str(tmp_path / "none.pt"), "--device", value]) == 2
    _error(capsys, f"device {value!r}")


def test_ctrl_c_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    """[I3]"""
    def interrupted(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_mod, "train", interrupted)
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", OVERRIDES)
    assert main([*TRAIN, "--out", str(tmp_path / "x")]) == 130
    _error(capsys, "radlib train: interrupted (the last checkpoint is kept: the same command resumes)")


def test_the_cache_root_problems_name_radlib_cache(tmp_path, monkeypatch):
    """[Q4, Q5]"""
    ds = load_data("digits", "0", 12, get_profile("smoke"), max_train=24, max_test=30)
    afile = tmp_path / "afile"
    afile.write_text("x")
    monkeypatch.setenv("RADLIB_CACHE", str(afile))
    with pytest.raises(ValueError, match=r"checkpoint cache .*afile \(\$RADLIB_CACHE or cache=\) is a file; point "
                                         r"RADLIB_CACHE at a folder"):
        run_method("csi", ds, "smoke", cache=True, epochs=1, width=4, attacks=[], progress=False)
    monkeypatch.setenv("RADLIB_CACHE", str(tmp_path / "ro"))
    monkeypatch.setattr("radlib.cache.tempfile.NamedTemporaryFile",
                        lambda *a, **k: (_ for _ in ()).throw(OSError(30, "Read-only file system")))
    with pytest.raises(ValueError, match=r"cannot be written \(Read-only file system\); point RADLIB_CACHE at a "
                                         r"writable folder"):
        run_method("csi", ds, "smoke", cache=True, epochs=1, width=4, attacks=[], progress=False)


# ------------------------------------------------------------------------------------------ files on disk
def test_views_are_replaced_not_written_through_and_files_are_group_readable(tmp_path):
    """[S1, C1] a symlinked history.json in a run folder is replaced, the file outside is untouched; last.pt gets
    the umask's permissions like the JSON files beside it."""
    cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, epochs=2, batch_size=8)
    x = torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8)

    def killed(epoch, *_):
        raise KeyboardInterrupt
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, x, out=run, progress=False, on_epoch_end=killed)
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    (run / "history.json").unlink()
    (run / "history.json").symlink_to(outside)
    old = os.umask(0o022)
    try:
        train(cfg, x, out=run, progress=False)
    finally:
        os.umask(old)
    assert outside.read_text() == "precious" and not (run / "history.json").is_symlink()
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert (run / "last.pt").stat().st_mode & 0o777 == 0o644


def test_a_temp_file_left_by_a_killed_save_is_removed(tmp_path):
    """[I2] a writer killed mid-save leaves .last.pt.<pid>.<random>.tmp; the next save removes it (and never a temp
    file of a writer that still runs)."""
    cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, epochs=1, batch_size=8)
    tmp_path.joinpath("run").mkdir()
    dead = tmp_path / "run" / ".last.pt.999999999.abc.tmp"  # no such process
    alive = tmp_path / "run" / f".last.pt.{os.getppid()}.abc.tmp"
    dead.write_bytes(b"x" * 100)
    alive.write_bytes(b"x")
    train(cfg, torch.randint(0, 256, (16, 3, 12, 12), dtype=torch.uint8), out=tmp_path / "run", progress=False)
    assert not dead.exists() and alive.exists()


def test_unicode_and_space_paths_train_and_evaluate(tmp_path, capsys):
    """A 'clear' case of the report kept as a test: data and run folders with spaces and non-ASCII names."""
    data = tmp_path / "données de test" / "pièces"
    _folder(data)
    out = tmp_path / "runs ü" / "run 1"
    assert main(["train", "--data", "folder", "--root", str(data), "--method", "csi", "--profile", "smoke",
                 "--epochs", "1", "--image-size", "16", "--out", str(out)]) == 0
    assert main(["evaluate", "--ckpt", str(out / "last.pt"), "--attack", "none"]) == 0
    assert f"root {data}" in capsys.readouterr().out
