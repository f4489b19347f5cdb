"""Tests of radlib.score.PatchKNNScore (PatchCore-style local kNN, max over positions) against a naive loop, and of
the reference rows every robust comparison stands beside (radlib.pipeline.reference_rows)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from radlib.attacks.engine import pgd
from radlib.models import ModelConfig, ResNet18AD
from radlib.score import KNNScore, PatchKNNScore, local_features


def tiny_model(seed: int = 0, size: int = 16) -> ResNet18AD:
    torch.manual_seed(seed)
    return ResNet18AD(ModelConfig(width=8, image_size=size, num_transforms=4)).eval()


def images(n: int, size: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def naive_patch_score(model, train, test, stage, k):
    """Per test image, per position: the mean of the k smallest cosine distances to every position of every training
    image (3x3-averaged stage features), then the max over positions; float64, explicit loops."""
    def local(x):
        with torch.no_grad():
            h = model.stem((x - model.mean) / model.std)
            for block in model.layers[:2 * stage]:
                h = block(h)
            h = F.avg_pool2d(h.double(), 3, stride=1, padding=1, count_include_pad=False)
        return h  # (N, d, h, w)
    ftr, fte = local(train), local(test)
    bank = [ftr[i, :, y, x] for i in range(ftr.shape[0]) for y in range(ftr.shape[2]) for x in range(ftr.shape[3])]
    out = []
    for n in range(fte.shape[0]):
        worst = -1.0
        for y in range(fte.shape[2]):
            for x in range(fte.shape[3]):
                q = fte[n, :, y, x]
                d = sorted(1 - float(q @ b / (q.norm() * b.norm())) for b in bank)
                worst = max(worst, sum(d[:k]) / k)
        out.append(worst)
    return np.array(out)


@pytest.mark.parametrize("stage, k", [(3, 1), (2, 2), (4, 1)])
def test_patch_score_matches_a_naive_loop(stage, k):
    model, train, test = tiny_model(), images(4, seed=1), images(3, seed=2)
    sc = PatchKNNScore.fit(model, train, stage=stage, k=k, batch_size=3, chunk_size=7)
    ref = naive_patch_score(model, train, test, stage, k)
    np.testing.assert_allclose(sc(test).detach().double().numpy(), ref, atol=1e-5)
    side = 16 // 2 ** (stage - 1)
    assert sc.bank.shape == (4 * side * side, 8 * 2 ** (stage - 1))
    assert sc.position_scores(test).shape == (3, side, side)


def test_stage_4_feature_map_pooled_is_the_global_feature():
    model, x = tiny_model(), images(5)
    with torch.no_grad():
        pooled = model.feature_map(x, 4).mean(dim=(2, 3))
        torch.testing.assert_close(pooled, model.encode(x))
        assert model.feature_map(x, 1).shape == (5, 8, 16, 16) and model.feature_map(x, 3).shape == (5, 32, 4, 4)


def test_a_defect_of_a_few_pixels_moves_the_patch_score_more_than_the_global_one():
    """The reason the patch score exists: one changed 3x3 corner of a 16 px image moves one position's feature a
    lot and the pooled feature a little, relative to how far normal images lie from each other."""
    model, train = tiny_model(), images(16, seed=1)
    clean = images(8, seed=3)
    defect = clean.clone()
    defect[:, :, 1:4, 1:4] = 1.0 - defect[:, :, 1:4, 1:4]
    patch, glob = PatchKNNScore.fit(model, train), KNNScore.fit(model, train)
    with torch.no_grad():
        rise = {name: float(((s(defect) - s(clean)) / s(clean).std()).mean()) for name, s in
                (("patch", patch), ("global", glob))}
    assert rise["patch"] > rise["global"] and rise["patch"] > 0, rise


def test_patch_score_is_differentiable_and_an_in_attack_raises_it():
    model, train, test = tiny_model(), images(6, seed=1), images(4, seed=2)
    sc = PatchKNNScore.fit(model, train)
    x = test.clone().requires_grad_(True)
    sc(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    adv = pgd(sc, test, eps=4 / 255, steps=5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (adv - test).abs().max() <= 4 / 255 + 1e-6
        assert (sc(adv) > sc(test)).all()


def test_max_bank_is_a_seeded_subset():
    model, train = tiny_model(), images(6, seed=1)
    full = PatchKNNScore.fit(model, train)
    a = PatchKNNScore.fit(model, train, max_bank=50, seed=3)
    b = PatchKNNScore.fit(model, train, max_bank=50, seed=3)
    c = PatchKNNScore.fit(model, train, max_bank=50, seed=4)
    assert a.bank.shape == (50, full.bank.shape[1]) and torch.equal(a.bank, b.bank) and not torch.equal(a.bank, c.bank)
    rows = {tuple(r.tolist()) for r in full.bank}
    assert all(tuple(r.tolist()) in rows for r in a.bank)
    assert PatchKNNScore.fit(model, train, max_bank=10 ** 6).bank.shape == full.bank.shape


def test_patch_score_bad_inputs():
    model, train = tiny_model(), images(3)
    with pytest.raises(ValueError, match=r"stage must be 1, 2, 3 or 4, got 5"):
        PatchKNNScore.fit(model, train, stage=5)
    with pytest.raises(ValueError, match=r"stage must be 1, 2, 3 or 4, got True"):
        model.feature_map(train, True)
    with pytest.raises(ValueError, match=r"k must be an int in \[1, 48\] \(bank rows\), got 49"):
        PatchKNNScore.fit(model, train, k=49)
    with pytest.raises(ValueError, match=r"max_bank must be None or a positive int, got 0"):
        PatchKNNScore.fit(model, train, max_bank=0)
    with pytest.raises(ValueError, match=r"bank must be a non-empty \(M, d\) tensor, got \(0, 32\)"):
        PatchKNNScore(model, torch.zeros(0, 32))
    with pytest.raises(TypeError, match="the patch score needs a radlib ResNet18AD"):
        local_features(torch.nn.Identity(), train)
    with pytest.raises(ValueError, match=r"expected \(N, 3, H, W\) images"):
        model.feature_map(torch.rand(2, 1, 16, 16))
