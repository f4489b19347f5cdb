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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/01_anomaly_detection_under_attack.ipynb)
#
# # 01 · Anomaly detection, AUROC, and what an attack on the score does
#
# **What you will learn**
# - what a *one-class* split is: the detector trains on normal images only and meets anomalies first at test time;
# - what an anomaly score is (one number per image, **higher = more anomalous**) and how to read score histograms;
# - what AUROC measures: the probability that a random anomaly scores above a random normal image — computed
#   by hand with a pairwise count and checked against `radlib.evaluate.auroc`, then drawn as an ROC curve;
# - how a PGD attack on the score works in its two halves: the **in-attack** (normals pushed up), the
#   **out-attack** (anomalies pushed down), and both together — and why a clean contrastive detector (CSI)
#   collapses under them;
# - what an adversarial image looks like: indistinguishable from the clean one, with a perturbation bounded by eps.
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
import torch
from IPython.display import display
from sklearn.metrics import roc_curve

import radlib
from radlib.attacks import pgd
from radlib.data import to_float
from radlib.evaluate import AttackSpec, auroc, evaluate
from radlib.viz import plot_score_histograms, value_bars
from radlib.pipeline import load_data, run_method
from radlib.profiles import get_profile
from radlib.reference import reference_rows

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
print(profile.banner(device))  # in smoke: a reminder that the numbers teach nothing

# %% [markdown]
# ## 1 · A one-class split
# In one-class anomaly detection the **training split holds only normal images** (here, the profile's teaching
# data `surfaces/metal`: defect-free metal surfaces). Nobody shows the detector a scratch or a hole while it learns; it must learn what *normal* looks
# like and flag whatever departs from it. The **test split** mixes normal images (label 0) and anomalies
# (label 1, with several defect types) — the labels are used only to measure the detector, never to train it.

# %%
ds = load_data(*profile.dataset, None, profile, seed=SEED)  # the profile's teaching data: surfaces/metal
print(ds.summary())

train_labels, test_labels = ds.train.labels.numpy(), ds.test.labels.numpy()
test_defects = [ds.defect_types[int(d)] for d in ds.test.defect]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [1, 2.2]})
ax0.bar(["train", "test"], [(train_labels == 0).sum(), (test_labels == 0).sum()], color="tab:blue",
        label="normal (label 0)")
ax0.bar(["train", "test"], [(train_labels == 1).sum(), (test_labels == 1).sum()],
        bottom=[(train_labels == 0).sum(), (test_labels == 0).sum()], color="tab:red", label="anomalous (label 1)")
ax0.set_ylabel("number of images")
ax0.set_title("one-class split: no anomaly in train")
ax0.legend(fontsize=8)
names, counts = np.unique(test_defects, return_counts=True)
ax1.bar(names, counts, color=["tab:blue" if n == "good" else "tab:red" for n in names])
ax1.set_ylabel("test images")
ax1.set_xlabel("defect type (good = normal)")
ax1.set_title("what the test split holds")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 2 · Train a detector and look at its anomaly scores
# We train CSI (contrastive learning with pseudo-anomalies, no adversarial training) with the profile's
# recipe and fit the profile's anomaly score (`profile.score`, printed below: the CSI ensemble score, a feature
# kNN or the patch score of notebook 00): one number per image, higher = more anomalous. `run_method` does
# both (with `attacks=[]` we evaluate ourselves below). We then call `evaluate` once, with three attacks
# described as plain data (`AttackSpec`), and keep the attacked images for section 5.

# %%
run = run_method("csi", ds, profile, device=str(device), seed=SEED, attacks=[], progress=False,
                 cache=True)  # trained once: a rerun, or notebook 00's CSI, loads it from runs/cache
score = run.score
print(f"score: {run.eval.protocol['score_kind']} ({type(score).__name__})")
eps = profile.eps_for(ds.image_size)
specs = [AttackSpec(method="pgd", mode=mode, eps=eps, steps=profile.eval_steps, name=f"PGD {mode}")
         for mode in ("in", "out", "both")]
for s in specs:
    print(f"{s.name:9s} {s.describe()}")
result = evaluate(score, ds.test, attacks=specs, device=device, seed=SEED, keep_adversarial=True)
labels = result.labels
clean = result.clean_scores
print(f"trained {run.train.seconds:.0f} s · clean AUROC {result.clean_auroc:.1f}")

# %%
edges = np.histogram_bin_edges(clean, bins=30)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(clean[labels == 0], bins=edges, alpha=0.6, color="tab:blue", label="normal test images")
ax.hist(clean[labels == 1], bins=edges, alpha=0.6, color="tab:red", label="anomalous test images")
ax.set_xlabel("anomaly score (higher = more anomalous)")
ax.set_ylabel("number of test images")
ax.set_title("Clean anomaly scores: a good detector puts the red mass to the right of the blue")
ax.legend()
plt.show()

# %% [markdown]
# ## 3 · AUROC, by hand
# A threshold t turns the score into a decision (anomalous if score > t). AUROC summarises **every**
# threshold at once, and it has a simple meaning: pick one anomaly and one normal image at random;
# AUROC is the probability that the anomaly gets the higher score (ties count ½). So we can compute it
# with a pairwise count over all (anomaly, normal) pairs — the matrix below is exactly that count.

# %%
def auroc_by_hand(scores: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Percent of (anomaly, normal) pairs ordered correctly (ties 1/2), and the pair matrix itself."""
    s_anom, s_norm = scores[labels == 1], scores[labels == 0]
    wins = (s_anom[:, None] > s_norm[None, :]).astype(float) + 0.5 * (s_anom[:, None] == s_norm[None, :])
    return 100.0 * wins.mean(), wins


hand, wins = auroc_by_hand(clean, labels)
lib = auroc(clean, labels)
print(f"AUROC by hand (pairwise count) {hand:.4f}  ·  radlib.evaluate.auroc {lib:.4f}")

order_a = np.argsort(clean[labels == 1])
order_n = np.argsort(clean[labels == 0])
fig, ax = plt.subplots(figsize=(5.5, 4.5))
ax.imshow(wins[order_a][:, order_n], cmap="RdYlGn", vmin=0, vmax=1, aspect="auto", origin="lower",
          interpolation="nearest")
ax.set_xlabel("normal test images (sorted by score)")
ax.set_ylabel("anomalous test images (sorted by score)")
ax.set_title(f"green = anomaly scored above normal\nfraction green = AUROC = {hand:.1f}%")
plt.show()

# %% [markdown]
# The **ROC curve** draws the same thing threshold by threshold: the true-positive rate (anomalies caught)
# against the false-positive rate (normals flagged) as t sweeps from +∞ down to −∞. Its area is the AUROC;
# the diagonal is a coin flip (50 %). We draw it for the clean scores and for the attacked scores of section 4.

# %%
fig, ax = plt.subplots(figsize=(5, 5))
for name, s, style in [("clean", clean, "-")] + [(a.spec.name, a.scores, "--") for a in result.attacks]:
    fpr, tpr, _ = roc_curve(labels, s)
    ax.plot(fpr, tpr, style, label=f"{name} (AUROC {auroc(s, labels):.1f})")
ax.plot([0, 1], [0, 1], ":", color="grey", label="chance (50)")
ax.set_xlabel("false-positive rate (normals flagged)")
ax.set_ylabel("true-positive rate (anomalies caught)")
ax.set_title("ROC curves: clean vs attacked scores")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 4 · Attacking the score: in, out, both
# An attacker who can change every pixel by at most eps (L∞ ball, here `profile.eps_for(...)`: 4/255 in `cpu`,
# 8/255 in `lab` — invisible) runs projected gradient descent **on the anomaly score itself**:
# - **in-attack**: push each *normal* image's score **up** → false alarms;
# - **out-attack**: push each *anomaly*'s score **down** → missed defects;
# - **both**: the two at once (what `radlib` reports as "robust AUROC" by default).
#
# Each half alone can already destroy the ranking; together they swap the two histograms.
#
# **The equation.** With the score $s(x)$ (higher = more anomalous), the label $y \in \{0, 1\}$ and the sign
# $\sigma = 1 - 2y$ (+1: push a normal up, −1: push an anomaly down), one PGD step is
#
# $$x^{t+1} = \Pi_{[0,1]}\Big(\Pi_{\|x' - x\|_\infty \le \varepsilon}\big(x^t + \alpha\,
#   \operatorname{sign}\nabla_{x} \,\sigma\, s(x^t)\big)\Big), \qquad \alpha = 2.5\,\varepsilon / T,$$
#
# from $x^0 = x + U(-\varepsilon, \varepsilon)^D$ (Madry et al., *Towards Deep Learning Models Resistant to
# Adversarial Attacks*, ICLR 2018, sec. 2; the step size $2.5\varepsilon/T$ is theirs too). COBRA (ICLR 2025)
# attacks the anomaly score this way in its experiments, normals and anomalies at once (PGD-1000, plus AutoAttack
# and adaptive attacks). Plain PyTorch, without the random start, against `radlib.attacks.pgd`:

# %%
def pgd_reference(score_fn, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int) -> torch.Tensor:
    sigma, alpha = 1.0 - 2.0 * y.float(), 2.5 * eps / steps
    x_adv = x.clone()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad((sigma * score_fn(x_adv)).sum(), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    return x_adv


x_chk = to_float(ds.test.images[:16].to(device))
y_chk = ds.test.labels[:16].to(device)
sigma = 1.0 - 2.0 * y_chk.float()
ours = pgd(lambda xa: sigma * score(xa), x_chk, eps=eps, steps=5, alpha=2.5 * eps / 5, random_start=False)
ref = pgd_reference(score, x_chk, y_chk, eps, 5)
pgd_gap = float((ours - ref).abs().max())
print(f"max |radlib PGD - reference| over {len(x_chk)} images, 5 steps: {pgd_gap:.2e} (eps = {eps:.4f})")
assert pgd_gap < 1e-5, "radlib's PGD differs from the equation"

# %%
for a in result.attacks:
    fig = plot_score_histograms(result, a.spec.name)
    display(fig)

# %%
# the bar beside every robust number: the pixel kNN (no training), attacked the same way, and the AUROC it is
# certified to keep under any attack in the ball (notebook 06 explains the certificate)
pixel = reference_rows(ds, profile, specs, device=device, seed=SEED, untrained_network=False,
                       cache=True)["pixel kNN"]
both = specs[-1].name
print(f"pixel kNN (no training): clean {pixel.eval.clean_auroc:.1f}, {both} {pixel.eval.auroc_under(both):.1f}, "
      f"certified >= {pixel.certified_under(both):.1f}")
display(value_bars({"clean": result.clean_auroc, **{a.spec.name: a.auroc for a in result.attacks}},
                   colors=["tab:green", "tab:orange", "tab:purple", "tab:red"][:1 + len(result.attacks)],
                   title=f"CSI under PGD-{profile.eval_steps} at eps={eps * 255:.0f}/255",
                   reference={f"pixel kNN, {both}": pixel.eval.auroc_under(both),
                              "pixel kNN certified": pixel.certified_under(both)}))

# %% [markdown]
# ## 5 · What an adversarial image looks like
# Row 1: clean test images; row 2: the same images after the in+out attack; row 3: the perturbation
# δ = x_adv − x amplified to the full colour range (grey = 0, eps maps to the extremes); row 4: |δ| / eps
# (max over RGB). The attacked images look identical to us — yet their scores moved across the whole
# distribution. Note that |δ| sits at eps almost everywhere: L∞ PGD steps are eps-sized signs, so the
# attack spends its whole budget on nearly every pixel.

# %%
both = result["PGD both"]
images = to_float(ds.test.images).float()
delta = both.adversarial - images
pick = np.concatenate([np.flatnonzero(labels == 0)[:3], np.flatnonzero(labels == 1)[:3]])
fig, axes = plt.subplots(4, len(pick), figsize=(1.9 * len(pick), 8.2), layout="constrained")
for j, i in enumerate(pick):
    kind = "normal" if labels[i] == 0 else "anomaly"
    axes[0, j].imshow(images[i].permute(1, 2, 0).clamp(0, 1))
    axes[0, j].set_title(f"{kind}\nclean score {clean[i]:.2f}", fontsize=8)
    axes[1, j].imshow(both.adversarial[i].permute(1, 2, 0).clamp(0, 1))
    axes[1, j].set_title(f"attacked score {both.scores[i]:.2f}", fontsize=8)
    axes[2, j].imshow((0.5 + delta[i] / (2 * eps)).permute(1, 2, 0).clamp(0, 1))
    axes[2, j].set_title("δ amplified", fontsize=8)
    im = axes[3, j].imshow(delta[i].abs().amax(0) / eps, cmap="magma", vmin=0, vmax=1)
    axes[3, j].set_title("|δ| / eps", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
fig.colorbar(im, ax=axes[3, :].tolist(), shrink=0.8, label="|δ| / eps")
fig.suptitle(f"in+out PGD-{profile.eval_steps} at eps={eps * 255:.0f}/255: clean, attacked, perturbation")
plt.show()

# %% [markdown]
# ### What you should see
# - The pairwise count and `radlib.evaluate.auroc` agree (AUROC *is* that probability).
# - The combined attack is at least as strong as each half: AUROC(both) ≤ AUROC(in) and ≤ AUROC(out)
#   (up to a point of noise). Every attacked AUROC is at most the clean one.
# - Every perturbation stays inside the L∞ ball of radius eps, and the in-attack leaves anomalies untouched
#   (the out-attack leaves normals untouched).
# - In `cpu` (measured) and `lab`: CSI's clean AUROC is well above chance (above 55; the printout above says
#   how far) and drops far below chance under the in+out attack (a perfectly *inverted* ranking is AUROC 0).

# %%
assert abs(hand - lib) < 1e-9, f"hand AUROC {hand} != radlib {lib}"
for a in result.attacks:
    h, _ = auroc_by_hand(a.scores, labels)
    assert abs(h - a.auroc) < 1e-9, a.spec.name
    assert a.auroc <= result.clean_auroc + 1.0, f"{a.spec.name} raised the AUROC"
    d = (a.adversarial - images).abs().amax()
    assert float(d) <= eps + 1e-6, f"{a.spec.name}: |delta| {float(d):.5f} > eps {eps:.5f}"
    assert float(a.adversarial.min()) >= 0.0 and float(a.adversarial.max()) <= 1.0, "left the image range"
in_adv, out_adv = result["PGD in"].adversarial, result["PGD out"].adversarial
assert torch.equal(in_adv[labels == 1], images[labels == 1]), "the in-attack must not touch anomalies"
assert torch.equal(out_adv[labels == 0], images[labels == 0]), "the out-attack must not touch normals"
assert result["PGD both"].auroc <= result["PGD in"].auroc + 1.0
assert result["PGD both"].auroc <= result["PGD out"].auroc + 1.0
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    assert result.clean_auroc > 55, "CSI should detect the defects clean"
    assert result["PGD both"].auroc < result.clean_auroc - 20, "CSI should collapse under the in+out attack"
print("checks passed")

# %% [markdown]
# ## Conclusion
# AUROC is the probability that a random anomaly scores above a random normal image; an attacker who may move
# each pixel by a few 1/255 can push the normals up and the anomalies down until that probability is near zero.
# Attack the score the detector actually reports, in and out at once, and report the protocol with the number.
#
# **References.** Hanley & McNeil, *The meaning and use of the area under a ROC curve*, Radiology 1982. Madry et al.,
# ICLR 2018 (PGD). Tack et al., NeurIPS 2020 (CSI). The COBRA paper, ICLR 2025 (in/out attacks on the score).

# %% [markdown]
# ## Exercises
# 1. Replace the pairwise count by a rank formula (Mann–Whitney U): sort all scores, sum the ranks of the
#    anomalies. Why is it O(n log n) instead of O(n²)? (Hint: `scipy.stats.rankdata` handles ties as 1/2.)
# 2. Run `evaluate` with `eps=0` (`specs[2].replace(eps=0.0)`): which AUROC do you get, and why exactly?
# 3. Sweep eps with `radlib.evaluate.sweep_eps(score, ds.test, ["1/255", "2/255", "4/255", "8/255"])` and
#    plot it with `plot_auroc_vs_eps`: how small an eps already breaks CSI?
# 4. Which half of the attack hurts more here, in or out? Look at the clean histogram: which group sits
#    closer to the decision boundary?

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 01.1 · AUROC from ranks** (any profile, under 1 s).
# Write `rank_auroc(scores, labels)` with the Mann-Whitney U statistic: rank all scores (1 = lowest, tied scores
# share their average rank), U = sum of the anomalies' ranks - n_a (n_a + 1) / 2, AUROC = 100 U / (n_a n_n). It
# must equal the pair count of notebook 00 exactly, ties included. Solution:
# [`solutions/01_anomaly_detection_under_attack.py`](solutions/01_anomaly_detection_under_attack.py).

# %%
from radlib.exercises import check_exercise


def rank_auroc(scores, labels):
    """scores: float (N,); labels: (N,) 0/1 -> float in [0, 100]."""
    # your code
    raise NotImplementedError


check_exercise("01.1", rank_auroc)

# %% [markdown]
# **Exercise 01.2 · One PGD step** (any profile, under 1 s).
# Write `pgd_step(x, grad, x0, eps, alpha, sign)`: one L-inf PGD step on the score, `sign = +1` to raise it (an
# in-attack on a normal image), `-1` to lower it, then the projection back onto the eps-ball around the clean
# image `x0` and onto [0, 1]. Solution:
# [`solutions/01_anomaly_detection_under_attack.py`](solutions/01_anomaly_detection_under_attack.py).

# %%
from radlib.exercises import check_exercise


def pgd_step(x, grad, x0, eps, alpha, sign):
    """x, grad, x0: float (N, C, H, W), x and x0 in [0, 1]; eps, alpha > 0; sign = +1 or -1 -> float (N, C, H, W)."""
    # your code
    raise NotImplementedError


check_exercise("01.2", pgd_step)
