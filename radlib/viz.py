"""Small plotting helpers shared by the notebooks and reports.

Every function returns a ``matplotlib.figure.Figure`` built with the object-oriented API: nothing is registered
with pyplot (no global state, no figures piling up in loops). In a notebook show it with ``display(fig)``;
in a script, ``fig.savefig(path)``.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .results import EvalResult

__all__ = ["auroc_bars", "image_grid", "loss_curves", "methods_auroc_vs_eps", "plot_score_histograms",
           "plot_auroc_vs_eps", "plot_purification", "use_style"]


def use_style() -> None:
    """radlib's one plotting style (seaborn's whitegrid theme, notebook context) for pyplot figures drawn by a
    notebook; call once at the top. The Figures this module returns are styled by it too when built after."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook")


def image_grid(images: torch.Tensor, titles: Sequence[str] | None = None, masks: torch.Tensor | None = None,
               ncols: int = 8, size: float = 1.6, suptitle: str | None = None):
    """Show images (N, C, H, W) uint8 or float in [0, 1] in a grid; optional red mask contours (N, 1, H, W).

    Grey (C=1) images are drawn in grey; titles (N,) go above each image.
    """
    from matplotlib.figure import Figure
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to show")
    ncols = max(1, min(ncols, n))
    nrows = (n + ncols - 1) // ncols
    imgs = images.detach().cpu()
    imgs = imgs.float() / 255.0 if imgs.dtype == torch.uint8 else imgs.float()
    fig = Figure(figsize=(size * ncols, size * nrows + (0.4 if suptitle else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = imgs[i].clamp(0, 1)
        # nearest: the pixels as they are (an attack's +-eps pattern is not smoothed away), and a PNG of textures
        # stays small (a 72-image grid of 32 px textures: 1.4 MB interpolated)
        if img.shape[0] == 1:
            ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        else:
            ax.imshow(img.permute(1, 2, 0), interpolation="nearest")
        if masks is not None and bool(masks[i].any()):
            ax.contour(masks[i, 0].detach().cpu().float(), levels=[0.5], colors="red", linewidths=0.8)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def loss_curves(history: Sequence[dict[str, float]], title: str = "training losses"):
    """One line per loss term of a :func:`radlib.train.train` history (per-epoch means) against the epoch."""
    from matplotlib.figure import Figure
    if not history:
        raise ValueError("empty history")
    skip = {"epoch", "lr", "seconds"}
    keys = [k for k in history[0] if k not in skip]
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    for k in keys:
        ax.plot(epochs, [h.get(k, float("nan")) for h in history], marker="o", ms=3, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (epoch mean)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def methods_auroc_vs_eps(results: Mapping[str, object], title: str = "Robust AUROC against the attack radius"):
    """One line per method: AUROC (%) against the L-inf eps (x 1/255) of its attacks, clean AUROC at eps 0.

    ``results`` maps a method name to a :class:`radlib.evaluate.EvalResult` holding attacks at several eps (same
    method, steps and mode). Chance (50) is drawn as a reference line.
    """
    from matplotlib.figure import Figure
    if not results:
        raise ValueError("no results to plot")
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    attack = ""
    for name, r in results.items():
        pts = sorted((a.spec.eps, a.auroc) for a in r.attacks)  # type: ignore[attr-defined]
        if r.attacks:  # type: ignore[attr-defined]
            spec = r.attacks[0].spec  # type: ignore[attr-defined]
            attack = f"{spec.method.upper()}-{spec.steps}, mode {spec.mode}"
        xs = [0.0] + [e * 255 for e, _ in pts]
        ys = [r.clean_auroc] + [v for _, v in pts]  # type: ignore[attr-defined]
        ax.plot(xs, ys, marker="o", label=name)
    ax.axhline(50, color="grey", ls=":", lw=1, label="chance (50)")
    ax.set_xlabel("eps (x 1/255, L-inf); 0 = clean")
    ax.set_ylabel("AUROC (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{title}\n({attack})" if attack else title, fontsize=10)
    ax.legend(fontsize=8)
    return fig


def auroc_bars(rows: Mapping[str, EvalResult | Sequence[EvalResult]], *, attack_name: str | None = None,
               title: str = "Clean and attacked AUROC", reference: Mapping[str, float] | None = None,
               figsize: tuple[float, float] | None = None) -> Any:
    """Clean and attacked AUROC (%) per row as bars: the mean over the row's results (one per seed), a black
    error bar of one sample std (``ddof=1``) and a dot per seed where a row has several.

    ``rows`` maps a label (a method, a variant) to one :class:`EvalResult` or a sequence of them (seeds);
    ``attack_name``: default each result's first attack. ``reference``: extra dashed lines (label -> AUROC), e.g.
    an untrained detector's attacked AUROC; chance (50) is always drawn. Returns a Figure (seaborn draws it).
    """
    import seaborn as sns
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("no rows to plot")
    data: dict[str, list[Any]] = {"row": [], "kind": [], "AUROC (%)": []}
    attack = None
    for label, res in rows.items():
        results = [res] if isinstance(res, EvalResult) else list(res)
        if not results:
            raise ValueError(f"row {label!r} has no results")
        for r in results:
            if not r.attacks:
                raise ValueError(f"row {label!r}: a result without attacks")
            a = r.attacks[0] if attack_name is None else r[attack_name]
            attack = attack or a.spec
            data["row"] += [label, label]
            data["kind"] += ["clean", "attacked"]
            data["AUROC (%)"] += [r.clean_auroc, a.auroc]
    n_max = max(1 if isinstance(r, EvalResult) else len(r) for r in rows.values())
    fig = Figure(figsize=figsize or (max(5.0, 1.3 * len(rows) + 2), 3.8), layout="constrained")
    ax = fig.subplots()
    palette = {"clean": "#9ecae1", "attacked": "#08519c"}
    sns.barplot(data=data, x="row", y="AUROC (%)", hue="kind", palette=palette, errorbar="sd", capsize=0.15,
                err_kws={"linewidth": 1, "color": "k"}, ax=ax)
    for container, text_colour in zip(ax.containers, ("black", "white")):  # the means, at the foot of each bar
        for bar in container:
            ax.text(bar.get_x() + bar.get_width() / 2, 1.5, f"{bar.get_height():.1f}", ha="center", va="bottom",
                    fontsize=7, color=text_colour if bar.get_height() > 8 else "black")
    if n_max > 1:
        sns.stripplot(data=data, x="row", y="AUROC (%)", hue="kind", dodge=True, size=3, jitter=0.08,
                      palette={"clean": "k", "attacked": "k"}, legend=False, ax=ax)
    ax.axhline(50, color="grey", ls=":", lw=1, label="chance (50)")
    for (name, value), color in zip((reference or {}).items(), ("tab:red", "tab:green", "tab:purple")):
        ax.axhline(value, color=color, ls="--", lw=1, label=f"{name} ({value:.1f})")
    ax.set_ylim(0, 108)
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelsize=8)
    n_min = min(1 if isinstance(r, EvalResult) else len(r) for r in rows.values())
    seeds = f"{n_max}" if n_min == n_max else f"{n_min}-{n_max}"
    spread = f"mean ± std over {seeds} seeds, dots = seeds" if n_max > 1 else "one seed"
    what = "-" if attack is None else attack.short() + (" in+out" if attack.mode == "both" else "")
    ax.set_title(f"{title}\n(attacked: {what}; {spread})", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def value_bars(values: Mapping[str, float], *, colors: Sequence[str] | str | None = None, ylabel: str = "AUROC (%)",
               title: str = "", chance: float | None = 50.0, fmt: str = "%.1f",
               reference: Mapping[str, float] | None = None, figsize: tuple[float, float] | None = None) -> Any:
    """One labelled bar per value (e.g. the AUROC after each attack, or counts), its value printed on it.

    ``colors``: one per bar, or one for all (default a seaborn palette); ``chance``: a dotted line at that height
    (None: none); ``reference``: dashed lines (label -> value) as in :func:`auroc_bars`, e.g. the pixel kNN's
    attacked and certified AUROC beside a trained detector's bars; the y axis runs from 0 to 105 when ``ylabel``
    is an AUROC in %, else to 1.1 x the largest value. Returns a Figure (show it with ``display``). For clean vs
    attacked per method, with seeds, use :func:`auroc_bars`.
    """
    from matplotlib.figure import Figure

    if not values:
        raise ValueError("no values to plot")
    labels, heights = list(values), [float(v) for v in values.values()]
    if colors is None or isinstance(colors, str):
        import seaborn as sns
        colors = [colors] * len(labels) if isinstance(colors, str) else sns.color_palette("deep", len(labels))
    elif len(colors) != len(labels):
        raise ValueError(f"{len(colors)} colors for {len(labels)} bars")
    fig = Figure(figsize=figsize or (max(4.0, 1.1 * len(labels) + 1.5), 3.4), layout="constrained")
    ax = fig.subplots()
    bars = ax.bar(labels, heights, color=list(colors))
    ax.bar_label(bars, fmt=fmt, fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance ({chance:g})")
    for (name, value), color in zip((reference or {}).items(), ("tab:red", "tab:green", "tab:purple")):
        ax.axhline(value, color=color, ls="--", lw=1, label=f"{name} ({value:.1f})")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_ylim(0, 105 if ylabel.startswith("AUROC") else 1.1 * max(max(heights), 1e-9))
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    return fig


def plot_score_histograms(result: EvalResult, attack_name: str | None = None, bins: int = 40) -> Any:
    """Histograms of normal and anomalous scores, clean (left) vs attacked (right); returns a Figure.

    ``attack_name``: default the last attack of ``result``. Never calls ``plt.show()``.
    """
    from matplotlib.figure import Figure

    if not result.attacks:
        raise ValueError("result has no attacks to plot")
    att = result.attacks[-1] if attack_name is None else result[attack_name]
    y = result.labels
    both = np.concatenate([result.clean_scores, att.scores])
    both = both[np.isfinite(both)]
    edges = np.histogram_bin_edges(both, bins=bins)
    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    panels = [(axes[0], result.clean_scores, f"clean (AUROC {result.clean_auroc:.1f})"),
              (axes[1], att.scores, f"{att.spec.name} (AUROC {att.auroc:.1f})")]
    for ax, s, title in panels:
        ax.hist(s[y == 0], bins=edges, alpha=0.6, color="tab:blue", label=f"normal (n={int((y == 0).sum())})")
        ax.hist(s[y == 1], bins=edges, alpha=0.6, color="tab:red", label=f"anomalous (n={int((y == 1).sum())})")
        ax.set_title(title)
        ax.set_xlabel("anomaly score (higher = more anomalous)")
        ax.legend()
    axes[0].set_ylabel("number of test images")
    fig.suptitle(f"{result.score_name}: clean AUROC {result.clean_auroc:.1f} -> {att.auroc:.1f} under "
                 f"{att.spec.describe()}", fontsize=9)
    return fig


def plot_auroc_vs_eps(sweep: EvalResult | Sequence[EvalResult]) -> Any:
    """Robust AUROC against eps (one line per method/steps/mode/norm), clean AUROC and chance as references.

    ``sweep``: the list from :func:`radlib.evaluate.sweep_eps` (or one :class:`EvalResult` with several attacks). Returns a Figure.
    """
    from matplotlib.figure import Figure

    results = [sweep] if isinstance(sweep, EvalResult) else list(sweep)
    if not results:
        raise ValueError("sweep is empty")
    groups: dict[tuple[Any, ...], list[tuple[float, float]]] = {}
    norms = set()
    for r in results:
        for a in r.attacks:
            key = (a.spec.method, a.spec.steps, a.spec.mode, a.spec.norm, a.spec.restarts)
            groups.setdefault(key, []).append((a.spec.eps, a.auroc))
            norms.add(a.spec.norm)
    if not groups:
        raise ValueError("the sweep holds no attacks")
    linf_only = norms == {"linf"}
    scale = 255.0 if linf_only else 1.0
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.subplots()
    for (method, steps, mode, norm, rs), pts in groups.items():
        pts = sorted(pts)
        label = f"{method.upper()}-{steps} {norm} mode={mode}" + (f" x{rs} restarts" if rs > 1 else "")
        ax.plot([e * scale for e, _ in pts], [v for _, v in pts], marker="o", label=label)
    clean = results[0].clean_auroc
    ax.axhline(clean, color="k", ls="--", lw=1, label=f"clean ({clean:.1f})")
    ax.axhline(50, color="grey", ls=":", lw=1, label="chance (50)")
    ax.set_xlabel("eps (x 1/255, L-inf)" if linf_only else "eps (pixel units)")
    ax.set_ylabel("AUROC (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{results[0].score_name}: robust AUROC vs attack radius")
    ax.legend(fontsize=8)
    return fig


def plot_purification(p: Any, bins: int = 30) -> Any:
    """Histogram of a :class:`radlib.purify.Purification`'s scores, normal vs injected anomalies, with the keep
    threshold; precision and recall in the title when the split was contaminated. Returns a Figure."""
    from matplotlib.figure import Figure

    s = p.scores.numpy()
    c = p.contaminated.numpy()
    edges = np.histogram_bin_edges(s[np.isfinite(s)], bins=bins)
    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.hist(s[~c], bins=edges.tolist(), alpha=0.6, color="tab:blue", label=f"normal (n={int((~c).sum())})")
    if c.any():
        ax.hist(s[c], bins=edges.tolist(), alpha=0.6, color="tab:red", label=f"injected anomaly (n={int(c.sum())})")
    ax.axvline(p.threshold, color="k", ls="--", lw=1, label=f"keep {p.keep:g}: dropped to the right")
    ax.set_xlabel("purification score (higher = more anomalous)")
    ax.set_ylabel("number of training images")
    title = f"{p.method}, {p.sub_scores.shape[0]} subsets, {p.aggregate}"
    if p.recall is not None:
        title += f": recall {100 * p.recall:.0f} %, precision {100 * (p.precision or 0):.0f} %"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig
