"""Training-dynamics models: canonical ones by name, user ones from TOML or Python."""

from __future__ import annotations

import math
from pathlib import Path

from ..errors import InputError
from ._model import Model as Model
from ._model import Parameter as Parameter
from ._model import Player as Player
from .canonical import CANONICAL
from .quadrature import expectation as expectation
from .solve_defaults import SolveDefaults as SolveDefaults
from .toml_model import ModelConfig as ModelConfig
from .toml_model import load_model_toml as load_model_toml

MODEL_NAMES = tuple(CANONICAL)

__all__ = ["Model", "Player", "Parameter", "ModelConfig", "MODEL_NAMES", "SolveDefaults", "get_model", "load_model",
           "load_model_toml", "expectation", "parse_params", "canonical_solve_defaults"]


def get_model(name: str, **params) -> Model:
    """A canonical model by name, with parameter overrides (validated)."""
    if name not in CANONICAL:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    model = CANONICAL[name]()
    return model.with_params(**params) if params else model


def canonical_solve_defaults() -> dict[str, SolveDefaults]:
    """Each canonical model's solve defaults, by name (read from the model records)."""
    return {name: CANONICAL[name]().solve_defaults for name in MODEL_NAMES}


def load_model(spec: str, params: dict | None = None) -> ModelConfig:
    """A model by canonical name or TOML path, with parameter overrides."""
    params = params or {}
    if spec in CANONICAL:
        return ModelConfig(model=get_model(spec, **params), source=spec)
    if spec.endswith(".toml") or Path(spec).exists():
        cfg = load_model_toml(spec)
        if params:
            cfg = ModelConfig(cfg.model.with_params(**params), cfg.control, cfg.solver, cfg.source)
        return cfg
    raise InputError(f"unknown model {spec!r}; valid models: {', '.join(MODEL_NAMES)}, or a path to a .toml file")


def parse_params(items) -> dict[str, float]:
    """Parse CLI ``k=v`` items into a dict of floats, with one clear error per bad item."""
    out: dict[str, float] = {}
    for item in items or ():
        for part in str(item).split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise InputError(f"--param {part!r}: expected NAME=VALUE")
            k, v = (s.strip() for s in part.split("=", 1))
            if not k:
                raise InputError(f"--param {part.strip()!r}: expected NAME=VALUE")
            if k in out:
                raise InputError(f"--param {k}: given twice ({out[k]:g} and {v}); give each parameter once")
            try:
                out[k] = float(v)
            except ValueError:
                raise InputError(f"--param {k}: expected a number; got {v!r}") from None
            if not math.isfinite(out[k]):
                raise InputError(f"--param {k}: expected a finite number; got {v!r}")
    return out
