"""The trainer: every method runs, exact resume, atomic checkpoints, NaN guard, the three training attacks."""
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
    with pytest.raises(ValueError, match="different config"):
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
