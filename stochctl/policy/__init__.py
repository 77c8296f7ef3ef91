"""Policy tables and trainer adapters.

A :class:`PolicyTable` stores an optimal learning-rate multiplier on a grid and
answers lookups; the estimators turn a training run's gradients into the
table's inputs; :class:`LocalPolicy` combines both into
``multiplier = policy(step, stats)``; :class:`OneStepPolicy` is the
table-free one-step rule of the discrete local model. The curvature of the
step about to be taken: :mod:`stochctl.policy.curvature`. The PyTorch scheduler
(:class:`ControlledLR`) and the optax adapters (:func:`scale_by_policy`,
:class:`PolicySchedule`) are loaded on first use, so importing this package
never imports torch or jax. The packaged local-model table and how it is
built: :mod:`stochctl.policy.shipped`; families of tables over parameter
values on any executor: :func:`stochctl.policy.sweep.sweep`.
"""

from __future__ import annotations

import importlib

from .estimators import CompositeEstimator as CompositeEstimator
from .estimators import Estimate as Estimate
from .local_policy import LocalPolicy as LocalPolicy
from .estimators import MicroBatchNoise as MicroBatchNoise
from .local_policy import OneStepPolicy as OneStepPolicy
from .estimators import RegressionEstimator as RegressionEstimator
from .estimators import SecantCurvature as SecantCurvature
from .local_policy import policy_inputs as policy_inputs
from .table import MULTIPLIER as MULTIPLIER
from .table import LookupResult as LookupResult
from .table import LookupStats as LookupStats
from .table import PolicyTable as PolicyTable
from .table import TableAxis as TableAxis
from .table import TableValue as TableValue
from .table import load_table as load_table

_LAZY = {
    "ControlledLR": "torch_adapter",
    "directional_curvature": "torch_adapter",
    "own_curvature": "curvature",
    "field_measure": "curvature",
    "step_direction": "curvature",
    "scale_by_policy": "optax_adapter",
    "PolicySchedule": "optax_adapter",
}

__all__ = [
    "PolicyTable", "TableAxis", "TableValue", "LookupResult", "LookupStats", "MULTIPLIER", "load_table",
    "Estimate", "RegressionEstimator", "SecantCurvature", "MicroBatchNoise", "CompositeEstimator",
    "LocalPolicy", "OneStepPolicy", "policy_inputs",
    "ControlledLR", "directional_curvature", "own_curvature", "field_measure", "step_direction",
    "scale_by_policy", "PolicySchedule",
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
