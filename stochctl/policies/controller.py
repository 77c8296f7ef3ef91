"""One controller step: a player's measurement -> (multiplier, status), in the array library of its inputs.

Every trainer adapter (the PyTorch scheduler, the optax transformation, and through them the study)
turns its measurement into a rate with :func:`controller_step`, and nothing else repeats it:

    u, code = policy(k, a, s2, |g|, field)      (LocalPolicy.evaluate: table or closed form, step cap)
    u = u_safe, code = FALLBACK  where the measurement is not valid (non-finite loss or measurement)
    u = sum_i w_i u_i / sum_i w_i               (``reduce=True``, per-coordinate multipliers, weights w)
    tally = (#ok, #warmup, #nonconvex, #fallback, #lookups clamped, #NaN lookups)

The inputs may be Python or numpy numbers, torch tensors or jax arrays; the step uses the library
of ``estimate.a`` throughout and never converts to Python values, so on torch it runs on the
tensors' device without a host synchronisation and under jax it traces into ``jit``. This module
imports neither torch nor jax.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from .estimators.base import _SCALARS, FALLBACK, STATUS_NAMES, Estimate, namespace

COUNT_NAMES = STATUS_NAMES + ("clamped", "nan")


@dataclass(frozen=True, eq=False)
class Control:
    """The result of one controller step (arrays of the inputs' library).

    Attributes:
        multiplier: u (0-d, or per coordinate when not reduced).
        status: the policy case per multiplier (OK, WARMUP, NONCONVEX, FALLBACK); None for a plain callable.
        lookup_status: per multiplier 0, or 1 (table lookup clamped), 2 (NaN lookup).
        tau_remaining, y: the local-model coordinates read (NaN where not defined).
        valid: False where the measurement was not finite (a divergence), else True.
    """

    multiplier: Any
    status: Any = None
    lookup_status: Any = None
    tau_remaining: Any = None
    y: Any = None
    valid: Any = True

    @property
    def tally(self):
        """Counts over :data:`COUNT_NAMES` added by this step (None for a plain callable policy)."""
        if self.status is None:
            return None
        xp = np if isinstance(self.status, (int, np.integer, np.ndarray)) else namespace(self.status)
        return tally_of(self.status, self.lookup_status, xp)


_SLOTS = np.arange(len(COUNT_NAMES))


def tally_of(code, lstat, xp) -> Any:
    """Counts over :data:`COUNT_NAMES` of status codes and lookup statuses (int array of ``xp``).

    Each multiplier adds one to the slot of its status and, if its lookup was clamped (1) or NaN (2),
    one to slot 3 + lstat: a one-hot sum over the slots, a few array operations for any size.
    """
    slots = xp.arange(len(COUNT_NAMES), device=code.device) if xp.__name__ == "torch" else _SLOTS
    code, lstat = xp.reshape(code, (-1, 1)), xp.reshape(lstat, (-1, 1))
    hits = (code == slots) | ((lstat + 3 == slots) & (lstat > 0))
    return xp.sum(hits, axis=0)


@dataclass(frozen=True, eq=False)
class Tally:
    """Counts over :data:`COUNT_NAMES` standing in for the controller steps they summarise."""

    tally: Any


def fold_tallies(items):
    """The summed tally of controller steps (:class:`Control`) and :class:`Tally` records, in their library.

    The steps' statuses are concatenated and counted at once: about one array operation per
    step, where counting each step apart takes ten.
    """
    by_lib: dict = {}  # steps of one library counted together (a scheduler's first step may be numpy's)
    for c in items:
        if isinstance(c, Control) and c.status is not None:
            xp = np if isinstance(c.status, (int, np.integer, np.ndarray)) else namespace(c.status)
            by_lib.setdefault(xp, []).append(c)
    parts = [tally_of(xp.concatenate([xp.reshape(c.status, (-1,)) for c in cs]),
                      xp.concatenate([xp.reshape(c.lookup_status, (-1,)) for c in cs]), xp) for xp, cs in by_lib.items()]
    parts += [t.tally for t in items if isinstance(t, Tally)]
    arrays = [p for p in parts if not isinstance(p, np.ndarray)]
    if arrays:  # numpy counts join the other library's on its device (a copy to the device, no read)
        xp = namespace(arrays[0])
        device = {"device": arrays[0].device} if xp.__name__ == "torch" else {}
        parts = [xp.asarray(p, **device) if isinstance(p, np.ndarray) else p for p in parts]
    total = None
    for p in parts:
        total = p if total is None else total + p
    return total


def reduce(u, weights, xp):
    """One multiplier from per-coordinate ones: sum_i w_i u_i / sum_i w_i (the plain mean if all w_i = 0)."""
    if weights is None:
        return xp.mean(u)
    sw = xp.sum(weights)
    return xp.where(sw > 0, xp.sum(weights * u) / xp.where(sw > 0, sw, 1.0), xp.mean(u))


def controller_step(policy, step, estimate: Estimate, *, eta=None, lookup=None, valid=None,
                    reduce_weights: bool = False) -> Control:
    """The multiplier and status of one player's step (module docstring).

    Args:
        policy: a :class:`~stochctl.policies.LocalPolicy` (or :class:`~stochctl.policies.OneStepPolicy`),
            or any callable ``u = policy(step, estimate)``.
        step: k, the number of steps taken (an int, or an array under ``jit``).
        estimate: the measurement: curvature ``a`` per unit of rate, noise ``s2``, ``grad_norm``,
            ``ready``, optional ``field`` and ``weights``; all of one array library.
        eta: the base learning rate (a number).
        lookup: the policy's table lookup for this library (``policy.lookup_fn(xp)``; built when None).
        valid: a boolean array, False where the measurement diverged: there u is the policy's safe
            multiplier (``fallback``) and the status FALLBACK.
        reduce_weights: reduce per-coordinate multipliers to one with ``estimate.weights``.
    """
    xp = namespace(estimate.a) if not isinstance(estimate.a, (float, int)) else np
    if not hasattr(policy, "evaluate"):
        u = policy(step, estimate)
        if valid is not None:
            u = xp.where(valid, u, 0.0)
        return Control(u, valid=True if valid is None else valid)
    if xp is np and valid is None and hasattr(policy, "_scalar") and _scalars(estimate):
        u, code, tau, y, lstat = policy._scalar(step, float(estimate.a), float(estimate.s2),
                                                float(estimate.grad_norm), bool(estimate.ready), eta,
                                                None if estimate.field is None else float(estimate.field))
        return Control(float(u), np.asarray(code), np.asarray(lstat), tau, y)
    if lookup is None:
        lookup = policy.lookup_fn(xp)
    a = estimate.a if xp is not np else np.asarray(estimate.a, dtype=np.float64)
    ready = estimate.ready  # a Python bool stays one: classify needs no array for it
    valid_done = False
    field = estimate.field
    if xp is np:
        with np.errstate(all="ignore"):
            u, code, tau, y, lstat = policy.evaluate(
                step, a, np.broadcast_to(np.asarray(estimate.s2, dtype=np.float64), a.shape),
                np.broadcast_to(np.asarray(estimate.grad_norm, dtype=np.float64), a.shape), ready, eta, lookup, np,
                field=None if field is None else np.asarray(field, dtype=np.float64))
    elif _takes_valid(policy):  # the status FALLBACK and the safe multiplier where not valid, in the evaluation
        u, code, tau, y, lstat = policy.evaluate(step, a, estimate.s2, estimate.grad_norm, ready, eta, lookup, xp,
                                                 field=field, valid=valid)
        valid_done = True
    else:
        u, code, tau, y, lstat = policy.evaluate(step, a, estimate.s2, estimate.grad_norm, ready, eta, lookup, xp,
                                                 field=field)
    if valid is not None and not valid_done:
        u = xp.where(valid, u, policy.fallback)
        code = xp.where(valid, code, FALLBACK)
        lstat = xp.where(valid, lstat, 0)
    if reduce_weights and getattr(u, "ndim", 0) > 0:
        u = reduce(u, None if estimate.weights is None else estimate.weights, xp)
    return Control(u, code, lstat, tau, y, True if valid is None else valid)


_TAKES_VALID: dict = {}


def _takes_valid(policy) -> bool:
    """Whether ``policy.evaluate`` accepts ``valid=`` (looked up once per class)."""
    cls = type(policy)
    hit = _TAKES_VALID.get(cls)
    if hit is None:
        hit = _TAKES_VALID[cls] = "valid" in inspect.signature(policy.evaluate).parameters
    return hit


def _scalars(e: Estimate) -> bool:
    """All of a, s2, grad_norm (and field) plain numbers: the policy's scalar twin evaluates them."""
    vals = (e.a, e.s2, e.grad_norm) + (() if e.field is None else (e.field,))
    return all(isinstance(v, _SCALARS) and not isinstance(v, bool) for v in vals) and isinstance(e.ready, (bool, np.bool_))


def to_python(v):
    """A 0-d array as a Python number, a larger one as a numpy array, anything else unchanged (the one conversion)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    elif not isinstance(v, (np.ndarray, np.generic)) and type(v).__module__.startswith(("jax", "jaxlib")):
        v = np.asarray(v)
    if isinstance(v, (np.ndarray, np.generic)):
        if v.ndim == 0:
            return v.item()
        return v
    return v


__all__ = ["COUNT_NAMES", "Control", "Tally", "controller_step", "fold_tallies", "reduce", "tally_of", "to_python"]
