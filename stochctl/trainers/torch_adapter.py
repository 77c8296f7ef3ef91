"""PyTorch learning-rate scheduler driven by a policy table.

:class:`ControlledLR` is a ``torch.optim.lr_scheduler.LRScheduler``: at every
``step()`` it sets, for each parameter group g,

    lr_g = eta_g * u*_g,   u*_g = policy(k, estimate_g),

with eta_g the group's initial learning rate and k the number of optimizer
steps taken. The estimator of each group observes the gradients just before
each optimizer step (``Optimizer.register_step_pre_hook``), with the
parameters they were evaluated at, so the ordinary loop

    loss.backward(); optimizer.step(); scheduler.step()

needs no change; the multiplier of step k uses the observations of steps
0..k-1. With Adam (or any optimizer with an ``lr``) the multiplier scales
that optimizer's learning rate. Extra measurements (a Hessian-vector
curvature, a per-sample noise variance) enter through
``scheduler.step(metrics={...})``.

Measured curvature (``curvature="own"`` or ``"field"``, for the
discrete-time policies :class:`~stochctl.policy.OneStepPolicy` and
``LocalPolicy("local-discrete", ...)``): the rate of the step about to be
taken is set from the curvature of that step on the current batch
(:mod:`stochctl.trainers.curvature`), so the scheduler steps between the
gradient and the optimizer step:

    loss = closure(); loss.backward(); scheduler.step(closure=closure); optimizer.step()

``closure()`` recomputes this optimizer's loss on the current batch and
returns it with its graph (without calling ``backward()``). For each
parameter group, with d its step direction and g its gradient, the local
model's inputs are a = d^T H d / (g . d) (the curvature per unit of learning
rate: along x - t d the loss has slope -g . d and curvature d^T H d, so its
linearised minimum is at t = 1 / a; for SGD, d = g and a = d^T H d / |d|^2),
the field measure in the same units (|J[:, p] d| |d| / (g . d)), and the noise from :class:`~stochctl.trainers.curvature.NoiseRatio`;
h = eta a, y^2 = SNR / (h (1 - SNR)), tau_remaining = h (K - k). A step that
does not descend (g . d <= 0, Adam's momentum against the gradient) gets the
fallback multiplier. For a GAN, give each player's scheduler the other
player's parameters (``other_params=``) and, at each step, the other
player's loss closure (``other_closure=``), computed without detaching this
player's output, so the field measure sees the coupling.

On the device, without host synchronisation (curvature modes): the
measurement, the noise ratio, the policy (:func:`~stochctl.policies.controller.
controller_step`) and the rate stay tensors on the parameters' device; the rate
is set as a 0-d tensor where the optimizer accepts one
(:func:`~stochctl.trainers._measured.accepts_tensor_lr`; SGD with ``fused=True``
and Adam with ``capturable=True`` or ``fused=True`` also step without reading
it), and ``scheduler.step`` reads no tensor value. The diagnostics
(:attr:`~ControlledLR.counts`, ``last_*``, ``policy.last``) are kept as tensors
and converted when read. A non-finite loss, gradient or measurement gives the
policy's safe multiplier (``fallback``) by a device-side mask; the count of
such steps is read, and :class:`~stochctl.errors.DivergenceError` raised, when
the diagnostics are read or :meth:`~ControlledLR.check` is called (every
``check_every`` steps if set).

Estimator mode (``curvature=None``): on the parameters' device (``on_device``,
the default for tensors not on the CPU) the estimator folds a flat float64 copy
of the gradients and parameters made on that device, the policy and the rate
stay tensors there, and ``scheduler.step`` reads no tensor value, as in the
curvature modes. Otherwise (the default on the CPU) the regression estimator
reads CPU tensors of one floating type in place through numpy views
(:mod:`stochctl.trainers._views`; its compiled kernels), other tensors through
one flat float64 copy on the CPU, and the rate is a number.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import replace
from typing import Mapping, Sequence


from ..errors import InputError, require_extra
from ..policies.controller import COUNT_NAMES, controller_step
from ..policies.estimators import RegressionEstimator
from ..policies.game_policy import ROLES, GameRule
from ..policies.local_policy import LocalPolicy
from ._diagnostics import Diagnostics
from ._measured import LaggedFlag, accepts_tensor_lr, check_closures, measured_step, set_rates
from ._views import _device_flat, _flat, _grad_views, _param_views, _to_numpy, _to_torch
from .curvature import METHODS, NoiseRatio, directional_curvature

torch = require_extra("torch", "torch")
LRScheduler = torch.optim.lr_scheduler.LRScheduler

METRIC_KEYS = ("a", "s2", "grad_norm")
_TRANSIENT = ("optimizer", "policy", "estimators", "_hook", "_metrics", "_last", "_views", "_noise", "_prev_d",
              "_other", "_init", "_flag", "_lookup", "_pending", "_flags", "game")
CURVATURES = (None, "own", "field")
DISPLACEMENTS = ("fd", "step", "secant")
CURVATURE_EVERY = 20
"""Default measuring interval of the curvature modes: the field measure every 20 steps costs about 15% of a
base step in gradient evaluations (2 + 6 / 20 per step for two players), where every step costs 4 base
steps' worth; the controller ablation (results/controller-ablation) found no loss of quality against
every 10."""


class ControlledLR(Diagnostics, LRScheduler):
    """Scheduler that sets lr = eta * u*(estimates) for every parameter group.

    Args:
        optimizer: the wrapped optimizer (SGD, Adam, ...).
        policy: a :class:`~stochctl.policy.LocalPolicy` (called with each
            group's eta), or any callable ``multiplier = policy(step, stats)``.
        estimator: template estimator, copied for each group (default
            :class:`~stochctl.policy.RegressionEstimator`), or a sequence with
            one estimator per group.
        eta: base learning rate used in the local-model mapping (default: each
            group's initial lr).
        every: observe the gradients and recompute the rates only at steps
            k = 0, every, 2 every, ... (the rates are held in between); a
            larger value divides the overhead.
        last_epoch: as in ``LRScheduler`` (-1 for a fresh start).
        curvature: None (the estimator's curvature, as above), ``"own"``
            (d^T H d of the step about to be taken) or ``"field"`` (also the
            field measure |J[:, p] d| / |d| with the other player), measured
            through ``step(closure=...)`` (module docstring).
        method: ``"fd"`` (default: difference of gradients, one-sided from
            the gradient ``backward()`` computed, one gradient evaluation per
            measurement; it sees the change of the gradient over a finite
            step, ReLU kinks included) or ``"hvp"`` (double backward, exact
            Hessian, about twice the cost); costs in
            :mod:`stochctl.trainers.curvature`.
        displacement: with ``method="fd"``, the displacement of the difference:
            ``"fd"`` (default: infinitesimal, eps = sqrt(machine epsilon) (1 + rms(x))),
            ``"step"`` (the step about to be taken at the group's last rate, lr |d|) or
            ``"secant"`` (back along the last step to where it started, on the current batch:
            the secant of the last step; infinitesimal before a first step).
        curvature_every: measure the curvature at steps 0, k, 2k, ... and
            reuse the last measurement in between (the noise ratio and the
            rate are updated at every step); default :data:`CURVATURE_EVERY` (20).
        remeasure_growth: with ``curvature_every`` > 1, a group whose gradient
            norm exceeds ``remeasure_growth`` times its value at its last
            measurement does not trust the stale curvature (a stale curvature
            must not carry the rate into a region where the iteration explodes:
            there the gradient grows by |1 - eta u a| per step): at that step
            its rate is the policy's safe multiplier (a device-side mask,
            counted as ``fallback``), and the next step measures. The decision
            to measure is read from host memory one step late
            (:class:`~stochctl.trainers._measured.LaggedFlag`) rather than at
            once, since skipping a measurement on a device value would need a
            host synchronisation at every step; computing the measurement at
            every step instead would cost what ``curvature_every`` saves.
            None: only the schedule.
        noise_beta: EMA decay of the noise ratio.
        other_params: the other player's parameters (tensors, a module's
            ``parameters()``, or its optimizer); needed by ``"field"``.
        check_every: curvature modes: read the divergence count (one host
            synchronisation) every this many steps and raise
            :class:`~stochctl.errors.DivergenceError` if a step diverged; None
            (default): only when the diagnostics are read.
        on_device: estimator mode: keep the estimator, the policy and the rate on
            the parameters' device, without host reads (module docstring); None
            (default): on the device for parameters not on the CPU.
        game: curvature modes, opt-in: a :class:`~stochctl.policies.game_policy.GameRule`
            shared with the other player's scheduler; the rate is then the
            rule's rate pair from both players' latest measurements (the
            per-player ``policy`` gives the status and the rate until both
            players have been measured, and during warm-up); the coupling is
            measured with ``method="fd"`` (with ``"hvp"`` the field measure's
            upper bound stands in). None (default): the per-player rate.
        role: with ``game``: ``"generator"`` or ``"discriminator"``.

    Attributes (the diagnostics are kept as tensors and converted when read;
    reading them raises :class:`~stochctl.errors.DivergenceError` once for
    divergences not yet reported):
        estimators: one estimator per parameter group.
        last_estimates: the :class:`Estimate` used at the last step, per group.
        last_multipliers: u* of each group at the last step.
        counts: how often each policy case occurred (``ok``, ``warmup``,
            ``nonconvex``, ``fallback``, table lookups ``clamped``/``nan``),
            summed over groups and steps.
        last_curvature: per group, the last measured (own curvature
            d^T H d / |d|^2, field measure |J[:, p] d| / |d|) (curvature modes).
        curvature_measurements: how many curvature measurements were made.
        divergences: steps whose loss, gradient or measurement was not finite.
    """

    def __init__(self, optimizer, policy, *, estimator=None, eta: float | None = None, every: int = 1,
                 last_epoch: int = -1, curvature: str | None = None, method: str = "fd",
                 curvature_every: int = CURVATURE_EVERY, noise_beta: float = 0.9, other_params=None,
                 remeasure_growth: float | None = 2.0, check_every: int | None = None,
                 on_device: bool | None = None, displacement: str = "fd", game=None, role: str | None = None):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise InputError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
        if not callable(policy):
            raise InputError(f"policy must be a LocalPolicy or a callable policy(step, stats); got {policy!r}")
        self.policy = policy
        n = len(optimizer.param_groups)
        if curvature not in CURVATURES:
            raise InputError(f"curvature must be one of {CURVATURES}; got {curvature!r}")
        if method not in METHODS:
            raise InputError(f"method must be one of {METHODS}; got {method!r}")
        if not isinstance(curvature_every, int) or isinstance(curvature_every, bool) or curvature_every < 1:
            raise InputError(f"curvature_every must be a positive integer; got {curvature_every!r}")
        if remeasure_growth is not None and not (isinstance(remeasure_growth, (int, float))
                                                 and not isinstance(remeasure_growth, bool)
                                                 and math.isfinite(remeasure_growth) and remeasure_growth > 1):
            raise InputError(f"remeasure_growth must be a number above 1 or None; got {remeasure_growth!r}")
        if displacement not in DISPLACEMENTS:
            raise InputError(f"displacement must be one of {DISPLACEMENTS}; got {displacement!r}")
        if displacement != "fd" and method != "fd":
            raise InputError(f"displacement={displacement!r} is a finite difference; it needs method='fd' "
                             f"(method='hvp' is exact, infinitesimal)")
        self.curvature, self.method, self.curvature_every = curvature, method, curvature_every
        self.displacement = displacement
        self.remeasure_growth = remeasure_growth
        if isinstance(other_params, torch.optim.Optimizer):
            other_params = [p for g in other_params.param_groups for p in g["params"]]
        self._other = None if other_params is None else [p for p in other_params if p.requires_grad]
        if curvature == "field" and not self._other:
            raise InputError("curvature='field' needs the other player's parameters: pass other_params= "
                             "(its module's parameters() or its optimizer)")
        if check_every is not None and (not isinstance(check_every, int) or isinstance(check_every, bool)
                                        or check_every < 1):
            raise InputError(f"check_every must be a positive integer or None; got {check_every!r}")
        self.check_every = check_every
        _check_game(game, role, curvature, policy, n)
        self.game, self.role = game, role
        self._noise = [NoiseRatio(noise_beta) for _ in range(n)]
        self._stored = [None] * n  # per group: (own, field) of its last measurement, 0-d float64 tensors
        self._measured_gg = [None] * n  # remeasure_growth^2 |g|^2 of each group at its last measurement
        self._prev_d = [None] * n  # per group: its last step's direction (displacement="secant")
        self._cross = [None] * n  # per group: the reduced coupling of its last measurement (curvature.py)
        self.remeasurements = 0
        self.curvature_measurements = 0
        self._lookup = None
        first = next((p for g in optimizer.param_groups for p in g["params"]), None)
        self._flag = (LaggedFlag(first.device) if curvature is not None and remeasure_growth is not None
                      and first is not None else None)
        self._tally = self._bad = self._bad_first = None
        self._pending, self._flags = [], []  # statuses and divergence flags not yet counted
        self._bad_seen = 0
        self._tensor_lr = [accepts_tensor_lr(optimizer, g) for g in optimizer.param_groups]
        if on_device is not None and not isinstance(on_device, bool):
            raise InputError(f"on_device must be True, False or None; got {on_device!r}")
        self._on_device = curvature is None and first is not None and \
            (on_device if on_device is not None else first.device.type != "cpu")
        self._init = True
        if estimator is None:
            estimator = RegressionEstimator()
        if isinstance(estimator, Sequence):
            if len(estimator) != n:
                raise InputError(f"need one estimator per parameter group ({n}); got {len(estimator)}")
            self.estimators = list(estimator)
        else:
            self.estimators = [estimator.fresh() for _ in range(n)]
        if eta is not None and (not isinstance(eta, (int, float)) or not eta > 0 or not math.isfinite(eta)):
            raise InputError(f"eta must be a positive number; got {eta!r}")
        self.eta = eta
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise InputError(f"every must be a positive integer; got {every!r}")
        self.every = every
        self._metrics = None
        self._views = [{} for _ in range(n)]
        self._last = [None] * n  # per group: (estimate, multiplier) of the last step, in their arrays
        self._counts = {k: 0 for k in COUNT_NAMES} if isinstance(policy, LocalPolicy) else {}
        ref = weakref.ref(self)

        def hook(opt, args, kwargs):
            sched = ref()
            if sched is not None:
                sched._observe()

        self._hook = optimizer.register_step_pre_hook(hook) if curvature is None else None
        super().__init__(optimizer, last_epoch)
        self._init = False

    def remove_hook(self) -> None:
        """Stop observing the optimizer (the learning rates stay as they are)."""
        if self._hook is not None:
            self._hook.remove()

    def _observe(self) -> None:
        """Fold each group's gradient, at the parameters it was evaluated at, into its estimator."""
        if (max(self.last_epoch, 0) + 1) % self.every:
            return  # only the step just before a recomputation is observed
        if self._on_device:
            for est, group in zip(self.estimators, self.optimizer.param_groups):
                est.update(_device_flat(group["params"], grads=True), _device_flat(group["params"], grads=False))
            return
        for est, group, cache in zip(self.estimators, self.optimizer.param_groups, self._views):
            params = group["params"]
            if hasattr(est, "update_parts"):
                xs = _param_views(params, cache)
                gs = None if xs is None else _grad_views(params, cache)
                if gs is not None:
                    est.update_parts(gs, xs)
                    continue
            est.update(_flat(params, grads=True), _flat(params, grads=False))

    def _estimate(self, i: int, params):
        """Group i's estimate at its current parameters."""
        est = self.estimators[i]
        if hasattr(est, "estimate_parts"):
            xs = _param_views(params, self._views[i])
            if xs is not None:
                return est.estimate_parts(xs)
        return est.estimate(_flat(params, grads=False))

    def step(self, *, metrics: Mapping | None = None, closure=None,  # type: ignore[override]
             other_closure=None) -> None:
        """Set the learning rates for the next optimizer step.

        Args:
            metrics: optional measurements overriding the estimator for this
                step: ``a``, ``s2``, ``grad_norm``, each a number (all groups)
                or a sequence with one number per group.
            closure: curvature modes: ``closure()`` returns this optimizer's
                loss on the current batch (scalar tensor with its graph); call
                ``step`` after ``backward()`` and before ``optimizer.step()``.
            other_closure: ``curvature="field"``: the other player's loss on
                the current batch, computed without detaching this player's
                output.
        """
        if self.curvature is not None and not self._init:
            if metrics is not None:
                raise InputError("metrics= is for curvature=None; this scheduler measures the curvature itself")
            check_closures(self, closure, other_closure)
            measured_step(self, closure, other_closure)
            if self.check_every is not None and self.last_epoch % self.check_every == 0:
                self.check()
            return
        if closure is not None or other_closure is not None:
            raise InputError("closure= needs a scheduler with curvature='own' or 'field'; this one has curvature=None")
        if self._on_device and metrics is None and not self._init:
            self._device_step()
            return
        if metrics is not None:
            if not isinstance(metrics, Mapping):
                raise InputError(f"metrics must be a mapping; got {type(metrics).__name__}")
            unknown = [k for k in metrics if k not in METRIC_KEYS]
            if unknown:
                raise InputError(f"unknown metrics {unknown}; valid keys are {list(METRIC_KEYS)}")
        self._metrics = metrics
        try:
            super().step()
        finally:
            self._metrics = None

    def _group_metric(self, key: str, i: int):
        v = self._metrics[key]
        if isinstance(v, Sequence) and not isinstance(v, str):
            if len(v) != len(self.estimators):
                raise InputError(f"metrics[{key!r}] needs one value per group ({len(self.estimators)}); got {len(v)}")
            v = v[i]
        if hasattr(v, "item"):
            v = v.item()
        return float(v)

    def get_lr(self) -> list[float]:
        """lr_g = eta_g * u*(k, estimate_g) for each group g, k = optimizer steps taken."""
        k = max(self.last_epoch, 0)
        if self.curvature is not None:  # only the initial step comes here
            return [group["lr"] for group in self.optimizer.param_groups]
        if k % self.every and not self._metrics:
            return [group["lr"] for group in self.optimizer.param_groups]
        lrs = []
        for i, (group, base) in enumerate(zip(self.optimizer.param_groups, self.base_lrs)):
            stats = self._estimate(i, group["params"])
            if self._metrics:
                over = {key: self._group_metric(key, i) for key in METRIC_KEYS if key in self._metrics}
                stats = replace(stats, **over)
                if all(key in over for key in METRIC_KEYS):
                    stats = replace(stats, ready=True, weights=None)
            base = float(base)
            c = controller_step(self.policy, k, stats, eta=self.eta if self.eta is not None else base,
                                reduce_weights=True)
            self._record(i, stats, c)
            lrs.append(base * float(c.multiplier))
        return lrs

    def _device_step(self) -> None:
        """Estimator mode on the device: the rates as tensors, set without a host read (module docstring)."""
        self._step_count += 1
        self.last_epoch += 1
        k = self.last_epoch
        if k % self.every:
            self._last_lr = [group["lr"] for group in self.optimizer.param_groups]
            return
        lrs = []
        for i, (group, base) in enumerate(zip(self.optimizer.param_groups, self.base_lrs)):
            stats = self.estimators[i].estimate(_device_flat(group["params"], grads=False))
            base = float(base)
            c = controller_step(self.policy, k, stats, eta=self.eta if self.eta is not None else base,
                                reduce_weights=True)
            self._record(i, stats, c)
            lrs.append(base * c.multiplier)
        set_rates(self, lrs)

    def state_dict(self) -> dict:
        """Scheduler state, including each estimator's moving averages (``torch.load``-safe)."""
        self._fold_tally()
        sd = {k: v for k, v in self.__dict__.items() if k not in _TRANSIENT}
        sd["estimators"] = [_to_torch(e.state_dict()) for e in self.estimators]
        sd["noise"] = [n.state_dict() for n in self._noise]
        if isinstance(self.policy, LocalPolicy):
            sd["policy"] = self.policy.config()
        return sd

    def load_state_dict(self, state_dict: Mapping) -> None:
        sd = dict(state_dict)
        ests = sd.pop("estimators", None)
        noise = sd.pop("noise", None)
        if noise is not None:
            for n, st in zip(self._noise, noise):
                n.load_state_dict(st)
        pol = sd.pop("policy", None)
        if ests is None or len(ests) != len(self.estimators):
            raise InputError(f"scheduler state has {None if ests is None else len(ests)} estimator states; "
                             f"this scheduler has {len(self.estimators)} groups")
        if isinstance(self.policy, LocalPolicy) and pol is not None and pol != self.policy.config():
            raise InputError("the scheduler state was saved with a different policy "
                             f"({pol}); this policy is {self.policy.config()}")
        first = next((p for g in self.optimizer.param_groups for p in g["params"]), None)
        for est, st in zip(self.estimators, ests):
            est.load_state_dict(_to_numpy(st))
            if self._on_device and est.state is not None:  # back onto the parameters' device
                est.state = {key: torch.as_tensor(v, dtype=torch.float64, device=first.device)
                             for key, v in est.state.items()}
        self._pending, self._flags = [], []  # the loaded state counted its own steps
        super().load_state_dict(sd)


def _check_game(game, role, curvature, policy, n) -> None:
    if game is None:
        if role is not None:
            raise InputError(f"role= is for a game rule (game=GameRule(...)); got role={role!r} without one")
        return
    if not isinstance(game, GameRule):
        raise InputError(f"game must be a GameRule (stochctl.policies.game_policy) or None; got {game!r}")
    if role not in ROLES:
        raise InputError(f"game= needs role= one of {', '.join(ROLES)}; got {role!r}")
    if curvature is None:
        raise InputError("game= needs a measured curvature: curvature='field' (or 'own', without the coupling)")
    if not isinstance(policy, LocalPolicy):
        raise InputError(f"game= needs a LocalPolicy or OneStepPolicy as the per-player policy; got {policy!r}")
    if n != 1:
        raise InputError(f"game= needs an optimizer with one parameter group per player; got {n}")


__all__ = ["ControlledLR", "directional_curvature"]
