"""Li, Tai and E's regression estimator of the local quadratic model: a = Cov(g, x) / Var(x) from EMAs."""

from __future__ import annotations

import numpy as np

from ...errors import InputError
from .base import (
    _keep_finite,
    _VAR_FLOOR,
    MODES,
    NOISE_MODELS,
    Estimate,
    _check_beta,
    _check_choice,
    _check_int,
    _Online,
    _zero,
    namespace,
)


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
        if xp is np and not bool(ok):  # other libraries mask on the device: no host read
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
        if xp is not np:
            new = _keep_finite(xp, ok, new, state)
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
            from ._regression_kernels import regression_update

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
            from ._regression_kernels import regression_read_rms

            a, s2, gn = regression_read_rms(st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], float(st["sumw2"]),
                                            self.rtol, self.noise == "residual", self._work(st["mg"].shape[0]))
            count = int(round(float(st["count"])))
            return Estimate(float(a), float(s2), float(gn), count, count >= self.warmup)
        if self.mode == "direction" and st is not None and isinstance(st["mg"], np.ndarray):
            from ._regression_kernels import regression_read_direction

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
        from ._regression_kernels import regression_update_parts

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
        from ._regression_kernels import regression_read_parts

        a, s2, gn = regression_read_parts(st["mg"], st["mx"], st["vg"], st["vx"], st["cgx"], params,
                                          float(st["sumw2"]), self.rtol, self.noise == "residual",
                                          self._work(st["mg"].shape[0]))
        count = int(st["count"])  # a whole number
        return Estimate(a, s2, gn, count, count >= self.warmup)
