"""Grid solvers of the HJB/Isaacs equation and of the Bellman recursion, and the objects they return.

``solve(problem)`` chooses the scheme from the problem (:mod:`~stochctl.solvers.schemes`):
the monotone finite-difference scheme of the HJB/Isaacs equation (explicit, or
implicit with policy iteration) in continuous time, the Bellman recursion of one
or two players in discrete time; it returns a :class:`Solution`;
:class:`Grid` fixes the box, the nodes and the boundary condition of every
face; :func:`boundary_sensitivity` measures how far the truncated domain's
boundary reaches into the answer.
"""

from .api import BoundarySensitivity as BoundarySensitivity
from .api import boundary_sensitivity as boundary_sensitivity
from .api import problem_from_config as problem_from_config
from .grid import BOUNDARY_KINDS as BOUNDARY_KINDS
from .grid import Grid as Grid
from .moment import MomentControl as MomentControl
from .moment import PiecewiseSchedule as PiecewiseSchedule
from .moment import integrate_moment as integrate_moment
from .moment import moment_closed_form as moment_closed_form
from .moment import moment_parameters as moment_parameters
from .moment import optimize_schedule as optimize_schedule
from .moment import propagate_moment as propagate_moment
from .montecarlo import GridPolicy as GridPolicy
from .montecarlo import MonteCarloResult as MonteCarloResult
from .montecarlo import simulate_constant as simulate_constant
from .montecarlo import simulate_iteration as simulate_iteration
from .montecarlo import simulate_policy as simulate_policy
from .schemes import ALL_SCHEMES as ALL_SCHEMES
from .schemes import Scheme as Scheme
from .schemes import choose_scheme as choose_scheme
from .schemes import solve as solve
from .solution import Solution as Solution

__all__ = ["BOUNDARY_KINDS", "Grid", "Solution", "solve", "choose_scheme", "Scheme", "ALL_SCHEMES", "boundary_sensitivity", "BoundarySensitivity",
           "problem_from_config", "GridPolicy", "MonteCarloResult", "simulate_policy", "simulate_constant",
           "simulate_iteration", "MomentControl", "PiecewiseSchedule", "moment_closed_form", "moment_parameters",
           "optimize_schedule", "propagate_moment", "integrate_moment"]
