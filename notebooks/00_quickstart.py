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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/00_quickstart.ipynb)
#
# # 00 · Quickstart: a detector that works — until someone attacks it
#
# **What you will learn**
# - what one-class anomaly detection is: train on *normal* images only, score every test image, measure AUROC;
# - that a contrastive detector (CSI) with a good clean AUROC collapses under a tiny PGD attack on its score;
# - that COBRA, trained against such attacks, keeps more of its AUROC under the same attack;
# - where each step lives in `radlib` (data → train → score → evaluate), so the later notebooks can open each box.
#
# **Run time**: `smoke` ≈ 30 s on a laptop CPU (numbers prove the code runs, nothing more) ·
# `cpu` ≈ 4 min on a 2-core laptop (digits, measured; the claims below are asserted) · `lab`: budgeted for
# ≤ 15 min on a free Colab T4 (not yet measured on a GPU, see `notebooks/README.md`) · `paper`: hours.
# Trained detectors are kept in `runs/cache` (keyed by config, data and radlib source): a rerun takes seconds.

# %% tags=["install"]
# Colab / fresh machine: install radlib (a no-op where it is already installed)
import importlib.util
import subprocess
import sys

if importlib.util.find_spec("radlib") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/radlib/radlib"],
                   check=True)

# %%
# %matplotlib inline
import os

import matplotlib.pyplot as plt
import torch
from IPython.display import display

import radlib
from radlib.data import load
from radlib.viz import plot_score_histograms
from radlib.pipeline import default_attacks, load_data, run_method
from radlib.profiles import get_profile

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
SEED = 0
print(profile.banner(device))  # in smoke: a reminder that the numbers teach nothing

# %% [markdown]
# ## 1 · The data: normal images, and anomalies
# `surfaces` is generated on the fly (no download): textures with realistic defects and pixel masks. In the
# `cpu` profile the notebook uses `digits` instead (class 0 is normal, every other digit an anomaly; shipped
# with scikit-learn): at 16 px a 2-core CPU trains COBRA in about two minutes, and that recipe was measured to
# show the robust gap (`benchmarks/RESULTS.md`, "The `cpu` recipe"; on `surfaces` at 32 px the same recipe
# takes twice as long and COBRA keeps only 25 points under attack).
# Training uses **only normal images**; the test split mixes normal and anomalous ones.

# %%
DATA = ("digits", "0") if profile.name == "cpu" else ("surfaces", "metal")
ds = load_data(*DATA, None, profile, seed=SEED)
print(ds.summary())

test = ds.test
normal_idx = torch.nonzero(test.labels == 0).flatten()[:4]
anomal_idx = torch.nonzero(test.labels == 1).flatten()[:4]
fig, axes = plt.subplots(2, 4, figsize=(9, 4.6))
for ax, i in zip(axes.flat, torch.cat([normal_idx, anomal_idx])):
    ax.imshow(test.images[i].permute(1, 2, 0))
    if test.masks is not None and test.labels[i] == 1:
        ax.contour(test.masks[i, 0], levels=[0.5], colors="red", linewidths=0.8)
    ax.set_title(ds.defect_types[int(test.defect[i])], fontsize=9)
    ax.axis("off")
fig.suptitle("Test images: normal (top) and defective (bottom; red = ground-truth mask)")
plt.show()

# %% [markdown]
# ## 2 · Train two detectors and attack both
# `run_method` trains a method with the profile's recipe, fits its anomaly score on the normal training
# images (higher = more anomalous), and evaluates the clean AUROC and the AUROC under an in+out PGD attack:
# normals are pushed to look anomalous, anomalies to look normal, each within an L∞ ball of radius eps.

# %%
attacks = default_attacks(profile, ds.image_size)
print("attack:", attacks[0].describe())
runs = {m: run_method(m, ds, profile, device=str(device), seed=SEED, attacks=attacks, progress=False, cache=True)
        for m in ("csi", "cobra")}  # cache=True: trained once, reloaded from runs/cache by a rerun
for m, r in runs.items():
    print(f"{m:6s} clean AUROC {r.eval.clean_auroc:5.1f}   attacked AUROC {r.eval.robust_auroc:5.1f}   "
          f"(trained {r.train.seconds:.0f} s{', loaded from the cache' if r.cached else ''})")

# %% [markdown]
# ## 3 · What the attack does to the scores
# Left: clean scores of normal and anomalous test images. Right: the same images after the attack.
# A detector is robust when the two histograms stay apart on the right.

# %%
for m, r in runs.items():
    fig = plot_score_histograms(r.eval)  # radlib figures are plain Figures: show them with display()
    fig.suptitle(f"{m}: anomaly scores, clean vs attacked")
    display(fig)

# %% [markdown]
# ## 4 · The results, with the protocol beside every number

# %%
for m, r in runs.items():
    print(f"### {m}\n" + r.eval.table() + "\n")

# %% [markdown]
# ### What you should see
# - Every attacked AUROC is at most the clean one (an attack never helps the detector).
# - The non-robust CSI detector loses most of its AUROC under attack.
# - In `cpu` (measured, see `notebooks/README.md`) and `lab` (not yet measured), COBRA keeps most of its clean
#   AUROC under the same attack: at least 30 points above CSI in `cpu`, 10 in `lab`.

# %%
for m, r in runs.items():
    assert r.eval.robust_auroc <= r.eval.clean_auroc + 1.0, f"{m}: the attack raised the AUROC"
assert runs["csi"].eval.robust_auroc < max(runs["csi"].eval.clean_auroc, 50.0), "PGD should hurt CSI"
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    margin = 30 if profile.name == "cpu" else 10
    assert runs["csi"].eval.robust_auroc < runs["csi"].eval.clean_auroc - 30, "PGD should break CSI"
    assert runs["cobra"].eval.robust_auroc > runs["csi"].eval.robust_auroc + margin, \
        f"COBRA should be more robust than CSI by {margin}+ AUROC points"
print("checks passed")

# %% [markdown]
# ## Exercises
# 1. Change the category (`"fabric"`, `"wood"`, `"tiles"`, `"leather"`) — which surfaces are hardest, and why?
# 2. Halve and double eps in `default_attacks(...)` (`attacks[0].replace(eps=...)`): how fast does each
#    detector's AUROC fall?
# 3. Attack only the normals (`mode="in"`) or only the anomalies (`mode="out"`): which half of the attack hurts more?
