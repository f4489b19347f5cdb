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


def test_folded_eval_is_the_eval_mode_function_and_follows_the_weights():
    from radlib.models import FoldedEval
    torch.manual_seed(0)
    model = build_model(width=8, image_size=16, num_transforms=4).double()
    model.train()
    for _ in range(3):  # non-trivial running statistics
        model(torch.rand(32, 3, 16, 16, dtype=torch.double))
    model.eval()
    folded = FoldedEval.from_model(model)
    assert len(folded._pairs) == 20  # stem + 16 block convs + 3 shortcuts
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(16, 3, 16, 16, dtype=torch.double)

    def out_and_grad(net):
        xa = x.clone().requires_grad_(True)
        o = net(xa)
        (g,) = torch.autograd.grad(o.projection.sum() + o.logits.sum(), xa)
        return o, g

    (o1, g1), (o2, g2) = out_and_grad(model), out_and_grad(folded)
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(g1, g2, rtol=1e-9, atol=1e-12)
    assert not any(p.requires_grad for p in folded.parameters())
    with torch.no_grad():  # the model moves on: refresh follows it
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    stale = folded(x).projection
    torch.testing.assert_close(folded.refresh(model)(x).projection, model(x).projection, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(stale, model(x).projection)
