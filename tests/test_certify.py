"""Tests of radlib.certify: the pixel kNN score against sklearn, its bounds against a naive loop and against
random and adversarial perturbations, certified AUROC by hand, and the certificate check catching a cheat."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from sklearn.neighbors import NearestNeighbors

from radlib.attacks import attack_score
from radlib.certify import PixelKNNScore, certified_auroc, l2_radius, lipschitz_bounds
from radlib.checks import certificate_checks
from radlib.data import load
from radlib.images import to_float
from radlib.evaluate import AttackSpec, evaluate


@pytest.fixture(scope="module")
def digits():
    """Real handwritten digits (sklearn), 16 px grey, normal class 0: a few hundred images."""
    return load("digits", normal="0", image_size=16, seed=0)


@pytest.fixture(scope="module")
def knn(digits) -> PixelKNNScore:
    return PixelKNNScore.fit(digits.train.images, k=3)


def _naive_bounds(score: PixelKNNScore, images: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (image, training image) pair, one at a time, no pruning."""
    lows, ups = [], []
    for q in to_float(images).float().flatten(1):
        lo, hi = (q - eps).clamp(0, 1), (q + eps).clamp(0, 1)
        l_b, u_b = [], []
        for b in score.bank:
            gap = torch.where(b < lo, lo - b, torch.where(b > hi, b - hi, torch.zeros_like(b)))
            far = torch.where((b - lo).abs() > (hi - b).abs(), (b - lo).abs(), (hi - b).abs())
            l_b.append(float(gap.pow(2).sum().sqrt()))
            u_b.append(float(far.pow(2).sum().sqrt()))
        lows.append(np.mean(sorted(l_b)[:score.k]))
        ups.append(np.mean(sorted(u_b)[:score.k]))
    return torch.tensor(lows), torch.tensor(ups)


def test_score_equals_sklearn_knn(digits, knn):
    bank = to_float(digits.train.images).flatten(1).numpy()
    test = to_float(digits.test.images).flatten(1).numpy()
    dist, _ = NearestNeighbors(n_neighbors=3).fit(bank).kneighbors(test)
    ours = knn(digits.test.images).detach().numpy()
    np.testing.assert_allclose(ours, dist.mean(1), rtol=1e-4, atol=1e-4)
    small_chunks = PixelKNNScore.fit(digits.train.images, k=3, chunk_size=7)
    np.testing.assert_allclose(small_chunks(digits.test.images).detach().numpy(), ours, rtol=1e-5, atol=1e-5)
    assert knn.dims == digits.test.images[0].numel() and knn.name == "pixel_knn"


def test_score_detects_anomalies_and_is_differentiable(digits, knn):
    result = evaluate(knn, digits.test)
    assert result.clean_auroc > 90  # pixel distance separates a digit class from the others well
    x = to_float(digits.test.images[:4]).float().requires_grad_(True)
    knn(x).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all()) and float(x.grad.abs().sum()) > 0


@pytest.mark.parametrize("eps", [0.0, 2 / 255, 8 / 255, 64 / 255])
def test_bounds_equal_naive_loop(digits, knn, eps):
    """The candidate pruning changes nothing: bounds equal the all-pairs loop (small and huge eps)."""
    images = digits.test.images[:12]
    lo, up = knn.bounds(images, eps)
    lo_ref, up_ref = _naive_bounds(knn, images, eps)
    torch.testing.assert_close(lo, lo_ref.float(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(up, up_ref.float(), rtol=1e-4, atol=1e-4)
    tiny_blocks = knn.bounds(images, eps, block_values=1)
    torch.testing.assert_close(tiny_blocks[0], lo, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(tiny_blocks[1], up, rtol=1e-5, atol=1e-5)


def test_bounds_at_zero_eps_are_the_score(digits, knn):
    lo, up = knn.bounds(digits.test.images, 0.0)
    clean = knn(digits.test.images).detach()
    torch.testing.assert_close(lo, clean, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(up, clean, rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), eps=st.sampled_from([1 / 255, 4 / 255, 16 / 255]),
       kind=st.sampled_from(["uniform", "sign", "clip"]))
def test_bounds_contain_every_perturbed_score(digits, knn, seed, eps, kind):
    """Random points of the clipped eps-ball (inside, on its corners) all score inside [lower, upper]."""
    g = torch.Generator().manual_seed(seed)
    x = to_float(digits.test.images[:16]).float()
    if kind == "uniform":
        delta = (torch.rand(x.shape, generator=g) * 2 - 1) * eps
    elif kind == "sign":
        delta = torch.randint(0, 2, x.shape, generator=g).float().mul(2).sub(1) * eps
    else:  # push everything to the ball's corners toward black or white
        delta = torch.where(x > 0.5, eps, -eps) * torch.ones_like(x)
    xp = (x + delta).clamp(0, 1)
    s = knn(xp).detach()
    lo, up = knn.bounds(digits.test.images[:16], eps)
    assert bool((s >= lo - 1e-4).all()) and bool((s <= up + 1e-4).all())


def test_pgd_lands_between_certificate_and_clean(digits, knn):
    """The bound is sound against radlib's strongest attack, and not vacuous: PGD-20 stays above it."""
    eps = 8 / 255
    result = evaluate(knn, digits.test, attacks=[AttackSpec(eps=eps, steps=20)], seed=0)
    lo, up = knn.bounds(digits.test.images, eps)
    bound = certified_auroc(lo, up, digits.test.labels)
    robust = result.robust_auroc
    assert bound <= robust + 1e-6 <= result.clean_auroc + 1e-6
    assert bound > 50  # at this eps the pixel kNN keeps a real guarantee on digits
    # per image, too: every attacked score is inside its bounds
    attacked = torch.as_tensor(result.attacks[0].scores).float()
    assert bool((attacked >= lo - 1e-4).all()) and bool((attacked <= up + 1e-4).all())
    checks = certificate_checks(knn, digits.test.images, result)
    assert len(checks) == 1 and checks[0].passed, checks[0]
    assert checks[0].data["slack"] >= 0 and checks[0].data["certified"] == pytest.approx(bound)


def test_certificate_check_catches_an_attack_that_leaves_its_ball(digits, knn):
    """An 'attack' that quietly uses 6x the eps it reports breaks the certificate: the check fails loudly."""
    def cheating(score_fn, x, labels, *, eps, **kw):
        return attack_score(score_fn, x, labels, eps=6 * eps, **kw)

    spec = AttackSpec(eps=4 / 255, steps=10)
    result = evaluate(knn, digits.test, attacks=[spec], attack_fn=cheating, seed=0)
    (check,) = certificate_checks(knn, digits.test.images, result)
    assert not check.passed and "left its eps-ball" in check.detail
    assert "FAIL" in str(check)


def test_lipschitz_certificate_is_sound_and_looser(digits, knn):
    eps = 2 / 255
    result = evaluate(knn, digits.test, attacks=[AttackSpec(eps=eps, steps=10)], seed=0)
    lo_l, up_l = lipschitz_bounds(result.clean_scores, eps=eps, dims=knn.dims, lipschitz_l2=1.0)
    lo_e, up_e = knn.bounds(digits.test.images, eps)
    assert bool((lo_l <= lo_e.double() + 1e-4).all()) and bool((up_l >= up_e.double() - 1e-4).all())
    lip = certified_auroc(lo_l, up_l, digits.test.labels)
    exact = certified_auroc(lo_e, up_e, digits.test.labels)
    assert lip <= exact <= result.robust_auroc + 1e-6


def test_lipschitz_fallback_for_scores_without_bounds(digits):
    """A score with only ``lipschitz_l2`` (no ``bounds``) is certified by its Lipschitz bounds."""
    knn = PixelKNNScore.fit(digits.train.images, k=3)
    knn.bounds = None  # type: ignore[assignment]  # hide the exact bounds: the Lipschitz path is used
    result = evaluate(knn, digits.test, attacks=[AttackSpec(eps=1 / 255, steps=5)], seed=0)
    (check,) = certificate_checks(knn, digits.test.images, result)
    lo, up = lipschitz_bounds(result.clean_scores, eps=1 / 255, dims=knn.dims, lipschitz_l2=1.0)
    assert check.passed and check.data["certified"] == pytest.approx(certified_auroc(lo, up, digits.test.labels))


def test_certified_auroc_by_hand():
    labels = [0, 0, 1, 1]
    clean = [0.0, 1.0, 2.0, 3.0]
    # both: normals up to 1.5 and 2.5, anomalies down to 2.0 and 1.0 -> pairs (n, a) ranked correctly:
    # (1.5, 2.0) yes, (1.5, 1.0) no, (2.5, 2.0) no, (2.5, 1.0) no -> 1/4
    lower, upper = [0.0, 0.5, 2.0, 1.0], [1.5, 2.5, 2.5, 3.5]
    assert certified_auroc(lower, upper, labels) == pytest.approx(25.0)
    # in: normals at 1.5, 2.5; anomalies clean 2.0, 3.0 -> (1.5,2) (1.5,3) (2.5,3) yes, (2.5,2) no -> 3/4
    assert certified_auroc(lower, upper, labels, clean, mode="in") == pytest.approx(75.0)
    # out: normals clean 0, 1; anomalies at 2.0, 1.0 -> (0,2) (0,1) (1,2) yes, (1,1) tie 0.5 -> 3.5/4
    assert certified_auroc(lower, upper, labels, clean, mode="out") == pytest.approx(87.5)
    assert certified_auroc(clean, clean, labels) == pytest.approx(100.0)


def test_l2_radius_and_l2_bounds(digits, knn):
    assert l2_radius(0.5, "linf", 16) == pytest.approx(2.0)
    assert l2_radius(0.5, "l2", 16) == pytest.approx(0.5)
    lo, up = knn.bounds(digits.test.images[:5], 0.3, norm="l2")
    clean = knn(digits.test.images[:5]).detach()
    torch.testing.assert_close(up - clean, torch.full_like(clean, 0.3), rtol=1e-5, atol=1e-5)
    assert bool((lo >= 0).all())


def test_bad_inputs(digits, knn):
    with pytest.raises(ValueError, match="non-empty"):
        PixelKNNScore(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="k must be"):
        PixelKNNScore.fit(digits.train.images, k=10_000)
    with pytest.raises(ValueError, match="fitted on 3x16x16 images; got 1x8x8"):
        knn(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="fitted on 3x16x16 images; got 1x8x8"):
        knn.bounds(torch.rand(2, 1, 8, 8), 0.1)
    with pytest.raises(ValueError, match="values, the training bank"):  # built from a bank: no fitted shape
        PixelKNNScore(knn.bank)(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match="eps"):
        knn.bounds(digits.test.images[:2], -0.1)
    with pytest.raises(ValueError, match="norm"):
        knn.bounds(digits.test.images[:2], 0.1, norm="l1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps"):
        l2_radius(float("nan"), "linf", 3)
    with pytest.raises(ValueError, match="dims"):
        l2_radius(0.1, "linf", 0)
    with pytest.raises(ValueError, match="lower > upper"):
        certified_auroc([1.0, 0.0], [0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="clean_scores"):
        certified_auroc([0.0, 1.0], [0.0, 1.0], [0, 1], mode="in")
    with pytest.raises(ValueError, match="mode"):
        certified_auroc([0.0, 1.0], [0.0, 1.0], [0, 1], mode="sideways")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(N,\)"):
        certified_auroc([0.0, 1.0], [0.0, 1.0, 2.0], [0, 1])
    with pytest.raises(ValueError, match="lipschitz"):
        lipschitz_bounds([0.0], eps=0.1, dims=3, lipschitz_l2=-1.0)

    class Opaque:
        name = "opaque"

    result = evaluate(knn, digits.test)
    with pytest.raises(TypeError, match="nothing to certify"):
        certificate_checks(Opaque(), digits.test.images, result)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="images for a result"):
        certificate_checks(knn, digits.test.images[:3], result)


def test_masking_checks_include_the_certificate_for_bounded_scores(digits, knn):
    from radlib.checks import masking_checks

    checks = masking_checks(knn, digits.test, eps=4 / 255, steps=5, restarts=2, verbose=False)
    cert = [c for c in checks if c.name.endswith("respects the certificate")]
    assert len(cert) == 1 and cert[0].passed and "pgd-5" in cert[0].name.lower()
