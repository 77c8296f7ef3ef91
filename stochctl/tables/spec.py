"""Table specifications: axes, value arrays and their lookup rules, validated on construction."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import _npz
from ..errors import InputError

FORMAT_NAME = "stochctl-policy-table"
FORMAT_VERSION = 1
_VERSIONS = range(1, FORMAT_VERSION + 1)
INTERPOLATIONS = ("linear",)
EXTRAPOLATIONS = ("clip", "error")
MULTIPLIER = "multiplier of eta"
METADATA_KEYS = ("problem", "parameters", "eta", "horizon", "scheme", "grid", "refinement_error",
                 "package_version", "created", "history")
SHIPPED_TABLES = {"local-quadratic": "local_quadratic_table.npz", "local-discrete": "local_discrete_table.npz"}

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DTYPE = np.dtype("<f8")
AXIS_ROLES = ("time_to_go", "state", "parameter")
"""What an axis is: the time (or steps) left, a coordinate of the state, or a fixed parameter of the run."""
TRAINER_SYMBOLS = ("a", "s2", "grad_norm", "eta", "steps_left")
"""What a trainer estimates at each step, for the axes' ``from_trainer`` formulas: the curvature along
the step a, the gradient-noise variance s2, the gradient norm |grad|, the base learning rate eta and
the steps left K - k."""


def _check_name(kind: str, name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"{kind} name must be an identifier (letters, digits, underscore); got {name!r}")
    return name


def _frozen_array(data, kind: str) -> np.ndarray:
    try:
        arr = np.array(data, dtype=_DTYPE, copy=True)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{kind} must be an array of real numbers; got {type(data).__name__}") from exc
    arr.setflags(write=False)
    return arr


def _jsonable(obj, where: str = "metadata"):
    """Canonical JSON form: numpy scalars/arrays to Python, non-finite floats to None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)) and not isinstance(obj, np.bool_):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist(), where)
    raise InputError(f"{where} must be JSON-like (numbers, strings, lists, dicts); "
                     f"got {type(obj).__name__}")


_canonical_json = _npz.canonical_json


def _bound_to_json(x: float):
    return None if math.isinf(x) else float(x)


def _bound_from_json(x, sign: float) -> float:
    return sign * math.inf if x is None else float(x)


@dataclass(frozen=True, eq=False)
class TableAxis:
    """One axis of a table.

    Attributes:
        name: identifier used to query the axis (``tau_remaining``, ``y``).
        breakpoints: strictly increasing finite grid points (at least two).
        units: units of the coordinate (``"1"`` for dimensionless).
        long_name: human-readable description.
        estimator: how a trainer obtains the coordinate online, e.g.
            ``"a*eta*(K-k)"``.
        extrapolation: rule at the (lower, upper) end: ``"clip"`` clamps a
            query to the boundary and counts it, ``"error"`` refuses it.
        role: what the axis is (:data:`AXIS_ROLES`): ``"time_to_go"``,
            ``"state"`` or ``"parameter"``; None: not declared.
        from_trainer: the coordinate as a formula in what a trainer estimates
            (:data:`TRAINER_SYMBOLS`), e.g. ``"a*eta*steps_left"``: with it on
            every axis, :class:`~stochctl.policy.LocalPolicy` can drive a
            trainer from the table; None: not declared.
    """

    name: str
    breakpoints: np.ndarray
    units: str = "1"
    long_name: str = ""
    estimator: str = ""
    extrapolation: tuple[str, str] = ("clip", "clip")
    role: str | None = None
    from_trainer: str | None = None

    def __post_init__(self):
        _check_name("axis", self.name)
        b = _frozen_array(self.breakpoints, f"axis {self.name!r} breakpoints")
        if b.ndim != 1 or b.size < 2:
            raise InputError(f"axis {self.name!r} needs a 1-D array of at least 2 breakpoints; "
                             f"got shape {b.shape}")
        if not np.all(np.isfinite(b)):
            raise InputError(f"axis {self.name!r} breakpoints must be finite")
        if not np.all(np.diff(b) > 0):
            i = int(np.argmin(np.diff(b)))
            raise InputError(f"axis {self.name!r} breakpoints must be strictly increasing; "
                             f"got {b[i]!r} then {b[i + 1]!r} at index {i}")
        object.__setattr__(self, "breakpoints", b)
        ext = self.extrapolation
        if isinstance(ext, str):
            ext = (ext, ext)
        ext = tuple(ext)
        if len(ext) != 2 or any(e not in EXTRAPOLATIONS for e in ext):
            raise InputError(f"axis {self.name!r} extrapolation must be one of {EXTRAPOLATIONS} "
                             f"or a (lower, upper) pair of them; got {self.extrapolation!r}")
        object.__setattr__(self, "extrapolation", ext)
        for attr in ("units", "long_name", "estimator"):
            if not isinstance(getattr(self, attr), str):
                raise InputError(f"axis {self.name!r} {attr} must be a string; got {getattr(self, attr)!r}")
        if self.role is not None and self.role not in AXIS_ROLES:
            raise InputError(f"axis {self.name!r} role must be one of {AXIS_ROLES}; got {self.role!r}")
        if self.from_trainer is not None:
            trainer_formula(self.from_trainer, where=f"axis {self.name!r} from_trainer")

    @property
    def bounds(self) -> tuple[float, float]:
        return float(self.breakpoints[0]), float(self.breakpoints[-1])

    def _header(self) -> dict:
        h = {"name": self.name, "units": self.units, "long_name": self.long_name,
             "estimator": self.estimator, "extrapolation": list(self.extrapolation),
             "size": int(self.breakpoints.size)}
        if self.role is not None:  # keys only when set: tables without them keep their checksums
            h["role"] = self.role
        if self.from_trainer is not None:
            h["from_trainer"] = self.from_trainer
        return h


def trainer_formula(text, *, where: str):
    """The sympy expression of a ``from_trainer`` formula (whitelist parser, :data:`TRAINER_SYMBOLS` only)."""
    import sympy as sp

    from ..errors import FormulaError
    from ..formula import parse_formula

    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where} must be a formula in {list(TRAINER_SYMBOLS)}; got {text!r}")
    symbols = {name: sp.Symbol(name, real=True) for name in TRAINER_SYMBOLS}
    try:
        return parse_formula(text, symbols, where=where)
    except FormulaError as exc:
        raise InputError(f"{exc} (a trainer knows {', '.join(TRAINER_SYMBOLS)})") from None


@dataclass(frozen=True, eq=False)
class TableValue:
    """One tabulated array.

    Attributes:
        name: identifier (``u``, ``u_theta``, ``batch``, ``V``).
        data: array with one entry per grid node (shape = the axes' sizes);
            finite and inside ``valid_range``.
        units: ``MULTIPLIER`` (``"multiplier of eta"``) for a learning-rate
            multiplier, else the absolute unit of the quantity.
        valid_range: closed interval (lo, hi) the values must lie in, e.g.
            (u_min, u_max); infinite ends allowed.
        fallback: safe value returned for a NaN query: lo unless given
            (NaN when lo is infinite).
        long_name: human-readable description.
        interpolant: name of another value of the table whose interpolation,
            clipped to ``clip``, answers lookups of this one (None: this value's
            own data). For a policy that saturates at a bound: interpolating
            its continuation past the bound and clipping keeps the kink where
            the optimum meets the bound, which interpolating the clipped
            policy would smear over a whole cell. ``data`` must equal the
            clipped interpolant at every node.
        clip: (lo, hi) applied to looked-up values, each a number or the
            name of an axis (the query's coordinate on it, clamped into the
            grid); None: no clipping.
    """

    name: str
    data: np.ndarray
    units: str = MULTIPLIER
    valid_range: tuple[float, float] = (0.0, 1.0)
    fallback: float | None = None
    long_name: str = ""
    interpolant: str | None = None
    clip: tuple | None = None

    def __post_init__(self):
        _check_name("value", self.name)
        d = _frozen_array(self.data, f"value {self.name!r}")
        object.__setattr__(self, "data", d)
        try:
            lo, hi = (float(v) for v in self.valid_range)
        except (TypeError, ValueError) as exc:
            raise InputError(f"value {self.name!r} valid_range must be a pair (lo, hi); "
                             f"got {self.valid_range!r}") from exc
        if math.isnan(lo) or math.isnan(hi) or not lo < hi:
            raise InputError(f"value {self.name!r} valid_range needs lo < hi; got {self.valid_range!r}")
        object.__setattr__(self, "valid_range", (lo, hi))
        if not np.all(np.isfinite(d)):
            raise InputError(f"value {self.name!r} has {int(np.sum(~np.isfinite(d)))} non-finite entries")
        if d.size and (d.min() < lo or d.max() > hi):
            raise InputError(f"value {self.name!r} must lie in [{lo}, {hi}]; "
                             f"got entries in [{d.min()!r}, {d.max()!r}]")
        fb = self.fallback
        if fb is None:
            fb = lo if math.isfinite(lo) else math.nan
        fb = float(fb)
        if not math.isnan(fb) and not lo <= fb <= hi:
            raise InputError(f"value {self.name!r} fallback must lie in [{lo}, {hi}] (or be NaN); got {fb!r}")
        object.__setattr__(self, "fallback", fb)
        for attr in ("units", "long_name"):
            if not isinstance(getattr(self, attr), str):
                raise InputError(f"value {self.name!r} {attr} must be a string; got {getattr(self, attr)!r}")
        if self.interpolant is not None:
            _check_name(f"value {self.name!r} interpolant", self.interpolant)
        if self.clip is not None:
            clip = tuple(self.clip)
            if len(clip) != 2:
                raise InputError(f"value {self.name!r} clip must be a pair (lo, hi); got {self.clip!r}")
            bounds = []
            for b in clip:
                if isinstance(b, str):
                    _check_name(f"value {self.name!r} clip bound", b)
                elif isinstance(b, (int, float, np.floating, np.integer)) and not isinstance(b, bool) \
                        and math.isfinite(float(b)):
                    b = float(b)
                else:
                    raise InputError(f"value {self.name!r} clip bounds must be finite numbers or axis names; "
                                     f"got {b!r}")
                bounds.append(b)
            object.__setattr__(self, "clip", tuple(bounds))

    def _header(self) -> dict:
        lo, hi = self.valid_range
        h = {"name": self.name, "units": self.units, "long_name": self.long_name,
             "valid_range": [_bound_to_json(lo), _bound_to_json(hi)],
             "fallback": None if math.isnan(self.fallback) else self.fallback}
        if self.interpolant is not None:  # keys only when set: tables without them keep their checksums
            h["interpolant"] = self.interpolant
        if self.clip is not None:
            h["clip"] = list(self.clip)
        return h



def _clip_bounds(bound, axes):
    """A clip bound as an array broadcastable over the nodes (axis name) or a float."""
    if not isinstance(bound, str):
        return bound
    names = [a.name for a in axes]
    j = names.index(bound)
    shape = [1] * len(axes)
    shape[j] = axes[j].breakpoints.size
    return axes[j].breakpoints.reshape(shape)


def _check_lookup_rules(axes, values) -> None:
    """Interpolants name other values without rules of their own; clip bounds name axes; data = clipped interpolant."""
    by_name = {v.name: v for v in values}
    axis_names = [a.name for a in axes]
    for v in values:
        if v.clip is not None:
            for b in v.clip:
                if isinstance(b, str) and b not in axis_names:
                    raise InputError(f"value {v.name!r} clips to {b!r}, which is not an axis "
                                     f"(axes {axis_names})")
        if v.interpolant is None:
            continue
        src = by_name.get(v.interpolant)
        if src is None or src is v:
            raise InputError(f"value {v.name!r} interpolant {v.interpolant!r} must name another value "
                             f"(values {sorted(by_name)})")
        if src.interpolant is not None:
            raise InputError(f"value {v.name!r} interpolant {v.interpolant!r} has an interpolant of its own")
        expect = src.data
        if v.clip is not None:
            lo, hi = (_clip_bounds(b, axes) for b in v.clip)
            expect = np.minimum(np.maximum(expect, lo), hi)
        err = np.abs(expect - v.data)
        tol = 1e-12 * max(1.0, float(np.abs(v.data).max(initial=0.0)))
        if err.max(initial=0.0) > tol:
            i = np.unravel_index(int(np.argmax(err)), err.shape)
            raise InputError(f"value {v.name!r} differs from its clipped interpolant {v.interpolant!r} by "
                             f"{float(err[i]):.3g} at node {tuple(int(k) for k in i)}")
