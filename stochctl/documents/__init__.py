"""Documents: the derivations and their analyses rendered as Markdown, LaTeX and JSON.

:mod:`.render` renders a continuous-time :class:`~stochctl.symbolic.Derivation` (with the convexity
findings of :mod:`stochctl.analysis.convexity`), :mod:`.discrete_render` a
:class:`~stochctl.symbolic.DiscreteDerivation` (with the explosion thresholds of
:mod:`stochctl.analysis.explosion`); :func:`write_derivations` writes the documents of every
canonical model. Importing this package registers both renderers, so that ``d.to_markdown()`` and
friends work on any derivation.
"""

from __future__ import annotations

from ..symbolic.derivation import Derivation, register_renderer
from ..symbolic.discrete import DiscreteDerivation
from . import discrete_render, render
from .write import write_derivations as write_derivations

register_renderer(Derivation, render)
register_renderer(DiscreteDerivation, discrete_render)

__all__ = ["render", "discrete_render", "write_derivations"]
