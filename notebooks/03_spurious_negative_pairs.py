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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/03_spurious_negative_pairs.ipynb)
#
# # 03 · Spurious negative pairs: what NT-Xent pushes apart that belongs together
#
# **What you will learn**
# - how a multi-view contrastive batch with pseudo-anomalies is laid out (N images × K transforms × V views)
#   and what NT-Xent does with every pair of rows: pull (positive), push (negative) — and push by mistake
#   (**spurious negative**: two *different normal images*, which should map close together);
# - how many pairs of each kind there are, with the formulas, and why spurious negatives grow with the batch;
# - the paper's claim: spurious negatives *bend the adversarial direction* that adversarial contrastive training
#   (ATPT) uses, away from the normal → anomaly direction that a test-time attacker exploits — and how to
#   measure it yourself by comparing NT-Xent with `nt_xent_without_spurious`.
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
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

import radlib
from radlib.attacks import pgd
from radlib.augment import SimCLRAugment
from radlib.data import to_float
from radlib.device import make_generator
from radlib.losses import PairKind, nt_xent, nt_xent_without_spurious, pair_counts, pair_matrix
from radlib.pipeline import load_data, teaching_model
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import policy_for
from radlib.train import training_views

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
print(profile.banner(device, smoke_note=(
    "the pair counts are exact, but section 4 uses a random-init model on tiny data: its cosines are "
    "noise. Switch to RADLIB_PROFILE=lab on a GPU for a trained model.")))

# %% [markdown]
# ## 1 · The multi-view batch as a pair matrix
# A batch of N normal images is expanded into K chunks (chunk 0 = the normals, chunk k ≥ 1 = their
# pseudo-anomalies, notebook 02), and V augmented views of that block are stacked, **view-major**:
# row `v·K·N + k·N + i`. NT-Xent treats every row as its own instance. For an anchor row, each other row is:
#
# | kind | rule | what NT-Xent does | right? |
# |---|---|---|---|
# | **positive** | same image i, same transform k, other view | pulls together | yes |
# | **negative** | other image, other group (normal vs pseudo-anomaly) | pushes apart | yes |
# | **spurious negative** | other image, **same group** (e.g. two normals) | pushes apart | **no**: both are normal |
# | **opposite** | same image, other group (x vs its own T(x)) | pushes apart | yes — COBRA pushes these harder |
# | self | the row itself | excluded | — |

# %%
N, K, V = 4, 2, 2
pm = pair_matrix(N, K, V)
M = V * K * N
KIND_COLORS = {PairKind.SELF: "#222222", PairKind.POSITIVE: "#2ca02c", PairKind.NEGATIVE: "#9ecae1",
               PairKind.SPURIOUS_NEGATIVE: "#d62728", PairKind.OPPOSITE: "#9467bd"}
cmap = ListedColormap([KIND_COLORS[k] for k in PairKind])
row_names = [f"v{r // (K * N)} k{(r // N) % K} i{r % N}" for r in range(M)]

fig, ax = plt.subplots(figsize=(8, 7))
ax.imshow(pm.numpy(), cmap=cmap, vmin=-0.5, vmax=len(PairKind) - 0.5, interpolation="nearest")
for b in range(N, M, N):  # chunk boundaries (thin) and view boundaries (thick)
    lw = 2.5 if b % (K * N) == 0 else 0.8
    ax.axhline(b - 0.5, color="white", lw=lw)
    ax.axvline(b - 0.5, color="white", lw=lw)
ax.set_xticks(range(M), row_names, rotation=90, fontsize=7)
ax.set_yticks(range(M), row_names, fontsize=7)
ax.set_xlabel("other row j  (v = view, k = group: 0 normal / 1 pseudo-anomaly, i = image)")
ax.set_ylabel("anchor row a")
ax.legend(handles=[Patch(color=KIND_COLORS[k], label=k.name.lower().replace("_", " ")) for k in PairKind],
          bbox_to_anchor=(1.02, 1), loc="upper left", fontsize=9)
ax.set_title(f"pair_matrix(N={N}, K={K}, V={V}): {M}x{M} ordered pairs")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2 · How many pairs of each kind
# Per anchor row: 1 self, V−1 positives, V(K−1) opposite, V(N−1) spurious negatives, V(N−1)(K−1) negatives;
# multiply by M = V·K·N rows for the ordered-pair totals. `pair_counts` counts them on the matrix.

# %%
def formula_counts(n: int, k: int, v: int) -> dict[str, int]:
    """Ordered-pair counts of each kind from the per-row formulas, times M = V*K*N rows."""
    m = v * k * n
    return {"self": m, "positive": m * (v - 1), "negative": m * v * (n - 1) * (k - 1),
            "spurious_negative": m * v * (n - 1), "opposite": m * v * (k - 1)}


counted = pair_counts(pm)
table = pd.DataFrame({"counted (pair_counts)": counted, "formula": formula_counts(N, K, V)})
table["share of the NT-Xent denominator"] = [
    "—" if kind == "self" else f"{100 * c / (M * (M - 1)):.0f}%" for kind, c in counted.items()]
display(table)

# %% [markdown]
# Spurious negatives grow like V·(N−1) per anchor, so with batch size they quickly dominate the denominator of
# NT-Xent: with K=2, about **half** of what each anchor is pushed away from is another image of its *own* group.

# %%
Ns = [2, 4, 8, 16, 32, 64]
growth = {(k, v): [pair_counts(pair_matrix(n, k, v)) for n in Ns] for k, v in [(2, 2), (4, 2)]}
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 3.8))
for (k, v), rows in growth.items():
    ls = "-" if k == 2 else "--"
    for kind, color in [("spurious_negative", "#d62728"), ("negative", "#1f77b4"), ("positive", "#2ca02c"),
                        ("opposite", "#9467bd")]:
        ax0.plot(Ns, [r[kind] for r in rows], ls, marker="o", ms=3, color=color,
                 label=f"{kind.replace('_', ' ')} (K={k})")
    m = [v * k * n for n in Ns]
    ax1.plot(Ns, [100 * r["spurious_negative"] / (mm * (mm - 1)) for r, mm in zip(rows, m)], ls, marker="o",
             color="#d62728", label=f"K={k}, V={v}")
ax0.set_xscale("log", base=2)
ax0.set_yscale("log")
ax0.set_xlabel("N images per batch")
ax0.set_ylabel("ordered pairs in the batch")
ax0.set_title("pair counts vs batch size")
ax0.legend(fontsize=7, ncol=2)
ax1.set_xscale("log", base=2)
ax1.set_xlabel("N images per batch")
ax1.set_ylabel("% of each anchor's other rows")
ax1.set_ylim(0, 100)
ax1.set_title("share of spurious negatives in the denominator")
ax1.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 3 · Two losses that differ only by the spurious negatives
# `nt_xent_without_spurious` keeps the same positives and averaging as `nt_xent`, but drops the spurious
# negatives from each anchor's softmax denominator. Fewer positive terms in a denominator can only make
# `-log(positive / denominator)` smaller, so the variant is never larger than the standard loss.
#
# **The equation.** Rows `a` of the batch are unit projections $u_a$ (V views × K groups × N images), with
# similarities $s_{aj} = u_a^\top u_j / \tau$ ($\tau = 0.5$). $P(a)$ are the $V-1$ other views of the same
# instance; the denominator runs over every other row, split by the kind of pair (section 1):
#
# $$\mathcal{L}_\text{NT-Xent} = \frac{1}{|P|}\sum_a \sum_{p \in P(a)} -\log
#   \frac{e^{s_{ap}}}{\sum_{j \in P(a)} e^{s_{aj}} + \sum_{j \in O(a)} e^{s_{aj}}
#   + \underbrace{\textstyle\sum_{j \in S(a)} e^{s_{aj}}}_{\text{spurious negatives}} + \sum_{j \in N(a)} e^{s_{aj}}}$$
#
# with $O(a)$ the opposite pairs (same image, other group), $S(a)$ the spurious negatives (other image, same
# group) and $N(a)$ the true negatives. `nt_xent_without_spurious` deletes the underbraced sum. (SimCLR: Chen et
# al., ICML 2020, eq. 1; CSI: Tack et al., NeurIPS 2020, sec. 2.1, which adds the shifted instances as
# negatives; the COBRA paper, ICLR 2025, names the $S(a)$ pairs *spurious negative pairs* in its method section,
# and adds the opposite-pair term of notebook 04.) Ten lines of plain PyTorch, one pair at a time, give the same
# numbers as radlib:

# %%
def nt_xent_reference(z: torch.Tensor, V: int, K: int, N: int, tau: float = 0.5, drop_spurious: bool = False):
    u = F.normalize(z.double(), dim=1)  # rows: view-major, then group k, then image i
    group, image = torch.arange(V * K * N) // N % K, torch.arange(V * K * N) % N
    terms = []
    for a in range(V * K * N):
        spurious = [j for j in range(V * K * N) if image[j] != image[a] and group[j] == group[a]]
        keep = [j for j in range(V * K * N) if j != a and not (drop_spurious and j in spurious)]
        log_denominator = torch.logsumexp(torch.stack([u[a] @ u[j] / tau for j in keep]), 0)
        for p in (j for j in keep if group[j] == group[a] and image[j] == image[a]):  # P(a): other views
            terms.append(log_denominator - u[a] @ u[p] / tau)
    return torch.stack(terms).mean()


z_check = torch.randn(2 * 2 * 3, 8, generator=make_generator(SEED))  # V=2 views, K=2 groups, N=3 images
for drop, ours in ((False, nt_xent(z_check, n_views=2)), (True, nt_xent_without_spurious(z_check, 2, 2))):
    ref = nt_xent_reference(z_check, 2, 2, 3, drop_spurious=drop)
    print(f"{'without spurious' if drop else 'standard NT-Xent':17s} radlib {float(ours):.6f}   reference {float(ref):.6f}")
    assert abs(float(ours) - float(ref)) < 1e-5, "radlib's NT-Xent differs from the equation"

# %% [markdown]
# ## 4 · Do spurious negatives bend the adversarial direction?
# COBRA's argument (ICLR 2025): adversarial training for anomaly detection needs perturbations that move a
# normal image **toward the anomaly group** (inter-group), because that is exactly what a test-time in-attack
# does. Adversarial contrastive training (ATPT) perturbs a view to *maximise* NT-Xent. Maximising NT-Xent moves
# the anchor toward everything in its denominator — including the spurious negatives, i.e. the *other normals*.
# The paper says these pairs "introduce noise and misguide the direction of inter-group adversarial
# perturbations".
#
# We measure it. For a batch of normals x and their pseudo-anomalies T(x) (the policy's CutPaste / scar):
# 1. the **ATPT perturbation** δ of each normal view: one L∞ PGD step of size eps on the loss (standard vs
#    without spurious negatives), from `radlib.attacks.pgd`;
# 2. the **normal → anomaly direction** u: the input gradient that increases cos(z(x), z(T x)), i.e. moves the
#    projection of x toward the projection of its own pseudo-anomaly;
# 3. per image, **cos(δ, u)**, and the change Δ of cos(z(x), z(T x)) after the step (> 0: x moved toward T x).
#
# An L∞ step is eps·sign(gradient), so even a step that follows u perfectly has cos(δ, u) = cos(sign(u), u),
# about 0.7–0.8 for a dense gradient, not 1: read the left panel relative to that ceiling.

# %%
ds = load_data("surfaces", "metal", None, profile, seed=SEED)
policy = policy_for("surfaces")
model, model_desc = teaching_model(ds, profile, device=device, seed=SEED,
                                   cache=True)  # random-init in smoke, else CSI (cached)
augment = SimCLRAugment(crop=policy.K == 4)  # the training views (crop only for low-resolution K=4 data)
eps, T = profile.train_eps, 0.5
LOSSES = {"standard NT-Xent": lambda z: nt_xent(z, n_views=2, temperature=T),
          "without spurious": lambda z: nt_xent_without_spurious(z, 2, policy.K, temperature=T)}


def proj(x: torch.Tensor) -> torch.Tensor:
    return model(x).projection


def toward_anomaly(x: torch.Tensor, z_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """u = d/dx cos(z(x), z_t) per image, and the cosine itself."""
    x = x.clone().requires_grad_(True)
    c = F.cosine_similarity(proj(x), z_t, dim=1)
    (u,) = torch.autograd.grad(c.sum(), x)
    return u, c.detach()


g = torch.Generator(device="cpu").manual_seed(SEED)
x_all = to_float(ds.train.images)
B = min(profile.batch_size, len(x_all))
stats = {name: {"cos": [], "dcos": []} for name in LOSSES}
max_step = 0.0
loss_values = {name: [] for name in LOSSES}
for start in range(0, len(x_all) - B + 1, B):  # full batches only: the pair layout needs the same N per batch
    x = x_all[start:start + B].to(device)
    v1, v2, _ = training_views(x, policy, augment, g)  # (K*B) each: normals, then their pseudo-anomalies
    with torch.no_grad():
        z1, z2 = proj(v1), proj(v2)
        for name, fn in LOSSES.items():
            loss_values[name].append(float(fn(torch.cat([z1, z2]))))
    z_t = z1[B:2 * B]                               # projection of each normal's own pseudo-anomaly (view 1)
    u, c0 = toward_anomaly(v1[:B], z_t)
    for name, fn in LOSSES.items():
        adv = pgd(lambda a, fn=fn: fn(torch.cat([proj(a), z2])), v1, eps=eps, steps=1, alpha=eps,
                  random_start=False, maximize=True)
        delta = (adv - v1)[:B]
        max_step = max(max_step, float((adv - v1).abs().max()))
        stats[name]["cos"].append(F.cosine_similarity(delta.flatten(1), u.flatten(1), dim=1).cpu())
        with torch.no_grad():
            stats[name]["dcos"].append((F.cosine_similarity(proj(adv[:B]), z_t, dim=1) - c0).cpu())
stats = {name: {k: torch.cat(v).numpy() for k, v in s.items()} for name, s in stats.items()}
for name, s in stats.items():
    print(f"{name:17s} median cos(delta, u) {np.median(s['cos']):+.3f} · median Δcos to T(x) "
          f"{np.median(s['dcos']):+.4f} · mean loss {np.mean(loss_values[name]):.3f}")

# %%
colors = {"standard NT-Xent": "tab:red", "without spurious": "tab:green"}
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for ax, key, ylabel in [(axes[0], "cos", "cos(ATPT step δ, normal→anomaly direction u)"),
                        (axes[1], "dcos", "Δ cos(z(x), z(Tx)) after the step")]:
    parts = ax.violinplot([stats[n][key] for n in LOSSES], showmedians=True)
    for body, n in zip(parts["bodies"], LOSSES):
        body.set_facecolor(colors[n])
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xticks([1, 2], list(LOSSES))
    ax.set_ylabel(ylabel, fontsize=9)
axes[0].set_title("alignment of the ATPT step with the inter-group direction", fontsize=10)
axes[1].set_title("does the step move x toward its own pseudo-anomaly?", fontsize=10)
a, b = stats["standard NT-Xent"]["cos"], stats["without spurious"]["cos"]
axes[2].scatter(a, b, s=12, alpha=0.7)
lim = [min(a.min(), b.min()), max(a.max(), b.max())]
axes[2].plot(lim, lim, "k--", lw=0.8, label="equal")
axes[2].set_xlabel("cos(δ, u), standard NT-Xent")
axes[2].set_ylabel("cos(δ, u), without spurious")
axes[2].set_title(f"per image: {100 * np.mean(b > a):.0f}% above the diagonal", fontsize=10)
axes[2].legend()
fig.suptitle(f"{len(a)} normal images of surfaces/{ds.normal}, {model_desc}, one L∞ step of eps={eps * 255:.0f}/255")
fig.tight_layout()
plt.show()

# %% [markdown]
# **Reading the figure.** The paper predicts the green distributions to sit to the *right* of the red ones: without
# the spurious negatives, the ATPT step should be better aligned with the normal → anomaly direction (left)
# and move x further toward its own pseudo-anomaly (middle). What you actually see depends on the model:
# - in `smoke` the model is random and the batch tiny: the two variants differ, but in no consistent direction —
#   this run proves the measurement code works, it is not evidence either way;
# - with a trained model (`lab`) look at the medians and at the share of points above the diagonal (right),
#   and repeat with another seed before believing a small difference. Note that one gradient step probes only
#   the *local* direction; COBRA's opposite-pair term is its remedy, studied in notebook 04.

# %% [markdown]
# ### What you should see
# - The hand formulas give the counts of `pair_counts` for N=2, K=2, V=2: 8 self, 8 positive, 16 opposite,
#   16 spurious negatives, 16 negatives (64 = 8×8 ordered pairs) — and for every N of the growth plot.
# - Both losses are finite, and the loss without spurious negatives is never larger than the standard one.
# - Every ATPT step stays inside the eps-ball, and the two losses give different steps (spurious negatives
#   do change the gradient).
# - In `cpu` (measured: the medians are printed above) and `lab`: the step
#   *without* spurious negatives is better aligned with the normal → pseudo-anomaly direction u — the paper's
#   claim that spurious negatives bend the inter-group adversarial direction. (Not in `smoke`: a random-init
#   model's directions are noise.)

# %%
small = pair_counts(pair_matrix(2, 2, 2))
assert small == {"self": 8, "positive": 8, "negative": 16, "spurious_negative": 16, "opposite": 16}, small
assert small == formula_counts(2, 2, 2) and sum(small.values()) == 64
assert counted == formula_counts(N, K, V) and torch.equal(pm, pm.T)
for (k, v), rows in growth.items():
    assert rows == [formula_counts(n, k, v) for n in Ns], f"growth counts K={k}, V={v}"
for std, wo in zip(loss_values["standard NT-Xent"], loss_values["without spurious"]):
    assert np.isfinite(std) and np.isfinite(wo), "a loss is not finite"
    assert wo <= std + 1e-6, f"without-spurious loss {wo} > standard {std}"
for name, s in stats.items():
    assert np.isfinite(s["cos"]).all() and np.isfinite(s["dcos"]).all(), name
assert max_step <= eps + 1e-6, f"an ATPT step left the eps-ball: {max_step} > {eps}"
assert not np.allclose(stats["standard NT-Xent"]["cos"], stats["without spurious"]["cos"]), \
    "removing the spurious negatives should change the ATPT step"
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    med = {name: float(np.median(s["cos"])) for name, s in stats.items()}
    assert med["without spurious"] > med["standard NT-Xent"], \
        f"spurious negatives should bend the ATPT step away from the inter-group direction: {med}"
print("checks passed")

# %% [markdown]
# ## Conclusion
# In a contrastive batch of normal images, every *other* normal image is a negative: NT-Xent pushes normals
# apart from each other although they belong to one group. These spurious negatives are most of each anchor's
# denominator, and removing them changes the direction of the adversarial perturbation that adversarial contrastive
# training uses — the observation COBRA starts from.
#
# **References.** Chen et al., *A Simple Framework for Contrastive Learning of Visual Representations* (SimCLR),
# ICML 2020. Khosla et al., *Supervised Contrastive Learning*, NeurIPS 2020. Kim et al., *Adversarial Self-Supervised
# Contrastive Learning*, NeurIPS 2020. The COBRA paper, ICLR 2025.

# %% [markdown]
# ## Exercises
# 1. Redraw the pair matrix for K=4 (rotations) and V=4 (COBRA's four views [v1, v2, ATPT, ATNT]).
#    What fraction of each anchor's denominator is spurious now? (Hint: `formula_counts(N, 4, 4)` from section 2.)
# 2. Replace one PGD step by 10 (`steps=10, alpha=2.5 * eps / 10`): does the gap between the two losses grow?
# 3. Use `radlib.losses.supcon_loss` with group labels (`group_labels(N, K, 2)`): the spurious negatives become
#    positives. Add it as a third variant to section 4.
# 4. Shrink the batch (B = 4, 8, 16, ...): with fewer spurious negatives per anchor, does the standard loss's
#    step get closer to the without-spurious one?

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 03.1 · Count the pairs of a COBRA batch** (any profile, under 1 s).
# Write `pair_kind_counts(N, K, V)`: for N images, K transform groups and V views (M = V*K*N rows), the number of
# ordered pairs (a, b), a != b, of each kind: `positive` (same image and group, other view), `opposite` (same
# image, other group), `spurious_negative` (other image, same group), `negative` (other image, other group).
# Closed formulas are enough. Solution:
# [`solutions/03_spurious_negative_pairs.py`](solutions/03_spurious_negative_pairs.py).

# %%
from radlib.exercises import check_exercise


def pair_kind_counts(N, K, V):
    """N, K, V >= 1 -> dict with the four keys, int values."""
    # your code
    raise NotImplementedError


check_exercise("03.1", pair_kind_counts)

# %% [markdown]
# **Exercise 03.2 · The spurious-negative mask** (any profile, under 1 s).
# Write `spurious_mask(N, K, V)`: the (M, M) bool matrix, True where rows a and b are a spurious negative pair, in
# the canonical layout row = v*K*N + k*N + i. Solution:
# [`solutions/03_spurious_negative_pairs.py`](solutions/03_spurious_negative_pairs.py).

# %%
from radlib.exercises import check_exercise


def spurious_mask(N, K, V):
    """N, K, V >= 1 -> bool (M, M), M = V*K*N."""
    # your code
    raise NotImplementedError


check_exercise("03.2", spurious_mask)
