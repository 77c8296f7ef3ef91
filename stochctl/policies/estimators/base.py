"""The estimate record, the array-namespace helpers and the online-EMA machinery shared by the estimators."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from ...errors import InputError

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


def _keep_finite(xp, ok, new: dict, state: dict) -> dict:
    """The new state where ``ok`` (a 0-d boolean array), else the old one with one more skip, on the device."""
    new = {k: xp.where(ok, v, state[k]) for k, v in new.items()}
    skip = xp.where(ok, 0, 1)
    skip = skip.to(state["skipped"].dtype) if xp.__name__ == "torch" else skip.astype(state["skipped"].dtype)
    new["skipped"] = state["skipped"] + skip
    return new


def _as_estimate(r: dict, warmup: int, mode: str) -> Estimate:
    if type(r["a"]).__module__.startswith("torch"):  # kept on the tensors' device: ready is a device boolean
        return Estimate(r["a"], r["s2"], r["grad_norm"], r["count"], r["count"] >= warmup, r.get("weights"))
    count = int(round(float(_to_numpy(r["count"]))))
    conv = (lambda v: float(_to_numpy(v))) if mode != "coordinate" else _to_numpy
    weights = None if r.get("weights") is None else _to_numpy(r["weights"])
    return Estimate(conv(r["a"]), conv(r["s2"]), conv(r["grad_norm"]), count, count >= warmup, weights)
