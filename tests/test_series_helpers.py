"""The small helpers the notebook series calls instead of re-implementing: seed statistics, the AUROC bar chart,
the teaching data set and seed count of a profile, and the data-root finder."""
from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import pytest

from radlib.data.download import find_root
from radlib.evaluate import AttackSpec
from radlib.metrics import format_mean_std, mean_std
from radlib.profiles import PROFILES, apply_overrides, get_profile
from radlib.results import AttackResult, EvalResult
from radlib.viz import auroc_bars, value_bars


# ------------------------------------------------------------------------------------------- seed statistics
@pytest.mark.parametrize("values", [[98.7, 99.4, 97.1], [1.0, 2.0], [0.0, 0.0, 0.0, 100.0]])
def test_mean_std_is_the_sample_statistics(values):
    m, s = mean_std(values)
    assert m == pytest.approx(statistics.mean(values)) and s == pytest.approx(statistics.stdev(values))


def test_mean_std_of_one_value_and_bad_inputs():
    assert mean_std([42.0]) == (42.0, 0.0) and mean_std(np.array([3.0])) == (3.0, 0.0)
    with pytest.raises(ValueError, match="^mean_std needs at least one value$"):
        mean_std([])
    with pytest.raises(ValueError, match="non-finite value"):
        mean_std([1.0, float("nan")])


def test_format_mean_std():
    assert format_mean_std([98.7, 99.4, 97.1]) == f"{statistics.mean([98.7, 99.4, 97.1]):.1f} ± " \
                                                    f"{statistics.stdev([98.7, 99.4, 97.1]):.1f}"
    assert format_mean_std([98.74]) == "98.7"  # one seed: no spread to show
    assert format_mean_std([0.1234, 0.2], digits=3) == "0.162 ± 0.054"


# -------------------------------------------------------------------------------------------- AUROC bar chart
def _result(clean: float, attacked: float) -> EvalResult:
    spec = AttackSpec(eps=4 / 255, steps=20)
    att = AttackResult(spec, np.zeros(2), attacked, {})
    return EvalResult("s", np.array([0, 1]), np.array([0.0, 1.0]), clean, [att])


def test_auroc_bars_draws_the_means_spreads_and_references():
    rows = {"a": [_result(90, 10), _result(94, 20), _result(98, 30)], "b": _result(80, 70)}
    fig = auroc_bars(rows, title="t", reference={"pixel kNN": 42.0})
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)
    assert heights == sorted([94.0, 20.0, 80.0, 70.0]), heights  # the mean of each row, clean and attacked
    lines = {round(ln.get_ydata()[0], 6) for ln in ax.lines if len(set(ln.get_ydata())) == 1}
    assert {50.0, 42.0} <= lines, "chance and the reference line"
    ys = [np.asarray(ln.get_ydata(), float) for ln in ax.lines if len(ln.get_ydata()) > 2]  # error bars + caps
    spans = sorted(round((np.nanmax(y) - np.nanmin(y)) / 2, 6) for y in ys if np.isfinite(y).any())
    assert spans == [round(statistics.stdev([90, 94, 98]), 6), round(statistics.stdev([10, 20, 30]), 6)], spans
    assert "over 1-3 seeds" in ax.get_title() and "pgd-20@4/255 in+out" in ax.get_title()
    texts = {t.get_text() for t in ax.texts}
    assert {"94.0", "20.0", "80.0", "70.0"} <= texts


def test_auroc_bars_bad_inputs():
    with pytest.raises(ValueError, match="^no rows to plot$"):
        auroc_bars({})
    with pytest.raises(ValueError, match="^row 'x' has no results$"):
        auroc_bars({"x": []})
    with pytest.raises(ValueError, match="^row 'x': a result without attacks$"):
        auroc_bars({"x": EvalResult("s", np.array([0, 1]), np.array([0.0, 1.0]), 100.0)})


def test_value_bars_draws_each_value():
    fig = value_bars({"clean": 91.5, "pgd-in": 40.25, "pgd-both": 3.0}, colors=["b", "r", "r"], title="t")
    ax = fig.axes[0]
    assert [round(p.get_height(), 6) for p in ax.patches] == [91.5, 40.25, 3.0]
    assert [t.get_text() for t in ax.texts] == ["91.5", "40.2", "3.0"]  # %.1f rounds half to even
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "pgd-in", "pgd-both"]
    assert ax.get_ylim() == (0.0, 105.0) and ax.get_title() == "t"
    assert [ln.get_ydata()[0] for ln in ax.lines] == [50.0], "the chance line"
    counts = value_bars({"kept": 30, "rejected": 10}, ylabel="pseudo-anomalies", chance=None, fmt="%d").axes[0]
    assert not counts.lines and counts.get_ylim() == (0.0, 33.0) and [t.get_text() for t in counts.texts] == ["30", "10"]
    ref = value_bars({"clean": 90.0, "pgd": 10.0}, reference={"pixel kNN": 42.0, "pixel kNN certified": 30.5}).axes[0]
    assert [ln.get_ydata()[0] for ln in ref.lines] == [50.0, 42.0, 30.5]
    assert [t.get_text() for t in ref.get_legend().get_texts()] == ["chance (50)", "pixel kNN (42.0)",
                                                                    "pixel kNN certified (30.5)"]
    with pytest.raises(ValueError, match="^no values to plot$"):
        value_bars({})
    with pytest.raises(ValueError, match="^2 colors for 3 bars$"):
        value_bars({"a": 1, "b": 2, "c": 3}, colors=["r", "g"])


# ------------------------------------------------------------------------------------- teaching data and seeds
def test_profiles_name_their_teaching_data_and_seeds():
    assert get_profile("cpu").dataset == ("surfaces", "metal") and get_profile("cpu").seeds == 3
    assert get_profile("cpu").score == "patch"  # textures: local defects, a local score (RESULTS.md)
    assert apply_overrides(PROFILES["cpu"], "score=knn").score == "knn"
    with pytest.raises(ValueError, match=r"^score must be 'own', 'knn' or 'patch', got 'pixels'$"):
        PROFILES["cpu"].replace(score="pixels")
    assert get_profile("smoke").dataset == ("surfaces", "metal") and get_profile("smoke").seeds == 1
    assert PROFILES["lab"].dataset == ("surfaces", "metal") and PROFILES["lab"].seeds == 3
    casting = apply_overrides(PROFILES["smoke"], "data=casting,seeds=2")
    assert casting.dataset == ("casting", None) and casting.seeds == 2 and casting.overridden
    with pytest.raises(ValueError, match="^seeds must be >= 1, got 0$"):
        PROFILES["smoke"].replace(seeds=0)


# ------------------------------------------------------------------------------------------------ data roots
def test_find_root_order(tmp_path, monkeypatch):
    checkout = tmp_path / "work" / "main"
    (checkout / "notebooks").mkdir(parents=True)
    start = checkout / "notebooks"
    monkeypatch.delenv("RADLIB_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert find_root("casting", start=start) is None
    (tmp_path / "data" / "casting").mkdir(parents=True)
    assert find_root("casting", start=start) == Path("data"), "./data is the last resort"
    shared = tmp_path / "work" / "shared" / "data"  # this project's layout: shared/ beside the checkout
    (shared / "casting").mkdir(parents=True)
    assert find_root("casting", start=start) == shared
    env = tmp_path / "mine"
    (env / "casting").mkdir(parents=True)
    monkeypatch.setenv("RADLIB_DATA", str(env))
    assert find_root("casting", start=start) == env, "$RADLIB_DATA comes first"
    assert find_root("mvtec_ad", start=start) is None


def test_find_root_stops_two_levels_up(tmp_path, monkeypatch):
    """A shared/data three levels above the start (a stray /tmp/shared on a CI machine) is not the checkout's."""
    start = tmp_path / "a" / "work" / "main" / "notebooks"
    start.mkdir(parents=True)
    monkeypatch.delenv("RADLIB_DATA", raising=False)
    monkeypatch.chdir(start)
    (tmp_path / "a" / "shared" / "data" / "casting").mkdir(parents=True)
    assert find_root("casting", start=start) is None
    (tmp_path / "a" / "work" / "shared" / "data" / "casting").mkdir(parents=True)
    assert find_root("casting", start=start) == tmp_path / "a" / "work" / "shared" / "data"
    assert find_root("casting", start=start.parent) == tmp_path / "a" / "work" / "shared" / "data"
