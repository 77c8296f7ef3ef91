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

Modules: :mod:`.spec` (axes, values, rules), :mod:`.core` (the table, its files, packaged tables),
:mod:`.lookup` (interpolation entry points and counting), :mod:`.export` (from a solution, to CSV).
"""

from __future__ import annotations

from .core import PolicyTable, _checksum, _standard_metadata, load_table, packaged_table_path  # noqa: F401
from .lookup import LookupResult, LookupStats, apply_clip  # noqa: F401
from .spec import (  # noqa: F401
                   EXTRAPOLATIONS,
                   FORMAT_NAME,
                   FORMAT_VERSION,
                   INTERPOLATIONS,
                   METADATA_KEYS,
                   MULTIPLIER,
                   SHIPPED_TABLES,
                   TableAxis,
                   TableValue,
                   _canonical_json,
)
