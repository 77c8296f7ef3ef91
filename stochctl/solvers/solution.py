"""The result of a grid solve: value, policy, convexity map and diagnostics.

Time-axis convention: ``times`` is the full grid t_0 = 0 < ... < t_K = T;
``stored`` lists the indices of the levels kept (always 0 and K, increasing).
``values[j]`` is V(times[stored[j]], .). The policy is piecewise constant in
time: the control used on [t_k, t_{k+1}) is computed at step k, so it exists
for k = 0..K-1 and is kept at the stored levels except K:
``controls[name][j]`` is the policy on [t_k, t_{k+1}) with k = stored[j],
j = 0..len(stored) - 2 (:attr:`Solution.policy_stored`).

Files: the package's ``.npz`` container (:mod:`stochctl._npz`: a JSON header with
format ``stochctl.solution``, its version and a SHA-256 checksum over the header and every
array, read with ``allow_pickle=False``); the header holds names, grid, diagnostics and
metadata. Loading validates the container, then shapes and finiteness
(:class:`~stochctl.errors.FileFormatError` on any failure). Files of the first version
(schema 1, before the shared container) still load.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _npz
from ..errors import FileFormatError, InputError
from .grid import Grid

SCHEMA = "stochctl.solution"
SCHEMA_VERSION = 2
"""2: the shared container of :mod:`stochctl._npz`; 1: a separate schema_version and checksum entry."""
INTERPOLATION_METHODS = ("linear", "nearest")


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if obj is None or isinstance(obj, str):
        return obj
    return str(obj)


def _points_array(points, names) -> tuple[np.ndarray, tuple[int, ...]]:
    """Points as an (n, d) array plus the output shape (``()`` for a single point)."""
    d = len(names)
    if isinstance(points, dict):
        missing = [k for k in names if k not in points]
        extra = [k for k in points if k not in names]
        if missing or extra:
            bad = missing[0] if missing else extra[0]
            raise InputError(f"point coordinates must be {', '.join(names)}; got {sorted(points)} (bad: {bad!r})")
        arrays = np.broadcast_arrays(*[np.asarray(points[k], dtype=float) for k in names])
        shape = arrays[0].shape
        return np.stack([a.ravel() for a in arrays], axis=-1), shape
    pts = np.asarray(points, dtype=float)
    if d == 1 and (pts.ndim == 0 or pts.shape[-1] != 1):
        return pts.reshape(-1, 1), pts.shape
    if pts.ndim == 0 or pts.shape[-1] != d:
        raise InputError(f"points must have {d} coordinates ({', '.join(names)}) in the last axis; "
                         f"got shape {pts.shape}")
    return pts.reshape(-1, d), pts.shape[:-1]


def interpolate(grid: Grid, field: np.ndarray, pts: np.ndarray, method: str = "linear") -> np.ndarray:
    """Multilinear (or nearest-node) interpolation of ``field`` (shape grid.shape) at pts (n, d).

    Points must lie in the box (checked by the caller); they are clamped to it.
    """
    if method not in INTERPOLATION_METHODS:
        raise InputError(f"interpolation method {method!r} unknown; valid: {', '.join(INTERPOLATION_METHODS)}")
    n, d = pts.shape
    idx, wts = [], []
    for i in range(d):
        s = (pts[:, i] - grid.lower[i]) / grid.spacing[i]
        s = np.clip(s, 0.0, grid.points[i] - 1)
        if method == "nearest":
            idx.append(np.rint(s).astype(np.int64))
            continue
        k = np.minimum(np.floor(s).astype(np.int64), grid.points[i] - 2)
        idx.append(k)
        wts.append(s - k)
    if method == "nearest":
        return field[tuple(idx)].astype(float)
    out = np.zeros(n)
    for corner in range(2 ** d):
        w = np.ones(n)
        index = []
        for i in range(d):
            bit = (corner >> i) & 1
            w = w * (wts[i] if bit else 1.0 - wts[i])
            index.append(idx[i] + bit)
        out += w * field[tuple(index)]
    return out


@dataclass(frozen=True, eq=False)
class Solution:
    """Value function and optimal policy on a grid (see module docstring for the time axis).

    Attributes:
        problem: the problem's (model's) name.
        time_name: name of the time variable (``"t"``, or ``"tau"``).
        state_names: coordinate names, in grid-axis order.
        grid: the spatial grid.
        times: time levels t_0 = 0, ..., t_K = T, shape (K + 1,).
        stored: indices of the stored levels (increasing, include 0 and K).
        values: V at the stored levels, shape (len(stored), *grid.shape).
        controls: ``u_<player>`` (and ``m_<player>`` = 1/B under batch
            control) -> policy at the stored levels except K, shape
            (len(stored) - 1, *grid.shape).
        convex: player -> boolean map of where the clipped-ratio case applies
            (B > 0 for a minimiser, B < 0 for a maximiser), like ``controls``;
            elsewhere the control is bang-bang.
        u_bounds: player -> (u_min, u_max).
        diagnostics: scheme, dt, CFL number, steps, policy-iteration counts and
            residuals per step (implicit), boundary sensitivity, wall time.
        metadata: model name and parameters, players, eta, batch sizes,
            horizon, noise, costs, package version.
    """

    problem: str
    time_name: str
    state_names: tuple[str, ...]
    grid: Grid
    times: np.ndarray
    stored: np.ndarray
    values: np.ndarray
    controls: dict = field(default_factory=dict)
    convex: dict = field(default_factory=dict)
    u_bounds: dict = field(default_factory=dict)
    diagnostics: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "state_names", tuple(self.state_names))
        object.__setattr__(self, "times", np.asarray(self.times, dtype=float))
        object.__setattr__(self, "stored", np.asarray(self.stored, dtype=np.int64))
        object.__setattr__(self, "u_bounds", {k: (float(v[0]), float(v[1])) for k, v in self.u_bounds.items()})
        problem = _check_consistency(self)
        if problem:
            raise InputError(f"inconsistent solution: {problem}")

    # ------------------------------------------------------------------ access
    @property
    def control_names(self) -> tuple[str, ...]:
        """Names of the stored controls (``u_<player>``, ``m_<player>``)."""
        return tuple(self.controls)

    @property
    def players(self) -> tuple[str, ...]:
        return tuple(self.u_bounds)

    @property
    def horizon(self) -> float:
        return float(self.times[-1])

    @property
    def n_steps(self) -> int:
        return len(self.times) - 1

    @property
    def stored_times(self) -> np.ndarray:
        """Times of the stored value levels."""
        return self.times[self.stored]

    @property
    def policy_stored(self) -> np.ndarray:
        """Indices k of the stored policy levels (the policy on [t_k, t_{k+1}))."""
        return self.stored[:-1]

    @property
    def policy_times(self) -> np.ndarray:
        return self.times[self.policy_stored]

    def _check_time(self, t) -> float:
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise InputError(f"{self.time_name} must be a number; got {t!r}") from None
        T = self.horizon
        if not (math.isfinite(t) and -1e-12 * T <= t <= T * (1 + 1e-12)):
            raise InputError(f"{self.time_name}={t!r} is outside the solved time range [0, {T:g}]")
        return min(max(t, 0.0), T)

    def _check_points(self, points):
        pts, shape = _points_array(points, self.state_names)
        inside = self.grid.contains(pts)
        if not inside.all():
            bad = pts[np.argmin(inside)]
            where = ", ".join(f"{n}={v:g}" for n, v in zip(self.state_names, bad))
            box = ", ".join(f"{n} in [{lo:g}, {hi:g}]" for n, lo, hi in
                            zip(self.state_names, self.grid.lower, self.grid.upper))
            raise InputError(f"point ({where}) is outside the solved domain ({box})")
        return pts, shape

    @staticmethod
    def _shaped(out: np.ndarray, shape):
        return float(out[0]) if shape == () else out.reshape(shape)

    def policy_index(self, t: float = 0.0) -> int:
        """Index j into ``controls[name]`` of the policy in force at time t.

        It is the nearest stored policy level at or before t (the last one for t = T).
        """
        t = self._check_time(t)
        pt = self.policy_times
        tol = 1e-9 * (self.times[1] - self.times[0])
        return int(np.clip(np.searchsorted(pt, t + tol, side="right") - 1, 0, len(pt) - 1))

    def value_at(self, points, t: float = 0.0, method: str = "linear"):
        """V(t, x) at points: multilinear in space, linear in time between stored levels.

        Args:
            points: one point (d coordinates), an array (..., d), or a dict
                ``{state name: array}``.
            t: time in [0, T].
            method: ``"linear"`` (multilinear) or ``"nearest"`` node.

        Returns:
            A float for one point, else an array of the points' shape.
        """
        t = self._check_time(t)
        pts, shape = self._check_points(points)
        st = self.stored_times
        tol = 1e-9 * (self.times[1] - self.times[0])
        j = int(np.clip(np.searchsorted(st, t + tol, side="right") - 1, 0, len(st) - 1))
        if abs(st[j] - t) <= tol or j == len(st) - 1:
            out = interpolate(self.grid, self.values[j], pts, method)
        else:
            w = (t - st[j]) / (st[j + 1] - st[j])
            out = (1 - w) * interpolate(self.grid, self.values[j], pts, method) + w * interpolate(
                self.grid, self.values[j + 1], pts, method)
        return self._shaped(out, shape)

    def control_at(self, name: str, points, t: float = 0.0, method: str = "linear"):
        """A control at points and time t: the policy level of :meth:`policy_index`, interpolated in space.

        Args:
            name: a name from :attr:`control_names`, e.g. ``"u_theta"``.
            points, method: as in :meth:`value_at`.
            t: time in [0, T].
        """
        if name not in self.controls:
            raise InputError(f"unknown control {name!r}; controls: {', '.join(self.control_names)}")
        j = self.policy_index(t)
        pts, shape = self._check_points(points)
        return self._shaped(interpolate(self.grid, self.controls[name][j], pts, method), shape)

    def convex_fraction(self, player: str, t: float = 0.0) -> float:
        """Fraction of grid nodes where ``player``'s control is in the clipped-ratio case at time t."""
        if player not in self.convex:
            raise InputError(f"unknown player {player!r}; players: {', '.join(self.convex)}")
        return float(np.mean(self.convex[player][self.policy_index(t)]))

    def summary(self) -> str:
        d = self.diagnostics
        lines = [
            f"{self.problem}: {self.grid.describe()}",
            f"{self.time_name} in [0, {self.horizon:g}]: {self.n_steps} {d.get('scheme', '')} steps, "
            f"dt={d.get('dt', float('nan')):.4g}, CFL number {d.get('cfl_number', float('nan')):.3g}, "
            f"{len(self.stored)} stored levels, {d.get('wall_time', float('nan')):.3g} s",
        ]
        for p in self.players:
            lo, hi = self.u_bounds[p]
            lines.append(f"player {p}: u in [{lo:g}, {hi:g}], clipped-ratio (convex) case on "
                         f"{100 * self.convex_fraction(p):.1f}% of the grid at {self.time_name}=0")
        if "boundary_sensitivity" in d:
            lines.append(f"boundary sensitivity (max |dV| on the inner half): {d['boundary_sensitivity']:.3g}")
        return "\n".join(lines)

    # ------------------------------------------------------------------- files
    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {"times": self.times, "stored": self.stored, "values": self.values}
        for name, arr in self.controls.items():
            arrays[f"control__{name}"] = np.asarray(arr, dtype=float)
        for name, arr in self.convex.items():
            arrays[f"convex__{name}"] = np.asarray(arr, dtype=bool)
        for key, val in self.diagnostics.items():
            if isinstance(val, np.ndarray):
                arrays[f"diag__{key}"] = val
        return arrays

    def _header(self) -> dict:
        return _jsonable({
            "format": SCHEMA,
            "format_version": SCHEMA_VERSION,
            "problem": self.problem,
            "time_name": self.time_name,
            "state_names": list(self.state_names),
            "grid": self.grid.to_dict(),
            "control_names": list(self.controls),
            "players": list(self.convex),
            "u_bounds": {k: list(v) for k, v in self.u_bounds.items()},
            "diagnostics": {k: v for k, v in self.diagnostics.items() if not isinstance(v, np.ndarray)},
            "metadata": self.metadata,
        })

    def save(self, path) -> Path:
        """Write the solution to ``path`` (``.npz``; see module docstring). Returns the path."""
        path = Path(path)
        _npz.write(path, self._header(), self._arrays())
        return path

    @classmethod
    def load(cls, path) -> "Solution":
        """Read and validate a file written by :meth:`save`.

        Raises:
            FileFormatError: missing or unreadable file, unknown format or version,
                checksum mismatch, inconsistent shapes or non-finite values.
        """
        path = Path(path)
        if not path.is_file():
            raise FileFormatError(f"solution file {str(path)!r} does not exist")
        try:
            with np.load(path, allow_pickle=False) as data:
                legacy = "schema_version" in data.files
        except Exception:  # noqa: BLE001 - the container reader below reports it
            legacy = False
        if legacy:
            header, arrays = _read_schema_1(path)
        else:
            header, arrays = _npz.read(path, kind="solution", format_name=SCHEMA, versions=range(2, SCHEMA_VERSION + 1))
        for key in ("times", "stored", "values"):
            if key not in arrays:
                raise FileFormatError(f"{path}: missing entry {key!r}; not a stochctl solution file")
        try:
            grid = Grid.from_dict(header["grid"])
            controls = {n: arrays[f"control__{n}"] for n in header["control_names"]}
            convex = {p: arrays[f"convex__{p}"] for p in header["players"]}
            diagnostics = dict(header["diagnostics"])
            for key, arr in arrays.items():
                if key.startswith("diag__"):
                    diagnostics[key[len("diag__"):]] = arr
            kwargs = dict(problem=header["problem"], time_name=header["time_name"],
                          state_names=tuple(header["state_names"]), grid=grid, times=arrays["times"],
                          stored=arrays["stored"], values=arrays["values"], controls=controls, convex=convex,
                          u_bounds={k: tuple(v) for k, v in header["u_bounds"].items()},
                          diagnostics=diagnostics, metadata=dict(header["metadata"]))
        except FileFormatError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FileFormatError(f"{path}: malformed solution header ({exc!r})") from None
        obj = object.__new__(cls)
        for k, v in kwargs.items():
            object.__setattr__(obj, k, v)
        problem = _check_consistency(obj)
        if problem:
            raise FileFormatError(f"{path}: {problem}")
        return obj


def _read_schema_1(path: Path) -> tuple[dict, dict]:
    """(header, arrays) of a first-version file: entries header, schema_version and checksum, the
    checksum being SHA-256 over the header text and each array's ``|name|dtype|shape|`` and bytes."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    for key in ("header", "checksum"):
        if key not in arrays:
            raise FileFormatError(f"{path}: missing entry {key!r}; not a stochctl solution file")
    try:
        version = int(arrays.pop("schema_version"))
        header_text = str(arrays.pop("header")[()])
        stored = str(arrays.pop("checksum")[()])
    except (TypeError, ValueError) as exc:
        raise FileFormatError(f"{path}: malformed header entries ({exc})") from None
    if version != 1:
        raise FileFormatError(f"{path}: schema version {version} is not supported (expected {SCHEMA_VERSION})")
    h = hashlib.sha256(header_text.encode())
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"|{key}|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(arr.tobytes())
    if h.hexdigest() != stored:
        raise FileFormatError(f"{path}: checksum mismatch: the file was modified or corrupted")
    try:
        header = json.loads(header_text)
    except ValueError as exc:
        raise FileFormatError(f"{path}: malformed solution header ({exc})") from None
    if not isinstance(header, dict) or header.get("schema") != SCHEMA:
        raise FileFormatError(f"{path}: unknown schema {header.get('schema') if isinstance(header, dict) else None!r}")
    return header, arrays


def _check_consistency(sol: Solution) -> str | None:
    """A one-line description of the first inconsistency of a solution, or None."""
    grid = sol.grid
    if not isinstance(grid, Grid):
        return f"grid must be a Grid; got {type(grid).__name__}"
    if tuple(sol.state_names) != tuple(grid.names):
        return f"state names {tuple(sol.state_names)} differ from the grid axes {grid.names}"
    times, stored, values = np.asarray(sol.times), np.asarray(sol.stored), np.asarray(sol.values)
    if times.ndim != 1 or len(times) < 2 or not np.all(np.isfinite(times)) or not np.all(np.diff(times) > 0):
        return "times must be an increasing finite 1-D array with at least 2 levels"
    if stored.ndim != 1 or stored.dtype.kind not in "iu" or len(stored) < 2:
        return "stored must be a 1-D integer array with at least 2 entries"
    K = len(times) - 1
    if stored[0] != 0 or stored[-1] != K or not np.all(np.diff(stored) > 0):
        return f"stored levels must increase from 0 to {K}"
    if values.shape != (len(stored), *grid.shape) or values.dtype.kind != "f":
        return f"values must have shape {(len(stored), *grid.shape)}; got {values.shape}"
    if not np.all(np.isfinite(values)):
        return "values contain NaN or Inf"
    pshape = (len(stored) - 1, *grid.shape)
    for name, arr in sol.controls.items():
        arr = np.asarray(arr)
        if arr.shape != pshape or arr.dtype.kind != "f":
            return f"control {name!r} must have shape {pshape}; got {arr.shape}"
        if not np.all(np.isfinite(arr)):
            return f"control {name!r} contains NaN or Inf"
    for name, arr in sol.convex.items():
        arr = np.asarray(arr)
        if arr.shape != pshape or arr.dtype != bool:
            return f"convexity map {name!r} must be a boolean array of shape {pshape}; got {arr.shape}"
    for name, (lo, hi) in sol.u_bounds.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            return f"u bounds of {name!r} must be finite with u_min < u_max; got ({lo}, {hi})"
    return None
