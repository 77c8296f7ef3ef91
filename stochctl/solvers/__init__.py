"""Grid solvers of the HJB/Isaacs equation and the objects they return.

``solve(problem)`` runs the monotone finite-difference scheme (explicit, or
implicit with policy iteration) and returns a :class:`Solution`;
:class:`Grid` fixes the box, the nodes and the boundary condition of every
face; :func:`boundary_sensitivity` measures how far the truncated domain's
boundary reaches into the answer.
"""

from .api import BoundarySensitivity as BoundarySensitivity
from .api import boundary_sensitivity as boundary_sensitivity
from .api import problem_from_config as problem_from_config
from .api import solve as solve
from .grid import BOUNDARY_KINDS as BOUNDARY_KINDS
from .grid import Grid as Grid
from .solution import Solution as Solution

__all__ = ["BOUNDARY_KINDS", "Grid", "Solution", "solve", "boundary_sensitivity", "BoundarySensitivity",
           "problem_from_config"]
