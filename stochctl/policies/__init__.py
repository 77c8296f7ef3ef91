"""Policies: the online estimates of a training run's local model and the rules that turn them into a multiplier.

:class:`LocalPolicy` reads a policy table at the estimated inputs, :class:`OneStepPolicy` is the
table-free one-step rule of the discrete local model, :func:`controller_step` the one step every trainer takes
from a measurement to a multiplier; the estimators (:mod:`.estimators`) turn
gradients into the policies' inputs.
"""

from __future__ import annotations

from .controller import Control as Control
from .controller import controller_step as controller_step
from .estimators import CompositeEstimator as CompositeEstimator
from .estimators import Estimate as Estimate
from .estimators import MicroBatchNoise as MicroBatchNoise
from .estimators import RegressionEstimator as RegressionEstimator
from .estimators import SecantCurvature as SecantCurvature
from .local_policy import LocalPolicy as LocalPolicy
from .local_policy import OneStepPolicy as OneStepPolicy
from .local_policy import policy_inputs as policy_inputs

__all__ = ["Estimate", "RegressionEstimator", "SecantCurvature", "MicroBatchNoise", "CompositeEstimator",
           "LocalPolicy", "OneStepPolicy", "policy_inputs", "controller_step", "Control"]
