"""stochctl: the learning rate (and batch size) of SGD/GAN training as a stochastic control.

Derive the HJB/Isaacs equation of the control problem symbolically, solve it
with monotone finite differences, export the optimal policy as a lookup table
and hand it to a trainer.
"""

from __future__ import annotations

from ._version import __version__ as __version__

from .errors import InputError as InputError
from .errors import NumericalError as NumericalError
from .errors import StochctlError as StochctlError
from .models import Model as Model
from .models import get_model as get_model
from .models import load_model_toml as load_model_toml
from .symbolic import Derivation as Derivation
from .symbolic import derive as derive
from .symbolic.problem import BatchControl as BatchControl
from .symbolic.problem import ControlProblem as ControlProblem
from . import documents as documents  # registers the renderers of the derivations (d.to_markdown() etc.)

__all__ = [
    "__version__",
    "StochctlError",
    "InputError",
    "NumericalError",
    "Model",
    "get_model",
    "load_model_toml",
    "ControlProblem",
    "BatchControl",
    "derive",
    "Derivation",
]
