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

Cost: for CPU tensors of one floating type (float32 or float64) the
regression estimator reads the parameters and gradients in place through
numpy views of the tensors (kept while the parameters' storage stays the
same), so a step makes no copy of them: one pass folds the observation into
the moments, one reads the estimate. Other tensors (GPU, half precision,
sparse gradients) and other estimators get one flat float64 copy on the CPU.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import replace
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError, require_extra
from ..policies.estimators import STATUS_NAMES, Estimate, RegressionEstimator
from ..policies.local_policy import LocalPolicy, reduce_multiplier
from .curvature import METHODS, NoiseRatio, _measure, _sumsq, step_direction

torch = require_extra("torch", "torch")
LRScheduler = torch.optim.lr_scheduler.LRScheduler

METRIC_KEYS = ("a", "s2", "grad_norm")
_TRANSIENT = ("optimizer", "policy", "estimators", "_hook", "_metrics", "last_estimates", "_views", "_noise",
              "_other", "_init")
CURVATURES = (None, "own", "field")
_VIEW_DTYPES = (torch.float32, torch.float64)


def _flat(tensors, *, grads: bool) -> np.ndarray:
    """A copy of the tensors (or of their gradients; missing ones are zero), flattened and concatenated.

    float32 and float64 CPU tensors keep their type (the estimators widen
    them); anything else becomes float64 on the CPU.
    """
    parts = []
    for p in tensors:
        t = p.grad if grads else p
        if t is None:
            t = torch.zeros_like(p)
        elif t.is_sparse:
            t = t.to_dense()
        parts.append(t.detach().reshape(-1))
    if not parts:
        return np.zeros(0)
    flat = torch.cat(parts)  # always a new tensor: a snapshot
    if flat.device.type != "cpu" or flat.dtype not in (torch.float32, torch.float64):
        flat = flat.to(dtype=torch.float64, device="cpu")
    return flat.numpy()


def _param_views(params, cache: dict):
    """1-D numpy views of the parameters (no copy), or None when they cannot all be viewed.

    Views need CPU, dense, contiguous tensors of one dtype in ``_VIEW_DTYPES``.
    They are cached under the tensors' data pointers: a view keeps its storage
    alive, so an unchanged pointer means an unchanged tensor.
    """
    key = tuple(p.data_ptr() for p in params)
    hit = cache.get("params")
    if hit is not None and hit[0] == key:
        return hit[1]
    views = None
    if params and all(p.device.type == "cpu" and p.layout == torch.strided and p.is_contiguous()
                      and p.dtype == params[0].dtype for p in params) and params[0].dtype in _VIEW_DTYPES:
        views = tuple(p.detach().numpy().reshape(-1) for p in params)
    cache["params"] = (key, views)
    cache["zeros"] = {}
    return views


def _grad_views(params, cache: dict):
    """1-D numpy views of the gradients (zeros where a gradient is missing), or None."""
    dtype = cache["params"][1][0].dtype
    try:  # the common case: every gradient a dense CPU tensor without a graph
        out = tuple([p.grad.numpy().reshape(-1) for p in params])
    except (AttributeError, TypeError, RuntimeError):
        out = _grad_views_general(params, cache)
        if out is None:
            return None
    for v in out:
        if v.dtype != dtype:
            return None
    return out


def _grad_views_general(params, cache: dict):
    out = []
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            v = cache["zeros"].get(i)
            if v is None:
                v = cache["zeros"][i] = np.zeros(p.numel(), dtype=cache["params"][1][0].dtype)
        else:
            try:
                v = g.detach().numpy().reshape(-1)  # a copy only for a non-contiguous gradient
            except (TypeError, RuntimeError):  # another device or layout
                return None
        out.append(v)
    return tuple(out)


def _to_torch(obj):
    """numpy arrays/scalars -> tensors/floats, recursively (so ``torch.load(weights_only=True)`` works)."""
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_torch(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _to_numpy(obj):
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    return obj


class ControlledLR(LRScheduler):
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
        curvature_every: measure the curvature at steps 0, k, 2k, ... and
            reuse the last measurement in between (the noise ratio and the
            rate are updated at every step).
        remeasure_growth: with ``curvature_every`` > 1, also measure at a step
            where some group's gradient norm exceeds ``remeasure_growth`` times
            its value at that group's last measurement (a stale curvature must
            not carry the rate into a region where the iteration explodes:
            there the gradient grows by |1 - eta u a| per step); None: only
            the schedule.
        noise_beta: EMA decay of the noise ratio.
        other_params: the other player's parameters (tensors, a module's
            ``parameters()``, or its optimizer); needed by ``"field"``.

    Attributes:
        estimators: one estimator per parameter group.
        last_estimates: the :class:`Estimate` used at the last step, per group.
        last_multipliers: u* of each group at the last step.
        counts: how often each policy case occurred (``ok``, ``warmup``,
            ``nonconvex``, ``fallback``, table lookups ``clamped``/``nan``),
            summed over groups and steps.
        last_curvature: per group, the last measured (own curvature
            d^T H d / |d|^2, field measure |J[:, p] d| / |d|) (curvature modes).
        curvature_measurements: how many curvature measurements were made.
    """

    def __init__(self, optimizer, policy, *, estimator=None, eta: float | None = None, every: int = 1,
                 last_epoch: int = -1, curvature: str | None = None, method: str = "fd",
                 curvature_every: int = 1, noise_beta: float = 0.9, other_params=None,
                 remeasure_growth: float | None = 2.0):
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
        self.curvature, self.method, self.curvature_every = curvature, method, curvature_every
        self.remeasure_growth = remeasure_growth
        if isinstance(other_params, torch.optim.Optimizer):
            other_params = [p for g in other_params.param_groups for p in g["params"]]
        self._other = None if other_params is None else [p for p in other_params if p.requires_grad]
        if curvature == "field" and not self._other:
            raise InputError("curvature='field' needs the other player's parameters: pass other_params= "
                             "(its module's parameters() or its optimizer)")
        self._noise = [NoiseRatio(noise_beta) for _ in range(n)]
        self.last_curvature = [(math.nan, math.nan)] * n
        self._stored = [None] * n
        self._measured_gg = [math.nan] * n  # |g|^2 of each group at its last measurement
        self.remeasurements = 0
        self.curvature_measurements = 0
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
        self.last_estimates = [None] * n
        self.last_multipliers = [math.nan] * n
        self.counts = ({k: 0 for k in STATUS_NAMES + ("clamped", "nan")} if isinstance(policy, LocalPolicy)
                       else {})
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
            self._measured_step(closure, other_closure)
            return
        if closure is not None or other_closure is not None:
            raise InputError("closure= needs a scheduler with curvature='own' or 'field'; this one has curvature=None")
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

    def _measured_step(self, closure, other_closure) -> None:
        """Curvature modes: measure the step about to be taken and set the rates (class docstring)."""
        if closure is None or not callable(closure):
            raise InputError(f"curvature={self.curvature!r} needs scheduler.step(closure=loss_closure) with a "
                             f"callable closure; got {closure!r}")
        if self.curvature == "field" and (other_closure is None or not callable(other_closure)):
            raise InputError("curvature='field' needs the other player's loss: scheduler.step(closure=..., "
                             f"other_closure=...); got other_closure={other_closure!r}")
        k = self.last_epoch
        groups = self.optimizer.param_groups
        prepared = []
        for i, group in enumerate(groups):
            params = group["params"]
            d, g = step_direction(self.optimizer, group)
            if not all(p.requires_grad for p in params):
                keep = [p.requires_grad for p in params]
                params, d, g = ([t for t, k in zip(ts, keep) if k] for ts in (params, d, g))
            gg = self._noise[i].update(g)
            prepared.append((params, d, g, gg))
        measure = k % self.curvature_every == 0 or any(s is None for s in self._stored)
        if not measure and self.remeasure_growth is not None:
            limit = self.remeasure_growth ** 2
            if any(gg > limit * m0 for (_, _, _, gg), m0 in zip(prepared, self._measured_gg)):
                measure = True
                self.remeasurements += 1
        everything = [p for g in groups for p in g["params"]] + (self._other or [])
        saved = [None if p.grad is None else p.grad.detach().clone() for p in everything] if measure else None
        copies = {} if saved is None else {id(p): c for p, c in zip(everything, saved)}
        lrs = []
        try:
            for i, ((params, d, g, gg), base) in enumerate(zip(prepared, self.base_lrs)):
                dd = gg if d is g else _sumsq(d)
                gd = dd if d is g else float(sum(t.sum() for t in torch._foreach_mul(g, d)))
                if measure:
                    if self.curvature == "own":
                        own, fld = _measure([closure], [params], 0, d, self.method, None, field=False,
                                            known=[self._known(params, copies)])
                    else:
                        own, fld = _measure([closure, other_closure], [params, self._other], 0, d, self.method,
                                            None, field=True, known=[self._known(params, copies), None])
                    self.curvature_measurements += 1
                    self.last_curvature[i] = (own, fld)
                    self._stored[i] = (own, fld)
                    self._measured_gg[i] = gg
                own, fld = self._stored[i]
                scale = dd / gd if gd > 0 else math.nan  # curvature per unit of learning rate
                sig, noise = self._noise[i].read()
                stats = Estimate(own * scale, noise, math.sqrt(sig), self._noise[i].count, True,
                                 field=None if self.curvature == "own" else fld * scale)
                base = float(self.eta if self.eta is not None else base)
                if isinstance(self.policy, LocalPolicy):
                    u = float(self.policy(k, stats, eta=base))
                    for key, v in self.policy.last["counts"].items():
                        self.counts[key] = self.counts.get(key, 0) + v
                else:
                    u = float(self.policy(k, stats))
                self.last_estimates[i] = stats
                self.last_multipliers[i] = u
                lrs.append(float(self.base_lrs[i]) * u)
        finally:
            if saved is not None:
                for p, gr in zip(everything, saved):
                    p.grad = gr
        for group, lr in zip(groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs
        self.last_epoch = k + 1

    @staticmethod
    def _known(params, copies):
        """The gradient backward() computed (saved before a closure could touch .grad), or None if incomplete."""
        known = [copies.get(id(p)) for p in params]
        return known if all(t is not None for t in known) else None

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
            if isinstance(self.policy, LocalPolicy):
                u = self.policy(k, stats, eta=self.eta if self.eta is not None else base)
                for key, v in self.policy.last["counts"].items():
                    self.counts[key] = self.counts.get(key, 0) + v
            else:
                u = self.policy(k, stats)
            u = reduce_multiplier(u, stats.weights)
            self.last_estimates[i] = stats
            self.last_multipliers[i] = u
            lrs.append(base * u)
        return lrs

    def state_dict(self) -> dict:
        """Scheduler state, including each estimator's moving averages (``torch.load``-safe)."""
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
        for est, st in zip(self.estimators, ests):
            est.load_state_dict(_to_numpy(st))
        super().load_state_dict(sd)


def directional_curvature(loss, params) -> float:
    """Curvature of ``loss`` along its gradient, a = d^T H d with d = grad / |grad|.

    Uses one Hessian-vector product (double backward); call it before
    ``loss.backward()`` or with a graph that is still alive, and pass the result
    as ``scheduler.step(metrics={"a": a})``.
    """
    params = [p for p in params if p.requires_grad]
    grads = torch.autograd.grad(loss, params, create_graph=True)
    norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    if not torch.isfinite(norm) or norm == 0:
        return math.nan
    d = [g.detach() / norm for g in grads]
    gd = sum((g * v).sum() for g, v in zip(grads, d))
    hd = torch.autograd.grad(gd, params)
    return float(sum((h * v).sum() for h, v in zip(hd, d)))


__all__ = ["ControlledLR", "directional_curvature"]
