"""The diagnostics of :class:`~stochctl.trainers.torch_adapter.ControlledLR`, kept on the device and read on demand.

Per step a scheduler only appends its statuses and divergence flags (tensors); they are counted
together when a diagnostic is read, or every 1024 steps to bound the memory. Reading one is the
host synchronisation, and raises :class:`~stochctl.errors.DivergenceError` once for every new
divergence.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import DivergenceError, require_extra
from ..policies.controller import COUNT_NAMES, Tally, fold_tallies, to_python
from ..policies.estimators import Estimate
from ..policies.local_policy import LocalPolicy

torch = require_extra("torch", "torch")


class Diagnostics:
    """Statuses, divergence flags and last estimates of a scheduler's groups (mixed into ControlledLR)."""

    def _record(self, i: int, est, control, diverged=None, step: int = 0, finite=None, value=None) -> None:
        """Keep group i's estimate, multiplier and status (in their arrays) and a divergence flag.

        The flag is ``diverged``, or ``finite`` kept as it is and negated when counted, or whether
        ``value`` is not finite, taken when counted.

        Nothing is computed per step: the statuses and flags are counted together when read, or
        every 1024 steps to bound the memory (:func:`~stochctl.policies.controller.fold_tallies`).
        """
        self._last[i] = (est, control.multiplier)
        if control.status is not None:
            self._pending.append(control)
            if isinstance(self.policy, LocalPolicy):
                self.policy.observe(control)
        if diverged is not None:
            self._flags.append((step, diverged, 0))
        elif finite is not None:
            self._flags.append((step, finite, 1))
        elif value is not None:
            self._flags.append((step, value, 2))
        if len(self._pending) + len(self._flags) >= 1024:
            self._fold()

    def _fold(self) -> None:
        """Count the pending statuses into one tally and the pending divergence flags into one count (on the device)."""
        if self._pending:
            t = fold_tallies(([Tally(self._tally)] if self._tally is not None else []) + self._pending)
            self._tally, self._pending = t, []
        if self._flags:
            bad = torch.stack([f if kind == 0 else ~f if kind == 1 else ~torch.isfinite(f)
                               for _, f, kind in self._flags]).to(torch.int64)
            steps = torch.tensor([k for k, _, _ in self._flags], device=bad.device) if bad.device.type == "cpu" else \
                torch.tensor([k for k, _, _ in self._flags]).pin_memory().to(bad.device, non_blocking=True)
            first = torch.where(bad > 0, steps, torch.iinfo(torch.int64).max).min()
            if self._bad is None:
                self._bad, self._bad_first = bad.sum(), first
            else:
                self._bad, self._bad_first = self._bad + bad.sum(), torch.minimum(self._bad_first, first)
            self._flags = []

    @property
    def divergences(self) -> int:
        """Steps (summed over groups) whose loss, gradient or measurement was not finite."""
        self._fold()
        return 0 if self._bad is None else int(self._bad)

    def check(self) -> None:
        """Raise :class:`~stochctl.errors.DivergenceError` if a step diverged since the last report (one host read)."""
        n = self.divergences
        if n > self._bad_seen:
            self._bad_seen = n
            safe = getattr(self.policy, "fallback", 0.0)
            raise DivergenceError(f"training diverged: a loss, gradient or curvature measurement was not finite "
                                  f"at {n} scheduler step(s), the first at step {int(self._bad_first)}; the rate "
                                  f"there was the safe multiplier {safe} times the base rate")

    @property
    def counts(self) -> dict:
        """How often each policy case occurred (name -> int), summed over groups and steps."""
        self.check()
        self._fold_tally()
        return self._counts

    def _fold_tally(self) -> None:
        self._fold()
        if self._tally is not None:
            tally, self._tally = np.asarray(to_python(self._tally)).reshape(-1), None
            for name, v in zip(COUNT_NAMES, tally):
                self._counts[name] = self._counts.get(name, 0) + int(v)

    @property
    def last_estimates(self) -> list:
        """The :class:`Estimate` of each group at the last step (Python numbers, numpy arrays per coordinate)."""
        self.check()
        return [None if last is None else _python_estimate(last[0]) for last in self._last]

    @property
    def last_multipliers(self) -> list:
        """u* of each group at the last step."""
        self.check()
        return [math.nan if last is None else to_python(last[1]) for last in self._last]

    @property
    def last_curvature(self) -> list:
        """Per group, the last measured (own curvature, field measure) (NaN before a measurement)."""
        self.check()
        return [(math.nan, math.nan) if s is None else tuple(float(v) for v in torch.stack(list(s)).tolist())
                for s in self._stored]


def _python_estimate(e):
    """An estimate with Python numbers (numpy arrays per coordinate): the one conversion, when read."""
    count = e.count if isinstance(e.count, int) else int(round(float(to_python(e.count))))
    return Estimate(to_python(e.a), to_python(e.s2), to_python(e.grad_norm), count, bool(to_python(e.ready)),
                    None if e.weights is None else to_python(e.weights), None if e.field is None else to_python(e.field))
