"""Policy tables, policies and trainer adapters under one name (the user-facing face of three stages).

:mod:`stochctl.tables` (a :class:`PolicyTable` stores an optimal learning-rate multiplier on a grid
and answers lookups; the packaged tables and how they are built; sweeps over parameter values),
:mod:`stochctl.policies` (the estimators that turn a training run's gradients into the table's inputs;
:class:`LocalPolicy`, ``multiplier = policy(step, stats)``; :class:`OneStepPolicy`, the table-free
one-step rule of the discrete local model) and :mod:`stochctl.trainers` (the PyTorch scheduler
:class:`ControlledLR`, the optax adapters :func:`scale_by_policy` and :class:`PolicySchedule`, and the
curvature of the step about to be taken). The trainer names are loaded on first use, so importing this
package never imports torch or jax.
"""

from __future__ import annotations

from .. import trainers as _trainers
from ..policies import CompositeEstimator as CompositeEstimator
from ..policies import Estimate as Estimate
from ..policies import LocalPolicy as LocalPolicy
from ..policies import MicroBatchNoise as MicroBatchNoise
from ..policies import OneStepPolicy as OneStepPolicy
from ..policies import RegressionEstimator as RegressionEstimator
from ..policies import SecantCurvature as SecantCurvature
from ..policies import policy_inputs as policy_inputs
from ..tables import MULTIPLIER as MULTIPLIER
from ..tables import LookupResult as LookupResult
from ..tables import LookupStats as LookupStats
from ..tables import PolicyTable as PolicyTable
from ..tables import TableAxis as TableAxis
from ..tables import TableValue as TableValue
from ..tables import load_table as load_table

__all__ = [
    "PolicyTable", "TableAxis", "TableValue", "LookupResult", "LookupStats", "MULTIPLIER", "load_table",
    "Estimate", "RegressionEstimator", "SecantCurvature", "MicroBatchNoise", "CompositeEstimator",
    "LocalPolicy", "OneStepPolicy", "policy_inputs", *_trainers.__all__,
]


def __getattr__(name):
    if name in _trainers.__all__:
        return getattr(_trainers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
