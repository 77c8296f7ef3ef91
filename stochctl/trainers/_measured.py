"""The measured-curvature step of :class:`~.torch_adapter.ControlledLR`, on the parameters' device.

Per parameter group, with d its step direction and g its gradient (:func:`.curvature.step_direction`):

    |g|^2 -> the noise ratio's EMAs;  (own, field) measured on a schedule (:func:`.curvature._measure`);
    a = own |d|^2 / (g . d),  field' = field |d|^2 / (g . d),  s2 = EMA|g|^2 - |EMA g|^2,  |g| = |EMA g|;
    (u, status) = controller_step(policy, k, Estimate(a, s2, |g|, field')),  lr = eta_g u.

Everything stays a tensor on the parameters' device; no value is read on the host. A step whose
loss, gradient or measurement is not finite gets the policy's safe multiplier (``fallback``) through
a device-side mask and is counted; the count is read (and a :class:`~stochctl.errors.DivergenceError`
raised) only when the scheduler's diagnostics are read (:meth:`~.torch_adapter.ControlledLR.check`).
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError, require_extra
from ..policies.controller import controller_step
from ..policies.estimators import Estimate
from ..policies.estimators.base import NONCONVEX, OK
from ..policies.game_policy import Measurement
from ..policies.local_policy import LocalPolicy
from .curvature import _finite, _flat, _measure, _sumsq, step_direction

torch = require_extra("torch", "torch")


def accepts_tensor_lr(optimizer, group) -> bool:
    """Whether this optimizer steps with ``group["lr"]`` a 0-d tensor.

    ``torch.optim.SGD`` does (read on the device by ``fused=True``; the other implementations
    read its value once per step), and ``Adam``/``AdamW`` except with ``foreach=True`` and
    ``capturable=False``, which torch refuses (read on the device with ``capturable=True`` or
    ``fused=True``). Other optimizers get a Python number (one host read per step).
    """
    if isinstance(optimizer, torch.optim.SGD):
        return True
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        return not (group.get("foreach") and not group.get("capturable"))
    return False


def tensor_lr_dtype(optimizer, group):
    """The type a tensor lr must have for this optimizer's step, or None when any floating type does.

    The fused kernels (SGD, Adam, AdamW with ``fused=True``) read a float32 lr on the device; the
    other implementations take the float64 rate as it is.
    """
    return torch.float32 if group.get("fused") else None


class LaggedFlag:
    """A device boolean read on the host one step later, without waiting for the device.

    ``write`` copies it into host memory (pinned, non-blocking on CUDA) and records an event;
    ``read`` returns the value written before once its copy has completed (``Event.query``,
    never a wait; on the CPU the copy is already done), else False and keeps it pending. The
    host memory is read through a numpy view made once, so no tensor is converted.
    """

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self._host = torch.zeros(1, dtype=torch.bool, pin_memory=self.cuda)
        self._np = self._host.numpy()
        self._event = None
        self._pending = False

    def write(self, flag) -> None:
        self._host.copy_(flag.reshape(1), non_blocking=True)
        if self.cuda:
            self._event = torch.cuda.Event()
            self._event.record()
        self._pending = True

    def clear(self) -> None:
        self._pending = False

    def read(self) -> bool:
        if not self._pending or (self._event is not None and not self._event.query()):
            return False
        self._pending = False
        return bool(self._np[0])


def measured_step(sched, closure, other_closure) -> None:
    """Measure the step about to be taken and set each group's rate (module docstring)."""
    k = sched.last_epoch
    groups = sched.optimizer.param_groups
    prepared = []
    for i, group in enumerate(groups):
        params = group["params"]
        d, g = step_direction(sched.optimizer, group)
        if not all(p.requires_grad for p in params):
            keep = [p.requires_grad for p in params]
            params, d, g = ([t for t, q in zip(ts, keep) if q] for ts in (params, d, g))
        gg = _sumsq(g).double()  # the scalars of the policy in float64, whatever the parameters' type
        sched._noise[i].update(g, gg)
        prepared.append((params, d, g, gg))
    measure = k % sched.curvature_every == 0 or any(s is None for s in sched._stored)
    if sched.remeasure_growth is not None:
        if not measure and sched._flag.read():
            measure = True
            sched.remeasurements += 1
        if measure:
            sched._flag.clear()
    everything = [p for g in groups for p in g["params"]] + (sched._other or [])
    # the gradients backward() computed: the closures differentiate with autograd.grad, which leaves
    # .grad alone; the references are put back in case a closure replaced them
    saved = [p.grad for p in everything] if measure else None
    copies = {} if saved is None else {id(p): c for p, c in zip(everything, saved) if c is not None}
    if sched._lookup is None and isinstance(sched.policy, LocalPolicy):
        sched._lookup = sched.policy.lookup_fn(torch)
    grew_any = None
    lrs = []
    try:
        for i, ((params, d, g, gg), base) in enumerate(zip(prepared, sched.base_lrs)):
            sgd = d is g  # the step is the gradient: g . d = |d|^2 = |g|^2
            dd = gg if sgd else _sumsq(d)
            gd = dd if sgd else torch.dot(_flat(g), _flat(d))
            # SGD between measurements with the growth rule: valid iff |g|^2 <= growth^2 |g_measured|^2, which is
            # false for a non-finite |g|^2 too; the divergence flag is |g|^2's finiteness, taken when counted
            lazy = sgd and not measure and sched.remeasure_growth is not None
            finite = None if lazy else _finite(gg) if sgd else _finite(gg + dd + gd)
            if measure:
                field = sched.curvature == "field"
                md, eps, mdd = _displacement(sched, i, d, dd)
                parts = {}
                own, fld, ok = _measure([closure, other_closure] if field else [closure],
                                        [params, sched._other] if field else [params], 0, md, sched.method, eps,
                                        field=field, known=[_known(params, copies)] + ([None] if field else []),
                                        dd=mdd, parts=parts)
                sched._cross[i] = parts.get("cross", torch.full_like(own, float("nan"))).double()
                sched.curvature_measurements += 1
                measured = own + fld if field else own
                # d = 0 is no divergence (NaN measures, the fallback): only a finite |d| > 0 must give finite measures
                finite = finite & ok & (_finite(measured) | (dd == 0))
                sched._stored[i] = (own.double(), fld.double())
                # the growth threshold growth^2 |g|^2 of this measurement, made once
                sched._measured_gg[i] = gg if sched.remeasure_growth is None else sched.remeasure_growth ** 2 * gg
            valid = finite
            if lazy:
                grew, valid = gg > sched._measured_gg[i], gg <= sched._measured_gg[i]
                grew_any = grew if grew_any is None else grew_any | grew
            elif sched.remeasure_growth is not None and not measure:
                grew = gg > sched._measured_gg[i]
                valid = valid > grew  # finite and not grown, one operation on booleans
                grew_any = grew if grew_any is None else grew_any | grew
            own, fld = sched._stored[i]
            cross = sched._cross[i]
            if not sgd:  # curvature per unit of learning rate: |d|^2 / (g . d), NaN where the step does not descend
                scale = torch.where(gd > 0, dd / gd, torch.nan)
                own, fld, cross = own * scale, fld * scale, cross * scale  # (the product of the players' cross
                # entries, all the game rule uses, is the same whichever player's scale multiplies which)
            sig, noise = sched._noise[i].read()
            est = Estimate(own, noise, torch.sqrt(sig), sched._noise[i].count, True,
                           field=None if sched.curvature == "own" else fld)
            eta = float(sched.eta if sched.eta is not None else base)
            c = controller_step(sched.policy, k, est, eta=eta, lookup=sched._lookup, valid=valid)
            if sched.game is not None:
                c = _game_control(sched, c, own, fld, cross, sig, noise, eta)
            sched._record(i, est, c, finite=finite, step=k, value=gg if lazy else None)
            lrs.append(float(sched.base_lrs[i]) * c.multiplier)
            if sched.displacement == "secant":  # this step's direction, for the next measurement's secant
                sched._prev_d[i] = torch._foreach_mul(d, 1.0)
    finally:
        if saved is not None:
            for p, gr in zip(everything, saved):
                p.grad = gr
    if grew_any is not None:
        sched._flag.write(grew_any)
    set_rates(sched, lrs)
    sched.last_epoch = k + 1


def set_rates(sched, lrs) -> None:
    """Set each group's rate: the tensor itself where the optimizer accepts one, else a number (one host read)."""
    groups = sched.optimizer.param_groups
    for i, (group, lr) in enumerate(zip(groups, lrs)):
        if not isinstance(lr, torch.Tensor):
            lr = torch.as_tensor(lr, device=group["params"][0].device if group["params"] else None)
        if sched._tensor_lr[i]:
            dtype = tensor_lr_dtype(sched.optimizer, group)
            lr = lr.detach() if lr.requires_grad else lr
            group["lr"] = lr if dtype is None or lr.dtype == dtype else lr.to(dtype)
        else:
            group["lr"] = float(lr)  # this optimizer needs a number: one host read
    sched._last_lr = [group["lr"] for group in groups]


def _displacement(sched, i, d, dd):
    """(direction, eps, |direction|^2) of group i's measurement: the displacement is eps along the unit direction.

    ``"fd"``: d, eps None (the infinitesimal default of :func:`.curvature._fd`); ``"step"``: -d (the
    step's own direction) at the length of the step about to be taken at the group's current (last)
    rate, eps = lr |d|; ``"secant"``:
    back along the last step, to the point it started from (direction d_prev, eps = lr |d_prev|), so the
    one-sided difference is the secant of the last step on the current batch (the infinitesimal
    difference before a first step). ``method="hvp"`` ignores eps (exact).
    """
    lr = sched.optimizer.param_groups[i]["lr"]
    if sched.displacement == "step":
        return torch._foreach_neg(d), torch.as_tensor(lr, dtype=dd.dtype, device=dd.device) * torch.sqrt(dd), dd
    if sched.displacement == "secant" and sched._prev_d[i] is not None:
        prev = sched._prev_d[i]
        pdd = _sumsq(prev).double()
        return prev, torch.as_tensor(lr, dtype=pdd.dtype, device=pdd.device) * torch.sqrt(pdd), pdd
    return d, None, dd


def _game_control(sched, c, own, fld, cross, sig, noise, eta):
    """The player's multiplier from the shared game rule (:class:`~stochctl.policies.game_policy.GameRule`).

    Where the per-player step is OK or NONCONVEX (a finite measurement, the noise ratio ready) the
    multiplier is the rule's, from this player's measurement and the other player's latest; elsewhere
    (warm-up, fallback) it stays the per-player one.
    """
    meas = Measurement(own, torch.full_like(own, float("nan")) if sched.curvature == "own" else fld,
                       sig / (sig + noise), eta, cross)
    u = sched.game.multiplier(sched.role, meas, c.multiplier)
    use = (c.status == OK) | (c.status == NONCONVEX)
    return replace(c, multiplier=torch.where(use, u, c.multiplier))


def _known(params, copies):
    """The gradient backward() computed (saved before a closure could touch .grad), or None if incomplete."""
    known = [copies.get(id(p)) for p in params]
    return known if all(t is not None for t in known) else None


def check_closures(sched, closure, other_closure) -> None:
    if closure is None or not callable(closure):
        raise InputError(f"curvature={sched.curvature!r} needs scheduler.step(closure=loss_closure) with a "
                         f"callable closure; got {closure!r}")
    if sched.curvature == "field" and (other_closure is None or not callable(other_closure)):
        raise InputError("curvature='field' needs the other player's loss: scheduler.step(closure=..., "
                         f"other_closure=...); got other_closure={other_closure!r}")
