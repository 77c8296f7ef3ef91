"""Curvature of the step about to be taken, measured on the current batch (PyTorch).

For a player p (an optimizer, or one of its parameter groups) with parameters
x_p, loss L_p and next step x_p <- x_p - eta d_p (d_p the gradient for SGD,
Adam's bias-corrected preconditioned step for Adam: :func:`step_direction`):

- own curvature  c_p = d_p^T H_pp d_p / |d_p|^2  (signed; H_pp the Hessian of L_p in x_p);
- field measure  m_p = |J[:, p] d_p| / |d_p|, J the Jacobian of the joint field
  F = (grad_{x_1} L_1, ..., grad_{x_P} L_P) (each player's gradient of its own
  loss, i.e. the signed gradients of a min-max game): how fast the whole
  gradient field, the other players' parts included, changes per unit step of
  player p along d_p. On the quadratic game g = a th^2/2 + b th om - c om^2/2
  it is sqrt(a^2 + b^2) for the generator and sqrt(b^2 + c^2) for the
  discriminator, the columns of the J whose eigenvalues give the GDA
  thresholds of :mod:`stochctl.analysis.explosion`.

Two methods, each on the batch the loss closures see:

- ``"hvp"``: double backward. Own: one backward with graph (the gradient) and
  one backward of g . d: about 2 gradient evaluations (plus one forward).
  Field: in addition, per other player q, one backward with graph of L_q in
  x_p and one backward of (grad_{x_p} L_q) . d_p in x_q: about 4 gradient
  evaluations for two players.
- ``"fd"``: difference of gradients on the same batch along d_p / |d_p|, the
  parameters restored bit for bit afterwards. Central (x_p +- eps d_p/|d_p|,
  error O(eps^2) + O(u |g| / eps), eps = cbrt(u) (1 + rms(x_p)), u the
  machine epsilon): own 2 gradient evaluations, field 2 per player (4 for
  two players). One-sided from the gradient the caller already has (the one
  ``backward()`` just computed; error O(eps) + O(u |g| / eps),
  eps = sqrt(u) (1 + rms(x_p))): own 1 gradient evaluation, field 3 for two
  players (the other player's gradient at the current point is evaluated
  too). :class:`~stochctl.policy.ControlledLR` uses the one-sided form.

Gradient noise: :class:`NoiseRatio` keeps bias-corrected exponential moving
averages of a player's gradient g and of |g|^2 and reads
SNR = |EMA g|^2 / EMA |g|^2; the local model's y then follows from
y^2 = SNR / (h (1 - SNR)) with h = eta * curvature, which is
``Estimate(a, s2=EMA|g|^2 - |EMA g|^2, grad_norm=|EMA g|)`` in the
continuous-model formula y = |grad| / sqrt(a eta s^2).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

from ..errors import DivergenceError, InputError, require_extra

torch = require_extra("torch", "torch")

METHODS = ("hvp", "fd")


_DETACHED = ("other_closure's loss does not depend on this player's parameters; compute it without .detach() "
             "of this player's output")


def check_loss(loss, what: str = "closure"):
    """The closure's value as a 0-d tensor with a graph (InputError if unusable, DivergenceError if not finite)."""
    if not isinstance(loss, torch.Tensor):
        raise InputError(f"{what} must return the loss as a scalar tensor; got {type(loss).__name__}")
    if loss.numel() != 1:
        raise InputError(f"{what} must return a scalar loss; got a tensor of shape {tuple(loss.shape)}")
    v = float(loss.detach())
    if not math.isfinite(v):
        raise DivergenceError(f"{what} returned a non-finite loss {v}; expected a finite number")
    if not loss.requires_grad:
        raise InputError(f"{what} returned a loss without a graph (requires_grad=False); compute it with "
                         "gradients enabled, without .detach() or torch.no_grad()")
    return loss.reshape(())


def _call(closure, what: str):
    with torch.enable_grad():
        return check_loss(closure(), what)


def _grad(outputs, inputs, *, create_graph=False, what="closure"):
    try:
        gs = torch.autograd.grad(outputs, inputs, create_graph=create_graph, allow_unused=True)
    except RuntimeError as exc:  # freed graph: the closure called backward() itself
        raise InputError(f"cannot differentiate the loss of {what} ({exc}); return the loss without "
                         "calling backward() on it") from exc
    return [torch.zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


def _dot(a, b):
    return sum((x * y).sum() for x, y in zip(a, b))


def _norm2(a) -> float:
    return float(sum((x.detach() ** 2).sum() for x in a))


def _vdot(a, b) -> float:
    """sum_i a_i . b_i over two lists of tensors."""
    return float(torch.stack([torch.vdot(x.detach().reshape(-1), y.reshape(-1)) for x, y in zip(a, b)]).sum())


def _sumsq(ts) -> float:
    """sum_i |t_i|^2 of a list of tensors (one fused norm per tensor)."""
    return float(torch.stack(torch._foreach_norm(ts)).square().sum()) if ts else 0.0


def own_curvature(closure: Callable, params: Sequence, direction: Sequence, *, method: str = "hvp",
                  eps: float | None = None, grad: Sequence | None = None) -> float:
    """d^T H d / |d|^2 of the closure's loss in ``params`` along ``direction`` (module docstring).

    Args:
        closure: ``closure()`` returns the loss (scalar tensor with its graph)
            on the current batch.
        params: the tensors the direction lives on.
        direction: one tensor per parameter (d).
        method: ``"hvp"`` (about 2 gradient evaluations) or ``"fd"`` (2
            central, 1 one-sided with ``grad``).
        eps: finite-difference step along the unit direction (``"fd"`` only).
        grad: ``"fd"`` only: the closure's gradient at the current
            parameters, if already computed; then the difference is one-sided.

    Returns:
        The signed curvature (NaN when d = 0).
    """
    own, _ = _measure([closure], [list(params)], 0, list(direction), method, eps, field=False,
                      known=None if grad is None else [list(grad)])
    return own


def field_measure(closures: Sequence[Callable], players: Sequence[Sequence], p: int, direction: Sequence, *,
                  method: str = "hvp", eps: float | None = None,
                  grads: Sequence | None = None) -> tuple[float, float]:
    """(own curvature, field measure |J[:, p] d| / |d|) of player ``p`` stepping along ``direction``.

    Args:
        closures: each player's loss closure (its own loss on the current
            batch; a player's closure must depend on the other players'
            parameters where the game couples them: no ``.detach()``).
        players: each player's parameters, in the order of ``closures``.
        p: the index of the stepping player.
        direction: d_p, one tensor per parameter of player p.
        method: ``"hvp"`` (about 4 gradient evaluations for two players) or
            ``"fd"`` (2 per player).
        eps: finite-difference step (``"fd"`` only).
        grads: ``"fd"`` only: each player's gradient of its loss at the
            current point, or None where not computed; one-sided when all are given.
    """
    if len(closures) != len(players):
        raise InputError(f"need one closure per player; got {len(closures)} closures and {len(players)} players")
    return _measure(list(closures), [list(x) for x in players], p, list(direction), method, eps, field=True,
                    known=None if grads is None else list(grads))


def _measure(closures, players, p, d, method, eps, field, known=None):
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}")
    xp = players[p]
    if len(d) != len(xp):
        raise InputError(f"direction needs one tensor per parameter ({len(xp)}); got {len(d)}")
    d = [t.detach() for t in d]
    dd = _sumsq(d)
    if not dd > 0 or not math.isfinite(dd):
        return math.nan, math.nan
    if method == "hvp":
        return _hvp(closures, players, p, d, dd, field)
    return _fd(closures, players, p, d, dd, eps, field, known)


def _hvp(closures, players, p, d, dd, field):
    xp = players[p]
    gp = _grad(_call(closures[p], "closure"), xp, create_graph=True)
    hd = _grad(_dot(gp, d), xp, what="closure")
    own = float(_dot(hd, d)) / dd
    if not field:
        return own, math.nan
    sq = _norm2(hd)
    for q, (cq, xq) in enumerate(zip(closures, players)):
        if q == p:
            continue
        lq = _call(cq, "other_closure")
        try:
            vq = torch.autograd.grad(lq, xp, create_graph=True, allow_unused=True)
        except RuntimeError as exc:
            raise InputError(f"cannot differentiate the other player's loss ({exc})") from exc
        if all(v is None for v in vq):
            raise InputError(_DETACHED)
        vq = [torch.zeros_like(x) if v is None else v for v, x in zip(vq, xp)]
        s = _dot(vq, d)
        if s.requires_grad:
            sq += _norm2(_grad(s, xq, what="other_closure"))
    return own, math.sqrt(sq) / math.sqrt(dd)


def _fd(closures, players, p, d, dd, eps, field, known=None):
    """Finite difference of gradients along the unit direction: central, or one-sided from ``known``.

    ``known[q]``: player q's gradient at the current point when the caller has
    it (the one ``backward()`` just computed); with all needed ones known the
    difference is one-sided, (F(x + eps u) - F(x)) / eps, and the current
    point is not evaluated again.
    """
    xp = players[p]
    norm = math.sqrt(dd)
    who = list(range(len(closures))) if field else [p]
    known = list(known or [None] * len(closures))
    one_sided = known[p] is not None
    for q in who:  # one-sided once this player's gradient is known: evaluate the others' at x
        if one_sided and known[q] is None:
            known[q] = _grad(_call(closures[q], "other_closure"), players[q], what="other_closure")
    if eps is None:
        n = sum(x.numel() for x in xp)
        rms = math.sqrt(_sumsq([x.detach() for x in xp]) / max(n, 1))
        eps = torch.finfo(xp[0].dtype).eps ** (0.5 if one_sided else 1.0 / 3.0) * (1.0 + rms)
    elif not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
        raise InputError(f"eps must be a positive number; got {eps!r}")
    saved = [x.detach().clone() for x in xp]
    data = [x.detach() for x in xp]
    grads = {}
    try:
        for sign in (1.0,) if one_sided else (1.0, -1.0):
            with torch.no_grad():
                torch._foreach_copy_(data, saved)
                torch._foreach_add_(data, d, alpha=sign * eps / norm)
            for q in who:
                if q == p:
                    grads[q, sign] = _grad(_call(closures[q], "closure"), players[q])
                    continue
                lq = _call(closures[q], "other_closure")
                if sign == 1.0:  # once: the other loss must see this player's parameters
                    both = torch.autograd.grad(lq, list(players[q]) + xp, allow_unused=True)
                    if all(t is None for t in both[len(players[q]):]):
                        raise InputError(_DETACHED)
                    grads[q, sign] = [torch.zeros_like(x) if t is None else t
                                      for t, x in zip(both[:len(players[q])], players[q])]
                else:
                    grads[q, sign] = _grad(lq, players[q], what="other_closure")
    finally:
        with torch.no_grad():
            torch._foreach_copy_(data, saved)
    lo, width = (known, eps) if one_sided else ({q: grads[q, -1.0] for q in who}, 2 * eps)
    # own curvature: (F_p(x+) - F_p(x-)) . d / (|d| width), two scalar products
    own = (_vdot(grads[p, 1.0], d) - _vdot(lo[p], d)) / (norm * width)
    if not field:
        return own, math.nan
    sq = sum(_sumsq(torch._foreach_sub(grads[q, 1.0], [t.detach() for t in lo[q]])) for q in who)
    return own, math.sqrt(sq) / width


def step_direction(optimizer, group) -> tuple[list, list]:
    """(d, g): the direction of the group's next step and its gradient, one tensor per parameter.

    The step is x <- x - lr d. SGD: d = g (+ weight decay, momentum and
    Nesterov as ``torch.optim.SGD`` applies them). Adam/AdamW: the
    bias-corrected m_hat / (sqrt(v_hat) + eps) after folding in the current
    gradient, read from ``exp_avg``/``exp_avg_sq`` and ``step`` (AdamW's
    decoupled decay is not part of d). Any other optimizer: d = g.
    Parameters without a gradient get zeros.
    """
    params = group["params"]
    g = [torch.zeros_like(x) if x.grad is None else x.grad.detach() for x in params]
    wd = group.get("weight_decay", 0.0) or 0.0
    if isinstance(optimizer, torch.optim.Adam) or isinstance(optimizer, torch.optim.AdamW):
        b1, b2 = group["betas"]
        eps = group["eps"]
        d = []
        for x, gi in zip(params, g):
            gi = gi + wd * x.detach() if wd and not isinstance(optimizer, torch.optim.AdamW) else gi
            st = optimizer.state.get(x, {})
            m, v = st.get("exp_avg"), st.get("exp_avg_sq")
            t = float(st.get("step", 0)) + 1.0
            m = (1 - b1) * gi if m is None else b1 * m + (1 - b1) * gi
            v = (1 - b2) * gi * gi if v is None else b2 * v + (1 - b2) * gi * gi
            d.append((m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps))
        return d, g
    if isinstance(optimizer, torch.optim.SGD):
        mom, damp, nest = group.get("momentum", 0.0), group.get("dampening", 0.0), group.get("nesterov", False)
        if not mom and not wd:
            return g, g  # the same list: d is g
        d = []
        for x, gi in zip(params, g):
            gi = gi + wd * x.detach() if wd else gi
            if mom:
                buf = optimizer.state.get(x, {}).get("momentum_buffer")
                buf = gi.clone() if buf is None else mom * buf + (1 - damp) * gi
                gi = gi + mom * buf if nest else buf
            d.append(gi)
        return d, g
    return list(g), g


class NoiseRatio:
    """Bias-corrected EMAs of a player's gradient and squared norm: SNR = |EMA g|^2 / EMA |g|^2.

    Args:
        beta: EMA decay (window about 2 / (1 - beta) steps).

    Attributes:
        count: observations folded in.
    """

    def __init__(self, beta: float = 0.9):
        if not isinstance(beta, (int, float)) or isinstance(beta, bool) or not 0.0 <= beta < 1.0:
            raise InputError(f"noise_beta must be a number in [0, 1); got {beta!r}")
        self.beta = float(beta)
        self.reset()

    def reset(self) -> None:
        self.count = 0
        self._m = None
        self._q = 0.0
        self._pow = 1.0

    def update(self, grads: Sequence) -> float:
        """Fold in the gradient (one tensor per parameter); returns its squared norm |g|^2."""
        b = self.beta
        self._pow *= b
        alpha = (1 - b) / (1 - self._pow)
        grads = [t.detach() for t in grads]
        if self._m is None:
            self._m = [torch.zeros_like(t) for t in grads]
        gg = _sumsq(grads)
        if grads:
            torch._foreach_lerp_(self._m, grads, alpha)
            self._q += alpha * (gg - self._q)
        self.count += 1
        return gg

    def read(self) -> tuple[float, float]:
        """(signal |EMA g|^2, noise EMA|g|^2 - |EMA g|^2), NaN before the first observation."""
        if self._m is None:
            return math.nan, math.nan
        sig = _sumsq(self._m)
        return sig, max(self._q - sig, 0.0)

    @property
    def snr(self) -> float:
        sig, noise = self.read()
        return sig / (sig + noise) if sig + noise > 0 else math.nan

    def state_dict(self) -> dict:
        return {"beta": self.beta, "count": self.count, "m": None if self._m is None else [t.clone() for t in self._m],
                "q": self._q, "pow": self._pow}

    def load_state_dict(self, sd) -> None:
        self.beta, self.count = float(sd["beta"]), int(sd["count"])
        self._q, self._pow = float(sd["q"]), float(sd["pow"])
        self._m = None if sd["m"] is None else [t.clone() for t in sd["m"]]


__all__ = ["own_curvature", "field_measure", "step_direction", "NoiseRatio", "check_loss", "METHODS"]
