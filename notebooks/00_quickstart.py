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
# - how to tell whether learning earned its place: every robust number stands beside two detectors that learn
#   nothing (raw-pixel kNN with its *certified* AUROC, and the untrained network);
# - where each step lives in `radlib` (data → train → score → evaluate), so the later notebooks can open each box.
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
from IPython.display import Markdown, display

import radlib
from radlib.viz import auroc_bars, plot_score_histograms, use_style
from radlib.pipeline import default_attacks, load_data, run_method
from radlib.profiles import get_profile
from radlib.reference import reference_rows, verdict

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
use_style()  # radlib's one plotting style (seaborn whitegrid)
print(profile.banner(device))  # in smoke: a reminder that the numbers teach nothing

# %% [markdown]
# ## 1 · The data: normal images, and anomalies
# `surfaces` is generated on the fly (no download): industrial textures (brushed metal here) with realistic defects
# — scratches, cracks, holes, stains, frayed patches, foreign particles — and their pixel masks. Two normal images
# of brushed metal differ *everywhere* (streak direction, polishing bands, lighting, noise), while a defect covers
# a few per cent of the image: the setting of MVTec AD's texture categories, and one where comparing raw pixels
# fails. That makes it the right data to ask whether *learning* earns its place. (The exercises try `digits`, where
# raw pixels win.)
# Training uses **only normal images**; the test split mixes normal and anomalous ones.

# %%
DATA = profile.dataset  # the profile's teaching data: ("surfaces", "metal")
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
# ## COBRA in one picture
# Both detectors learn a feature space from normal images and their *pseudo-anomalies* (made-up defects: a
# rotation for digits, a pasted scar for textures). The picture is a sketch of that space, not data.
# **Left, CSI**: its contrastive loss pulls two views of the same image together and pushes *everything else*
# apart — the pseudo-anomalies (right) but also the other normal images (wrong: *spurious negatives*, notebook 03).
# The normal cloud stays loose, and a small attack (red arrow) carries a normal image across to the anomalies.
# **Right, COBRA**: the training attacks do that on purpose (ATNT drags each normal toward its own pseudo-anomaly,
# notebook 05) and the loss pulls the attacked copy back, while an opposite-pair term pushes each normal away
# from its own pseudo-anomaly (notebook 04). The groups end up apart *with a margin*, and the same attack no
# longer crosses it.

# %%
def sketch(ax, title: str, spread: float, gap: float, robust: bool) -> None:
    rng = np.random.default_rng(0)
    normal = rng.normal(0.0, spread, (25, 2))
    pseudo = rng.normal(0.0, 0.35, (25, 2)) + [gap, 0.0]
    ax.scatter(*normal.T, s=22, c="tab:blue", label="normal images")
    ax.scatter(*pseudo.T, s=22, c="tab:orange", marker="s", label="pseudo-anomalies")
    x = normal[np.argmin(np.abs(normal - [spread, 0.0]).sum(axis=1))]  # a normal image on the cloud's right side
    target = x + [0.7, 0.0] if robust else np.array([gap - 0.6, x[1]])
    ax.annotate("", xy=target, xytext=x, arrowprops=dict(arrowstyle="->", color="tab:red", lw=2))
    label = "attacked normal\n" + ("(stays normal)" if robust else "(looks anomalous)")
    ax.text(target[0] - 1.2, target[1] + 0.9, label, color="tab:red", fontsize=8)
    if robust:
        lo, hi = normal[:, 0].max() + 0.2, pseudo[:, 0].min() - 0.2
        ax.axvspan(lo, hi, color="0.9", zorder=0)
        ax.text((lo + hi) / 2, -2.3, "margin", ha="center", fontsize=8, color="0.4")
    else:
        near = normal[np.argsort(np.abs(normal).sum(axis=1))[:4]]
        for a, b in ((near[0], near[1]), (near[2], near[3])):
            ax.annotate("", xy=b, xytext=a, arrowprops=dict(arrowstyle="<->", color="0.4", lw=0.9))
        ax.text(-3.0, -2.3, "<-> spurious negatives: normals pushed apart", fontsize=7, color="0.3")
    ax.set(title=title, xticks=[], yticks=[], xlim=(-3.2, gap + 1.2), ylim=(-2.6, 2.6))


fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
sketch(axes[0], "CSI: loose normal cloud, no margin", spread=0.9, gap=3.2, robust=False)
sketch(axes[1], "COBRA: tight normals, a margin, attacks trained against", spread=0.45, gap=4.4, robust=True)
axes[0].legend(fontsize=8, loc="upper left")
fig.suptitle("A sketch of the feature space (not data): why one detector breaks under attack and the other holds")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2 · Train two detectors and attack both
# `run_method` trains a method with the profile's recipe, fits its anomaly score on the normal training
# images (higher = more anomalous), and evaluates the clean AUROC and the AUROC under an in+out PGD attack:
# normals are pushed to look anomalous, anomalies to look normal, each within an L∞ ball of radius eps.

# %%
attacks = default_attacks(profile, ds.image_size)
print("attack:", attacks[0].describe())
runs = {m: run_method(m, ds, profile, device=str(device), seed=SEED, attacks=attacks, progress=False, cache=True,
                      snapshots=True)  # cache: trained once, reloaded by a rerun; snapshots: replayed in notebook 07
        for m in ("csi", "cobra")}
for m, r in runs.items():
    print(f"{m:6s} clean AUROC {r.eval.clean_auroc:5.1f}   attacked AUROC {r.eval.robust_auroc:5.1f}   "
          f"(trained {r.train.seconds:.0f} s{', loaded from the cache' if r.cached else ''})")
print("score:", runs["cobra"].eval.protocol["score_kind"], "(the profile's; `radlib.score.fit_score` says what each is)")

# %% [markdown]
# **The bar: detectors that learn nothing.** A robust AUROC means little on its own. `radlib.reference` evaluates,
# with the same attack, test images and seed, (a) the **pixel kNN** — the mean pixel distance to the 2 nearest
# normal training images, which comes with a *certified* AUROC that no attack can push it below (notebook 06) —
# and (b) the **untrained network**, the exact weights training starts from, scored the same way. Training has to
# beat both, clean and attacked, to have learned anything.

# %%
refs = reference_rows(ds, profile, attacks, device=device, seed=SEED, cache=True)  # cache: 07-09 read these rows
for ref in refs.values():
    cert = ref.certified_under(attacks[0].name)
    print(f"{ref.name:32s} clean AUROC {ref.eval.clean_auroc:5.1f}   attacked AUROC {ref.eval.robust_auroc:5.1f}"
          + (f"   certified {cert:5.1f}" if cert is not None else ""))

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
    display(Markdown(f"### {m}"))
    display(r.eval)  # an EvalResult renders itself as a table (EvalResult.table() gives the same Markdown text)

# %% [markdown]
# ## 5 · The gap this run measured, beside the bar

# %%
csi_e, cobra_e = runs["csi"].eval, runs["cobra"].eval
pix, net = refs["pixel kNN"], refs["untrained network"]
head = attacks[0].name
gap = cobra_e.robust_auroc - csi_e.robust_auroc
print(f"Measured here ({profile.name} profile, {ds.name}/{ds.normal}, {ds.image_size} px, {attacks[0].short()} in+out, "
      f"{cobra_e.protocol['score_kind']} score): CSI {csi_e.clean_auroc:.1f} -> {csi_e.robust_auroc:.1f}, COBRA "
      f"{cobra_e.clean_auroc:.1f} -> {cobra_e.robust_auroc:.1f}: under attack COBRA keeps {gap:+.1f} AUROC points "
      f"more than CSI.\n")
print(verdict({"CSI": csi_e, "COBRA": cobra_e}, refs, head))
display(auroc_bars({"pixel kNN\n(no training)": pix.eval, "untrained\nnetwork": net.eval, "CSI": csi_e,
                    "COBRA": cobra_e},
                   title=f"COBRA vs CSI vs no training: {ds.name}/{ds.normal}, {attacks[0].short()}",
                   reference={"pixel kNN certified (no attack can go lower)": pix.certified_under(head)}))

# %% [markdown]
# ### What you should see
# - Every attacked AUROC is at most the clean one (an attack never helps the detector), and the pixel kNN's attacked
#   AUROC is never below its certified one.
# - The non-robust CSI detector loses most of its AUROC under attack.
# - In `cpu` (measured, see `notebooks/README.md`): COBRA keeps at least 30 points more than CSI under the attack,
#   at least 15 more than the pixel kNN, and is at least as good as the pixel kNN on clean images: learning, and
#   training against attacks, both earn their place here. In `lab` (measured once, on one H200): COBRA at least
#   10 points above CSI.

# %%
for m, r in [*runs.items(), *refs.items()]:
    assert r.eval.robust_auroc <= r.eval.clean_auroc + 1.0, f"{m}: the attack raised the AUROC"
assert pix.certified_under(head) <= pix.eval.robust_auroc + 1e-6, "an attack beat the certificate: a bug"
assert runs["csi"].eval.robust_auroc < max(runs["csi"].eval.clean_auroc, 50.0), "PGD should hurt CSI"
if profile.asserts_claims:  # cpu / lab / paper as defined in radlib.profiles; not at overridden tiny sizes
    margin = 30 if profile.name == "cpu" else 10
    assert csi_e.robust_auroc < csi_e.clean_auroc - 30, "PGD should break CSI"
    assert cobra_e.robust_auroc > csi_e.robust_auroc + margin, f"COBRA should be more robust than CSI by {margin}+"
    if profile.name == "cpu":
        assert cobra_e.robust_auroc >= pix.eval.robust_auroc + 15, "COBRA should beat raw pixels by 15+ under attack"
        assert cobra_e.robust_auroc >= net.eval.robust_auroc + 15, "COBRA should beat the untrained network"
        assert cobra_e.clean_auroc >= pix.eval.clean_auroc, "COBRA should be at least as good as raw pixels clean"
print("checks passed")

# %% [markdown]
# ## Conclusion
# A detector trained only on normal images can be good on clean data and worthless under an invisible attack: a PGD
# attack on CSI's own score inverts its ranking of normal and defective images. COBRA trains against attacks aimed
# at exactly that failure (normals pushed toward their pseudo-anomalies and back) and keeps much more of its ranking
# under the same attack. And on textures, where two normal images differ everywhere, neither raw pixels nor an
# untrained network hold up: what COBRA keeps, it learned. The notebooks that follow take the pieces apart: the
# metric and the attack (01), the pseudo-anomalies (02), the pairs of the contrastive loss (03, 04), the training
# attacks (05), an evaluation you can trust (06), real parts (08) and the ablation (09).
#
# **References.** *Mitigating Spurious Negative Pairs for Robust Industrial Anomaly Detection* (COBRA), ICLR 2025
# (official code: github.com/rohban-lab/COBRA). Tack et al., *CSI: Novelty Detection via Contrastive Learning on
# Distributionally Shifted Instances*, NeurIPS 2020. Madry et al., *Towards Deep Learning Models Resistant to
# Adversarial Attacks*, ICLR 2018.

# %% [markdown]
# ## Exercises
# 1. Change the data (`DATA = ("surfaces", "fabric")`, `"wood"`, `"tiles"`, `"leather"`) — which are hardest, and
#    why? (Hint: look at how different the anomalies are from the normal images in section 1, and at CSI's *clean*
#    AUROC.) Then try `DATA = ("digits", "0")` (set `profile = profile.replace(score="knn")` too: 16 px digits have
#    no room for local patches): small, centred, aligned images whose anomalies change many pixels. Who wins
#    there, the pixel kNN or COBRA, and what does its certificate say? (Hint: `verdict` prints it.)
# 2. Halve and double eps in `default_attacks(...)` (`attacks[0].replace(eps=...)`): how fast does each
#    detector's AUROC fall?
# 3. Attack only the normals (`mode="in"`) or only the anomalies (`mode="out"`): which half of the attack hurts more?
#    (Hint: `attacks[0].replace(mode="in")`; notebook 01 does this step by step.)

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 00.1 · Count pairs** (any profile, under 1 s).
# Write `pairwise_auroc(scores, labels)`: the AUROC in percent as the fraction of (anomaly, normal) pairs in which
# the anomaly scores higher, a tie counting 1/2. This is what `radlib.metrics.auroc` computes (with sklearn).
# Solution: [`solutions/00_quickstart.py`](solutions/00_quickstart.py).

# %%
from radlib.exercises import check_exercise


def pairwise_auroc(scores, labels):
    """scores: float (N,), higher = more anomalous; labels: (N,) 0 normal / 1 anomaly -> float in [0, 100]."""
    # your code
    raise NotImplementedError


check_exercise("00.1", pairwise_auroc)

# %% [markdown]
# **Exercise 00.2 · What an in-attack leaves** (any profile, under 1 s).
# Write `in_attack_scores(clean, attacked, labels)`: the scores the evaluation sees after an attack that perturbs
# only the normal images (mode `in`): normals take their attacked score, anomalies keep their clean one. Solution:
# [`solutions/00_quickstart.py`](solutions/00_quickstart.py).

# %%
from radlib.exercises import check_exercise


def in_attack_scores(clean, attacked, labels):
    """clean, attacked: float (N,) scores of the clean and of the attacked images; labels: (N,) 0/1 -> float (N,)."""
    # your code
    raise NotImplementedError


check_exercise("00.2", in_attack_scores)
