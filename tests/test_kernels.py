"""The shared kernels against independent references: the Gaussian fit vs sklearn's LedoitWolf, the
nearest-neighbour search vs sklearn's NearestNeighbors, the feature extractor vs a plain loop, the one image
validator's two uint8 modes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from radlib.features import model_features
from radlib.gaussian import gaussian_fit, ledoit_wolf_shrinkage, shrunk_covariance
from radlib.images import check_images
from radlib.knn import chunked_topk, topk_dot, topk_euclidean
from radlib.models import build_model


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("n,d", [(60, 10), (8, 20)])  # N > D and a rank-deficient N < D
def test_gaussian_fit_is_sklearns_ledoit_wolf(n, d):
    from sklearn.covariance import LedoitWolf
    f = torch.randn(n, d, generator=_g(n), dtype=torch.float64) @ torch.randn(d, d, generator=_g(d), dtype=torch.float64)
    lw = LedoitWolf().fit(f.numpy())
    mean, precision, a = gaussian_fit(f)
    assert a == pytest.approx(lw.shrinkage_, rel=1e-8)
    np.testing.assert_allclose(mean.numpy(), lw.location_, rtol=1e-10)
    cov, _ = shrunk_covariance(f - mean)
    np.testing.assert_allclose(cov.numpy(), lw.covariance_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(precision.numpy(), lw.precision_, rtol=1e-5, atol=1e-8)


def test_fixed_shrinkage_and_bad_arguments():
    from sklearn.covariance import ShrunkCovariance
    f = torch.randn(30, 5, generator=_g(1), dtype=torch.float64)
    cov, a = shrunk_covariance(f - f.mean(0), 0.3)
    np.testing.assert_allclose(cov.numpy(), ShrunkCovariance(shrinkage=0.3).fit(f.numpy()).covariance_, rtol=1e-10)
    assert a == 0.3 and ledoit_wolf_shrinkage(torch.zeros(4, 3)) == 0.0
    with pytest.raises(ValueError, match=r"shrinkage must be 'ledoit_wolf' or a float in \[0, 1\], got 1.5"):
        gaussian_fit(f, 1.5)
    with pytest.raises(ValueError, match="shrinkage must be 'ledoit_wolf' or a float in \\[0, 1\\], got 'oas'"):
        gaussian_fit(f, "oas")
    with pytest.raises(ValueError, match="need at least 2 feature rows to fit, got 1"):
        gaussian_fit(f[:1])


@pytest.mark.parametrize("chunk", [1, 3, 7, 100])
def test_nearest_neighbour_search_is_sklearns(chunk):
    from sklearn.neighbors import NearestNeighbors
    bank, q = torch.randn(40, 6, generator=_g(2)), torch.randn(9, 6, generator=_g(3))
    ref = NearestNeighbors(n_neighbors=3).fit(bank.numpy()).kneighbors(q.numpy(), return_distance=False)
    idx = topk_euclidean(q, bank, 3, chunk)
    assert np.array_equal(np.sort(idx.numpy(), 1), np.sort(ref, 1))
    dots = q @ bank.T
    assert torch.equal(torch.sort(topk_dot(q, bank, 2, chunk), 1).values, torch.sort(dots.topk(2, 1).indices, 1).values)


def test_chunked_topk_keeps_the_best_across_chunks():
    vals = torch.tensor([[5.0, 1.0, 4.0, 9.0, 0.0, 7.0]])
    for chunk in (1, 2, 4, 6):
        assert chunked_topk(lambda s, e: vals[:, s:e], 6, 3, chunk).tolist() == [[3, 5, 0]]
        assert chunked_topk(lambda s, e: vals[:, s:e], 6, 2, chunk, largest=False).tolist() == [[4, 1]]


def test_one_feature_extractor_for_models_and_callables():
    model = build_model(image_size=16, num_transforms=4, width=4).train()
    x = torch.randint(0, 256, (7, 3, 16, 16), dtype=torch.uint8)
    f = model_features(model, x, "projection", batch_size=3)
    assert model.training  # the caller's mode is restored
    with torch.no_grad():
        ref = model.eval()(x.float() / 255).projection
    torch.testing.assert_close(f, ref)
    flat = model_features(lambda b: b * 2, x.float() / 255, batch_size=None)  # any extractor, flattened
    assert flat.shape == (7, 3 * 16 * 16)
    with pytest.raises(TypeError, match=r"the extractor must return a tensor or an object with \.features, got str"):
        model_features(lambda b: "no", x)
    with pytest.raises(ValueError, match="batch_size must be a positive int or None, got 0"):
        model_features(model, x, batch_size=0)


def test_the_image_validator_has_two_uint8_modes():
    u8 = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    assert check_images(u8, uint8="convert").dtype == torch.float32
    assert check_images(u8, uint8="accept") is u8
    with pytest.raises(TypeError, match=r"x must be a float tensor in \[0, 1\], got dtype torch.uint8 "
                                        r"\(convert uint8 images with radlib.data.to_float\)"):
        check_images(u8)
    with pytest.raises(ValueError, match=r"images must be images \(N, C, H, W\), got 3 dims \(3, 4, 4\)"):
        check_images(torch.zeros(3, 4, 4), "images")
    with pytest.raises(ValueError, match="train_images is empty"):
        check_images(torch.zeros(0, 3, 4, 4), "train_images", allow_empty=False)
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        check_images([1, 2])


def test_narrow_networks_stay_nchw_on_a_cpu():
    """oneDNN's AVX2 channels_last kernels corrupt the heap for 4-channel convolutions (RESULTS.md): narrow
    networks run NCHW on a CPU, the recipes' widths keep channels_last, CUDA always does."""
    from radlib.device import MIN_CPU_CHANNELS_LAST_WIDTH, uses_channels_last
    cpu, mkldnn = torch.device("cpu"), torch.backends.mkldnn.is_available()
    assert uses_channels_last(cpu, width=MIN_CPU_CHANNELS_LAST_WIDTH - 1) is False
    assert uses_channels_last(cpu, width=16) is mkldnn and uses_channels_last(cpu) is mkldnn
    assert uses_channels_last(torch.device("cuda"), width=4) is True
    assert uses_channels_last(cpu, enabled=False, width=64) is False
    from radlib.train import TrainStep, TrainConfig
    model = build_model(image_size=16, num_transforms=4, width=4)
    assert TrainStep(TrainConfig(method="csi", dataset="digits", image_size=16, width=4), model, None, None).channels_last is False


def test_float_batches_is_the_one_partition():
    """Every batched loop (evaluate, score_images, model_features, the score fits) walks the same rows: a naive
    loop over [0:bs], [bs:2bs], ... gives the same batches, uint8 converted to float in [0, 1]."""
    from radlib.images import float_batches

    images = torch.randint(0, 256, (7, 1, 3, 3), dtype=torch.uint8)
    got = list(float_batches(images, 3))
    assert [r for r, _ in got] == [slice(0, 3), slice(3, 6), slice(6, 9)]
    for (rows, batch), start in zip(got, (0, 3, 6)):
        assert torch.equal(batch, images[start:start + 3].float() / 255)
    assert torch.equal(torch.cat([b for _, b in float_batches(images.float() / 255, 100)]), images.float() / 255)
    with pytest.raises(ValueError, match="^batch_size must be a positive int, got 0$"):
        next(float_batches(images, 0))
