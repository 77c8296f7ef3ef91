"""Symbolic layer: the control problem, its Hamiltonian and optimal controls."""

from .derive import Derivation as Derivation
from .derive import derive as derive
from .problem import BatchControl as BatchControl
from .problem import ControlProblem as ControlProblem
from .problem import PlayerControl as PlayerControl

__all__ = ["ControlProblem", "PlayerControl", "BatchControl", "Derivation", "derive"]
