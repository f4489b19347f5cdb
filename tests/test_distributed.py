"""Data-parallel training (radlib.distributed) on 2 gloo processes, in float64.

- The DDP step equals one process's step on the concatenated batch: loss terms, every parameter gradient after DDP's
  all-reduce, the training attacks' images and the BatchNorm running statistics. The single-process reference is
  built independently of the distributed code path: each rank's draws are replayed from its generator, merged into
  the global layout, and handed to the plain step.
- Without SyncBatchNorm the step equals one process that normalises each rank's shard on its own (the documented
  BatchNorm difference, pinned down by a reference forward that runs the model shard by shard).
- A killed-and-resumed 2-process run ends bitwise where an uninterrupted one does; resuming on another number of
  processes is refused.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from radlib.attacks.training import AttackDraws, training_attack_draws
from radlib.device import make_generator
from radlib.distributed import free_port, interleave_rows, local_env, rank_generator
from radlib.models import ModelOutput, build_model
from radlib.record import load_run
from radlib.train import TrainConfig, TrainStep, training_views

WORLD = 2
N_LOCAL = 3  # images per rank per step

#: (method, sync_batchnorm): every kind of loss (NT-Xent + opposite + head + 3 attacks, head only, supcon, msc)
CASES = [("cobra", True), ("cobra", False), ("csi", True), ("supcon", True), ("msc", True)]


def _config(method: str) -> TrainConfig:
    return TrainConfig(method=method, dataset="digits", image_size=8, width=2, epochs=1, batch_size=WORLD * N_LOCAL,
                       attack_steps=2, eps=8 / 255, amp=False, channels_last=False)


def _model(cfg: TrainConfig) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(cfg.model_config(), device="cpu").double()


def _images() -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.rand(WORLD * N_LOCAL, 3, 8, 8, generator=g, dtype=torch.float64)


def _center(cfg: TrainConfig) -> torch.Tensor | None:
    if cfg.method != "msc":
        return None
    c = torch.randn(_model(cfg).config.proj_dim, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    return c / c.norm()


def _setup(rank: int, port: int) -> None:
    os.environ.update(local_env(rank, WORLD, port))
    torch.set_num_threads(1)


def _step_worker(rank: int, port: int, out: str) -> None:
    """One rank: for each case, one DDP step on this rank's shard; saves what it computed."""
    import radlib.distributed as rd
    _setup(rank, port)
    results = {}
    for method, sync in CASES:
        shards = rd.init_from_env(torch.device("cpu"), sync_batchnorm=sync)
        cfg = _config(method)
        model = _model(cfg)
        step = TrainStep(cfg, model, cfg.policy(), _center(cfg), shards=shards)  # global BatchNorm, DDP
        x = _images()[rank * N_LOCAL:(rank + 1) * N_LOCAL]
        model.train()
        step.share_buffers()
        terms = step(x, make_generator(100 + rank))
        (terms["loss"] * WORLD).backward()
        results[f"{method}-{sync}"] = {
            "terms": {k: v.detach() for k, v in terms.items()},
            "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
            "buffers": {k: b.clone() for k, b in model.named_buffers()}}
    torch.save(results, Path(out) / f"rank{rank}.pt")


class _ShardForward(torch.nn.Module):
    """The per-rank BatchNorm reference: forward each rank's rows of the global batch on their own."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: torch.Tensor) -> ModelOutput:
        g = batch.shape[0] // (WORLD * N_LOCAL)  # blocks (input x chunk) of WORLD * N_LOCAL rows
        blocks = batch.reshape(g, WORLD, -1, *batch.shape[1:])
        outs = [self.model(blocks[:, r].reshape(-1, *batch.shape[1:])) for r in range(WORLD)]
        return ModelOutput(*(interleave_rows([o[i] for o in outs], g) for i in range(3)))


def _reference(method: str, sync: bool) -> dict:
    """One process: the same draws, merged into the global batch, through the plain step."""
    cfg = _config(method)
    model = _model(cfg)
    policy = cfg.policy()
    step = TrainStep(cfg, model, policy, _center(cfg), forward=None if sync else _ShardForward(model))
    K = step.K
    views, draws = [], []
    images = _images()
    for r in range(WORLD):
        gen = make_generator(100 + r)
        v1, v2, labels = training_views(images[r * N_LOCAL:(r + 1) * N_LOCAL], policy, step.augment, gen)
        views.append((v1, v2, labels))
        draws.append(training_attack_draws(step.attack_names, v1, K, cfg.eps, cfg.attack_norm, gen))
    v1, v2, labels = (interleave_rows([v[i] for v in views], K) for i in range(3))
    starts = tuple(interleave_rows([d.starts[a] for d in draws], K) for a in range(len(step.attack_names)))
    model.train()
    terms = step.from_views(v1, v2, labels, None, AttackDraws(draws[0].pi, starts))
    terms["loss"].backward()
    return {"terms": {k: v.detach() for k, v in terms.items()},
            "grads": {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
            "buffers": {k: b.clone() for k, b in model.named_buffers()}}


@pytest.fixture(scope="module")
def ddp_steps(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_step_worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("method,sync", CASES)
def test_ddp_step_equals_one_process_on_the_whole_batch(ddp_steps, method, sync):
    ref = _reference(method, sync)
    for rank, got in enumerate(ddp_steps):
        got = got[f"{method}-{sync}"]
        assert set(got["terms"]) == set(ref["terms"]) and len(ref["terms"]) >= 2
        for k in ref["terms"]:
            torch.testing.assert_close(got["terms"][k], ref["terms"][k], rtol=1e-10, atol=1e-12, msg=f"rank {rank} {k}")
        assert set(got["grads"]) == set(ref["grads"]), f"rank {rank}: other parameters got gradients"
        for k in ref["grads"]:
            torch.testing.assert_close(got["grads"][k], ref["grads"][k], rtol=1e-8, atol=1e-11,
                                       msg=f"rank {rank} grad {k}")
        if sync:  # per-rank BatchNorm: each rank keeps its own running statistics (rank 0's are shared next step)
            for k in ref["buffers"]:
                torch.testing.assert_close(got["buffers"][k], ref["buffers"][k], rtol=1e-10, atol=1e-12,
                                           msg=f"rank {rank} buffer {k}")


def test_per_rank_batchnorm_is_a_real_difference(ddp_steps):
    """The BatchNorm choice matters: the per-rank step is not the synchronised one (so the test above that pins it
    to the shard-by-shard reference is not vacuous)."""
    a, b = ddp_steps[0]["cobra-True"], ddp_steps[0]["cobra-False"]
    diff = max(float((a["grads"][k] - b["grads"][k]).abs().max()) for k in a["grads"])
    assert diff > 1e-6


def test_attack_draws_are_what_training_attacks_draws():
    """training_attack_draws consumes the generator as training_attacks does (the plain step is unchanged)."""
    cfg = _config("cobra")
    model = _model(cfg).eval()
    step = TrainStep(cfg, model, cfg.policy(), None)
    v1, v2, labels = training_views(_images(), cfg.policy(), step.augment, make_generator(5))
    from radlib.attacks.training import training_attacks
    g1, g2 = make_generator(9), make_generator(9)
    a = training_attacks(model, v1, v2, labels, step.K, step.attack_names, eps=cfg.eps, steps=2, generator=g1)
    d = training_attack_draws(step.attack_names, v1, step.K, cfg.eps, cfg.attack_norm, g2)
    b = training_attacks(model, v1, v2, labels, step.K, step.attack_names, eps=cfg.eps, steps=2, draws=d)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(g1.get_state(), g2.get_state())


def test_rank_generators_differ_and_rank_zero_has_none():
    a = rank_generator(0, 0, 1, torch.device("cpu"))
    b = rank_generator(0, 0, 2, torch.device("cpu"))
    c = rank_generator(0, 1, 1, torch.device("cpu"))
    draws = [torch.rand(4, generator=g) for g in (a, b, c)]
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0], draws[2])
    with pytest.raises(ValueError, match="rank 0 draws from the epoch's generator"):
        rank_generator(0, 0, 0, torch.device("cpu"))


def test_interleave_rows_is_the_single_process_layout():
    K, n = 2, 3
    # rank r's rows k*n+i stand for global image r*n+i of chunk k
    parts = [torch.tensor([k * 100 + r * n + i for k in range(K) for i in range(n)]) for r in range(WORLD)]
    merged = interleave_rows(parts, K)
    assert merged.tolist() == [k * 100 + j for k in range(K) for j in range(WORLD * n)]
    with pytest.raises(ValueError, match="every part must have the same shape"):
        interleave_rows([torch.zeros(4), torch.zeros(6)], 2)


# --- whole runs: resume after a kill, and the record -------------------------------------------------------------

def _run_worker(rank: int, port: int, out: str, kill_after: int, epochs: int, sync: bool = True) -> None:
    from radlib.train import train
    _setup(rank, port)
    cfg = TrainConfig(method="cobra", dataset="digits", image_size=8, width=2, epochs=epochs, batch_size=4,
                      attack_steps=1, eps=4 / 255)
    images = (_images()[:8] * 255).to(torch.uint8)

    def stop(epoch, means, model):
        if epoch == kill_after:
            os._exit(3)  # a kill: no cleanup, rank 1 loses its peer mid-run

    res = train(cfg, images, out=out, device="cpu", progress=False, distributed=True, sync_batchnorm=sync,
                on_epoch_end=stop if kill_after else None)
    from radlib.record import weights_digest
    Path(f"{out}.rank{rank}").write_text(weights_digest(res.model.state_dict(), res.center))


def _spawn(*args) -> bool:
    try:
        mp.spawn(_run_worker, args=(free_port(), *args), nprocs=WORLD, join=True)
        return True
    except Exception:  # a rank exited non-zero (the kill), the other lost its peer
        return False


def test_killed_and_resumed_ddp_run_ends_bitwise_where_an_uninterrupted_one_does(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert _spawn(str(whole), 0, 3)
    assert not _spawn(str(broken), 2, 3), "the kill after epoch 2 did not stop the run"
    rec, _ = load_run(broken / "last.pt")
    assert rec.epoch == 2
    assert _spawn(str(broken), 0, 3)  # resumes at epoch 2
    a, b = load_run(whole / "last.pt")[0], load_run(broken / "last.pt")[0]
    assert a.epoch == b.epoch == 3
    assert a.weights_sha256 == b.weights_sha256
    for r in range(WORLD):  # every rank ends with the weights rank 0 wrote
        assert Path(f"{whole}.rank{r}").read_text() == a.weights_sha256
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert a.distributed == {"world_size": WORLD, "backend": "gloo", "sync_batchnorm": True}


def test_resume_on_another_number_of_processes_is_refused(tmp_path):
    from radlib.train import RunMismatch, train
    assert _spawn(str(tmp_path), 0, 1)
    cfg = TrainConfig(method="cobra", dataset="digits", image_size=8, width=2, epochs=1, batch_size=4,
                      attack_steps=1, eps=4 / 255)
    images = (_images()[:8] * 255).to(torch.uint8)
    with pytest.raises(RunMismatch, match="was trained on 2 processes .*this run is in one process"):
        train(cfg, images, out=tmp_path, device="cpu", progress=False)


# --- the command line under torchrun --------------------------------------------------------------------------------

def _torchrun() -> list[str]:
    exe = Path(sys.executable).parent / "torchrun"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "torch.distributed.run"]


def _evaluate(ckpt: Path, out: Path) -> dict:
    res = subprocess.run([sys.executable, "-m", "radlib", "evaluate", "--ckpt", str(ckpt), "--steps", "2",
                          "--max-test", "30", "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(out.read_text())


def test_torchrun_trains_one_run_that_evaluates_like_the_same_weights_in_one_process(tmp_path):
    out = tmp_path / "ddp"
    res = subprocess.run([*_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "radlib", "train", "--data",
                          "digits", "--category", "0", "--profile", "smoke", "--method", "cobra", "--epochs", "1",
                          "--out", str(out)], env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout.count("trained cobra for 1 epochs on 2 processes") == 1  # rank 0 alone prints
    assert res.stdout.count("digits/0:") == 1
    view = json.loads((out / "run.json").read_text())
    assert view["distributed"] == {"world_size": 2, "backend": "gloo", "sync_batchnorm": True}
    record, state = load_run(out / "last.pt")
    assert record.distributed == view["distributed"]

    # the same weights in a plain one-process model (plain BatchNorm2d, strict load), recorded as a one-process run
    from radlib.profiles import Profile
    from radlib.record import save_run
    plain = build_model(record.model_config, device="cpu")
    plain.load_state_dict(state["model"], strict=True)
    single = save_run(tmp_path / "plain" / "last.pt", config=record.config, model=plain,
                      optimizer=state["optimizer"], scheduler=state["scheduler"], epoch=record.epoch,
                      history=record.history, seconds=record.seconds, center=state["center"],
                      trained_sha256=record.trained_sha256, profile=Profile(**record.profile), data=record.data,
                      purification=record.purification)
    assert single.distributed is None and single.weights_sha256 == record.weights_sha256
    a = _evaluate(out / "last.pt", tmp_path / "ddp.json")
    b = _evaluate(tmp_path / "plain" / "last.pt", tmp_path / "plain.json")
    assert a["clean_auroc"] == b["clean_auroc"]
    assert [x["auroc"] for x in a["attacks"]] == [x["auroc"] for x in b["attacks"]] and a["attacks"]


def test_batch_must_split_evenly_over_the_processes(tmp_path):
    res = subprocess.run([*_torchrun(), "--standalone", "--nproc_per_node=2", "-m", "radlib", "train", "--data",
                          "digits", "--category", "0", "--profile", "smoke", "--batch-size", "15", "--epochs", "1",
                          "--out", str(tmp_path / "r")], env={**os.environ, "OMP_NUM_THREADS": "1"},
                         capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    # each rank says it in one line (torchrun then reports the failed ranks in its own words)
    assert res.stderr.count("radlib train: error: a step's 15 images do not split evenly over 2 processes") == 2


def test_commands_other_than_train_refuse_torchrun_in_one_line():
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0"}  # what torchrun sets
    res = subprocess.run([sys.executable, "-m", "radlib", "evaluate", "--ckpt", "x.pt"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "radlib evaluate: error: evaluate runs in one process; under torchrun only train spreads one run over "
        "processes (run python -m radlib evaluate ..., or radlib sweep for many runs) (--debug shows the traceback)"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
