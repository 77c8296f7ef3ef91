"""The array-generic pieces of a policy evaluation: the local-model coordinates, the status, the step cap.

Written for numpy, torch and jax.numpy alike and with few array operations, since on the torch
path each one is a device operation of its own at every trainer step: the four status checks are
made on the stacked estimates at once and their bits index a table of codes, and the constants are
made once per device and type (:class:`_Consts`).
"""

from __future__ import annotations

import numpy as np

from .estimators.base import FALLBACK, NONCONVEX, OK, WARMUP

def policy_inputs(a, s2, grad_norm, eta, steps_left, xp=np, h=None, consts=None):
    """Local-model coordinates (tau_remaining, y) from the estimates.

    tau_remaining = a eta (K - k), y = |grad| / sqrt(a eta s^2) (+inf for s^2 = 0);
    meaningful only for a > 0 (where a <= 0, y is computed with a = 1). ``h``: a eta if
    already computed (the same number); ``consts``: the evaluation's constants (:class:`_Consts`).
    """
    h = a * eta if h is None else h
    tau = h * steps_left
    noisy = s2 > 0
    one, inf, eta_c = (1.0, float("inf"), eta) if consts is None else (consts.one, consts.inf, consts.scalar(eta))
    # a eta where a > 0, else 1 eta; s2 where s2 > 0, else 1: the square root stays defined
    y = xp.where(noisy, grad_norm / xp.sqrt(xp.where(a > 0, h, eta_c) * xp.where(noisy, s2, one)), inf)
    return tau, y


def _code_table() -> np.ndarray:
    """Status code by the index sum_i 2^i bit_i of the four checks of :func:`classify`."""
    table = np.full(16, FALLBACK, dtype=np.int64)
    for i in range(16):
        if i & 1 and i & 4 and i & 8:
            table[i] = OK
        elif i & 2 and i & 4:
            table[i] = NONCONVEX
    return table


_CODES = _code_table()
_BITS = np.array([1, 2, 4, 8], dtype=np.int64)


def _bounds(dtype):
    """(lower, upper) of the checks [a > 0, a <= 0, |g| >= 0, s2 >= 0], each also finite, in ``dtype``."""
    big = np.finfo(dtype).max
    tiny = np.nextafter(np.zeros((), dtype), np.ones((), dtype))  # a > 0 is a >= the least positive number
    return np.array([tiny, -big, 0.0, 0.0], dtype=dtype), np.array([big, 0.0, big, big], dtype=dtype)


def classify(a, s2, grad_norm, ready, xp=np, valid=None, consts=None):
    """Status code per estimate: WARMUP, FALLBACK, NONCONVEX or OK.

    FALLBACK when a or |grad| is NaN/infinite (or |grad| < 0); else NONCONVEX
    when a <= 0 (s^2 is not needed there); else FALLBACK when s^2 is NaN or
    negative; else OK. Where ``valid`` is False (a diverged measurement): FALLBACK,
    whatever ``ready``. The four checks (a > 0, a <= 0, |g| >= 0, s2 >= 0, each also
    finite) are made at once on the stacked estimates, and their bits index a table of codes.
    """
    if consts is None:
        consts = _Consts.of(None, xp, a)
    v = xp.stack(_same_shape([a, a, grad_norm, s2], xp))
    lo, hi, bits, codes = consts.checks(v.ndim)
    code = xp.take(codes, xp.sum(((v >= lo) & (v <= hi)) * bits, axis=0))
    if isinstance(ready, (bool, np.bool_)):  # one flag for all: no array operation
        if not ready:
            code = xp.zeros_like(code) + WARMUP
    else:
        code = xp.where(ready, code, WARMUP)
    return code if valid is None else xp.where(valid, code, consts.fallback_code)


def _same_shape(arrays, xp):
    """The arrays as arrays of one shape and type (converted only where they differ)."""
    if xp.__name__ != "torch":
        arrays = [xp.asarray(x) for x in arrays]
        if len({x.shape for x in arrays}) > 1:
            arrays = list(xp.broadcast_arrays(*arrays))
        return arrays
    first = arrays[0]
    if all(isinstance(x, xp.Tensor) and x.shape == first.shape and x.dtype == first.dtype for x in arrays[1:]) \
            and isinstance(first, xp.Tensor):
        return arrays
    like = next(x for x in arrays if isinstance(x, xp.Tensor))
    arrays = [x if isinstance(x, xp.Tensor) else xp.full((), float(x), dtype=like.dtype, device=like.device)
              for x in arrays]
    if len({x.shape for x in arrays}) > 1:
        arrays = list(xp.broadcast_tensors(*arrays))
    if len({x.dtype for x in arrays}) > 1:
        dt = arrays[0].dtype
        for x in arrays[1:]:
            dt = xp.promote_types(dt, x.dtype)
        arrays = [x.to(dt) for x in arrays]
    return arrays


class _Consts:
    """The constants of a policy evaluation as arrays of the inputs' library, type and device, made once.

    numpy and jax.numpy take numpy constants as they are; torch gets tensors cached per (device, type),
    so that no step creates or copies one.
    """

    def __init__(self, policy, xp, like):
        torch_like = xp.__name__ == "torch"
        dtype = np.dtype(str(like.dtype).replace("torch.", "")) if torch_like else \
            np.dtype(getattr(like, "dtype", np.float64))
        if not np.issubdtype(dtype, np.floating):
            dtype = np.dtype(np.float64)
        lo, hi = _bounds(dtype)
        sub = np.zeros(4, dtype=dtype)  # the multiplier by code where the table is not read
        if policy is not None:
            sub[WARMUP], sub[NONCONVEX], sub[FALLBACK] = (policy.warmup_multiplier, policy.nonconvex_multiplier,
                                                          policy.fallback)
        arrays = dict(lo=lo, hi=hi, bits=_BITS, codes=_CODES, sub=sub,
                      capped=np.array([True, False, True, False]),  # OK and NONCONVEX: the field cap applies
                      u_max=np.asarray(getattr(policy, "u_max", np.inf), dtype=dtype),
                      one=np.asarray(1.0, dtype=dtype), inf=np.asarray(np.inf, dtype=dtype),
                      fallback_code=np.asarray(FALLBACK, dtype=np.int64))
        if torch_like:
            arrays = {k: xp.as_tensor(v, device=like.device) for k, v in arrays.items()}
        self.__dict__.update(arrays)
        self._shaped = {}
        self._scalars = {}
        self._torch = torch_like
        self._like = (like.device, like.dtype) if torch_like else None

    def scalar(self, value):
        """A Python number as a 0-d array of the inputs' type and device (torch: made once per value)."""
        if not self._torch:
            return value
        hit = self._scalars.get(value)
        if hit is None:
            if len(self._scalars) > 64:  # a rate that changes at every step: do not keep them all
                self._scalars.clear()
            import torch

            hit = self._scalars[value] = torch.full((), value, dtype=self._like[1], device=self._like[0])
        return hit

    def reciprocal(self, x):
        """1 / x: torch's reciprocal (what ``1.0 / x`` computes there, without the multiplication by 1.0)."""
        if self._torch:
            return x.reciprocal()
        return 1.0 / x

    @classmethod
    def of(cls, policy, xp, like):
        """The constants for arrays like ``like`` (cached on ``policy`` for torch)."""
        if xp.__name__ != "torch" or policy is None:
            return cls(policy, xp, like)
        cache = policy.__dict__.setdefault("_consts", {})
        key = (like.device, like.dtype)
        hit = cache.get(key)
        if hit is None:
            hit = cache[key] = cls(policy, xp, like)
        return hit

    def checks(self, ndim):
        """(lower, upper, bits, codes), the check axis first, shaped for a stack of ``ndim`` dimensions."""
        hit = self._shaped.get(ndim)
        if hit is None:
            shape = (4,) + (1,) * (ndim - 1)
            hit = self._shaped[ndim] = (self.lo.reshape(shape), self.hi.reshape(shape), self.bits.reshape(shape),
                                        self.codes)
        return hit


def step_cap(u, code, a, eta, field, xp=np, consts=None):
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
        apply = xp.take(consts.capped, code) if consts is not None else (code == OK) | (code == NONCONVEX)
    # m >= 0 (a norm or |a|): the cap 1 / (eta m) is +inf for m = 0 and NaN for an undetermined m,
    # which fmin ignores, so no cap applies there
    cap = consts.reciprocal(eta * m) if consts is not None else 1.0 / (eta * m)
    return xp.where(apply, xp.fmin(u, cap), u)
