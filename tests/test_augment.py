"""Tests for radlib.augment: per-sample parameters, exactness of flips/greyscale, identity limits, colour maths
against colorsys / torchvision's functional ops, seed determinism, range property and bad inputs."""
from __future__ import annotations

import colorsys

import pytest
import torch
import torchvision.transforms.functional as TF
from hypothesis import given, settings
from hypothesis import strategies as st

from radlib import augment as A


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(8, 3, 32, 32, generator=gen(0))


@pytest.fixture
def same() -> torch.Tensor:
    """16 copies of one image: any difference between outputs comes from per-sample parameters."""
    return torch.rand(1, 3, 32, 32, generator=gen(1)).repeat(16, 1, 1, 1)


OPS = {
    "flip": lambda x, g: A.horizontal_flip(x, g),
    "crop": lambda x, g: A.random_resized_crop(x, g),
    "jitter": lambda x, g: A.color_jitter(x, g),
    "grey": lambda x, g: A.random_grayscale(x, g),
    "simclr": lambda x, g: A.SimCLRAugment()(x, g),
    "simclr_nocrop": lambda x, g: A.SimCLRAugment(crop=False, strength=2.0)(x, g),
}


@pytest.mark.parametrize("op", OPS)
def test_shape_dtype_device_range(op: str, x: torch.Tensor) -> None:
    y = OPS[op](x, gen(2))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


@pytest.mark.parametrize("op", OPS)
def test_seed_determinism(op: str, x: torch.Tensor) -> None:
    assert torch.equal(OPS[op](x, gen(3)), OPS[op](x, gen(3)))
    assert not torch.equal(OPS[op](x, gen(3)), OPS[op](x, gen(4)))


@pytest.mark.parametrize("op", ["flip", "crop", "jitter", "grey", "simclr"])
def test_parameters_are_per_sample(op: str, same: torch.Tensor) -> None:
    y = OPS[op](same, gen(5))
    distinct = {tuple(y[i].flatten()[::97].tolist()) for i in range(y.shape[0])}
    assert len(distinct) >= 2                          # not one draw for the whole batch
    if op in ("crop", "jitter", "simclr"):
        assert len(distinct) >= 8


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), c=st.sampled_from([1, 3]), size=st.sampled_from([8, 13, 16]),
       fill=st.sampled_from(["rand", "zeros", "ones", "binary"]), strength=st.floats(0.0, 3.0))
def test_range_property(seed: int, c: int, size: int, fill: str, strength: float) -> None:
    g = gen(seed)
    shape = (4, c, size, size)
    x = {"rand": torch.rand(shape, generator=g), "zeros": torch.zeros(shape), "ones": torch.ones(shape),
         "binary": (torch.rand(shape, generator=g) > 0.5).float()}[fill]
    y = A.SimCLRAugment(strength=strength)(x, g)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


# ------------------------------------------------------------------------------------------------- flips
def test_flip_is_exact_and_mixed(x: torch.Tensor) -> None:
    xs = x.repeat(2, 1, 1, 1)
    y = A.horizontal_flip(xs, gen(6))
    flipped = [torch.equal(y[i], xs[i].flip(-1)) for i in range(16)]
    kept = [torch.equal(y[i], xs[i]) for i in range(16)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)
    assert torch.equal(A.horizontal_flip(x, gen(6), p=1.0), x.flip(-1))
    assert torch.equal(A.horizontal_flip(x, gen(6), p=0.0), x)


# ---------------------------------------------------------------------------------------------- greyscale
def test_grayscale_equal_channels_and_luma(x: torch.Tensor) -> None:
    y = A.random_grayscale(x, gen(7), p=1.0)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]   # ITU-R 601-2
    assert torch.allclose(y[:, 0], luma, atol=1e-6)
    assert torch.allclose(y, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-3)  # tv uses 0.2989
    assert torch.equal(A.random_grayscale(x, gen(7), p=0.0), x)
    one = torch.rand(4, 1, 8, 8, generator=gen(8))
    assert torch.equal(A.random_grayscale(one, gen(7), p=1.0), one)
    mixed = A.random_grayscale(x.repeat(4, 1, 1, 1), gen(9), p=0.5)
    grey = [bool(torch.equal(m[0], m[1]) and torch.equal(m[1], m[2])) for m in mixed]
    assert any(grey) and not all(grey)


# ------------------------------------------------------------------------------------------------- crop
def test_full_crop_is_identity(x: torch.Tensor) -> None:
    y = A.random_resized_crop(x, gen(10), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(y, x, atol=1e-5)


def test_crop_of_a_ramp_is_an_increasing_sub_ramp() -> None:
    ramp = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(8, 3, 32, 32).contiguous()
    y = A.random_resized_crop(ramp, gen(11), scale=(0.1, 0.5))
    d = y[..., 1:] - y[..., :-1]
    assert (d >= -1e-6).all()                          # still increasing left-to-right (no flip in crop)
    span = y[..., -1] - y[..., 0]
    assert (span < 1.0).all()                          # a zoom into part of the ramp
    assert torch.allclose(y[:, :, 0], y[:, :, -1], atol=1e-6)  # rows identical (ramp is constant in y)


def test_crop_fallback_when_nothing_fits() -> None:
    wide = torch.rand(4, 3, 8, 32, generator=gen(12))
    # ratio 0.25 (tall) at full area never fits an 8x32 image: falls back to a centred box, stays in range
    y = A.random_resized_crop(wide, gen(13), scale=(1.0, 1.0), ratio=(0.25, 0.25))
    assert y.shape == wide.shape and float(y.min()) >= 0 and float(y.max()) <= 1


# ------------------------------------------------------------------------------------------------ colour
def test_hsv_matches_colorsys() -> None:
    x = torch.rand(1, 3, 5, 5, generator=gen(14), dtype=torch.float64)
    x[0, :, 0, 0] = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)   # grey pixel
    x[0, :, 0, 1] = 0.0                                                  # black pixel
    hsv = A.rgb_to_hsv(x)
    for i in range(5):
        for j in range(5):
            ref = colorsys.rgb_to_hsv(*x[0, :, i, j].tolist())
            assert torch.allclose(hsv[0, :, i, j], torch.tensor(ref, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(A.hsv_to_rgb(hsv), x, atol=1e-12)


@pytest.mark.parametrize("shift", [0.05, -0.2, 0.5])
def test_hue_matches_torchvision(x: torch.Tensor, shift: float) -> None:
    y = A.adjust_hue(x, torch.full((8,), shift))
    assert torch.allclose(y, TF.adjust_hue(x, shift), atol=1e-5)


@pytest.mark.parametrize("c", [1, 3])
def test_brightness_contrast_saturation_match_torchvision(c: int) -> None:
    x = torch.rand(3, c, 16, 16, generator=gen(15))
    f = torch.tensor([0.6, 1.0, 1.4])
    b = A.adjust_brightness(x, f)
    ct = A.adjust_contrast(x, f)
    s = A.adjust_saturation(x, f)
    tol = 1e-6 if c == 1 else 5e-4   # torchvision's luma uses 0.2989 for red, radlib 0.299 (ITU-R 601-2)
    for i in range(3):
        assert torch.allclose(b[i], TF.adjust_brightness(x[i], float(f[i])), atol=1e-6)
        assert torch.allclose(ct[i], TF.adjust_contrast(x[i], float(f[i])), atol=tol)
        if c == 3:
            assert torch.allclose(s[i], TF.adjust_saturation(x[i], float(f[i])), atol=tol)
    if c == 1:
        assert torch.equal(s, x)


def test_jitter_p_zero_and_zero_strength_are_identity(x: torch.Tensor) -> None:
    assert torch.allclose(A.color_jitter(x, gen(16), p=0.0), x, atol=1e-6)
    assert torch.equal(A.color_jitter(x, gen(16), 0.0, 0.0, 0.0, 0.0), x)
    one = torch.rand(4, 1, 16, 16, generator=gen(17))
    y = A.color_jitter(one, gen(18), p=1.0)
    assert y.shape == one.shape and not torch.equal(y, one)


def test_jitter_factors_stay_in_their_ranges(same: torch.Tensor) -> None:
    grey_img = torch.full((16, 3, 4, 4), 0.5)
    y = A.color_jitter(grey_img, gen(19), brightness=0.4, contrast=0.0, saturation=0.0, hue=0.0, p=1.0)
    factors = y[:, 0, 0, 0] / 0.5
    assert (factors >= 0.6 - 1e-6).all() and (factors <= 1.4 + 1e-6).all()
    assert factors.std() > 0.05


# -------------------------------------------------------------------------------------------- composition
def test_simclr_augment_settings_and_identity(x: torch.Tensor) -> None:
    aug = A.SimCLRAugment()
    assert aug.jitter == (0.4, 0.4, 0.4, 0.1) and aug.jitter_p == 0.8 and aug.grayscale_p == 0.2
    assert aug.crop_scale == (0.08, 1.0) and aug.flip_p == 0.0  # the official simclr_aug: the flip comes first
    assert A.SimCLRAugment.for_resolution(32).crop and not A.SimCLRAugment.for_resolution(224).crop
    off = A.SimCLRAugment(crop=False, strength=0.0, flip_p=0.0, grayscale_p=0.0)
    assert torch.equal(off(x, gen(20)), x)


def test_two_views_differ_and_are_seeded(x: torch.Tensor) -> None:
    v1, v2 = A.two_views(x, gen(21))
    assert v1.shape == x.shape == v2.shape
    assert not torch.equal(v1, v2)
    w1, w2 = A.two_views(x, gen(21))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)
    f1, f2 = A.two_views(x, gen(22), augment=lambda im, g: A.horizontal_flip(im, g, p=1.0))
    assert torch.equal(f1, x.flip(-1)) and torch.equal(f2, x.flip(-1))


# -------------------------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("op", OPS)
def test_bad_images(op: str) -> None:
    with pytest.raises(ValueError, match="N, C, H, W"):
        OPS[op](torch.rand(3, 32, 32), gen(0))
    with pytest.raises(TypeError, match="float"):
        OPS[op](torch.zeros(2, 3, 8, 8, dtype=torch.uint8), gen(0))


def test_bad_parameters(x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="p"):
        A.horizontal_flip(x, gen(0), p=1.5)
    with pytest.raises(ValueError, match="scale"):
        A.random_resized_crop(x, gen(0), scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="ratio"):
        A.random_resized_crop(x, gen(0), ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="hue"):
        A.color_jitter(x, gen(0), hue=0.7)
    with pytest.raises(ValueError, match="brightness"):
        A.color_jitter(x, gen(0), brightness=-0.1)
    with pytest.raises(ValueError, match="channels"):
        A.color_jitter(torch.rand(2, 2, 8, 8), gen(0))
    with pytest.raises(ValueError, match="strength"):
        A.SimCLRAugment(strength=-1.0)
    with pytest.raises(ValueError, match="grayscale_p"):
        A.SimCLRAugment(grayscale_p=2.0)
