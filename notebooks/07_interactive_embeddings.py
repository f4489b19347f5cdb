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
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/radlib/radlib/blob/main/notebooks/07_interactive_embeddings.ipynb)
#
# # 07 · Interactive embeddings: watch an attack drag normal images toward the anomalies
#
# **What you will learn**
# - how to look at a detector's *feature space*: embed normal test images, their pseudo-anomalies and real
#   anomalies with the projection head, and draw them in 2-D with UMAP (`radlib.embed`);
# - why the 2-D map is fitted **once** on every point (all epochs, both methods, clean and attacked) — so a
#   point that moves between two views of the explorer really moved in feature space;
# - what a PGD attack on the anomaly score does in that space: for the non-robust CSI detector attacked normals
#   drift toward the anomalies (and attacked anomalies toward the normals); for COBRA they move much less;
# - how the picture builds up during training (checkpoint slider) — with an explorer whose callback only
#   re-draws cached coordinates.
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
import copy
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from IPython.display import display
from matplotlib.collections import PathCollection

import radlib
from radlib.data import to_float
from radlib.device import make_generator
from radlib.embed import ANY_STATE, EmbeddingExplorer, EmbeddingSet, collect_embeddings, fit_embedding
from radlib.evaluate import evaluate
from radlib.pipeline import default_attacks, load_data, run_method, untrained
from radlib.profiles import get_profile
from radlib.reference import reference_rows
from radlib.pseudo_anomaly import policy_for
from radlib.viz import image_grid

PROFILE = os.environ.get("RADLIB_PROFILE")  # "smoke" | "cpu" | "lab" | "paper"; None = lab with a GPU, cpu without
profile = get_profile(PROFILE)
device = radlib.device.select_device()
radlib.device.reuse_freed_memory()  # a CPU reuses freed memory: attacks ~25 % faster (radlib.device)
SEED = 0
# UMAP's first fit in a process spends seconds compiling (numba) on a CPU: more than the smoke budget allows.
# So smoke draws the 2-D map with PCA (same code path, a linear map); lab and paper use UMAP.
MAP_METHOD = "pca" if profile.name == "smoke" else "umap"
AXIS = MAP_METHOD.upper()
print(profile.banner(device, smoke_note=(
    "tiny data and 2 epochs, and the 2-D map is PCA instead of UMAP (UMAP's JIT alone would exceed "
    "the CI budget). The pictures below only prove the pipeline runs; switch to RADLIB_PROFILE=lab "
    "on a GPU for pictures that teach something.")))

# %% [markdown]
# ## 1 · The points we will look at
# A fixed set of test images, used at every checkpoint and for both methods:
# - **normal** test images (blue),
# - **pseudo-anomalies** of those normals — chunk 1 of the training policy (CutPaste / scar for `surfaces`),
#   the made-up anomalies the detector learned to push away (orange),
# - **real anomalies** of the test set — scratches, cracks, stains the detector never saw (red).

# %%
ds = load_data(*profile.dataset, None, profile, seed=SEED)  # the profile's teaching data: surfaces/metal
test = ds.test
x_normal = to_float(test.images[test.labels == 0])
x_anomaly = to_float(test.images[test.labels == 1])
policy = policy_for(ds.name)
expanded, chunk = policy.expand(x_normal, generator=make_generator(SEED))
x_pseudo = expanded[chunk >= 1]  # every pseudo-anomaly chunk k >= 1 of every normal test image
print(policy.describe())
print(f"{len(x_normal)} normal · {len(x_pseudo)} pseudo-anomalies · {len(x_anomaly)} real anomalies")

fig = image_grid(torch.cat([x_normal[:4], x_pseudo[:4], x_anomaly[:4]]),
                 titles=["normal"] * 4 + ["pseudo-anomaly"] * 4 + ["real anomaly"] * 4, ncols=4,
                 suptitle="The three groups (rows): normal, pseudo-anomaly of the same normals, real anomaly")
display(fig)

# %% [markdown]
# ## 2 · Train CSI and COBRA, keeping snapshots for the checkpoint slider
# `run_method(..., snapshots=True)` keeps a CPU copy of the weights at a few epochs (every epoch in `smoke`, which
# trains at least 3 epochs here; at most 6 otherwise: `radlib.pipeline.snapshot_epochs`); we add the untrained
# start (epoch 0): at least 4 positions on the slider in every profile. With `cache=True` the snapshots are kept in
# the cache entry beside the trained weights: notebook 00 asked for them when it trained these two detectors, so
# here they load at once (a cache entry without them is trained again from its first epoch). Then we fit the score
# and attack the test images **once per method** with PGD on that score (`evaluate(..., keep_adversarial=True)`):
# normals are pushed to look anomalous, anomalies to look normal, inside an L∞ ball of radius eps.

# %%
# smoke trains 2 epochs: 3 here, so that the slider has 4 positions (0-3); the other profiles train as always
train_profile = profile if profile.epochs_for(len(ds.train)) >= 3 else profile.replace(train_steps=None, epochs=3)
attacks = default_attacks(profile, ds.image_size)
runs, snapshots = {}, {}
for method in ("csi", "cobra"):
    t0 = time.perf_counter()
    r = run_method(method, ds, train_profile, device=str(device), seed=SEED, attacks=[], progress=False,
                   cache=True, snapshots=True)  # cpu / lab: notebook 00 trained these and kept the snapshots
    res = r.train
    snaps = dict(r.snapshots)  # epoch -> weights; the last one is the trained detector
    snaps[0] = {k: v.detach().to("cpu", copy=True) for k, v in untrained(res.config).model.state_dict().items()}
    ev = evaluate(r.score, test, attacks=attacks, batch_size=128, device=device, seed=SEED, keep_adversarial=True)
    runs[method], snapshots[method] = (res, ev), dict(sorted(snaps.items()))
    print(f"{method:6s} clean AUROC {ev.clean_auroc:5.1f} · attacked AUROC {ev.robust_auroc:5.1f} · "
          f"snapshots at epochs {list(snapshots[method])} · trained {res.seconds:.0f} s"
          f"{' (loaded from the cache)' if r.cached else ''} · {time.perf_counter() - t0:.0f} s here")
print("attack:", attacks[0].describe())
pixel = reference_rows(ds, profile, attacks, device=device, seed=SEED, untrained_network=False,
                       cache=True)["pixel kNN"]  # cache: notebook 00 evaluated this row
print(f"beside them, the pixel kNN (no training): clean AUROC {pixel.eval.clean_auroc:5.1f} · attacked AUROC "
      f"{pixel.eval.robust_auroc:5.1f} · certified >= {pixel.certified_under(attacks[0].name):.1f}")

# %% [markdown]
# ## 3 · Embed every point at every snapshot, then fit the 2-D map **once**
# For each method and snapshot we embed the clean groups and the attacked normals / anomalies with the
# projection head (what the contrastive loss and the score compare). Pseudo-anomalies are not attacked at test
# time, so they carry `state="any"`: the explorer shows them in both the clean and the attacked view.
#
# Then **one** `fit_embedding` call over the union of all the points. Two separate UMAP fits have unrelated axes
# (rotated, mirrored, stretched), so comparing "clean" from one fit with "attacked" from another would show
# movement that is only an artefact of the fit. One fit = one coordinate system for every widget state.

# %%
sets, point_images = [], []  # point_images: the image of every point, in the order of the points
for method, (res, ev) in runs.items():
    adv = ev[attacks[0].name].adversarial
    adv_normal, adv_anomaly = adv[test.labels == 0], adv[test.labels == 1]
    net = copy.deepcopy(res.model)
    for epoch, state in snapshots[method].items():
        net.load_state_dict(state)
        meta = dict(method=method, checkpoint=epoch)
        for groups, st in (({"normal": x_normal, "real anomaly": x_anomaly}, "clean"),
                           ({"pseudo-anomaly": x_pseudo}, ANY_STATE),
                           ({"normal": adv_normal, "real anomaly": adv_anomaly}, "attacked")):
            sets.append(collect_embeddings(net, groups, state=st, **meta))
            point_images += list(groups.values())  # the same tensors at every checkpoint: no copies
emb = EmbeddingSet.concat(sets)

t0 = time.perf_counter()
coords = fit_embedding(emb, method=MAP_METHOD, n_neighbors=15, min_dist=0.1, seed=SEED)
print(f"{len(emb)} points of dimension {emb.features.shape[1]} -> 2-D by {AXIS} in {time.perf_counter() - t0:.1f} s")

explorer = EmbeddingExplorer.from_set(emb, coords, axis_label=AXIS, title="projection space",
                                      group_order=("normal", "pseudo-anomaly", "real anomaly"), images=point_images)
last = max(snapshots["cobra"])  # the trained detector

# %% [markdown]
# ## 4 · The picture at the last epoch
# Rows: method. Columns: clean test images, then the same images attacked. Grey lines join each attacked image
# to its clean position. The orange pseudo-anomalies are the same in both columns (they are not attacked).

# %%
fig, axes = plt.subplots(2, 2, figsize=(11, 9.5), layout="constrained")
for row, method in zip(axes, ("csi", "cobra")):
    for ax, state in zip(row, ("clean", "attacked")):
        explorer.draw(ax=ax, method=method, state=state, checkpoint=last)
fig.suptitle(f"{AXIS} of the projection: clean vs attacked test images (epoch {last}, one fit for all panels)")
plt.show()

# %% [markdown]
# ## 5 · Explore it yourself
# Slide through the epochs, switch between clean and attacked images, hide groups, swap the method; **click or
# hover over a point** to see its image beside the map (an attacked image is the one the detector saw). Each view
# is framed on its own points, so an early epoch's spread does not squash the trained clusters. The callback only
# re-draws cached coordinates (nothing is recomputed), so it is instant. Without a live kernel (e.g. on GitHub)
# the widget does not render: section 4 shows the same panels statically. Pointing uses ipympl, matplotlib's
# widget canvas; on Colab the cell first turns on Colab's widget manager.

# %%
try:  # Colab renders third-party widgets (the ipympl canvas) only with its custom widget manager
    from google.colab import output as colab_output
    colab_output.enable_custom_widget_manager()
except ImportError:
    pass
display(explorer.widget)
explorer.show_point(int(np.flatnonzero(explorer.mask())[0]))  # start with one image in the panel

# %% [markdown]
# ## 6 · How far does the attack move the images, measured in feature space?
# A 2-D map distorts distances, so we measure the shift in the space the map was fitted on (the projection):
# the cosine distance between the clean and the attacked projection of each test image (last epoch), next to the
# distance between the normal and the real-anomaly centroids ("class gap") for scale. A shift comparable to the
# gap means the attack moves images across the picture. (The attack itself targets the profile's score, which
# may read other features: `profile.score` says which; a move in the projection is its side effect.)

# %%
def cosine_shift(method: str, group: str) -> np.ndarray:
    sel = lambda st: (emb.extra["method"] == method) & (emb.extra["checkpoint"] == last) & \
        (emb.labels == group) & (emb.extra["state"] == st)  # noqa: E731
    clean, attacked = emb.features[sel("clean")], emb.features[sel("attacked")]
    return (1 - F.cosine_similarity(clean, attacked, dim=1)).numpy()


def class_gap(method: str) -> float:
    sel = lambda g: (emb.extra["method"] == method) & (emb.extra["checkpoint"] == last) & \
        (emb.labels == g) & (emb.extra["state"] == "clean")  # noqa: E731
    mu = [F.normalize(emb.features[sel(g)], dim=1).mean(0) for g in ("normal", "real anomaly")]
    return float(1 - F.cosine_similarity(mu[0], mu[1], dim=0))


shift = {m: {g: float(np.median(cosine_shift(m, g))) for g in ("normal", "real anomaly")} for m in runs}
gap = {m: class_gap(m) for m in runs}
fig, ax = plt.subplots(figsize=(7, 3.8))
width = 0.27
for i, (label, values, colour) in enumerate([
        ("attacked normals: median shift", [shift[m]["normal"] for m in runs], "tab:blue"),
        ("attacked anomalies: median shift", [shift[m]["real anomaly"] for m in runs], "tab:red"),
        ("class gap (normal vs anomaly centroid)", [gap[m] for m in runs], "0.6")]):
    ax.bar(np.arange(len(runs)) + (i - 1) * width, values, width, label=label, color=colour)
ax.set_xticks(np.arange(len(runs)), list(runs))
ax.set_ylabel("cosine distance (1 − cos)")
ax.set_title(f"How far PGD moves test images in projection space (epoch {last})")
ax.legend(fontsize=8)
plt.show()
for m in runs:
    print(f"{m:6s} median shift of attacked normals {shift[m]['normal']:.3f} · of attacked anomalies "
          f"{shift[m]['real anomaly']:.3f} · class gap {gap[m]:.3f}")
print(f"CSI's attacked normals move {shift['csi']['normal'] / max(shift['cobra']['normal'], 1e-9):.1f}x as far as "
      f"COBRA's (score: {profile.score})")

# %% [markdown]
# ### What you should see
# - In `lab`, **CSI**'s attacked normals leave the blue cloud and land among (or beyond) the red real anomalies,
#   and its attacked anomalies slide into the normal cloud — the attack swaps the groups, which is why CSI's
#   attacked AUROC is near 0. The grey shift lines are long.
# - In `lab`, **COBRA**'s attacked points stay close to their clean positions (short grey lines): adversarial
#   training on positive and negative pairs made the neighbourhood of each normal image stable.
# - The pseudo-anomalies (orange) sit away from the normals in both methods — that is what the K-way
#   head and the negative pairs were trained for; real anomalies often fall between the two.
# - The slider shows the groups separating as training goes on. The attacked images were crafted once, against
#   the *final* detector: at early epochs you see how the not-yet-trained network embeds those same perturbed
#   images (a transfer attack, usually weaker).
#
# The checks below hold in every profile; in `cpu`, `lab` and `paper` (not at overridden sizes) also: the attack
# moves CSI's normals further than COBRA's (the ratio printed above), and in `lab`/`paper` COBRA's attacked AUROC
# is clearly above CSI's.

# %%
n_normal, n_anomaly, n_pseudo = len(x_normal), len(x_anomaly), len(x_pseudo)
assert n_pseudo == (policy.K - 1) * n_normal, "one pseudo-anomaly per normal and chunk k >= 1"
assert coords.shape == (len(emb), 2) and np.isfinite(coords).all()
per_view = 2 * (n_normal + n_anomaly) + n_pseudo  # clean + attacked + the shared pseudo-anomalies
assert len(emb) == sum(len(snapshots[m]) for m in runs) * per_view
assert all(min(snapshots[m]) == 0 and max(snapshots[m]) == last for m in runs), "from the start to the trained model"
assert all(len(snapshots[m]) >= 4 for m in runs), "the slider needs at least 4 checkpoints"

# the last snapshot is the trained model: same projection of the normal test images
for method, (res, ev) in runs.items():
    direct = collect_embeddings(res.model, {"normal": x_normal}).features
    sel = (emb.extra["method"] == method) & (emb.extra["checkpoint"] == last) & (emb.labels == "normal") & \
        (emb.extra["state"] == "clean")
    assert torch.allclose(direct, emb.features[sel], atol=1e-5), f"{method}: last snapshot != trained model"
    # an attack never helps the detector, and stays inside its L-inf ball
    assert ev.robust_auroc <= ev.clean_auroc + 1.0, f"{method}: the attack raised the AUROC"
    adv = ev[attacks[0].name].adversarial
    assert (adv - to_float(test.images)).abs().max() <= attacks[0].eps + 1e-5

# the panel shows the point under the pointer, with its very pixels (the first clean normal image, here)
first = int(np.flatnonzero(explorer.mask())[0])
assert explorer.selected == first == explorer.point_at(*explorer.coords[first])
assert explorer.table["group"][first] == "normal" and torch.allclose(explorer.image(first), x_normal[0])

# the widget's callback, called directly (no frontend): it draws exactly the filtered points
fig = explorer.update(method="csi", state="attacked", checkpoint=last)
drawn = sum(len(c.get_offsets()) for c in fig.axes[0].collections if isinstance(c, PathCollection))
assert drawn == explorer.n_shown == n_normal + n_anomaly + n_pseudo, drawn
attacked_mask = explorer.mask()
explorer.update(state="clean")
clean_mask = explorer.mask()
assert clean_mask.sum() == attacked_mask.sum() and (clean_mask != attacked_mask).sum() == 2 * (n_normal + n_anomaly)
fig = explorer.update(groups=["normal"])
assert explorer.n_shown == n_normal and fig.axes[0].get_xlabel() == f"{AXIS}-1"
explorer.update(groups=explorer.groups)

if profile.asserts_claims:  # cpu, lab, paper; not smoke, not at overridden sizes
    assert shift["csi"]["normal"] > shift["cobra"]["normal"], "the attack should move CSI's normals further"
if profile.name in ("lab", "paper") and profile.asserts_claims:  # lab numbers
    csi_ev, cobra_ev = runs["csi"][1], runs["cobra"][1]
    assert cobra_ev.robust_auroc > csi_ev.robust_auroc + 10, "COBRA should be clearly more robust than CSI"
print("checks passed")

# %% [markdown]
# ## Conclusion
# One 2-D map fitted on every point shows what the numbers of 06 mean: under attack, CSI's normals cross to the
# anomalies' side and back, while COBRA's attacked images stay near their clean positions. Trust only what survives
# a change of the map's settings, and measure distances in the feature space, not on the map.
#
# **References.** McInnes et al., *UMAP: Uniform Manifold Approximation and Projection*, arXiv 1802.03426.
# Wattenberg et al., *How to Use t-SNE Effectively*, Distill 2016 (why a 2-D map's distances mislead).

# %% [markdown]
# ## Exercises
# 1. Embed `feature="features"` (the 512-d penultimate layer) instead of the projection: does the picture, and
#    the shift of attacked images, change? Which space does the anomaly score use?
# 2. Fit two separate maps, one on the clean points and one on the attacked points, and draw them side by side.
#    Why can you no longer tell how far an attacked image moved?
# 3. Change UMAP's `n_neighbors` (5, 15, 50) and `min_dist` (0.0, 0.1, 0.5): which conclusions survive every
#    setting? (Only those are worth trusting. Hint: `fit_embedding(emb, method="umap", n_neighbors=5, ...)`.)
# 4. Re-attack the detector at an early snapshot (load `snapshots["csi"][1]` into a copy of the model, fit its
#    score with `fit_score`, run `evaluate(..., keep_adversarial=True)`) and compare with the transfer attack that
#    the slider shows.
# 5. Add `cobra_no_opposite` as a third method: does dropping the opposite-pair term change how close the
#    pseudo-anomalies sit to the normals?

# %% [markdown]
# ### Exercises that check themselves
# Fill in the `# your code` gap and run the cell: `check_exercise` compares your function with radlib's on
# random inputs and says *correct*, or what differs. Until you fill it in, the cell only says so.

# %% [markdown]
# **Exercise 07.1 · How far did the attack move each point?** (any profile, under 1 s).
# Write `cosine_shift(clean, attacked)`: per image, 1 - cos between its clean and its attacked projection (the
# shift this notebook reports, measured in the space the model works in, not on the 2-D map). Solution:
# [`solutions/07_interactive_embeddings.py`](solutions/07_interactive_embeddings.py).

# %%
from radlib.exercises import check_exercise


def cosine_shift(clean, attacked):
    """clean, attacked: float (N, d) -> float (N,) in [0, 2]."""
    # your code
    raise NotImplementedError


check_exercise("07.1", cosine_shift)

# %% [markdown]
# **Exercise 07.2 · The class gap** (any profile, under 1 s).
# Write `class_gap(normal, anomaly)`: 1 - cos between the centroids of the unit-normalised normal and anomaly
# features: the scale a shift is compared with. Solution:
# [`solutions/07_interactive_embeddings.py`](solutions/07_interactive_embeddings.py).

# %%
from radlib.exercises import check_exercise


def class_gap(normal, anomaly):
    """normal: float (N1, d); anomaly: float (N2, d) -> scalar in [0, 2]."""
    # your code
    raise NotImplementedError


check_exercise("07.2", class_gap)
