"""Shared vocabulary of the explosion analysis: update orders, criteria, tolerances, input checks."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ...errors import InputError
from ...models import Model
from ...solvers.iteration import NOISES as NOISES
from ...solvers.iteration import UPDATES as UPDATES

INTERVALS = ("wilson", "clopper-pearson")
"""Binomial confidence intervals of the explosion probability."""
ONE_PLAYER_CRITERIA = ("deterministic", "mean_square", "almost_sure")
GAME_CRITERIA = ("simultaneous", "alternating", "mean_square_simultaneous", "mean_square_alternating")

#: An iteration explodes where its spectral radius exceeds 1 + RHO_TOL.
RHO_TOL = 1e-9
#: Eigenvalues (curvatures) below this fraction of the largest are zero.
_ZERO_TOL = 1e-12


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def resolve_point(model: Model, point, where: str = "point") -> np.ndarray:
    """A state point as a float array in state order, from a dict (every coordinate) or a sequence.

    Raises:
        InputError: unknown or missing coordinate, wrong length, or a non-finite value,
            naming it (``where`` prefixes the message).
    """
    names = model.state_names
    if isinstance(point, Mapping):
        for k in point:
            if k not in names:
                raise InputError(f"{where}: unknown coordinate {k!r}; coordinates of model {model.name!r}: "
                                 f"{', '.join(names)}")
        for k in names:
            if k not in point:
                raise InputError(f"{where}: missing coordinate {k!r}; expected values for {', '.join(names)}")
        raw = [point[k] for k in names]
    else:
        raw = list(np.atleast_1d(np.asarray(point, dtype=object)))
        if len(raw) != len(names):
            raise InputError(f"{where}: expected {len(names)} coordinates ({', '.join(names)}); got {len(raw)}")
    out = []
    for k, v in zip(names, raw):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(f"{where}: coordinate {k} must be a number; got {v!r}") from None
        if not math.isfinite(f):
            raise InputError(f"{where}: coordinate {k} must be finite; got {v!r}")
        out.append(f)
    return np.array(out)


def _signs_owner(model: Model) -> tuple[np.ndarray, np.ndarray]:
    owner = np.concatenate([np.full(len(p.symbols), k) for k, p in enumerate(model.players)]).astype(np.int64)
    signs = np.array([model.players[k].sign for k in owner], dtype=float)
    return signs, owner


def _as_model(obj):
    """(model, problem or None) from a Model or a ControlProblem."""
    from ...symbolic.problem import ControlProblem

    if isinstance(obj, ControlProblem):
        return obj.model, obj
    if isinstance(obj, Model):
        return obj, None
    raise InputError(f"expected a Model or a ControlProblem; got {type(obj).__name__}")


def _per_player(model: Model, value, what: str, default: tuple, *, integer: bool = False) -> tuple:
    """One value per player from None (defaults), a number (every player) or {player: value}."""
    names = [p.name for p in model.players]
    if value is None:
        return default
    if isinstance(value, Mapping):
        for k in value:
            if k not in names:
                raise InputError(f"{what}: unknown player {k!r}; players: {', '.join(names)}")
        items = [value.get(k, d) for k, d in zip(names, default)]
    else:
        items = [value] * len(names)
    out = []
    for name, v in zip(names, items):
        if integer:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InputError(f"{what} for player {name} must be an integer >= 1; got {v!r}")
            out.append(int(v))
        else:
            try:
                f = float(v)
            except (TypeError, ValueError):
                raise InputError(f"{what} for player {name} must be a number; got {v!r}") from None
            if isinstance(v, bool) or not math.isfinite(f) or f < 0:
                raise InputError(f"{what} for player {name} must be a finite number >= 0; got {v!r}")
            out.append(f)
    return tuple(out)


def _defaults(model: Model, problem) -> tuple[tuple, tuple]:
    """Default multipliers (u_max under a problem, else 1) and batch sizes (b_min under batch control)."""
    if problem is None:
        return (1.0,) * len(model.players), (model.batch_size,) * len(model.players)
    us = tuple(float(c.u_max) for c in problem.controls)
    bs = tuple(int(math.ceil(c.batch.b_min)) if c.batch is not None else int(c.batch_size) for c in problem.controls)
    return us, bs
