"""Symbolic layer: the control problem, its Hamiltonian and optimal controls, and its discrete-time Bellman form."""

from .derive import Derivation as Derivation
from .derive import derive as derive
from .discrete import DiscreteDerivation as DiscreteDerivation
from .discrete import derive_discrete as derive_discrete
from .problem import BatchControl as BatchControl
from .problem import ControlProblem as ControlProblem
from .problem import PlayerControl as PlayerControl

__all__ = ["ControlProblem", "PlayerControl", "BatchControl", "Derivation", "derive", "DiscreteDerivation",
           "derive_discrete"]
