"""Gradient noise from micro-batch (or per-sample) gradients, and the composite of two estimators."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping

import numpy as np

from ...errors import InputError
from .base import (MODES, Estimate, _check_beta, _check_choice, _check_int, _keep_finite, _Online, _zero,
                   namespace)


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
        if xp is np and not bool(ok):  # other libraries mask on the device: no host read
            return {**state, "skipped": state["skipped"] + 1}
        mean = xp.sum(chunks, 0) / k
        dev = chunks - mean
        v = xp.sum(dev * dev, 0) / (k * (k - 1))
        bp = state["beta_pow"] * self.beta
        alpha = (1 - self.beta) / (1 - bp)
        new = {"count": state["count"] + 1, "skipped": state["skipped"], "beta_pow": bp,
               "mg": state["mg"] + alpha * (mean - state["mg"]), "v": state["v"] + alpha * (v - state["v"])}
        if xp is not np:
            new = _keep_finite(xp, ok, new, state)
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
