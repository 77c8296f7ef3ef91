"""Policy tables: gridded learning-rate multipliers that a trainer looks up.

A :class:`PolicyTable` holds one or more value arrays (a player's multiplier
u*, a batch size, optionally the value function) tabulated on a tensor grid of
named axes, and evaluates them by multilinear interpolation,

    u(q) = sum over the 2^d corners c of the cell holding q of  prod_j w_j(c) U[c],
    w_j = t_j or 1 - t_j,  t_j = (q_j - x_{j,i}) / (x_{j,i+1} - x_{j,i}),

never extrapolating: a query outside the grid is clamped to its boundary and
counted (or refused, for an axis side whose extrapolation is ``"error"``), and
a query with a NaN coordinate returns each array's safe ``fallback`` and is
counted. These are the conventions of lookup-table blocks in control software
and of the CF conventions for gridded data.

File format (``.npz``, read with ``allow_pickle=False``): a ``header`` entry
holding a JSON string (format name, format version, interpolation, axes and
value attributes, metadata and checksum), arrays ``axis_<i>`` and
``value_<i>`` (little-endian float64). The checksum is the SHA-256 of the
canonical header (sorted keys, without the checksum itself) followed by each
array's name, dtype, shape and bytes. Loading validates everything and
raises :class:`~stochctl.errors.FileFormatError` for any file that is not an
intact table of a known format version.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .. import _npz
from .._io import atomic_path
from ..errors import FileFormatError, InputError

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
    """

    name: str
    breakpoints: np.ndarray
    units: str = "1"
    long_name: str = ""
    estimator: str = ""
    extrapolation: tuple[str, str] = ("clip", "clip")

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

    @property
    def bounds(self) -> tuple[float, float]:
        return float(self.breakpoints[0]), float(self.breakpoints[-1])

    def _header(self) -> dict:
        return {"name": self.name, "units": self.units, "long_name": self.long_name,
                "estimator": self.estimator, "extrapolation": list(self.extrapolation),
                "size": int(self.breakpoints.size)}


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


@dataclass
class LookupStats:
    """Running counts of a table's lookups (mutable; reset with :meth:`reset`).

    Attributes:
        queries: points looked up.
        clamped: points outside the grid, clamped to its boundary.
        nan: points with a NaN coordinate, answered with the fallback.
        by_axis: per axis name, [below the first breakpoint, above the last].
    """

    queries: int = 0
    clamped: int = 0
    nan: int = 0
    by_axis: dict = field(default_factory=dict)

    def reset(self) -> None:
        self.queries = self.clamped = self.nan = 0
        self.by_axis = {k: [0, 0] for k in self.by_axis}

    def as_dict(self) -> dict:
        return {"queries": self.queries, "clamped": self.clamped, "nan": self.nan,
                "by_axis": {k: list(v) for k, v in self.by_axis.items()}}


@dataclass(frozen=True, eq=False)
class LookupResult:
    """Answer of :meth:`PolicyTable.lookup`.

    Attributes:
        values: name -> interpolated array (shape of the query points).
        status: per point 0 inside, 1 clamped, 2 NaN query (fallback).
        clamped: number of clamped points.
        nan: number of NaN queries.
        by_axis: axis name -> (points below the grid, points above it).
    """

    values: dict
    status: np.ndarray
    clamped: int
    nan: int
    by_axis: dict

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.values[name]
        except KeyError:
            raise InputError(f"unknown value {name!r}; choose from {sorted(self.values)}") from None


@dataclass(frozen=True, eq=False)
class PolicyTable:
    """Tabulated policy with validated axes, values, metadata and checksum.

    Build one with :meth:`from_arrays` or :meth:`from_solution`, read one with
    :meth:`load` or :meth:`shipped`. Two tables hold the same content iff their
    :attr:`checksum` agree.

    Attributes:
        axes: the grid axes, in array-dimension order.
        values: the tabulated arrays.
        metadata_json: canonical JSON of the metadata (see :attr:`metadata`).
        interpolation: ``"linear"`` (multilinear).
        format_version: file format version.
        checksum: ``"sha256:<hex>"`` of the arrays and canonical header.
        stats: running lookup counts (:class:`LookupStats`).
    """

    axes: tuple[TableAxis, ...]
    values: tuple[TableValue, ...]
    metadata_json: str = "{}"
    interpolation: str = "linear"
    format_version: int = FORMAT_VERSION
    checksum: str = ""
    stats: LookupStats = field(default_factory=LookupStats, compare=False, repr=False)

    def __post_init__(self):
        axes = tuple(self.axes)
        values = tuple(self.values)
        if not 1 <= len(axes) <= 4:
            raise InputError(f"a table has 1 to 4 axes; got {len(axes)}")
        if not values:
            raise InputError("a table needs at least one value array")
        if not all(isinstance(a, TableAxis) for a in axes) or not all(isinstance(v, TableValue) for v in values):
            raise InputError("axes must be TableAxis and values TableValue objects (use PolicyTable.from_arrays)")
        names = [a.name for a in axes] + [v.name for v in values]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise InputError(f"axis and value names must be distinct; repeated: {dup}")
        shape = tuple(a.breakpoints.size for a in axes)
        for v in values:
            if v.data.shape != shape:
                raise InputError(f"value {v.name!r} has shape {v.data.shape}; the axes "
                                 f"{[a.name for a in axes]} need {shape}")
        _check_lookup_rules(axes, values)
        if self.interpolation not in INTERPOLATIONS:
            raise InputError(f"interpolation must be one of {INTERPOLATIONS}; got {self.interpolation!r}")
        if self.format_version != FORMAT_VERSION:
            raise InputError(f"format_version must be {FORMAT_VERSION}; got {self.format_version!r}")
        try:
            meta = json.loads(self.metadata_json)
        except (TypeError, ValueError) as exc:
            raise InputError(f"metadata_json is not valid JSON: {exc}") from exc
        if not isinstance(meta, dict):
            raise InputError("metadata_json must encode a JSON object")
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "metadata_json", _canonical_json(meta))
        computed = self._compute_checksum()
        if self.checksum and self.checksum != computed:
            raise InputError(f"checksum {self.checksum!r} does not match the content ({computed})")
        object.__setattr__(self, "checksum", computed)
        if not self.stats.by_axis:
            self.stats.by_axis = {a.name: [0, 0] for a in axes}
        object.__setattr__(self, "_lookup", None)
        object.__setattr__(self, "_point_rows", {})
        object.__setattr__(self, "_sides", tuple((*a.bounds, a.extrapolation, a.name) for a in axes))
        object.__setattr__(self, "_axis_index", {a.name: j for j, a in enumerate(axes)})

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, axes: Sequence, values, *, units: str = MULTIPLIER,
                    valid_range: tuple[float, float] = (0.0, 1.0), fallback: float | None = None,
                    metadata: Mapping | None = None, history: str = "created from arrays",
                    interpolation: str = "linear") -> PolicyTable:
        """Build a table from breakpoints and arrays.

        Args:
            axes: sequence of :class:`TableAxis`, or of ``(name, breakpoints)``
                pairs, or a mapping name -> breakpoints (in dimension order).
            values: sequence of :class:`TableValue`, or a mapping name -> array;
                plain arrays take ``units``, ``valid_range`` and ``fallback``.
            metadata: problem, parameters, eta, horizon, scheme, grid,
                refinement_error, ... (JSON-like). ``package_version``,
                ``created`` and ``history`` are filled in.
            history: description of this step, appended to ``metadata["history"]``.
        """
        if isinstance(axes, Mapping):
            axes = list(axes.items())
        ax = []
        for a in axes:
            if isinstance(a, TableAxis):
                ax.append(a)
            elif isinstance(a, (tuple, list)) and len(a) == 2:
                ax.append(TableAxis(a[0], a[1]))
            else:
                raise InputError(f"each axis must be a TableAxis or a (name, breakpoints) pair; got {a!r}")
        if isinstance(values, Mapping):
            values = [TableValue(k, v, units=units, valid_range=valid_range, fallback=fallback)
                      for k, v in values.items()]
        vals = []
        for v in values:
            if not isinstance(v, TableValue):
                raise InputError(f"each value must be a TableValue (or pass a mapping name -> array); got {v!r}")
            vals.append(v)
        return cls(tuple(ax), tuple(vals), metadata_json=_canonical_json(_standard_metadata(metadata, history)),
                   interpolation=interpolation)

    @classmethod
    def from_solution(cls, solution, *, controls: Sequence[str] | None = None,
                      names: Mapping[str, str] | None = None, time_axis: str = "tau_remaining",
                      include_value: bool = False, include_convex: bool = False,
                      axis_info: Mapping[str, Mapping] | None = None,
                      metadata: Mapping | None = None) -> PolicyTable:
        """Tabulate the optimal policy of a :class:`~stochctl.solvers.Solution`.

        ``solution.controls[c][j]`` is the policy on [t_k, t_{k+1}) with
        k = stored[j]. The table's first axis is the time to go,
        ``tau_remaining = T - t_k`` (increasing, so the levels are reversed),
        with a row at 0 holding the last stored level's policy (it stays in
        force until T when every level is stored; with ``store_every`` > 1
        the steps after the last stored level are not kept and this row
        repeats that level), followed by the grid axes. With
        ``time_axis="t"`` the first axis is t_k itself.

        Args:
            solution: the solved problem.
            controls: which controls (default: all, ``u_<player>`` and
                ``m_<player>``).
            names: control name -> value name. Default: the control name, or
                for a single player just ``u`` (and ``m``).
            time_axis: ``"tau_remaining"`` (default) or ``"t"``.
            include_value: also tabulate the value function ``V`` (V(T) at
                tau_remaining = 0).
            include_convex: also tabulate each player's convexity map
                (1 where the clipped-ratio rule applies, 0 where the policy is
                bang-bang), named ``convex`` or ``convex_<player>``.
            axis_info: axis name -> dict of units/long_name/estimator/extrapolation
                (for the local-quadratic model, ``y`` defaults to the online
                estimate |grad| / sqrt(a eta s^2)).
            metadata: extra metadata, e.g. ``{"refinement_error": 3e-3}``.
        """
        if time_axis not in ("tau_remaining", "t"):
            raise InputError(f"time_axis must be 'tau_remaining' or 't'; got {time_axis!r}")
        times = np.asarray(solution.times, dtype=np.float64)
        K = times.size - 1
        stored = np.asarray(getattr(solution, "stored", np.arange(K + 1)), dtype=np.int64)
        grid = solution.grid
        grid_names, grid_axes = list(grid.names), [np.asarray(a, dtype=np.float64) for a in grid.axes]
        horizon = float(times[-1])
        players = list(getattr(solution, "u_bounds", {}) or {})
        sol_meta = dict(getattr(solution, "metadata", {}) or {})
        all_controls = dict(solution.controls)
        chosen = list(all_controls) if controls is None else list(controls)
        unknown = [c for c in chosen if c not in all_controls]
        if unknown or not chosen:
            raise InputError(f"unknown control(s) {unknown}; the solution has {sorted(all_controls)}")

        def default_name(key):
            kind, _, player = key.partition("_")
            return kind if len(players) == 1 and player == players[0] else key

        names = {c: default_name(c) for c in chosen} | dict(names or {})

        def arrange(levels):
            """Policy levels j = 0..len(stored)-2 -> rows in increasing axis order."""
            if time_axis == "t":
                return levels
            return np.concatenate([levels[-1:], levels[::-1]], axis=0)

        t_axis = times[stored[:-1]] if time_axis == "t" else horizon - times[stored[::-1]]
        vals = []
        for c in chosen:
            kind, _, player = c.partition("_")
            if kind == "u" and player in players:
                lo, hi = solution.u_bounds[player]
                units, long = MULTIPLIER, f"optimal learning-rate multiplier of player {player}"
            elif kind == "m" and player in sol_meta.get("batch_control", {}):
                bc = sol_meta["batch_control"][player]
                lo, hi = 1.0 / bc["b_max"], 1.0 / bc["b_min"]
                units, long = "1/samples", f"optimal inverse batch size of player {player}"
            else:
                raise InputError(f"cannot tell the valid range of control {c!r}; expected u_<player> or "
                                 f"m_<player> with players {players}")
            levels = np.asarray(all_controls[c], dtype=np.float64)
            tol = 1e-9 * (hi - lo)
            if levels.min() < lo - tol or levels.max() > hi + tol:
                raise InputError(f"control {c!r} leaves [{lo}, {hi}]: range [{levels.min()}, {levels.max()}]")
            vals.append(TableValue(names[c], arrange(np.clip(levels, lo, hi)), units=units,
                                   valid_range=(lo, hi), long_name=long))
        if include_value:
            V = np.asarray(solution.values, dtype=np.float64)
            vals.append(TableValue("V", V[:-1] if time_axis == "t" else V[::-1], units="cost",
                                   valid_range=(-math.inf, math.inf), long_name="value function"))
        if include_convex:
            for player, conv in (getattr(solution, "convex", {}) or {}).items():
                name = "convex" if len(players) == 1 else f"convex_{player}"
                vals.append(TableValue(name, arrange(np.asarray(conv, dtype=np.float64)), units="1",
                                       valid_range=(0.0, 1.0), fallback=0.0,
                                       long_name=f"1 where player {player}'s clipped-ratio rule applies, "
                                                 "0 where the policy is bang-bang"))
        problem = solution.problem if isinstance(solution.problem, str) else sol_meta.get("model")
        info = {}
        if problem == "local-quadratic":
            info["y"] = {"long_name": "distance to the minimum in noise units, |x| sqrt(a / (eta s^2))",
                         "estimator": "|grad|/sqrt(a*eta*s^2)"}
        info.update(axis_info or {})
        t_defaults = ({"long_name": "time to go (horizon minus time)", "estimator": "a*eta*(K-k)"}
                      if time_axis == "tau_remaining" else {"long_name": "time", "estimator": "eta*k"})
        t_name = time_axis
        if sol_meta.get("discrete") and time_axis == "tau_remaining":
            # a discrete-time solution's time is the step index: the axis counts the steps left
            t_name = "steps_left"
            t_defaults = {"long_name": "training steps left; the value at n is the policy with n steps left",
                          "estimator": "K-k"}
        ax = [TableAxis(t_name, t_axis, **{**t_defaults, **info.get(t_name, {})})]
        for n, g in zip(grid_names, grid_axes):
            ax.append(TableAxis(n, g, **{"long_name": f"state {n}", **info.get(n, {})}))
        diag = dict(getattr(solution, "diagnostics", {}) or {})
        scalar = (bool, int, float, str, np.integer, np.floating)
        meta = {
            "problem": problem,
            "parameters": sol_meta.get("parameters"),
            "eta": sol_meta.get("eta"),
            "horizon": horizon,
            "scheme": diag.get("scheme"),
            "grid": {"names": grid_names, "lower": list(getattr(grid, "lower", [])),
                     "upper": list(getattr(grid, "upper", [])), "points": list(getattr(grid, "points", [])),
                     "boundary": [list(b) for b in getattr(grid, "boundary", [])],
                     "time_steps": K, "time_levels": int(stored.size)},
            "solution": {k: v for k, v in sol_meta.items() if k not in ("parameters",)},
            "diagnostics": {k: v for k, v in diag.items() if isinstance(v, scalar)},
            **dict(metadata or {}),
        }
        return cls.from_arrays(ax, vals, metadata=meta, history="built from a Solution")

    # ------------------------------------------------------------------ accessors
    @property
    def ndim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.breakpoints.size for a in self.axes)

    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.axes)

    @property
    def value_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.values)

    @property
    def metadata(self) -> dict:
        """A fresh copy of the metadata (the table itself is immutable)."""
        return json.loads(self.metadata_json)

    def axis(self, name: str) -> TableAxis:
        for a in self.axes:
            if a.name == name:
                return a
        raise InputError(f"unknown axis {name!r}; choose from {list(self.axis_names)}")

    def value(self, name: str) -> TableValue:
        for v in self.values:
            if v.name == name:
                return v
        raise InputError(f"unknown value {name!r}; choose from {list(self.value_names)}")

    def __getitem__(self, name: str) -> np.ndarray:
        return self.value(name).data

    def __repr__(self) -> str:
        axes = ", ".join(f"{a.name}[{a.breakpoints.size}]" for a in self.axes)
        return f"PolicyTable(axes=({axes}), values={list(self.value_names)}, checksum={self.checksum[:19]}...)"

    # ------------------------------------------------------------------ lookup
    def interpolated(self, name: str) -> np.ndarray:
        """The array whose multilinear interpolation answers lookups of ``name`` (its interpolant's, or its own)."""
        v = self.value(name)
        return v.data if v.interpolant is None else self.value(v.interpolant).data

    def _kernel(self):
        if self._lookup is None:
            from ._lookup import Lookup

            object.__setattr__(self, "_lookup", Lookup([a.breakpoints for a in self.axes],
                                                       [self.interpolated(v.name) for v in self.values],
                                                       [v.fallback for v in self.values]))
        return self._lookup

    def lookup(self, points=None, /, *, names: Sequence[str] | None = None, **coords) -> LookupResult:
        """Interpolate the tabulated values at query points.

        Give either ``points`` (array of shape (..., ndim), coordinates in axis
        order, or a mapping axis name -> array) or the coordinates as keywords
        (``table.lookup(tau_remaining=1.0, y=[0.1, 0.5])``, broadcast together).

        Returns:
            :class:`LookupResult`; the counts are also added to :attr:`stats`.

        Raises:
            InputError: a coordinate is missing or unknown, or a point lies
                beyond an axis side whose extrapolation is ``"error"`` (the
                message names the point).
        """
        if points is not None and coords:
            raise InputError("give the points either as an array/mapping or as keywords, not both")
        if isinstance(points, Mapping):
            coords, points = dict(points), None
        if points is None:
            missing = [n for n in self.axis_names if n not in coords]
            extra = [n for n in coords if n not in self.axis_names]
            if missing or extra:
                raise InputError(f"lookup needs exactly the coordinates {list(self.axis_names)}; "
                                 f"missing {missing}, unknown {extra}")
            try:
                arrays = np.broadcast_arrays(*(np.asarray(coords[n], dtype=np.float64)
                                               for n in self.axis_names))
            except ValueError as exc:
                raise InputError(f"lookup coordinates do not broadcast together: {exc}") from exc
            shape = arrays[0].shape
            q = np.stack([a.reshape(-1) for a in arrays], axis=1)
        else:
            q = np.asarray(points, dtype=np.float64)
            if q.ndim == 0 or q.shape[-1] != self.ndim:
                raise InputError(f"points must have shape (..., {self.ndim}) with coordinates "
                                 f"{list(self.axis_names)}; got shape {q.shape}")
            shape = q.shape[:-1]
            q = q.reshape(-1, self.ndim)
        res = self.lookup_array(np.ascontiguousarray(q), names=names)
        return LookupResult({k: v.reshape(shape) for k, v in res.values.items()},
                            res.status.reshape(shape), res.clamped, res.nan, res.by_axis)

    def lookup_array(self, queries: np.ndarray, *, names: Sequence[str] | None = None) -> LookupResult:
        """Low-level lookup of ``queries`` (n, ndim), float64 C-contiguous; see :meth:`lookup`."""
        kern = self._kernel()
        if names is None:
            rows, names = None, list(self.value_names)
        else:
            names = [names] if isinstance(names, str) else list(names)
            rows = [self.value_names.index(self.value(n).name) for n in names]
        out, status, n_clamped, n_nan = kern(queries, rows)
        n_nan, n_clamped, by_axis = self._account(queries, status, n_clamped, n_nan)
        for name, arr in zip(names, out):
            apply_clip(self, name, arr, queries, status)
        return LookupResult(dict(zip(names, out)), status, n_clamped, n_nan, by_axis)

    def lookup_point(self, coords: Sequence[float], name: str | None = None) -> tuple[float, int]:
        """Fast path for one point: (value, status), coordinates in axis order.

        Same rules and counting as :meth:`lookup`; ``name`` defaults to the first value.
        """
        rows = self._point_rows
        row = rows.get(name)
        if row is None:
            row = rows[name] = 0 if name is None else self.value_names.index(self.value(name).name)
        if len(coords) != len(self.axes):
            raise InputError(f"need {self.ndim} coordinates {list(self.axis_names)}; got {len(coords)}")
        v, status = (self._lookup or self._kernel()).point(coords, row)
        clip = self.values[row].clip
        if clip is not None and status != 2:
            lo, hi = (float(np.clip(coords[self._axis_index[b]], *self._sides[self._axis_index[b]][:2]))
                      if isinstance(b, str) else b for b in clip)
            v = min(max(v, lo), hi)
        st = self.stats
        if status == 1:
            sides = []
            for (lo, hi, rule, axis), q in zip(self._sides, coords):
                side = 0 if q < lo else 1 if q > hi else -1
                if side >= 0 and rule[side] == "error":  # raises with the message
                    self._account(np.array([coords], dtype=np.float64), np.array([1], dtype=np.int8))
                sides.append(side)
            for (_, _, _, axis), side in zip(self._sides, sides):
                if side >= 0:
                    st.by_axis[axis][side] += 1
            st.clamped += 1
        elif status == 2:
            st.nan += 1
        st.queries += 1
        return v, status

    def _account(self, queries, status, n_clamped=None, n_nan=None):
        """Count clamped/NaN points into :attr:`stats`; refuse points beyond an "error" side.

        ``n_clamped``, ``n_nan``: the counts if the kernel already knows them.
        """
        if n_nan is None:
            n_nan = int(np.count_nonzero(status == 2))
        clamped = np.flatnonzero(status == 1) if n_clamped is None or n_clamped else np.zeros(0, dtype=np.intp)
        by_axis = {a.name: (0, 0) for a in self.axes}
        if clamped.size:
            qc = queries[clamped]
            for j, a in enumerate(self.axes):
                lo, hi = a.bounds
                below = qc[:, j] < lo
                above = qc[:, j] > hi
                for mask, rule, bound, rel in ((below, a.extrapolation[0], lo, "<"),
                                               (above, a.extrapolation[1], hi, ">")):
                    if rule == "error" and mask.any():
                        p = qc[int(np.argmax(mask))]
                        point = ", ".join(f"{n}={float(x)!r}" for n, x in zip(self.axis_names, p))
                        raise InputError(f"point ({point}) is outside the table: {a.name}={float(p[j])!r} "
                                         f"{rel} {bound!r} and that side's extrapolation is 'error'")
                by_axis[a.name] = (int(below.sum()), int(above.sum()))
        st = self.stats
        st.queries += int(queries.shape[0])
        st.clamped += int(clamped.size)
        st.nan += n_nan
        for k, (b, a) in by_axis.items():
            st.by_axis[k][0] += b
            st.by_axis[k][1] += a
        return n_nan, int(clamped.size), by_axis

    # ------------------------------------------------------------------ files
    def _header(self, with_checksum: bool = True) -> dict:
        h = {"format": FORMAT_NAME, "format_version": self.format_version,
             "interpolation": self.interpolation,
             "axes": [a._header() for a in self.axes],
             "values": [v._header() for v in self.values],
             "metadata": json.loads(self.metadata_json)}
        if with_checksum:
            h["checksum"] = self.checksum
        return h

    def _arrays(self) -> dict[str, np.ndarray]:
        arrs = {f"axis_{i}": a.breakpoints for i, a in enumerate(self.axes)}
        arrs.update({f"value_{i}": v.data for i, v in enumerate(self.values)})
        return arrs

    def _compute_checksum(self) -> str:
        return _checksum(self._header(with_checksum=False), self._arrays())

    def save(self, path) -> Path:
        """Write the table to ``path`` (.npz, compressed; written atomically by :mod:`stochctl._npz`). Returns the path."""
        path = Path(path)
        _npz.write(path, self._header(with_checksum=False), self._arrays(), compress=True)
        return path

    @classmethod
    def load(cls, path) -> PolicyTable:
        """Read and fully validate a table file.

        Raises:
            InputError: ``path`` does not exist.
            FileFormatError: the file is not an intact policy table of a known
                format version (corrupted, truncated, tampered, newer format,
                values outside their valid range, checksum mismatch).
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"table file {str(path)!r} does not exist")
        header, arrays = _npz.read(path, kind="policy table", format_name=FORMAT_NAME, versions=_VERSIONS)
        return cls._from_header(str(path), header, arrays)

    @classmethod
    def _from_header(cls, where: str, header: dict, arrays: dict) -> PolicyTable:
        """The table of a verified container (:func:`stochctl._npz.read`); validates its content."""
        def bad(msg):
            return FileFormatError(f"{where}: {msg}")

        version = header["format_version"]
        stored = header["checksum"]
        expected = {"format", "format_version", "interpolation", "axes", "values", "metadata", "checksum"}
        if set(header) != expected:
            raise bad(f"header keys {sorted(header)} differ from {sorted(expected)}")
        ax_h, val_h = header["axes"], header["values"]
        if not isinstance(ax_h, list) or not isinstance(val_h, list) or not all(
                isinstance(h, dict) for h in ax_h + val_h):
            raise bad("header 'axes' and 'values' must be lists of objects")
        want = {f"axis_{i}" for i in range(len(ax_h))} | {f"value_{i}" for i in range(len(val_h))}
        if set(arrays) != want:
            raise bad(f"array entries {sorted(arrays)} differ from the header's {sorted(want)}")
        for k, arr in arrays.items():
            if arr.dtype.kind != "f" or arr.dtype.itemsize != 8:
                raise bad(f"array {k!r} has dtype {arr.dtype}; expected float64")
        arrays = {k: np.ascontiguousarray(v, dtype=_DTYPE) for k, v in arrays.items()}
        try:
            axes = []
            for i, h in enumerate(ax_h):
                b = arrays[f"axis_{i}"]
                if h.get("size") != b.size:
                    raise bad(f"axis {i} size {h.get('size')!r} differs from its array ({b.size})")
                axes.append(TableAxis(h["name"], b, units=h["units"], long_name=h["long_name"],
                                      estimator=h["estimator"], extrapolation=tuple(h["extrapolation"])))
            vals = []
            for i, h in enumerate(val_h):
                lo, hi = h["valid_range"]
                fb = h["fallback"]
                extra = set(h) - {"name", "units", "long_name", "valid_range", "fallback", "interpolant", "clip"}
                if extra:
                    raise bad(f"value {i} has unknown header keys {sorted(extra)}")
                vals.append(TableValue(h["name"], arrays[f"value_{i}"], units=h["units"],
                                       long_name=h["long_name"],
                                       valid_range=(_bound_from_json(lo, -1.0), _bound_from_json(hi, 1.0)),
                                       fallback=math.nan if fb is None else fb,
                                       interpolant=h.get("interpolant"),
                                       clip=None if h.get("clip") is None else tuple(h["clip"])))
            if not isinstance(header["metadata"], dict):
                raise bad("metadata must be a JSON object")
            table = cls(tuple(axes), tuple(vals), metadata_json=_canonical_json(header["metadata"]),
                        interpolation=header["interpolation"], format_version=version)
        except FileFormatError:
            raise
        except (InputError, KeyError, TypeError, ValueError) as exc:
            raise bad(f"invalid table content ({exc})") from exc
        if table.checksum != stored:
            raise bad("content does not reproduce the stored checksum")
        return table

    @classmethod
    def shipped(cls, name: str = "local-quadratic") -> PolicyTable:
        """Load a table that ships with the package, by name (see ``SHIPPED_TABLES``)."""
        return cls.load(packaged_table_path(name))

    def to_csv(self, path) -> Path:
        """Write the table as CSV in long form: one row per grid node.

        Columns: the axis coordinates, then each value, with a header row of
        names; numbers are written with round-trip precision.
        """
        path = Path(path)
        grids = np.meshgrid(*(a.breakpoints for a in self.axes), indexing="ij")
        cols = [g.reshape(-1) for g in grids] + [v.data.reshape(-1) for v in self.values]
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(",".join(self.axis_names + self.value_names) + "\n")
            for row in zip(*cols):
                f.write(",".join(repr(float(x)) for x in row) + "\n")
        return path

    def summary(self) -> dict:
        """Axes, values and metadata as a JSON-ready dict (used by ``stochctl table info``)."""
        return {
            "format_version": self.format_version,
            "interpolation": self.interpolation,
            "checksum": self.checksum,
            "axes": [{**a._header(), "min": a.bounds[0], "max": a.bounds[1]} for a in self.axes],
            "values": [{**v._header(), "min": float(v.data.min()), "max": float(v.data.max())}
                       for v in self.values],
            "metadata": self.metadata,
        }


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


def apply_clip(table, name: str, out: np.ndarray, queries: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Clip looked-up values of ``name`` in place by its rule; an axis bound is the query's coordinate, clamped.

    NaN queries (status 2) keep their fallback.
    """
    v = table.value(name)
    if v.clip is None:
        return out
    bounds = []
    for b in v.clip:
        if isinstance(b, str):
            j = table.axis_names.index(b)
            lo, hi = table.axes[j].bounds
            with np.errstate(invalid="ignore"):
                bounds.append(np.clip(queries[:, j], lo, hi))
        else:
            bounds.append(b)
    keep = status == 2
    saved = out[keep]
    with np.errstate(invalid="ignore"):
        np.clip(out, bounds[0], bounds[1], out=out)
    out[keep] = saved
    return out


def _checksum(header: dict, arrays: Mapping[str, np.ndarray]) -> str:
    """The container checksum (:func:`stochctl._npz.checksum`) of float64 arrays."""
    return _npz.checksum(header, {k: np.ascontiguousarray(v, dtype=_DTYPE) for k, v in arrays.items()})


def _standard_metadata(metadata: Mapping | None, history: str) -> dict:
    from .. import __version__

    meta = {k: None for k in METADATA_KEYS}
    meta.update(_jsonable(dict(metadata or {})))
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    meta["package_version"] = __version__
    meta["created"] = now
    hist = list(meta.get("history") or [])
    hist.append({"time": now, "event": history, "version": __version__})
    meta["history"] = hist
    return meta


def packaged_table_path(name: str) -> Path:
    """Path of a table shipped inside the package (``stochctl/data/``)."""
    if name not in SHIPPED_TABLES:
        raise InputError(f"unknown packaged table {name!r}; choose from {sorted(SHIPPED_TABLES)}")
    path = Path(__file__).resolve().parent.parent / "data" / SHIPPED_TABLES[name]
    if not path.is_file():
        raise FileFormatError(f"the packaged table {name!r} is missing ({path}); "
                              "reinstall stochctl or regenerate the table file")
    return path


def load_table(spec) -> PolicyTable:
    """A :class:`PolicyTable` from a table, a packaged table name or a file path."""
    if isinstance(spec, PolicyTable):
        return spec
    if isinstance(spec, str) and spec in SHIPPED_TABLES:
        return PolicyTable.shipped(spec)
    if isinstance(spec, (str, os.PathLike)):
        return PolicyTable.load(spec)
    raise InputError(f"expected a PolicyTable, a packaged table name {sorted(SHIPPED_TABLES)} "
                     f"or a file path; got {type(spec).__name__}")
