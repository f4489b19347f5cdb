import pytest
import torch

from radlib.models import ModelConfig, ModelOutput, ResNet18AD, build_model


@pytest.mark.parametrize("size,stem", [(32, "cifar"), (96, "imagenet")])
def test_shapes_and_stem(size, stem):
    m = build_model(image_size=size, num_transforms=2, width=8)
    assert m.config.resolved_stem == stem
    out = m(torch.rand(3, 3, size, size))
    assert isinstance(out, ModelOutput)
    assert out.features.shape == (3, 64) and out.projection.shape == (3, 128) and out.logits.shape == (3, 2)


def test_normalisation_is_inside_and_pixel_space():
    m = build_model(width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    manual = m.layers(m.stem((x - 0.5) / 0.5))
    feats = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(manual, 1), 1)
    torch.testing.assert_close(m.encode(x), feats)


def test_channels_last_matches():
    m = build_model(width=8).eval()
    x = torch.rand(2, 3, 32, 32)
    ref = m(x).projection
    m2 = m.to(memory_format=torch.channels_last)
    out = m2(x.contiguous(memory_format=torch.channels_last)).projection
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_config_roundtrip_from_plain_dict():
    from dataclasses import asdict
    cfg = ModelConfig(num_transforms=4, width=8, in_channels=1, mean=(0.5,), std=(0.5,))
    m = build_model(asdict(cfg))
    assert m.config == cfg
    assert m(torch.rand(1, 1, 32, 32)).logits.shape == (1, 4)


def test_bad_inputs():
    m = build_model(width=8)
    with pytest.raises(ValueError, match="expected"):
        m(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="mean/std"):
        ResNet18AD(ModelConfig(in_channels=1))
    with pytest.raises(ValueError, match="num_transforms"):
        ResNet18AD(ModelConfig(num_transforms=0))
