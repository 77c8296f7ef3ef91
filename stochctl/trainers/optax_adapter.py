"""optax adapters: the policy multiplier as a gradient transformation or a schedule.

Both compute, at update k (k updates done before),

    u*_k = policy(k, estimate after observing (g_0, x_0) .. (g_{k-1}, x_{k-1}), at x_k),

exactly as :class:`~stochctl.trainers.torch_adapter.ControlledLR` does, and are
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

from typing import Any, NamedTuple

import numpy as np

from ..errors import InputError, require_extra
from ..tables._jax_lookup import _jax, jax_table_lookup
from ..policies.controller import COUNT_NAMES, controller_step
from ..policies.estimators import Estimate, RegressionEstimator
from ..policies.local_policy import LocalPolicy


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


def _check_policy(policy):
    if not isinstance(policy, LocalPolicy):
        raise InputError(f"policy must be a LocalPolicy; got {type(policy).__name__}")
    for a in () if policy.table is None else policy.table.axes:
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
        self.lookup = policy.lookup_fn(_jax()[1])

    def multiplier(self, state: PolicyState, x, reduce_weights: bool = False):
        """(u, weights, tally) of the state's estimate at x: the one controller step."""
        _, jnp, _ = _jax()
        r = self.estimator.read(state.estimator, x, jnp)
        est = Estimate(r["a"], r["s2"], r["grad_norm"], 0, r["count"] >= self.estimator.warmup, r.get("weights"))
        c = controller_step(self.policy, state.count, est, eta=self.eta, lookup=self.lookup,
                            reduce_weights=reduce_weights)
        return c.multiplier, r.get("weights"), c.tally.astype(jnp.int32)

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


def scale_by_policy(policy: LocalPolicy, *, eta: float | None = None, estimator=None, curvature: str | None = None,
                    curvature_every: int = 20, noise_beta: float = 0.9):
    """Gradient transformation multiplying the updates by the policy multiplier u*.

    Args:
        policy: a :class:`~stochctl.policy.LocalPolicy` or
            :class:`~stochctl.policy.OneStepPolicy` (its ``total_steps`` is K).
        eta: base learning rate of the local-model mapping (default: the
            policy's ``eta``).
        estimator: estimator template (default
            :class:`~stochctl.policy.RegressionEstimator`); in coordinate mode
            every coordinate is scaled by its own u*.
        curvature: None (the estimator's curvature) or ``"own"``: the
            curvature of the step about to be taken, d^T H d / (g . d) with d
            the incoming updates (the step is x <- x - eta u d, so the
            transformation sits before the final ``optax.scale(-eta)``) and g
            the gradient (``grads=``, default the updates), by ``jax.jvp`` of
            ``jax.grad(value_fn)`` (about 2 gradient evaluations); the noise
            ratio from bias-corrected EMAs of g and |g|^2, as
            :class:`~stochctl.policy.ControlledLR` does. ``update`` then needs
            the loss as the extra argument ``value_fn`` (optax's
            ``GradientTransformationExtraArgs`` convention, as its line search):
            ``value_fn(params, **kw)`` with ``kw`` the other extra arguments
            whose names it accepts (the batch, say). ``"field"``: also the
            field measure |J[:, p] d| / |d| (the cap eta u field <= 1 of
            :func:`~stochctl.policies.local_policy.step_cap`), from one
            ``jax.jvp`` of both players' gradients along d; ``update`` then
            also needs ``other_params=`` (the other player's parameters) and
            ``other_value_fn=`` (its loss as ``other_value_fn(other_params,
            params, **kw)``, this player's parameters as the second argument).
        curvature_every: measure the curvature every k updates, reusing the
            last measurement in between (default 20, as
            :class:`~stochctl.policy.ControlledLR`).
        noise_beta: EMA decay of the noise ratio.

    Returns:
        ``optax.GradientTransformationExtraArgs``; ``update`` needs ``params``
        and accepts ``grads=`` (the raw gradients, when its input updates are
        not).
    """
    optax = require_extra("optax", "optax")
    jax, jnp, ravel_pytree = _jax()
    if curvature not in (None, "own", "field"):
        raise InputError(f"curvature must be None, 'own' or 'field'; got {curvature!r}")
    if curvature is not None:
        return _measured_transform(policy, eta, curvature_every, noise_beta, curvature == "field")
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


class MeasuredState(NamedTuple):
    """State of :func:`scale_by_policy` with ``curvature="own"``.

    Attributes:
        count: updates done.
        mg, q, beta_pow: the noise ratio's EMA of g, EMA of |g|^2 and beta^count.
        curvature: the last measured (own curvature d^T H d / |d|^2, field
            measure |J[:, p] d| / |d|; NaN without ``"field"``).
        multiplier: u* applied at the last update.
        counts: int32[6] as in :class:`PolicyState`.
    """

    count: Any
    mg: Any
    q: Any
    beta_pow: Any
    curvature: Any
    multiplier: Any
    counts: Any


def _scalar_fn(fn, args, name: str):
    """``fn`` returning a 0-d loss, after checking (at trace time) that its value is one number."""
    _, jnp, _ = _jax()
    import jax

    shape = jnp.shape(jax.eval_shape(fn, *args) if isinstance(args, tuple) else jax.eval_shape(fn, args))
    if shape not in ((), (1,)):
        raise InputError(f"{name} must return a scalar loss; got shape {shape}")
    return lambda *a: jnp.reshape(fn(*a), ())


def _kwargs_for(fn, extra: dict) -> dict:
    """The entries of ``extra`` that ``fn`` accepts by name (all of them if it takes ``**kwargs``)."""
    import inspect

    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    ps = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in ps):
        return dict(extra)
    names = {p.name for p in ps if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in extra.items() if k in names}


def _measured_transform(policy, eta, every, beta, field=False):
    optax = require_extra("optax", "optax")
    jax, jnp, ravel_pytree = _jax()
    _check_policy(policy)
    if not policy.discrete:
        raise InputError("curvature='own' sets the rate of the discrete-time policies (OneStepPolicy, a "
                         "discrete-time LocalPolicy table); this policy reads a continuous-time table")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise InputError(f"curvature_every must be a positive integer; got {every!r}")
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not 0.0 <= beta < 1.0:
        raise InputError(f"noise_beta must be a number in [0, 1); got {beta!r}")
    eta = policy._eta(eta)
    lookup = policy.lookup_fn(jnp)

    def init_fn(params):
        x, _ = ravel_pytree(params)
        z = jnp.zeros([], x.dtype)
        return MeasuredState(jnp.zeros([], jnp.int32), jnp.zeros_like(x), z, z + 1, jnp.stack([z, z]) + jnp.nan,
                             z + policy.warmup_multiplier, jnp.zeros(len(COUNT_NAMES), jnp.int32))

    def update_fn(updates, state, params=None, *, value_fn=None, other_value_fn=None, other_params=None,
                  **extra_args):
        if params is None:
            raise InputError("scale_by_policy needs the parameters: call update(updates, state, params, value_fn=...)")
        if value_fn is None or not callable(value_fn):
            raise InputError("curvature='own' needs the loss: call update(updates, state, params, "
                             f"value_fn=loss_fn); got value_fn={value_fn!r}")
        extra = {k: v for k, v in extra_args.items() if k != "grads"}
        fn = _scalar_fn(lambda p: value_fn(p, **_kwargs_for(value_fn, extra)), params, "value_fn")
        if field:
            if other_value_fn is None or not callable(other_value_fn) or other_params is None:
                raise InputError("curvature='field' needs the other player: call update(..., value_fn=loss_fn, "
                                 "other_value_fn=other_loss_fn, other_params=other_params)")
            kw_o = _kwargs_for(other_value_fn, extra)
            ofn = _scalar_fn(lambda q, p: other_value_fn(q, p, **kw_o), (other_params, params), "other_value_fn")
        grads = extra_args.get("grads", updates)
        d, unravel = ravel_pytree(updates)
        g, _ = ravel_pytree(grads)
        dd = jnp.sum(d * d)

        def both_gradients(p):
            gp = jax.grad(fn)(p)
            return (gp, jax.grad(ofn)(other_params, p)) if field else (gp,)

        def measure(_):
            _, jd = jax.jvp(both_gradients, (params,), (unravel(d),))
            hp = ravel_pytree(jd[0])[0]
            sq = jnp.sum(hp * hp) + (jnp.sum(ravel_pytree(jd[1])[0] ** 2) if field else 0.0)
            out = jnp.stack([jnp.sum(hp * d) / dd, jnp.sqrt(sq / dd)])
            return out.astype(state.curvature.dtype)

        measured = jax.lax.cond(state.count % every == 0, measure, lambda _: state.curvature, None)
        own = measured[0]
        bp = state.beta_pow * beta
        alpha = (1 - beta) / (1 - bp)
        mg = state.mg + alpha * (g - state.mg)
        q = state.q + alpha * (jnp.sum(g * g) - state.q)
        sig = jnp.sum(mg * mg)
        noise = jnp.maximum(q - sig, 0.0)
        gd = jnp.sum(g * d)
        scale = jnp.where(gd > 0, dd / jnp.where(gd > 0, gd, 1.0), jnp.nan)  # curvature per unit of rate
        est = Estimate(own * scale, noise, jnp.sqrt(sig), 0, jnp.asarray(True),
                       field=measured[1] * scale if field else None)
        c = controller_step(policy, state.count, est, eta=eta, lookup=lookup)
        u, tally = c.multiplier, c.tally.astype(jnp.int32)
        scaled = jax.tree.map(lambda t: (t * u).astype(t.dtype), updates)
        return scaled, MeasuredState(state.count + 1, mg, q.astype(state.q.dtype), bp, measured,
                                     jnp.asarray(u, state.multiplier.dtype), state.counts + tally)

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
        u, _, tally = self._core.multiplier(state, x, reduce_weights=True)
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


__all__ = ["scale_by_policy", "PolicySchedule", "PolicyState", "MeasuredState", "jax_table_lookup", "counts_dict",
           "COUNT_NAMES"]
