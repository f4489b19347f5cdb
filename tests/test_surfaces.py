"""Tests for the procedural ``surfaces`` dataset (radlib/data/surfaces.py)."""
from __future__ import annotations

import importlib
import math
import sys
import types

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

try:  # the normal path: the package registers every loader
    import radlib.data as rdata
    from radlib.data import surfaces as S
except Exception:  # another loader of the package is broken: import this module on its own
    rdata = None
    for name in [k for k in sys.modules if k.startswith("radlib.data")]:
        del sys.modules[name]
    import radlib

    pkg = types.ModuleType("radlib.data")
    pkg.__path__ = [radlib.__path__[0] + "/data"]
    sys.modules["radlib.data"] = pkg
    S = importlib.import_module("radlib.data.surfaces")

from radlib.data.base import ADDataset, load  # noqa: E402
from radlib.data.surface_defects import polyline_distance  # noqa: E402


def small(**kw) -> ADDataset:
    args = dict(normal=None, image_size=32, root=None, seed=0, download=False, channels=3, n_train=12, n_test=24)
    args.update(kw)
    return S.load_surfaces(**args)


# ------------------------------------------------------------------------------------------- structure
@pytest.mark.parametrize("size,n_train,n_test", [(32, 10, 14), (48, 6, 12), (64, 6, 12), (224, 2, 8)])
def test_shapes_dtypes_ranges(size, n_train, n_test):
    ds = small(image_size=size, n_train=n_train, n_test=n_test)
    for split, n in ((ds.train, n_train), (ds.test, n_test)):
        assert split.images.shape == (n, 3, size, size) and split.images.dtype == torch.uint8
        assert split.masks.shape == (n, 1, size, size) and split.masks.dtype == torch.uint8
        assert split.labels.dtype == torch.int64 and split.defect.dtype == torch.int64
        assert int(split.masks.max()) <= 1
        # images use a real range of grey levels (not blank, not saturated)
        assert split.images.float().std() > 5 and 30 < split.images.float().mean() < 225
    assert ds.name == "surfaces" and ds.normal == "fabric" and ds.image_size == size
    assert ds.defect_types == ("good", *S.DEFECTS)
    assert ds.meta["source"] == "procedural (radlib)" and ds.meta["licence"] == "MIT"
    assert ds.meta["category"] == "fabric"


def test_default_size_is_64():
    ds = S.load_surfaces(normal="metal", image_size=None, root=None, seed=0, download=True, channels=3,
                         n_train=2, n_test=2)
    assert ds.image_size == 64


def test_categories_and_defects_are_realistic_lists():
    assert len(S.CATEGORIES) >= 4 and {"fabric", "metal", "wood", "tiles"} <= set(S.CATEGORIES)
    assert len(S.DEFECTS) >= 5 and len(set(S.DEFECTS)) == len(S.DEFECTS)
    assert S.DEFECT_TYPES == ("good", *S.DEFECTS)


@pytest.mark.parametrize("category", S.CATEGORIES)
def test_every_category(category):
    ds = small(normal=category, n_train=8, n_test=12)
    assert ds.normal == category and ds.meta["category"] == category
    assert len(ds.train) == 8 and len(ds.test) == 12
    # normal images are different instances (no two identical), with real variability
    x = ds.train.images.float().flatten(1)
    d = torch.cdist(x, x) + torch.eye(len(x)) * 1e9
    assert d.min() > 0
    assert (x - x.mean(0)).abs().mean() > 3
    # anomalies have non-empty masks, normals empty ones
    area = ds.test.masks.flatten(1).sum(1)
    assert bool(((area > 0) == (ds.test.labels == 1)).all())


def test_wood_is_brownish():
    im = small(normal="wood", n_train=8, n_test=2).train.images.float().mean((0, 2, 3))
    assert im[0] > im[1] > im[2]


def test_determinism_and_seed_dependence():
    a, b, c = small(seed=3), small(seed=3), small(seed=4)
    for f in ("images", "masks", "labels", "defect"):
        assert torch.equal(getattr(a.train, f), getattr(b.train, f))
        assert torch.equal(getattr(a.test, f), getattr(b.test, f))
    assert not torch.equal(a.train.images, c.train.images)
    assert not torch.equal(a.test.images, c.test.images)


def test_generate_is_deterministic_given_generator_state():
    args = dict(category="tiles", n=5, image_size=40, defects=torch.arange(5))
    x1 = S.generate(**args, generator=torch.Generator().manual_seed(7))
    x2 = S.generate(**args, generator=torch.Generator().manual_seed(7))
    for t1, t2 in zip(x1, x2):
        assert torch.equal(t1, t2)


def test_train_and_test_are_disjoint():
    ds = small(n_train=40, n_test=40)
    tr = ds.train.images.float().flatten(1)
    te = ds.test.images.float().flatten(1)
    assert torch.cdist(te, tr).min() > 0


def test_train_only_normals():
    ds = small(n_train=20)
    assert bool((ds.train.labels == 0).all()) and bool((ds.train.defect == 0).all())
    assert int(ds.train.masks.sum()) == 0
    assert not bool(ds.train.contaminated.any())


def test_masks_consistent_with_labels_and_defects():
    ds = small(n_test=36)
    t = ds.test
    assert torch.equal(t.labels, (t.defect > 0).long())
    area = t.masks.flatten(1).sum(1)
    assert bool((area[t.labels == 1] > 0).all())
    assert bool((area[t.labels == 0] == 0).all())
    # a defect covers at most a modest fraction of the image (a few per cent, thin lines less)
    frac = area[t.labels == 1].float() / 32 ** 2
    assert float(frac.max()) < 0.1


def test_each_defect_type_appears_evenly():
    ds = small(n_test=40, anomaly_ratio=0.5)  # 20 anomalies over 6 types: 4,4,3,3,3,3
    counts = torch.bincount(ds.test.defect, minlength=len(ds.defect_types))
    assert int(counts[0]) == 20
    assert sorted(counts[1:].tolist()) == [3, 3, 3, 3, 4, 4]


def test_defect_subset():
    ds = small(n_test=12, defects=("hole", "stain"))
    assert ds.defect_types == ("good", "hole", "stain")
    counts = torch.bincount(ds.test.defect, minlength=3)
    assert counts.tolist() == [6, 3, 3]


@settings(max_examples=15, deadline=None)
@given(n_test=st.integers(1, 30), ratio=st.floats(0.0, 1.0), seed=st.integers(0, 2 ** 31))
def test_anomaly_count_property(n_test, ratio, seed):
    ds = small(n_train=1, n_test=n_test, anomaly_ratio=ratio, seed=seed)
    n_anom = int(round(ratio * n_test))
    assert int(ds.test.labels.sum()) == n_anom
    per = torch.bincount(ds.test.defect, minlength=len(ds.defect_types))[1:]
    assert int(per.max() - per.min()) <= 1
    area = ds.test.masks.flatten(1).sum(1)
    assert torch.equal(area > 0, ds.test.labels == 1)


def test_channels_1_is_luminance():
    rgb, grey = small(channels=3), small(channels=1)
    assert grey.train.images.shape == (12, 1, 32, 32) and grey.test.images.shape == (24, 1, 32, 32)
    assert grey.channels == 1
    x = rgb.test.images.double()
    ref = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert (grey.test.images[:, 0].double() - ref).abs().max() <= 0.5 + 1e-9
    assert torch.equal(grey.test.masks, rgb.test.masks)


# ------------------------------------------------------------------------------------------- bad input
def test_unknown_category_lists_valid_ones():
    with pytest.raises(ValueError) as e:
        small(normal="marble")
    for c in S.CATEGORIES:
        assert c in str(e.value)


@pytest.mark.parametrize("size", [31, 257, 0, -64, 64.0, True, "64"])
def test_bad_image_size(size):
    with pytest.raises(ValueError, match="image_size"):
        small(image_size=size)


def test_unknown_option_named():
    with pytest.raises(TypeError, match="n_tran"):
        small(n_tran=5)


@pytest.mark.parametrize("kw,match", [({"n_train": 0}, "n_train"), ({"n_test": -1}, "n_test"),
                                      ({"anomaly_ratio": 1.5}, "anomaly_ratio"), ({"channels": 2}, "channels"),
                                      ({"defects": ("dent",)}, "defects"), ({"defects": ()}, "defects"),
                                      ({"defects": ("hole", "hole")}, "defects")])
def test_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        small(**kw)


def test_generate_bad_input():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="category"):
        S.generate("glass", 2, 32, generator=g)
    with pytest.raises(ValueError, match="defects"):
        S.generate("wood", 2, 32, defects=["hole"], generator=g)
    with pytest.raises(ValueError, match="unknown defect"):
        S.generate("wood", 1, 32, defects=["dent"], generator=g)
    with pytest.raises(ValueError, match="indices"):
        S.generate("wood", 1, 32, defects=torch.tensor([7]), generator=g)
    with pytest.raises(TypeError, match="generator"):
        S.generate("wood", 1, 32, generator=0)
    with pytest.raises(ValueError, match="n must"):
        S.generate("wood", -1, 32, generator=g)


# ------------------------------------------------------------------------------- defects are real, subtle
@pytest.mark.parametrize("category", S.CATEGORIES)
def test_defects_change_only_the_masked_pixels_and_are_visible(category):
    n = 24
    d = torch.arange(n) % len(S.DEFECTS) + 1
    img, mask, idx, clean = S.generate(category, n, 48, defects=d, generator=torch.Generator().manual_seed(1),
                                       return_clean=True)
    assert torch.equal(idx, d)
    diff = (img.float() - clean.float()).abs().mean(1, keepdim=True) / 255  # (n, 1, H, W) in [0, 1]
    m = mask.bool()
    assert float(diff[~m].sum()) == 0.0  # nothing outside the mask changed
    area = m.flatten(1).sum(1)
    assert bool((area > 0).all())
    inside = diff.flatten(1).sum(1) / area
    assert float(inside.min()) > 0.01  # every single defect is visible (> 2.5 grey levels on average)
    for k in range(1, len(S.DEFECT_TYPES)):
        assert float(inside[d == k].mean()) > 0.02, S.DEFECT_TYPES[k]
    # no defect when asked for "good"
    img0, mask0, _, clean0 = S.generate(category, 3, 48, defects="good", generator=torch.Generator(),
                                        return_clean=True)
    assert torch.equal(img0, clean0) and int(mask0.sum()) == 0


def test_defect_size_scales_with_image_size():
    frac = {}
    for size in (32, 96):
        d = torch.tensor([3] * 12)  # holes
        _, m, _ = S.generate("metal", 12, size, defects=d, generator=torch.Generator().manual_seed(0))
        frac[size] = float(m.float().mean())
    assert 0.003 < frac[32] < 0.05 and 0.003 < frac[96] < 0.05
    assert 0.5 < frac[32] / frac[96] < 2.0


def test_raw_pixel_baselines_are_far_from_perfect():
    ds = small(normal="fabric", n_train=200, n_test=120, seed=5)
    tr = ds.train.float().flatten(1).double()
    te = ds.test.float().flatten(1).double()
    y = ds.test.labels.numpy()
    mu, sd = tr.mean(0), tr.std(0).clamp_min(1e-3)
    gauss = ((te - mu) / sd).pow(2).mean(1)
    knn = torch.cdist(te, tr).min(1).values
    auc_gauss = roc_auc_score(y, gauss.numpy())
    auc_knn = roc_auc_score(y, knn.numpy())
    assert auc_gauss < 0.9 and auc_knn < 0.9, (auc_gauss, auc_knn)
    # ... while the defects exist and are pixel-annotated
    area = ds.test.masks.flatten(1).sum(1)
    assert torch.equal(area > 0, ds.test.labels == 1)


# ------------------------------------------------------------------------------- pieces vs references
def test_polyline_distance_matches_naive_loop():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand((2, 4, 2), generator=g) * 16
    d = polyline_distance(pts, 16).numpy()
    for i in range(2):
        for yy in range(16):
            for xx in range(16):
                p = np.array([xx + 0.5, yy + 0.5])
                best = math.inf
                for j in range(3):
                    a, b = pts[i, j].numpy().astype(float), pts[i, j + 1].numpy().astype(float)
                    t = np.clip(np.dot(p - a, b - a) / max(np.dot(b - a, b - a), 1e-12), 0, 1)
                    best = min(best, float(np.linalg.norm(p - a - t * (b - a))))
                assert abs(d[i, yy, xx] - best) < 1e-4


# ------------------------------------------------------------------------------------------ end to end
def test_load_through_registry():
    if rdata is not None:
        assert "surfaces" in rdata.available()
        ds = rdata.load("surfaces", normal="tiles", image_size=32, seed=1, n_train=10, n_test=12, channels=1)
    else:  # package import broken elsewhere: use the registry of _base directly
        ds = load("surfaces", normal="tiles", image_size=32, seed=1, n_train=10, n_test=12, channels=1)
    assert ds.normal == "tiles" and ds.channels == 1 and len(ds.train) == 10 and len(ds.test) == 12
    assert ds.meta["seed"] == 1
    assert "surfaces/tiles" in ds.summary()
    # contamination through the generic loader moves test anomalies (with their masks) into train
    ds2 = load("surfaces", normal="tiles", image_size=32, seed=1, n_train=10, n_test=12, contamination=0.5)
    assert int(ds2.train.contaminated.sum()) == 3 and len(ds2.test) == 9

