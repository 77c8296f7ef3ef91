"""When does the discrete training iteration explode? Critical learning rates, maps and simulations.

**One player.** Along an eigen-direction v of the signed Hessian J = s D2 g
(s = +1 for a minimiser, -1 for a maximiser) with eigenvalue (curvature) a, the
per-sample curvature v^T D2 l(x; xi) v fluctuates with variance s2 (per sample;
s2 / B for a minibatch of B), and with step h = eta u the linearised SGD
iteration is the multiplicative-noise model

    x_{k+1} = (1 - h (a + xi_k)) x_k,   xi_k ~ N(0, s2).

Its three thresholds (``critical_steps``), each the smallest h that explodes:

* deterministic: |1 - h a| > 1, i.e. h > 2 / a (every h > 0 when a < 0);
* mean-square: E x_{k+1}^2 / E x_k^2 = (1 - h a)^2 + h^2 s2 > 1, i.e.
  h > 2 a / (a^2 + s2) (every h when a <= 0 and s2 > 0);
* almost-sure: the Lyapunov exponent Lambda(h) = E log|1 - h (a + xi)| > 0,
  computed by quadrature of the integrable log singularity (``lyapunov_exponent``)
  and root-found (brentq) above the mean-square threshold (Jensen:
  Lambda <= log E|.|^2 / 2, so the almost-sure threshold is the larger one).

Several coordinates are treated per eigen-direction of J: the curvature a_i is
the eigenvalue, the noise s2_i = Var(v_i^T D2 l v_i) / B, and each threshold is
the minimum over directions (exact for the deterministic threshold; the noise
coupling between directions is neglected for the other two). The multiplicative
noise is the variance of the per-sample curvature d2 l / dx2 over the model's
noises, taken symbolically (:func:`stochctl.models.expectation`); for the
quadratic model l = (a + s xi) x^2/2 - sigma zeta x it is s^2. The additive
part, the per-sample gradient covariance Sigma(x), shifts the stationary
spread but not the thresholds, and is reported alongside.

**Games.** With the signed gradient field F = (grad_theta g, -grad_omega g), its
Jacobian J at the point and the players' multipliers U = diag(u_p):

* simultaneous GDA: x <- (I - eta U J) x explodes iff some eigenvalue lambda of
  U J has |1 - eta lambda| > 1, i.e. eta > 2 Re(lambda) / |lambda|^2, so
  eta_crit = min over eigenvalues (0 as soon as one has Re(lambda) <= 0, e.g.
  purely imaginary ones; zero eigenvalues are neutral and skipped);
* alternating GDA (players in the model's order, each at the point left by
  the previous one, :func:`stochctl.solvers.iteration.update_phases`):
  M_alt = T_P ... T_1 with T_p = I - eta E_p U J (E_p selects player p's
  rows); eta_crit is the first eta at which the spectral radius rho(M_alt)
  exceeds 1, found on a log-spaced scan of (0, eta_max] refined by
  bisection. For the quadratic game g = a th^2/2 + b th om - c om^2/2 with
  a, c >= 0 and u = 1 it equals 2 / lambda_max([[a, b], [b, c]]) (Jury's
  condition 1 + det + trace > 0 on the 2 x 2 iteration matrix);
* mean-square (both updates): the second moment P = E[x x^T] of the linearised
  stochastic iteration evolves by the linear map
  P -> M P M^T + eta^2 E[U Xi P Xi^T U] (simultaneous; for alternating the
  composition of the per-player maps), Xi the per-sample fluctuation of s D2 l,
  with each player's own minibatch (independent between players, covariance
  divided by B_p). Explodes iff its spectral radius exceeds 1. Additive noise
  only adds a constant forcing and does not move the threshold.

Numerical thresholds: the scan starts at 1e-3 of the natural step 2 / rho(U J)
(rho the spectral radius); a threshold reported 0 means the iteration explodes
at every scanned step down to there (every eta > 0 on the first-order
analysis), ``None`` that it does not explode up to ``eta_max``.

**Simulation.** :func:`simulate_paths`, :func:`simulate_explosion` and
:func:`simulate_second_moment` run the one discrete iteration of
:mod:`stochctl.solvers.iteration` (the Monte Carlo checks of
:mod:`stochctl.solvers.montecarlo` run the same step): paths, the probability
that |x_k - center| exceeds a bound or stops being finite within a number of
steps (with a Wilson or Clopper-Pearson interval), which measures the
almost-sure threshold, and the averaged |x_k - center|^2 and its growth rate,
which measures the mean-square one: between the two thresholds almost every
path converges while the mean square diverges.

Modules: :mod:`.scalar` (critical steps of the multiplicative model),
:mod:`.linear` (the linearised iteration and its matrices), :mod:`.thresholds`,
:mod:`.maps` (explosion maps of a solved policy), :mod:`.simulation`; every
public name is re-exported here.

References: Li, Tai & E (2017/2019) for the SDE approximation and the
quadratic test case; Mescheder, Geiger & Nowozin (2018) for the Dirac GAN and
simultaneous versus alternating updates.
"""


from ._common import GAME_CRITERIA as GAME_CRITERIA
from ._common import INTERVALS as INTERVALS
from ._common import NOISES as NOISES
from ._common import ONE_PLAYER_CRITERIA as ONE_PLAYER_CRITERIA
from ._common import UPDATES as UPDATES
from ._common import resolve_point as resolve_point
from .linear import LocalLinearization as LocalLinearization
from .linear import iteration_matrix as iteration_matrix
from .linear import local_linearization as local_linearization
from .linear import second_moment_matrix as second_moment_matrix
from .linear import spectral_radius as spectral_radius
from .maps import ExplosionMap as ExplosionMap
from .maps import explosion_map as explosion_map
from .scalar import critical_steps as critical_steps
from .scalar import expected_log_abs_normal as expected_log_abs_normal
from .scalar import lyapunov_exponent as lyapunov_exponent
from .simulation import ExplosionSimulation as ExplosionSimulation
from .simulation import IterationPaths as IterationPaths
from .simulation import SecondMomentGrowth as SecondMomentGrowth
from .simulation import simulate_explosion as simulate_explosion
from .simulation import simulate_paths as simulate_paths
from .simulation import simulate_second_moment as simulate_second_moment
from .thresholds import ExplosionThresholds as ExplosionThresholds
from .thresholds import explosion_thresholds as explosion_thresholds
from .thresholds import simultaneous_critical_eta as simultaneous_critical_eta

__all__ = [
    "ExplosionThresholds", "ExplosionMap", "ExplosionSimulation", "SecondMomentGrowth", "LocalLinearization",
    "explosion_thresholds", "explosion_map", "simulate_explosion", "simulate_second_moment", "local_linearization",
    "IterationPaths", "simulate_paths",
    "critical_steps", "lyapunov_exponent", "expected_log_abs_normal", "simultaneous_critical_eta",
    "iteration_matrix", "second_moment_matrix", "spectral_radius", "resolve_point",
    "UPDATES", "NOISES", "INTERVALS", "ONE_PLAYER_CRITERIA", "GAME_CRITERIA",
]
