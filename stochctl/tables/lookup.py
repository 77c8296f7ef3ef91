"""Multilinear lookups of a :class:`~stochctl.tables.PolicyTable` (methods of the class).

The interpolation itself is the numba kernel of :mod:`stochctl.tables._lookup`; here are the
validating entry points, the counting of clamped and NaN queries, and the values' clip rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError


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
