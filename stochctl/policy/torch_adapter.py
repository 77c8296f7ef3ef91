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
from .estimators import STATUS_NAMES, LocalPolicy, RegressionEstimator, reduce_multiplier

torch = require_extra("torch", "torch")
from torch.optim.lr_scheduler import LRScheduler  # noqa: E402

METRIC_KEYS = ("a", "s2", "grad_norm")
_TRANSIENT = ("optimizer", "policy", "estimators", "_hook", "_metrics", "last_estimates", "_views")
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

    Attributes:
        estimators: one estimator per parameter group.
        last_estimates: the :class:`Estimate` used at the last step, per group.
        last_multipliers: u* of each group at the last step.
        counts: how often each policy case occurred (``ok``, ``warmup``,
            ``nonconvex``, ``fallback``, table lookups ``clamped``/``nan``),
            summed over groups and steps.
    """

    def __init__(self, optimizer, policy, *, estimator=None, eta: float | None = None, every: int = 1,
                 last_epoch: int = -1):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise InputError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer).__name__}")
        if not callable(policy):
            raise InputError(f"policy must be a LocalPolicy or a callable policy(step, stats); got {policy!r}")
        self.policy = policy
        n = len(optimizer.param_groups)
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

        self._hook = optimizer.register_step_pre_hook(hook)
        super().__init__(optimizer, last_epoch)

    def remove_hook(self) -> None:
        """Stop observing the optimizer (the learning rates stay as they are)."""
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

    def step(self, *, metrics: Mapping | None = None) -> None:  # type: ignore[override]
        """Set the learning rates for the next optimizer step.

        Args:
            metrics: optional measurements overriding the estimator for this
                step: ``a``, ``s2``, ``grad_norm``, each a number (all groups)
                or a sequence with one number per group.
        """
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
        if isinstance(self.policy, LocalPolicy):
            sd["policy"] = self.policy.config()
        return sd

    def load_state_dict(self, state_dict: Mapping) -> None:
        sd = dict(state_dict)
        ests = sd.pop("estimators", None)
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
