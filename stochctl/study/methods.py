"""Optimisation methods compared by the study, one optimiser per player.

Every method takes one base learning rate ``eta``:

- ``sgd``: constant-rate SGD, ``x <- x - eta g`` for both players;
- ``adam``: Adam with betas (0.5, 0.999), rate ``eta`` for both players;
- ``ttur``: Adam with betas (0.5, 0.999), generator rate ``eta``,
  discriminator rate ``4 eta`` (two time-scale update rule);
- ``csgd``: Li, Tai and E's controlled SGD (:class:`ControlledSGD`),
  ``x_i <- x_i - eta u_i g_i`` with the per-coordinate moment control
  ``u_i = min(1, 2 m_i / (eta Sigma_i))`` (m the excess loss);
- ``ctl-sgd`` / ``ctl-adam``: SGD / Adam (betas 0.5, 0.999) whose rate is
  ``eta u*`` with ``u*`` looked up in the policy table of the dimensionless
  local model by the PyTorch scheduler of :mod:`stochctl.policy.torch_adapter`
  (:func:`controlled_scheduler`).

Families (for the learning-rate sweeps): ``sgd``, ``csgd``, ``ctl-sgd`` share
the SGD sweep; ``adam``, ``ttur``, ``ctl-adam`` the Adam sweep.

Reference: Q. Li, C. Tai, W. E, "Stochastic modified equations and adaptive
stochastic gradient algorithms", ICML 2017.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError, require_extra

METHOD_NAMES = ("sgd", "adam", "ttur", "csgd", "ctl-sgd", "ctl-adam")
METHOD_FAMILY = {"sgd": "sgd", "csgd": "sgd", "ctl-sgd": "sgd",
                 "adam": "adam", "ttur": "adam", "ctl-adam": "adam"}
FAMILY_NAMES = ("sgd", "adam")
TABLE_METHODS = ("ctl-sgd", "ctl-adam")
ADAM_BETAS = (0.5, 0.999)
TTUR_RATIO = 4.0
CSGD_BETA = (0.9, 0.99)


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method, else raise :class:`InputError`."""
    if name not in METHOD_FAMILY:
        raise InputError(f"unknown method {name!r}; valid methods: {', '.join(METHOD_NAMES)}")
    return name


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


@dataclass
class PlayerOptimizer:
    """One player's optimiser plus an optional learning-rate scheduler.

    Attributes:
        optimizer: object with ``zero_grad()`` and ``step()``.
        scheduler: object with ``step()`` (stepped after the optimiser) or None.
        base_lr: the player's base rate (the multiplier is lr / base_lr).
    """

    optimizer: object
    scheduler: object | None = None
    base_lr: float = 1.0
    _mult_sum: float = field(default=0.0, repr=False)
    _steps: int = field(default=0, repr=False)

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def step(self) -> None:
        """Optimiser step with the current rate, then the scheduler's step."""
        if self.scheduler is not None:
            self._mult_sum += self.optimizer.param_groups[0]["lr"] / self.base_lr
            self._steps += 1
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    @property
    def policy_counts(self) -> dict | None:
        """How often each policy case occurred (table schedulers only): ok, warmup, nonconvex, ..."""
        counts = getattr(self.scheduler, "counts", None)
        return dict(counts) if counts is not None else None

    @property
    def mean_multiplier(self) -> float:
        """Learning-rate multiplier averaged over the steps taken (1 for constant-rate methods)."""
        if isinstance(self.optimizer, ControlledSGD):
            return self.optimizer.mean_multiplier
        return self._mult_sum / self._steps if self._steps else 1.0


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
    from ..policy import LocalPolicy, RegressionEstimator
    from ..policy.torch_adapter import ControlledLR

    return ControlledLR(optimizer, LocalPolicy(table, total_steps=steps), estimator=RegressionEstimator(mode="rms"))


def build_optimizers(method: str, G, D, lr: float, *, steps: int,
                     table: str = "local-quadratic") -> tuple[PlayerOptimizer, PlayerOptimizer]:
    """Generator and discriminator optimisers of ``method`` at base rate ``lr``.

    Args:
        method: one of :data:`METHOD_NAMES`.
        G, D: generator and discriminator modules.
        lr: the base learning rate eta (> 0).
        steps: the step budget (the controlled methods' horizon).
        table: the policy table of ``ctl-sgd`` and ``ctl-adam``.
    """
    torch = require_extra("torch", "study")
    check_method(method)
    if not lr > 0:
        raise InputError(f"learning rate must be positive; got {lr!r}")
    out = []
    for net, rate in ((G, lr), (D, TTUR_RATIO * lr if method == "ttur" else lr)):
        params = list(net.parameters())
        if method == "sgd":
            out.append(PlayerOptimizer(torch.optim.SGD(params, lr=rate), base_lr=rate))
        elif method in ("adam", "ttur"):
            out.append(PlayerOptimizer(torch.optim.Adam(params, lr=rate, betas=ADAM_BETAS), base_lr=rate))
        elif method == "csgd":
            out.append(PlayerOptimizer(ControlledSGD(params, rate), base_lr=rate))
        elif method == "ctl-sgd":
            opt = torch.optim.SGD(params, lr=rate)
            out.append(PlayerOptimizer(opt, controlled_scheduler(opt, steps=steps, table=table), base_lr=rate))
        elif method == "ctl-adam":
            opt = torch.optim.Adam(params, lr=rate, betas=ADAM_BETAS)
            out.append(PlayerOptimizer(opt, controlled_scheduler(opt, steps=steps, table=table), base_lr=rate))
        else:  # pragma: no cover - check_method guards
            raise InputError(f"unknown method {method!r}; valid methods: {', '.join(METHOD_NAMES)}")
    return out[0], out[1]
