"""Online estimates of the local quadratic model, and the policy that uses them.

Along the training trajectory the gradient of a parameter group is modelled,
coordinate by coordinate, as the local linear regression

    g_k = a (x_k - x*) + xi_k,   E xi_k = 0,  Var xi_k = s^2,

(curvature a, gradient-noise variance s^2 of the mini-batch gradient that the
step uses, distance |grad| / a to the local minimum). The regression estimator
of Li, Tai and E's cSGD keeps exponential moving averages (EMA) of g and x and
their second moments and reads off

    a = Cov(g, x) / Var(x),   s^2 = Var(g) - Cov(g, x)^2 / Var(x)   (residual),

or s^2 = Var(g) (``noise="total"``, cSGD's original choice, which also counts
the drift of the true gradient as noise). The EMAs use the bias-corrected
weights w_j = (1-beta) beta^(k-j) / (1-beta^k) in Welford/West form,

    alpha_k = (1-beta) / (1-beta^k),   m <- m + alpha dv,   V <- (1-alpha)(V + alpha dv^2),

which equals the bias-corrected EMA exactly and has no cancellation, and the
variances are divided by 1 - S (1 - 2S for the residual), S = sum_j w_j^2, so
that they are unbiased for independent noise. ``mode="direction"`` pools the
coordinates along the unit EMA-gradient direction d (weights d_i^2, diagonal
approximation): a = sum d_i^2 Cov_i / sum d_i^2 Var_i(x); ``mode="coordinate"``
keeps one estimate per coordinate; ``mode="rms"`` takes a along the direction,
the noise averaged over the n coordinates, s^2 = tr(Sigma) / n, and the
root-mean-square gradient of the window, |grad| = sqrt(max(mean_i EMA[g_i^2] - s^2, 0))
(EMA[g^2] = m_g^2 + V_g has mean |grad f|^2 / n + s^2), so that
y^2 = |grad f|^2 / (a eta tr Sigma) (below). The window average lags the
current point by about the window; while the gradient shrinks it errs
towards a larger y, hence a larger multiplier. (Predicting the gradient at
the current point instead, as the direction mode does, is biased low near a
minimum: the EMA noise is anticorrelated with the displacement it caused.) The gradient at the current parameters x is
predicted as g_hat = m_g + a (x - m_x) and |grad| = |g_hat|. Near a minimum
|g_hat|^2 also holds the noise left in the EMA (about S sum s_i^2): the
distance is overestimated there, which errs towards the larger multiplier
rather than towards stopping training.

Alternatives: :class:`SecantCurvature` (a = EMA[dg . dx] / EMA[|dx|^2] over
successive steps; biased when noise dominates the gradient change),
:class:`MicroBatchNoise` (s^2 from k chunk gradients of one batch, or from
per-sample gradients), combined by :class:`CompositeEstimator`.

:class:`LocalPolicy` maps the estimates to the dimensionless local model of
the design (section 4). With t = k eta the step is the SDE
dX = -u a X dt + u sqrt(eta s^2) dW; tau = a t and Y = X sqrt(a / (eta s^2))
turn it into dY = -u Y dtau + u dW, so the table inputs are

    tau_remaining = a eta (K - k),   y = (|grad| / a) sqrt(a / (eta s^2)) = |grad| / sqrt(a eta s^2).

Many coordinates: the direction mode compares the norm of an n-dimensional
gradient (whose stationary size grows like sqrt(n) noise scales, and whose
EMA keeps about S tr(Sigma) of noise) with the noise of one direction, so its
y grows like sqrt(n) and the multiplier stays at u_max. For the isotropic
model dY_i = -u Y_i dtau + u dW_i (i = 1..n) the normalised squared distance
R = |Y|^2 / n obeys dR = (-2 u R + u^2) dtau + (2 u / sqrt(n)) sqrt(R) dB,
the law of Y^2 in one dimension except for a noise sqrt(n) times smaller, with
terminal cost R; the rms mode's y = sqrt(R) feeds it to the one-dimensional
table, exactly for n = 1 and with the drift exact for n > 1. At the
stationary point of SGD with step h, E y^2 = 1 / (2 - h a) in every dimension.

Guards: before ``warmup`` observations the multiplier is ``warmup_multiplier``;
a <= 0 (not convex along the direction: B <= 0, the optimum is the endpoint
u_max of the explicit rule) gives min(u_max, nonconvex_cap); NaN or degenerate
statistics give the safe ``fallback`` (u_min). Each case is counted.

Near a stationary point of SGD with step h the window mean of x also
depends on the noise of the step being regressed, which biases a by about
S / (h a) relative; keep the window 2 / (1 - beta) long against the
relaxation time 1 / (h a).

The pure functions ``init_state``/``next_state``/``read`` take an array
namespace ``xp`` (numpy, torch or jax.numpy) and run inside a jitted optax
update; the stateful ``update``/``estimate`` fold numpy arrays in place with
compiled kernels (the same arithmetic), which the PyTorch scheduler uses.

Reference: Q. Li, C. Tai, W. E, "Stochastic modified equations and adaptive
stochastic gradient algorithms", ICML 2017 (cSGD).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Any, Mapping

import numpy as np

from ..errors import InputError

MODES = ("direction", "coordinate", "rms")
NOISE_MODELS = ("residual", "total")
_VAR_FLOOR = 1e-30

_SCALARS = (float, int, np.floating, np.integer)

# multiplier status codes
OK, WARMUP, NONCONVEX, FALLBACK = 0, 1, 2, 3
STATUS_NAMES = ("ok", "warmup", "nonconvex", "fallback")


def namespace(x):
    """Array namespace of ``x``: numpy, torch or jax.numpy (imported only if ``x`` is one)."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        import torch

        return torch
    if mod.startswith("jax") or mod.startswith("jaxlib"):
        import jax.numpy as jnp

        return jnp
    return np


def _is_jax(xp) -> bool:
    return xp.__name__.startswith("jax")


def _to_numpy(v):
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v, dtype=np.float64)


def _check_beta(beta):
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not 0.0 < beta < 1.0:
        raise InputError(f"beta must be a number in (0, 1); got {beta!r}")
    return float(beta)


def _check_choice(name, value, choices):
    if value not in choices:
        raise InputError(f"{name} must be one of {choices}; got {value!r}")
    return value


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return value


@dataclass(frozen=True, eq=False)
class Estimate:
    """Local-model statistics of one parameter group.

    Attributes:
        a: curvature along the gradient (scalar) or per coordinate (array);
            NaN when undetermined.
        s2: variance of the gradient noise of one step (same shape as ``a``).
        grad_norm: |E grad| at the current parameters (per coordinate: |g_i|).
        count: observations used.
        ready: at least ``warmup`` observations.
        weights: per-coordinate weights d_i^2 (coordinate mode) used to reduce
            per-coordinate multipliers to one learning rate, else None.
        field: the player-aware field measure |J[:, p] d| / |d| in the units of
            ``a`` (discrete-time policies cap the step with it), or None when
            it was not measured.
    """

    a: Any
    s2: Any
    grad_norm: Any
    count: int = 0
    ready: bool = True
    weights: Any = None
    field: Any = None

    @property
    def distance(self):
        """Distance to the local minimum along the gradient, |grad| / a (NaN for a <= 0)."""
        a = np.asarray(self.a, dtype=np.float64)
        with np.errstate(all="ignore"):
            d = np.where(a > 0, np.asarray(self.grad_norm, dtype=np.float64) / np.where(a > 0, a, 1.0), np.nan)
        return float(d) if d.ndim == 0 else d

    @classmethod
    def from_mapping(cls, stats: Mapping) -> "Estimate":
        missing = [k for k in ("a", "s2", "grad_norm") if k not in stats]
        if missing:
            raise InputError(f"stats must provide 'a', 's2' and 'grad_norm'; missing {missing}")
        return cls(stats["a"], stats["s2"], stats["grad_norm"], int(stats.get("count", 0)),
                   bool(stats.get("ready", True)), stats.get("weights"), stats.get("field"))


def _copy(v):
    """Independent copy of a state entry (numpy/torch/jax array or number)."""
    if hasattr(v, "clone"):
        return v.clone()
    if isinstance(v, np.ndarray):
        return v.copy()
    return v


def _zero(xp, x):
    """0-d zero with the dtype and device of x."""
    return xp.sum(xp.zeros_like(x[:1]))


class _Online:
    """Stateful wrapper shared by the estimators: ``update``, ``estimate``, state dicts."""

    kind = "estimator"

    def __init__(self):
        self.state = None

    def config(self) -> dict:  # pragma: no cover - overridden
        raise NotImplementedError

    def reset(self) -> None:
        self.state = None

    def fresh(self):
        """A copy with the same configuration and no state."""
        new = copy.copy(self)
        new.state = None
        return new

    @staticmethod
    def _flat(v):
        if isinstance(v, (list, tuple)):
            xp = namespace(v[0])
            if xp is np:
                return np.concatenate([np.asarray(t, dtype=np.float64).reshape(-1) for t in v])
            return xp.concatenate([xp.reshape(t, (-1,)) for t in v])
        xp = namespace(v)
        if xp is np:
            return np.asarray(v, dtype=np.float64).reshape(-1)
        return xp.reshape(v, (-1,))

    @staticmethod
    def _run(fn, xp, *args):
        """fn(*args, xp), with numpy's floating-point warnings silenced (results are masked)."""
        if xp is np:
            with np.errstate(all="ignore"):
                return fn(*args, xp)
        return fn(*args, xp)

    def update(self, grads, params) -> None:
        """Observe the gradient ``grads`` evaluated at ``params`` (arrays or lists of arrays)."""
        g, x = self._check_shapes(grads, params)
        self.state = self._run(self.next_state, namespace(x), self.state, g, x)

    def _check_shapes(self, grads, params):
        g, x = self._flat(grads), self._flat(params)
        if g.shape != x.shape:
            raise InputError(f"grads and params must have the same size; got {tuple(g.shape)} and {tuple(x.shape)}")
        if self.state is None:
            self.state = self.init_state(x)
        elif tuple(self.state["mx"].shape) != tuple(x.shape):
            raise InputError(f"params changed size from {tuple(self.state['mx'].shape)} to {tuple(x.shape)}")
        return g, x

    def estimate(self, params=None) -> Estimate:
        """Current :class:`Estimate` (numpy values); not ready before ``warmup`` observations.

        ``params``: the current parameters, to predict the gradient there.
        """
        return self._estimate(params)

    def _estimate(self, params) -> Estimate:
        if self.state is None:
            return Estimate(math.nan, math.nan, math.nan, 0, False)
        x = None if params is None else self._flat(params)
        xp = namespace(self.state["mg"])
        return _as_estimate(self._run(self.read, xp, self.state, x), self.warmup, self.mode)

    def state_dict(self) -> dict:
        """Configuration and moving averages (copies; arrays of the framework in use)."""
        state = None if self.state is None else {k: _copy(v) for k, v in self.state.items()}
        return {"kind": self.kind, "config": self.config(), "state": state}

    def load_state_dict(self, sd: Mapping) -> None:
        kind = sd.get("kind") if isinstance(sd, Mapping) else None
        if kind != self.kind:
            raise InputError(f"state dict is not a {self.kind} state (kind {kind!r})")
        if dict(sd.get("config", {})) != self.config():
            raise InputError(f"{self.kind} configuration {dict(sd.get('config', {}))} differs from {self.config()}")
        st = sd.get("state")
        self.state = None if st is None else {k: _copy(v) for k, v in st.items()}


class RegressionEstimator(_Online):
    """cSGD regression estimator of curvature, noise and distance (see module docstring).

    Args:
        beta: EMA decay (effective window about 2 / (1 - beta) steps).
        mode: ``"direction"`` (one estimate along the EMA gradient),
            ``"coordinate"`` (one per coordinate) or ``"rms"`` (curvature
            along the EMA gradient, noise and debiased gradient per
            coordinate on average; for many-parameter groups).
        noise: ``"residual"`` (regression residual variance, default) or
            ``"total"`` (Var(g), as in cSGD).
        warmup: observations before the estimate is used (>= 3).
        rtol: Var(x) below (rtol * |m_x|)^2 counts as no spread: a is NaN.
    """

    kind = "regression"

    def __init__(self, beta: float = 0.99, *, mode: str = "direction", noise: str = "residual",
                 warmup: int = 20, rtol: float = 1e-10):
        super().__init__()
        self.beta = _check_beta(beta)
        self.mode = _check_choice("mode", mode, MODES)
        self.noise = _check_choice("noise", noise, NOISE_MODELS)
        self.warmup = _check_int("warmup", warmup, 3)
        if not isinstance(rtol, (int, float)) or not 0 <= rtol < 1:
            raise InputError(f"rtol must be a number in [0, 1); got {rtol!r}")
        self.rtol = float(rtol)

    def config(self) -> dict:
        return {"beta": self.beta, "mode": self.mode, "noise": self.noise, "warmup": self.warmup,
                "rtol": self.rtol}

    def fresh(self):
        new = super().fresh()
        new._scratch = new._sized = None
        return new

    def _work(self, n: int) -> np.ndarray:
        """A work array of n float64 for the read-out (kept between calls; not part of the state)."""
        w = getattr(self, "_scratch", None)
        if w is None or w.shape[0] != n:
            w = self._scratch = np.empty(n)
        return w

    # ---- functional core (pure; xp = numpy, torch or jax.numpy)
    def init_state(self, x, xp=None) -> dict:
        xp = xp or namespace(x)
        z = _zero(xp, x)
        return {"count": z, "skipped": z, "beta_pow": z + 1, "sumw2": z,
                "mg": xp.zeros_like(x), "mx": xp.zeros_like(x), "vg": xp.zeros_like(x),
                "vx": xp.zeros_like(x), "cgx": xp.zeros_like(x)}

    def next_state(self, state: dict, g, x, xp=None) -> dict:
        """State after observing gradient g at parameters x (flat arrays); non-finite input is skipped."""
        xp = xp or namespace(g)
        ok = xp.all(xp.isfinite(g)) & xp.all(xp.isfinite(x))
        if not _is_jax(xp) and not bool(ok):
            return {**state, "skipped": state["skipped"] + 1}
        b = self.beta
        beta_pow = state["beta_pow"] * b
        alpha = (1 - b) / (1 - beta_pow)
        dg = g - state["mg"]
        dx = x - state["mx"]
        new = {
            "count": state["count"] + 1,
            "skipped": state["skipped"],
            "beta_pow": beta_pow,
            "sumw2": (1 - alpha) ** 2 * state["sumw2"] + alpha ** 2,
            "mg": state["mg"] + alpha * dg,
            "mx": state["mx"] + alpha * dx,
            "vg": (1 - alpha) * (state["vg"] + alpha * dg * dg),
            "vx": (1 - alpha) * (state["vx"] + alpha * dx * dx),
            "cgx": (1 - alpha) * (state["cgx"] + alpha * dg * dx),
        }
        if _is_jax(xp):
            new = {k: xp.where(ok, v, state[k]) for k, v in new.items()}
            new["skipped"] = state["skipped"] + xp.where(ok, 0, 1).astype(state["skipped"].dtype)
        return new

    def read(self, state: dict, x=None, xp=None) -> dict:
        """Estimates {a, s2, grad_norm, weights, count} as arrays of ``xp``.

        ``x`` (current parameters) corrects the lagging EMA gradient to the
        current point; without it the EMA gradient is used.
        """
        xp = xp or namespace(state["mg"])
        mg, mx, vg, vx, cgx = (state[k] for k in ("mg", "mx", "vg", "vx", "cgx"))
        S = state["sumw2"]
        nan = xp.sum(mg[:1] * 0) + float("nan")
        floor = (self.rtol * mx) ** 2 + _VAR_FLOOR
        vx_ok = vx > floor
        vx_safe = xp.where(vx_ok, vx, 1.0)
        k_dof = 2.0 if self.noise == "residual" else 1.0
        den = 1 - k_dof * S
        den_ok = den > 0
        den_safe = xp.where(den_ok, den, 1.0)
        if self.noise == "residual":
            res = vg - xp.where(vx_ok, cgx * cgx / vx_safe, 0.0)
        else:
            res = vg
        res = xp.where(res > 0, res, 0.0)
        s2_i = xp.where(den_ok, res / den_safe, nan)
        w = mg * mg
        W = xp.sum(w)
        if self.mode == "coordinate":
            a = xp.where(vx_ok, cgx / vx_safe, nan)
            slope = xp.where(vx_ok, a, 0.0)
            g_hat = mg if x is None else mg + slope * (x - mx)
            grad_norm = xp.abs(g_hat)
            weights = xp.where(W > 0, w / xp.where(W > 0, W, 1.0), 0.0 * w + 1.0 / w.shape[0])
            return {"a": a, "s2": s2_i, "grad_norm": grad_norm, "weights": weights, "count": state["count"]}
        W_ok = W > 0
        W_safe = xp.where(W_ok, W, 1.0)
        C = xp.sum(w * cgx) / W_safe
        VX = xp.sum(w * vx) / W_safe
        mxd2 = xp.sum(w * mx * mx) / W_safe
        ok = W_ok & (VX > (self.rtol ** 2) * mxd2 + _VAR_FLOOR)
        a = xp.where(ok, C / xp.where(ok, VX, 1.0), nan)
        if self.noise == "residual":
            res_d = xp.sum(w * res) / W_safe
        else:
            res_d = xp.sum(w * vg) / W_safe
        s2 = xp.where(den_ok & W_ok, res_d / den_safe, nan)
        slope = xp.where(ok, a, 0.0)
        g_hat = mg if x is None else mg + slope * (x - mx)
        if self.mode == "rms":
            n = mg.shape[0]
            s2 = xp.where(den_ok & W_ok, xp.sum(res) / n / den_safe, nan)
            ms = (W + xp.sum(vg)) / n - s2
            grad_norm = xp.where(den_ok & W_ok, xp.sqrt(xp.where(ms > 0, ms, 0.0)), nan)
            return {"a": a, "s2": s2, "grad_norm": grad_norm, "weights": None, "count": state["count"]}
        grad_norm = xp.where(W_ok, xp.sqrt(xp.sum(g_hat * g_hat)), nan)
        return {"a": a, "s2": s2, "grad_norm": grad_norm, "weights": None, "count": state["count"]}

    # ---- stateful API
    def update(self, grads, params) -> None:
        """Observe the gradient ``grads`` evaluated at ``params`` (arrays or lists of arrays).

        numpy input is folded in place by a compiled kernel (same arithmetic as
        :meth:`next_state`); other array types use :meth:`next_state`.
        """
        g, x = self._check_shapes(grads, params)
        st = self.state
        if isinstance(g, np.ndarray) and isinstance(st["mg"], np.ndarray):
            from ._estimate import regression_update

            beta_pow = float(st["beta_pow"]) * self.beta
            alpha = (1 - self.beta) / (1 - beta_pow)
            g = np.ascontiguousarray(g, dtype=np.float64)
            x = np.ascontiguousarray(x, dtype=np.float64)
            if regression_update(g, x, st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], alpha):
                st["count"] = float(st["count"]) + 1
                st["beta_pow"] = beta_pow
                st["sumw2"] = (1 - alpha) ** 2 * float(st["sumw2"]) + alpha ** 2
            else:
                st["skipped"] = float(st["skipped"]) + 1
            return
        self.state = self._run(self.next_state, namespace(x), st, g, x)

    def estimate(self, params=None) -> Estimate:
        """Current :class:`Estimate` (numpy values); not ready before ``warmup`` observations.

        ``params``: the current parameters, to predict the gradient there.
        """
        st = self.state
        if self.mode == "rms" and st is not None and isinstance(st["mg"], np.ndarray):
            from ._estimate import regression_read_rms

            a, s2, gn = regression_read_rms(st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], float(st["sumw2"]),
                                            self.rtol, self.noise == "residual", self._work(st["mg"].shape[0]))
            count = int(round(float(st["count"])))
            return Estimate(float(a), float(s2), float(gn), count, count >= self.warmup)
        if self.mode == "direction" and st is not None and isinstance(st["mg"], np.ndarray):
            from ._estimate import regression_read_direction

            use_x = params is not None
            x = np.ascontiguousarray(self._flat(params), dtype=np.float64) if use_x else st["mx"]
            a, s2, gn = regression_read_direction(st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], x, use_x,
                                                  float(st["sumw2"]), self.rtol, self.noise == "residual",
                                                  self._work(st["mg"].shape[0]))
            count = int(round(float(st["count"])))
            return Estimate(float(a), float(s2), float(gn), count, count >= self.warmup)
        return self._estimate(params)

    def update_parts(self, grads: tuple, params: tuple) -> None:
        """:meth:`update` with the gradient and parameters given as tuples of 1-D numpy arrays
        (float32 or float64, e.g. views of a network's tensors), read in place without a copy."""
        sized = getattr(self, "_sized", None)  # the size of the last tuple seen
        if sized is not None and sized[0] is params:
            n = sized[1]
        else:
            n = sum(x.shape[0] for x in params)
            self._sized = (params, n)
        st = self.state
        if st is None:
            st = self.state = self.init_state(np.zeros(n))
        elif st["mx"].shape[0] != n:
            raise InputError(f"params changed size from {st['mx'].shape[0]} to {n}")
        if not isinstance(st["mg"], np.ndarray):
            self.update(np.concatenate(grads), np.concatenate(params))
            return
        from ._estimate import regression_update_parts

        beta_pow = float(st["beta_pow"]) * self.beta
        alpha = (1 - self.beta) / (1 - beta_pow)
        if regression_update_parts(grads, params, st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], alpha):
            st["count"] = float(st["count"]) + 1
            st["beta_pow"] = beta_pow
            st["sumw2"] = (1 - alpha) ** 2 * float(st["sumw2"]) + alpha ** 2
        else:
            st["skipped"] = float(st["skipped"]) + 1

    def estimate_parts(self, params: tuple) -> Estimate:
        """:meth:`estimate` at the parameters given as a tuple of 1-D numpy arrays (no copy)."""
        st = self.state
        if self.mode == "rms" and st is not None:
            return self.estimate()  # a window average: the current parameters are not needed
        if self.mode != "direction" or st is None or not isinstance(st["mg"], np.ndarray):
            return self.estimate(np.concatenate(params) if params else None)
        from ._estimate import regression_read_parts

        a, s2, gn = regression_read_parts(st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], params,
                                          float(st["sumw2"]), self.rtol, self.noise == "residual",
                                          self._work(st["mg"].shape[0]))
        count = int(st["count"])  # a whole number
        return Estimate(a, s2, gn, count, count >= self.warmup)


def _as_estimate(r: dict, warmup: int, mode: str) -> Estimate:
    count = int(round(float(_to_numpy(r["count"]))))
    conv = (lambda v: float(_to_numpy(v))) if mode != "coordinate" else _to_numpy
    weights = None if r.get("weights") is None else _to_numpy(r["weights"])
    return Estimate(conv(r["a"]), conv(r["s2"]), conv(r["grad_norm"]), count, count >= warmup, weights)


class SecantCurvature(_Online):
    """Curvature along the steps from successive gradients (secant).

    a = EMA[(g_k - g_{k-1}) . (x_k - x_{k-1})] / EMA[|x_k - x_{k-1}|^2], the
    Rayleigh quotient of the Hessian on the steps (per coordinate in
    ``mode="coordinate"``). Gradient noise enters the numerator through the
    step it caused, so the estimate is biased upwards unless the noise is small
    against the gradient change; prefer :class:`RegressionEstimator` otherwise.
    ``s2`` is not estimated (NaN).
    """

    kind = "secant"

    def __init__(self, beta: float = 0.9, *, mode: str = "direction", warmup: int = 5):
        super().__init__()
        self.beta = _check_beta(beta)
        self.mode = _check_choice("mode", mode, MODES[:2])
        self.warmup = _check_int("warmup", warmup, 2)

    def config(self) -> dict:
        return {"beta": self.beta, "mode": self.mode, "warmup": self.warmup}

    def init_state(self, x, xp=None) -> dict:
        xp = xp or namespace(x)
        z = _zero(xp, x)
        zeros = (lambda: xp.zeros_like(x))
        num = zeros if self.mode == "coordinate" else (lambda: z)
        return {"count": z, "pairs": z, "skipped": z, "beta_pow": z + 1, "gbeta_pow": z + 1,
                "num": num(), "den": num(), "mg": zeros(), "mx": zeros(), "prev_g": zeros(), "prev_x": zeros()}

    def next_state(self, state, g, x, xp=None) -> dict:
        xp = xp or namespace(g)
        ok = xp.all(xp.isfinite(g)) & xp.all(xp.isfinite(x))
        if not _is_jax(xp) and not bool(ok):
            return {**state, "skipped": state["skipped"] + 1}
        b = self.beta
        gbp = state["gbeta_pow"] * b
        ga = (1 - b) / (1 - gbp)
        have = state["count"] > 0
        dg = g - state["prev_g"]
        dx = x - state["prev_x"]
        if self.mode == "coordinate":
            num_v, den_v = dg * dx, dx * dx
        else:
            num_v, den_v = xp.sum(dg * dx), xp.sum(dx * dx)
        bp = xp.where(have, state["beta_pow"] * b, state["beta_pow"])
        alpha = xp.where(have, (1 - b) / (1 - xp.where(have, bp, 0.5)), 0.0)
        new = {
            "count": state["count"] + 1,
            "pairs": state["pairs"] + xp.where(have, 1, 0),
            "skipped": state["skipped"],
            "beta_pow": bp,
            "gbeta_pow": gbp,
            "num": state["num"] + alpha * (num_v - state["num"]),
            "den": state["den"] + alpha * (den_v - state["den"]),
            "mg": state["mg"] + ga * (g - state["mg"]),
            "mx": state["mx"] + ga * (x - state["mx"]),
            "prev_g": g,
            "prev_x": x,
        }
        if _is_jax(xp):
            new = {k: xp.where(ok, v, state[k]) for k, v in new.items()}
            new["skipped"] = state["skipped"] + xp.where(ok, 0, 1).astype(state["skipped"].dtype)
        return new

    def read(self, state, x=None, xp=None) -> dict:
        xp = xp or namespace(state["mg"])
        nan = xp.sum(state["mg"][:1] * 0) + float("nan")
        den = state["den"]
        ok = den > _VAR_FLOOR
        a = xp.where(ok, state["num"] / xp.where(ok, den, 1.0), nan)
        slope = xp.where(ok, a, 0.0)
        g_hat = state["mg"] if x is None else state["mg"] + slope * (x - state["mx"])
        w = state["mg"] * state["mg"]
        W = xp.sum(w)
        if self.mode == "coordinate":
            weights = xp.where(W > 0, w / xp.where(W > 0, W, 1.0), 0.0 * w + 1.0 / w.shape[0])
            return {"a": a, "s2": a * nan, "grad_norm": xp.abs(g_hat), "weights": weights,
                    "count": state["pairs"]}
        return {"a": a, "s2": nan, "grad_norm": xp.sqrt(xp.sum(g_hat * g_hat)), "weights": None,
                "count": state["pairs"]}



class MicroBatchNoise(_Online):
    """Gradient-noise variance from the k chunk gradients of one batch.

    For chunk gradients g_1..g_k (equal chunks) of a batch whose gradient is
    their mean, the variance of that mean per coordinate is estimated without
    bias by v_i = sum_c (g_ci - mean_i)^2 / (k (k - 1)); per-sample gradients
    are the case k = B. v is averaged over steps (bias-corrected EMA) and
    pooled along the EMA gradient direction (weights d_i^2) in direction mode.
    ``a`` is not estimated (NaN).
    """

    kind = "microbatch"

    def __init__(self, beta: float = 0.9, *, mode: str = "direction", warmup: int = 3):
        super().__init__()
        self.beta = _check_beta(beta)
        self.mode = _check_choice("mode", mode, MODES[:2])
        self.warmup = _check_int("warmup", warmup, 1)

    def config(self) -> dict:
        return {"beta": self.beta, "mode": self.mode, "warmup": self.warmup}

    def init_state(self, x, xp=None) -> dict:
        xp = xp or namespace(x)
        z = _zero(xp, x)
        return {"count": z, "skipped": z, "beta_pow": z + 1, "mg": xp.zeros_like(x), "v": xp.zeros_like(x)}

    def next_state(self, state, chunks, xp=None) -> dict:
        """``chunks``: array (k, n) of chunk gradients, k >= 2."""
        xp = xp or namespace(chunks)
        k = chunks.shape[0]
        ok = xp.all(xp.isfinite(chunks))
        if not _is_jax(xp) and not bool(ok):
            return {**state, "skipped": state["skipped"] + 1}
        mean = xp.sum(chunks, 0) / k
        dev = chunks - mean
        v = xp.sum(dev * dev, 0) / (k * (k - 1))
        bp = state["beta_pow"] * self.beta
        alpha = (1 - self.beta) / (1 - bp)
        new = {"count": state["count"] + 1, "skipped": state["skipped"], "beta_pow": bp,
               "mg": state["mg"] + alpha * (mean - state["mg"]), "v": state["v"] + alpha * (v - state["v"])}
        if _is_jax(xp):
            new = {kk: xp.where(ok, vv, state[kk]) for kk, vv in new.items()}
            new["skipped"] = state["skipped"] + xp.where(ok, 0, 1).astype(state["skipped"].dtype)
        return new

    def read(self, state, x=None, xp=None) -> dict:
        xp = xp or namespace(state["mg"])
        nan = xp.sum(state["mg"][:1] * 0) + float("nan")
        w = state["mg"] * state["mg"]
        W = xp.sum(w)
        if self.mode == "coordinate":
            weights = xp.where(W > 0, w / xp.where(W > 0, W, 1.0), 0.0 * w + 1.0 / w.shape[0])
            return {"a": state["v"] * nan, "s2": state["v"], "grad_norm": xp.abs(state["mg"]),
                    "weights": weights, "count": state["count"]}
        s2 = xp.where(W > 0, xp.sum(w * state["v"]) / xp.where(W > 0, W, 1.0), nan)
        return {"a": nan, "s2": s2, "grad_norm": xp.sqrt(W), "weights": None, "count": state["count"]}

    def update(self, chunk_grads, params=None) -> None:
        """Observe the chunk gradients of one batch: array (k, ...) or list of k arrays."""
        if isinstance(chunk_grads, (list, tuple)):
            xp = namespace(chunk_grads[0])
            chunks = xp.stack([self._flat(c) for c in chunk_grads])
        else:
            xp = namespace(chunk_grads)
            chunks = np.asarray(chunk_grads, dtype=np.float64) if xp is np else chunk_grads
            chunks = xp.reshape(chunks, (chunks.shape[0], -1))
        if chunks.shape[0] < 2:
            raise InputError(f"need at least 2 chunk gradients; got {chunks.shape[0]}")
        if self.state is None:
            self.state = self.init_state(chunks[0])
        self.state = self._run(self.next_state, xp, self.state, chunks)

    def estimate(self, params=None) -> Estimate:
        return self._estimate(None)


class CompositeEstimator:
    """Curvature (and distance) from one estimator, noise from another.

    Example: ``CompositeEstimator(SecantCurvature(), MicroBatchNoise())``; call
    ``update(grads, params, chunk_grads=chunks)``.
    """

    kind = "composite"

    def __init__(self, curvature, noise):
        self.curvature = curvature
        self.noise = noise

    def fresh(self):
        return CompositeEstimator(self.curvature.fresh(), self.noise.fresh())

    def reset(self):
        self.curvature.reset()
        self.noise.reset()

    @property
    def mode(self):
        return self.curvature.mode

    def update(self, grads, params, *, chunk_grads=None) -> None:
        self.curvature.update(grads, params)
        if isinstance(self.noise, MicroBatchNoise):
            if chunk_grads is not None:
                self.noise.update(chunk_grads)
        else:
            self.noise.update(grads, params)

    def estimate(self, params=None) -> Estimate:
        c = self.curvature.estimate(params)
        n = self.noise.estimate(params)
        return replace(c, s2=n.s2, count=min(c.count, n.count), ready=c.ready and n.ready)

    def state_dict(self) -> dict:
        return {"kind": self.kind, "curvature": self.curvature.state_dict(), "noise": self.noise.state_dict()}

    def load_state_dict(self, sd) -> None:
        if not isinstance(sd, Mapping) or sd.get("kind") != self.kind:
            raise InputError("state dict is not a composite estimator state")
        self.curvature.load_state_dict(sd["curvature"])
        self.noise.load_state_dict(sd["noise"])


# ---------------------------------------------------------------------------------------------
# policy


def policy_inputs(a, s2, grad_norm, eta, steps_left, xp=np):
    """Local-model coordinates (tau_remaining, y) from the estimates.

    tau_remaining = a eta (K - k), y = |grad| / sqrt(a eta s^2) (+inf for s^2 = 0);
    meaningful only for a > 0.
    """
    a_pos = xp.where(a > 0, a, 1.0)
    s2_pos = xp.where(s2 > 0, s2, 1.0)
    tau = a * eta * steps_left
    y = xp.where(s2 > 0, grad_norm / xp.sqrt(a_pos * eta * s2_pos), float("inf"))
    return tau, y


def classify(a, s2, grad_norm, ready, xp=np):
    """Status code per estimate: WARMUP, FALLBACK, NONCONVEX or OK.

    FALLBACK when a or |grad| is NaN/infinite (or |grad| < 0); else NONCONVEX
    when a <= 0 (s^2 is not needed there); else FALLBACK when s^2 is NaN or
    negative; else OK.
    """
    base = xp.isfinite(a) & xp.isfinite(grad_norm) & (grad_norm >= 0)
    noise = xp.isfinite(s2) & (s2 >= 0)
    code = xp.where(base & (a <= 0), NONCONVEX, xp.where(base & noise, OK, FALLBACK))
    return xp.where(ready, code, WARMUP)


class LocalPolicy:
    """Learning-rate multiplier from the local-model table and online estimates.

    ``multiplier = policy(step, stats)``: ``stats`` is an :class:`Estimate` or a
    mapping with ``a``, ``s2``, ``grad_norm`` (and optionally ``ready``,
    ``field``).

    Two kinds of table fit. A continuous-time table (DESIGN section 4) has
    the axes ``tau_remaining`` and ``y`` (either order) and is read at
    tau_remaining = a eta (K - k), y = |grad| / sqrt(a eta s^2). A
    discrete-time table (DESIGN section 4b, e.g. ``"local-discrete"``) has
    exactly the axes ``u_max, h, tau_remaining, y``; it is read at the
    ``u_max`` given here (interpolated between the table's slices), the step
    in curvature units h = eta a, tau_remaining = h (K - k) (n h with n steps
    left) and the same y, and the discrete-time rules of :func:`step_cap`
    apply: a <= 0 takes the endpoint u_max capped by the field measure, and
    h beyond the table's last node keeps the step h u of that node (the table
    is near u = 1/h there, the step that lands on the minimum).

    Args:
        table: :class:`~stochctl.policy.PolicyTable`, a file path, or the name
            of a packaged table (default ``"local-quadratic"``).
        total_steps: K, the planned number of steps.
        u_max: discrete-time tables only (required there): the upper bound of
            the multiplier, a point of the table's ``u_max`` axis range.
        eta: base learning rate (may also be passed per call).
        value: the table value to use (``"u"``).
        tau_axis, y_axis: names of the table's axes.
        nonconvex_cap: the multiplier for a <= 0 is min(u_max, cap).
        warmup_multiplier: multiplier before the estimator is ready
            (default u_max, capped by ``nonconvex_cap``).
        fallback: multiplier for NaN/degenerate statistics (default: the
            table value's fallback, u_min).

    Attributes:
        counts: how often each case occurred (``ok``, ``warmup``,
            ``nonconvex``, ``fallback``, and the table lookups ``clamped``,
            ``nan``), counted per multiplier evaluated.
        last: the last call's table inputs ``tau_remaining``, ``y``, its
            ``status`` code(s) and the ``counts`` it added.
    """

    discrete = False

    def __init__(self, table="local-quadratic", *, total_steps: int, eta: float | None = None,
                 value: str = "u", tau_axis: str = "tau_remaining", y_axis: str = "y",
                 nonconvex_cap: float | None = None, warmup_multiplier: float | None = None,
                 fallback: float | None = None, u_max: float | None = None):
        from .table import load_table

        self.table = load_table(table)
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.eta = None if eta is None else _positive("eta", eta)
        spec = self.table.value(value)
        self.value = value
        names = list(self.table.axis_names)
        self.discrete = names == list(DISCRETE_AXES)
        if not self.discrete and sorted(names) != sorted([tau_axis, y_axis]):
            raise InputError(f"the table's axes {names} do not fit: they must be exactly [{tau_axis!r}, {y_axis!r}] "
                             f"(continuous time, either order) or {list(DISCRETE_AXES)} (discrete time)")
        self._order = [0, 1] if names == [tau_axis, y_axis] else [1, 0]
        self._tau_first = self._order == [0, 1]
        self.tau_axis, self.y_axis = tau_axis, y_axis
        lo, hi = spec.valid_range
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"value {value!r} must have a finite valid range to be a multiplier; "
                             f"got {spec.valid_range}")
        if self.discrete:
            ulo, uhi = self.table.axis("u_max").bounds
            if u_max is None:
                raise InputError(f"a discrete-time table needs u_max= (a value in its u_max axis range "
                                 f"[{ulo}, {uhi}])")
            if not (isinstance(u_max, (int, float)) and not isinstance(u_max, bool) and ulo <= u_max <= uhi):
                raise InputError(f"u_max must be a number in the table's u_max axis range [{ulo}, {uhi}]; "
                                 f"got {u_max!r}")
            hi = min(hi, float(u_max))
            self.h_max = float(self.table.axis("h").bounds[1])
        elif u_max is not None:
            raise InputError(f"u_max= selects a slice of a discrete-time table (axes {list(DISCRETE_AXES)}); "
                             f"this table's axes are {names} and its u_max is its valid range {spec.valid_range}")
        self.u_min, self.u_max = lo, hi
        cap = hi if nonconvex_cap is None else _positive("nonconvex_cap", nonconvex_cap, allow_zero=True)
        self.nonconvex_multiplier = float(np.clip(cap, lo, hi))
        self.warmup_multiplier = self.nonconvex_multiplier if warmup_multiplier is None else \
            _in_range("warmup_multiplier", warmup_multiplier, lo, hi)
        self.fallback = spec.fallback if fallback is None else _in_range("fallback", fallback, lo, hi)
        if math.isnan(self.fallback):
            self.fallback = lo
        self.counts = {k: 0 for k in STATUS_NAMES + ("clamped", "nan")}
        self.last = None

    def config(self) -> dict:
        return {"table_checksum": None if self.table is None else self.table.checksum, "value": self.value,
                "rule": type(self).__name__, "total_steps": self.total_steps,
                "u_min": self.u_min, "u_max": self.u_max, "nonconvex_multiplier": self.nonconvex_multiplier,
                "warmup_multiplier": self.warmup_multiplier, "fallback": self.fallback}

    def _eta(self, eta):
        if eta is None:
            eta = self.eta
        if eta is None:
            raise InputError("LocalPolicy needs eta (the base learning rate): pass eta= here or to the constructor")
        return _positive("eta", eta)

    def inputs(self, step: int, stats, *, eta: float | None = None):
        """Table coordinates (tau_remaining, y) for the estimates (numpy)."""
        st = stats if isinstance(stats, Estimate) else Estimate.from_mapping(stats)
        with np.errstate(all="ignore"):
            return policy_inputs(np.asarray(st.a, dtype=np.float64), np.asarray(st.s2, dtype=np.float64),
                                 np.asarray(st.grad_norm, dtype=np.float64), self._eta(eta),
                                 float(self.total_steps - step))

    def evaluate(self, step, a, s2, grad_norm, ready, eta, lookup, xp=np, field=None):
        """Generic core: (multiplier, status code, tau, y, lookup status) as arrays of ``xp``.

        ``lookup(tau, y, mask) -> (u, status)`` interpolates the table value
        where ``mask`` holds (status 0 inside, 1 clamped, 2 NaN query); other
        entries are ignored. Discrete-time policies call ``lookup(tau, y, mask, h)``
        and apply :func:`step_cap` with ``field``.
        """
        tau, y = policy_inputs(a, s2, grad_norm, eta, self.total_steps - step, xp)
        code = classify(a, s2, grad_norm, ready, xp)
        ok = code == OK
        if self.discrete:
            u_tab, lstat = lookup(tau, y, ok, a * eta)
        else:
            u_tab, lstat = lookup(tau, y, ok)
        lstat = xp.where(ok, lstat, 0)
        u = xp.where(ok, u_tab, xp.where(code == NONCONVEX, self.nonconvex_multiplier,
                                        xp.where(code == WARMUP, self.warmup_multiplier, self.fallback)))
        if self.discrete:
            u = step_cap(u, code, a, eta, field, xp)
        return u, code, tau, y, lstat

    def lookup_fn(self, xp=np):
        """The table lookup of :meth:`evaluate` for arrays of ``xp`` (numpy or jax.numpy)."""
        if xp is np:
            return self._np_lookup_discrete if self.discrete else self._np_lookup
        from ._jax_lookup import jax_table_lookup

        base = jax_table_lookup(self.table, self.value)
        if not self.discrete:
            order = self._order

            def lookup(tau, y, mask):
                coords = (tau, y)
                return base(*(coords[i] for i in order))

            return lookup
        u_max, h_max = self.u_max, self.h_max

        def lookup_discrete(tau, y, mask, h):
            u, status = base(u_max + 0 * h, h, tau, y)
            return _beyond_h(u, h, h_max, xp), status

        return lookup_discrete

    def _np_lookup_discrete(self, tau, y, mask, h):
        shape = np.shape(tau)
        mask = np.broadcast_to(mask, shape).reshape(-1)
        hh = np.broadcast_to(np.asarray(h, dtype=np.float64), shape).reshape(-1)
        u = np.zeros(mask.size)
        status = np.zeros(mask.size, dtype=np.int8)
        if mask.any():
            q = np.ascontiguousarray(np.stack([np.full(int(mask.sum()), self.u_max), hh[mask],
                                               np.asarray(tau, dtype=np.float64).reshape(-1)[mask],
                                               np.asarray(y, dtype=np.float64).reshape(-1)[mask]], axis=1))
            res = self.table.lookup_array(q, names=[self.value])
            u[mask] = _beyond_h(res.values[self.value], hh[mask], self.h_max, np)
            status[mask] = res.status
        return u.reshape(shape), status.reshape(shape)

    def _np_lookup(self, tau, y, mask):
        shape = np.shape(tau)
        mask = np.broadcast_to(mask, shape).reshape(-1)
        u = np.zeros(mask.size)
        status = np.zeros(mask.size, dtype=np.int8)
        if mask.any():
            cols = [np.asarray(tau, dtype=np.float64).reshape(-1)[mask],
                    np.asarray(y, dtype=np.float64).reshape(-1)[mask]]
            q = np.ascontiguousarray(np.stack([cols[i] for i in self._order], axis=1))
            res = self.table.lookup_array(q, names=[self.value])
            u[mask] = res.values[self.value]
            status[mask] = res.status
        return u.reshape(shape), status.reshape(shape)

    def _scalar(self, step, a, s2, gn, ready, eta, field=None):
        """Scalar twin of :meth:`evaluate` in plain Python (same formulas and order)."""
        lstat = 0
        tau = y = math.nan
        if not ready:
            code = WARMUP
        elif not (math.isfinite(a) and math.isfinite(gn) and gn >= 0):
            code = FALLBACK
        elif a <= 0:
            code = NONCONVEX
        elif not (math.isfinite(s2) and s2 >= 0):
            code = FALLBACK
        else:
            code = OK
        if code == OK:
            tau = a * eta * (self.total_steps - step)
            y = gn / math.sqrt(a * eta * s2) if s2 > 0 else math.inf
            if self.discrete:
                u, lstat = self._point_discrete(a * eta, tau, y)
            else:
                coords = (tau, y) if self._tau_first else (y, tau)
                u, lstat = self.table.lookup_point(coords, self.value)
        else:
            u = (self.nonconvex_multiplier if code == NONCONVEX else
                 self.warmup_multiplier if code == WARMUP else self.fallback)
        if self.discrete:  # scalar twin of step_cap
            m, apply = (abs(a), code == NONCONVEX) if field is None else (field, code in (OK, NONCONVEX))
            if apply and m > 0 and math.isfinite(m):
                u = min(u, 1.0 / (eta * m))
        return u, code, tau, y, lstat

    def _point_discrete(self, h, tau, y):
        """Discrete-time table value at one point (scalar twin of the discrete lookup)."""
        u, lstat = self.table.lookup_point((self.u_max, h, tau, y), self.value)
        return (u * self.h_max / h if h > self.h_max else u), lstat

    def __call__(self, step: int, stats, *, eta: float | None = None):
        """Multiplier u* for step ``step`` (0-based) given the estimates ``stats``."""
        st = stats if isinstance(stats, Estimate) else Estimate.from_mapping(stats)
        eta = self._eta(eta)
        if (all(type(v) is float for v in (st.a, st.s2, st.grad_norm)) or all(
                isinstance(v, _SCALARS) and not isinstance(v, bool) for v in (st.a, st.s2, st.grad_norm))) and (
                st.field is None or isinstance(st.field, _SCALARS)):
            u, code, tau, y, lstat = self._scalar(step, float(st.a), float(st.s2), float(st.grad_norm),
                                                  bool(st.ready), eta, None if st.field is None else float(st.field))
            name = STATUS_NAMES[code]
            self.counts[name] += 1
            counts = {name: 1}
            if lstat:
                which = "clamped" if lstat == 1 else "nan"
                self.counts[which] += 1
                counts[which] = 1
            self.last = {"tau_remaining": tau, "y": y, "status": code, "counts": counts}
            return float(u)
        a = np.asarray(st.a, dtype=np.float64)
        with np.errstate(all="ignore"):
            u, code, tau, y, lstat = self.evaluate(
                step, a, np.broadcast_to(np.asarray(st.s2, dtype=np.float64), a.shape),
                np.broadcast_to(np.asarray(st.grad_norm, dtype=np.float64), a.shape), bool(st.ready), eta,
                self.lookup_fn(np), field=None if st.field is None else np.asarray(st.field, dtype=np.float64))
        counts = self.record(code, lstat)
        self.last = {"tau_remaining": tau, "y": y, "status": code, "counts": counts}
        return float(u) if np.ndim(u) == 0 else np.asarray(u)

    def record(self, code, lstat) -> dict:
        """Add status codes (arrays) to :attr:`counts`; returns the counts added."""
        code = np.asarray(code).reshape(-1)
        lstat = np.asarray(lstat).reshape(-1)
        added = {name: int(np.count_nonzero(code == i)) for i, name in enumerate(STATUS_NAMES)}
        added["clamped"] = int(np.count_nonzero(lstat == 1))
        added["nan"] = int(np.count_nonzero(lstat == 2))
        for name, v in added.items():
            self.counts[name] += v
        return added


DISCRETE_AXES = ("u_max", "h", "tau_remaining", "y")


def _beyond_h(u, h, h_max, xp):
    """Beyond the table's last h node keep the step h u of that node: u * h_max / h."""
    over = h > h_max
    return xp.where(over, u * h_max / xp.where(over, h, 1.0), u)


def step_cap(u, code, a, eta, field, xp=np):
    """Cap a discrete-time multiplier so that one step moves the gradient field by at most its own size.

    The cap is the largest u with eta u m <= 1, m the field measure
    |J[:, p] d| / |d| when it was measured (``field`` not None; applied in
    every case), else the size |a| of the own curvature (applied where the
    own curvature is not positive, the endpoint case; where it is positive
    the policy itself stays below 1/h). Why 1 and not the explosion threshold
    2: along one direction of curvature a the step eta u a = 1 lands on the
    linearised minimum, and 2 is the step past which the iterates grow
    (|1 - eta u a| > 1); the field measure bounds the gradient's change over
    the step, so eta u m <= 1 keeps the change of the whole field (the other
    player's part included) no larger than the gradient that caused it, a
    margin of 2 below that threshold where the coupling is weak. For the
    quadratic game with a = c the GDA threshold is 2 a / m^2 (:mod:`stochctl.
    analysis.explosion`), which the cap respects whenever m <= 2 a; a purely
    rotational coupling explodes at every rate and the cap bounds the growth
    per step to at most sqrt(2).
    """
    if field is None:
        m = xp.abs(a)
        apply = code == NONCONVEX
    else:
        m = field
        apply = (code == OK) | (code == NONCONVEX)
    good = apply & (m > 0) & xp.isfinite(m)
    cap = 1.0 / (eta * xp.where(good, m, 1.0))
    return xp.where(good, xp.minimum(u, cap), u)


class OneStepPolicy(LocalPolicy):
    """The one-step-left Bellman rule of the discrete local model, in closed form (no table).

    With one step left the discrete iteration Y' = (1 - h u) Y - u sqrt(h) xi
    costs (1 - h u)^2 y^2 + h u^2 in expectation, minimised at

        u = min(u_max, y^2 / (1 + h y^2)),

    in the trainer's variables eta u = SNR / a with SNR = |grad|^2 / (|grad|^2 + s^2)
    (DESIGN section 4b): a Newton step along the step direction shrunk by the
    gradient's signal-to-noise ratio; never past the landing step h u = 1.
    Applied greedily at every step (it ignores the steps left). Non-convex
    directions and the field cap follow :func:`step_cap`. Same call
    interface as :class:`LocalPolicy`.

    Args:
        u_max: upper bound of the multiplier.
        total_steps: K (only reported in ``last``; the rule does not use it).
        eta: base learning rate (may also be passed per call).
        nonconvex_cap, warmup_multiplier, fallback: as for :class:`LocalPolicy`.
    """

    discrete = True

    def __init__(self, *, u_max: float = 1.0, total_steps: int = 1, eta: float | None = None,
                 nonconvex_cap: float | None = None, warmup_multiplier: float | None = None,
                 fallback: float | None = None):
        self.table = None
        self.value = "u"
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.eta = None if eta is None else _positive("eta", eta)
        self.u_min, self.u_max = 0.0, _positive("u_max", u_max)
        self.h_max = math.inf
        cap = self.u_max if nonconvex_cap is None else _positive("nonconvex_cap", nonconvex_cap, allow_zero=True)
        self.nonconvex_multiplier = float(min(cap, self.u_max))
        self.warmup_multiplier = self.nonconvex_multiplier if warmup_multiplier is None else \
            _in_range("warmup_multiplier", warmup_multiplier, 0.0, self.u_max)
        self.fallback = 0.0 if fallback is None else _in_range("fallback", fallback, 0.0, self.u_max)
        self.counts = {k: 0 for k in STATUS_NAMES + ("clamped", "nan")}
        self.last = None

    def _point_discrete(self, h, tau, y):
        y2 = y * y
        return (min(self.u_max, 1.0 / (1.0 / y2 + h)) if y2 > 0 else 0.0), 0

    def lookup_fn(self, xp=np):
        u_max = self.u_max

        def rule(tau, y, mask, h):
            y2 = y * y
            y2 = xp.where(mask, y2, 1.0)
            u = 1.0 / (1.0 / y2 + xp.where(mask, h, 1.0))  # y = inf gives 1/h
            return xp.minimum(u_max, xp.where(mask, u, 0.0)), xp.zeros_like(u, dtype=xp.int32)

        return rule


def reduce_multiplier(u, weights) -> float:
    """One multiplier from per-coordinate ones: sum_i w_i u_i / sum_i w_i (plain mean if all w_i = 0)."""
    if type(u) is float:
        return u
    u = np.asarray(u, dtype=np.float64)
    if u.ndim == 0:
        return float(u)
    w = np.ones_like(u) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = w.sum()
    return float((w * u).sum() / sw) if sw > 0 else float(u.mean())


def _positive(name, value, *, allow_zero=False):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number; got {value!r}")
    return float(value)


def _in_range(name, value, lo, hi):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise InputError(f"{name} must be a number in [{lo}, {hi}]; got {value!r}")
    return float(value)
