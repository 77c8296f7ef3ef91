"""Optimisers and schedulers of the study's baselines, and the per-player wrapper the runner steps.

- :class:`ControlledSGD`: Li, Tai and E's controlled SGD (cSGD);
- :class:`GapAwareLR` and :func:`gap_multiplier`: the gap-aware discriminator rate of Hazimeh and
  Ponomareva;
- :class:`PlayerOptimizer`: one player's optimiser with its scheduler, counting the scheduler's
  gradient evaluations and averaging the rate multiplier.

References: Q. Li, C. Tai, W. E, "Stochastic modified equations and adaptive
stochastic gradient algorithms", ICML 2017. H. Hazimeh, N. Ponomareva, "Mind
the (optimality) Gap: A Gap-Aware Learning Rate Scheduler for Adversarial
Nets", AISTATS 2023 (arXiv:2302.00089).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import require_extra

GAP_IDEAL_LOSS = math.log(4.0)
GAP_EMA = 0.95
GAP_X = 0.1 * math.log(4.0)
GAP_H_MIN = 0.1
GAP_F_MAX = 2.0
CSGD_BETA = (0.9, 0.99)


class ControlledSGD:
    """Li-Tai-E controlled SGD (cSGD) with per-coordinate regression estimates.

    For every coordinate, exponential moving averages with decay ``beta`` of
    the parameter x and of its stochastic gradient g give means ``x_bar``,
    ``g_bar``, variances ``V_x``, ``V_g`` and the covariance ``C_gx`` (updated as
    ``V <- beta (V + (1 - beta) d^2)`` with d the deviation from the old mean,
    then ``mean += (1 - beta) d``). The local quadratic model ``g ~ a (x - x*)``
    gives the curvature ``a = C_gx / V_x``, the noise ``Sigma = V_g`` and the
    excess loss ``m = (g_bar^2 + V_g) / (2 a)`` (``|grad f|^2 / (2a)`` with the
    gradient's second moment). The moment equation of the SME,
    ``dm/dt = -2 a u m + a eta Sigma u^2 / 2``, is minimised over u in [0, 1] by

        u_target = min(1, 2 m / (eta Sigma)),

    and ``u_target = 1`` where it is not positive or undefined (``a <= 0``: the
    non-convex case, whose optimum is the upper endpoint). The multiplier is
    smoothed, ``u <- u + (1 - beta)(u_target - u)``, and the decay adapts to the
    noise level, ``beta = beta_min + (beta_max - beta_min) V_g / (g_bar^2 + V_g)``.
    The update is ``x <- x - eta u g`` with the multiplier from the previous
    step. Statistics start at the first observation; u starts at 1.

    Args:
        params: iterable of tensors with gradients.
        lr: the base rate eta.
        beta_min, beta_max: range of the EMA decay.
    """

    def __init__(self, params, lr: float, beta_min: float = CSGD_BETA[0], beta_max: float = CSGD_BETA[1]):
        torch = require_extra("torch", "study")
        self.params = list(params)
        self.lr = float(lr)
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)
        self._state: list[dict | None] = [None] * len(self.params)
        self._u_sum = torch.zeros((), dtype=torch.float64)
        self._count = 0
        self._numel = sum(p.numel() for p in self.params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def multipliers(self) -> list:
        """The current per-coordinate multipliers u, one tensor per parameter."""
        return [None if st is None else st["u"] for st in self._state]

    def step(self) -> None:
        """One cSGD update of every parameter (call after ``backward``)."""
        torch = require_extra("torch", "study")
        with torch.no_grad():
            total = 0.0
            for i, p in enumerate(self.params):
                g = p.grad
                if g is None:
                    continue
                st = self._state[i]
                x = p.detach().clone()
                if st is None:
                    zero = torch.zeros_like(p)
                    st = self._state[i] = dict(x=x, g=g.clone(), vx=zero, vg=zero.clone(), cgx=zero.clone(),
                                               beta=torch.full_like(p, self.beta_min), u=torch.ones_like(p))
                else:
                    b = st["beta"]
                    c = 1.0 - b
                    dx = x - st["x"]
                    dg = g - st["g"]
                    st["vx"] = b * (st["vx"] + c * dx * dx)
                    st["vg"] = b * (st["vg"] + c * dg * dg)
                    st["cgx"] = b * (st["cgx"] + c * dx * dg)
                    st["x"].add_(c * dx)
                    st["g"].add_(c * dg)
                p.add_(st["u"] * g, alpha=-self.lr)
                total = total + st["u"].sum()
                # target multiplier and the next decay from the updated statistics
                gm2, vg = st["g"] * st["g"], st["vg"]
                second = gm2 + vg
                a = st["cgx"] / st["vx"]
                target = second / (a * self.lr * vg)
                target = torch.where(target > 0, target.clamp(max=1.0), torch.ones_like(target))
                st["u"].add_((1.0 - st["beta"]) * (target - st["u"]))
                ratio = torch.where(second > 0, vg / second, torch.zeros_like(vg)).clamp(0.0, 1.0)
                st["beta"] = self.beta_min + (self.beta_max - self.beta_min) * ratio
            self._u_sum += total
            self._count += 1

    @property
    def mean_multiplier(self) -> float:
        """Average of the multiplier u used over coordinates and steps so far."""
        return float(self._u_sum) / (self._count * self._numel) if self._count else 1.0


def gap_multiplier(loss: float, *, ideal: float = GAP_IDEAL_LOSS, x_min: float = GAP_X, x_max: float = GAP_X,
                   h_min: float = GAP_H_MIN, f_max: float = GAP_F_MAX) -> float:
    """The gap-aware scheduling function s(x) of Hazimeh and Ponomareva (2023), section 3.

    With the optimality gap ``x = |loss - ideal|``:

        s = min(f_max^(x / x_max), f_max)   if loss >= ideal (the discriminator is behind: speed it up),
        s = max(h_min^(x / x_min), h_min)   if loss <  ideal (it is ahead: slow it down).

    Constants from the paper and its published demo, for the non-saturating
    loss ``BCE(D(x), 1) + BCE(D(G(z)), 0)``: ideal loss log 4 (its value when
    the generated law equals the data law and D = 1/2, the paper's Table 1),
    ``x_min = x_max = 0.1 log 4``, ``h_min = 0.1``, ``f_max = 2``.
    """
    x = abs(loss - ideal)
    # f_max >= 1 >= h_min: capping the exponent at 1 is the cap of s (and cannot overflow)
    if loss >= ideal:
        return float(f_max ** min(x / x_max, 1.0))
    return float(h_min ** min(x / x_min, 1.0))


class GapAwareLR:
    """Gap-aware learning-rate scheduler for the discriminator (Hazimeh and Ponomareva, 2023).

    Before each discriminator step, the exponential moving average of its
    loss is updated with the loss on the current batch,
    ``V <- beta V + (1 - beta) L_D`` (beta = 0.95, V starts at the ideal loss
    log 4, as in the paper's demo), and the step's rate is set to
    ``eta * s(V)`` with :func:`gap_multiplier`. The generator keeps ``eta``.

    Args:
        optimizer: the discriminator's torch optimiser (its initial rate is eta).
        beta: EMA decay of the loss.
    """

    def __init__(self, optimizer, *, beta: float = GAP_EMA):
        self.optimizer = optimizer
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.beta = float(beta)
        self.smoothed = GAP_IDEAL_LOSS
        self.last_multiplier = 1.0

    def step(self, loss: float) -> float:
        """Fold ``loss`` (this batch's discriminator loss) into the average and set the rate; return s."""
        self.smoothed = self.beta * self.smoothed + (1.0 - self.beta) * float(loss)
        u = gap_multiplier(self.smoothed)
        for g, base in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = base * u
        self.last_multiplier = u
        return u


@dataclass
class PlayerOptimizer:
    """One player's optimiser plus an optional learning-rate scheduler.

    Three kinds of scheduler: a table scheduler on estimates (stepped after
    the optimiser), a measured-curvature :class:`ControlledLR` (stepped before
    it, with this player's and the other player's loss closures) and
    :class:`GapAwareLR` (stepped before it with the loss value); or no
    scheduler and an optimiser that takes both loss closures itself
    (``kind="closures"``, extragradient).

    Attributes:
        optimizer: object with ``zero_grad()`` and ``step()``.
        scheduler: the scheduler or None.
        base_lr: the player's base rate (the multiplier is lr / base_lr).
        kind: ``"after"``, ``"measured"``, ``"loss"``, ``"closures"`` (no scheduler; the optimiser's
            ``step(closure=, other_closure=)`` takes both players' loss closures, uncounted: the method's
            ``grad_evals`` include them) or None (no scheduler).
        grad_evals: gradient evaluations of this player's scheduler so far
            (closure calls; the plain gradient of each step is counted by the runner).
    """

    optimizer: object
    scheduler: object | None = None
    base_lr: float = 1.0
    kind: str | None = None
    grad_evals: int = 0
    _mult_sum: float = field(default=0.0, repr=False)
    _steps: int = field(default=0, repr=False)
    _curv: list = field(default_factory=list, repr=False)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def _counted(self, closure):
        def call():
            self.grad_evals += 1
            return closure()

        return call

    def step(self, *, loss=None, closure=None, other_closure=None) -> None:
        """Set the rate (measured or loss-driven schedulers), take the optimiser step, step the scheduler."""
        if self.kind == "measured":
            self.scheduler.step(closure=self._counted(closure),
                                other_closure=None if other_closure is None else self._counted(other_closure))
            own, fld = self.scheduler.last_curvature[0]
            self._curv.append((own, fld))
        elif self.kind == "loss":
            self.scheduler.step(float(loss))
        if self.scheduler is not None:
            # the rate may be a 0-d tensor (measured schedulers): summed as one, converted once when read
            self._mult_sum = self._mult_sum + self.optimizer.param_groups[0]["lr"] / self.base_lr
            self._steps += 1
        if self.kind == "closures":  # an optimiser that takes both loss closures itself (extragradient)
            self.optimizer.step(closure=closure, other_closure=other_closure)
        else:
            self.optimizer.step()
        if self.kind == "after":
            self.scheduler.step()

    @property
    def policy_counts(self) -> dict | None:
        """How often each policy case occurred (policy schedulers only): ok, warmup, nonconvex, ..."""
        counts = getattr(self.scheduler, "counts", None)
        return dict(counts) if counts is not None else None

    @property
    def mean_multiplier(self) -> float:
        """Learning-rate multiplier averaged over the steps taken (1 for constant-rate methods)."""
        if isinstance(self.optimizer, ControlledSGD):
            return self.optimizer.mean_multiplier
        return float(self._mult_sum) / self._steps if self._steps else 1.0

    @property
    def mean_curvature(self) -> tuple[float, float]:
        """Mean measured (own curvature, field measure) over the steps (NaN without measurements)."""
        out = []
        for i in (0, 1):
            vals = [c[i] for c in self._curv if math.isfinite(c[i])]
            out.append(sum(vals) / len(vals) if vals else math.nan)
        return out[0], out[1]
