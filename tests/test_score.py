"""Tests of radlib.score against independent references (naive loops, sklearn, scipy)."""
from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from radlib.device import make_generator
from radlib.models import ModelConfig, ResNet18AD
from radlib.score import (AnomalyScore, EnsembleScore, KNNScore, MahalanobisScore, eval_mode, knn_distance,
                          max_cosine, model_features, score_images)

try:  # the real policies; a local stand-in keeps these tests independent of that module
    from radlib.pseudo_anomaly import CUTPASTE_POLICY, ROTATION_POLICY
except ImportError:  # pragma: no cover - only before pseudo_anomaly.py exists
    class _Rot:
        K = 4

        def expand(self, x, generator=None):
            n = x.shape[0]
            return torch.cat([torch.rot90(x, k, (2, 3)) for k in range(4)]), torch.arange(4).repeat_interleave(n)

    class _Patch:
        K = 2

        def expand(self, x, generator=None):
            n, _, h, w = x.shape
            pos = torch.randint(0, h - 4, (n, 2), generator=generator)
            yy = torch.arange(h).view(1, h, 1)
            xx = torch.arange(w).view(1, 1, w)
            m = ((yy >= pos[:, :1, None]) & (yy < pos[:, :1, None] + 4) & (xx >= pos[:, 1:, None])
                 & (xx < pos[:, 1:, None] + 4)).unsqueeze(1)
            return torch.cat([x, torch.where(m, 1 - x, x)]), torch.arange(2).repeat_interleave(n)

    ROTATION_POLICY, CUTPASTE_POLICY = _Rot(), _Patch()

from radlib.augment import horizontal_flip, random_resized_crop  # noqa: E402

CROP = functools.partial(random_resized_crop, scale=(0.54, 0.54))


def tiny_model(K: int = 4, size: int = 16, seed: int = 0) -> ResNet18AD:
    torch.manual_seed(seed)
    m = ResNet18AD(ModelConfig(width=8, image_size=size, num_transforms=K))
    with torch.no_grad():  # positive mean logits keep w_cls = 1/mean well conditioned
        m.transform_head.bias.fill_(2.0)
    return m.eval()


def images(n: int, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------ naive reference
def naive_features(model, policy, x, samples, augment, pre_augment, seed):
    """Per image, per chunk: sample-averaged projection and correct-transform logit, with explicit loops."""
    K, n = policy.K, x.shape[0]
    P = [[None] * n for _ in range(K)]
    L = [[0.0] * n for _ in range(K)]
    for s in range(samples):
        g = make_generator(seed + s)
        xs = pre_augment(x, generator=g) if pre_augment else x
        xe, _ = policy.expand(xs, generator=g)
        if augment:
            xe = augment(xe, generator=g)
        with torch.no_grad():
            out = model.eval()(xe)
        for k in range(K):
            for i in range(n):
                p = out.projection[k * n + i].double() / samples
                P[k][i] = p if P[k][i] is None else P[k][i] + p
                L[k][i] += float(out.logits[k * n + i, k]) / samples
    return P, L


def naive_ensemble(model, policy, train, test, samples=1, augment=None, pre_augment=None, seed=0):
    K = policy.K
    Ptr, Ltr = naive_features(model, policy, train, samples, augment, pre_augment, seed)
    Pte, Lte = naive_features(model, policy, test, samples, augment, pre_augment, seed)
    M = train.shape[0]
    w_sim = [1.0 / (sum(float(Ptr[k][m].norm()) for m in range(M)) / M) for k in range(K)]
    w_cls = [1.0 / (sum(Ltr[k]) / M) for k in range(K)]
    out = []
    for i in range(test.shape[0]):
        total = 0.0
        for k in range(K):
            q = Pte[k][i]
            best = -float("inf")
            for m in range(M):
                a = Ptr[k][m]
                cos = float(q @ a) / (float(q.norm()) * float(a.norm()))
                best = max(best, cos * float(q.norm()))  # CSI: <p(x), p(x_m)/||p(x_m)||>
            total += w_sim[k] * best + w_cls[k] * Lte[k][i]
        out.append(-total / K)
    return torch.tensor(out, dtype=torch.float64), w_sim, w_cls


# ------------------------------------------------------------------------------------ ensemble
@pytest.mark.parametrize("samples,use_aug", [(1, False), (3, True)])
def test_ensemble_matches_naive_reference(samples, use_aug):
    model = tiny_model()
    train, test = images(10, seed=1), images(5, seed=2)
    aug, pre = (CROP, horizontal_flip) if use_aug else (None, None)
    sc = EnsembleScore.fit(model, train, ROTATION_POLICY, batch_size=64, samples=samples, augment=aug,
                           pre_augment=pre, seed=3, weighting="official")
    ref, w_sim, w_cls = naive_ensemble(model, ROTATION_POLICY, train, test, samples, aug, pre, seed=3)
    torch.testing.assert_close(sc.weight_sim.double(), torch.tensor(w_sim, dtype=torch.float64), rtol=1e-5,
                               atol=1e-6)
    torch.testing.assert_close(sc.weight_cls.double(), torch.tensor(w_cls, dtype=torch.float64), rtol=1e-5,
                               atol=1e-6)
    got = sc(test).detach().double()
    assert got.shape == (5,) and got.dtype == torch.float64
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)


def test_ensemble_k2_random_policy_matches_reference_and_is_deterministic():
    model = tiny_model(K=2, size=16)
    train, test = images(8, 16, seed=4), images(6, 16, seed=5)
    sc = EnsembleScore.fit(model, train, CUTPASTE_POLICY, batch_size=64, samples=2, augment=CROP, seed=11,
                           weighting="official")
    # the score places scars from the generator alone (Policy.for_scoring), so that is the reference
    ref, _, _ = naive_ensemble(model, CUTPASTE_POLICY.for_scoring(), train, test, samples=2, augment=CROP, seed=11)
    rng = torch.get_rng_state()
    a, b = sc(test), sc(test)
    assert torch.equal(a, b), "same call twice must give identical scores (seeded transforms)"
    assert torch.equal(rng, torch.get_rng_state()), "the score must not touch the global RNG"
    torch.testing.assert_close(a.detach().double(), ref, rtol=0, atol=1e-5)
    other = EnsembleScore(model, CUTPASTE_POLICY, sc.axis, sc.weight_sim, sc.weight_cls, samples=2, augment=CROP,
                          seed=12)
    assert not torch.equal(other(test), a), "a different seed should draw different pseudo-anomalies"


def test_standardized_weighting_matches_naive_reference():
    """radlib's default: each term standardised over the training set (similarity leave-one-out)."""
    model = tiny_model()
    train, test = images(9, seed=1), images(5, seed=2)
    sc = EnsembleScore.fit(model, train, ROTATION_POLICY, weighting="standardized", chunk_size=4)
    Ptr, Ltr = naive_features(model, ROTATION_POLICY, train, 1, None, None, 0)
    Pte, Lte = naive_features(model, ROTATION_POLICY, test, 1, None, None, 0)
    K, M = ROTATION_POLICY.K, train.shape[0]

    def nearest(q, bank, skip=None):
        return max(float(q @ a) / float(a.norm()) for j, a in enumerate(bank) if j != skip)

    ref = []
    for i in range(test.shape[0]):
        total = 0.0
        for k in range(K):
            s_tr = torch.tensor([nearest(Ptr[k][m], Ptr[k], skip=m) for m in range(M)], dtype=torch.float64)
            l_tr = torch.tensor(Ltr[k], dtype=torch.float64)
            total += (nearest(Pte[k][i], Ptr[k]) - s_tr.mean()) / s_tr.std() + (Lte[k][i] - l_tr.mean()) / l_tr.std()
        ref.append(-total / K)
    torch.testing.assert_close(sc(test).detach().double(), torch.tensor(ref, dtype=torch.float64), rtol=0, atol=1e-4)
    # on the training images themselves the standardised score is centred (self-matches aside)
    assert sc.weighting == "standardized" and sc.offset.shape == (K,)
    with pytest.raises(ValueError, match="weighting"):
        EnsembleScore.fit(model, train, ROTATION_POLICY, weighting="magic")


def test_use_head_false_drops_the_classification_term():
    model = tiny_model()
    train, test = images(9, seed=1), images(5, seed=2)
    with_head = EnsembleScore.fit(model, train, ROTATION_POLICY)
    no_head = EnsembleScore.fit(model, train, ROTATION_POLICY, use_head=False)
    assert torch.all(no_head.weight_cls == 0)
    torch.testing.assert_close(no_head.weight_sim, with_head.weight_sim)
    with torch.no_grad():
        p, _ = no_head.chunk_features(test)
        idx = (torch.nn.functional.normalize(p, dim=2) @ no_head.axis.transpose(1, 2)).argmax(2)
        sim = torch.stack([(p[k] * no_head.axis[k][idx[k]]).sum(-1) for k in range(p.shape[0])])
        want = -(no_head.weight_sim[:, None] * sim + no_head.offset[:, None]).mean(0)
        torch.testing.assert_close(no_head(test), want, rtol=1e-5, atol=1e-5)


def test_chunked_max_equals_unchunked():
    model = tiny_model()
    train, test = images(13, seed=6), images(4, seed=7)
    base = EnsembleScore.fit(model, train, ROTATION_POLICY, chunk_size=4096)
    want = base(test)
    for cs in (1, 3, 5, 13):
        sc = EnsembleScore(model, ROTATION_POLICY, base.axis, base.weight_sim, base.weight_cls, offset=base.offset,
                           chunk_size=cs)
        assert torch.equal(sc(test), want)


def test_ensemble_is_differentiable():
    model = tiny_model()
    sc = EnsembleScore.fit(model, images(8), ROTATION_POLICY)
    x = (images(4, seed=9) * 0.9 + 0.05).requires_grad_(True)  # x +- d stays in [0, 1], which scores require
    sc(x).sum().backward()
    g = x.grad
    assert g is not None and torch.isfinite(g).all()
    assert (g.flatten(1).abs().amax(1) > 0).all()
    # the gradient matches a finite difference along a random direction
    d = torch.randn_like(x) * 1e-3
    with torch.no_grad():
        fd = (sc(x + d).double().sum() - sc(x - d).double().sum()) / 2
    assert abs(float(fd) - float((g * d).sum())) < 0.1 * abs(float(fd)) + 1e-4


def test_model_mode_restored_and_eval_used():
    model = tiny_model()
    model.train()
    model.layers[0].eval()  # a mixed state must come back exactly
    sc = EnsembleScore.fit(model, images(6), ROTATION_POLICY)
    s_train_mode = sc(images(3, seed=3))
    assert model.training and not model.layers[0].training and model.layers[1].training
    model.eval()
    assert torch.equal(sc(images(3, seed=3)), s_train_mode)


def test_ensemble_bad_inputs():
    model = tiny_model()
    with pytest.raises(TypeError, match="policy"):
        EnsembleScore.fit(model, images(4), object())
    with pytest.raises(ValueError, match="samples"):
        EnsembleScore.fit(model, images(4), ROTATION_POLICY, samples=0)
    with pytest.raises(ValueError, match="chunk_size"):
        EnsembleScore.fit(model, images(4), ROTATION_POLICY, chunk_size=0)
    with pytest.raises(ValueError, match="train_images"):
        EnsembleScore.fit(model, torch.rand(3, 16, 16), ROTATION_POLICY)
    sc = EnsembleScore.fit(model, images(4), ROTATION_POLICY)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        sc(torch.rand(3, 16, 16))
    with pytest.raises(TypeError):
        sc([1, 2, 3])
    with pytest.raises(TypeError, match="nn.Module"):
        KNNScore("model", torch.rand(3, 4))


def test_ensemble_warns_on_nonpositive_mean_logit():
    model = tiny_model()
    with torch.no_grad():
        model.transform_head.bias.fill_(-5.0)
    with pytest.warns(RuntimeWarning, match="mean training logit"):
        EnsembleScore.fit(model, images(4), ROTATION_POLICY, weighting="official")


def test_uint8_input_and_score_images():
    model = tiny_model()
    sc = EnsembleScore.fit(model, images(6), ROTATION_POLICY)
    u8 = (images(7, seed=8) * 255).round().to(torch.uint8)
    direct = sc(u8.float() / 255)
    for bs in (1, 3, 64):
        got = score_images(sc, u8, batch_size=bs)
        assert got.device.type == "cpu" and got.dtype == torch.float32 and got.shape == (7,)
        torch.testing.assert_close(got, direct.detach(), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="batch_size"):
        score_images(sc, u8, batch_size=0)
    assert isinstance(sc, AnomalyScore) and sc.name == "ensemble" and sc.to("cpu") is sc


# ------------------------------------------------------------------------------------ pure helpers
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 20), d=st.integers(1, 8), cs=st.integers(1, 25),
       seed=st.integers(0, 10_000))
def test_max_cosine_matches_brute_force(n, m, d, cs, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(m, d, generator=g, dtype=torch.float64)
    got = max_cosine(q, b, chunk_size=cs)
    want = (F.normalize(q, dim=1) @ F.normalize(b, dim=1).T).max(dim=1).values
    torch.testing.assert_close(got, want)
    (g1,) = torch.autograd.grad(got.sum(), q)
    (g2,) = torch.autograd.grad(want.sum(), q)
    torch.testing.assert_close(g1, g2)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 20), d=st.integers(2, 8), cs=st.integers(1, 25),
       data=st.data())
def test_knn_distance_matches_sklearn(n, m, d, cs, data):
    from sklearn.neighbors import NearestNeighbors

    k = data.draw(st.integers(1, m))
    seed = data.draw(st.integers(0, 10_000))
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = torch.randn(m, d, generator=g, dtype=torch.float64)
    dist, _ = NearestNeighbors(n_neighbors=k, metric="cosine", algorithm="brute").fit(b.numpy()).kneighbors(q.numpy())
    got = knn_distance(q, b, k, chunk_size=cs)
    np.testing.assert_allclose(got.numpy(), dist.mean(axis=1), atol=1e-10)


def test_the_cpu_chunk_cap_bounds_the_block_and_changes_no_result(monkeypatch):
    import radlib.knn as knn
    from radlib.knn import rows_per_chunk
    assert rows_per_chunk(2048, 4096, torch.device("cpu")) == 2 ** 20 // 2048 == 512  # the patch score's PGD block
    assert rows_per_chunk(10, 4096, torch.device("cpu")) == 4096  # small blocks keep the asked chunk
    assert rows_per_chunk(2 ** 21, 4096, torch.device("cpu")) == 1  # at least one row
    assert rows_per_chunk(2048, 4096, torch.device("cuda")) == 4096  # GPUs: as asked (no device needed to say so)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(40, 6, generator=g, dtype=torch.float64)
    b = torch.randn(300, 6, generator=g, dtype=torch.float64)
    free = (max_cosine(q, b, chunk_size=4096), knn_distance(q, b, 3, chunk_size=4096))
    seen = []
    real = knn.chunked_topk
    monkeypatch.setattr(knn, "CPU_BLOCK_ELEMENTS", 40 * 7)  # 7 rows a chunk for 40 queries
    monkeypatch.setattr(knn, "chunked_topk", lambda *a, **k: seen.append(a[3]) or real(*a, **k))
    capped = (max_cosine(q, b, chunk_size=4096), knn_distance(q, b, 3, chunk_size=4096))
    assert seen == [7]
    want = (F.normalize(q, dim=1) @ F.normalize(b, dim=1).T).max(dim=1).values
    torch.testing.assert_close(capped[0], want)
    torch.testing.assert_close(capped[0], free[0], rtol=0, atol=0)
    torch.testing.assert_close(capped[1], free[1], rtol=0, atol=0)


def test_pure_helpers_bad_inputs():
    q, b = torch.randn(3, 4), torch.randn(5, 4)
    with pytest.raises(ValueError, match="k must be"):
        knn_distance(q, b, 6)
    with pytest.raises(ValueError, match="k must be"):
        knn_distance(q, b, 0)
    with pytest.raises(ValueError, match="feature sizes"):
        max_cosine(q, torch.randn(5, 3))
    with pytest.raises(ValueError, match="empty"):
        max_cosine(q, torch.randn(0, 4))
    with pytest.raises(ValueError, match="2-D"):
        knn_distance(q[0], b, 1)
    with pytest.raises(ValueError, match="chunk_size"):
        max_cosine(q, b, chunk_size=0)


# ------------------------------------------------------------------------------------ kNN / Mahalanobis
@pytest.mark.parametrize("feature", ["features", "projection"])
def test_knn_score_matches_sklearn(feature):
    from sklearn.neighbors import NearestNeighbors

    model = tiny_model()
    train, test = images(12, seed=1), images(5, seed=2)
    sc = KNNScore.fit(model, train, k=3, feature=feature, batch_size=5)
    ftr = model_features(model, train, feature).double().numpy()
    fte = model_features(model, test, feature).double().numpy()
    dist, _ = NearestNeighbors(n_neighbors=3, metric="cosine").fit(ftr).kneighbors(fte)
    got = sc(test)
    np.testing.assert_allclose(got.detach().numpy(), dist.mean(1), atol=1e-5)
    x = test.clone().requires_grad_(True)
    sc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="k must be"):
        KNNScore.fit(model, train, k=13)
    with pytest.raises(ValueError, match="feature"):
        KNNScore.fit(model, train, feature="logits")


def test_mahalanobis_matches_sklearn_and_scipy():
    from scipy.spatial.distance import mahalanobis
    from sklearn.covariance import LedoitWolf, ShrunkCovariance

    model = tiny_model()
    train, test = images(40, seed=1), images(5, seed=2)
    ftr = model_features(model, train).double().numpy()
    fte = model_features(model, test).double().numpy()
    for shrink, est in (("ledoit_wolf", LedoitWolf()), (0.3, ShrunkCovariance(shrinkage=0.3))):
        sc = MahalanobisScore.fit(model, train, shrinkage=shrink, batch_size=16)
        est.fit(ftr)
        want = np.array([mahalanobis(f, est.location_, est.precision_) for f in fte])
        got = sc(test).detach().double().numpy()
        np.testing.assert_allclose(got, want, rtol=1e-3)
        if shrink == "ledoit_wolf":
            assert abs(sc.shrinkage_used - est.shrinkage_) < 1e-9
    x = test.clone().requires_grad_(True)
    sc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="shrinkage"):
        MahalanobisScore.fit(model, train, shrinkage=1.5)
    with pytest.raises(ValueError, match="shrinkage"):
        MahalanobisScore.fit(model, train, shrinkage="oas")
    with pytest.raises(ValueError, match="at least 2"):
        MahalanobisScore.fit(model, train[:1])


def test_eval_mode_context_restores():
    model = tiny_model()
    model.train()
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert all(m.training for m in model.modules())
