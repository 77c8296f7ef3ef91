"""Pairing of two players' controlled rates: both step at the smaller of their two multipliers.

With each player's scheduler (:class:`~stochctl.trainers.torch_adapter.ControlledLR`) setting its rate
``lr_p = eta_p u_p`` from its own measurement, :class:`MinPair` makes every step use

    u = min(u_p, u_q),   lr_p = eta_p u,

u_q the other player's latest multiplier before pairing (for alternating updates: the other player's
rate of its last step; at a player's first step, before the other has stepped, its own). A player
with several parameter groups counts as the smallest of its groups' multipliers. Why: a per-player
rule leaves the ratio of the two rates to chance, and a fast player softens the other's measured
curvature (DESIGN section 4c); the smaller rate is the one the measured coupling allows for both.
Everything stays a tensor on the parameters' device (``torch.minimum``), no host read.
"""

from __future__ import annotations

from ..errors import InputError, require_extra

torch = require_extra("torch", "torch")


class MinPair:
    """The shared state of two paired schedulers; :meth:`wrap` each player's scheduler once."""

    def __init__(self):
        self._latest: dict[int, object] = {}
        self._members: list[int] = []

    def wrap(self, scheduler) -> "PairedLR":
        """``scheduler`` as a member of this pair (at most two members)."""
        if len(self._members) >= 2:
            raise InputError("a MinPair pairs exactly two schedulers; a third was given")
        paired = PairedLR(scheduler, self, len(self._members))
        self._members.append(paired.index)
        return paired

    def apply(self, member: "PairedLR") -> None:
        """Record ``member``'s own multiplier (just set by its scheduler) and set its rate to the pair's minimum."""
        sched = member.scheduler
        groups = sched.optimizer.param_groups
        own = [torch.as_tensor(g["lr"]) / float(b) for g, b in zip(groups, sched.base_lrs)]
        mine = own[0] if len(own) == 1 else torch.stack(own).min()
        self._latest[member.index] = mine
        other = self._latest.get(1 - member.index)
        if other is None:
            return
        for g, u, base in zip(groups, own, sched.base_lrs):
            lr = torch.minimum(u, other.to(u.dtype)) * float(base)
            if isinstance(g["lr"], torch.Tensor):
                g["lr"] = lr.to(g["lr"].dtype)
            else:
                g["lr"] = float(lr)  # the optimizer takes a number: one host read
        sched._last_lr = [g["lr"] for g in groups]


class PairedLR:
    """A scheduler whose ``step`` sets its rate, then pairs it (:class:`MinPair`); other attributes pass through."""

    def __init__(self, scheduler, pair: MinPair, index: int):
        self.scheduler, self.pair, self.index = scheduler, pair, index

    def step(self, *args, **kwargs) -> None:
        self.scheduler.step(*args, **kwargs)
        self.pair.apply(self)

    def __getattr__(self, name):
        return getattr(self.scheduler, name)


__all__ = ["MinPair", "PairedLR"]
