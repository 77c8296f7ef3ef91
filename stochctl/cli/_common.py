"""Argument helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json

import numpy as np


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """MODEL positional (canonical name or TOML path) and repeatable ``--param k=v``."""
    from ..models import MODEL_NAMES

    parser.add_argument("model", metavar="MODEL",
                        help=f"canonical model ({', '.join(MODEL_NAMES)}) or a model .toml file")
    parser.add_argument("--param", action="append", default=[], metavar="K=V",
                        help="override a model parameter (repeatable, or comma-separated)")


def load_model_from_args(args):
    """The :class:`~stochctl.models.ModelConfig` named by ``args.model`` and ``args.param``."""
    from ..models import load_model, parse_params

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
