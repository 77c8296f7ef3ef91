"""Analysis of a model: convexity per player, well-posedness of the minimax problem, explosion thresholds."""

from .convexity import BlockConvexity as BlockConvexity
from .convexity import ConvexityReport as ConvexityReport
from .convexity import FailurePoint as FailurePoint
from .convexity import ProfileObjective as ProfileObjective
from .convexity import analyze_convexity as analyze_convexity
from .explosion import ExplosionMap as ExplosionMap
from .explosion import ExplosionSimulation as ExplosionSimulation
from .explosion import ExplosionThresholds as ExplosionThresholds
from .explosion import SecondMomentGrowth as SecondMomentGrowth
from .explosion import critical_steps as critical_steps
from .explosion import explosion_map as explosion_map
from .explosion import explosion_thresholds as explosion_thresholds
from .explosion import simulate_explosion as simulate_explosion
from .explosion import simulate_second_moment as simulate_second_moment
from .wellposed import WellPosednessReport as WellPosednessReport
from .wellposed import analyze_wellposedness as analyze_wellposedness

__all__ = [
    "BlockConvexity", "ConvexityReport", "FailurePoint", "ProfileObjective", "analyze_convexity",
    "WellPosednessReport", "analyze_wellposedness",
    "ExplosionThresholds", "explosion_thresholds", "critical_steps", "ExplosionMap", "explosion_map",
    "ExplosionSimulation", "simulate_explosion", "SecondMomentGrowth", "simulate_second_moment",
]
