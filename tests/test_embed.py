"""Tests of radlib.embed: embedding bookkeeping, the 2-D map, and the explorer's callback (no frontend)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from matplotlib.collections import LineCollection, PathCollection

from radlib.embed import ANY_STATE, EmbeddingExplorer, EmbeddingSet, collect_embeddings, fit_embedding
from radlib.models import ModelConfig, ResNet18AD


@pytest.fixture(scope="module")
def model() -> ResNet18AD:
    torch.manual_seed(0)
    return ResNet18AD(ModelConfig(width=4, image_size=16, num_transforms=2, proj_dim=8))


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------- collect
def test_collect_shapes_groups_and_mode(model):
    model.train()
    groups = {"normal": _images(5, 0), "pseudo-anomaly": _images(3, 1), "anomaly": _images(4, 2)}
    es = collect_embeddings(model, groups, batch_size=2, state="clean", checkpoint=3)
    assert model.training, "the caller's train mode must be restored"
    assert es.features.shape == (12, 8) and es.features.dtype == torch.float32 and es.features.device.type == "cpu"
    assert es.group_names == ("normal", "pseudo-anomaly", "anomaly")
    assert es.group.tolist() == [0] * 5 + [1] * 3 + [2] * 4
    assert es.extra["index"].tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 0, 1, 2, 3]
    assert set(es.extra["state"]) == {"clean"} and set(es.extra["checkpoint"]) == {3}
    assert not es.features.requires_grad
    # the projection of group "anomaly" equals a direct forward pass in eval mode
    model.eval()
    with torch.no_grad():
        ref = model(groups["anomaly"]).projection
    assert torch.allclose(es.features[8:], ref, atol=1e-5)
    feats = collect_embeddings(model, {"normal": _images(2, 0)}, feature="features")
    assert feats.features.shape == (2, 32)  # 8 * width


def test_concat_matches_groups_by_name(model):
    a = collect_embeddings(model, {"normal": _images(2, 0), "anomaly": _images(2, 1)}, state="clean")
    b = collect_embeddings(model, {"anomaly": _images(3, 2), "pseudo-anomaly": _images(1, 3)}, state="attacked")
    c = EmbeddingSet.concat([a, b])
    assert c.group_names == ("normal", "anomaly", "pseudo-anomaly")
    assert c.labels.tolist() == ["normal"] * 2 + ["anomaly"] * 5 + ["pseudo-anomaly"]
    assert c.extra["state"].tolist() == ["clean"] * 4 + ["attacked"] * 4
    assert torch.equal((a + b).features, c.features)
    sub = c.subset(c.extra["state"] == "attacked")
    assert len(sub) == 4 and torch.equal(sub.features, b.features)
    assert c.with_fields(method="csi").extra["method"].tolist() == ["csi"] * 8


def test_collect_and_set_bad_inputs(model):
    with pytest.raises(ValueError):
        collect_embeddings(model, {})
    with pytest.raises(ValueError):
        collect_embeddings(model, {"normal": _images(2, 0)}, feature="logitz")
    with pytest.raises(TypeError):
        collect_embeddings(model, {"normal": np.zeros((2, 3, 16, 16))})
    with pytest.raises(ValueError):
        collect_embeddings(model, {"normal": torch.zeros(0, 3, 16, 16)})
    with pytest.raises(ValueError):
        collect_embeddings(model, {"normal": torch.zeros(3, 16, 16)})
    with pytest.raises(ValueError):
        collect_embeddings(model, {"normal": _images(2, 0)}, batch_size=0)
    a = collect_embeddings(model, {"normal": _images(2, 0)})
    with pytest.raises(ValueError):
        a.with_fields(state=["clean"])  # wrong length
    with pytest.raises(ValueError):
        EmbeddingSet.concat([a, EmbeddingSet(torch.zeros(2, 3), torch.zeros(2), ("normal",), {"index": [0, 1]})])
    with pytest.raises(ValueError):
        EmbeddingSet.concat([a, a.with_fields(state="clean")])  # extra fields differ
    with pytest.raises(ValueError):
        EmbeddingSet(torch.zeros(2, 3), torch.tensor([0, 1]), ("normal",))  # group index out of range
    with pytest.raises(ValueError):
        EmbeddingSet.concat([])


# --------------------------------------------------------------------------------------------- 2-D map
def test_fit_pca_deterministic_and_shapes():
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(0))
    a, b = fit_embedding(x, method="pca"), fit_embedding(x.numpy(), method="pca")
    assert a.shape == (40, 2) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    # cosine PCA ignores the length of each row
    np.testing.assert_allclose(fit_embedding(x * torch.rand(40, 1) * 5 + 0, method="pca"), a, atol=1e-4)
    # euclidean PCA of points on a line: all the spread is on axis 1
    line = torch.linspace(0, 1, 10)[:, None] * torch.tensor([[1.0, 2.0, 3.0]])
    p = fit_embedding(line, method="pca", metric="euclidean")
    assert np.abs(p[:, 1]).max() < 1e-5 < np.ptp(p[:, 0])


def test_fit_embedding_falls_back_to_pca_when_tiny():
    x = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
    with pytest.warns(UserWarning, match="PCA"):
        out = fit_embedding(x, n_neighbors=15)
    np.testing.assert_array_equal(out, fit_embedding(x, method="pca"))


def test_fit_embedding_bad_inputs():
    with pytest.raises(ValueError):
        fit_embedding(torch.zeros(5))
    with pytest.raises(ValueError):
        fit_embedding(torch.zeros(1, 4))
    with pytest.raises(ValueError):
        fit_embedding(torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), method="pca")
    with pytest.raises(ValueError):
        fit_embedding(torch.zeros(5, 2), method="tsne")
    with pytest.raises(ValueError):
        fit_embedding(torch.zeros(5, 2), metric="manhattan")


@pytest.mark.slow
def test_fit_embedding_deterministic_for_a_seed():
    """UMAP proper, on the exact neighbours (radlib.embed.mapping.exact_knn)."""
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(30, 8, generator=g) + 4, torch.randn(30, 8, generator=g) - 4])
    a = fit_embedding(x, n_neighbors=10, seed=3, n_epochs=50, metric="euclidean")
    b = fit_embedding(x, n_neighbors=10, seed=3, n_epochs=50, metric="euclidean")
    assert a.shape == (60, 2)
    np.testing.assert_array_equal(a, b)
    # two well separated blobs stay separated
    assert np.linalg.norm(a[:30].mean(0) - a[30:].mean(0)) > np.linalg.norm(a[:30].std(0))


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_exact_knn_matches_sklearn_brute_force(metric):
    from sklearn.neighbors import NearestNeighbors
    from radlib.embed.mapping import exact_knn
    x = torch.randn(300, 7, generator=torch.Generator().manual_seed(2)).double()
    idx, dist = exact_knn(x, 6, metric=metric, chunk=64)  # several chunks
    ref_dist, ref_idx = NearestNeighbors(n_neighbors=6, metric=metric, algorithm="brute").fit(x.numpy()).kneighbors()
    assert idx.shape == dist.shape == (300, 6) and dist.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(idx[:, 0], np.arange(300))  # itself first, at distance 0
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-6)
    np.testing.assert_array_equal(idx[:, 1:], ref_idx[:, :5])  # sklearn leaves the query point out
    np.testing.assert_allclose(dist[:, 1:], ref_dist[:, :5], rtol=1e-5, atol=1e-6)


def test_exact_knn_puts_the_point_first_among_duplicates_and_refuses_bad_k():
    from radlib.embed.mapping import exact_knn
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    idx, dist = exact_knn(x, 2, metric="euclidean")
    assert idx.tolist() == [[0, 1], [1, 0], [2, 0]] and dist[:2].max() == 0.0
    for bad in (0, 4, 2.0, True):
        with pytest.raises(ValueError, match=r"k must be an int in \[1, 3\] \(the number of points\)"):
            exact_knn(x, bad)
    with pytest.raises(ValueError, match="metric must be 'cosine' or 'euclidean', got 'l1'"):
        exact_knn(x, 2, metric="l1")


# --------------------------------------------------------------------------------------------- explorer
def _table():
    """2 methods x 2 checkpoints x {clean: 3 normal + 2 anomaly, attacked: same}, plus 2 pseudo per (m, c)."""
    rows = []
    for m in ("csi", "cobra"):
        for c in (1, 2):
            for st in ("clean", "attacked"):
                rows += [(m, c, st, "normal", i) for i in range(3)] + [(m, c, st, "anomaly", i) for i in range(2)]
            rows += [(m, c, ANY_STATE, "pseudo-anomaly", i) for i in range(2)]
    method, ckpt, state, group, index = (list(col) for col in zip(*rows))
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(len(rows), 2))
    return coords, {"method": method, "checkpoint": ckpt, "state": state, "group": group, "index": index}


def _scatter_count(fig) -> int:
    return sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection))


def test_explorer_draws_the_filtered_points():
    coords, table = _table()
    ex = EmbeddingExplorer(coords, table, axis_label="UMAP")
    assert ex.options == {"method": ["csi", "cobra"], "checkpoint": [1, 2], "state": ["clean", "attacked"]}
    assert ex.state["checkpoint"] == 2 and ex.state["state"] == "clean"  # last epoch, clean first
    fig = ex.update(method="csi", checkpoint=1, state="clean")
    assert _scatter_count(fig) == 3 + 2 + 2 == ex.n_shown
    ax = fig.axes[0]
    assert ax.get_xlabel() == "UMAP-1" and ax.get_ylabel() == "UMAP-2"
    assert {c.get_gid() for c in ax.collections if isinstance(c, PathCollection)} == \
        {"normal", "anomaly", "pseudo-anomaly"}
    assert ax.get_legend() is not None
    assert not any(isinstance(c, LineCollection) for c in ax.collections)  # no shift lines when clean
    clean_mask = ex.mask()
    fig = ex.update(state="attacked")
    assert _scatter_count(fig) == 7
    attacked_mask = ex.mask()
    # toggling clean/attacked swaps the normal/anomaly points and keeps the shared pseudo-anomalies
    assert (clean_mask != attacked_mask).sum() == 10
    assert (clean_mask & attacked_mask).sum() == 2
    assert np.all(np.asarray(table["group"])[clean_mask & attacked_mask] == "pseudo-anomaly")
    lines = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert len(lines) == 1 and len(lines[0].get_segments()) == 5  # one per attacked image
    fig = ex.update(groups=["normal"], show_shift=False)
    assert _scatter_count(fig) == 3
    assert not any(isinstance(c, LineCollection) for c in fig.axes[0].collections)
    assert ex.mask(groups=[]).sum() == 0
    # draw() does not change the state
    before = dict(ex.state)
    f2 = ex.draw(method="cobra", groups=ex.groups)
    assert ex.state == before and _scatter_count(f2) == 7


def test_explorer_axis_limits_per_view():
    """limits="view": the frame holds the points of the shown method and checkpoint, clean and attacked alike
    (toggling the state keeps it), and nothing else; limits="all": one frame for every view."""
    coords, table = _table()
    coords[np.asarray(table["checkpoint"]) == 1] *= 50  # an early checkpoint spread far out
    ex = EmbeddingExplorer(coords, table)
    view = (np.asarray(table["method"]) == "cobra") & (np.asarray(table["checkpoint"]) == 2)
    lo, hi = coords[view].min(0), coords[view].max(0)
    pad = (hi - lo) * 0.06
    clean = ex.draw(method="cobra", checkpoint=2, state="clean").axes[0]
    attacked = ex.draw(method="cobra", checkpoint=2, state="attacked").axes[0]
    assert np.allclose(clean.get_xlim(), (lo[0] - pad[0], hi[0] + pad[0]))
    assert np.allclose(clean.get_ylim(), (lo[1] - pad[1], hi[1] + pad[1]))
    assert clean.get_xlim() == attacked.get_xlim() and clean.get_ylim() == attacked.get_ylim()
    early = ex.draw(method="cobra", checkpoint=1).axes[0]
    assert early.get_xlim()[1] - early.get_xlim()[0] > 10 * (clean.get_xlim()[1] - clean.get_xlim()[0])
    one = EmbeddingExplorer(coords, table, limits="all")
    a, b = one.draw(method="cobra", checkpoint=2).axes[0], one.draw(method="csi", checkpoint=1).axes[0]
    assert a.get_xlim() == b.get_xlim() and a.get_xlim()[0] <= coords[:, 0].min()
    with pytest.raises(ValueError, match="^limits must be 'view' or 'all', got 'fixed'$"):
        EmbeddingExplorer(coords, table, limits="fixed")


def test_explorer_widget_callback_without_frontend():
    pytest.importorskip("ipywidgets")
    coords, table = _table()
    ex = EmbeddingExplorer(coords, table)
    w = ex.widget
    assert w.children, "the container holds the controls and the output"
    ex._controls["state"].value = "attacked"  # what a click does: the observer re-draws
    assert ex.state["state"] == "attacked" and ex.last_figure is not None
    ex._controls["groups"]["anomaly"].value = False
    assert ex.state["groups"] == ("normal", "pseudo-anomaly") and _scatter_count(ex.last_figure) == 5
    ex.update(method="cobra", checkpoint=1)
    assert ex._controls["method"].value == "cobra" and ex._controls["checkpoint"].value == 1


def _click(ex, i, name="button_press_event", offset=(0.0, 0.0)):
    """A real matplotlib mouse event on the explorer's canvas, at point i's position on the screen (+ offset px)."""
    from matplotlib.backend_bases import MouseEvent

    canvas = ex._canvas
    canvas.draw()
    ax = canvas.figure.axes[0]
    x, y = ax.transData.transform(ex.coords[i])
    MouseEvent(name, canvas, x + offset[0], y + offset[1], button=1 if name == "button_press_event" else None
               )._process()


def test_explorer_pointing_shows_the_image():
    """Click (or hover within 8 px) on a point: the panel beside the map shows that point's image (PNG of the very
    pixels) and fields, and the map rings it; a point that is not shown cannot be picked."""
    pytest.importorskip("ipympl")
    from PIL import Image

    coords, table = _table()
    n = len(coords)
    images = torch.rand(n, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    images[:, :, 0, 0] = torch.arange(n).float().view(-1, 1) / 255  # each image tells its point index
    ex = EmbeddingExplorer(coords, table, images=[images[:7], images[7:]])  # rows split over two tensors
    ex.widget
    assert ex._canvas is not None, "with ipympl installed the map is an interactive canvas"
    target = int(np.flatnonzero(ex.mask(method="cobra", checkpoint=2, state="attacked"))[4])
    ex.update(method="cobra", checkpoint=2, state="attacked")
    _click(ex, target)
    assert ex.selected == target
    image, label = ex._panel
    png = np.asarray(Image.open(io.BytesIO(image.value)))
    assert png.shape == (160, 160, 3), "enlarged x32 with nearest neighbours"
    expected = (images[target] * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    assert np.array_equal(png[::32, ::32], expected) and int(png[0, 0, 0]) == target
    assert label.value == ex.describe_point(target) and "cobra" in label.value and "attacked" in label.value
    ring = [c for c in ex.last_figure.axes[0].collections if c.get_gid() == "selected"]
    assert len(ring) == 1 and np.allclose(ring[0].get_offsets()[0], coords[target])
    other = int(np.flatnonzero(ex.mask())[0])
    _click(ex, other, "motion_notify_event", offset=(30.0, 0.0))  # hovering 30 px away: nothing
    assert ex.selected == target
    _click(ex, other, "motion_notify_event", offset=(3.0, -2.0))  # within 8 px: that point
    assert ex.selected == other and int(np.asarray(Image.open(io.BytesIO(image.value)))[0, 0, 0]) == other
    hidden = int(np.flatnonzero(~ex.mask())[0])
    assert ex.point_at(*coords[hidden]) != hidden
    ex.update(method="csi")  # the selected point is not in this view any more
    assert ex.selected is None
    assert torch.allclose(ex.image(9), images[9]) and ex.image(9).shape == (3, 5, 5)


def test_explorer_without_ipympl_or_images(monkeypatch):
    import builtins

    coords, table = _table()
    real_import = builtins.__import__

    def no_ipympl(name, *args, **kwargs):
        if name.startswith("ipympl"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ipympl)
    ex = EmbeddingExplorer(coords, table, images=torch.zeros(len(coords), 1, 4, 4, dtype=torch.uint8))
    ex.widget
    assert ex._canvas is None and ex.last_figure is not None  # static pictures in an Output
    ex.show_point(3)
    assert ex._panel[1].value == ex.describe_point(3) and ex._panel[0].value[:4] == b"\x89PNG"
    plain = EmbeddingExplorer(coords, table)
    with pytest.raises(ValueError, match=r"^this explorer has no images \(pass images= when you build it\)$"):
        plain.image(0)
    with pytest.raises(ValueError, match=f"^images hold 3 rows for {len(coords)} points$"):
        EmbeddingExplorer(coords, table, images=torch.zeros(3, 1, 4, 4))
    with pytest.raises(ValueError, match=r"^images must be \(n, C, H, W\) tensors with C = 1 or 3, got \(4, 4\)$"):
        EmbeddingExplorer(coords, table, images=[torch.zeros(4, 4)])
    with pytest.raises(IndexError, match=f"^point {len(coords)} is not in 0..{len(coords) - 1}$"):
        ex.image(len(coords))


def test_explorer_from_set_and_bad_inputs(model):
    es = collect_embeddings(model, {"normal": _images(3, 0), "anomaly": _images(2, 1)}, state="clean")
    ex = EmbeddingExplorer.from_set(es, fit_embedding(es, method="pca"), axis_label="PCA")
    assert ex.groups == ("normal", "anomaly") and ex.options == {"state": ["clean"]}
    assert ex.draw().axes[0].get_xlabel() == "PCA-1" and ex.n_shown == 5
    coords, table = _table()
    with pytest.raises(ValueError):
        EmbeddingExplorer(coords[:, :1], table)
    with pytest.raises(ValueError):
        EmbeddingExplorer(coords[:-1], table)
    with pytest.raises(ValueError):
        EmbeddingExplorer(coords, {k: v for k, v in table.items() if k != "group"})
    with pytest.raises(ValueError):
        EmbeddingExplorer.from_set(es, np.zeros((4, 2)))
    ex = EmbeddingExplorer(coords, table)
    with pytest.raises(ValueError):
        ex.update(method="msad")
    with pytest.raises(ValueError):
        ex.update(checkpoint=7)
    with pytest.raises(ValueError):
        ex.update(groups=["outlier"])
    with pytest.raises(TypeError):
        ex.update(colour="red")
