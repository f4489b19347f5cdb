"""Hostile inputs to the library API (report hostile-input-2026-12-04, "library API" cases): each case raises one
clear error naming the argument and the fix, or gives the right result. Case ids in brackets."""
from __future__ import annotations

import pytest
import torch

import radlib.purify as purify_module
import radlib.score.base as score_base
from radlib.attacks import attack_score
from radlib.certify import PixelKNNScore, l2_radius, lipschitz_bounds
from radlib.data import Split
from radlib.evaluate import evaluate
from radlib.models import ModelConfig, ResNet18AD
from radlib.pseudo_anomaly import ROTATION_POLICY
from radlib.purify import purify
from radlib.score import EnsembleScore, KNNScore, MahalanobisScore
from radlib.specs import AttackSpec

RANGE = r"must be float in \[0, 1\], got values in \[0\.\d+, 2\d\d\.?\d*\]: divide them by 255"
NONFINITE = r"contain NaN or inf values: images must be finite"
LABELS = r"labels must be 0 \(normal\) or 1 \(anomaly\), got other values such as \[0\.5\]"
META = r"cannot score on the meta device"


def images(n: int, c: int = 1, size: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed))


def mean_pixel(x: torch.Tensor) -> torch.Tensor:
    """A differentiable toy score: mean pixel value."""
    return x.flatten(1).mean(1)


X = images(6)
Y = torch.tensor([0, 0, 0, 1, 1, 1])


@pytest.fixture(scope="module")
def pixel_knn() -> PixelKNNScore:
    return PixelKNNScore.fit(images(8, seed=1), k=2)


@pytest.fixture(scope="module")
def model32() -> ResNet18AD:
    torch.manual_seed(0)
    return ResNet18AD(ModelConfig(width=4, image_size=32, num_transforms=4)).eval()


def _fit(kind: str, model: ResNet18AD, train: torch.Tensor):
    if kind == "knn":
        return KNNScore.fit(model, train, k=2)
    if kind == "mahalanobis":
        return MahalanobisScore.fit(model, train)
    if kind == "patch":
        from radlib.score import PatchKNNScore
        return PatchKNNScore.fit(model, train, max_bank=64)
    return EnsembleScore.fit(model, train, ROTATION_POLICY)


# ------------------------------------------------------------------------------------------ attack arguments
@pytest.mark.parametrize("norm, eps, match", [
    ("linf", 2.0, r"eps 2 is larger than the whole \[0, 1\] pixel range \(L-inf\): did you mean 2/255\?"),
    ("l2", 100.0, r"eps 100 is larger than the diagonal of the \[0, 1\] pixel cube of 16 values"),
])
def test_attack_score_refuses_eps_beyond_the_pixel_range(norm, eps, match):  # [A16]
    with pytest.raises(ValueError, match=match):
        attack_score(mean_pixel, X, Y, eps=eps, norm=norm)


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, r"steps must be an int >= 1, got 0 \(0 steps is random noise"),  # [A17]
    ({"alpha": 0.0}, r"alpha \(the PGD step size\) must be a finite number > 0 or None"),
])
def test_attack_score_checks_steps_and_alpha_as_attackspec_does(kwargs, match):  # [A17]
    with pytest.raises(ValueError, match=match):
        attack_score(mean_pixel, X, Y, eps=8 / 255, **kwargs)
    with pytest.raises(ValueError, match=match):
        AttackSpec(eps=8 / 255, **kwargs)


@pytest.mark.parametrize("alpha", [float("nan"), -1, "-1/255"])
def test_attackspec_bad_alpha_names_alpha(alpha):  # [A11]
    with pytest.raises(ValueError, match=r"^alpha .*must be a finite number > 0"):
        AttackSpec(eps=8 / 255, alpha=alpha)


@pytest.mark.parametrize("eps", ["8/255", torch.tensor(8 / 255, dtype=torch.float64)], ids=["str", "tensor"])
def test_eps_as_a_string_or_a_0dim_tensor_is_accepted(eps, pixel_knn):  # [A18, A19, A24]
    ref = attack_score(mean_pixel, X, Y, eps=8 / 255, steps=3, generator=torch.Generator().manual_seed(0))
    got = attack_score(mean_pixel, X, Y, eps=eps, steps=3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(got, ref)
    lo, hi = pixel_knn.bounds(X, eps)
    lo_ref, hi_ref = pixel_knn.bounds(X, 8 / 255)
    assert torch.equal(lo, lo_ref) and torch.equal(hi, hi_ref)
    assert l2_radius(eps, "linf", 16) == pytest.approx(8 / 255 * 4)
    assert torch.equal(lipschitz_bounds([1.0], eps=eps, dims=16, lipschitz_l2=1.0)[0],
                       lipschitz_bounds([1.0], eps=8 / 255, dims=16, lipschitz_l2=1.0)[0])
    assert AttackSpec(eps=eps).eps == 8 / 255


def test_certify_eps_follows_the_attack_rule(pixel_knn):  # [A16] for certify's eps
    with pytest.raises(ValueError, match=r"eps 2 is larger than the whole \[0, 1\] pixel range"):
        pixel_knn.bounds(X, 2.0)


# ------------------------------------------------------------------------------------------ pixel range
@pytest.mark.parametrize("call", ["evaluate", "score", "bounds", "fit"])
def test_float_images_in_0_255_are_refused(call, pixel_knn):  # [A5, A7, A23]
    x255 = X * 255
    with pytest.raises(ValueError, match=RANGE):
        if call == "evaluate":
            evaluate(pixel_knn, x255, Y)
        elif call == "score":
            pixel_knn(x255)
        elif call == "bounds":
            pixel_knn.bounds(x255, 4 / 255)
        else:
            PixelKNNScore.fit(x255)


def test_the_range_check_skips_inputs_that_require_grad(pixel_knn, monkeypatch):  # [A23] no sync on the hot path
    with pytest.raises(ValueError, match=RANGE):
        pixel_knn(X * 255)
    from radlib.attacks.square import square
    assert pixel_knn((X * 1.5).requires_grad_(True)).shape == (6,)  # an attack's iterate: no check, no sync
    calls = []
    monkeypatch.setattr(score_base, "check_pixel_range", lambda *a, **k: calls.append(a))
    attack_score(pixel_knn, X, Y, eps=8 / 255, steps=3, restarts=2, generator=torch.Generator().manual_seed(0))
    square(pixel_knn, X, eps=8 / 255, queries=5, generator=torch.Generator().manual_seed(0))
    assert calls == []  # neither the steps, the restarts' evaluations nor the queries check the range


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("call", ["evaluate", "score", "bounds"])
def test_nan_or_inf_images_are_refused(call, bad, pixel_knn):  # [A5, A22]
    x = X.clone()
    x[0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=NONFINITE):
        if call == "evaluate":
            evaluate(pixel_knn, x, Y)
        elif call == "score":
            pixel_knn(x)
        else:
            pixel_knn.bounds(x, 4 / 255)  # was ZeroDivisionError in certify.py


def test_purify_refuses_non_finite_images():  # [A25]
    split = Split(torch.full((30, 1, 4, 4), float("nan")), torch.zeros(30, dtype=torch.long),
                  torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match=r"training images " + NONFINITE):
        purify(split, keep=0.8)


# ------------------------------------------------------------------------------------------ labels
@pytest.mark.parametrize("call", ["evaluate", "attack_score"])
def test_fractional_labels_are_refused_before_the_cast(call):  # [A8, A20]
    y = torch.tensor([0, 0, 0.5, 1, 1, 1])
    with pytest.raises(ValueError, match=LABELS):
        if call == "evaluate":
            evaluate(mean_pixel, X, y)
        else:
            attack_score(mean_pixel, X, y, eps=8 / 255)


@pytest.mark.parametrize("call", ["evaluate", "attack_score"])
def test_labels_as_strings_get_a_type_error(call):  # [A9]
    y = ["0", "0", "0", "1", "1", "1"]
    with pytest.raises(TypeError, match=r"labels must be 0 \(normal\) or 1 \(anomaly\) numbers, got str values "
                                        r"such as '0'"):
        if call == "evaluate":
            evaluate(mean_pixel, X, y)
        else:
            attack_score(mean_pixel, X, y, eps=8 / 255)


# ------------------------------------------------------------------------------------------ shapes and dtypes
@pytest.mark.parametrize("size", [64, 5])
@pytest.mark.parametrize("kind", ["knn", "mahalanobis", "patch", "ensemble"])
def test_a_score_refuses_another_image_size_than_it_was_fitted_on(kind, size, model32):  # [A4]
    score = _fit(kind, model32, images(4, c=3, size=32))
    with pytest.raises(ValueError, match=rf"the score was fitted on 3x32x32 images; got 3x{size}x{size}"):
        score(images(2, c=3, size=size))
    assert score.input_shape == (3, 32, 32)


def test_one_channel_images_are_refused_before_the_augmentation(model32):  # [A3]
    score = EnsembleScore.fit(model32, images(4, c=3, size=32), ROTATION_POLICY)  # K = 4: the batch grows 4x
    with pytest.raises(ValueError, match=r"fitted on 3x32x32 images; got 1x32x32 \(8 images of shape"):
        score(images(8, c=1, size=32))


def test_float64_images_are_scored_and_attacked_in_float32(model32):  # [A2, A21]
    x = images(4, c=3, size=32)
    score = KNNScore.fit(model32, x.double(), k=2)  # fit on float64 too
    ref = KNNScore.fit(model32, x, k=2)
    assert torch.equal(score.bank, ref.bank)
    assert torch.equal(score(x.double()), score(x))
    conv = torch.nn.Sequential(torch.nn.Conv2d(3, 2, 3), torch.nn.Flatten(), torch.nn.LazyLinear(1),
                               torch.nn.Flatten(0))
    conv(x)  # materialise the lazy layer in float32
    y = torch.tensor([0, 0, 1, 1])
    adv64 = attack_score(conv, x.double(), y, eps=8 / 255, steps=2, generator=torch.Generator().manual_seed(0))
    adv32 = attack_score(conv, x, y, eps=8 / 255, steps=2, generator=torch.Generator().manual_seed(0))
    assert adv64.dtype == torch.float64 and torch.equal(adv64.float(), adv32)


# ------------------------------------------------------------------------------------------ devices, gradients
@pytest.mark.parametrize("call", ["score", "evaluate images", "evaluate device", "attack_score", "score.to"])
def test_the_meta_device_is_refused_clearly(call, pixel_knn):  # [A12]
    with pytest.raises(ValueError, match=META):
        if call == "score":
            pixel_knn(X.to("meta"))
        elif call == "evaluate images":
            evaluate(pixel_knn, X.to("meta"), Y)
        elif call == "evaluate device":
            evaluate(pixel_knn, X, Y, device="meta")
        elif call == "attack_score":
            attack_score(mean_pixel, X.to("meta"), Y, eps=8 / 255)
        else:
            PixelKNNScore.fit(images(4, seed=1)).to("meta")


@pytest.mark.parametrize("method", ["pgd", "apgd"])
def test_a_non_differentiable_score_is_named_as_such(method):  # [A14]
    with pytest.raises(ValueError, match=r"^the score is not differentiable in its input: attacks need a score "
                                         r"whose output requires grad \(e\.g\. "):
        attack_score(lambda x: mean_pixel(x).detach(), X, Y, eps=8 / 255, steps=2, method=method)


# ------------------------------------------------------------------------------------------ purify
def test_purify_keep_too_small_names_keep_before_any_work(monkeypatch):  # [V5]
    def no_work(*args, **kwargs):
        raise AssertionError("purify started scoring before checking keep")
    monkeypatch.setattr(purify_module, "split_subsets", no_work)
    monkeypatch.setattr(purify_module.PixelKNNScore, "fit", no_work)
    split = Split((images(30) * 255).to(torch.uint8), torch.zeros(30, dtype=torch.long),
                  torch.zeros(30, dtype=torch.long))
    with pytest.raises(ValueError, match=r"^keep=0\.01 keeps 1 of the 30 training images, and the detector trained "
                                         r"on the kept images needs at least 2: raise keep to at least 0\.07$"):
        purify(split, keep=0.01)
