"""Shared look of the package's figures: 150 dpi, readable labels, colour bars.

Figures are built as :class:`matplotlib.figure.Figure` objects (no pyplot
state, rendered by the Agg canvas), with constrained layout so that labels and
colour bars are never clipped, and saved at exactly ``size * DPI`` pixels.
"""

from __future__ import annotations

from contextlib import contextmanager

import matplotlib
import numpy as np
from matplotlib import colors
from matplotlib.figure import Figure

from .catalog import DPI

RC = {
    "font.size": 10,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.85,
    "figure.titlesize": 12,
    "axes.grid": False,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.6,
    "image.cmap": "viridis",
    "savefig.facecolor": "white",
    "figure.facecolor": "white",
    "axes.formatter.limits": (-3, 4),
    "hatch.linewidth": 0.6,
}
"""Matplotlib settings applied while a figure is built and saved."""

VALUE_CMAP = "viridis"
"""Colour map of value functions and objectives."""
POLICY_CMAP = "magma"
"""Colour map of learning-rate multipliers."""
SIGNED_CMAP = "RdBu_r"
"""Diverging colour map of signed quantities (eigenvalues), centred at 0."""
PROB_CMAP = "Greys"
"""Colour map of probabilities."""
COLORS = {"upper": "#c0392b", "lower": "#2471a3", "closed": "black", "numeric": "#e67e22",
          "pde": "#2471a3", "mc": "#c0392b", "det": "black", "ms": "#2471a3", "as": "#c0392b"}
"""Named line colours shared between figures."""


@contextmanager
def style():
    """Context in which figures are built and saved with the package style."""
    with matplotlib.rc_context(RC):
        yield


def new_figure(size: tuple[float, float]) -> Figure:
    """A figure of ``size`` inches with constrained layout (not registered with pyplot)."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    fig.get_layout_engine().set(h_pad=0.06, w_pad=0.06, hspace=0.04, wspace=0.04)
    return fig


def signed_norm(values: np.ndarray) -> colors.Normalize:
    """A symmetric colour norm centred at 0 for signed data (never degenerate)."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    vmax = float(np.max(np.abs(finite))) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    return colors.TwoSlopeNorm(vcenter=0.0, vmin=-vmax, vmax=vmax)


def heatmap(ax, x: np.ndarray, y: np.ndarray, z: np.ndarray, *, cmap=VALUE_CMAP, norm=None,
            vmin=None, vmax=None, label: str = "", colorbar: bool = True):
    """``z[i, j]`` at ``(x[i], y[j])`` (``indexing='ij'``) as an image with a colour bar.

    Returns:
        The ``QuadMesh`` drawn.
    """
    mesh = ax.pcolormesh(x, y, np.asarray(z, dtype=float).T, cmap=cmap, norm=norm, vmin=vmin, vmax=vmax,
                         shading="nearest", rasterized=True)
    if colorbar:
        cb = ax.figure.colorbar(mesh, ax=ax, shrink=0.95, pad=0.02)
        cb.set_label(label)
    return mesh


def outline(ax, x: np.ndarray, y: np.ndarray, mask: np.ndarray, *, color="white", hatch: str | None = "//",
            label: str | None = None, linewidth: float = 1.4):
    """Outline (and optionally hatch) the region where ``mask[i, j]`` holds at ``(x[i], y[j])``.

    Returns:
        A legend handle for the region, or None when the mask is empty.
    """
    from matplotlib.patches import Patch

    m = np.asarray(mask, dtype=float)
    if not m.any() or (m.all() and hatch is None):
        return None
    if 0 < m.mean() < 1:
        ax.contour(x, y, m.T, levels=[0.5], colors=[color], linewidths=linewidth)
    if hatch:
        filled = ax.contourf(x, y, m.T, levels=[0.5, 1.5], colors="none", hatches=[hatch])
        filled.set_edgecolor(color)
        filled.set_linewidth(0.0)
    if label is None:
        return None
    return Patch(facecolor="none", edgecolor=color, hatch=hatch, linewidth=linewidth, label=label)


def panel_label(ax, text: str) -> None:
    """Prefix the axes title with a bold panel letter, e.g. **a**."""
    ax.set_title(f"$\\bf{{{text}}}$  " + ax.get_title())


def clean(value: float, tolerance: float) -> float:
    """``value`` with magnitudes within ``tolerance`` of 0 shown as 0."""
    return 0.0 if abs(value) <= tolerance else float(value)
