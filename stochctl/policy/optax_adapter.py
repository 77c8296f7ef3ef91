"""optax adapters: the policy multiplier as a gradient transformation or a schedule.

Both compute, at update k (k updates done before),

    u*_k = policy(k, estimate after observing (g_0, x_0) .. (g_{k-1}, x_{k-1}), at x_k),

exactly as :class:`~stochctl.policy.torch_adapter.ControlledLR` does, and are
pure functions of their state, so they run under ``jax.jit``:

- :func:`scale_by_policy` is a ``GradientTransformationExtraArgs`` that
  multiplies its incoming updates by u* (per coordinate in coordinate mode)
  and feeds the gradients to the estimator: its input updates, or the
  ``grads=`` extra argument when it sits after other transformations, e.g.
  ``optax.chain(optax.scale_by_adam(), scale_by_policy(...), optax.scale(-eta))``
  with ``tx.update(updates, state, params, grads=grads)``.
- :class:`PolicySchedule` is an ``optax.StatefulSchedule`` returning eta * u*
  for ``optax.inject_hyperparams``; the schedule only sees the extra
  arguments, so call ``tx.update(grads, state, params, grads=grads,
  model_params=params)``.

The table is interpolated with a jax.numpy twin of the numba kernel (same
clamping and NaN fallback). Tables whose extrapolation is ``"error"`` are
refused, since a jitted update cannot raise on a traced value.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError, require_extra
from .estimators import STATUS_NAMES, LocalPolicy, RegressionEstimator

COUNT_NAMES = STATUS_NAMES + ("clamped", "nan")


class PolicyState(NamedTuple):
    """State of :func:`scale_by_policy` and :class:`PolicySchedule`.

    Attributes:
        count: updates done (the next step index k).
        estimator: the estimator's moving averages.
        multiplier: u* applied at the last update (scalar, or flat per coordinate).
        counts: int32[6], how often each case occurred: ok, warmup, nonconvex,
            fallback, table lookups clamped, NaN lookups (see ``COUNT_NAMES``).
    """

    count: Any
    estimator: Any
    multiplier: Any
    counts: Any


def counts_dict(state: PolicyState) -> dict:
    """The ``counts`` of a state as a name -> int dict."""
    return dict(zip(COUNT_NAMES, (int(c) for c in np.asarray(state.counts))))


def _jax():
    require_extra("optax", "optax")
    jax = require_extra("jax", "optax")
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    return jax, jnp, ravel_pytree


def jax_table_lookup(table, value: str):
    """jax.numpy multilinear interpolation of one table value: f(*coords) -> (values, status).

    Same rules as the numba kernel: coordinates clamped into the grid (status
    1), NaN coordinates answered with the value's fallback (status 2).
    """
    _, jnp, _ = _jax()
    spec = table.value(value)
    bps = [np.asarray(a.breakpoints) for a in table.axes]
    data = np.asarray(spec.data)
    fallback = float(spec.fallback)

    def lookup(*coords):
        dtype = jnp.result_type(*coords, jnp.float32)
        nan = False
        clamped = False
        idx, frac = [], []
        for b, q in zip(bps, coords):
            q = jnp.asarray(q, dtype)
            bj = jnp.asarray(b, dtype)
            lo, hi = bj[0], bj[-1]
            isnan = jnp.isnan(q)
            nan = nan | isnan
            clamped = clamped | (q < lo) | (q > hi)
            qc = jnp.clip(jnp.where(isnan, lo, q), lo, hi)
            i = jnp.clip(jnp.searchsorted(bj, qc, side="right") - 1, 0, b.size - 2)
            idx.append(i)
            frac.append((qc - bj[i]) / (bj[i + 1] - bj[i]))
        V = jnp.asarray(data, dtype)
        out = 0.0
        for corner in itertools.product((0, 1), repeat=len(bps)):
            w = 1.0
            for t, c in zip(frac, corner):
                w = w * (t if c else 1.0 - t)
            out = out + w * V[tuple(i + c for i, c in zip(idx, corner))]
        out = jnp.where(nan, jnp.asarray(fallback, dtype), out)
        status = jnp.where(nan, 2, jnp.where(clamped, 1, 0))
        return out, status

    return lookup


def _check_policy(policy):
    if not isinstance(policy, LocalPolicy):
        raise InputError(f"policy must be a LocalPolicy; got {type(policy).__name__}")
    for a in policy.table.axes:
        if "error" in a.extrapolation:
            raise InputError(f"axis {a.name!r} has extrapolation {a.extrapolation}; a jitted update cannot "
                             "raise, so use a table whose axes clip")


class _Core:
    """Shared pieces: estimator, lookup and the multiplier of a state."""

    def __init__(self, policy, eta, estimator):
        _check_policy(policy)
        self.policy = policy
        self.eta = policy._eta(eta)
        self.estimator = RegressionEstimator() if estimator is None else estimator.fresh()
        if not hasattr(self.estimator, "read"):
            raise InputError("the estimator must provide the functional API (init_state/next_state/read)")
        base = jax_table_lookup(policy.table, policy.value)
        order = policy._order

        def lookup(tau, y, mask):
            coords = (tau, y)
            return base(*(coords[i] for i in order))

        self.lookup = lookup

    def multiplier(self, state: PolicyState, x):
        _, jnp, _ = _jax()
        r = self.estimator.read(state.estimator, x, jnp)
        ready = r["count"] >= self.estimator.warmup
        u, code, _, _, lstat = self.policy.evaluate(state.count, r["a"], r["s2"], r["grad_norm"], ready,
                                                    self.eta, self.lookup, jnp)
        tally = jnp.stack([jnp.sum(code == i) for i in range(len(STATUS_NAMES))]
                          + [jnp.sum(lstat == 1), jnp.sum(lstat == 2)]).astype(jnp.int32)
        return u, r.get("weights"), tally

    def init(self, x):
        _, jnp, _ = _jax()
        coordinate = getattr(self.estimator, "mode", "direction") == "coordinate"
        u0 = jnp.zeros_like(x) if coordinate else jnp.zeros([], x.dtype)
        return PolicyState(jnp.zeros([], jnp.int32), self.estimator.init_state(x, jnp),
                           u0 + self.policy.warmup_multiplier, jnp.zeros(len(COUNT_NAMES), jnp.int32))

    def advance(self, state: PolicyState, g, x, u, tally) -> PolicyState:
        _, jnp, _ = _jax()
        return PolicyState(state.count + 1, self.estimator.next_state(state.estimator, g, x, jnp),
                           jnp.asarray(u, state.multiplier.dtype) + 0 * state.multiplier,
                           state.counts + tally)


def scale_by_policy(policy: LocalPolicy, *, eta: float | None = None, estimator=None):
    """Gradient transformation multiplying the updates by the policy multiplier u*.

    Args:
        policy: a :class:`~stochctl.policy.LocalPolicy` (its ``total_steps``
            is K).
        eta: base learning rate of the local-model mapping (default: the
            policy's ``eta``).
        estimator: estimator template (default
            :class:`~stochctl.policy.RegressionEstimator`); in coordinate mode
            every coordinate is scaled by its own u*.

    Returns:
        ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``
        and accepts ``grads=`` (the raw gradients, when its input updates are
        not).
    """
    optax = require_extra("optax", "optax")
    jax, jnp, ravel_pytree = _jax()
    core = _Core(policy, eta, estimator)

    def init_fn(params):
        x, _ = ravel_pytree(params)
        return core.init(x)

    def update_fn(updates, state, params=None, **extra_args):
        if params is None:
            raise InputError("scale_by_policy needs the parameters: call update(updates, state, params)")
        grads = extra_args.get("grads", updates)
        g, _ = ravel_pytree(grads)
        x, _ = ravel_pytree(params)
        u, _, tally = core.multiplier(state, x)
        if jnp.ndim(u) == 0:
            scaled = jax.tree.map(lambda t: (t * u).astype(t.dtype), updates)
        else:
            flat, unravel = ravel_pytree(updates)
            scaled = unravel((flat * u).astype(flat.dtype))
        return scaled, core.advance(state, g, x, u, tally)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class PolicySchedule:
    """``optax.StatefulSchedule`` giving the learning rate eta * u* for ``inject_hyperparams``.

    Example::

        sched = PolicySchedule(policy, eta=0.1, params=params)
        tx = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
        updates, state = tx.update(grads, state, params, grads=grads, model_params=params)

    In coordinate mode the per-coordinate multipliers are averaged with the
    weights d_i^2 of the gradient direction.

    Args:
        policy: a :class:`~stochctl.policy.LocalPolicy`.
        eta: base learning rate (default: the policy's ``eta``).
        params: a parameter pytree (shapes and dtype of the estimator state).
        estimator: estimator template (default ``RegressionEstimator()``).
    """

    def __init__(self, policy: LocalPolicy, *, params, eta: float | None = None, estimator=None):
        _, jnp, ravel_pytree = _jax()
        self._core = _Core(policy, eta, estimator)
        x, _ = ravel_pytree(params)
        self._shape, self._dtype = x.shape, x.dtype

    @property
    def eta(self) -> float:
        return self._core.eta

    def init(self) -> PolicyState:
        _, jnp, _ = _jax()
        return self._core.init(jnp.zeros(self._shape, self._dtype))

    def _scalar(self, state, extra):
        _, jnp, ravel_pytree = _jax()
        x = extra.get("model_params")
        x = None if x is None else ravel_pytree(x)[0]
        u, w, tally = self._core.multiplier(state, x)
        if jnp.ndim(u) > 0:
            sw = jnp.sum(w)
            u = jnp.where(sw > 0, jnp.sum(w * u) / jnp.where(sw > 0, sw, 1.0), jnp.mean(u))
        return u, x, tally

    def __call__(self, state: PolicyState, **extra_args):
        u, _, _ = self._scalar(state, extra_args)
        return self._core.eta * u

    def update(self, state: PolicyState, **extra_args) -> PolicyState:
        if "grads" not in extra_args or "model_params" not in extra_args:
            raise InputError("PolicySchedule needs the gradients and parameters: call "
                             "tx.update(grads, state, params, grads=grads, model_params=params)")
        _, _, ravel_pytree = _jax()
        u, x, tally = self._scalar(state, extra_args)
        g, _ = ravel_pytree(extra_args["grads"])
        return self._core.advance(state, g, x, u, tally)


__all__ = ["scale_by_policy", "PolicySchedule", "PolicyState", "jax_table_lookup", "counts_dict", "COUNT_NAMES"]
