"""The claim radlib exists to show, checked on every change: with the ``cpu`` profile's recipe (a 2-core laptop,
minutes), on data where raw pixels fail, COBRA keeps detecting under attack while CSI collapses, and what it keeps
it learned: it beats the pixel kNN and the untrained network, the detectors that learn nothing.

Trains both methods once on the profile's teaching data (``surfaces/metal``, embedded, no download), seed 0 --
through the session's checkpoint cache, so the detectors notebook 00 trained in its ``cpu`` run are reused -- and
evaluates them and the two references (:mod:`radlib.reference`) clean and under in+out PGD-20 at the profile's eps.
Asserted: COBRA's PGD-20 AUROC >= CSI's + 30, >= the pixel kNN's + 15 and >= the untrained network's + 15; COBRA's
clean AUROC >= the pixel kNN's; CSI learned (clean well above chance: its collapse is the attack's doing). Times
are reported by ``benchmarks/bench_recipe.py --profile cpu``, never asserted here.
"""
import hashlib
import json
import os
import warnings
from pathlib import Path

import pytest

from radlib.evaluate import AttackSpec
from radlib.pipeline import load_data, run_method
from radlib.profiles import get_profile
from radlib.reference import reference_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(cpu_cache):
    profile = get_profile("cpu")  # explicitly: CI runs the rest of the suite in smoke
    ds = load_data(*profile.dataset, None, profile, seed=0)
    attack = AttackSpec(eps=profile.eps_for(ds.image_size), steps=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        runs = {m: run_method(m, ds, profile, device="cpu", seed=0, progress=False, attacks=[attack], cache=cpu_cache)
                for m in ("csi", "cobra")}  # the session cache: trained once, by notebook 00's cpu run or here
        runs.update(reference_rows(ds, profile, [attack], device="cpu", seed=0))
    report = os.environ.get("RADLIB_GAP_REPORT")  # a file for the numbers (e.g. to compare two versions)
    if report:
        Path(report).write_text(json.dumps({m: _fingerprint(runs[m]) for m in ("csi", "cobra")}, indent=1))
    return runs


def _fingerprint(run) -> dict:
    weights = b"".join(v.detach().contiguous().float().numpy().tobytes() for v in run.train.model.state_dict().values())
    return {"clean": run.eval.clean_auroc, "pgd20": run.eval.robust_auroc,
            "weights": hashlib.sha256(weights).hexdigest()[:16],
            "scores": hashlib.sha256(run.eval.attacks[0].scores.tobytes()).hexdigest()[:16],
            "train_seconds": round(run.train.seconds, 1)}


def test_cobra_holds_where_csi_collapses_and_beats_what_learns_nothing(runs):
    csi, cobra = runs["csi"].eval, runs["cobra"].eval
    pix, net = runs["pixel kNN"], runs["untrained network"].eval
    name = cobra.attacks[0].spec.name
    summary = (f"csi {csi.clean_auroc:.1f}/{csi.robust_auroc:.1f}, cobra {cobra.clean_auroc:.1f}/"
               f"{cobra.robust_auroc:.1f}, pixel kNN {pix.eval.clean_auroc:.1f}/{pix.eval.robust_auroc:.1f} "
               f"(certified {pix.certified_under(name):.1f}), untrained {net.clean_auroc:.1f}/{net.robust_auroc:.1f} "
               f"(clean/PGD-20 at {cobra.attacks[0].protocol['eps_str']})")
    assert cobra.robust_auroc >= csi.robust_auroc + 30, summary
    assert cobra.robust_auroc >= pix.eval.robust_auroc + 15, summary
    assert cobra.robust_auroc >= net.robust_auroc + 15, summary
    assert cobra.clean_auroc >= pix.eval.clean_auroc, summary
    assert csi.clean_auroc >= 70, summary  # CSI learned: its collapse is the attack's doing
    assert csi.robust_auroc < 20, summary
    assert pix.certified_under(name) <= pix.eval.robust_auroc + 1e-6, summary


def test_the_protocol_names_what_was_measured(runs):
    p = runs["cobra"].eval.protocol
    assert p["profile"] == "cpu" and p["method"] == "cobra" and p["score_tta"] == "none"
    assert p["train_precision"].startswith(("bf16 autocast", "fp32"))
    a = runs["cobra"].eval.attacks[0].protocol
    assert a["mode"] == "both" and a["steps"] == 20 and a["n_attacked"] == a["n_normal"] + a["n_anomalous"]
