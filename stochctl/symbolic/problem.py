"""The stochastic control problem of training (design section 2).

For player p with coordinates x_p, learning-rate multiplier u_p in
[u_min, u_max] and m_p = 1/B_p,

    d x_p = -s_p u_p grad_p g dt + u_p sqrt(eta m_p) Sigma_p^{1/2} dW_p,

with s_p = +1 for a minimiser and -1 for a maximiser. The generator is

    L^u V = sum_i b_i V_i + 1/2 sum_ij a_ij V_ij,
    b = drift,  a = diffusion covariance:
      a_pp = u_p^2 eta m_p Sigma_pp                     (each player's block),
      a_pq = u_p u_q eta sqrt(m_p m_q) Sigma_pq          (only with noise="shared"),

and the value is V(t,x) = inf_{u_min players} sup_{u_max players}
E[int_t^T r ds + G(X_T)] with r = r_state(x) + sum_p s_p kappa_p / m_p
(compute cost of the batch, paid by a minimiser and subtracted for a maximiser).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from ..errors import InputError
from ..models import Model, Player

NOISE_MODES = ("independent", "shared")


def _positive(name, value, *, allow_zero=False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        want = "a number >= 0" if allow_zero else "a positive number"
        raise InputError(f"{name} must be {want}; got {value!r}")
    return float(value)


@dataclass(frozen=True)
class BatchControl:
    """Batch size as a control: B in [b_min, b_max], compute cost kappa per sample.

    The control variable is m = 1/B in [1/b_max, 1/b_min]; the running cost is
    kappa / m = kappa * B.
    """

    b_min: float
    b_max: float
    kappa: float

    def __post_init__(self):
        _positive("batch control b_min", self.b_min)
        _positive("batch control b_max", self.b_max)
        _positive("batch control kappa", self.kappa, allow_zero=True)
        if not self.b_min < self.b_max:
            raise InputError(f"batch control needs b_min < b_max; got b_min={self.b_min}, b_max={self.b_max}")

    @property
    def m_min(self) -> float:
        return 1.0 / self.b_max

    @property
    def m_max(self) -> float:
        return 1.0 / self.b_min


@dataclass(frozen=True)
class PlayerControl:
    """One player's controls: learning-rate multiplier bounds and batch.

    Attributes:
        player: the model's player.
        u_min, u_max: bounds of the multiplier, 0 <= u_min < u_max.
        batch_size: fixed batch size when ``batch`` is None.
        batch: optional :class:`BatchControl` making m = 1/B a control.
    """

    player: Player
    u_min: float = 0.0
    u_max: float = 1.0
    batch_size: int = 1
    batch: BatchControl | None = None

    def __post_init__(self):
        name = self.player.name
        for k in ("u_min", "u_max"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise InputError(f"{k} for player {name} must be a finite number >= 0; got {v!r}")
        if not self.u_min < self.u_max:
            raise InputError(f"player {name}: need u_min < u_max; got u_min={self.u_min}, u_max={self.u_max}")
        if not (isinstance(self.batch_size, int) and not isinstance(self.batch_size, bool) and self.batch_size >= 1):
            raise InputError(f"batch size for player {name} must be an integer >= 1; got {self.batch_size!r}")

    @property
    def u(self) -> sp.Symbol:
        """The multiplier symbol u_<player>."""
        return sp.Symbol(f"u_{self.player.name}", nonnegative=True)

    @property
    def m(self) -> sp.Expr:
        """m = 1/B: a symbol m_<player> under batch control, else the number 1/batch_size."""
        if self.batch is not None:
            return sp.Symbol(f"m_{self.player.name}", positive=True)
        return sp.Rational(1, self.batch_size)


@dataclass(frozen=True)
class ControlProblem:
    """Training as a controlled SDE with its costs (module docstring).

    Build it with :meth:`from_model`. Attributes:
        model: the training-dynamics model.
        controls: one :class:`PlayerControl` per player, in the model's order.
        eta: base learning rate (> 0); time t = k * eta.
        horizon: T > 0.
        terminal_cost: G(x) (sympy, parameters symbolic).
        running_cost: state part of r (sympy), default 0.
        noise: ``"independent"`` (each player its own minibatch: no cross
            diffusion) or ``"shared"`` (one minibatch: cross terms Sigma_pq).
        covariance: Sigma(x), the per-sample gradient covariance (default: the model's).
    """

    model: Model
    controls: tuple[PlayerControl, ...]
    eta: float
    horizon: float
    terminal_cost: sp.Expr
    running_cost: sp.Expr = sp.Integer(0)
    noise: str = "independent"
    covariance: sp.Matrix | None = field(default=None, compare=False)

    __hash__ = object.__hash__

    def __post_init__(self):
        _positive("eta", self.eta)
        _positive("horizon", self.horizon)
        if self.noise not in NOISE_MODES:
            raise InputError(f"noise must be one of {NOISE_MODES}; got {self.noise!r}")
        if len(self.controls) != len(self.model.players):
            raise InputError(f"expected {len(self.model.players)} player controls; got {len(self.controls)}")
        if self.covariance is None:
            object.__setattr__(self, "covariance", self.model.gradient_covariance)
        n = len(self.model.state_symbols)
        if self.covariance.shape != (n, n):
            raise InputError(f"covariance must be {n}x{n}; got {self.covariance.shape}")
        if self.covariance != self.covariance.T:
            raise InputError("covariance must be symmetric")
        self._check_psd()

    @classmethod
    def from_model(
        cls,
        model: Model,
        *,
        eta: float | None = None,
        horizon: float | None = None,
        u_min: float = 0.0,
        u_max: float = 1.0,
        batch_size: int | None = None,
        batch: BatchControl | None = None,
        terminal_cost: sp.Expr | None = None,
        running_cost: sp.Expr = sp.Integer(0),
        noise: str = "independent",
        covariance: sp.Matrix | None = None,
        per_player: dict[str, dict] | None = None,
    ) -> "ControlProblem":
        """The control problem of ``model`` in one call.

        ``u_min``, ``u_max``, ``batch_size`` and ``batch`` apply to every player;
        ``per_player={"omega": {"u_max": 2.0}}`` overrides them for one player.
        """
        per_player = dict(per_player or {})
        names = [p.name for p in model.players]
        for k in per_player:
            if k not in names:
                raise InputError(f"per_player: unknown player {k!r}; players: {', '.join(names)}")
        controls = []
        for p in model.players:
            opts = dict(u_min=u_min, u_max=u_max, batch_size=model.batch_size if batch_size is None else batch_size,
                        batch=batch)
            opts.update(per_player.get(p.name, {}))
            controls.append(PlayerControl(p, **opts))
        return cls(
            model=model,
            controls=tuple(controls),
            eta=model.eta if eta is None else eta,
            horizon=model.horizon if horizon is None else horizon,
            terminal_cost=model.terminal_cost if terminal_cost is None else sp.sympify(terminal_cost),
            running_cost=sp.sympify(running_cost),
            noise=noise,
            covariance=covariance,
        )

    # ------------------------------------------------------------- structure
    @property
    def state_symbols(self) -> tuple[sp.Symbol, ...]:
        return self.model.state_symbols

    @property
    def players(self) -> tuple[Player, ...]:
        return self.model.players

    def owner(self, i: int) -> int:
        """Index of the player who owns state coordinate i."""
        for k, sl in enumerate(self.model.player_slices()):
            if sl.start <= i < sl.stop:
                return k
        raise IndexError(i)

    @property
    def drift(self) -> sp.Matrix:
        """b_i(x, u) = -s_p u_p d g / d x_i for coordinate i of player p."""
        grad = self.model.gradient
        return sp.Matrix([
            -self.players[self.owner(i)].sign * self.controls[self.owner(i)].u * grad[i]
            for i in range(len(grad))
        ])

    @property
    def diffusion(self) -> sp.Matrix:
        """a_ij(x, u): covariance rate of the noise (module docstring)."""
        n = len(self.state_symbols)
        out = sp.zeros(n, n)
        for i in range(n):
            for j in range(n):
                p, q = self.owner(i), self.owner(j)
                cp, cq = self.controls[p], self.controls[q]
                if p == q:
                    out[i, j] = cp.u**2 * self.eta * cp.m * self.covariance[i, j]
                elif self.noise == "shared":
                    out[i, j] = cp.u * cq.u * self.eta * sp.sqrt(cp.m * cq.m) * self.covariance[i, j]
        return out

    @property
    def is_diagonal(self) -> bool:
        """Whether the diffusion matrix is diagonal (required by the grid solver)."""
        a = self.diffusion
        return all(sp.simplify(a[i, j]) == 0 for i in range(a.rows) for j in range(a.cols) if i != j)

    @property
    def control_cost(self) -> sp.Expr:
        """Running cost of the controls: sum_p s_p kappa_p / m_p (zero without batch control)."""
        total = sp.Integer(0)
        for p, c in zip(self.players, self.controls):
            if c.batch is not None:
                total += p.sign * sp.Float(c.batch.kappa, 17) / c.m
        return total

    def _check_psd(self, samples: int = 7):
        """Sigma(x) must be positive semi-definite: checked on a grid of the domain."""
        syms = self.state_symbols
        if all(e == 0 for e in self.covariance):
            return
        f = self.model.lambdify(self.covariance)
        axes = [np.linspace(*self.model.domain[s.name], samples) for s in syms]
        for point in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(syms), -1).T:
            S = np.asarray(f(*point), dtype=float).reshape(len(syms), len(syms))
            if not np.all(np.isfinite(S)):
                raise InputError(f"gradient covariance is not finite at {dict(zip(map(str, syms), point))}")
            w = np.linalg.eigvalsh(0.5 * (S + S.T))
            if w.min() < -1e-9 * max(1.0, abs(w).max()):
                raise InputError(
                    f"gradient covariance (diffusion) is not positive semi-definite at "
                    f"{ {str(s): float(v) for s, v in zip(syms, point)} }: smallest eigenvalue {w.min():.3g}"
                )

    def describe(self) -> str:
        parts = [self.model.summary(), f"eta={self.eta:g}, horizon={self.horizon:g}, noise={self.noise}"]
        for c in self.controls:
            b = (f"B in [{c.batch.b_min:g}, {c.batch.b_max:g}], kappa={c.batch.kappa:g}" if c.batch
                 else f"B={c.batch_size}")
            parts.append(f"{c.player.name}: u in [{c.u_min:g}, {c.u_max:g}], {b}")
        return "; ".join(parts)
