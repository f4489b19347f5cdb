"""The trainer: every method runs, exact resume, atomic checkpoints, NaN guard, the three training attacks."""
import copy
from dataclasses import asdict

import pytest
import torch

from radlib import attacks, losses
from radlib.models import build_model
from radlib.profiles import PROFILES
from radlib.train import METHODS, TrainConfig, TrainingDiverged, load_trained, train

SIZE = 16


def _images(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, SIZE, SIZE, generator=g)
    x = (base + 0.15 * torch.rand(n, 3, SIZE, SIZE, generator=g)).clamp(0, 1)
    return (x * 255).to(torch.uint8)


def _cfg(method="cobra", **kw):
    base = dict(method=method, dataset="cifar10", image_size=SIZE, epochs=1, batch_size=4, width=4,
                attack_steps=1, optimizer="lars", warmup_epochs=0, lr=0.5, log_every=1)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_and_records_history(method):
    res = train(_cfg(method, dataset="surfaces" if method == "cobra_no_opposite" else "cifar10"), _images(),
                progress=False)
    assert len(res.history) == 1
    h = res.history[0]
    assert all(torch.isfinite(torch.tensor(v)) for v in h.values())
    expected = {"cobra": {"nt_xent", "opposite", "cls"}, "cobra_no_opposite": {"nt_xent", "cls"},
                "adv_contrastive": {"nt_xent"}, "supcon": {"supcon"}, "csi": {"nt_xent", "cls"}, "msc": {"msc"}}
    assert expected[method] <= set(h) and "loss" in h
    assert not res.model.training


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    cfg = _cfg("cobra", epochs=2)
    straight = train(cfg, _images(), progress=False)

    class Stop(Exception):
        pass

    def stop_after_first(epoch, means, model):  # simulates a run killed after epoch 1's checkpoint
        if epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(cfg, _images(), out=tmp_path, progress=False, on_epoch_end=stop_after_first)
    assert (tmp_path / "last.pt").exists()
    resumed = train(cfg, _images(), out=tmp_path, progress=False)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], abs=0)
    assert asdict(load_trained(tmp_path / "last.pt").config) == asdict(cfg)


def test_resume_refuses_other_config(tmp_path):
    train(_cfg("csi"), _images(), out=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another config \(lr 0.5 -> 0.1\)"):
        train(_cfg("csi", lr=0.1), _images(), out=tmp_path, progress=False)


def test_load_trained_roundtrip(tmp_path):
    res = train(_cfg("csi"), _images(), out=tmp_path, progress=False)
    back = load_trained(tmp_path / "last.pt", device="cpu")
    x = torch.rand(2, 3, SIZE, SIZE)
    torch.testing.assert_close(back.model(x).projection, res.model(x).projection)
    assert (tmp_path / "history.json").exists()


def test_nan_guard_names_the_term(monkeypatch):
    monkeypatch.setattr(losses, "transform_ce", lambda logits, labels: logits.sum() * float("nan"))
    with pytest.raises(TrainingDiverged, match="cls"):
        train(_cfg("csi"), _images(), progress=False)


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown method"):
        TrainConfig(method="magic")
    with pytest.raises(ValueError, match="attack_norm"):
        TrainConfig(attack_norm="l1")
    with pytest.raises(ValueError, match="nt_xent_reduction"):
        TrainConfig(nt_xent_reduction="sum")
    with pytest.raises(ValueError, match="image_size"):
        train(_cfg(image_size=32), _images(), progress=False)
    with pytest.raises(TypeError, match="ADDataset"):
        train(_cfg(), [1, 2, 3], progress=False)


def test_from_profile_picks_resolution_and_policy():
    cfg = TrainConfig.from_profile(PROFILES["paper"], method="cobra", dataset="mvtec_ad")
    assert cfg.image_size == 224 and cfg.attack_steps == 10 and not cfg.crop
    cfg = TrainConfig.from_profile(PROFILES["paper"], method="csi", dataset="cifar10")
    assert cfg.image_size == 32 and cfg.crop and not cfg.adversarial


# ---- the three COBRA training attacks ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build_model(image_size=SIZE, num_transforms=2, width=4).eval()
    g = torch.Generator().manual_seed(1)
    v1, v2 = torch.rand(8, 3, SIZE, SIZE, generator=g), torch.rand(8, 3, SIZE, SIZE, generator=g)
    return model, v1, v2


def _nt(model, a, b):
    with torch.no_grad():
        return float(losses.nt_xent(torch.cat([model(a).projection, model(b).projection]), n_views=2))


@pytest.mark.parametrize("eps", [2 / 255, 8 / 255])
def test_atpt_pushes_views_apart_within_eps(tiny, eps):
    model, v1, v2 = tiny
    adv = attacks.atpt(model, v1, v2, eps=eps, steps=5, generator=torch.Generator().manual_seed(0))
    assert (adv - v1).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    assert _nt(model, adv, v2) > _nt(model, v1, v2)


def test_atnt_pulls_toward_own_pseudo_anomaly(tiny):
    model, v1, v2 = tiny
    target = torch.roll(v2, shifts=-4, dims=0)  # K=2, N=4: chunk 0 <-> chunk 1
    adv = attacks.atnt(model, v2, 2, eps=8 / 255, steps=5, generator=torch.Generator().manual_seed(0))
    assert (adv - v2).abs().max() <= 8 / 255 + 1e-6
    assert _nt(model, adv, target) < _nt(model, v2, target)
    with pytest.raises(ValueError, match="K >= 2"):
        attacks.atnt(model, v2[:7], 2, eps=8 / 255)


def test_rtp_raises_head_cross_entropy(tiny):
    model, v1, _ = tiny
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    adv = attacks.rtp(model, v1, labels, eps=8 / 255, steps=5, generator=torch.Generator().manual_seed(0))
    ce = lambda x: float(torch.nn.functional.cross_entropy(model(x).logits, labels))  # noqa: E731
    with torch.no_grad():
        assert ce(adv) > ce(v1)


# ---- the three attacks as one batched PGD (the trainer's form) ---------------------------------------------------

def _sequential(model, v1, v2, labels, K, names, gen, **kw):
    out = {}
    for name in names:
        if name == "atpt":
            out[name] = attacks.atpt(model, v1, v2, generator=gen, **kw)
        elif name == "atnt":
            out[name] = attacks.atnt(model, v2, K, generator=gen, **kw)
        else:
            out[name] = attacks.rtp(model, v2, labels, generator=gen, **kw)
    return out


@pytest.mark.parametrize("names", [("atpt", "atnt", "rtp"), ("atpt",), ("atnt", "rtp"), ("atpt", "rtp")])
@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_training_attacks_equal_the_sequential_attacks(names, norm):
    # float64, eval-mode BN: the batched PGD must give the three one-at-a-time results and leave the generator
    # in the same state (same draws in the same order), for every subset of attacks and both norms
    torch.manual_seed(0)
    model = build_model(image_size=SIZE, num_transforms=4, width=4).double().eval()
    g = torch.Generator().manual_seed(3)
    v1, v2 = torch.rand(12, 3, SIZE, SIZE, generator=g).double(), torch.rand(12, 3, SIZE, SIZE, generator=g).double()
    labels = torch.arange(4).repeat_interleave(3)
    eps = 8 / 255 if norm == "linf" else 0.5
    kw = dict(eps=eps, steps=3, norm=norm)
    ga, gb = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    ref = _sequential(model, v1, v2, labels, 4, names, ga, **kw)
    got = attacks.training_attacks(model, v1, v2, labels, 4, names, generator=gb, **kw)
    assert list(got) == list(names)
    for name in names:
        assert not torch.equal(ref[name], v1 if name == "atpt" else v2)  # the attack moved the images
        torch.testing.assert_close(got[name], ref[name], rtol=0, atol=1e-12)
    assert torch.equal(ga.get_state(), gb.get_state())


def test_training_attacks_edge_cases_and_bad_input(tiny):
    model, v1, v2 = tiny
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    got = attacks.training_attacks(model, v1, v2, labels, 2, ("atpt", "atnt"), eps=0.0, generator=gb)
    _sequential(model, v1, v2, labels, 2, ("atpt", "atnt"), ga, eps=0.0)
    assert torch.equal(got["atpt"], v1) and torch.equal(got["atnt"], v2)
    assert torch.equal(ga.get_state(), gb.get_state())  # at eps=0 only ATNT's cycle is drawn, as in atnt()
    assert attacks.training_attacks(model, v1, v2, labels, 2, (), eps=0.1) == {}
    with pytest.raises(ValueError, match=r"names must be distinct attacks among \('atpt', 'atnt', 'rtp'\), "
                                         r"got \('atpt', 'atpt'\)"):
        attacks.training_attacks(model, v1, v2, labels, 2, ("atpt", "atpt"), eps=0.1)
    with pytest.raises(ValueError, match="names must be distinct attacks"):
        attacks.training_attacks(model, v1, v2, labels, 2, ("fgsm",), eps=0.1)
    with pytest.raises(ValueError, match="atnt needs K >= 2 chunks dividing the batch, got K=3, batch 8"):
        attacks.training_attacks(model, v1, v2, labels, 3, ("atnt",), eps=0.1)
    with pytest.raises(ValueError, match="v1 and v2 must have the same shape"):
        attacks.training_attacks(model, v1, v2[:4], labels, 2, ("atpt",), eps=0.1)


def test_fused_step_trains_as_the_sequential_step():
    # the trainer's step with fused attacks = the step with one attack per call (same losses, float64)
    from radlib.train import TrainStep
    cfg = TrainConfig(method="cobra", dataset="digits", image_size=SIZE, width=4, batch_size=4, attack_steps=2,
                      channels_last=False, amp=False)
    torch.manual_seed(0)
    model = build_model(cfg.model_config()).double()
    x = torch.rand(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).double()
    # a copy each: the train-mode forward of a step updates the BatchNorm running statistics
    terms = [TrainStep(cfg, copy.deepcopy(model), cfg.policy(), None, fused_attacks=f)(x, torch.Generator().manual_seed(5))
             for f in (True, False)]
    assert set(terms[0]) == {"nt_xent", "opposite", "cls", "loss"}
    for k in terms[0]:
        torch.testing.assert_close(terms[0][k], terms[1][k], rtol=1e-10, atol=1e-12)
