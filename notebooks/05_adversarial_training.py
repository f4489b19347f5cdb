# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/05_adversarial_training.ipynb)
#
# # 05 · COBRA end to end: one batch, three attacks, one training run
#
# **What you will learn**
# - what one COBRA training step builds from a batch: two views, K pseudo-anomaly chunks, and three
#   adversarial batches — ATPT(v1), ATNT(v2), RTP(v2) — each inside an L∞ ball of radius eps;
# - which loss each batch feeds (NT-Xent, the opposite-pair term, the K-way head's cross-entropy);
# - how to train with live loss curves (`on_epoch_end`), where checkpoints go, how to reload them exactly,
#   and what "resume" does (and refuses to do);
# - what the training-attack strength (`attack_steps`, `eps`) costs in time per step.
#
# **Run time**: measured per profile, with the machine, in [`notebooks/README.md`](README.md) (`smoke`: seconds,
# and its numbers only prove that the code runs; `cpu`: minutes on 2 cores; `lab`: a free Colab T4; `paper`:
# hours). Trained detectors are kept in `runs/cache` (keyed by config, data and radlib source): a rerun takes
# seconds.

# %% tags=["install"]
# Colab / fresh machine: install radlib with its `colab` extra (torchattacks for 06's cross-check, no JupyterLab);
# a no-op where radlib is already installed. RADLIB_SOURCE is what pip installs: this repository, your fork
# ("git+https://github.com/<you>/radlib@<branch>"), a zip of a checkout
# ("https://github.com/<you>/radlib/archive/refs/heads/main.zip") or a folder ("/content/radlib").
# Colab forgets trained detectors when the session ends; to keep them, mount Drive and point the cache there:
#   from google.colab import drive; drive.mount("/content/drive")
#   import os; os.environ["RADLIB_CACHE"] = "/content/drive/MyDrive/radlib-cache"
RADLIB_SOURCE = "git+https://github.com/radlib/radlib"
import importlib.util
import pathlib
import subprocess
import sys

if importlib.util.find_spec("radlib") is None:
    src = RADLIB_SOURCE if "://" in RADLIB_SOURCE else pathlib.Path(RADLIB_SOURCE).resolve().as_uri()
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"radlib[colab] @ {src}"], check=True)

# %%
# %matplotlib inline
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from IPython.display import clear_output, display

import radlib
from radlib.attacks import atnt, atpt, pgd, rtp
from radlib.augment import SimCLRAugment
from radlib.data import to_float
from radlib.device import make_generator
from radlib.evaluate import format_eps
from radlib.pipeline import load_data, untrained
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import policy_for
from radlib.train import TrainConfig, load_trained, train, training_views
from radlib.viz import image_grid, loss_curves

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
if profile.name == "smoke":
    # adversarial training is the expensive part of radlib: trim the (already tiny) smoke sizes for CI
    profile = profile.replace(n_train=profile.batch_size // 2, n_test=profile.n_test // 2,
                              batch_size=profile.batch_size // 2)
print(profile.banner(device))

# %% [markdown]
# ## 1 · One training batch, step by step
# We replay what `radlib.train` does inside one COBRA step, with the same library calls, on a handful of images
# and a freshly initialised network (what the very first step sees):
#
# 1. **flip** each image at random, twice independently (two copies), *before* anything else: a flip after a
#    rotation would turn 90° into 270° (hflip(rot90 x) = rot270(hflip x)) and confuse the K-way head;
# 2. **expand** each copy to K chunks `[x, T₁x, ...]` with the dataset's pseudo-anomaly policy (chunk k = class k),
#    with its own random draws, and give each the SimCLR distortion (no flip): the two views `v1`, `v2`
#    (`radlib.train.training_views`, the official order);
# 3. with the model in eval mode, run three **PGD attacks** inside an L∞ ball of radius eps:
#    - **ATPT(v1)** *maximises* NT-Xent(v1', v2): pushes each image away from its positive view;
#    - **ATNT(v2)** *minimises* NT-Xent(v2', π(v2)), π swapping the chunks: pulls each normal toward its own
#      pseudo-anomaly (and vice versa) — the direction an attacker would use to blur the two groups;
#    - **RTP(v2)** *maximises* the K-way head's cross-entropy: tries to make the head mistake the transform.

# %%
ds = load_data(*profile.dataset, None, profile, seed=SEED)  # the profile's teaching data: surfaces/metal
print(ds.summary())
cfg = TrainConfig.from_profile(profile, method="cobra", dataset=ds.name, image_size=ds.image_size,
                               n_train=len(ds.train.images), category=ds.normal, channels=ds.channels, seed=SEED)
if profile.name == "cpu":  # the mechanics need a few epochs, not the full budget (notebook 00 trains that one)
    cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, 4))
policy = policy_for(cfg.dataset)
print(policy.describe())
print(f"training attacks: L-inf eps={format_eps(cfg.eps)}, {cfg.attack_steps} PGD step(s), "
      f"alpha={'2.5*eps/steps' if cfg.attack_alpha is None else cfg.attack_alpha}")

n_show = min(4, ds.train.images.shape[0])
gen = make_generator(SEED, device)
x = to_float(ds.train.images[:n_show].to(device))
xk, _ = policy.expand(x, generator=make_generator(SEED, device))  # for the picture: the chunks before any view
augment = SimCLRAugment(crop=cfg.crop, strength=cfg.augment_strength)  # no flip: the flip comes first
v1, v2, labels = training_views(x, policy, augment, gen)    # (K*n, C, H, W) each, chunk-major

model = untrained(cfg, device=device).model  # the very network `train(cfg, ...)` starts from (same seed)
model.eval()  # COBRA attacks in eval mode (BatchNorm running statistics), as the official code
kw = dict(eps=cfg.eps, steps=cfg.attack_steps, alpha=cfg.attack_alpha, generator=gen)
adv = {"ATPT(v1)": (v1, atpt(model, v1, v2, temperature=cfg.temperature, **kw)),
       "ATNT(v2)": (v2, atnt(model, v2, policy.K, temperature=cfg.temperature, **kw)),
       "RTP(v2)": (v2, rtp(model, v2, labels, **kw))}
linf = {name: float((a - clean).abs().max()) for name, (clean, a) in adv.items()}
for name, d in linf.items():
    print(f"{name:9s} max |perturbation| = {d * 255:.2f}/255   (eps = {cfg.eps * 255:.0f}/255)")

# %%
def amplified(clean: torch.Tensor, attacked: torch.Tensor) -> torch.Tensor:
    """Perturbation mapped to [0, 1]: grey = unchanged, white/black = +-eps."""
    return (0.5 + (attacked - clean) / (2 * cfg.eps)).clamp(0, 1)


chunk_names = ["normal"] + [f"pseudo-anom. {k}" for k in range(1, policy.K)]
rows = [("input x / T_k x", xk), ("view v1", v1), ("view v2", v2)]
rows += [(name, a) for name, (_, a) in adv.items()]
rows += [(f"{name} - clean, x{0.5 / cfg.eps:.0f}", amplified(c, a)) for name, (c, a) in adv.items()]
cols = xk.shape[0]
grid = torch.cat([r for _, r in rows]).cpu()
titles = [f"{rn}\n{chunk_names[int(labels[j])]}" if j % n_show == 0 else "" for rn, _ in rows for j in range(cols)]
fig = image_grid(grid, titles=titles, ncols=cols, size=1.3,
                 suptitle="One COBRA batch: chunks -> views -> attacks (last rows: perturbations, amplified)")
display(fig)  # radlib figures are plain matplotlib Figures: show them with display()

# %% [markdown]
# **Which loss each batch feeds** (see `radlib.train` and notebook 03 for the pair layout):
#
# | batch | NT-Xent (4 chunks, positives = same index) | opposite-pair term | K-way head CE |
# |---|---|---|---|
# | v1, v2 | yes | yes (normal vs its own pseudo-anomaly, per view) | yes |
# | ATPT(v1) | yes: a *positive* of v1 and v2, so the encoder must resist the push apart | yes | no |
# | ATNT(v2) | yes: a *positive* of v2, so pulling toward the other group must not work | yes | no |
# | RTP(v2) | no | no | yes: the head must still name the transform |
#
# The model is put back in train mode for the update; the attacks never accumulate weight gradients.

# %% [markdown]
# **The two objectives in formulas**, with $z(\cdot)$ the projection, $\ell$ the two-view NT-Xent of notebook 03
# (rows of the first view against the same rows of the second), $h(\cdot)$ the K-way head's logits and
# $k(m)$ the transform of row $m$:
#
# $$\text{ATNT:}\ \ v_2' = \arg\min_{\|\delta\|_\infty \le \epsilon}\ \ell\big(z(v_2 + \delta),\ z(\pi v_2)\big),
# \qquad (\pi v_2)_{kN+i} = (v_2)_{\pi(k)N+i}$$
#
# $$\text{RTP:}\ \ v_2' = \arg\max_{\|\delta\|_\infty \le \epsilon}\ \tfrac{1}{M}\sum_m
#   -\log \operatorname{softmax}\big(h(v_2 + \delta)_m\big)_{k(m)}$$
#
# Written out in plain PyTorch and handed to the same PGD loop (`radlib.attacks.pgd`, same random start), they
# must give radlib's `atnt` (with its chunk cycle π fixed) and `rtp`. The check uses an L2 ball, whose steps follow
# the gradient continuously (an L-inf step takes its sign, which rounding noise can flip on a near-zero entry).

# %%
def nt_xent_two_views(za, zb, t):
    """Row a of [za; zb]: its positive is the same row of the other view; every other row is in the denominator."""
    u = F.normalize(torch.cat([za, zb]), dim=1)
    s = (u @ u.T / t).fill_diagonal_(float("-inf"))
    m = za.shape[0]
    pos = torch.cat([torch.arange(m, 2 * m), torch.arange(m)]).to(u.device)
    return -s.log_softmax(dim=1)[torch.arange(2 * m, device=u.device), pos].mean()


K, n_img = policy.K, v2.shape[0] // policy.K
perm = torch.roll(torch.arange(K), -1).to(device)  # pi(k) = k + 1 mod K: a cycle, no chunk paired with itself
with torch.no_grad():
    target = model((v2.view(K, n_img, *v2.shape[1:])[perm]).flatten(0, 1)).projection.float()
atnt_objective = lambda a: nt_xent_two_views(model(a).projection.float(), target, cfg.temperature)  # noqa: E731
rtp_objective = lambda a: -model(a).logits.float().log_softmax(1)[torch.arange(len(labels)), labels]  # noqa: E731
l2 = dict(eps=0.5, steps=2, norm="l2")
gap_atnt = float((pgd(atnt_objective, v2, maximize=False, generator=make_generator(1, device), **l2)
                  - atnt(model, v2, K, perm=perm, temperature=cfg.temperature, generator=make_generator(1, device),
                         **l2)).abs().max())
gap_rtp = float((pgd(rtp_objective, v2, maximize=True, generator=make_generator(2, device), **l2)
                 - rtp(model, v2, labels, generator=make_generator(2, device), **l2)).abs().max())
print(f"max |reference - radlib| of the attacked images: ATNT {gap_atnt:.1e}, RTP {gap_rtp:.1e}")
assert gap_atnt < 1e-4 and gap_rtp < 1e-4, "radlib's training attacks differ from their objectives"

# %% [markdown]
# ## 2 · Train COBRA, watch the losses, keep checkpoints
# `train(..., on_epoch_end=callback)` calls the callback with the epoch's mean losses; outside the smoke profile
# the figure below is redrawn after every epoch. `out=` is where `last.pt` (atomic, every epoch) and
# `history.json` go.

# %%
out_dir = Path(tempfile.mkdtemp(prefix="radlib_nb05_"))
live: list[dict[str, float]] = []


def on_epoch_end(epoch: int, means: dict[str, float], model: torch.nn.Module) -> None:
    live.append(means)
    if profile.name != "smoke":  # live redraw (smoke: one figure at the end keeps CI logs short)
        clear_output(wait=True)
        display(loss_curves(live, title=f"COBRA, epoch {epoch}/{cfg.epochs}"))


t0 = time.perf_counter()
res = train(cfg, ds, out=out_dir, device=device, progress=False, on_epoch_end=on_epoch_end)
first_call_s = time.perf_counter() - t0
if profile.name == "smoke":  # (outside smoke the live figure above is already the final one)
    display(loss_curves(res.history, title=f"COBRA training losses ({profile.name} profile)"))
print(f"trained {cfg.epochs} epochs in {first_call_s:.1f} s; files in {out_dir.name}: "
      f"{sorted(p.name for p in out_dir.iterdir())}")
history_file = json.loads((out_dir / "history.json").read_text())
print("history terms:", [k for k in history_file[-1]])

# %% [markdown]
# **Reload** the checkpoint with `load_trained` (weights only, `weights_only=True`) and check that it gives the
# same projections as the model `train` returned. Then call `train` **again with the same config and folder**:
# it finds `last.pt`, sees that every epoch is done and returns at once. A *different* config (here one more
# epoch) is refused rather than silently mixed with the old run — use a new folder or `resume=False`.

# %%
test_x = to_float(ds.test.images[:16].to(device))
reloaded = load_trained(out_dir / "last.pt", device=device)
with torch.no_grad():
    p_orig = res.model(test_x).projection
    p_reload = reloaded.model(test_x).projection
max_diff = float((p_orig - p_reload).abs().max())
print(f"reloaded checkpoint: max |projection difference| = {max_diff:.3g}")

t0 = time.perf_counter()
res_again = train(cfg, ds, out=out_dir, device=device, progress=False)
resume_s = time.perf_counter() - t0
with torch.no_grad():
    resume_diff = float((res_again.model(test_x).projection - p_orig).abs().max())
print(f"second call, same config: {resume_s:.2f} s (first call {first_call_s:.1f} s), "
      f"{len(res_again.history)} epochs in its history, max |projection difference| = {resume_diff:.3g}")

try:
    train(dataclasses.replace(cfg, epochs=cfg.epochs + 1), ds, out=out_dir, device=device, progress=False)
    refused = False
except ValueError as err:
    refused = True
    print("different config refused:", err)

# %% [markdown]
# ## 3 · The strength knob: attack steps and eps vs time per step
# Each training attack costs `attack_steps` forward+backward passes over the K-chunk batch, and COBRA runs
# three of them per step. We time one short run per setting (same batch size; `attack_steps=0` switches the
# attacks off), timing the second epoch only: the first one pays one-off costs (kernel selection for new shapes).
# Eps changes *how far* the attack may go, not how much it costs. On a CPU we also report the process CPU time,
# which is less noisy than wall time when other programs share the machine.

# %%
knob_steps = [0, 2] if profile.name == "smoke" else [0, 1, 3, profile.train_attack_steps * 2]
knob = [(s, cfg.eps) for s in sorted(set(knob_steps))] + [(max(knob_steps), cfg.eps / 2)]
n_steps = 1 if profile.name == "smoke" else 3


def time_per_step(kcfg: TrainConfig) -> tuple[float, float]:
    """Wall and CPU seconds per step of the *second* epoch (the first pays one-off warm-up costs)."""
    marks = []
    train(kcfg, ds, device=device, progress=False,
          on_epoch_end=lambda epoch, means, model: marks.append((time.perf_counter(), time.process_time())))
    (w0, c0), (w1, c1) = marks[-2], marks[-1]
    return (w1 - w0) / kcfg.steps_per_epoch, (c1 - c0) / kcfg.steps_per_epoch


rows_knob = []
for steps, eps in knob:
    wall, cpu = time_per_step(dataclasses.replace(cfg, epochs=2, steps_per_epoch=n_steps, attack_steps=steps,
                                                  eps=eps))
    rows_knob.append(dict(steps=steps, eps=eps, wall=wall, cpu=cpu))
on_cpu = device.type == "cpu"
print(f"batch {min(cfg.batch_size, ds.train.images.shape[0])} images x K={policy.K} chunks, device {device}")
print("| attack_steps | eps | wall s / step |" + (" CPU s / step |" if on_cpu else "") +
      "\n|---|---|---|" + ("---|" if on_cpu else ""))
for row in rows_knob:
    print(f"| {row['steps']} | {format_eps(row['eps'])} | {row['wall']:.2f} |"
          + (f" {row['cpu']:.2f} |" if on_cpu else ""))

cost = "cpu" if on_cpu else "wall"
fig, ax = plt.subplots(figsize=(5.5, 3.5))
full = [row for row in rows_knob if row["eps"] == cfg.eps]
half = [row for row in rows_knob if row["eps"] != cfg.eps]
ax.plot([r["steps"] for r in full], [r[cost] for r in full], marker="o", label=f"eps={format_eps(cfg.eps)}")
ax.plot([r["steps"] for r in half], [r[cost] for r in half], "s", ms=9, mfc="none",
        label=f"eps={format_eps(cfg.eps / 2)}")
ax.set_xlabel("PGD steps per training attack (attack_steps)")
ax.set_ylabel(f"{'CPU' if on_cpu else 'wall'} seconds per training step")
ax.set_title("Cost of the training attacks")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### What you should see
# - Every attack stays inside its eps-ball and inside [0, 1] (and actually moves the images).
# - The checkpoint reloads to the same projections; a second `train` call with the same config returns at once
#   with the same model; a changed config is refused.
# - The history holds every COBRA loss term: `nt_xent`, `opposite`, `cls` and their sum `loss`.
# - Time per step grows with `attack_steps` (roughly linearly), while halving eps costs the same (in `smoke`
#   the steps are so small, and a shared CI CPU so noisy, that the table may not show it).
# - In `cpu` (4 epochs) and `lab`: the loss curves fall over the first epochs.

# %%
for name, (clean_b, a) in adv.items():
    assert a.shape == clean_b.shape
    assert float((a - clean_b).abs().max()) <= cfg.eps + 1e-6, f"{name} left the eps-ball"
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0, f"{name} left [0, 1]"
    assert float((a - clean_b).abs().max()) > 0, f"{name} did not move the images"
assert (out_dir / "last.pt").exists() and (out_dir / "history.json").exists()
assert history_file == res.history
if device.type == "cpu":
    assert max_diff == 0.0 and resume_diff == 0.0, "reload must give identical projections"
else:
    assert max_diff <= 1e-5 and resume_diff <= 1e-5
assert len(res_again.history) == cfg.epochs and resume_s < first_call_s
assert refused, "a different config must not resume from the old checkpoint"
for h in res.history:
    assert {"nt_xent", "opposite", "cls", "loss"} <= set(h), f"missing loss terms in {sorted(h)}"
    assert abs(h["loss"] - (h["nt_xent"] + h["opposite"] + h["cls"])) < 1e-3 * max(1.0, abs(h["loss"]))
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    assert res.history[-1]["loss"] < res.history[0]["loss"], "the training loss should fall"
if profile.name in ("lab", "paper") and profile.asserts_claims:  # CI CPU timings are too noisy to assert on
    secs = {(row["steps"], row["eps"]): row[cost] for row in rows_knob}
    assert secs[(max(knob_steps), cfg.eps)] > secs[(0, cfg.eps)], "attacks must cost time"
print("checks passed")

# %% [markdown]
# ## Conclusion
# COBRA's training step is three PGD attacks and one update: ATPT pushes a view away from its positive, ATNT
# pulls each normal toward its own pseudo-anomaly, RTP attacks the transformation head; the contrastive loss and the
# head then learn from the attacked views. The attacks are most of the cost of a step, which is why their number of
# steps is the main knob of a training budget; checkpoints make a long run resumable.
#
# **References.** Madry et al., ICLR 2018 (adversarial training with PGD). Kim et al., NeurIPS 2020 (adversarial
# contrastive learning). The COBRA paper, ICLR 2025 (ATPT, ATNT, RTP).

# %% [markdown]
# ## Exercises
# 1. Set `attack_norm="l2"` with `eps=0.5` in the `TrainConfig`: redraw the batch figure. How do L2
#    perturbations look compared with L∞ ones?
# 2. Make the attacks stronger (`attack_steps=10`, the paper's setting) for a lab run: how much longer does an
#    epoch take, and does the attacked AUROC (notebook 06) improve?
# 3. Interrupt a training run (Kernel → Interrupt) and start it again with the same `out=`: check that the
#    finished model is identical to an uninterrupted run (radlib resumes bitwise-exactly on CPU).
# 4. Write an `on_epoch_end` callback that computes the clean AUROC of the current model on a few test images
#    every epoch (hint: `radlib.pipeline.fit_score` needs a `TrainResult`; `radlib.score.EnsembleScore.fit`
#    takes a model).

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 05.1 · PGD's random start** (any profile, under 1 s).
# Write `random_start(x, eps, generator)`: a start uniform in the L-inf eps-ball around x (each pixel moved by a
# value drawn uniformly from [-eps, eps] with `generator`), clipped to [0, 1]. The same generator seed must give
# the same start. Solution: [`solutions/05_adversarial_training.py`](solutions/05_adversarial_training.py).

# %%
from radlib.exercises import check_exercise


def random_start(x, eps, generator):
    """x: float (N, C, H, W) in [0, 1]; eps > 0; generator: torch.Generator -> float (N, C, H, W)."""
    # your code
    raise NotImplementedError


check_exercise("05.1", random_start)

# %% [markdown]
# **Exercise 05.2 · The learning-rate schedule** (any profile, under 1 s).
# Write `lr_factor(step, total, warmup)`: the factor radlib's training multiplies the learning rate by: linear
# from `0.1` to 1 over the first `warmup` steps, then half a cosine from 1 to 0 at step `total`. Solution:
# [`solutions/05_adversarial_training.py`](solutions/05_adversarial_training.py).

# %%
from radlib.exercises import check_exercise


def lr_factor(step, total, warmup):
    """0 <= step <= total, 0 <= warmup < total -> float in [0, 1]."""
    # your code
    raise NotImplementedError


check_exercise("05.2", lr_factor)
