"""Faithfulness to the official COBRA/CSI code, and where radlib corrects it (each test fails on the code before
the fix): the view order (flip first), one pseudo-anomaly draw per view, the scar-only CutPaste, ATNT's random
chunk cycle, attacks that score the full batch, input-independent scar placement in scores, test-time
augmentation, and bf16 / channels_last where the hardware runs them natively."""
import collections
import itertools
import random

import pytest
import torch

from radlib import attacks, device as rdevice
from radlib.augment import SimCLRAugment
from radlib.data import load
from radlib.models import ModelConfig, ResNet18AD
from radlib.pipeline import score_protocol
from radlib.score import fit_score
from radlib.profiles import PROFILES
from radlib.pseudo_anomaly import CUTPASTE_POLICY, CUTPASTE_UNION_POLICY, ROTATION_POLICY, cutpaste, policy_for, rotate
from radlib.score import EnsembleScore, official_tta
from radlib.train import TrainConfig, TrainResult, TrainStep, train, training_views

#: a distortion that changes nothing, so the geometry of the views can be read off exactly
NO_DISTORTION = SimCLRAugment(crop=False, strength=0.0, jitter_p=0.0, grayscale_p=0.0)


def _asym(n=16, size=12, seed=0):
    """Images with no mirror or rotation symmetry (random noise)."""
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------- view order
def test_every_chunk_of_a_view_comes_from_the_same_flipped_image():
    x = _asym()
    v1, v2, labels = training_views(x, ROTATION_POLICY, NO_DISTORTION, torch.Generator().manual_seed(1))
    n = x.shape[0]
    assert labels.tolist() == [k for k in range(4) for _ in range(n)]
    for v in (v1, v2):
        base = v[:n]
        assert all(torch.equal(b, x[i]) or torch.equal(b, x[i].flip(-1)) for i, b in enumerate(base))
        for k in range(1, 4):  # chunk k is rot_k of chunk 0: never the mirror image of another rotation
            assert torch.equal(rotate(base, k), v[k * n:(k + 1) * n]), k
    # the two views flip independently (the official hflip of images.repeat(2))
    assert not torch.equal(v1[:n], v2[:n])


def test_the_trainer_uses_the_official_view_order(monkeypatch):
    cfg = TrainConfig(method="csi", dataset="digits", image_size=12, width=4, batch_size=8, augment_strength=0.0)
    model = ResNet18AD(ModelConfig(width=4, image_size=12, num_transforms=4)).eval()
    seen = {}
    real = training_views

    def spy(x, policy, augment, generator, flip_p=0.5):
        out = real(x, policy, augment, generator, flip_p)
        seen["views"] = out
        return out

    monkeypatch.setattr("radlib.step.training_views", spy)
    step = TrainStep(cfg, model, cfg.policy(), None)
    assert step.augment.flip_p == 0.0, "the SimCLR distortion after the rotations must not flip"
    step(_asym(8), torch.Generator().manual_seed(0))
    assert seen["views"][0].shape == (32, 3, 12, 12)


@pytest.mark.slow
def test_a_short_run_tells_90_from_270_degrees():
    """CSI on digits: the K-way head must classify clean 90 and 270 degree rotations of held-out digits. With
    the flip after the rotation the two chunks get the same inputs and the head cannot (270-degree accuracy
    0.18 on the code before the fix)."""
    ds = load("digits", normal="0", image_size=16, channels=1, seed=0)
    cfg = TrainConfig(method="csi", dataset="digits", image_size=16, channels=1, width=16, epochs=12,
                      batch_size=32, optimizer="adam", lr=1e-3, warmup_epochs=1, seed=0)
    model = train(cfg, ds, progress=False, device="cpu").model
    x = ds.test.images[ds.test.labels == 0].float() / 255
    with torch.no_grad():
        acc = {k: float((model(rotate(x, k)).logits.argmax(1) == k).float().mean()) for k in (1, 3)}
    assert acc[1] > 0.6 and acc[3] > 0.6, acc


def test_each_view_draws_its_own_pseudo_anomalies():
    x = _asym(24, 32)
    v1, v2, _ = training_views(x, CUTPASTE_POLICY, NO_DISTORTION, torch.Generator().manual_seed(3), flip_p=0.0)
    n = x.shape[0]
    assert torch.equal(v1[:n], x) and torch.equal(v2[:n], x)
    differs = (v1[n:] != v2[n:]).flatten(1).any(1)
    assert bool(differs.all()), "the two views must carry independent CutPaste draws"


# ------------------------------------------------------------------------------------------ CutPaste mix
def test_industrial_policy_pastes_scars_only_as_the_official_code():
    for name in ("casting", "surfaces", "mvtec_ad", "visa"):
        assert policy_for(name) == CUTPASTE_POLICY
    assert CUTPASTE_POLICY.chunks[1] == (("scar", 1.0),)
    assert CUTPASTE_UNION_POLICY.chunks[1] == (("cutpaste", 0.5), ("scar", 0.5))


# -------------------------------------------------------------------------------------------- ATNT cycle
def _sattolo(K, rng):
    """Sattolo's shuffle, as the official code draws ATNT's chunk permutation."""
    a = list(range(K))
    for i in range(K - 1, 0, -1):
        j = rng.randrange(i)
        a[i], a[j] = a[j], a[i]
    return tuple(a)


@pytest.mark.parametrize("K", [2, 3, 4])
def test_random_chunk_cycle_has_sattolos_distribution(K):
    g = torch.Generator().manual_seed(0)
    draws = 3000
    ours = collections.Counter(tuple(attacks.random_chunk_cycle(K, g).tolist()) for _ in range(draws))
    rng = random.Random(0)
    ref = collections.Counter(_sattolo(K, rng) for _ in range(draws))
    assert set(ours) == set(ref), (ours, ref)  # exactly the (K-1)! single K-cycles
    assert len(ours) == len(list(itertools.permutations(range(K - 1))))
    for p in ours:
        assert all(p[k] != k for k in range(K))
        assert abs(ours[p] / draws - 1 / len(ours)) < 0.04, ours


def test_atnt_targets_the_drawn_cycle():
    torch.manual_seed(0)
    model = ResNet18AD(ModelConfig(width=4, image_size=8, num_transforms=4)).eval()
    v2 = torch.rand(12, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(5)
    drawn = attacks.atnt(model, v2, 4, eps=8 / 255, steps=2, generator=g)
    g_copy = torch.Generator().manual_seed(5)
    pi = attacks.random_chunk_cycle(4, g_copy)
    fixed = attacks.atnt(model, v2, 4, eps=8 / 255, steps=2, generator=g_copy, perm=pi)
    assert torch.equal(drawn, fixed)
    # different batches draw different cycles (not always k -> k+1)
    cycles = {tuple(attacks.random_chunk_cycle(4, g).tolist()) for _ in range(40)}
    assert len(cycles) > 1
    with pytest.raises(ValueError, match="without fixed points"):
        attacks.atnt(model, v2, 4, eps=8 / 255, steps=1, perm=torch.tensor([0, 2, 3, 1]))


# ------------------------------------------------------------------------------------ scoring exactness
def test_score_placement_of_the_scar_does_not_read_the_input():
    x = _asym(32, 32)
    dark = x * 0.1  # grey level below the 0.15 test everywhere: the intensity rule moves the patch
    _, m_int = cutpaste(x, torch.Generator().manual_seed(2), "scar", return_mask=True)
    _, m_int_dark = cutpaste(dark, torch.Generator().manual_seed(2), "scar", return_mask=True)
    assert not torch.equal(m_int, m_int_dark), "sanity: the training rule depends on the input"
    _, m = cutpaste(x, torch.Generator().manual_seed(2), "scar", return_mask=True, placement="random")
    _, m_dark = cutpaste(dark, torch.Generator().manual_seed(2), "scar", return_mask=True, placement="random")
    assert torch.equal(m, m_dark)
    model = ResNet18AD(ModelConfig(width=4, image_size=32, num_transforms=2)).eval()
    score = EnsembleScore.fit(model, _asym(6, 32), CUTPASTE_POLICY, weighting="standardized")
    assert score.policy.placement == "random" and CUTPASTE_POLICY.placement == "intensity"
    with pytest.raises(ValueError, match="placement"):
        cutpaste(x, None, "scar", placement="centre")


def test_ensemble_score_is_continuous_along_an_attack_path():
    """Small input changes give small score changes (no jump of the paste position)."""
    model = ResNet18AD(ModelConfig(width=4, image_size=32, num_transforms=2)).eval()
    train_x = _asym(8, 32, seed=1)
    score = EnsembleScore.fit(model, train_x, CUTPASTE_POLICY, weighting="standardized")
    x = _asym(16, 32, seed=2) * 0.25 + 0.05  # near the 0.15 grey-level threshold of the training rule
    d = torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(3)))
    with torch.no_grad():
        s = torch.stack([score((x + t * d).clamp(0, 1)) for t in torch.linspace(0, 0.2, 21)])
    jumps = (s[1:] - s[:-1]).abs().max()
    typical = (s[1:] - s[:-1]).abs().median()
    assert jumps < 20 * typical + 1e-4, (float(jumps), float(typical))


# ------------------------------------------------------------------------------ test-time augmentation
def test_official_tta_is_exposed_and_recorded():
    pre, aug = official_tta(32)
    assert aug.crop and aug.crop_scale == (0.54, 0.54) and aug.flip_p == 0.0 and aug.jitter_p == 0.8
    assert not official_tta(224)[1].crop
    x = _asym(4, 16)
    flipped = pre(x, torch.Generator().manual_seed(0))
    assert all(torch.equal(f, a) or torch.equal(f, a.flip(-1)) for f, a in zip(flipped, x))
    cfg = TrainConfig(method="csi", dataset="digits", image_size=16, width=4)
    model = ResNet18AD(cfg.model_config()).eval()
    res = TrainResult(model, cfg, [], 0.0, None, None, cfg.policy())
    train_x, test_x = _asym(8, 16, seed=1), _asym(6, 16, seed=2)
    plain = fit_score(res, train_x, samples=3, augment=False)
    tta = fit_score(res, train_x, samples=3, augment=True)
    assert plain.augment is None and plain.pre_augment is None and tta.augment is not None
    with torch.no_grad():
        assert not torch.allclose(plain(test_x), tta(test_x))
    assert PROFILES["paper"].eval_augment and PROFILES["paper"].eval_samples == 10
    assert not PROFILES["cpu"].eval_augment
    assert score_protocol(PROFILES["paper"])["score_tta"].startswith("official")
    assert score_protocol(PROFILES["cpu"], "knn")["score_tta"] == "none"


# ---------------------------------------------------------------------------------- native precision
def test_autocast_dtype_follows_native_bf16(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(rdevice, "cpu_has_native_bf16", lambda: True)
    assert rdevice.autocast_dtype(cpu) is torch.bfloat16
    assert rdevice.autocast_dtype(cpu, enabled=False) is None
    monkeypatch.setattr(rdevice, "cpu_has_native_bf16", lambda: False)
    assert rdevice.autocast_dtype(cpu) is None
    assert rdevice.autocast_dtype(torch.device("mps")) is None


def test_t4_gets_no_emulated_bf16(monkeypatch):
    calls = []

    def is_bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return including_emulation  # a T4 (sm_75): only through emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    assert rdevice.autocast_dtype(torch.device("cuda")) is torch.float16, "a T4 trains in fp16 (tensor cores)"
    assert calls == [False]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (6, 1))  # a P100: no tensor cores
    assert rdevice.autocast_dtype(torch.device("cuda")) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # an A100
    assert rdevice.autocast_dtype(torch.device("cuda")) is torch.bfloat16


def test_cpu_training_uses_channels_last_and_stays_finite():
    cfg = TrainConfig(method="cobra", dataset="digits", image_size=12, width=4, batch_size=4, epochs=1,
                      attack_steps=1, optimizer="adam", lr=1e-3, warmup_epochs=0)
    res = train(cfg, (_asym(8, 12) * 255).to(torch.uint8), progress=False, device="cpu")
    assert rdevice.uses_channels_last(torch.device("cpu")) == torch.backends.mkldnn.is_available()
    assert all(torch.isfinite(p).all() for p in res.model.parameters())
