"""Optimisation methods compared by the study: one :class:`Method` record each, in :data:`METHODS`.

A record says how the method's two players are built (:attr:`Method.build`),
which learning-rate sweep it shares (its family), whether the swept value is a
base learning rate (or which multiplier it is), whether the method is
controlled (the report's groups) and its gradient evaluations per step. Every
part of the study reads these fields; none reads a method's name. Adding a
method is one :func:`register` call (README, "Empirical study").

The built-in methods take one base learning rate ``eta``:

- ``sgd``: constant-rate SGD, ``x <- x - eta g`` for both players;
- ``adam``: Adam with betas (0.5, 0.999), rate ``eta`` for both players;
- ``ttur``: Adam with betas (0.5, 0.999), generator rate ``eta``,
  discriminator rate ``4 eta`` (two time-scale update rule);
- ``csgd``: Li, Tai and E's controlled SGD (:class:`ControlledSGD`),
  ``x_i <- x_i - eta u_i g_i`` with the per-coordinate moment control
  ``u_i = min(1, 2 m_i / (eta Sigma_i))`` (m the excess loss);
- ``gap``: Adam (betas 0.5, 0.999) at ``eta`` for both players, the
  discriminator's rate multiplied by the gap-aware scheduling function of
  Hazimeh and Ponomareva (:class:`GapAwareLR`);
- ``sgd+discrete`` / ``adam+discrete``: SGD / Adam (betas 0.5, 0.999) with
  :class:`~stochctl.policy.ControlledLR` and the discrete-time policy
  ``LocalPolicy("local-discrete", total_steps=K, u_max=1)``, the curvature of
  the step about to be taken measured on the current batch with the default
  measure :data:`DEFAULT_CURVATURE` (``"field"``), every
  :data:`CURVATURE_EVERY` (10) steps and at any step where the player's
  gradient norm has more than doubled since its last measurement; the
  variants ``-own`` and ``-field`` fix the measure;
- ``sgd+continuous``: the ablation with the continuous-time table
  (``local-quadratic``) and the regression estimator (v1's ``ctl-sgd``);
- ``sgd+greedy``: the ablation with the table-free one-step closed form
  :class:`~stochctl.policy.OneStepPolicy` (``u_max=1``), field measure;
- ``ctl-sgd`` / ``ctl-adam``: the first study's table methods (continuous
  table, regression estimator), kept so its results folder still reads.

``u_max = 1`` for every controlled method: the policy may cut the base rate,
never raise it, so a controlled method at base rate eta never steps further
than its base optimiser at eta. The default measure is ``"field"`` because a
player's own curvature cannot see an explosion that comes from the coupling
of the two players (the generator's objective is concave along its own
gradient in the Dirac GAN, DESIGN section 4b), while the field measure, the
change of the whole gradient field per unit step, recovers the GDA explosion
thresholds of the quadratic game; the ``-own`` variants measure what it costs.

Families (for the learning-rate sweeps): ``sgd``, ``csgd`` and every
``sgd+...`` (and ``ctl-sgd``) share the SGD sweep; ``adam``, ``ttur``,
``gap`` and every ``adam+...`` (and ``ctl-adam``) the Adam sweep.

Twins: methods whose records train alike (:meth:`Method.trains_like`: the
same builder, family and gradient evaluations) are one configuration; the
study trains it once and records the run under both names
(:func:`twin_methods`). While the default measure is ``"field"``,
``sgd+discrete`` and ``sgd+discrete-field`` (and the Adam pair) are such a
pair, and so are the first study's ``ctl-sgd`` and ``sgd+continuous``.

Gradient evaluations: the plain step costs one gradient of each player's
loss (2 per step). The measured-curvature methods use the one-sided finite
difference of :mod:`stochctl.trainers.curvature` (``method="fd"``): every call
of a loss closure by a scheduler is one more gradient evaluation (own: 1 per
player and measurement; field: 3), counted by :class:`PlayerOptimizer`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from ..errors import InputError, require_extra
from .optimizers import (CSGD_BETA, GAP_EMA, GAP_F_MAX, GAP_H_MIN, GAP_IDEAL_LOSS, GAP_X,  # noqa: F401
                         ControlledSGD, GapAwareLR, PlayerOptimizer, gap_multiplier)

FAMILY_NAMES = ("sgd", "adam")
"""Families with a default learning-rate grid (:data:`stochctl.study.protocol.GRIDS`)."""
DEFAULT_CURVATURE = "field"
"""The curvature measure of ``sgd+discrete`` and ``adam+discrete`` (module docstring)."""
DISCRETE_TABLE = "local-discrete"
U_MAX = 1.0
CURVATURE_EVERY = 10
"""Measured-curvature methods measure every 10 steps (about 25% of a base step for ``own``, 50% for
``field``, against 130% and 380% at every step: ``benchmarks/bench_curvature.py``) ..."""
REMEASURE_GROWTH = 2.0
"""... and sooner when a player's gradient norm has doubled since its last measurement."""
ADAM_BETAS = (0.5, 0.999)
TTUR_RATIO = 4.0
DEFAULT_RATES = {"sgd": 1e-2, "adam": 2e-4}
"""Documented default of each family's base rate, run untuned by the v3 protocol: SGD's
conventional 1e-2; Adam with betas (0.5, 0.999) at 2e-4, the rate of that setting in DCGAN
(Radford, Metz and Chintala 2016). Records override it with ``default_rate``."""
CONTROLLED_DEFAULTS = {"sgd": 0.1, "adam": 1e-3}
"""Default base rates of the controlled methods (``u_max = 1``: the policy only cuts the base rate, so the
default is a ceiling): SGD 0.1, the rate of study v2 at which ``sgd+discrete`` was within 20% of the best
on both mixtures; Adam 1e-3, ``torch.optim.Adam``'s default."""


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


def measured_scheduler(optimizer, kind: str, curvature: str, *, steps: int, other):
    """ControlledLR with the discrete-time table or the one-step closed form, curvature on the current batch."""
    from ..policies import LocalPolicy, OneStepPolicy
    from ..trainers.torch_adapter import ControlledLR

    policy = (LocalPolicy(DISCRETE_TABLE, total_steps=steps, u_max=U_MAX) if kind == "discrete"
              else OneStepPolicy(u_max=U_MAX, total_steps=steps))
    return ControlledLR(optimizer, policy, curvature=curvature, curvature_every=CURVATURE_EVERY,
                        remeasure_growth=REMEASURE_GROWTH,
                        other_params=list(other.parameters()) if curvature == "field" else None)


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
    """

    policy: str = "discrete"
    curvature: str = DEFAULT_CURVATURE

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
        1 for the own curvature, every :data:`CURVATURE_EVERY` steps): the v3 horizon's estimate."""
        return self.measure_evals / CURVATURE_EVERY

    def player(self, opt, rate, *, discriminator, steps, table, other) -> PlayerOptimizer:
        return PlayerOptimizer(opt, measured_scheduler(opt, self.policy, self.curvature, steps=steps, other=other),
                               base_lr=rate, kind="measured")


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
        out = []
        for net, other, r, is_d in ((G, D, rate, False), (D, G, self.d_ratio * rate, True)):
            opt = make(list(net.parameters()), r)
            out.append(PlayerOptimizer(opt, base_lr=r) if self.scheduler is None else
                       self.scheduler.player(opt, r, discriminator=is_d, steps=steps, table=table, other=other))
        return out[0], out[1]


# --------------------------------------------------------------------------------------
# Records and the registry
# --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Method:
    """A method of the study.

    Attributes:
        name: its name (``--methods``, the CSV's ``method`` column).
        family: the learning-rate sweep it shares (a family of :data:`FAMILY_NAMES`, or one the
            study's ``sweeps`` give).
        build: ``build(G, D, rate, *, steps, table) -> (generator, discriminator)``
            :class:`PlayerOptimizer` pair, ``rate`` the swept value (e.g. :class:`Players`).
        controlled: sets its rate from the control policy (the report compares controlled methods
            with the others, the baselines).
        baseline: the uncontrolled method it adds its control to (the verdict compares their
            divergence), or None.
        base_lr: whether the swept value is a base learning rate; if not, ...
        multiplier: ... the name of the multiplier the sweep varies instead.
        grad_evals: gradient evaluations of each player's loss per step, besides the scheduler's
            measurements (the runner counts those as they happen).
        legacy: a method of the first study (accepted, not in :data:`METHOD_NAMES`).
        default_rate: the documented default of its swept value (base rate or multiplier), run
            untuned by the v3 protocol; None: the family's default (:data:`DEFAULT_RATES`). A method
            with neither a base learning rate nor a multiplier (``base_lr=False``, ``multiplier=None``)
            has no rate: it runs once per seed.
    """

    name: str
    family: str
    build: Callable
    controlled: bool = False
    baseline: str | None = None
    base_lr: bool = True
    multiplier: str | None = None
    grad_evals: int = 1
    legacy: bool = False
    default_rate: float | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip() or "," in self.name:
            raise InputError(f"a method name must be a non-empty string without commas; got {self.name!r}")
        if not isinstance(self.family, str) or not self.family:
            raise InputError(f"method {self.name!r}: family must be a non-empty string; got {self.family!r}")
        if not callable(self.build):
            raise InputError(f"method {self.name!r}: build must be callable; got {self.build!r}")
        if self.base_lr and self.multiplier is not None:
            raise InputError(f"method {self.name!r}: give a multiplier only when there is no base learning "
                             f"rate (base_lr={self.base_lr!r}, multiplier={self.multiplier!r})")
        if self.default_rate is not None and not (isinstance(self.default_rate, (int, float))
                                                  and 0 < self.default_rate < float("inf")):
            raise InputError(f"method {self.name!r}: default_rate must be a positive finite number or None; "
                             f"got {self.default_rate!r}")
        if not isinstance(self.grad_evals, int) or self.grad_evals < 1:
            raise InputError(f"method {self.name!r}: grad_evals must be a positive integer; got {self.grad_evals!r}")

    @property
    def coupled(self) -> bool:
        """Whether the generator's step needs the discriminator's gradient too (``build.coupled``)."""
        return bool(getattr(self.build, "coupled", False))

    @property
    def reads_table(self) -> bool:
        """Whether it reads the study's continuous-time table (``build.reads_table``)."""
        return bool(getattr(self.build, "reads_table", False))

    @property
    def swept(self) -> str:
        """What the sweep varies: ``"base learning rate"``, the multiplier's name, or ``"nothing"``."""
        return "base learning rate" if self.base_lr else self.multiplier or "nothing"

    @property
    def has_rate(self) -> bool:
        """Whether it has a base learning rate or a multiplier to sweep (else it runs once per seed)."""
        return bool(self.base_lr or self.multiplier is not None)

    @property
    def default(self) -> float | None:
        """Its documented default swept value: :attr:`default_rate`, else its family's
        (:data:`DEFAULT_RATES`), None without a rate or a known default."""
        if not self.has_rate:
            return None
        return self.default_rate if self.default_rate is not None else DEFAULT_RATES.get(self.family)

    def trains_like(self, other: "Method") -> bool:
        """Whether runs of ``other`` are runs of this method (same builder, family and evaluations)."""
        return (self.build, self.family, self.grad_evals) == (other.build, other.family, other.grad_evals)


METHODS: dict[str, Method] = {}
"""The registry: name -> :class:`Method`, in report order."""


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (a name already there is refused); return it."""
    if not isinstance(method, Method):
        raise InputError(f"register() takes a Method record; got {type(method).__name__}")
    if method.name in METHODS:
        raise InputError(f"method {method.name!r} is already registered")
    if method.baseline is not None:
        get_method(method.baseline)
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The record of ``name``, or :class:`InputError` naming the valid methods."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown method {name!r}; valid methods: {', '.join(METHODS)}") from None


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method, else raise :class:`InputError`."""
    get_method(name)
    return name


_SGD, _ADAM = Players("sgd"), Players("adam")
for _m in (
    Method("sgd", "sgd", _SGD),
    Method("adam", "adam", _ADAM),
    Method("ttur", "adam", Players("adam", d_ratio=TTUR_RATIO), default_rate=1e-4),
    Method("csgd", "sgd", Players("csgd")),
    Method("gap", "adam", Players("adam", GapAware())),
    Method("sgd+discrete", "sgd", Players("sgd", Measured("discrete")), controlled=True, baseline="sgd",
           default_rate=CONTROLLED_DEFAULTS["sgd"]),
    Method("adam+discrete", "adam", Players("adam", Measured("discrete")), controlled=True, baseline="adam",
           default_rate=CONTROLLED_DEFAULTS["adam"]),
    Method("sgd+discrete-own", "sgd", Players("sgd", Measured("discrete", "own")), controlled=True,
           baseline="sgd", default_rate=CONTROLLED_DEFAULTS["sgd"]),
    Method("sgd+discrete-field", "sgd", Players("sgd", Measured("discrete", "field")), controlled=True,
           baseline="sgd", default_rate=CONTROLLED_DEFAULTS["sgd"]),
    Method("adam+discrete-own", "adam", Players("adam", Measured("discrete", "own")), controlled=True,
           baseline="adam", default_rate=CONTROLLED_DEFAULTS["adam"]),
    Method("adam+discrete-field", "adam", Players("adam", Measured("discrete", "field")), controlled=True,
           baseline="adam", default_rate=CONTROLLED_DEFAULTS["adam"]),
    Method("sgd+continuous", "sgd", Players("sgd", Table()), controlled=True, baseline="sgd",
           default_rate=CONTROLLED_DEFAULTS["sgd"]),
    Method("sgd+greedy", "sgd", Players("sgd", Measured("greedy", "field")), controlled=True, baseline="sgd",
           default_rate=CONTROLLED_DEFAULTS["sgd"]),
    Method("ctl-sgd", "sgd", Players("sgd", Table()), controlled=True, legacy=True),
    Method("ctl-adam", "adam", Players("adam", Table()), controlled=True, legacy=True),
):
    register(_m)

METHOD_NAMES = tuple(m.name for m in METHODS.values() if not m.legacy)
"""The methods of the study (v2), in report order."""
LEGACY_METHODS = tuple(m.name for m in METHODS.values() if m.legacy)
"""Methods of the first study, still accepted."""
TABLE_METHODS = tuple(m.name for m in METHODS.values() if m.reads_table)
"""Built-in methods reading the continuous-time table of the configuration (``policy_table``)."""
MEASURED = {m.name: (m.build.scheduler.policy, m.build.scheduler.curvature) for m in METHODS.values()
            if isinstance(m.build.scheduler, Measured)}
"""Built-in methods whose rate is set from the curvature measured on the current batch: (policy, measure)."""


class _FieldView(Mapping):
    """Read-only ``{name: getattr(record, field)}`` over the registry, registrations included."""

    def __init__(self, field: str):
        self._field = field

    def __getitem__(self, name):
        if name not in METHODS:
            raise KeyError(name)
        return getattr(METHODS[name], self._field)

    def __iter__(self):
        return iter(METHODS)

    def __len__(self):
        return len(METHODS)


METHOD_FAMILY: Mapping[str, str] = _FieldView("family")
"""``{method: family}`` of every registered method."""


def is_controlled(method: str) -> bool:
    """Whether ``method`` sets its rate from the control policy (its record's ``controlled``)."""
    return get_method(method).controlled


def twin_methods(methods) -> dict[str, str]:
    """``{method: earlier method}`` for selected methods that train exactly like an earlier one.

    Two methods whose records train alike (:meth:`Method.trains_like`) are one
    configuration: the study runs it once and records the run under both names.
    """
    methods = list(methods)
    out = {}
    for i, m in enumerate(methods):
        for c in methods[:i]:
            if c not in out and get_method(c).trains_like(get_method(m)):
                out[m] = c
                break
    return out


def build_optimizers(method, G, D, lr: float, *, steps: int,
                     table: str = "local-quadratic") -> tuple[PlayerOptimizer, PlayerOptimizer]:
    """Generator and discriminator optimisers of ``method`` at swept value ``lr``.

    Args:
        method: a registered method's name or a :class:`Method`.
        G, D: generator and discriminator modules.
        lr: the base learning rate eta (> 0), or the method's multiplier.
        steps: the step budget (the controlled methods' horizon).
        table: the continuous-time policy table of ``sgd+continuous``, ``ctl-sgd`` and ``ctl-adam``.
    """
    require_extra("torch", "study")
    record = method if isinstance(method, Method) else get_method(method)
    if not lr > 0:
        raise InputError(f"{record.swept} must be positive; got {lr!r}")
    return record.build(G, D, lr, steps=steps, table=table)
