"""Builders of the study's players: the optimizers, the schedulers of the controlled methods and the
frozen builder records (:class:`Players`, :class:`Measured`, :class:`Table`, :class:`GapAware`) that
:class:`~stochctl.study.methods.Method` records hold.

The constants are the controlled methods' settings (module docstring of :mod:`stochctl.study.methods`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import InputError, require_extra
from .optimizers import ControlledSGD, GapAwareLR, PlayerOptimizer

DEFAULT_CURVATURE = "field"
"""The curvature measure of ``sgd+discrete`` and ``adam+discrete`` (module docstring)."""
DISCRETE_TABLE = "local-discrete"
U_MAX = 1.0
CURVATURE_EVERY = 10
"""Measured-curvature methods measure every 10 steps (about 25% of a base step for ``own``, 50% for
``field``, against 130% and 380% at every step: ``benchmarks/bench_curvature.py``) ..."""
RECOMMENDED_EVERY = 20
"""... except the recommended controller (``sgd+discrete``, ``adam+discrete`` and their ``-own``/``-field``
variants), which measures every 20 steps, within 30% of a base step (results/controller-ablation)."""
PAIRING = "min"
"""The recommended controller's pairing of the two players' rates (:class:`~stochctl.trainers.pairing.MinPair`)."""
REMEASURE_GROWTH = 2.0
"""... and sooner when a player's gradient norm has doubled since its last measurement."""
ADAM_BETAS = (0.5, 0.999)
DISPLACEMENTS = ("fd", "jvp", "step", "secant")
"""Displacements of the curvature and field measurements (:func:`measured_scheduler`)."""
TTUR_RATIO = 4.0


def controlled_scheduler(optimizer, *, steps: int, table: str = "local-quadratic"):
    """The policy-table scheduler setting ``lr = eta u*`` for ``optimizer``.

    ``eta`` is the optimiser's initial rate; ``u*`` is read from the table of
    the dimensionless local model at ``tau_remaining = a eta (K - k)`` and
    ``y = |g| / sqrt(a eta s^2)``, estimated online per player by the cSGD
    regression estimator (:class:`~stochctl.policy.RegressionEstimator`) in
    its ``rms`` mode: the curvature a along the EMA-gradient direction, the
    noise s^2 = tr(Sigma) / n and the gradient |g| as root mean squares over
    the player's n parameters, so that y does not grow with n.

    Args:
        optimizer: a torch optimiser.
        steps: the step budget K.
        table: packaged table name or table file.
    """
    from ..policies import LocalPolicy, RegressionEstimator
    from ..trainers.torch_adapter import ControlledLR

    return ControlledLR(optimizer, LocalPolicy(table, total_steps=steps), estimator=RegressionEstimator(mode="rms"))


def measured_scheduler(optimizer, kind: str, curvature: str, *, steps: int, other, u_max: float = U_MAX,
                       every: int = CURVATURE_EVERY, displacement: str = "fd", game=None, role=None):
    """ControlledLR with the discrete-time table or the one-step closed form, curvature on the current batch.

    ``displacement`` (:class:`~stochctl.trainers.torch_adapter.ControlledLR`): ``"fd"`` (infinitesimal
    one-sided difference), ``"jvp"`` (exact, double backward), ``"step"`` (the step about to be taken, at
    the last rate) or ``"secant"`` (the last step, on the current batch).
    ``game``: a :class:`~stochctl.policies.game_policy.GameRule` shared by both players' schedulers
    (``role`` ``"generator"`` or ``"discriminator"``): the rate pair of the two-player model.
    """
    from ..policies import LocalPolicy, OneStepPolicy
    from ..trainers.torch_adapter import ControlledLR

    policy = (LocalPolicy(DISCRETE_TABLE, total_steps=steps, u_max=u_max) if kind == "discrete"
              else OneStepPolicy(u_max=u_max, total_steps=steps))
    method, disp = ("hvp", "fd") if displacement == "jvp" else ("fd", displacement)
    return ControlledLR(optimizer, policy, curvature=curvature, curvature_every=every,
                        remeasure_growth=REMEASURE_GROWTH, method=method, displacement=disp,
                        other_params=list(other.parameters()) if curvature == "field" else None,
                        game=game, role=role)


# --------------------------------------------------------------------------------------
# Builders: the optimisers and schedulers of a method's two players
# --------------------------------------------------------------------------------------

def _sgd(params, lr):
    return require_extra("torch", "study").optim.SGD(params, lr=lr)


def _adam(params, lr):
    return require_extra("torch", "study").optim.Adam(params, lr=lr, betas=ADAM_BETAS)


OPTIMIZERS: dict[str, Callable] = {"sgd": _sgd, "adam": _adam, "csgd": ControlledSGD}
"""Optimisers by name: ``(params, lr) -> optimiser`` (Adam with :data:`ADAM_BETAS`)."""


@dataclass(frozen=True)
class Measured:
    """Both players' scheduler: :class:`~stochctl.trainers.torch_adapter.ControlledLR` on the batch's curvature.

    Attributes:
        policy: ``"discrete"`` (the discrete-time table) or ``"greedy"`` (the one-step closed form).
        curvature: ``"own"`` or ``"field"`` (the field measure needs the other player's gradient).
        u_max: the policy's upper bound of the multiplier.
        every: measure every this many steps (and when the gradient norm doubled).
        displacement: ``"fd"``, ``"jvp"``, ``"step"`` or ``"secant"`` (:func:`measured_scheduler`).
        pairing: None (each player its own rate) or ``"min"`` (both players step at the smaller of
            their two multipliers: :class:`~stochctl.trainers.pairing.MinPair`).
    """

    policy: str = "discrete"
    curvature: str = DEFAULT_CURVATURE
    game: str | None = None
    u_max: float = U_MAX
    every: int = CURVATURE_EVERY
    displacement: str = "fd"
    pairing: str | None = None

    def __post_init__(self):
        if self.policy not in ("discrete", "greedy"):
            raise InputError(f"policy must be 'discrete' or 'greedy'; got {self.policy!r}")
        if self.displacement not in DISPLACEMENTS:
            raise InputError(f"displacement must be one of {DISPLACEMENTS}; got {self.displacement!r}")
        if self.pairing not in (None, "min"):
            raise InputError(f"pairing must be None or 'min'; got {self.pairing!r}")
        if self.pairing is not None and self.game is not None:
            raise InputError(f"give a game rule or a pairing, not both; got game={self.game!r}, "
                             f"pairing={self.pairing!r}")

    @property
    def coupled(self) -> bool:
        return self.curvature == "field"

    @property
    def measure_evals(self) -> int:
        """Gradient evaluations of one player's measurement: 3 (field measure) or 1 (own curvature)."""
        return 3 if self.curvature == "field" else 1

    @property
    def measure_evals_per_step(self) -> float:
        """Nominal gradient evaluations of one player's measurements per step (3 for the field measure,
        1 for the own curvature, every :attr:`every` steps): the v3 horizon's estimate."""
        return self.measure_evals / self.every

    def pair(self):
        """The state both players' schedulers share, or None: the game rule
        (:class:`~stochctl.policies.game_policy.GameRule`) or the pairing (:class:`~stochctl.trainers.pairing.MinPair`)."""
        if self.game is not None:
            from ..policies.game_policy import GameRule

            return GameRule(self.game, u_max=self.u_max)
        if self.pairing == "min":
            from ..trainers.pairing import MinPair

            return MinPair()
        return None

    def player(self, opt, rate, *, discriminator, steps, table, other, pair=None) -> PlayerOptimizer:
        game = pair if self.game is not None else None
        role = None if game is None else ("discriminator" if discriminator else "generator")
        sched = measured_scheduler(opt, self.policy, self.curvature, steps=steps, other=other, u_max=self.u_max,
                                   every=self.every, displacement=self.displacement, game=game, role=role)
        if self.pairing is not None:
            sched = pair.wrap(sched)
        return PlayerOptimizer(opt, sched, base_lr=rate, kind="measured")


@dataclass(frozen=True)
class Table:
    """Scheduler of both players: the continuous-time table of the study (``policy_table``) on regression estimates."""

    reads_table = True

    def player(self, opt, rate, *, discriminator, steps, table, other) -> PlayerOptimizer:
        return PlayerOptimizer(opt, controlled_scheduler(opt, steps=steps, table=table), base_lr=rate, kind="after")


@dataclass(frozen=True)
class GapAware:
    """Scheduler of the discriminator only: :class:`GapAwareLR` (the generator keeps its rate)."""

    def player(self, opt, rate, *, discriminator, steps, table, other) -> PlayerOptimizer:
        if not discriminator:
            return PlayerOptimizer(opt, base_lr=rate)
        return PlayerOptimizer(opt, GapAwareLR(opt), base_lr=rate, kind="loss")


@dataclass(frozen=True)
class Players:
    """Builder of a method's generator and discriminator (:attr:`Method.build`).

    Called as ``build(G, D, rate, steps=K, table=policy_table)``; returns the
    generator's and the discriminator's :class:`PlayerOptimizer`.

    Attributes:
        optimizer: a name of :data:`OPTIMIZERS` or a callable ``(params, lr) -> optimiser``
            (picklable, e.g. a ``functools.partial`` of a torch optimiser, to run in a process pool).
        scheduler: :class:`Measured`, :class:`Table`, :class:`GapAware` or None (constant rate).
        d_ratio: the discriminator's rate over the generator's (the generator's is the swept value).
    """

    optimizer: object = "sgd"
    scheduler: object = None
    d_ratio: float = 1.0

    def __post_init__(self):
        if isinstance(self.optimizer, str) and self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; valid: {', '.join(OPTIMIZERS)} or a callable")
        if not (isinstance(self.optimizer, str) or callable(self.optimizer)):
            raise InputError(f"optimizer must be a name or a callable (params, lr); got {self.optimizer!r}")
        if not self.d_ratio > 0:
            raise InputError(f"d_ratio must be positive; got {self.d_ratio!r}")

    @property
    def coupled(self) -> bool:
        """Whether a player's scheduler needs the other player's gradient (the field measure)."""
        return bool(getattr(self.scheduler, "coupled", False))

    @property
    def reads_table(self) -> bool:
        """Whether the method reads the study's continuous-time table (``policy_table``)."""
        return bool(getattr(self.scheduler, "reads_table", False))

    def __call__(self, G, D, rate: float, *, steps: int, table: str = "local-quadratic"):
        make = OPTIMIZERS[self.optimizer] if isinstance(self.optimizer, str) else self.optimizer
        pair = self.scheduler.pair() if hasattr(self.scheduler, "pair") else None  # shared by both players
        extra = {} if pair is None else {"pair": pair}
        out = []
        for net, other, r, is_d in ((G, D, rate, False), (D, G, self.d_ratio * rate, True)):
            opt = make(list(net.parameters()), r)
            out.append(PlayerOptimizer(opt, base_lr=r) if self.scheduler is None else
                       self.scheduler.player(opt, r, discriminator=is_d, steps=steps, table=table, other=other,
                                             **extra))
        return out[0], out[1]
