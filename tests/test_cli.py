"""Command line and the demo: datasets listing, train -> evaluate round trip, the demo report."""
import json
import subprocess
import sys

import pytest

import radlib
from radlib.__main__ import main, parse_eps

REQUIRED = {"surfaces", "digits", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn", "mvtec_ad", "visa", "mtd",
            "casting", "folder"}


def test_available_lists_every_dataset():
    assert REQUIRED <= set(radlib.data.available())


def test_import_radlib_prints_datasets_like_the_readme():
    out = subprocess.run([sys.executable, "-c", "import radlib; print(radlib.data.available())"],
                         capture_output=True, text=True, check=True).stdout
    assert all(name in out for name in REQUIRED)


def test_datasets_command(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in REQUIRED)


def test_parse_eps():
    assert parse_eps("8/255") == pytest.approx(8 / 255) and parse_eps("0.5") == 0.5
    with pytest.raises(Exception, match="8/255"):
        parse_eps("eight")


def test_train_then_evaluate_roundtrip(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    out = tmp_path / "run"
    assert main(["train", "--data", "surfaces", "--category", "metal", "--method", "csi", "--profile", "smoke",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"last.pt", "history.json", "run.json"}
    capsys.readouterr()
    js = tmp_path / "eval.json"
    assert main(["evaluate", "--ckpt", str(out / "last.pt"), "--attack", "pgd", "--steps", "2", "--eps", "8/255",
                 "--max-test", "24", "--json", str(js)]) == 0
    table = capsys.readouterr().out
    assert "AUROC" in table and "pgd-2@8/255" in table
    result = json.loads(js.read_text())
    assert result["protocol"]["n_normal"] + result["protocol"]["n_anomalous"] == 24
    assert result["protocol"]["score_kind"] == "own"
    assert main(["evaluate", "--ckpt", str(out / "last.pt"), "--attack", "none", "--score", "knn",
                 "--max-test", "24", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["protocol"]["score_kind"] == "knn"


def test_unknown_method_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--method", "magic", "--out", "x"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_report(tmp_path, monkeypatch):
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    from radlib.demo import run_demo
    report = run_demo(out=tmp_path / "demo", profile="smoke")
    text = report.read_text()
    assert "| csi |" in text and "| cobra |" in text and "smoke profile" in text
    assert "## What you should conclude" in text and "robust gap of" in text
    assert "PGD-2 @ 1/255" in text and "PGD-2 @ 8/255" in text  # the curve's eps, in the table
    assert "surfaces/metal" in text  # the profile's teaching data, embedded: no download
    # the detectors that learn nothing stand beside the trained ones, with the pixel kNN's certificate
    assert "| pixel kNN (no training) |" in text and "(certified " in text and "| untrained network (" in text
    assert "the pixel kNN, which learns nothing, keeps" in text or "smoke profile" in text
    for png in ("auroc.png", "auroc_vs_eps.png", "hist_csi.png", "hist_cobra.png"):
        assert (tmp_path / "demo" / png).stat().st_size > 1000
