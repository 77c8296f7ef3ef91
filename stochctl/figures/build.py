"""Building and saving the package's figures (``stochctl figures``): :func:`generate` builds every figure
of :data:`~stochctl.figures.catalog.FIGURES` and saves it as a PNG of exactly ``size * DPI`` pixels, with the
captions in ``README.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from .._io import atomic_path, write_text_atomic
from .catalog import DPI, FIGURES, FigureSpec, get_spec, readme_text

__all__ = ["build_figure", "save_figure", "generate"]


def build_figure(spec: FigureSpec | str, *, quick: bool = False):
    """Build one figure (a :class:`matplotlib.figure.Figure`) with the package style.

    Args:
        spec: a :class:`FigureSpec` or its name.
        quick: coarse grids and few Monte Carlo paths (for tests; seconds per figure).
    """
    from . import _style

    from . import convexity, dirac_policy, discrete_policy, explosion, local_policy, minimax, schedule, validation

    builders = {m.__name__.rsplit(".", 1)[1]: m for m in (convexity, dirac_policy, discrete_policy, explosion,
                                                         local_policy, minimax, schedule, validation)}
    spec = get_spec(spec) if isinstance(spec, str) else spec
    module = builders[spec.module]
    with _style.style():
        fig = module.figure(quick=quick, size=spec.size)
    return fig


def save_figure(fig, path: Path, spec: FigureSpec) -> Path:
    """Save ``fig`` as a PNG of exactly :func:`pixel_size` pixels."""
    from . import _style

    fig.set_size_inches(*spec.size)
    with _style.style(), atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    return path


def generate(out: str | Path = "figures", *, quick: bool = False, names: Iterable[str] | None = None,
             progress: bool = True, readme: bool = True,
             callback: Callable[[FigureSpec, float], None] | None = None) -> list[Path]:
    """Build and save figures (all of them by default) into ``out``.

    Args:
        out: output folder (created if missing).
        quick: coarse versions (seconds per figure).
        names: only these figures (by name).
        progress: show a tqdm progress bar on stderr.
        readme: also write the captions to ``out/README.md``.
        callback: called with each spec and its build time in seconds.

    Returns:
        The paths of the PNG files written.
    """
    import sys

    import matplotlib
    from tqdm.auto import tqdm

    if "matplotlib.pyplot" not in sys.modules:  # headless; figures never go through pyplot
        matplotlib.use("Agg")
    specs = FIGURES if names is None else tuple(get_spec(n) for n in names)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    bar = tqdm(specs, desc="figures", unit="fig", disable=not (progress and sys.stderr.isatty()), dynamic_ncols=True)
    for spec in bar:
        bar.set_postfix_str(spec.name)
        start = time.perf_counter()
        fig = build_figure(spec, quick=quick)
        written.append(save_figure(fig, out / spec.filename, spec))
        if callback is not None:
            callback(spec, time.perf_counter() - start)
    if readme:
        write_text_atomic(out / "README.md", readme_text(FIGURES))
    return written
