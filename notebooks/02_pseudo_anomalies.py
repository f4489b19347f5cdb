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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/02_pseudo_anomalies.ipynb)
#
# # 02 · Pseudo-anomalies: fake defects made from normal images
#
# **What you will learn**
# - why a one-class detector needs *pseudo-anomalies*: hard transforms of normal images (rotation,
#   cut-permutation, CutPaste, scar, cutout, elastic) that stand in for the anomalies nobody gave us;
# - what each transform does, on synthetic surfaces, handwritten digits and real castings;
# - which transforms `radlib` uses for which dataset (the `Policy`) and how `Policy.expand` lays out the
#   K chunks of a batch together with the K-way labels;
# - where pseudo-anomalies land in feature space, between the normals and the real anomalies (PCA to 2-D);
# - the optional accept/reject filter that drops pseudo-anomalies that still look normal.
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
from sklearn.decomposition import PCA

import radlib
from radlib.data import DatasetError, to_float
from radlib.data.download import find_root
from radlib.pipeline import load_data, teaching_model
from radlib.profiles import get_profile
from radlib.pseudo_anomaly import (INVERSE_PERMUTATION, ROTATION_POLICY, GaussianFilter, apply_transform,
                                   cut_permute, cutout, cutpaste, filter_pseudo_anomalies, policy_for, rotate)
from radlib.features import model_features
from radlib.viz import image_grid, value_bars

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
print(profile.banner(device, smoke_note=(
    "tiny data and a random-init feature extractor. The galleries are real; the feature-space "
    "picture only proves the code runs. Switch to RADLIB_PROFILE=lab on a GPU to see structure.")))

# %% [markdown]
# ## 1 · Three datasets
# - `surfaces` (synthetic textures, no download), category `wood`;
# - `digits` (sklearn's bundled 8×8 handwritten digits, upsampled): normal class = "3", every other digit is an anomaly;
# - `casting` (real pump-impeller castings, top view). It is not bundled: radlib looks in `$RADLIB_DATA`, then in
#   `shared/data` beside the repository. Where it is absent (e.g. on Colab) the casting parts are skipped.

# %%
datasets = {
    "surfaces": load_data("surfaces", "wood", None, profile, seed=SEED),
    "digits": load_data("digits", "3", profile.low_res_size, profile, seed=SEED),
}
casting_root = find_root("casting")  # $RADLIB_DATA, else shared/data beside the checkout
if casting_root is None:
    print("casting data not found ($RADLIB_DATA or ../../shared/data): skipping the casting gallery. "
          "See data/README.md to get it.")
else:
    try:
        datasets["casting"] = load_data("casting", None, profile.image_size, profile, seed=SEED,
                                        root=str(casting_root))
    except DatasetError as err:
        print(f"casting data unusable, skipping it: {err}")
for ds in datasets.values():
    print(ds.summary())

# %% [markdown]
# ## 2 · Every hard transform, on every dataset
# A pseudo-anomaly must be *clearly not normal* yet built from a normal image, so that the detector learns
# the boundary of normality instead of memorising a particular defect. Columns: the original, the three
# rotations (exact 90° turns), cut-permutation (the four quadrants shuffled), CutPaste (a patch copied and
# pasted elsewhere, slightly colour-jittered), scar (a thin rotated, blurred, jittered strip), cutout (a black
# rectangle) and elastic (a smooth random warp). Red outlines show where CutPaste / scar / cutout changed pixels.
# radlib scales the elastic warp with the image (smoothing 7 px and alpha 200 at 224 px → 1 px and alpha 4 at
# 32 px), so it is the same picture at every resolution — but at 32 px a 1 px smoothing is coarse: look closely.

# %%
GALLERY = ["identity", "rot90", "rot180", "rot270", "cutperm", "cutpaste", "scar", "cutout", "elastic"]


def transform_gallery(x: torch.Tensor, title: str, seed: int = SEED) -> None:
    """Rows = images, columns = transforms; red contour = the changed region where the transform has one."""
    g = torch.Generator().manual_seed(seed)
    cols = []
    for name in GALLERY:
        if name in ("cutpaste", "scar"):
            out, mask = cutpaste(x, g, variant="normal" if name == "cutpaste" else "scar", return_mask=True)
        elif name == "cutout":
            out, mask = cutout(x, g, return_mask=True)
        else:
            out, mask = apply_transform(name, x, g), None
        cols.append((name, out, mask))
    fig, axes = plt.subplots(x.shape[0], len(cols), figsize=(1.35 * len(cols), 1.45 * x.shape[0]), squeeze=False)
    for j, (name, out, mask) in enumerate(cols):
        for i in range(x.shape[0]):
            ax = axes[i, j]
            ax.imshow(out[i].permute(1, 2, 0).clamp(0, 1))
            if mask is not None and bool(mask[i].any()):
                ax.contour(mask[i, 0].float(), levels=[0.5], colors="red", linewidths=0.7)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, j].set_title(name, fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


for name, ds in datasets.items():
    transform_gallery(to_float(ds.train.images[:3]), f"{name}: normal training images (rows) under each transform")

# %% [markdown]
# ## 3 · The policy: which transforms each dataset uses, and the K-chunk layout
# A `Policy` has K chunks: chunk 0 is the untouched image, chunk k ≥ 1 a transform (or a mixture from which
# each sample draws its own). The model's K-way head learns to tell the chunks apart, so **chunk k is always
# labelled k**. Rotations suit digits (a rotated "3" is no longer a normal "3"); on textures and top-view
# parts a rotated normal image is *still normal*, so industrial data use K=2 with CutPaste / scar.

# %%
for name in datasets:
    print(f"{name}: {policy_for(name).describe()}\n")

# %% [markdown]
# `Policy.expand(x)` turns N images into K·N rows, **chunk-major**: row `k·N + i` is transform k of image i,
# and the labels are `k` for every row of chunk k. Each row of the grids below is one chunk.

# %%
N_SHOW = 4
g = torch.Generator().manual_seed(SEED)
for name in ("surfaces", "digits"):
    pol = policy_for(name)
    x = to_float(datasets[name].train.images[:N_SHOW])
    xk, yk = pol.expand(x, generator=g)
    titles = [f"row {r}: k={int(yk[r])}, i={r % N_SHOW}" for r in range(xk.shape[0])]
    display(image_grid(xk, titles=titles, ncols=N_SHOW, size=1.7,
                       suptitle=f"{name}: Policy.expand, K={pol.K} chunks x N={N_SHOW} images (label = chunk k)"))

# %% [markdown]
# ## 4 · Where pseudo-anomalies land in feature space
# A useful pseudo-anomaly sits *between* the normals and the real anomalies: far enough from the normals
# to be a negative, close enough to real defects to teach the right boundary. We take the encoder's
# features of normal test images, real anomalies, and pseudo-anomalies of the normal test images, and project
# them to 2-D with PCA fitted on the normal training features (PCA keeps this fast; notebook 07 uses UMAP).
#
# In `smoke` the encoder is a random-init ResNet-18 (features reflect raw image statistics only); in the
# other profiles it is a CSI model trained briefly on the surfaces.

# %%
ds = datasets["surfaces"]
policy = policy_for("surfaces")
model, model_desc = teaching_model(ds, profile, device=device, seed=SEED,
                                   cache=True)  # random-init in smoke, else CSI (cached)


def features(x: torch.Tensor) -> torch.Tensor:
    """Penultimate encoder features (N, D) on the CPU (radlib.features.model_features, batched, no autograd)."""
    return model_features(model, x, "features", device=device).cpu()


test = ds.test
x_norm = to_float(test.images[test.labels == 0])
groups = {"normal (test)": features(test.images[test.labels == 0]),
          "real anomaly (test)": features(test.images[test.labels == 1])}
g = torch.Generator().manual_seed(SEED)
PSEUDO = ["cutpaste", "scar", "cutout", "elastic", "rot90", "cutperm"]
for name in PSEUDO:
    groups[f"pseudo: {name}"] = features(apply_transform(name, x_norm, g))
f_train = features(ds.train.images)

pca = PCA(n_components=2).fit(f_train.numpy())
markers = {"normal (test)": ("o", "tab:blue"), "real anomaly (test)": ("X", "tab:red")}
fig, ax = plt.subplots(figsize=(7.5, 5.5))
for (name, f), col in zip(groups.items(), plt.cm.Dark2(np.linspace(0, 1, len(groups)))):
    marker, color = markers.get(name, ("^", col))
    p = pca.transform(f.numpy())
    ax.scatter(p[:, 0], p[:, 1], s=22 if name in markers else 14, marker=marker, color=color,
               alpha=0.8 if name in markers else 0.55, label=name)
ax.set_xlabel("PC 1 (fitted on normal training features)")
ax.set_ylabel("PC 2")
ax.set_title(f"surfaces/{ds.normal}: feature space of a {model_desc}")
ax.legend(fontsize=8, loc="best")
plt.show()

# %% [markdown]
# Two dimensions hide a lot. A sharper summary is the **Mahalanobis distance** of each image's features from
# a Gaussian fitted to the normal training features (`GaussianFilter`): normals sit at small distances, and a
# pseudo-anomaly is informative when its distance is clearly above the normals'. The dashed line is the
# 95 % quantile of the training distances — the threshold the filter below uses. Watch the *normal test*
# box: when the feature dimension is close to the number of training images (as in `smoke`), the Gaussian
# overfits its training set, so even unseen normals land beyond the threshold — compare groups with each
# other, not with the line.

# %%
gauss = GaussianFilter.fit(f_train)
dist = {name: gauss.distance(f).numpy() for name, f in groups.items()}
fig, ax = plt.subplots(figsize=(9, 3.8))
ax.boxplot(list(dist.values()), showfliers=False)
ax.set_xticks(range(1, len(dist) + 1), list(dist), rotation=25, ha="right")
ax.axhline(float(gauss.threshold(0.95)), color="k", ls="--", lw=1, label="95% of normal-train distances")
ax.set_ylabel("Mahalanobis distance to normal train")
ax.set_title(f"How far each group is from normality ({model_desc}, Ledoit-Wolf shrinkage "
             f"{gauss.shrinkage:.2f})")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5 · Accept / reject: dropping pseudo-anomalies that still look normal
# A CutPaste patch of plain background pasted onto plain background changes nothing that matters: the result
# is a normal image labelled "anomaly". Contrasting it with the normals pushes apart things that belong
# together (a *spurious* pair, the subject of notebook 03). `filter_pseudo_anomalies` keeps only candidates
# whose feature distance exceeds the 95 % quantile of the normal-train distances.

# %%
g = torch.Generator().manual_seed(SEED + 1)
x_train = to_float(ds.train.images)
candidates = policy.apply_chunk(1, x_train, generator=g)  # the policy's pseudo-anomalies (CutPaste / scar)
kept, keep_mask = filter_pseudo_anomalies(lambda x: model(x.to(device)), x_train, candidates, quantile=0.95)
keep_mask = keep_mask.cpu()
n_keep, n_rej = int(keep_mask.sum()), int((~keep_mask).sum())
print(f"{len(candidates)} candidates: {n_keep} kept, {n_rej} rejected as 'still normal' "
      f"({100 * n_rej / len(candidates):.0f}%)")

display(value_bars({"kept (look anomalous)": n_keep, "rejected (still normal)": n_rej},
                   colors=["tab:green", "tab:grey"], ylabel="pseudo-anomalies", chance=None, fmt="%d",
                   title=f"accept/reject filter, {model_desc}"))

# %%
SHOW = 6
for label, sel in (("rejected (still look normal)", ~keep_mask), ("kept (look anomalous)", keep_mask)):
    idx = torch.nonzero(sel).flatten()[:SHOW]
    if len(idx) == 0:
        print(f"no candidate {label}: nothing to show")
        continue
    d = gauss.distance(features(candidates[idx])).numpy()
    display(image_grid(torch.cat([x_train[idx], candidates[idx]]), ncols=len(idx), size=1.5,
                       titles=[f"normal #{int(i)}" for i in idx] + [f"d={v:.1f}" for v in d],
                       suptitle=f"{label}: normal image (top) and its pseudo-anomaly (bottom, d = distance)"))

# %% [markdown]
# ### What you should see
# - Rotations are exact: rotating back gives the original bit for bit; so does undoing a cut-permutation.
# - CutPaste changes pixels only inside its mask; everything outside is untouched.
# - `Policy.expand` returns K·N rows, chunk-major, with label k on chunk k.
# - The filter returns one bool per candidate, and `kept` holds exactly the accepted candidates.
# - In `lab` (trained CSI features) the policy's pseudo-anomalies sit farther from normality than the normal
#   test images; in `smoke` (random features) the picture is arbitrary.

# %%
x = to_float(datasets["digits"].train.images[:8])
for k in range(4):
    assert torch.equal(rotate(rotate(x, k), 4 - k), x), f"rotating back by {4 - k} quarter turns is not exact"
xk, yk = ROTATION_POLICY.expand(x)
assert xk.shape == (4 * len(x), *x.shape[1:]) and yk.tolist() == [k for k in range(4) for _ in range(len(x))]
for k in range(4):
    assert torch.equal(xk[k * len(x):(k + 1) * len(x)], rotate(x, k)), f"chunk {k} is not rotation {k}"
for p in range(24):
    assert torch.equal(cut_permute(cut_permute(x, p), int(INVERSE_PERMUTATION[p])), x), f"cut-perm {p}"
for ds_ in datasets.values():
    xs = to_float(ds_.train.images[:16])
    out, mask = cutpaste(xs, torch.Generator().manual_seed(SEED), return_mask=True)
    outside = ~mask.expand_as(xs)
    assert torch.equal(out[outside], xs[outside]), f"{ds_.name}: CutPaste changed pixels outside its mask"
    assert bool(mask.flatten(1).any(1).all()), f"{ds_.name}: an empty CutPaste mask"
assert keep_mask.dtype == torch.bool and keep_mask.shape == (len(candidates),)
assert kept.shape[0] == n_keep and torch.equal(kept.cpu(), candidates[keep_mask])
if profile.name in ("lab", "paper") and profile.asserts_claims:  # lab numbers; not at overridden tiny sizes
    d_norm = np.median(dist["normal (test)"])
    d_cp = np.median(np.concatenate([dist["pseudo: cutpaste"], dist["pseudo: scar"]]))
    assert d_cp > d_norm, "trained features should put the policy's pseudo-anomalies farther out than normals"
print("checks passed")

# %% [markdown]
# ## Conclusion
# Pseudo-anomalies are the only anomalies a one-class detector sees in training, so they decide what it learns
# to notice: CutPaste-style scars for textures and parts, rotations for aligned low-resolution images. A good
# transform changes the image the way a defect would without being trivially detectable.
#
# **References.** Li et al., *CutPaste: Self-Supervised Learning for Anomaly Detection and Localization*, CVPR 2021.
# Golan & El-Yaniv, *Deep Anomaly Detection Using Geometric Transformations*, NeurIPS 2018. Tack et al., NeurIPS 2020
# (shifted instances). The COBRA paper, ICLR 2025 (its pseudo-anomaly policies).

# %% [markdown]
# ## Exercises
# 1. Build your own policy, e.g. `Policy(((("identity", 1.0),), (("cutout", 0.5), ("elastic", 0.5))))`, and
#    look at its `expand` grid. Which transforms are too easy (a black box is trivial to spot)? (Hint: a transform
#    the head can tell apart from one pixel teaches the encoder nothing about defects.)
# 2. Change `quantile` of the filter (0.5, 0.99): how does the rejection rate move? What does a rejected
#    candidate have in common with its normal source?
# 3. In section 4, which pseudo-anomaly lands nearest to the real anomalies? Does it match the transform you
#    would have guessed from the defects in notebook 01?
# 4. Rotate a `surfaces` image by 90°: is it anomalous? Explain why `policy_for("surfaces")` uses no rotation.

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 02.1 · The labels of `Policy.expand`** (any profile, under 1 s).
# Write `chunk_labels(n_images, K)`: the (K*N,) int64 labels that `Policy.expand` returns for N images and K
# transforms (chunk-major: row k*N + i is transform k of image i). Solution:
# [`solutions/02_pseudo_anomalies.py`](solutions/02_pseudo_anomalies.py).

# %%
from radlib.exercises import check_exercise


def chunk_labels(n_images, K):
    """n_images = N >= 1, K >= 1 -> int64 (K*N,)."""
    # your code
    raise NotImplementedError


check_exercise("02.1", chunk_labels)

# %% [markdown]
# **Exercise 02.2 · Rotate each image its own way** (any profile, under 1 s).
# Write `rotate_each(x, k)`: rotate image n by `k[n]` quarter turns counter-clockwise (taken mod 4, so -1 is three
# turns), as `radlib.pseudo_anomaly.rotate(x, k)` does for a tensor k. Solution:
# [`solutions/02_pseudo_anomalies.py`](solutions/02_pseudo_anomalies.py).

# %%
from radlib.exercises import check_exercise


def rotate_each(x, k):
    """x: float (N, C, H, H); k: int64 (N,) -> float (N, C, H, H)."""
    # your code
    raise NotImplementedError


check_exercise("02.2", rotate_each)
