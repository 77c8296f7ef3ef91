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

from ..errors import InputError, require_extra

torch = require_extra("torch", "torch")

METHODS = ("hvp", "fd")


_DETACHED = ("other_closure's loss does not depend on this player's parameters; compute it without .detach() "
             "of this player's output")


def check_loss(loss, what: str = "closure"):
    """The closure's value as a 0-d tensor with a graph, or InputError naming what is wrong.

    Only what the tensor's metadata tells is checked here (type, size, graph), so no value is read:
    a non-finite loss gives a non-finite measurement, which the caller masks on the device.
    """
    if not isinstance(loss, torch.Tensor):
        raise InputError(f"{what} must return the loss as a scalar tensor; got {type(loss).__name__}")
    if loss.numel() != 1:
        raise InputError(f"{what} must return a scalar loss; got a tensor of shape {tuple(loss.shape)}")
    if not loss.requires_grad:
        raise InputError(f"{what} returned a loss without a graph (requires_grad=False); compute it with "
                         "gradients enabled, without .detach() or torch.no_grad()")
    return loss.reshape(())


def _call(closure, what: str, finite: list):
    with torch.enable_grad():
        loss = check_loss(closure(), what)
    finite.append(_finite(loss.detach()))
    return loss


def _grad(outputs, inputs, *, create_graph=False, what="closure"):
    try:
        gs = torch.autograd.grad(outputs, inputs, create_graph=create_graph, allow_unused=True)
    except RuntimeError as exc:  # freed graph: the closure called backward() itself
        raise InputError(f"cannot differentiate the loss of {what} ({exc}); return the loss without "
                         "calling backward() on it") from exc
    return [torch.zeros_like(x) if g is None else g for g, x in zip(gs, inputs)]


def _flat(ts):
    """One 1-D tensor of a list of tensors without a graph (a copy)."""
    return torch.cat([t.reshape(-1) for t in ts]) if len(ts) != 1 else ts[0].reshape(-1)


def _sumsq(ts):
    """sum_i |t_i|^2 of a list of tensors without a graph, a 0-d tensor (one fused norm per tensor)."""
    if not ts:
        return torch.zeros(())
    if len(ts) == 1:
        return torch.linalg.vector_norm(ts[0]).square()
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(ts))).square()


def _finite(x):
    """isfinite of a tensor as x - x == 0 (inf - inf and NaN - NaN are NaN): two operations instead of four."""
    return (x - x) == 0


def _vdot(a, b):
    """sum_i a_i . b_i over two lists of tensors, a 0-d tensor."""
    return torch.dot(_flat(a), _flat(b))


def own_curvature(closure: Callable, params: Sequence, direction: Sequence, *, method: str = "hvp",
                  eps: float | None = None, grad: Sequence | None = None):
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
        The signed curvature, a 0-d tensor on the parameters' device (NaN when d = 0 or the loss is
        not finite).
    """
    own, _, _ = _measure([closure], [list(params)], 0, list(direction), method, eps, field=False,
                         known=None if grad is None else [list(grad)])
    return own


def field_measure(closures: Sequence[Callable], players: Sequence[Sequence], p: int, direction: Sequence, *,
                  method: str = "hvp", eps: float | None = None, grads: Sequence | None = None):
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

    Returns:
        Two 0-d tensors on the parameters' device (NaN when d = 0 or a loss is not finite).
    """
    if len(closures) != len(players):
        raise InputError(f"need one closure per player; got {len(closures)} closures and {len(players)} players")
    own, fld, _ = _measure(list(closures), [list(x) for x in players], p, list(direction), method, eps, field=True,
                           known=None if grads is None else list(grads))
    return own, fld


def _measure(closures, players, p, d, method, eps, field, known=None, dd=None, parts=None):
    """(own, field, finite): 0-d tensors; ``finite`` is False when a loss the measurement evaluated was not.

    ``parts``: a dict which ``"fd"`` with the field fills with ``"cross"``, the reduced coupling
    e_q . (F_q(x + eps e_p) - F_q(x)) / eps, e_p = d_p / |d_p|, e_q = F_q(x) / |F_q(x)| (the other
    player's gradient response along its own gradient per unit step of p: the off-diagonal entry of
    the two-player model in the players' step directions, SGD); NaN otherwise.

    With d = 0 (or |d| not finite) both measures are NaN and ``finite`` is True (nothing diverged:
    the policy takes its fallback). Nothing here reads a tensor's value.
    """
    if method not in METHODS:
        raise InputError(f"method must be one of {METHODS}; got {method!r}")
    xp = players[p]
    if len(d) != len(xp):
        raise InputError(f"direction needs one tensor per parameter ({len(xp)}); got {len(d)}")
    d = [t if not t.requires_grad else t.detach() for t in d]
    dd = _sumsq(d) if dd is None else dd
    inv = torch.rsqrt(dd)  # 1 / |d|: inf for d = 0, which makes both measures NaN (0 * inf)
    safe = torch.nan_to_num(inv, posinf=0.0)  # the step along d / |d| (none for d = 0)
    finite = []
    if method == "hvp":
        own, fld = _hvp(closures, players, p, d, inv, safe, field, finite)
    else:
        own, fld = _fd(closures, players, p, d, inv, safe, eps, field, known, finite, parts)
    ok = finite[0]
    for f in finite[1:]:
        ok = ok & f
    return own, (fld if field else torch.full_like(own, math.nan)), ok


def _hvp(closures, players, p, d, inv, safe, field, finite):
    xp = players[p]
    gp = _grad(_call(closures[p], "closure", finite), xp, create_graph=True)
    hd = _grad(_vdot_graph(gp, d), xp, what="closure")
    own = _vdot(hd, d) * (inv * inv)
    if not field:
        return own, own
    sq = _sumsq(hd)
    for q, (cq, xq) in enumerate(zip(closures, players)):
        if q == p:
            continue
        lq = _call(cq, "other_closure", finite)
        try:
            vq = torch.autograd.grad(lq, xp, create_graph=True, allow_unused=True)
        except RuntimeError as exc:
            raise InputError(f"cannot differentiate the other player's loss ({exc})") from exc
        if all(v is None for v in vq):
            raise InputError(_DETACHED)
        vq = [torch.zeros_like(x) if v is None else v for v, x in zip(vq, xp)]
        s = _vdot_graph(vq, d)
        if s.requires_grad:
            sq = sq + _sumsq(_grad(s, xq, what="other_closure"))
    return own, torch.sqrt(sq) * inv


def _vdot_graph(a, b):
    """sum_i a_i . b_i keeping the graph of ``a`` (b detached)."""
    return sum((x * y).sum() for x, y in zip(a, b))


def _fd(closures, players, p, d, inv, safe, eps, field, known, finite, parts=None):
    """Finite difference of gradients along the unit direction: central, or one-sided from ``known``.

    ``known[q]``: player q's gradient at the current point when the caller has
    it (the one ``backward()`` just computed); with all needed ones known the
    difference is one-sided, (F(x + eps u) - F(x)) / eps, and the current
    point is not evaluated again. The step eps / |d| is a 0-d tensor, applied
    with one fused multiply-add over the parameters.
    """
    xp = players[p]
    who = list(range(len(closures))) if field else [p]
    known = list(known or [None] * len(closures))
    one_sided = known[p] is not None
    for q in who:  # one-sided once this player's gradient is known: evaluate the others' at x
        if one_sided and known[q] is None:
            known[q] = _grad(_call(closures[q], "other_closure", finite), players[q], what="other_closure")
    data = xp  # the parameters themselves, read and moved only under no_grad (no detached aliases to make)
    with torch.no_grad():
        if eps is None or isinstance(eps, torch.Tensor):  # eps = u^(1/2) (1 + rms(x)) one-sided, u^(1/3) (1 + rms(x)) central
            n = sum(x.numel() for x in xp)
            c = torch.finfo(xp[0].dtype).eps ** (0.5 if one_sided else 1.0 / 3.0)
            small = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(data))) * (c / math.sqrt(max(n, 1))) + c
            if eps is not None:  # a displacement computed on the device; the small one where it is not positive
                eps = eps.reshape(()).to(small.dtype)
                eps = torch.where((eps > small) & _finite(eps), eps, small)
            else:
                eps = small
        elif isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0 and math.isfinite(eps):
            eps = torch.full((), float(eps), dtype=xp[0].dtype, device=xp[0].device)
        else:
            raise InputError(f"eps must be a positive number; got {eps!r}")
        saved = torch._foreach_mul(data, 1.0)  # copies, bit for bit (-0 and NaN payloads included)
        step = eps * safe
    grads = {}
    try:
        for sign in (1.0,) if one_sided else (1.0, -1.0):
            with torch.no_grad():
                if sign < 0:
                    torch._foreach_copy_(data, saved)
                torch._foreach_add_(data, torch._foreach_mul(d, step if sign > 0 else -step))
            for q in who:
                if q == p:
                    grads[q, sign] = _grad(_call(closures[q], "closure", finite), players[q])
                    continue
                lq = _call(closures[q], "other_closure", finite)
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
    # own curvature: (F_p(x+) - F_p(x-)) . d / (|d| width), one scalar product of the difference
    flat_lo = _flat(lo[p])
    same = len(lo[p]) == len(d) and all(a is b for a, b in zip(lo[p], d))  # SGD: d is the known gradient
    diff_p = _flat(grads[p, 1.0]) - flat_lo
    own = torch.dot(diff_p, flat_lo if same else _flat(d)) * (inv / width)
    if not field:
        return own, own
    sq = torch.dot(diff_p, diff_p)
    for q in who:
        if q != p:
            diff_q = _flat(grads[q, 1.0]) - _flat(lo[q])
            sq = sq + torch.dot(diff_q, diff_q)
            if parts is not None:  # e_q . diff_q / width, e_q = F_q / |F_q| (NaN for F_q = 0)
                f_q = _flat(lo[q])
                parts["cross"] = torch.dot(diff_q, f_q) * torch.rsqrt(torch.dot(f_q, f_q)) * (inv / inv / width)
    return own, torch.sqrt(sq) * (inv / inv / width)  # NaN for d = 0, as the own curvature


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
    g = [torch.zeros_like(x) if x.grad is None else x.grad if not x.grad.requires_grad else x.grad.detach()
         for x in params]
    wd = group.get("weight_decay", 0.0) or 0.0
    if isinstance(optimizer, torch.optim.Adam) or isinstance(optimizer, torch.optim.AdamW):
        b1, b2 = group["betas"]
        eps = group["eps"]
        d = []
        for x, gi in zip(params, g):
            gi = gi + wd * x.detach() if wd and not isinstance(optimizer, torch.optim.AdamW) else gi
            st = optimizer.state.get(x, {})
            m, v = st.get("exp_avg"), st.get("exp_avg_sq")
            step = st.get("step")
            # a tensor in torch's Adam: kept on its device, in float64 as Adam's own bias correction
            t = 1.0 if step is None else step.to(torch.float64) + 1.0
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
        self._q = None
        self._pow = 1.0

    def update(self, grads: Sequence, gg=None):
        """Fold in the gradient (one tensor per parameter); returns its squared norm |g|^2 (0-d tensor).

        EMA with bias correction: alpha_k = (1 - beta) / (1 - beta^k), m <- m + alpha_k (g - m),
        q <- q + alpha_k (|g|^2 - q); all on the gradient's device (alpha_k is a number known on the host).
        """
        b = self.beta
        self._pow *= b
        alpha = (1 - b) / (1 - self._pow)
        grads = [t if not t.requires_grad else t.detach() for t in grads]
        if self._m is None:
            self._m = [torch.zeros_like(t) for t in grads]
        gg = _sumsq(grads) if gg is None else gg
        if grads:
            torch._foreach_lerp_(self._m, grads, alpha)
            self._q = gg * alpha if self._q is None else torch.lerp(self._q, gg, alpha)
        self.count += 1
        return gg

    def read(self):
        """(signal |EMA g|^2, noise EMA|g|^2 - |EMA g|^2) as 0-d tensors; NaN before the first observation."""
        if self._m is None or self._q is None:
            return math.nan, math.nan
        sig = _sumsq(self._m).double()
        return sig, torch.clamp(self._q - sig, min=0.0)

    @property
    def snr(self) -> float:
        sig, noise = (float(v) for v in self.read())
        return sig / (sig + noise) if sig + noise > 0 else math.nan

    def state_dict(self) -> dict:
        return {"beta": self.beta, "count": self.count, "m": None if self._m is None else [t.clone() for t in self._m],
                "q": None if self._q is None else self._q.clone(), "pow": self._pow}

    def load_state_dict(self, sd) -> None:
        self.beta, self.count = float(sd["beta"]), int(sd["count"])
        self._pow = float(sd["pow"])
        q = sd["q"]
        self._q = None if q is None else torch.as_tensor(q).clone()
        self._m = None if sd["m"] is None else [t.clone() for t in sd["m"]]


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


__all__ = ["own_curvature", "field_measure", "directional_curvature", "step_direction", "NoiseRatio", "check_loss",
           "METHODS"]
