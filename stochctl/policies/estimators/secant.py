"""Secant curvature: a = EMA[dg . dx] / EMA[|dx|^2] over successive steps."""

from __future__ import annotations

import numpy as np

from .base import (_VAR_FLOOR, MODES, _check_beta, _check_choice, _check_int, _keep_finite, _Online, _zero,
                   namespace)


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
        if xp is np and not bool(ok):  # other libraries mask on the device: no host read
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
        if xp is not np:
            new = _keep_finite(xp, ok, new, state)
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
