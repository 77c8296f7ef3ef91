"""The catalogue of the package's figures: what each one is, its size and its caption.

Each figure is a :class:`FigureSpec` in :data:`FIGURES`: a builder
``figure(quick=..., size=...)`` in one module of this package that returns a
:class:`matplotlib.figure.Figure`, its file name, its size and its caption.
:func:`generate` builds and saves them all as PNG files of exactly
``size * DPI`` pixels and writes the captions to ``README.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InputError

DPI = 150
"""Resolution of every saved figure (dots per inch)."""

__all__ = ["DPI", "FIGURES", "FigureSpec", "get_spec", "pixel_size", "readme_text"]


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the package.

    Attributes:
        name: short identifier (``"convexity"``), also the file stem.
        title: one-line title used in the captions file.
        module: module of :mod:`stochctl.figures` holding the builder ``figure``.
        size: (width, height) in inches; the PNG is ``size * DPI`` pixels.
        caption: what the figure shows and how it was made (Markdown).
    """

    name: str
    title: str
    module: str
    size: tuple[float, float]
    caption: str

    @property
    def filename(self) -> str:
        return f"{self.name}.png"


def pixel_size(spec: FigureSpec) -> tuple[int, int]:
    """(width, height) in pixels of the saved PNG of ``spec``."""
    return int(round(spec.size[0] * DPI)), int(round(spec.size[1] * DPI))


FIGURES: tuple[FigureSpec, ...] = (
    FigureSpec(
        "convexity", "Convexity of the GAN objectives", "convexity", (13.5, 8.8),
        "Rows: the Dirac GAN g = log sigmoid(omega c) + log sigmoid(-omega theta) with data point c = 1, "
        "and the Gaussian-mean GAN (data N(1, 1), generator theta + z, discriminator sigmoid(omega x), "
        "g by 40-node Gauss-Hermite quadrature). (a, d) The smallest eigenvalue of the generator's "
        "Hessian block d2g/dtheta2, which must be >= 0 for g to be convex in theta; hatched where it "
        "is negative. (b, e) The largest eigenvalue of the discriminator's block d2g/domega2, which must "
        "be <= 0 for g to be concave in omega; hatched where it is positive (nowhere, for both models). "
        "(c, f) The profile objective P(theta) = max_omega g(theta, omega) that the generator effectively "
        "minimises, with the maximising omega (dashed, right axis); shaded where a second difference of P "
        "is negative beyond its numerical error, so P is not convex there. Made with "
        "`stochctl.analysis.analyze_convexity` on an 81 x 81 grid over each model's default box (inner "
        "maxima refined by a bounded local optimiser).",
    ),
    FigureSpec(
        "minimax", "Upper and lower values of the minimax problem", "minimax", (14.0, 9.5),
        "(a-d) The objective g over each model's box: the quadratic game g = theta^2/2 + theta omega - "
        "omega^2/2, the Dirac GAN (c = 1), the Gaussian GAN (data N(1, 1)) and the ill-posed game "
        "g = (theta - omega)^2 on [-1, 1]^2 (defined in Python as a `Model`). Red dots: the "
        "discriminator's best response argmax_omega g for each theta; light-blue dots: the generator's "
        "best response argmin_theta g for each omega; triangles: the min-max point attaining the "
        "upper value U = min_theta max_omega g and the max-min point attaining the lower value "
        "L = max_omega min_theta g; star: the saddle point when U = L. (e) U and L per model and the gap "
        "U - L: zero (a saddle point) for the three canonical games, 1 for the ill-posed example, whose "
        "best responses never meet. Made with `stochctl.analysis.analyze_wellposedness` on a "
        "101 x 101 grid refined by local optimisation.",
    ),
    FigureSpec(
        "local_policy", "Value and optimal policy of the local model", "local_policy", (14.0, 4.9),
        "(a) The value V(tau_rem, y) = min E[Y_T^2] of the dimensionless local model "
        "dY = -u Y dtau + u dW, u in [0, 1], over the remaining dimensionless time tau_rem = a eta (K - k) "
        "and the scaled distance to the local minimum y = (|grad f| / a) sqrt(a / (eta s^2)) (shown for "
        "|y| <= 4; white lines: level sets). (b) The optimal learning-rate multiplier u*(tau_rem, y), the "
        "table a trainer looks up (shown for |y| <= 2). Where V_yy > 0 it is the clipped ratio "
        "u* = clip(y V_y / V_yy, 0, 1), which is clip(y^2, 0, 1) at the end of training; the light-blue line "
        "outlines where the ratio saturates at u_max = 1 and dotted lines are the levels u* = 0.1, 0.5, 0.9. "
        "The bang-bang region (V_yy <= 0, hatched when present) contains no interior node: the value is "
        "convex in y, and only the two boundary nodes y = +-6, where the linear-extrapolation boundary "
        "condition sets V_yy = 0, fall in it. (c) Slices u*(y) at five remaining times: the band of reduced "
        "steps around the minimum narrows as more training time remains. Made with "
        "`stochctl.solvers.solve` (implicit scheme with policy iteration, 1201 nodes on [-6, 6], "
        "dtau = 0.005).",
    ),
    FigureSpec(
        "schedule", "Li-Tai-E schedule, open-loop optimum and feedback policy", "schedule", (14.0, 6.0),
        "Quadratic loss f = a x^2/2 with additive gradient noise only (a = 1, s = 0, sigma = 1, eta = 0.1), "
        "X_0 = 1, horizon T = 4, u in [0, 1]. (a) Learning-rate multipliers: Li, Tai & E's closed-form "
        "open-loop optimum for E[X_T^2] (u = 1 until t* = ln(2 a m_0 / (eta sigma^2) - 1) / (2 a), then "
        "1 / (1 + a (t - t*))); the numerical open-loop optimum over 128 piecewise-constant pieces "
        "(L-BFGS-B with exact adjoint gradients), which lies on it; and the HJB feedback policy u*(t, X_t) "
        "read along 4000 simulated paths (one path, the path mean and the 10-90% band). (b) The second "
        "moment E[X_t^2]: closed form, numerical open loop, Euler-Maruyama paths under the feedback policy "
        "(band: +-2 standard errors), the open-loop schedule simulated on the same noise (square) and the "
        "HJB value at (0, X_0) converted to E[X_T^2] = 2 V / a (diamond). The feedback policy ends far below "
        "the best open-loop schedule, because each path stops its own steps once |X_t| is small; the "
        "simulation confirms the HJB value. (c) The feedback policy u*(t, x) of the explicit monotone scheme "
        "(401 nodes on [-3, 3]) with the simulated path of (a) and +-sqrt(m(t)) of the open-loop optimum.",
    ),
    FigureSpec(
        "dirac_policy", "Optimal policies of both players of the Dirac GAN", "dirac_policy", (14.0, 9.0),
        "The Isaacs equation of the Dirac GAN g = log sigmoid(omega c) + log sigmoid(-omega theta) with "
        "additive gradient noise sigma = 0.1 per player, eta = 0.1, batch 1, horizon T = 1, terminal cost g "
        "and both multipliers in [0, 1], solved by the explicit monotone scheme on 101 x 101 nodes over "
        "[-2, 2]^2. Rows: data point c = 0 (the classic non-convergent case) and c = 1. (a, d) The "
        "generator's optimal multiplier u*_theta at t = 0; (b, e) the discriminator's u*_omega; (c, f) the "
        "value V(0, theta, omega) with the equilibrium (c, 0). Hatched: the bang-bang region, where the "
        "player's curvature condition fails (V_theta_theta <= 0 for the minimiser, V_omega_omega >= 0 for "
        "the maximiser) and the optimum is the endpoint of [0, 1] chosen by the explicit rule; the legend "
        "gives its share of the nodes and the share of those at u_max. Elsewhere the clipped ratio applies; "
        "with this little gradient noise the ratio is almost always clipped, so both policies are "
        "essentially 0 or 1 everywhere: a player stops (u = 0) where a gradient step would worsen its value "
        "and takes the full step elsewhere.",
    ),
    FigureSpec(
        "discrete_policy", "Explosion-aware policy of the discrete local model", "discrete_policy", (14.5, 4.8),
        "The discrete local model Y_{k+1} = (1 - h u) Y_k - u sqrt(h) xi_k, cost E[Y_K^2] (the training "
        "iteration along the gradient direction, h = eta a the step in curvature units, y the distance to "
        "the minimum in noise units), read from the packaged table `local-discrete` (Bellman iterations to "
        "stationarity, `stochctl table build-local --discrete`) at tau_rem = 8 units of time to go. (a, b) The "
        "optimal multiplier u*(h, y) for u_max = 1 and 4; contours of the step h u* = 0.9 (black) and 0.5 "
        "(dotted white), where h u* = 1 is the step that lands on the minimum (the policy never reaches "
        "it: the largest unconstrained h u* found is 0.9998); red: where the constant policy u_max explodes, "
        "h u_max = 2 (deterministic, and mean square for additive noise) and h u_max = 1.6 (mean square "
        "with multiplicative gradient noise s/a = 0.5, from `critical_steps`). Far from the minimum the "
        "policy takes u_max while h u_max < 1 and nearly the landing step u = 1/h beyond, so h u* never "
        "reaches the explosion thresholds whatever u_max allows; near the minimum it shrinks the step with "
        "the noise. (c) The continuous limit: the discrete policy at h = 0.001 (dashed) against "
        "the continuous table `local-quadratic` (solid) at three times to go.",
    ),
    FigureSpec(
        "explosion", "Explosion phase diagram", "explosion", (14.5, 5.2),
        "SGD x_{k+1} = (1 - h (a + s xi_k)) x_k on f = a x^2/2 with multiplicative gradient noise "
        "(per-sample curvature a + s xi, xi ~ N(0, 1), no additive noise) and step h = eta u_max. Curves, "
        "from `stochctl.analysis.explosion.critical_steps`: the deterministic threshold h = 2/a, the "
        "mean-square threshold h = 2a/(a^2 + s^2) (E x_k^2 diverges above it) and the almost-sure threshold "
        "where the Lyapunov exponent E log|1 - h (a + xi)| (by quadrature) changes sign (paths diverge above "
        "it). Grey: the fraction of 80 simulated paths of the real iteration (x_0 = 1, Gaussian gradient "
        "noise, `simulate_explosion`) with |x_k| > 1e6 within 400 steps, on a 21 x 32 grid. (a) Against the "
        "curvature a at s = 1; (b) against the noise scale s at a = 1. The simulated boundary follows the "
        "almost-sure curve, not the mean-square one: between the two the second moment explodes while "
        "almost every path converges; for a above about 1.3 the almost-sure threshold even exceeds the "
        "deterministic 2/a. (c) The slice a = s = 1: explosion probability with 95% Wilson intervals "
        "(320 paths), and the growth rate per step of the averaged second moment over 10 steps (10 000 "
        "paths, `simulate_second_moment`) with its theory log((1 - h a)^2 + h^2 s^2): it changes sign at "
        "the mean-square threshold h = 1, while paths start to explode only at the almost-sure threshold "
        "h = 1.73.",
    ),
    FigureSpec(
        "validation", "Monte Carlo validation over grid refinement", "validation", (15.0, 5.2),
        "The HJB/Isaacs value V_h(0, x_0) of the finite-difference solver (explicit monotone scheme, "
        "default boundary conditions) against the expected cost of its own policy u_h(t, x), simulated by "
        "Euler-Maruyama (10 000 antithetic paths, 1000 steps over [0, T], the policy interpolated "
        "multilinearly in space and constant between stored time levels), over grid refinement. (a) "
        "Quadratic loss (a = 1, s = 0.5, sigma = 1, eta = 0.1, T = 1) from x_0 = 1.5, 26 to 801 nodes on "
        "[-3, 3]. (b) Dirac GAN (c = 1, sigma = 0.1, eta = 0.1, T = 1) from (theta_0, omega_0) = (0, 0.5), "
        "21^2 to 161^2 nodes on [-2, 2]^2. Error bars: 2 Monte Carlo standard errors. (c) The relative gap "
        "|V_h - MC| / |MC|. For the quadratic loss the simulated cost hardly changes with the grid (the "
        "policy is near-optimal already on coarse grids) and the gap is the numerical diffusion of the "
        "first-order upwind scheme in the value, falling at about first order in the grid spacing "
        "(dotted: slope -1); for the Dirac GAN the two agree to about 1e-3 relative or better on every grid.",
    ),
)
"""Every figure of the package, in the order they are generated."""


def get_spec(name: str) -> FigureSpec:
    """The :class:`FigureSpec` called ``name``."""
    for spec in FIGURES:
        if spec.name == name:
            return spec
    raise InputError(f"unknown figure {name!r}; figures: {', '.join(s.name for s in FIGURES)}")


def readme_text(specs: Iterable[FigureSpec] = FIGURES) -> str:
    """The captions file: one section per figure (title, file, caption)."""
    lines = ["# Figures", "",
             "Generated by `stochctl figures --out figures/` (every figure in one command; "
             "`--quick` makes coarse versions for testing). PNG at "
             f"{DPI} dpi. Each caption says what the figure shows and how it was made (grids and sample "
             "sizes are those of the full-quality run).", ""]
    for k, spec in enumerate(specs, 1):
        lines += [f"## {k}. {spec.title}", "", f"![{spec.title}]({spec.filename})", "", spec.caption, ""]
    return "\n".join(lines)
