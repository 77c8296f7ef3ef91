"""Simulated explosion of the discrete iteration: path probabilities and averaged second moments.

:func:`simulate_explosion` runs the iteration of :mod:`stochctl.solvers.iteration`
for many seeded paths and a sweep of eta, and reports the probability that
|x_k - center| exceeds a bound or stops being finite within a number of steps, with
a binomial confidence interval (Wilson or Clopper-Pearson). Paths measure the
almost-sure threshold. :func:`simulate_second_moment` averages |x_k - center|^2
over many paths and fits its growth rate, which measures the mean-square one:
between the two thresholds almost every path converges while the mean square diverges.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ...errors import InputError
from ...models import Model
from ...solvers.iteration import check_update as _check_update
from ._common import (INTERVALS, NOISES, UPDATES, _as_model, _defaults, _per_player, _positive_int,
                      _signs_owner, resolve_point)
from .linear import local_linearization, second_moment_matrix, spectral_radius

def _etas(etas) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(etas, dtype=float)) if not isinstance(etas, str) else None
    if arr is None or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise InputError(f"etas must be a non-empty 1-D sequence of positive numbers; got {etas!r}")
    return arr


@functools.lru_cache(maxsize=16)
def _problem_of(model: Model):
    from ...symbolic.problem import ControlProblem

    return ControlProblem.from_model(model)


def _setup(model_or_problem, start, etas, multipliers, update, noise, batch_size, center, seed, paths):
    """Validated inputs and the kernel arguments shared by both simulations."""
    from ...symbolic.compile import compile_problem
    from .._explosion_kernels import explosion_kernels
    from ...solvers.iteration import NOISE_MODES, update_phases

    model, problem = _as_model(model_or_problem)
    _check_update(update)
    if noise not in NOISES:
        raise InputError(f"noise {noise!r} unknown; valid: {', '.join(NOISES)}")
    etas = _etas(etas)
    paths = _positive_int("paths", paths)
    seed = _positive_int("seed", seed, minimum=0)
    u_def, b_def = _defaults(model, problem)
    us = np.array(_per_player(model, multipliers, "multiplier", u_def))
    bs = np.array(_per_player(model, batch_size, "batch size", b_def, integer=True), dtype=np.int64)
    x0 = resolve_point(model, start, "start")
    c = np.zeros_like(x0) if center is None else resolve_point(model, center, "center")
    compiled = compile_problem(problem if problem is not None else _problem_of(model))
    module = explosion_kernels(compiled)
    signs, owner = _signs_owner(model)
    n_players = len(model.players)
    slices = model.player_slices()
    starts = np.array([s.start for s in slices], dtype=np.int64)
    stops = np.array([s.stop for s in slices], dtype=np.int64)
    phase, n_phases = update_phases(n_players, update)
    seeds = np.random.SeedSequence(seed).generate_state(paths, dtype=np.uint32).astype(np.int64)
    args = (compiled.params, signs, owner, phase, n_phases, starts, stops, etas, us, 1.0 / bs, bs,
            NOISE_MODES[noise], int(compiled.n_noises), x0)
    info = dict(model=model.name, update=update if n_players > 1 else "sgd", noise=noise, names=model.state_names,
                start=tuple(map(float, x0)), center=tuple(map(float, c)), players=tuple(p.name for p in model.players),
                multipliers=tuple(map(float, us)), batch_sizes=tuple(map(int, bs)), etas=etas, paths=paths, seed=seed)
    return module, args, c, seeds, info, model


@dataclass(frozen=True, eq=False)
class ExplosionSimulation:
    """Simulated explosion probabilities of the discrete iteration over a sweep of eta.

    Attributes:
        model, update, noise: model name; ``"sgd"``, ``"simultaneous"`` or
            ``"alternating"``; noise model (:data:`NOISES`).
        names, start, center: coordinates, start point, centre of the norm
            (default: the origin, the equilibrium of the canonical quadratic models).
        players, multipliers, batch_sizes: per player (step of player p: eta u_p).
        etas: the base learning rates of the sweep.
        paths, steps, bound, seed: sample size, iterations, explosion bound on
            |x_k - center|, master seed (per-path seeds from
            :class:`numpy.random.SeedSequence`, shared by every eta).
        explosion_step: (len(etas), paths) first step k with |x_k - center| > bound
            or non-finite; -1 where the path never exploded.
        counts, probability: exploded paths and their fraction, per eta.
        ci_low, ci_high: binomial confidence interval of the probability.
        confidence, interval: its level and method (:data:`INTERVALS`).
    """

    model: str
    update: str
    noise: str
    names: tuple[str, ...]
    start: tuple[float, ...]
    center: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    etas: np.ndarray
    paths: int
    steps: int
    bound: float
    seed: int
    explosion_step: np.ndarray
    counts: np.ndarray
    probability: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    confidence: float
    interval: str

    @property
    def step_sizes(self) -> np.ndarray:
        """h = eta u per eta (rows) and player (columns)."""
        return self.etas[:, None] * np.asarray(self.multipliers)[None, :]

    def as_dict(self) -> dict:
        return {"model": self.model, "update": self.update, "noise": self.noise, "etas": self.etas,
                "multipliers": dict(zip(self.players, self.multipliers)), "paths": self.paths,
                "steps": self.steps, "bound": self.bound, "seed": self.seed, "probability": self.probability,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "confidence": self.confidence,
                "interval": self.interval}


def simulate_explosion(model, start, etas, *, multipliers=None, update: str = "simultaneous",
                       noise: str = "gaussian", batch_size=None, paths: int = 1000, steps: int = 1000,
                       bound: float = 1e6, center=None, seed: int = 0, confidence: float = 0.95,
                       interval: str = "wilson") -> ExplosionSimulation:
    """Probability that the discrete iteration explodes within ``steps``, for each eta.

    A path explodes when |x_k - center| > bound or x_k stops being finite for
    some k <= steps. The iteration and its noise are described in
    :mod:`stochctl.analysis._explosion_kernels`.

    Args:
        model: a Model or a ControlProblem (defaults as in :func:`explosion_thresholds`).
        start: start point (dict or sequence).
        etas: base learning rates to sweep (step of player p: eta u_p).
        multipliers, batch_size: per player, as in :func:`explosion_thresholds`.
        update: ``"simultaneous"`` or ``"alternating"`` (the same for one player).
        noise: ``"gaussian"`` (Cholesky of Sigma / B), ``"sample"`` (mean of B
            per-sample gradients) or ``"none"``.
        paths, steps, bound: sample size, iterations, explosion bound.
        center: centre of the norm (default: the origin).
        seed: master seed.
        confidence, interval: level and method of the binomial interval.
    """
    steps = _positive_int("steps", steps)
    if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not (math.isfinite(bound) and bound > 0):
        raise InputError(f"bound must be a positive number; got {bound!r}")
    if not (isinstance(confidence, float) and 0 < confidence < 1):
        raise InputError(f"confidence must be a number in (0, 1); got {confidence!r}")
    if interval not in INTERVALS:
        raise InputError(f"interval {interval!r} unknown; valid: {', '.join(INTERVALS)}")
    module, args, c, seeds, info, _ = _setup(model, start, etas, multipliers, update, noise, batch_size, center,
                                             seed, paths)
    out = np.empty((len(info["etas"]), info["paths"]), dtype=np.int64)
    module.explosion_paths(*args, c, seeds, steps, float(bound) ** 2, out)
    counts = (out >= 0).sum(axis=1)
    method = "wilson" if interval == "wilson" else "exact"
    lows, highs = [], []
    for k in counts:
        ci = stats.binomtest(int(k), info["paths"]).proportion_ci(confidence_level=confidence, method=method)
        lows.append(ci.low)
        highs.append(ci.high)
    return ExplosionSimulation(**info, steps=steps, bound=float(bound), explosion_step=out, counts=counts,
                               probability=counts / info["paths"], ci_low=np.array(lows), ci_high=np.array(highs),
                               confidence=confidence, interval=interval)


@dataclass(frozen=True, eq=False)
class SecondMomentGrowth:
    """Averaged second moment r_k = |x_k - center|^2 over many paths, per eta.

    Attributes:
        model, update, noise, names, start, center, players, multipliers,
        batch_sizes, etas, paths, seed: as in :class:`ExplosionSimulation`.
        steps: iterations K.
        mean: (len(etas), K + 1) sample mean of r_k (inf once a path overflows).
        stderr: its standard error.
        growth_rate: (log mean_K - log mean_0) / K per eta.
        growth_stderr: its standard error (delta method, from the spread at step K).
        predicted_rate: log of the spectral radius of the second-moment map of
            the iteration linearised at ``center`` (:func:`second_moment_matrix`).
    """

    model: str
    update: str
    noise: str
    names: tuple[str, ...]
    start: tuple[float, ...]
    center: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    etas: np.ndarray
    paths: int
    seed: int
    steps: int
    mean: np.ndarray
    stderr: np.ndarray
    growth_rate: np.ndarray
    growth_stderr: np.ndarray
    predicted_rate: np.ndarray


def simulate_second_moment(model, start, etas, *, multipliers=None, update: str = "simultaneous",
                           noise: str = "gaussian", batch_size=None, paths: int = 20000, steps: int = 10,
                           center=None, seed: int = 0) -> SecondMomentGrowth:
    """Growth rate of the averaged second moment of the discrete iteration, for each eta.

    Arguments as in :func:`simulate_explosion`. With a deterministic start the
    growth rate (log mean r_K - log r_0) / K estimates log rho of the
    second-moment map; it is positive above the mean-square threshold and
    negative below (exactly log((1 - h a)^2 + h^2 s^2) for the quadratic model
    without additive noise).
    """
    steps = _positive_int("steps", steps)
    module, args, c, seeds, info, mdl = _setup(model, start, etas, multipliers, update, noise, batch_size, center,
                                               seed, paths)
    chunks = min(64, info["paths"])
    n_eta = len(info["etas"])
    sums = np.empty((n_eta, chunks, steps + 1))
    sums2 = np.empty_like(sums)
    module.second_moments(*args, c, seeds, steps, sums, sums2)
    p = info["paths"]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        mean = sums.sum(axis=1) / p
        var = np.maximum(sums2.sum(axis=1) / p - mean**2, 0.0) * p / max(p - 1, 1)
        stderr = np.sqrt(var / p)
        growth = (np.log(mean[:, -1]) - np.log(mean[:, 0])) / steps
        growth_se = stderr[:, -1] / mean[:, -1] / steps
    lin = local_linearization(mdl, info["center"])
    us = np.asarray(info["multipliers"])
    bs = np.asarray(info["batch_sizes"])
    uj = us[lin.owner][:, None] * lin.jacobian
    weights = us[lin.owner] * lin.signs / np.sqrt(bs[lin.owner])
    upd = info["update"] if info["update"] in UPDATES else "simultaneous"
    with np.errstate(divide="ignore"):
        predicted = np.log(spectral_radius(second_moment_matrix(uj, lin.curvature_covariance, weights, info["etas"],
                                                                lin.owner, upd)))
    return SecondMomentGrowth(**info, steps=steps, mean=mean, stderr=stderr, growth_rate=growth,
                              growth_stderr=growth_se, predicted_rate=predicted)


@dataclass(frozen=True, eq=False)
class IterationPaths:
    """Paths of the discrete iteration (:mod:`stochctl.solvers.iteration`) with fixed multipliers.

    Attributes:
        model, update, noise, names, start, players, multipliers, batch_sizes,
        etas, paths, seed: as in :class:`ExplosionSimulation` (``center`` unused).
        steps: iterations K.
        x: (len(etas), paths, K + 1, d) iterates x_k, as computed (a path that
            overflows shows inf or nan from that step on).
    """

    model: str
    update: str
    noise: str
    names: tuple[str, ...]
    start: tuple[float, ...]
    center: tuple[float, ...]
    players: tuple[str, ...]
    multipliers: tuple[float, ...]
    batch_sizes: tuple[int, ...]
    etas: np.ndarray
    paths: int
    seed: int
    steps: int
    x: np.ndarray


def simulate_paths(model, start, etas, *, multipliers=None, update: str = "simultaneous", noise: str = "gaussian",
                   batch_size=None, paths: int = 100, steps: int = 100, seed: int = 0) -> IterationPaths:
    """The iterates x_0..x_K of the discrete iteration for each eta (arguments as in :func:`simulate_explosion`).

    The same paths, step for step, that :func:`simulate_explosion` and
    :func:`simulate_second_moment` summarise (same seeds, same kernel step).
    """
    from ...solvers._limits import check_paths

    steps = _positive_int("steps", steps)
    module, args, _, seeds, info, mdl = _setup(model, start, etas, multipliers, update, noise, batch_size, None,
                                               seed, paths)
    total = len(info["etas"]) * info["paths"]
    check_paths(total, len(mdl.state_names), keep_paths=total, steps=steps)
    out = np.empty((len(info["etas"]), info["paths"], steps + 1, len(mdl.state_names)))
    with np.errstate(over="ignore", invalid="ignore"):
        module.trajectories(*args, seeds, out)
    out.flags.writeable = False
    return IterationPaths(**info, steps=steps, x=out)
