"""Analysis of a model's objective: convexity per player and well-posedness of the minimax problem."""

from .convexity import BlockConvexity as BlockConvexity
from .convexity import ConvexityReport as ConvexityReport
from .convexity import FailurePoint as FailurePoint
from .convexity import ProfileObjective as ProfileObjective
from .convexity import analyze_convexity as analyze_convexity
from .wellposed import WellPosednessReport as WellPosednessReport
from .wellposed import analyze_wellposedness as analyze_wellposedness

__all__ = ["BlockConvexity", "ConvexityReport", "FailurePoint", "ProfileObjective", "analyze_convexity",
           "WellPosednessReport", "analyze_wellposedness"]
