"""Figures of a run and of a comparison of runs, for the report and for TensorBoard, drawn with
matplotlib's object API (no pyplot state).

Every function returns a ``matplotlib.figure.Figure``; ``save_png`` writes
it to a file and ``png_bytes`` encodes it (for ``tf.summary.image``).

* ``kept_fraction_figure``: share of the training split back-propagated per
  epoch, coloured by schedule phase.
* ``cost_vs_f1_figure``: validation macro-F1 after each epoch against the
  cumulative total work (forward + Grad-CAM + backward sample-passes).
* ``comparison_figure``: test macro-F1 with its bootstrap interval against
  the total work of each run.
* ``gradcam_overlay_figure``: one lead of a few ECGs with their Grad-CAM map
  as a coloured band behind the trace.
"""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

PHASE_COLOURS = {
    "warmup": "#9e9e9e",
    "select": "#1f77b4",
    "select_cam": "#d62728",
    "revision": "#2ca02c",
    "full": "#7f7f7f",
}
WORK_KEYS = ("forward_train", "forward_score", "gradcam", "backward")


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str) -> str:
    """Writes ``fig`` as a PNG at ``path`` (folders created); returns ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, format="png")
    return path


def png_bytes(fig: Figure) -> bytes:
    """``fig`` encoded as PNG."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def cumulative_work(epochs: list[dict]) -> np.ndarray:
    """Total work (sample-passes: forward train + forward score + Grad-CAM + backward) after each epoch."""
    return np.cumsum([sum(int(e.get(k, 0)) for k in WORK_KEYS) for e in epochs])


def kept_fraction_figure(epochs: list[dict], title: str = "") -> Figure:
    """Bars of ``kept_fraction`` per epoch of a run's ledger, coloured by phase."""
    fig = _figure(7, 3.2)
    ax = fig.add_subplot()
    x = [e["epoch"] for e in epochs]
    phases = [e.get("phase", "full") for e in epochs]
    ax.bar(x, [e["kept_fraction"] for e in epochs], color=[PHASE_COLOURS.get(p, "#333333") for p in phases], width=0.8)
    handles = [Patch(color=PHASE_COLOURS.get(p, "#333333"), label=p) for p in dict.fromkeys(phases)]
    ax.set_xlabel("epoch")
    ax.set_xticks(x if len(x) <= 30 else x[:: max(1, len(x) // 15)])
    ax.set_ylabel("kept fraction (back-propagated / n_train)")
    ax.set_ylim(0, 1.15)
    ax.legend(handles=handles, title="phase", fontsize=8, title_fontsize=8, loc="upper right", ncols=len(handles))
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or "Kept fraction per epoch")
    return fig


def cost_vs_f1_figure(epochs: list[dict], val_f1: list[float | None], n_train: int | None = None, title: str = "") -> Figure:
    """Validation macro-F1 after each epoch against the cumulative total work.

    Args:
      epochs: the run's ledger (``summary["epochs"]``).
      val_f1: validation macro-F1 per ledger entry (None where unknown).
      n_train: training-split size; if given, full training's cost (2 passes per
        sample per epoch) is drawn for reference on a second x axis in epochs.
    """
    fig = _figure(7, 3.6)
    ax = fig.add_subplot()
    work = cumulative_work(epochs)
    known = [i for i, v in enumerate(val_f1) if v is not None]
    if known:
        ax.plot(work[known], [val_f1[i] for i in known], color="#444444", lw=1, zorder=1)
        ax.scatter(work[known], [val_f1[i] for i in known], zorder=2,
                   c=[PHASE_COLOURS.get(epochs[i].get("phase", "full"), "#333333") for i in known])
        for i in known:
            ax.annotate(str(epochs[i]["epoch"]), (work[i], val_f1[i]), textcoords="offset points", xytext=(3, 4), fontsize=7)
        phases = dict.fromkeys(epochs[i].get("phase", "full") for i in known)
        handles = [Line2D([], [], ls="", marker="o", color=PHASE_COLOURS.get(p, "#333333"), label=p) for p in phases]
        ax.legend(handles=handles, title="phase", fontsize=8, title_fontsize=8, loc="best")
    else:
        ax.text(0.5, 0.5, "no validation macro-F1 recorded", ha="center", va="center", transform=ax.transAxes)
    if n_train:
        top = ax.secondary_xaxis("top", functions=(lambda w: w / (2.0 * n_train), lambda e: e * 2.0 * n_train))
        top.set_xlabel("full-training epochs of work (2 passes/sample)")
    ax.set_xlabel("cumulative total work (sample-passes: forward + Grad-CAM + backward)")
    ax.set_ylabel("validation macro-F1")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title or "Validation macro-F1 vs cumulative cost (labels: epoch)")
    return fig


def comparison_figure(rows: list[dict], title: str = "") -> Figure:
    """Test macro-F1 (bootstrap interval as error bar) against total work, one point per run.

    Args:
      rows: dicts with ``label``, ``total_work`` (sample-passes), ``macro_f1`` and
        optional ``ci_low`` / ``ci_high``.
    """
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(rows))]
    for row, colour in zip(rows, colours):
        low, high = row.get("ci_low"), row.get("ci_high")
        yerr = None if low is None else [[row["macro_f1"] - low], [high - row["macro_f1"]]]
        ax.errorbar([row["total_work"]], [row["macro_f1"]], yerr=yerr, fmt="o", color=colour, capsize=4,
                    label=row["label"])
    ax.set_xlabel("total work (sample-passes: forward + Grad-CAM + backward)")
    ax.set_ylabel("test macro-F1 (95% bootstrap CI)")
    ax.set_ylim(0, 1.02)
    if rows:
        ax.set_xlim(0, max(r["total_work"] for r in rows) * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Test macro-F1 vs total training cost")
    return fig


def upsample(cam: np.ndarray, length: int) -> np.ndarray:
    """A ``(time',)`` map linearly interpolated to ``length`` samples (bin centres aligned)."""
    cam = np.asarray(cam, np.float64)
    if cam.size == length:
        return cam
    centres = (np.arange(cam.size) + 0.5) * length / cam.size
    return np.interp(np.arange(length) + 0.5, centres, cam)


def gradcam_overlay_figure(signals: np.ndarray, cams: np.ndarray, titles: list[str], lead_name: str = "",
                           sampling_rate: float | None = None, title: str = "") -> Figure:
    """One lead of ``k`` ECGs with their Grad-CAM maps as a coloured band behind each trace.

    Args:
      signals: ``(k, time)`` the lead to draw.
      cams: ``(k, time')`` Grad-CAM maps in [0, 1] (upsampled to ``time``).
      titles: one line per ECG.
      lead_name: shown on the y axis.
      sampling_rate: Hz; if given the x axis is in seconds.
    """
    k, length = signals.shape
    fig = _figure(9, 1.6 * k + 0.6)
    axes = fig.subplots(k, 1, squeeze=False)[:, 0]
    scale = 1.0 / sampling_rate if sampling_rate else 1.0
    image = None
    for ax, signal, cam, line in zip(axes, signals, cams, titles):
        low, high = float(np.min(signal)), float(np.max(signal))
        pad = 0.05 * (high - low or 1.0)
        image = ax.imshow(upsample(cam, length)[None, :], aspect="auto", cmap="inferno", vmin=0, vmax=1, alpha=0.55,
                          extent=(0, length * scale, low - pad, high + pad), interpolation="nearest")
        ax.plot(np.arange(length) * scale, signal, color="#0b3d91", lw=0.8)
        ax.set_xlim(0, length * scale)
        ax.set_title(line, fontsize=9, loc="left")
        ax.set_ylabel(lead_name or "signal", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[-1].set_xlabel("time (s)" if sampling_rate else "sample")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.8, label="Grad-CAM (true class)")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
