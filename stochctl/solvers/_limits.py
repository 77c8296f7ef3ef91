"""Size limits of a solve, checked from its arguments before any array is allocated.

A solve holds, per grid node, the coefficients and work arrays of the
scheme (:func:`node_bytes`), and per time step one time level and, for the
implicit scheme, two diagnostics. Sizes beyond :data:`MAX_WORK_BYTES` or
:data:`MAX_STEPS` are refused with the estimated memory and the largest value
that fits, instead of failing in the allocator or running for days.
"""

from __future__ import annotations

import math

from ..errors import InputError

MAX_WORK_BYTES = 8 * 2**30
"""Memory budget of the grid-sized arrays of one solve (the stored levels have their own check)."""

MAX_STEPS = 50_000_000
"""Most time steps of one solve (T / dt)."""


def gib(nbytes: float) -> str:
    """``nbytes`` as a short human-readable size."""
    if nbytes >= 2**50:
        return f"{nbytes / 2**30:.3g} GiB"
    if nbytes >= 2**30:
        return f"{nbytes / 2**30:,.1f} GiB"
    return f"{nbytes / 2**20:.0f} MiB"


def node_bytes(ndim: int, players: int) -> int:
    """Estimated bytes per grid node of coefficients and work arrays (both schemes, upper bound)."""
    return 8 * (4 * ndim * players + 24)


def check_grid_size(points, players: int) -> None:
    """Refuse a grid whose coefficient and work arrays would exceed :data:`MAX_WORK_BYTES`."""
    points = tuple(int(n) for n in points)
    nodes = math.prod(points)
    per_node = node_bytes(len(points), players)
    need = nodes * per_node
    if need > MAX_WORK_BYTES:
        largest = int((MAX_WORK_BYTES / per_node) ** (1.0 / len(points)))
        shape = " x ".join(str(n) for n in points)
        raise InputError(f"grid {shape} ({nodes:,} nodes) needs about {gib(need)} of work arrays, more than "
                         f"the {gib(MAX_WORK_BYTES)} allowed; at most {largest:,} nodes per axis fit")


def check_steps(horizon: float, dt: float, steps: float) -> None:
    """Refuse more than :data:`MAX_STEPS` time steps (``steps`` = T / dt, before rounding)."""
    if not math.isfinite(steps) or steps > MAX_STEPS:
        raise InputError(f"horizon {horizon:g} with time step {dt:.3g} needs {steps:.3g} steps "
                         f"(about {gib(24 * steps)} for the time grid alone); at most {MAX_STEPS:,} steps: "
                         f"a time step of at least {horizon / MAX_STEPS:.3g}, or a horizon of at most "
                         f"{MAX_STEPS * dt:.3g}")


def check_paths(paths: int, dims: int, keep_paths: int = 0, steps: int = 1) -> None:
    """Refuse a Monte Carlo run whose path arrays (and kept trajectories) exceed :data:`MAX_WORK_BYTES`."""
    per_path = 8 * (4 * dims + 4)
    need = paths * per_path + 8 * keep_paths * dims * (steps + 1)
    if need > MAX_WORK_BYTES:
        largest = int(MAX_WORK_BYTES // per_path)
        raise InputError(f"{paths:,} Monte Carlo paths (keeping {keep_paths:,}) need about {gib(need)}, more "
                         f"than the {gib(MAX_WORK_BYTES)} allowed; at most {largest:,} paths fit")
