"""The interactive embedding view: cached 2-D coordinates, re-drawn by ipywidgets controls (and without a
frontend, for CI); click or hover over a point to see its image beside the map.

Pointing needs an interactive canvas: ipympl (matplotlib's Jupyter widget backend, a base dependency; in
JupyterLab it works as installed, on Colab after ``google.colab.output.enable_custom_widget_manager()``). Without
ipympl the map is a static picture and the image panel follows ``explorer.show_point(i)``.
"""
from __future__ import annotations

import io
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from .sets import EXTRA_STYLES, ANY_STATE, GROUP_STYLE, EmbeddingSet, field_array

__all__ = ["EmbeddingExplorer"]


# --------------------------------------------------------------------------------------------- explorer
_FIELDS = ("method", "checkpoint", "state")


class EmbeddingExplorer:
    """Interactive view of cached 2-D coordinates: checkpoint slider, clean/attacked toggle, group filter,
    method selector. The callback only re-draws a matplotlib scatter into an ``ipywidgets.Output``.

    Args:
        coords: (N, 2) coordinates from :func:`fit_embedding` (one fit over all the points).
        table: per-point metadata, each (N,): ``group`` (names, required) and optionally ``method``,
            ``checkpoint`` (epoch), ``state`` ("clean" / "attacked"; :data:`ANY_STATE` = shown in every state)
            and ``index`` (pairs the clean and attacked points of one image, for the shift lines).
            A control is built for each optional field present.
        axis_label: axis names are ``f"{axis_label}-1"`` / ``f"{axis_label}-2"`` ("UMAP" or "PCA").
        title: prefix of every figure title.
        figsize: of the drawn figure.
        images: the image of every point, in point order, for the panel beside the map: one tensor (N, C, H, W)
            or a list of tensors whose rows add up to N (e.g. one per :func:`collect_embeddings` group, so the
            clean images shared by every checkpoint are not copied); uint8 or float in [0, 1]. None: no panel.
        limits: ``"view"`` (default): the axes fit the points of the shown method and checkpoint, clean and
            attacked together, so switching between clean and attacked keeps the frame (shifts stay comparable)
            while an early checkpoint's spread-out points do not squash a trained one's clusters; ``"all"``: one
            frame for every view.

    Use ``explorer.widget`` (the ipywidgets container) in a notebook; ``explorer.update(state="attacked")``
    changes controls and re-draws (returns the Figure); ``explorer.draw(**state)`` draws without touching the
    controls; ``explorer.mask(**state)`` says which points a state shows. All work without a frontend.
    """

    def __init__(self, coords: Any, table: Mapping[str, Any], *, axis_label: str = "UMAP", title: str = "",
                 figsize: tuple[float, float] = (6.4, 5.2), group_order: Sequence[str] | None = None,
                 limits: str = "view", images: torch.Tensor | Sequence[torch.Tensor] | None = None) -> None:
        if limits not in ("view", "all"):
            raise ValueError(f"limits must be 'view' or 'all', got {limits!r}")
        xy = coords.detach().cpu().numpy() if isinstance(coords, torch.Tensor) else np.asarray(coords)
        if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
            raise ValueError(f"coords must be (N, 2) with N >= 1, got shape {xy.shape}")
        if not np.isfinite(xy).all():
            raise ValueError("coords contain NaN or inf")
        if "group" not in table:
            raise ValueError("table needs a 'group' field (the group name of every point)")
        n = xy.shape[0]
        self.coords = xy.astype(np.float64)
        self.table = {k: field_array(v, n, k) for k, v in table.items()}
        self.axis_label = axis_label
        self.title = title
        self.figsize = figsize
        present = list(dict.fromkeys(str(g) for g in self.table["group"]))
        if group_order is not None:
            missing = [g for g in present if g not in group_order]
            if missing:
                raise ValueError(f"group_order lacks groups {missing}")
            present = [g for g in group_order if g in present]
        self.groups: tuple[str, ...] = tuple(present)
        self.table["group"] = self.table["group"].astype(str).astype(object)
        self.options: dict[str, list[Any]] = {}
        for f in _FIELDS:
            if f in self.table:
                vals = [v for v in dict.fromkeys(self.table[f].tolist()) if not (f == "state" and v == ANY_STATE)]
                if f == "checkpoint":
                    vals = sorted(vals)
                if not vals:
                    raise ValueError(f"field {f!r} has no selectable value")
                self.options[f] = vals
        self.styles = self._styles()
        self.limit_mode = limits
        self._image_parts, self._image_starts = self._check_images(images, n)
        self.selected: int | None = None
        self.limits = self._frame(np.ones(n, dtype=bool))  # every point: the frame of limits="all"
        self.state: dict[str, Any] = {f: (opts[-1] if f == "checkpoint" else opts[0])
                                      for f, opts in self.options.items()}
        self.state["groups"] = self.groups
        self.state["show_shift"] = "index" in self.table and "state" in self.table
        self.last_figure = None
        self.n_shown = 0
        self._suspend = False
        self._widget = None
        self._canvas: Any = None  # the ipympl canvas, when the widget is interactive
        self._panel: tuple[Any, Any] | None = None  # (image widget, label) beside the map

    # ------------------------------------------------------------------ state
    def _styles(self) -> dict[str, tuple[str, str]]:
        extra = iter(EXTRA_STYLES * (1 + len(self.groups) // len(EXTRA_STYLES)))
        return {g: GROUP_STYLE.get(g) or next(extra) for g in self.groups}

    def _resolve(self, state: Mapping[str, Any]) -> dict[str, Any]:
        """The full state: the current one with ``state`` applied, validated."""
        allowed = set(self.options) | {"groups", "show_shift"}
        unknown = set(state) - allowed
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}; this explorer has {sorted(allowed)}")
        full = {**self.state, **state}
        for f, opts in self.options.items():
            if full[f] not in opts:
                raise ValueError(f"{f}={full[f]!r} is not one of {opts}")
        groups = full["groups"]
        groups = (groups,) if isinstance(groups, str) else tuple(groups)
        bad = [g for g in groups if g not in self.groups]
        if bad:
            raise ValueError(f"unknown group(s) {bad}; have {list(self.groups)}")
        full["groups"] = tuple(g for g in self.groups if g in groups)
        full["show_shift"] = bool(full["show_shift"])
        return full

    def mask(self, **state: Any) -> np.ndarray:
        """Boolean (N,): the points drawn for ``state`` (the current state, with these controls changed)."""
        full = self._resolve(state)
        m = np.isin(self.table["group"], np.asarray(full["groups"], dtype=object))
        for f in self.options:
            col = self.table[f]
            sel = col == full[f]
            if f == "state":
                sel = sel | (col == ANY_STATE)
            m &= sel
        return m

    @staticmethod
    def _check_images(images: Any, n: int) -> tuple[list[torch.Tensor], np.ndarray]:
        if images is None:
            return [], np.zeros(0, dtype=np.int64)
        parts = [images] if isinstance(images, torch.Tensor) else list(images)
        for t in parts:
            if not isinstance(t, torch.Tensor) or t.dim() != 4 or t.shape[1] not in (1, 3):
                raise ValueError("images must be (n, C, H, W) tensors with C = 1 or 3, got "
                                 f"{tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__}")
        total = sum(int(t.shape[0]) for t in parts)
        if total != n:
            raise ValueError(f"images hold {total} rows for {n} points")
        return parts, np.cumsum([0] + [int(t.shape[0]) for t in parts])

    # ------------------------------------------------------------------ pointing
    def image(self, i: int) -> torch.Tensor:
        """The image of point ``i``: float (C, H, W) in [0, 1]."""
        if not self._image_parts:
            raise ValueError("this explorer has no images (pass images= when you build it)")
        if not 0 <= i < len(self.coords):
            raise IndexError(f"point {i} is not in 0..{len(self.coords) - 1}")
        part = int(np.searchsorted(self._image_starts, i, side="right")) - 1
        img = self._image_parts[part][i - int(self._image_starts[part])].detach().cpu()
        return img.float() / 255.0 if img.dtype == torch.uint8 else img.float().clamp(0, 1)

    def point_at(self, x: float, y: float, **state: Any) -> int | None:
        """The shown point (of ``state``) nearest to the map position (x, y), or None when nothing is shown."""
        shown = np.flatnonzero(self.mask(**state))
        if not len(shown):
            return None
        d = ((self.coords[shown] - np.array([x, y])) ** 2).sum(1)
        return int(shown[int(d.argmin())])

    def describe_point(self, i: int) -> str:
        """One line: the group and fields of point ``i``."""
        fields = [str(self.table["group"][i])] + [f"{k} {self.table[k][i]}" for k in (*_FIELDS, "index")
                                                  if k in self.table]
        return f"point {i}: " + " · ".join(fields)

    def png(self, i: int, size: int = 160) -> bytes:
        """Point ``i``'s image as PNG bytes, enlarged to ``size`` px with nearest-neighbour (pixels as they are)."""
        from PIL import Image

        img = (self.image(i) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
        pil = Image.fromarray(img[..., 0] if img.shape[2] == 1 else img)
        scale = max(1, size // max(pil.size))
        buf = io.BytesIO()
        pil.resize((pil.size[0] * scale, pil.size[1] * scale), Image.Resampling.NEAREST).save(buf, format="PNG")
        return buf.getvalue()

    def show_point(self, i: int | None) -> None:
        """Select point ``i``: the image panel shows its image and fields, the map rings it (None clears)."""
        self.selected = i
        if self._widget is not None and self._panel is not None:
            image, label = self._panel
            if i is None:
                label.value = "click or hover over a point"
            else:
                label.value = self.describe_point(i)
                if self._image_parts:
                    image.value = self.png(i)
        if self._canvas is not None:
            self._redraw_canvas()

    def _on_pointer(self, event: Any) -> None:
        if event.inaxes is None or event.xdata is None:
            return
        i = self.point_at(event.xdata, event.ydata)
        if i is None:
            return
        if event.name == "motion_notify_event":  # hover: only within ~8 px of the point
            px = event.inaxes.transData.transform(self.coords[i])
            if np.hypot(px[0] - event.x, px[1] - event.y) > 8:
                return
            if i == self.selected:
                return
        self.show_point(i)

    # ------------------------------------------------------------------ drawing
    def _frame(self, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.coords[sel].min(0), self.coords[sel].max(0)
        pad = np.maximum(hi - lo, 1e-6) * 0.06
        return lo - pad, hi + pad

    def view_limits(self, **state: Any) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) corners of the axes for ``state``: the points of its method and checkpoint in every
        state and group (``limits="view"``), or of all points (``limits="all"``)."""
        full = self._resolve(state)
        sel = np.ones(len(self.coords), dtype=bool)
        if self.limit_mode == "view":
            for f in ("method", "checkpoint"):
                if f in self.options:
                    sel &= self.table[f] == full[f]
        return self._frame(sel)

    def _shift_segments(self, full: dict[str, Any], shown: np.ndarray) -> np.ndarray:
        """Lines from each shown attacked point to the clean point of the same image (same method, checkpoint)."""
        if full.get("state") in (None, "clean") or "index" not in self.table:
            return np.zeros((0, 2, 2))
        clean = self.mask(**{**{k: full[k] for k in ("groups", *self.options)}, "state": "clean"})
        clean &= self.table["state"] == "clean"
        key = lambda i: (self.table["group"][i], self.table["index"][i])  # noqa: E731
        lookup = {key(i): i for i in np.flatnonzero(clean)}
        segs = [(self.coords[lookup[key(i)]], self.coords[i]) for i in np.flatnonzero(shown)
                if self.table["state"][i] != ANY_STATE and key(i) in lookup]
        return np.asarray(segs, dtype=np.float64).reshape(-1, 2, 2)

    def describe(self, **state: Any) -> str:
        full = self._resolve(state)
        parts = [str(full["method"])] if "method" in full else []
        if "checkpoint" in full:
            parts.append(f"epoch {full['checkpoint']}")
        if "state" in full:
            parts.append(str(full["state"]))
        return " · ".join(parts)

    def draw(self, ax: Any = None, **state: Any) -> Any:
        """Draw ``state`` (current state with these controls changed) and return the Figure.

        ``ax``: draw into this matplotlib Axes (e.g. one panel of a grid); default a new Figure (not managed by
        pyplot, so nothing is shown twice). One scatter per shown group (its ``gid`` is the group name).
        """
        from matplotlib.collections import LineCollection
        from matplotlib.figure import Figure

        full = self._resolve(state)
        shown = self.mask(**full)
        if ax is None:
            fig = Figure(figsize=self.figsize, layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        segs = self._shift_segments(full, shown) if full["show_shift"] else np.zeros((0, 2, 2))
        if len(segs):
            ax.add_collection(LineCollection(list(segs), colors="0.55", linewidths=0.6, alpha=0.6, zorder=1,
                                             label="attack shift (clean → attacked)"))
        for g in full["groups"]:
            sel = shown & (self.table["group"] == g)
            if not sel.any():
                continue
            colour, marker = self.styles[g]
            ax.scatter(self.coords[sel, 0], self.coords[sel, 1], s=18, c=colour, marker=marker, alpha=0.75,
                       linewidths=0, label=f"{g} ({int(sel.sum())})", gid=g, zorder=2)
        lo, hi = self.view_limits(**full)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xlabel(f"{self.axis_label}-1")
        ax.set_ylabel(f"{self.axis_label}-2")
        head = f"{self.title}: " if self.title else ""
        ax.set_title(head + self.describe(**full), fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8, framealpha=0.8)
        if self.selected is not None and shown[self.selected]:
            ax.scatter(*self.coords[self.selected], s=160, facecolors="none", edgecolors="black", linewidths=1.5,
                       gid="selected", zorder=3)
        self.n_shown = int(shown.sum())
        return fig

    # ------------------------------------------------------------------ widgets
    def update(self, **state: Any) -> Any:
        """Change controls (``method=``, ``checkpoint=``, ``state=``, ``groups=``, ``show_shift=``), move the
        widgets to match, re-draw into the output, and return the Figure. This is the widgets' callback."""
        self.state = self._resolve(state)
        if self._widget is not None:
            self._suspend = True
            try:
                for f, w in self._controls.items():
                    if f == "groups":
                        for g, box in w.items():
                            box.value = g in self.state["groups"]
                    else:
                        w.value = self.state[f]
            finally:
                self._suspend = False
        if self.selected is not None and not self.mask()[self.selected]:
            self.selected = None  # the selected point is no longer shown
        if self._canvas is not None:
            return self._redraw_canvas()
        fig = self.draw()
        self.last_figure = fig
        if self._widget is not None:
            from IPython.display import clear_output, display
            with self._output:
                clear_output(wait=True)
                display(fig)
        return fig

    def _redraw_canvas(self) -> Any:
        fig = self._canvas.figure
        fig.clear()
        self.draw(ax=fig.add_subplot())
        self._canvas.draw_idle()
        self.last_figure = fig
        return fig

    def _on_change(self, _change: Any = None) -> None:
        if self._suspend:
            return
        state = {f: w.value for f, w in self._controls.items() if f != "groups"}
        state["groups"] = tuple(g for g, box in self._controls["groups"].items() if box.value)
        self.update(**state)

    @property
    def widget(self) -> Any:
        """The ipywidgets container (controls above, figure below); built on first access."""
        if self._widget is None:
            import ipywidgets as W

            c: dict[str, Any] = {}
            if "method" in self.options:
                c["method"] = W.ToggleButtons(options=self.options["method"], value=self.state["method"],
                                              description="method")
            if "checkpoint" in self.options:
                c["checkpoint"] = W.SelectionSlider(options=self.options["checkpoint"],
                                                    value=self.state["checkpoint"], description="epoch",
                                                    continuous_update=False)
            if "state" in self.options:
                c["state"] = W.ToggleButtons(options=self.options["state"], value=self.state["state"],
                                             description="images")
            c["show_shift"] = W.Checkbox(value=self.state["show_shift"], description="attack shift lines",
                                         indent=False)
            c["groups"] = {g: W.Checkbox(value=g in self.state["groups"], description=g, indent=False)
                           for g in self.groups}
            self._controls = c
            for f, w in c.items():
                for box in (w.values() if f == "groups" else [w]):
                    box.observe(self._on_change, names="value")
            self._output = W.Output()
            rows = [c[f] for f in ("method", "checkpoint", "state") if f in c]
            rows.append(W.HBox([W.Label("groups:"), *c["groups"].values(), c["show_shift"]]))
            view: Any = self._output
            try:  # an interactive canvas: pointing at a point shows its image
                from ipympl.backend_nbagg import new_figure_manager_given_figure
                from matplotlib.figure import Figure

                manager = new_figure_manager_given_figure(id(self), Figure(figsize=self.figsize, layout="constrained"))
                self._canvas = manager.canvas
                self._canvas.header_visible = False
                for name in ("button_press_event", "motion_notify_event"):
                    self._canvas.mpl_connect(name, self._on_pointer)
                view = self._canvas
            except ImportError:  # static pictures; show_point(i) still fills the panel
                self._canvas = None
            label = W.Label("click or hover over a point" if self._canvas is not None else
                            "pip install ipympl to point at images; explorer.show_point(i) shows one")
            image = W.Image(format="png", width=160, height=160)
            self._panel = (image, label)
            side = W.VBox([image, label], layout=W.Layout(width="230px"))
            self._widget = W.VBox([*rows, W.HBox([view, side] if self._image_parts else [view])])
            self.update()
        return self._widget

    def _ipython_display_(self) -> None:  # pragma: no cover - needs a frontend
        from IPython.display import display
        display(self.widget)

    @classmethod
    def from_set(cls, emb: EmbeddingSet, coords: Any, **kwargs: Any) -> "EmbeddingExplorer":
        """An explorer over an :class:`EmbeddingSet` and its 2-D coordinates (group order kept)."""
        if len(emb) != len(np.asarray(coords)):
            raise ValueError(f"{len(emb)} points but {len(np.asarray(coords))} coordinates")
        kwargs.setdefault("group_order", emb.group_names)
        return cls(coords, emb.table(), **kwargs)
