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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/04_opposite_pairs.ipynb)
#
# # 04 · Opposite pairs: pushing a normal image away from its own pseudo-anomaly
#
# **What you will learn**
# - what an *opposite pair* is: a normal image and its own pseudo-anomaly (CutPaste, rotation, ...), which
#   look almost identical but belong to different groups;
# - why radlib writes the opposite-pair term in a **bounded** soft-hinge form, and what goes wrong with the
#   paper's unbounded `-log(1 - sim)`-style form (infinite loss and gradient exactly where training starts);
# - how to switch the term on and off (`cobra` vs `cobra_no_opposite`, same seed, same recipe) and read its
#   effect on the *margin*: the cosine similarity between a normal test image and its own pseudo-anomaly;
# - how the two variants compare on clean and attacked AUROC.
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
import math
import os

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import display

import radlib
from radlib.data import to_float
from radlib.device import make_generator
from radlib.losses import opposite_pair_loss
from radlib.metrics import format_mean_std
from radlib.pipeline import default_attacks, load_data, run_method, untrained
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import policy_for
from radlib.viz import auroc_bars, use_style

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
use_style()  # radlib's one plotting style (seaborn whitegrid)
if profile.name == "smoke":
    # this notebook trains two adversarial detectors: trim the (already tiny) smoke sizes to stay within CI's budget
    profile = profile.replace(n_train=profile.batch_size // 2, n_test=profile.n_test // 2,
                              batch_size=profile.batch_size // 2)
print(profile.banner(device))

# %% [markdown]
# ## 1 · The loss itself, on one synthetic pair
# Take a unit vector `a` (the projection of a normal image) and a second unit vector `b` (the projection of
# its pseudo-anomaly) at an angle θ from it, so `cos(a, b) = cos θ`. radlib's term is a smooth hinge on
# the cosine,
#
# $$\ell_\text{radlib}(\cos) = t \cdot \mathrm{softplus}\big((\cos - m)/t\big), \qquad t = 0.1,\ m = 0,$$
#
# and the paper writes the repulsion in a log form; the simplest such form is
#
# $$\ell_\text{log}(\cos) = -\log(1 - \cos).$$
#
# Both fall as the pair moves apart. The difference is at the other end: a freshly initialised network maps
# an image and its CutPaste copy to almost the same point (cos ≈ 1, see section 3), and there the log form is
# infinite with an infinite gradient.

# %%
def pair_z(theta: float) -> torch.Tensor:
    """Two rows in radlib's layout (V=1 view, K=2 chunks, N=1 image): [normal, its pseudo-anomaly]."""
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([math.cos(theta), math.sin(theta)])
    return torch.stack([a, b])


def log_form(cos: torch.Tensor) -> torch.Tensor:
    return -torch.log1p(-cos)  # -log(1 - cos): +inf at cos = 1


thetas = np.linspace(0.0, math.pi, 181)
curves = {f"radlib, t={t}": [float(opposite_pair_loss(pair_z(th), n_views=1, K=2, temperature=t)) for th in thetas]
          for t in (0.1, 0.3)}
radlib_loss = np.array(curves["radlib, t=0.1"])
cos = torch.tensor(np.cos(thetas), dtype=torch.float64).clamp(-1, 1)
log_loss = log_form(cos).numpy()

# gradients with respect to the cosine (what the encoder feels), by autograd
c = cos.clone().requires_grad_(True)
g_radlib = torch.autograd.grad((0.1 * F.softplus(c / 0.1)).sum(), c)[0].numpy()
c = cos[1:].clone().requires_grad_(True)  # skip theta = 0, where the log form's gradient is infinite
g_log = torch.autograd.grad(log_form(c).sum(), c)[0].numpy()

deg = np.degrees(thetas)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, vals in curves.items():
    ax0.plot(deg, vals, label=name)
ax0.plot(deg, log_loss, "k--", label=r"log form $-\log(1-\cos)$")
ax0.axhline(1 + 0.1 * math.log(2), color="tab:blue", ls=":", lw=1, label="radlib bound (t=0.1)")
ax0.set_ylim(-1, 4)
ax0.set_xlabel("angle between normal and its pseudo-anomaly (degrees)")
ax0.set_ylabel("loss")
ax0.set_title("Opposite-pair loss vs angle")
ax0.legend(fontsize=8)
ax1.semilogy(deg, np.abs(g_radlib), label="radlib (t=0.1): sigmoid(cos/t) ∈ (0, 1)")
ax1.semilogy(deg[1:], np.abs(g_log), "k--", label="log form: 1/(1 - cos) → ∞")
ax1.set_xlabel("angle (degrees)")
ax1.set_ylabel("|d loss / d cos| (log scale)")
ax1.set_title("How hard the loss pushes")
ax1.legend(fontsize=8)
fig.suptitle("Bounded vs unbounded repulsion: the log form explodes where training starts (angle ≈ 0)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The bound holds for *any* input, not just unit vectors in the plane: scale the projections, make them identical,
# use many views and pseudo-anomalies — the term never exceeds `(1 - m) + t·ln 2`. That is what keeps it from
# swamping NT-Xent and the K-way head (the official code's variant subtracts a log-ratio and is unbounded below).

# %%
gen = make_generator(SEED)
worst = []
for scale in (1e-3, 1.0, 1e3):
    z = torch.randn(2 * 4 * 8, 16, generator=gen) * scale           # V=2 views, K=4 chunks, N=8 images
    z_same = z.reshape(2, 4, 8, 16)[:, :1].expand(2, 4, 8, 16).reshape(-1, 16)  # every pseudo-anomaly == its normal
    worst += [float(opposite_pair_loss(z, n_views=2, K=4)), float(opposite_pair_loss(z_same, n_views=2, K=4))]
BOUND = 1.0 + 0.1 * math.log(2)
print(f"largest value over random and collapsed inputs: {max(worst):.4f}  (bound {BOUND:.4f})")

# %% [markdown]
# **The whole term, as an equation.** Over a batch of V views × K groups × N images in radlib's layout (row
# $u_{v,k,i}$, unit projection of view $v$ of chunk $k$ of image $i$; $k = 0$ the normal image), the opposite
# pairs are the normal image and each of its own pseudo-anomalies, *within* a view:
#
# $$\mathcal{L}_\text{opp} = \frac{1}{V N (K-1)} \sum_{v} \sum_{i} \sum_{k \ge 1}
#   t\,\mathrm{softplus}\Big(\frac{u_{v,0,i}^\top u_{v,k,i} - m}{t}\Big)$$
#
# The COBRA paper (ICLR 2025, method section: the opposite pairs $A$–$A^\gamma$) repels these pairs in a log form;
# the released training loop leaves the term out (`cobra_no_opposite` below is that loop). The same sum, one pair
# at a time, against radlib:

# %%
def opposite_reference(z: torch.Tensor, V: int, K: int, N: int, t: float = 0.1, m: float = 0.0) -> torch.Tensor:
    u = F.normalize(z.double(), dim=1).view(V, K, N, -1)
    terms = [t * F.softplus((u[v, 0, i] @ u[v, k, i] - m) / t) for v in range(V) for i in range(N) for k in range(1, K)]
    return torch.stack(terms).mean()


z_check = torch.randn(2 * 3 * 4, 8, generator=make_generator(SEED))  # V=2, K=3, N=4
for m in (0.0, 0.5):
    ours, ref = opposite_pair_loss(z_check, n_views=2, K=3, margin=m), opposite_reference(z_check, 2, 3, 4, m=m)
    print(f"margin {m}: radlib {float(ours):.6f}   reference {float(ref):.6f}")
    assert abs(float(ours) - float(ref)) < 1e-5, "radlib's opposite-pair term differs from the equation"

# %% [markdown]
# ## 2 · Train COBRA with and without the term
# Same data, same seed, same profile recipe; the only difference is the opposite-pair term in the loss.
# `cobra_no_opposite` is what the official training loop actually runs.

# %%
ds = load_data(*profile.dataset, None, profile, seed=SEED)  # the profile's teaching data: surfaces/metal
print(ds.summary())
policy = policy_for(ds.name)
print(policy.describe())

attacks = default_attacks(profile, ds.image_size)
print("attack:", attacks[0].describe())
SEEDS = list(range(SEED, SEED + profile.seeds))  # cpu and above: 3 seeds, so the effect comes with its spread
METHODS = ("cobra", "cobra_no_opposite")
seed_runs = {m: [run_method(m, ds, profile, device=str(device), seed=s, attacks=attacks, progress=False,
                            cache=True)  # cache: notebook 09 reuses these, 00 trained cobra seed 0
                 for s in SEEDS] for m in METHODS}
runs = {m: rs[0] for m, rs in seed_runs.items()}  # the first seed, for the pictures below
for m, rs in seed_runs.items():
    terms = [k for k in rs[0].train.history[-1] if k not in ("epoch", "lr", "seconds")]
    print(f"{m:18s} loss terms {terms}\n{'':18s} clean AUROC per seed "
          f"{[round(r.eval.clean_auroc, 1) for r in rs]}, attacked {[round(r.eval.robust_auroc, 1) for r in rs]} "
          f"(trained {sum(r.train.seconds for r in rs):.0f} s{', some from the cache' if any(r.cached for r in rs) else ''})")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for m, r in runs.items():
    h = r.train.history
    ax.plot([e["epoch"] for e in h], [e["nt_xent"] for e in h], marker="o", label=f"{m}: nt_xent")
    if "opposite" in h[0]:
        ax.plot([e["epoch"] for e in h], [e["opposite"] for e in h], marker="s", label=f"{m}: opposite")
ax.set_xlabel("epoch")
ax.set_ylabel("loss (epoch mean)")
ax.set_title("Training history: the opposite term exists only in `cobra`")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3 · The margin: how far is a normal test image from its own pseudo-anomaly?
# For every normal test image `x` we build its pseudo-anomaly with the same policy as in training
# (`policy.expand`), project both with the trained encoder, and measure the cosine similarity of the two
# projections. Low similarity = a wide margin between the normal group and the pseudo-anomaly group.
# An untrained network of the same architecture is shown as the starting point.

# %%
@torch.no_grad()
def opposite_cosines(model: torch.nn.Module, images: torch.Tensor, batch: int = 128) -> np.ndarray:
    """cos(projection of x, projection of its own pseudo-anomaly) for every image (every chunk k >= 1)."""
    out = []
    model.eval()
    for s in range(0, images.shape[0], batch):
        x = to_float(images[s:s + batch].to(device))
        xk, _ = policy.expand(x, generator=make_generator(SEED + s, device))
        z = F.normalize(model(xk).projection.float(), dim=1).view(policy.K, x.shape[0], -1)
        out.append((z[:1] * z[1:]).sum(-1).flatten().cpu())
    return torch.cat(out).numpy()


normals = ds.test.images[ds.test.labels == 0]
cosines = {"untrained": opposite_cosines(untrained(runs["cobra"].train.config, device=device).model, normals)}
cosines.update({m: opposite_cosines(r.train.model, normals) for m, r in runs.items()})  # first seed: the histogram
mean_cos = {m: np.array([cosines[m].mean()] + [opposite_cosines(r.train.model, normals).mean() for r in rs[1:]])
            for m, rs in seed_runs.items()}  # per seed (the first seed's cosines are computed once, above)

fig, ax = plt.subplots(figsize=(7, 3.8))
lo = float(min(c.min() for c in cosines.values()))
lo = max(-1.0, lo - 0.05 * (1.0 - lo) - 1e-3)  # zoom on the occupied range (cosines near 1 early in training)
bins = np.linspace(lo, 1.0, 41)
for (name, cvals), color in zip(cosines.items(), ("grey", "tab:green", "tab:orange")):
    ax.hist(cvals, bins=bins, alpha=0.55, color=color, label=f"{name} (mean {cvals.mean():+.3f})")
if lo < 0:
    ax.axvline(0, color="k", ls=":", lw=1, label="margin m = 0 (where the term stops pushing)")
ax.set_xlabel("cos(normal test image, its own pseudo-anomaly)  [projection space]")
ax.set_ylabel("number of normal test images")
ax.set_title(f"Opposite-pair margin (seed {SEED}): lower = normal and pseudo-anomaly further apart")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4 · Clean and attacked AUROC of both variants

# %%
display(auroc_bars({m: [r.eval for r in rs] for m, rs in seed_runs.items()},
                   title="With vs without the opposite-pair term"))
rob = {m: np.array([r.eval.robust_auroc for r in rs]) for m, rs in seed_runs.items()}
effect = rob["cobra"] - rob["cobra_no_opposite"]  # per seed: same seed, same data, only the term differs
margin_effect = mean_cos["cobra"] - mean_cos["cobra_no_opposite"]
for m in METHODS:
    print(f"{m:18s} clean {format_mean_std([r.eval.clean_auroc for r in seed_runs[m]])}  attacked "
          f"{format_mean_std(rob[m])}  mean opposite cos {format_mean_std(mean_cos[m], 3)}  ({len(SEEDS)} seeds)")
print(f"effect of the term: attacked AUROC {format_mean_std(effect)} points, mean opposite cos "
      f"{format_mean_std(margin_effect, 3)} (per seed: {np.round(effect, 1).tolist()}, {np.round(margin_effect, 3).tolist()})")

# %% [markdown]
# ### What you should see
# - Section 1: radlib's term falls strictly as the angle grows and never exceeds `1 + t·ln 2`, even on
#   collapsed or huge inputs; the log form is infinite (with an infinite gradient) at angle 0.
# - The `opposite` term shows up in the training history of `cobra` only.
# - Every attacked AUROC is at most the clean one.
# - In `cpu` (3 seeds, measured) and `lab`: the untrained network puts each normal image almost on top of its
#   pseudo-anomaly (cos near 1) and training opens a margin. In `cpu` (`surfaces/metal`, CutPaste scars) the term
#   gives the lower cosines *and* the higher attacked AUROC on every seed (the printout above says by how much).
#   On `digits` with rotations, the `cpu` data until 2026-12-04, it did neither beyond the seed noise: the K-way
#   head and NT-Xent already pushed every rotation past the margin m = 0, so the soft hinge had nothing left to push.
#   A scar changes a few per cent of a texture, so a normal image and its pseudo-anomaly stay close unless
#   something pushes them apart — which is what the term is for.
# - In `lab` (not yet measured) the claim is that the term gives the lower cosines, on every seed.

# %%
assert np.all(np.diff(radlib_loss) < 0), "the loss must fall strictly as the angle grows"
for vals in curves.values():
    assert np.all(np.diff(vals) < 0)
assert radlib_loss.max() <= BOUND and max(worst) <= BOUND + 1e-6, "the loss must stay bounded"
assert np.isinf(log_loss[0]) and log_loss[1] > 5 * BOUND, "the log form is unbounded at angle 0"
assert np.all(np.diff(log_loss[1:]) < 0), "the log form also falls with the angle"
for m, rs in seed_runs.items():
    for r in rs:
        assert r.eval.robust_auroc <= r.eval.clean_auroc + 1.0, f"{m}: the attack raised the AUROC"
assert all("opposite" in h for r in seed_runs["cobra"] for h in r.train.history), "cobra must log the opposite term"
assert all("opposite" not in h for r in seed_runs["cobra_no_opposite"] for h in r.train.history), \
    "no opposite term expected"
assert len(effect) == len(SEEDS) == profile.seeds
assert all(np.all((c >= -1 - 1e-5) & (c <= 1 + 1e-5)) for c in cosines.values())
assert len(cosines["cobra"]) == (policy.K - 1) * len(normals)
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    assert cosines["untrained"].mean() > 0.5, "an untrained network should barely separate x from its pseudo-anomaly"
    if profile.name == "cpu":  # measured (surfaces/metal, 3 seeds): the term widens the margin and buys robustness
        assert (mean_cos["cobra"] < cosines["untrained"].mean() - 0.1).all(), "cobra: training should open a margin"
        assert (margin_effect < 0).all(), "the opposite term should widen the normal / pseudo-anomaly margin"
        assert (effect > 0).all(), "the opposite term should raise the attacked AUROC on every seed"
        assert (rob["cobra"] > 10).all(), "COBRA should keep part of its AUROC under attack (CSI: ~0, notebook 00)"
    else:  # lab / paper: not yet measured
        for m in METHODS:
            assert (mean_cos[m] < cosines["untrained"].mean() - 0.3).all(), f"{m}: training should open a margin"
        assert (margin_effect < 0).all(), "the opposite term should widen the normal / pseudo-anomaly margin"
print("checks passed")

# %% [markdown]
# ## Conclusion
# An opposite pair is a normal image and its own pseudo-anomaly: nearly the same pixels, different groups. A
# bounded soft hinge on their cosine repels them without the infinite loss of a log form at the start of training.
# Whether that buys anything depends on how close the pairs start: for a small scar on a texture they start on top of
# each other and the term widens the margin and the attacked AUROC on every seed here; for a rotated digit the rest
# of the loss already separates them. Report the spread before you report an effect.
#
# **References.** The COBRA paper, ICLR 2025 (opposite pairs; not in its released training loop). Tack et al.,
# NeurIPS 2020 (shifted instances as negatives).

# %% [markdown]
# ## Exercises
# 1. Plot the loss for `margin=0.5` and `margin=-0.5`: where does each stop pushing? Why does radlib default
#    to `margin=0` (orthogonal) rather than antipodal pairs when K = 4?
# 2. Train `cobra` with `opposite_weight=0.1` and `opposite_weight=5` (`run_method(..., opposite_weight=...)`):
#    how do the margin histogram and the attacked AUROC move?
# 3. Replace radlib's term with the log form in a copy of the loss and train for a few epochs: watch the
#    first steps' loss values (hint: `radlib.train.TrainingDiverged`).
# 4. Use `opposite_pair_loss(..., include_anomaly_pairs=True)` on a K=4 rotation policy (`digits`): what happens
#    to the cosines between *different* pseudo-anomalies of the same image?

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 04.1 · All cosines at once** (any profile, under 1 s).
# Write `cosine_matrix(z)`: the (M, M) matrix of cosine similarities of the rows of z, with one matrix product.
# Solution: [`solutions/04_opposite_pairs.py`](solutions/04_opposite_pairs.py).

# %%
from radlib.exercises import check_exercise


def cosine_matrix(z):
    """z: float (M, d) -> float (M, M) in [-1, 1]."""
    # your code
    raise NotImplementedError


check_exercise("04.1", cosine_matrix)

# %% [markdown]
# **Exercise 04.2 · The opposite-pair term** (any profile, under 1 s).
# Write `opposite_term(z, V, K)`: COBRA's bounded opposite-pair term as radlib writes it (margin 0, `t = 0.1`):
# within each view, the cosine of each normal projection (k = 0) with each of its own pseudo-anomalies (k >= 1),
# then the mean of t * softplus(cos / t) over all these pairs. Solution:
# [`solutions/04_opposite_pairs.py`](solutions/04_opposite_pairs.py).

# %%
from radlib.exercises import check_exercise


def opposite_term(z, V, K):
    """z: float (V*K*N, d) in the canonical layout; V, K >= 1 -> scalar."""
    # your code
    raise NotImplementedError


check_exercise("04.2", opposite_term)
