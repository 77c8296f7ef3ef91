"""Peers of the study's controlled methods: builders and evaluation hooks (records in :mod:`.methods`).

One optimiser per player, each built from its package's documented defaults
except the swept value (its ``lr``):

- learning-rate-free, the swept value a multiplier of the estimated step
  (documented default 1): Prodigy (``prodigyopt.Prodigy``), D-Adaptation Adam
  (``dadaptation.DAdaptAdam``) and DoG (``dog.DoG``, step
  ``eta_t = c rbar_t / sqrt(sum_{i<=t} |g_i|^2)``) with the polynomial-decay
  iterate average its authors require (``dog.PolynomialDecayAverager``,
  gamma = 8: ``xbar_t = (1 - w_t) xbar_{t-1} + w_t x_t``,
  ``w_t = (1 + gamma) / (t + gamma)``), the generator scored and sampled
  from the average;
- schedule-free AdamW (``schedulefree.AdamWScheduleFree``, swept value its
  base rate, documented default 0.0025), switched to ``eval()`` (parameters
  at the averaged point x) while the generator is scored and back to
  ``train()`` after;
- extragradient Adam (:class:`ExtraAdam`, Gidel et al. 2019, their
  ``ExtraAdam`` of ``optim/extragradient.py``): from the current point w,
  both players extrapolate with Adam on the gradients F(w) at w,
  ``w' = w + A(F(w))``, then update from w with the gradients at w',
  ``w <- w + A(F(w'))``; A is Adam's step (moments updated at both calls,
  ``A(g) = -lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``). Both
  gradients of a step use the step's batch (their code draws a new one for
  the update). The generator is scored and sampled from the exponential
  average of its updated iterates their code keeps (``ema`` 0.999 in their
  configurations), bias-corrected: ``xbar_n = (1 - w_n) xbar_{n-1} + w_n x_n``,
  ``w_n = (1 - b) / (1 - b^n)`` (without the correction the initial point
  keeps weight ``b^n``, 0.86 after 150 steps);
- SGD with a cosine schedule (:class:`Cosine`): ``eta_k = eta (1 + cos(pi k / K)) / 2``
  over the run's K steps (``torch.optim.lr_scheduler.CosineAnnealingLR``);
- ``garch``: no training; a GARCH(1,1) with standardised Student-t innovations
  (``arch``) fitted on the task's training returns and simulated (:class:`GarchSampler`).

The ``evaluation`` hooks have the signature of :attr:`Method.evaluation
<stochctl.study.methods.Method.evaluation>`: ``(G, opt_g, task, seed)`` -> a
context manager yielding the generator the runner scores and samples.

References: K. Mishchenko, A. Defazio, "Prodigy", ICML 2024; A. Defazio,
K. Mishchenko, "Learning-rate-free learning by D-adaptation", ICML 2023;
M. Ivgi, O. Hinder, Y. Carmon, "DoG is SGD's best friend", ICML 2023;
A. Defazio et al., "The road less scheduled", NeurIPS 2024; G. Gidel et al.,
"A variational inequality perspective on generative adversarial networks", ICLR 2019.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, require_extra
from .optimizers import PlayerOptimizer
from .tasks import ReturnsTask, stream_seed

PEERS_EXTRA = "peers"
LR_FREE = {"prodigy": ("prodigyopt", "Prodigy"), "dadapt": ("dadaptation", "DAdaptAdam"),
           "dog": ("dog", "DoG"), "schedulefree": ("schedulefree", "AdamWScheduleFree")}
"""Package module and class of each learning-rate-free peer (constructed with its defaults but ``lr``)."""
DEFAULTS = {"prodigy": 1.0, "dadapt": 1.0, "dog": 1.0, "schedulefree": 0.0025, "extra-adam": 1e-3}
"""Documented default ``lr`` of each peer (the packages' signatures; ExtraAdam's class default)."""
DOG_GAMMA = 8.0
EXTRA_EMA = 0.999
GARCH_BURN = 3000
"""Steps simulated before each window: the start's memory decays as (alpha + beta)^t, 0.9944^3000 ~ 5e-8 on sp500."""


# --------------------------------------------------------------------------------------
# Learning-rate-free peers
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LrFree:
    """Builder of a learning-rate-free peer: one optimiser per player, ``lr`` the swept value.

    Attributes:
        kind: a key of :data:`LR_FREE`.
    """

    kind: str

    def __post_init__(self):
        if self.kind not in LR_FREE:
            raise InputError(f"unknown learning-rate-free peer {self.kind!r}; valid: {', '.join(LR_FREE)}")

    def optimizer(self, params, lr: float):
        module, cls = LR_FREE[self.kind]
        make = getattr(require_extra(module, PEERS_EXTRA), cls)
        if self.kind != "dog":
            opt = make(params, lr=lr)
            if self.kind == "schedulefree":
                opt.train()  # created in eval mode; steps need train mode
            return opt
        log = logging.getLogger("dog.dog")  # DoG logs a warning for any lr but 1: the sweep varies it on purpose
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            return make(params, lr=lr)
        finally:
            log.setLevel(level)

    def __call__(self, G, D, rate: float, *, steps: int, table: str = "local-quadratic"):
        opt_g, opt_d = self.optimizer(list(G.parameters()), rate), self.optimizer(list(D.parameters()), rate)
        if self.kind == "dog":
            averager = require_extra("dog", PEERS_EXTRA).PolynomialDecayAverager(G, gamma=DOG_GAMMA)
            return PlayerOptimizer(opt_g, averager, base_lr=rate, kind="after"), PlayerOptimizer(opt_d, base_lr=rate)
        return PlayerOptimizer(opt_g, base_lr=rate), PlayerOptimizer(opt_d, base_lr=rate)


def dog_average(G, opt_g, task, seed):
    """Evaluation hook of ``dog``: the generator's polynomial-decay average (before any step: G)."""
    avg = opt_g.scheduler
    return contextlib.nullcontext(avg.averaged_model if avg.t > 1 else G)


@contextlib.contextmanager
def schedulefree_eval(G, opt_g, task, seed):
    """Evaluation hook of ``schedulefree``: the generator's optimiser in ``eval()`` mode, then ``train()``.

    The training point y is restored bit for bit after ``train()`` (its interpolation back from x
    rounds), so that evaluating does not change the run.
    """
    torch = require_extra("torch", "study")
    params = list(G.parameters())
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]
    opt_g.optimizer.eval()
    try:
        yield G
    finally:
        opt_g.optimizer.train()
        with torch.no_grad():
            for p, y in zip(params, saved):
                p.copy_(y)


# --------------------------------------------------------------------------------------
# Extragradient Adam
# --------------------------------------------------------------------------------------

class EMAverage:
    """Bias-corrected exponential average of a module's parameters, kept in a copy of the module.

    ``xbar_n = (1 - w_n) xbar_{n-1} + w_n x_n`` with ``w_n = (1 - beta) / (1 - beta^n)`` (w_1 = 1).
    """

    def __init__(self, module, beta: float = EXTRA_EMA):
        if not 0 <= beta < 1:
            raise InputError(f"EMA decay must be in [0, 1); got {beta!r}")
        self.model = copy.deepcopy(module)
        self.beta = float(beta)
        self.count = 0

    def update(self, module) -> None:
        torch = require_extra("torch", "study")
        self.count += 1
        w = (1.0 - self.beta) / (1.0 - self.beta ** self.count)
        with torch.no_grad():
            for a, p in zip(self.model.parameters(), module.parameters()):
                a.mul_(1.0 - w).add_(p.detach(), alpha=w)


class _AdamState:
    """Adam's moments of one player and Gidel et al.'s step direction ``A(g)``."""

    def __init__(self, params, lr, betas, eps):
        torch = require_extra("torch", "study")
        self.params, self.lr, self.betas, self.eps = list(params), float(lr), tuple(betas), float(eps)
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def direction(self, grads):
        """Update the moments with ``grads``; return ``-lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)``."""
        b1, b2 = self.betas
        self.t += 1
        size = self.lr * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        out = []
        for m, v, g in zip(self.m, self.v, grads):
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            out.append(-size * m / (v.sqrt() + self.eps))
        return out


class ExtraAdam:
    """Extragradient Adam for both players (module docstring), stepped through two player faces.

    The runner steps the discriminator first: :meth:`discriminator_step` only
    keeps its gradient at the current point w. The generator's gradient is then
    taken at the same w (the discriminator has not moved), and
    :meth:`generator_step` extrapolates both players, takes both gradients at
    w' from the runner's loss closures (the generator's loss and the
    discriminator's, on the step's batch), updates both players from w and
    folds the generator into its average. Gradient evaluations: 2 per player
    and step.

    Args:
        G, D: generator and discriminator modules.
        lr: both players' rate.
        betas, eps: Adam's.
        ema: decay of the generator's average (:class:`EMAverage`).
    """

    def __init__(self, G, D, lr: float, *, betas, eps: float = 1e-8, ema: float = EXTRA_EMA):
        self.g = _AdamState(G.parameters(), lr, betas, eps)
        self.d = _AdamState(D.parameters(), lr, betas, eps)
        self.G = G
        self.average = EMAverage(G, ema)
        self._d_grad = None

    def discriminator_step(self) -> None:
        self._d_grad = [p.grad.detach().clone() for p in self.d.params]

    def generator_step(self, closure, other_closure) -> None:
        torch = require_extra("torch", "study")
        if self._d_grad is None:
            raise RuntimeError("ExtraAdam: the discriminator's step must come before the generator's")
        players = (self.g, self.d)
        grads = ([p.grad.detach().clone() for p in self.g.params], self._d_grad)
        with torch.no_grad():
            saved = [[p.detach().clone() for p in s.params] for s in players]
            for s, g in zip(players, grads):
                for p, u in zip(s.params, s.direction(g)):
                    p.add_(u)
        with torch.enable_grad():
            half = (torch.autograd.grad(closure(), self.g.params),
                    torch.autograd.grad(other_closure(), self.d.params))
        with torch.no_grad():
            for s, x0, g in zip(players, saved, half):
                for p, x, u in zip(s.params, x0, s.direction(g)):
                    p.copy_(x + u)
        self._d_grad = None
        self.average.update(self.G)


class _ExtraFace:
    """One player's face of :class:`ExtraAdam` (what :class:`PlayerOptimizer` steps)."""

    def __init__(self, extra: ExtraAdam, generator: bool):
        self.extra, self.generator = extra, generator
        self.state = extra.g if generator else extra.d
        self.param_groups = [{"lr": self.state.lr}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.state.params:
            p.grad = None

    def step(self, closure=None, other_closure=None) -> None:
        if self.generator:
            self.extra.generator_step(closure, other_closure)
        else:
            self.extra.discriminator_step()


@dataclass(frozen=True)
class ExtraAdamPlayers:
    """Builder of ``extra-adam``: both faces of one :class:`ExtraAdam` (Adam's betas of the study)."""

    betas: tuple = (0.5, 0.999)
    coupled = True  # the runner keeps the discriminator's gradient on for the generator's closures

    def __call__(self, G, D, rate: float, *, steps: int, table: str = "local-quadratic"):
        extra = ExtraAdam(G, D, rate, betas=self.betas)
        return (PlayerOptimizer(_ExtraFace(extra, True), base_lr=rate, kind="closures"),
                PlayerOptimizer(_ExtraFace(extra, False), base_lr=rate, kind="closures"))


def extra_average(G, opt_g, task, seed):
    """Evaluation hook of ``extra-adam``: the generator's average (before any update: G)."""
    avg = opt_g.optimizer.extra.average
    return contextlib.nullcontext(avg.model if avg.count else G)


# --------------------------------------------------------------------------------------
# SGD with a decaying rate
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cosine:
    """Scheduler of both players: cosine decay to 0 over the run, ``eta_k = eta (1 + cos(pi k / K)) / 2``."""

    def player(self, opt, rate, *, discriminator, steps, table, other) -> PlayerOptimizer:
        torch = require_extra("torch", "study")
        return PlayerOptimizer(opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps), base_lr=rate,
                               kind="after")


# --------------------------------------------------------------------------------------
# GARCH(1,1)-t anchor
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GarchFit:
    """GARCH(1,1) with standardised Student-t innovations: ``r_t = mu + sigma_t e_t``,
    ``sigma_t^2 = omega + alpha (r_{t-1} - mu)^2 + beta sigma_{t-1}^2``, ``e_t ~ t_nu sqrt((nu - 2) / nu)``."""

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float

    @property
    def variance(self) -> float:
        """Unconditional variance ``omega / (1 - alpha - beta)``."""
        return self.omega / (1.0 - self.alpha - self.beta)

    def simulate(self, n: int, length: int, rng, burn: int = GARCH_BURN, *, with_variance: bool = False):
        """``n`` independent windows (n, length) of the stationary process, each after ``burn`` steps
        started at the unconditional variance; with ``with_variance`` also the sigma_t^2 (n, length)."""
        if not self.alpha + self.beta < 1:
            raise InputError(f"GARCH fit is not covariance-stationary (alpha + beta = {self.alpha + self.beta:.4f})")
        s2 = np.full(n, self.variance)
        eps_prev = np.zeros(n)
        out, var = np.empty((n, length)), np.empty((n, length))
        scale = math.sqrt((self.nu - 2.0) / self.nu)
        for t in range(burn + length):
            s2 = self.omega + self.alpha * eps_prev ** 2 + self.beta * s2 if t else s2
            eps_prev = np.sqrt(s2) * rng.standard_t(self.nu, n) * scale
            if t >= burn:
                out[:, t - burn], var[:, t - burn] = self.mu + eps_prev, s2
        return (out, var) if with_variance else out


_FITS: dict = {}


def fit_garch(returns) -> GarchFit:
    """Maximum-likelihood GARCH(1,1)-t of ``returns`` (``arch.arch_model``, constant mean), cached by data."""
    arr = np.ascontiguousarray(returns, dtype=np.float64)
    key = hashlib.sha256(arr.tobytes()).hexdigest()
    if key not in _FITS:
        arch = require_extra("arch", "study")
        res = arch.arch_model(arr, mean="Constant", vol="GARCH", p=1, q=1, dist="t").fit(disp="off")
        p = res.params
        _FITS[key] = GarchFit(float(p["mu"]), float(p["omega"]), float(p["alpha[1]"]), float(p["beta[1]"]),
                              float(p["nu"]))
    return _FITS[key]


class GarchSampler:
    """The ``garch`` anchor as a generator: ``sampler(z)`` -> len(z) simulated windows (float32 tensor).

    The latents only set how many windows; the draws come from the sampler's own
    stream, seeded from the task and the run's seed.
    """

    def __init__(self, fit: GarchFit, length: int, seed: int):
        self.fit, self.length, self.rng = fit, int(length), np.random.default_rng(seed)

    def __call__(self, z):
        torch = require_extra("torch", "study")
        return torch.as_tensor(self.fit.simulate(int(z.shape[0]), self.length, self.rng), dtype=torch.float32)


@dataclass(frozen=True)
class GarchAnchor:
    """Evaluation hook of ``garch``: the fitted GARCH of ``task``'s training returns (returns tasks only)."""

    def check(self, task) -> None:
        """Refuse a task without returns (:meth:`Method.check_task <stochctl.study.methods.Method.check_task>`)."""
        if not isinstance(task, ReturnsTask):
            raise InputError(f"method 'garch' needs a returns task (sp500 or data); got {task.name!r}")

    def __call__(self, G, opt_g, task, seed):
        self.check(task)
        fit = fit_garch(task.series()[0])
        return contextlib.nullcontext(GarchSampler(fit, task.data_dim, stream_seed(task.name, "garch", seed)))


class _Idle:
    """An optimiser that never moves (methods that do not train)."""

    def __init__(self):
        self.param_groups = [{"lr": 1.0}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def step(self) -> None:
        pass


def untrained(G, D, rate: float, *, steps: int, table: str = "local-quadratic"):
    """Builder of the methods that do not train: two idle players."""
    return PlayerOptimizer(_Idle(), base_lr=rate), PlayerOptimizer(_Idle(), base_lr=rate)
