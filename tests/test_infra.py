"""Profiles, device choice, checkpoints and optimisers."""
import os
import subprocess
import sys

import pytest
import torch

from radlib.checkpoint import load_checkpoint, save_checkpoint
from radlib.device import make_generator, select_device
from radlib.optim import LARS, build_optimizer, warmup_cosine
from radlib.profiles import PROFILES, get_profile


def test_profiles_selection(monkeypatch):
    monkeypatch.setenv("RADLIB_PROFILE", "paper")
    assert get_profile().name == "paper"
    assert get_profile("lab").name == "lab"
    monkeypatch.delenv("RADLIB_PROFILE")
    monkeypatch.setenv("CI", "true")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("CI")
    monkeypatch.setattr("radlib.profiles.select_device", lambda: torch.device("cpu"))
    assert get_profile().name == "cpu", "without a GPU (and not in CI) the default is the cpu profile"
    monkeypatch.setattr("radlib.profiles.select_device", lambda: torch.device("cuda"))
    assert get_profile().name == "lab"
    with pytest.raises(ValueError, match="smoke, cpu, lab, paper"):
        get_profile("huge")


def test_profile_overrides_from_the_environment(monkeypatch):
    monkeypatch.setenv("RADLIB_PROFILE", "lab")
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", "epochs=1, n_train=32,max_test=none,eval_eps=4/255,lr=0.5")
    p = get_profile()
    assert (p.name, p.epochs, p.n_train, p.max_test, p.lr) == ("lab", 1, 32, None, 0.5)
    assert p.eval_eps == pytest.approx(4 / 255) and p.batch_size == PROFILES["lab"].batch_size
    assert "overridden: epochs=1" in p.description and "overridden" in p.banner("cpu")
    assert PROFILES["lab"].epochs != 1, "overrides must not change the shared profile table"
    for bad, msg in [("epochs", "FIELD=VALUE"), ("name=x", "FIELD=VALUE"), ("size=3", "FIELD=VALUE"),
                     ("epochs=two", "not a valid int"), ("n_train=none", "not a valid int")]:
        monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", bad)
        with pytest.raises(ValueError, match=msg):
            get_profile()
    monkeypatch.setenv("RADLIB_PROFILE_OVERRIDES", " ")
    assert get_profile() is PROFILES["lab"]


def test_profile_sizes_are_ordered():
    s, l, p = PROFILES["smoke"], PROFILES["lab"], PROFILES["paper"]
    assert s.epochs <= l.epochs <= p.epochs
    assert s.eval_steps <= l.eval_steps <= p.eval_steps
    assert p.train_attack_steps == 10 and p.eval_steps == 1000 and p.image_size == 224
    assert s.eps_for(32) == pytest.approx(8 / 255) and s.eps_for(128) == pytest.approx(4 / 255)


def test_select_device(monkeypatch):
    monkeypatch.delenv("RADLIB_DEVICE", raising=False)
    assert select_device("cpu").type == "cpu"
    monkeypatch.setenv("RADLIB_DEVICE", "cpu")
    assert select_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"^device .cuda. was asked for but CUDA is not available here; use cpu$"):
            select_device("cuda")


_FAULTS = """
import resource, sys, torch
if sys.argv[1] == "reuse":
    from radlib.device import reuse_freed_memory
    assert reuse_freed_memory()
x = torch.ones(1)
for rnd in range(2):  # what an attack does every step: the same 8 MiB blocks, allocated, written, freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        x = torch.ones(2 ** 21) + x[:1]
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)  # the second round: steady state
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator (Linux)")
def test_reuse_freed_memory_stops_the_page_faults_of_a_repeated_block():
    def faults(mode):
        # glibc's default adapts its mmap threshold to the blocks freed, depending on the layout of the process
        # (measured: 0 or 81,280 faults for the same script); fixing both thresholds low makes every 8 MiB block a
        # fresh mapping, as the patch score's 33 MiB blocks always were, and reuse_freed_memory must undo it
        env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, env=env,
                             check=True)
        return int(out.stdout.split()[-1])

    pages = 2 ** 21 * 4 // 4096  # pages of one block
    default, reused = faults("default"), faults("reuse")
    assert default > 10 * pages  # the block is mapped and zero-filled again, time after time
    assert reused < pages  # faulted in during the first round, then reused


def test_reuse_freed_memory_is_a_no_op_off_linux(monkeypatch):
    from radlib import device
    monkeypatch.setattr(device.sys, "platform", "darwin")
    assert device.reuse_freed_memory() is False


def test_generator_determinism():
    a = torch.rand(5, generator=make_generator(3))
    b = torch.rand(5, generator=make_generator(3))
    assert torch.equal(a, b)


def test_checkpoint_roundtrip_and_weights_only(tmp_path):
    payload = {"model": {"w": torch.arange(4.0)}, "config": {"lr": 0.1, "name": "x"}, "history": [{"loss": 1.0}]}
    path = save_checkpoint(payload, tmp_path / "sub" / "last.pt")
    back = load_checkpoint(path)
    assert torch.equal(back["model"]["w"], payload["model"]["w"]) and back["config"] == payload["config"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp files left behind


def test_checkpoint_write_failure_keeps_previous(tmp_path):
    path = save_checkpoint({"v": torch.tensor(1)}, tmp_path / "last.pt")

    class Boom:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception):
        save_checkpoint({"v": Boom()}, path)
    assert int(load_checkpoint(path)["v"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_checkpoint_killed_writer_leaves_old_file(tmp_path):
    """A process killed in the middle of a write never corrupts the checkpoint (temp file + os.replace)."""
    path = save_checkpoint({"v": torch.tensor(7)}, tmp_path / "last.pt")
    code = (
        "import os, torch, radlib.checkpoint as c\n"
        "orig = torch.save\n"
        "def save(obj, fh):\n"
        "    fh.write(b'partial'); fh.flush(); os._exit(9)\n"
        "torch.save = save\n"
        f"c.save_checkpoint({{'v': torch.tensor(8)}}, {str(path)!r})\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert r.returncode == 9
    assert int(load_checkpoint(path)["v"]) == 7


def test_load_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, path)
    with pytest.raises(Exception):
        load_checkpoint(path)


def test_warmup_cosine_shape():
    f = [warmup_cosine(s, 100, 10, 0.1) for s in range(101)]
    assert f[0] == pytest.approx(0.1) and f[10] == pytest.approx(1.0)
    assert all(a >= b - 1e-12 for a, b in zip(f[10:], f[11:]))  # non-increasing after warm-up
    assert f[100] == pytest.approx(0.0, abs=1e-9)


def _naive_lars_step(w, g, lr, momentum, wd, eta, buf):
    g = g + wd * w
    trust = eta * w.norm() / g.norm()
    buf = g * trust if buf is None else momentum * buf + g * trust
    return w - lr * buf, buf


def test_lars_matches_naive_reference():
    torch.manual_seed(0)
    lin = torch.nn.Linear(6, 4)
    ref_w, buf = lin.weight.detach().clone(), None
    opt = build_optimizer(lin, "lars", lr=0.5, weight_decay=1e-4)
    assert isinstance(opt, LARS)
    for _ in range(3):
        opt.zero_grad()
        loss = lin(torch.randn(8, 6)).pow(2).sum()
        loss.backward()
        ref_w, buf = _naive_lars_step(ref_w, lin.weight.grad.detach(), 0.5, 0.9, 1e-4, 0.001, buf)
        opt.step()
        torch.testing.assert_close(lin.weight.detach(), ref_w)


def test_optimizer_bad_name():
    with pytest.raises(ValueError, match="lars, sgd or adam"):
        build_optimizer(torch.nn.Linear(2, 2), "rmsprop", lr=0.1)


def test_banner_warns_only_in_smoke():
    assert "SMOKE PROFILE: tiny data" in PROFILES["smoke"].banner("cpu")
    assert "SMOKE PROFILE: custom" in PROFILES["smoke"].banner("cpu", smoke_note="custom")
    assert "SMOKE" not in PROFILES["lab"].banner("cpu", smoke_note="custom")
