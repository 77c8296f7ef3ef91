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
- ``sgd+discrete`` / ``adam+discrete`` (the recommended controller): SGD / Adam (betas 0.5, 0.999)
  with :class:`~stochctl.policy.ControlledLR` and the discrete-time policy
  ``LocalPolicy("local-discrete", total_steps=K, u_max=1)`` for each player, the curvature of
  the step about to be taken measured on the current batch with the default
  measure :data:`DEFAULT_CURVATURE` (``"field"``, infinitesimal one-sided difference), every
  :data:`RECOMMENDED_EVERY` (20) steps and at any step where the player's
  gradient norm has more than doubled since its last measurement, and both
  players stepping at the smaller of their two multipliers (:data:`PAIRING` ``"min"``,
  :class:`~stochctl.trainers.pairing.MinPair`); the variants ``-own`` and ``-field`` fix the
  measure. The controller ablation (``results/controller-ablation``) chose the pairing, the
  interval, the displacement and ``u_max`` from the data: per-player rates left the ratio of the
  two rates to chance and lost quality at high base rates, the paired rates did not;
- ``sgd+discrete-unpaired`` / ``adam+discrete-unpaired``: the per-player rule as study v2 ran
  it (each player its own multiplier, every :data:`CURVATURE_EVERY` (10) steps); candidates;
- ``sgd+continuous``: the ablation with the continuous-time table
  (``local-quadratic``) and the regression estimator (v1's ``ctl-sgd``);
- ``sgd+greedy``: the ablation with the table-free one-step closed form
  :class:`~stochctl.policy.OneStepPolicy` (``u_max=1``), field measure;
- ``sgd+game`` / ``adam+game``: both players' rates from the two-player discrete model
  (:mod:`stochctl.policies.game_policy`, rule ``"joint"``: one controller choosing the rate pair),
  field measure; ``-nash``: each player its own (rule ``"nash"``); ``-tied``: ``"joint"`` with the
  generator never faster than the discriminator (rule ``"tied"``); ``sgd+game-min`` / ``adam+game-min``:
  both players the smaller of their two one-step rates (rule ``"min"``); ``sgd+min`` / ``adam+min``:
  ``sgd+discrete`` as the ablation ran it (paired, every 10 steps); candidates, selected by name
  (not in the default selection :data:`METHOD_NAMES`);
- ``ctl-sgd`` / ``ctl-adam``: the first study's table methods (continuous
  table, regression estimator), kept so its results folder still reads.

The peers (:data:`PEER_METHODS`, built in :mod:`stochctl.study.peers`; extra ``peers``):
``prodigy``, ``dadapt`` (D-Adaptation Adam), ``dog`` (scored from its iterate
average): learning-rate-free, swept over their ``lr`` multiplier (default 1,
grid ``lr-free``); ``schedulefree`` (AdamW, scored in ``eval()`` mode, own
grid through its default 0.0025); ``extra-adam`` (extragradient Adam, 2
gradient evaluations per player and step, scored from the generator's
average; Adam grid); ``sgd2-d0.1``, ``-d0.3``, ``-d3``, ``-d10``: SGD, the
discriminator's rate :data:`SGD2_RATIOS` times the swept generator's (with
``sgd`` a 2-D sweep, one record per ratio as a record sweeps one value);
``sgd-decay`` (SGD, cosine decay ``eta (1 + cos(pi k / K)) / 2`` to 0 over the
run: the decay most used, with no knob beyond the run length); ``garch`` (no
training: GARCH(1,1)-t fitted on the training returns and simulated; returns
tasks only, one run per seed).

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

Evaluation: the runner scores and samples the generator a method's
``evaluation`` hook yields (:meth:`Method.evaluated`), e.g. an average of the
iterates, and trains nothing when its ``trains`` is False.

Gradient evaluations: the plain step costs one gradient of each player's
loss (2 per step). The measured-curvature methods use the one-sided finite
difference of :mod:`stochctl.trainers.curvature` (``method="fd"``): every call
of a loss closure by a scheduler is one more gradient evaluation (own: 1 per
player and measurement; field: 3), counted by :class:`PlayerOptimizer`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

from ..errors import InputError, require_extra
# the builders and the controlled methods' settings, re-exported: records and tests read them here
from .builders import (ADAM_BETAS, CURVATURE_EVERY, DEFAULT_CURVATURE, DISCRETE_TABLE,  # noqa: F401
                       DISPLACEMENTS, OPTIMIZERS, PAIRING, RECOMMENDED_EVERY, REMEASURE_GROWTH, TTUR_RATIO, U_MAX,
                       GapAware, Measured, Players, Table, _adam, _sgd, controlled_scheduler, measured_scheduler)
from .optimizers import (CSGD_BETA, GAP_EMA, GAP_F_MAX, GAP_H_MIN, GAP_IDEAL_LOSS, GAP_X,  # noqa: F401
                         ControlledSGD, GapAwareLR, PlayerOptimizer, gap_multiplier)
from .peers import DEFAULTS, Cosine, ExtraAdamPlayers, GarchAnchor, LrFree, dog_average, extra_average
from .peers import schedulefree_eval, untrained

FAMILY_NAMES = ("sgd", "adam")
"""Families with a default learning-rate grid (:data:`stochctl.study.protocol.GRIDS`)."""
PEER_FAMILIES = ("lr-free", "schedulefree", "garch")
"""The peers' own families (grids in :data:`stochctl.study.protocol.GRIDS`)."""
SGD2_RATIOS = (0.1, 0.3, 3.0, 10.0)
"""Discriminator rate over generator rate of the ``sgd2-d*`` records (``sgd`` is ratio 1)."""
DEFAULT_RATES = {"sgd": 1e-2, "adam": 2e-4}
"""Documented default of each family's base rate, run untuned by the v3 protocol: SGD's
conventional 1e-2; Adam with betas (0.5, 0.999) at 2e-4, the rate of that setting in DCGAN
(Radford, Metz and Chintala 2016). Records override it with ``default_rate``."""
CONTROLLED_DEFAULTS = {"sgd": 0.1, "adam": 1e-3}
"""Default base rates of the controlled methods (``u_max = 1``: the policy only cuts the base rate, so the
default is a ceiling): SGD 0.1, the rate of study v2 at which ``sgd+discrete`` was within 20% of the best
on both mixtures; Adam 1e-3, ``torch.optim.Adam``'s default."""


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
        candidate: a candidate under evaluation (accepted by ``--methods``, not in the default
            selection :data:`METHOD_NAMES`; listed in :data:`CANDIDATE_METHODS`).
        evaluation: None (score and sample the trained generator) or a picklable callable
            ``(G, opt_g, task, seed) -> context manager`` yielding the generator to score and sample
            (an average of the iterates, an optimiser's evaluation mode, a fitted model).
        trains: False for a method without training (no steps; ``evaluation`` gives its generator)
            and without a rate (its family's sweep is one nominal value).
        default_rate: the documented default of its swept value (base rate or multiplier), run
            untuned by the v3 protocol; None: the family's default (:data:`CONTROLLED_DEFAULTS` for a controlled method, else
            :data:`DEFAULT_RATES`). A method
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
    candidate: bool = False
    evaluation: Callable | None = None
    trains: bool = True
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
        if self.evaluation is not None and not callable(self.evaluation):
            raise InputError(f"method {self.name!r}: evaluation must be None or callable; got {self.evaluation!r}")
        if not self.trains and self.evaluation is None:
            raise InputError(f"method {self.name!r}: a method that does not train needs an evaluation hook")

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
        """What the sweep varies: ``"base learning rate"``, the multiplier's name, or nothing."""
        if not self.has_rate:
            return "nothing (one run per seed)"
        return "base learning rate" if self.base_lr else self.multiplier

    @property
    def has_rate(self) -> bool:
        """Whether it trains and has a base learning rate or a multiplier to sweep (else it runs once per seed)."""
        return bool(self.trains and (self.base_lr or self.multiplier is not None))

    @property
    def default(self) -> float | None:
        """Its documented default swept value: :attr:`default_rate`, else its family's
        (:data:`CONTROLLED_DEFAULTS` if controlled, else :data:`DEFAULT_RATES`), None without a rate or a known default."""
        if not self.has_rate:
            return None
        if self.default_rate is not None:
            return self.default_rate
        return (CONTROLLED_DEFAULTS if self.controlled else DEFAULT_RATES).get(self.family)

    def evaluated(self, G, opt_g, task, seed: int):
        """Context manager yielding the generator to score and sample (:attr:`evaluation`; default G)."""
        return contextlib.nullcontext(G) if self.evaluation is None else self.evaluation(G, opt_g, task, seed)

    def check_task(self, task) -> None:
        """Raise :class:`InputError` if the method cannot run on ``task`` (its evaluation hook's ``check``)."""
        check = getattr(self.evaluation, "check", None)
        if check is not None:
            check(task)

    def trains_like(self, other: "Method") -> bool:
        """Whether runs of ``other`` are runs of this method (same builder, family, evaluations and hooks)."""
        return ((self.build, self.family, self.grad_evals, self.evaluation, self.trains)
                == (other.build, other.family, other.grad_evals, other.evaluation, other.trains))


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
_REC = dict(pairing=PAIRING, every=RECOMMENDED_EVERY)
for _m in (
    Method("sgd", "sgd", _SGD),
    Method("adam", "adam", _ADAM),
    Method("ttur", "adam", Players("adam", d_ratio=TTUR_RATIO), default_rate=1e-4),
    Method("csgd", "sgd", Players("csgd")),
    Method("gap", "adam", Players("adam", GapAware())),
    Method("sgd+discrete", "sgd", Players("sgd", Measured("discrete", **_REC)), controlled=True, baseline="sgd"),
    Method("adam+discrete", "adam", Players("adam", Measured("discrete", **_REC)), controlled=True, baseline="adam"),
    Method("sgd+discrete-own", "sgd", Players("sgd", Measured("discrete", "own", **_REC)), controlled=True,
           baseline="sgd"),
    Method("sgd+discrete-field", "sgd", Players("sgd", Measured("discrete", "field", **_REC)), controlled=True,
           baseline="sgd"),
    Method("adam+discrete-own", "adam", Players("adam", Measured("discrete", "own", **_REC)), controlled=True,
           baseline="adam"),
    Method("adam+discrete-field", "adam", Players("adam", Measured("discrete", "field", **_REC)), controlled=True,
           baseline="adam"),
    Method("sgd+continuous", "sgd", Players("sgd", Table()), controlled=True, baseline="sgd"),
    Method("sgd+greedy", "sgd", Players("sgd", Measured("greedy", "field")), controlled=True, baseline="sgd"),
    Method("sgd+game", "sgd", Players("sgd", Measured("greedy", "field", "joint")), controlled=True,
           baseline="sgd", candidate=True),
    Method("adam+game", "adam", Players("adam", Measured("greedy", "field", "joint")), controlled=True,
           baseline="adam", candidate=True),
    Method("sgd+game-nash", "sgd", Players("sgd", Measured("greedy", "field", "nash")), controlled=True,
           baseline="sgd", candidate=True),
    Method("adam+game-nash", "adam", Players("adam", Measured("greedy", "field", "nash")), controlled=True,
           baseline="adam", candidate=True),
    Method("sgd+game-min", "sgd", Players("sgd", Measured("greedy", "field", "min")), controlled=True,
           baseline="sgd", candidate=True),
    Method("adam+game-min", "adam", Players("adam", Measured("greedy", "field", "min")), controlled=True,
           baseline="adam", candidate=True),
    Method("sgd+game-tied", "sgd", Players("sgd", Measured("greedy", "field", "tied")), controlled=True,
           baseline="sgd", candidate=True),
    Method("adam+game-tied", "adam", Players("adam", Measured("greedy", "field", "tied")), controlled=True,
           baseline="adam", candidate=True),
    Method("sgd+min", "sgd", Players("sgd", Measured("discrete", pairing="min")), controlled=True, baseline="sgd",
           candidate=True),
    Method("adam+min", "adam", Players("adam", Measured("discrete", pairing="min")), controlled=True,
           baseline="adam", candidate=True),
    Method("sgd+discrete-unpaired", "sgd", Players("sgd", Measured("discrete")), controlled=True, baseline="sgd",
           candidate=True),
    Method("adam+discrete-unpaired", "adam", Players("adam", Measured("discrete")), controlled=True,
           baseline="adam", candidate=True),
    Method("ctl-sgd", "sgd", Players("sgd", Table()), controlled=True, legacy=True),
    Method("ctl-adam", "adam", Players("adam", Table()), controlled=True, legacy=True),
):
    register(_m)

METHOD_NAMES = tuple(m.name for m in METHODS.values() if not (m.legacy or m.candidate))
"""The methods of the study (v2), in report order."""
CANDIDATE_METHODS = tuple(m.name for m in METHODS.values() if m.candidate)
"""Candidates under evaluation, accepted by name (the game-aware rates of issue 20)."""

_MULT = "lr multiplier of the estimated step"
_V2 = tuple(METHODS)
for _m in (
    Method("prodigy", "lr-free", LrFree("prodigy"), base_lr=False, multiplier=_MULT, default_rate=DEFAULTS["prodigy"]),
    Method("dadapt", "lr-free", LrFree("dadapt"), base_lr=False, multiplier=_MULT, default_rate=DEFAULTS["dadapt"]),
    Method("dog", "lr-free", LrFree("dog"), base_lr=False, multiplier=_MULT, evaluation=dog_average,
           default_rate=DEFAULTS["dog"]),
    Method("schedulefree", "schedulefree", LrFree("schedulefree"), evaluation=schedulefree_eval,
           default_rate=DEFAULTS["schedulefree"]),
    Method("extra-adam", "adam", ExtraAdamPlayers(ADAM_BETAS), grad_evals=2, evaluation=extra_average,
           default_rate=DEFAULTS["extra-adam"]),
    *(Method(f"sgd2-d{r:g}", "sgd", Players("sgd", d_ratio=r)) for r in SGD2_RATIOS),
    Method("sgd-decay", "sgd", Players("sgd", Cosine())),
    Method("garch", "garch", untrained, trains=False, base_lr=False, evaluation=GarchAnchor()),
):
    register(_m)

PEER_METHODS = tuple(m for m in METHODS if m not in _V2)
"""The peers of study v3 (module docstring), registered after the v2 methods; selected with ``--methods``."""
LEGACY_METHODS = tuple(m.name for m in METHODS.values() if m.legacy)
"""Methods of the first study, still accepted."""
TABLE_METHODS = tuple(m.name for m in METHODS.values() if m.reads_table)
"""Built-in methods reading the continuous-time table of the configuration (``policy_table``)."""
MEASURED = {m.name: (m.build.scheduler.policy, m.build.scheduler.curvature) for m in METHODS.values()
            if isinstance(getattr(m.build, "scheduler", None), Measured)}
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
