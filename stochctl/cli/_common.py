"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from ..errors import InputError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL positional (canonical name or TOML path) and repeatable ``--param k=v``."""
    from ..models import MODEL_NAMES

    parser.add_argument("model", metavar="MODEL",
                        help=f"canonical model ({', '.join(MODEL_NAMES)}) or a model .toml file")
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="override a model parameter (repeatable, or comma-separated)")


def check_model_spec(spec: str, option: str = "MODEL") -> None:
    """Refuse a MODEL argument that names neither a canonical model nor a TOML file, before any work."""
    from pathlib import Path

    from ..models import MODEL_NAMES

    if spec in MODEL_NAMES:
        return
    if not spec.strip():
        raise InputError(f"{option}: expected a canonical model ({', '.join(MODEL_NAMES)}) or a model .toml file; "
                         f"got an empty name")
    path = Path(spec)
    if path.is_dir():
        raise InputError(f"{option} {spec!r} is a folder; expected a canonical model "
                         f"({', '.join(MODEL_NAMES)}) or a model .toml file")
    if not path.exists():
        raise InputError(f"{option}: unknown model {spec!r}; valid models: {', '.join(MODEL_NAMES)}, "
                         "or a path to a .toml file")


def load_model_from_args(args):
    """The :class:`~stochctl.models.ModelConfig` named by ``args.model`` and ``args.param``."""
    from ..models import load_model, parse_params

    check_model_spec(args.model)
    return load_model(args.model, parse_params(args.param))


def to_jsonable(obj):
    """Convert numpy scalars/arrays (and nested containers) for ``json.dumps``."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if np.isfinite(v) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def dump_json(obj) -> str:
    return json.dumps(to_jsonable(obj), indent=2, allow_nan=False)


def parse_assignments(items, what: str, *, form: str = "NAME=VALUE", valid=None) -> dict[str, str]:
    """``NAME=VALUE`` items (each possibly comma-separated) as ``{name: text}``.

    Refuses an item without ``=``, a name given twice and, when ``valid`` is
    given, a name outside it; ``what`` starts every message (e.g. ``"--at"``).
    """
    out: dict[str, str] = {}
    if isinstance(items, str):
        items = [items]
    for item in items or ():
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part:
                raise InputError(f"{what} {part!r}: expected {form}")
            name, value = (s.strip() for s in part.split("=", 1))
            if valid is not None and name not in valid:
                raise InputError(f"{what}: unknown coordinate {name!r}; valid: {', '.join(valid)}")
            if name in out:
                raise InputError(f"{what}: coordinate {name!r} given twice")
            out[name] = value
    return out


def parse_number(what: str, name: str, text: str) -> float:
    """``text`` as a finite float, or an InputError naming ``what name`` and the text."""
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{what} {name} must be a number; got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{what} {name} must be a finite number; got {text!r}")
    return value


def grid_points(points, state_names) -> tuple[int, ...]:
    """``--grid`` numbers as one count per axis: one number for every axis, or one per axis."""
    n = len(state_names)
    if len(points) == 1:
        return tuple(points) * n
    if len(points) != n:
        raise InputError(f"--grid: expected 1 or {n} numbers (axes {', '.join(state_names)}); got {len(points)}")
    return tuple(points)
