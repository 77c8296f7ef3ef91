"""The :class:`PolicyTable` itself: construction, accessors, files; packaged tables."""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _npz
from ..errors import FileFormatError, InputError
from . import export as _export
from . import lookup as _lookup_methods
from .lookup import LookupStats
from .spec import (
    _DTYPE,
    _VERSIONS,
    FORMAT_NAME,
    FORMAT_VERSION,
    INTERPOLATIONS,
    METADATA_KEYS,
    MULTIPLIER,
    SHIPPED_TABLES,
    TableAxis,
    TableValue,
    _bound_from_json,
    _canonical_json,
    _check_lookup_rules,
    _jsonable,
)


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

    from_solution = classmethod(_export.from_solution)

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

    # ------------------------------------------------------------------ lookup (stochctl.tables.lookup)
    interpolated = _lookup_methods.interpolated
    _kernel = _lookup_methods._kernel
    lookup = _lookup_methods.lookup
    lookup_array = _lookup_methods.lookup_array
    lookup_point = _lookup_methods.lookup_point
    _account = _lookup_methods._account

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
                extra = set(h) - {"name", "units", "long_name", "estimator", "extrapolation", "size", "role",
                                  "from_trainer"}
                if extra:
                    raise bad(f"axis {i} has unknown header keys {sorted(extra)}")
                axes.append(TableAxis(h["name"], b, units=h["units"], long_name=h["long_name"],
                                      estimator=h["estimator"], extrapolation=tuple(h["extrapolation"]),
                                      role=h.get("role"), from_trainer=h.get("from_trainer")))
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
        """A table that ships with the package, by name (see ``SHIPPED_TABLES``); read and verified once per process."""
        return _load_verified(packaged_table_path(name))

    def _fresh(self) -> PolicyTable:
        """A copy sharing the (read-only) arrays and the lookup kernel, with its own :attr:`stats`."""
        new = copy.copy(self)
        object.__setattr__(new, "stats", LookupStats(by_axis={a.name: [0, 0] for a in self.axes}))
        object.__setattr__(new, "_point_rows", {})
        return new

    to_csv = _export.to_csv
    csv_size = _export.csv_size

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


def _checksum(header: dict, arrays: Mapping[str, np.ndarray]) -> str:
    """The container checksum (:func:`stochctl._npz.checksum`) of float64 arrays."""
    return _npz.checksum(header, {k: np.ascontiguousarray(v, dtype=_DTYPE) for k, v in arrays.items()})


def _standard_metadata(metadata: Mapping | None, history: str) -> dict:
    from .._version import __version__

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
    path = Path(__file__).resolve().parents[1] / "data" / SHIPPED_TABLES[name]
    if not path.is_file():
        raise FileFormatError(f"the packaged table {name!r} is missing ({path}); "
                              "reinstall stochctl or regenerate the table file")
    return path


_VERIFIED: dict = {}  # resolved path -> (file stat key, verified table)


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _load_verified(path) -> PolicyTable:
    """The table of ``path``, read and verified once per process and file state.

    The verified table is kept under the resolved path with the file's stat
    (device, inode, size, modification and change times): a file that changed
    since is read and verified again. Each caller gets its own copy
    (:meth:`PolicyTable._fresh`: shared read-only arrays, its own lookup counts).
    """
    path = Path(path).resolve()
    key = _stat_key(path)
    hit = _VERIFIED.get(path)
    if hit is None or hit[0] != key:
        table = PolicyTable.load(path)
        if _stat_key(path) != key:  # changed while being read: verified content, but do not keep it
            return table
        _VERIFIED[path] = hit = (key, table)
    return hit[1]._fresh()


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
