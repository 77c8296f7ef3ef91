"""Empirical study: GAN training with the controlled learning rate against standard optimisers.

``run_study(config, out)`` trains every (task, method, base rate, seed) of a
:class:`StudyConfig` and writes one CSV row per run; ``write_report(out)``
turns the CSV into a Markdown summary and figures.
"""

from __future__ import annotations

from .methods import METHOD_NAMES as METHOD_NAMES
from .protocol import StudyConfig as StudyConfig
from .protocol import full_config as full_config
from .protocol import quick_config as quick_config
from .runner import run_study as run_study
from .tasks import TASK_NAMES as TASK_NAMES

__all__ = ["METHOD_NAMES", "TASK_NAMES", "StudyConfig", "full_config", "quick_config", "run_study",
           "write_report"]


def write_report(out, **kwargs):
    """Summary table and figures of a study folder (see :func:`stochctl.study.report.write_report`)."""
    from .report import write_report as _write

    return _write(out, **kwargs)
