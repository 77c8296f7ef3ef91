"""The learning-rate policy: estimates -> local-model coordinates -> table lookup, or the one-step rule."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError
from ..tables.discrete_policy import array_lookup, is_scaled, table_lookup
from ._declared import DISCRETE_AXES, _declared_axes
from ._evaluation import _Consts, classify, policy_inputs, step_cap
from .controller import COUNT_NAMES, Control, Tally, controller_step, fold_tallies, to_python
from .estimators.base import _SCALARS, FALLBACK, NONCONVEX, OK, STATUS_NAMES, WARMUP, Estimate, _check_int

# ---------------------------------------------------------------------------------------------
# policy


class LocalPolicy:
    """Learning-rate multiplier from the local-model table and online estimates.

    ``multiplier = policy(step, stats)``: ``stats`` is an :class:`Estimate` or a
    mapping with ``a``, ``s2``, ``grad_norm`` (and optionally ``ready``,
    ``field``).

    Three kinds of table fit. A continuous-time table (DESIGN section 4) has
    the axes ``tau_remaining`` and ``y`` (either order) and is read at
    tau_remaining = a eta (K - k), y = |grad| / sqrt(a eta s^2). A
    discrete-time table (DESIGN section 4b) is read at the ``u_max`` given
    here, h = eta a, tau_remaining = h (K - k) and the same y: ``"local-discrete"``
    (axes ``Z, T, v``) through :func:`stochctl.tables.discrete_policy.lookup`
    at any h > 0, tau >= 0, y; a table with axes ``u_max, h, tau_remaining, y``
    directly, beyond its last h node keeping the step h u of that node. The
    rules of :func:`step_cap` apply (a <= 0: the endpoint u_max capped by the
    field measure). Any other
    table fits when each of its axes declares how a trainer computes it
    (``from_trainer``, a formula in a, s2, grad_norm, eta, steps_left; e.g. a
    table exported from a solved TOML model with ``stochctl export --axis-from
    x=grad_norm/a``): it is read at those coordinates, with the same guards.

    Args:
        table: :class:`~stochctl.policy.PolicyTable`, a file path, or the name
            of a packaged table (default ``"local-quadratic"``).
        total_steps: K, the planned number of steps.
        u_max: discrete-time tables only (required there): the upper bound of
            the multiplier, a point of the table's ``u_max`` axis range.
        eta: base learning rate (may also be passed per call).
        value: the table value to use (``"u"``).
        tau_axis, y_axis: names of the table's axes.
        nonconvex_cap: the multiplier for a <= 0 is min(u_max, cap).
        warmup_multiplier: multiplier before the estimator is ready
            (default u_max, capped by ``nonconvex_cap``).
        fallback: multiplier for NaN/degenerate statistics (default: the
            table value's fallback, u_min).

    Attributes:
        counts: how often each case occurred (``ok``, ``warmup``,
            ``nonconvex``, ``fallback``, and the table lookups ``clamped``,
            ``nan``), counted per multiplier evaluated.
        last: the last call's table inputs ``tau_remaining``, ``y``, its
            ``status`` code(s) and the ``counts`` it added.
    """

    discrete = False
    scaled = False
    declared = None

    def __init__(self, table="local-quadratic", *, total_steps: int, eta: float | None = None,
                 value: str = "u", tau_axis: str = "tau_remaining", y_axis: str = "y",
                 nonconvex_cap: float | None = None, warmup_multiplier: float | None = None,
                 fallback: float | None = None, u_max: float | None = None):
        from ..tables import load_table

        self.table = load_table(table)
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.eta = None if eta is None else _positive("eta", eta)
        spec = self.table.value(value)
        self.value = value
        names = list(self.table.axis_names)
        self.scaled = is_scaled(self.table)
        self.discrete = names == list(DISCRETE_AXES) or self.scaled
        self.declared = None
        if not self.discrete and sorted(names) != sorted([tau_axis, y_axis]):
            self.declared = _declared_axes(self.table, tau_axis, y_axis)
        self._order = [0, 1] if names == [tau_axis, y_axis] else [1, 0]
        self._tau_first = self._order == [0, 1]
        self.tau_axis, self.y_axis = tau_axis, y_axis
        lo, hi = spec.valid_range
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"value {value!r} must have a finite valid range to be a multiplier; "
                             f"got {spec.valid_range}")
        if self.scaled:  # r = u*/u_max on (h u_max, u_max tau, y/sqrt(u_max)): any u_max > 0
            if u_max is None:
                raise InputError("a discrete-time table needs u_max= (the upper bound of the multiplier)")
            lo, hi = 0.0, _positive("u_max", u_max)
            self.h_max = math.inf
        elif self.discrete:
            ulo, uhi = self.table.axis("u_max").bounds
            if u_max is None:
                raise InputError(f"a discrete-time table needs u_max= (a value in its u_max axis range "
                                 f"[{ulo}, {uhi}])")
            if not (isinstance(u_max, (int, float)) and not isinstance(u_max, bool) and ulo <= u_max <= uhi):
                raise InputError(f"u_max must be a number in the table's u_max axis range [{ulo}, {uhi}]; "
                                 f"got {u_max!r}")
            hi = min(hi, float(u_max))
            self.h_max = float(self.table.axis("h").bounds[1])
        elif u_max is not None:
            raise InputError(f"u_max= selects a slice of a discrete-time table (axes {list(DISCRETE_AXES)}); "
                             f"this table's axes are {names} and its u_max is its valid range {spec.valid_range}")
        self.u_min, self.u_max = lo, hi
        cap = hi if nonconvex_cap is None else _positive("nonconvex_cap", nonconvex_cap, allow_zero=True)
        self.nonconvex_multiplier = float(np.clip(cap, lo, hi))
        self.warmup_multiplier = self.nonconvex_multiplier if warmup_multiplier is None else \
            _in_range("warmup_multiplier", warmup_multiplier, lo, hi)
        self.fallback = spec.fallback if fallback is None else _in_range("fallback", fallback, lo, hi)
        if math.isnan(self.fallback):
            self.fallback = lo
        self.counts = {k: 0 for k in COUNT_NAMES}
        self.last = None

    @property
    def counts(self) -> dict:
        """Cases counted so far (name -> int); tallies of controller steps are converted here, when read."""
        pending = self.__dict__.get("_pending")
        if pending:
            self._pending = []
            for name, v in zip(COUNT_NAMES, np.asarray(to_python(fold_tallies(pending))).reshape(-1)):
                self._counts[name] += int(v)
        return self._counts

    @counts.setter
    def counts(self, value) -> None:
        self._counts, self._pending = dict(value), []

    @property
    def last(self):
        """The last evaluation's ``tau_remaining``, ``y``, ``status`` and the ``counts`` it added (Python values)."""
        v = self._last
        if isinstance(v, Control):
            tally = np.asarray(to_python(v.tally)).reshape(-1)
            v = self._last = {"tau_remaining": to_python(v.tau_remaining), "y": to_python(v.y),
                              "status": to_python(v.status),
                              "counts": {k: int(c) for k, c in zip(COUNT_NAMES, tally)}}
        return v

    @last.setter
    def last(self, value) -> None:
        self._last = value

    def observe(self, control: Control) -> None:
        """Record a controller step: its statuses and coordinates stay in their arrays until read.

        The statuses are kept as they are (no operation per step) and counted together when
        :attr:`counts` is read, or every 1024 steps to bound the memory.
        """
        self._last = control
        if control.status is not None:
            pending = self.__dict__.setdefault("_pending", [])
            pending.append(control)
            if len(pending) >= 1024:
                self._pending = [Tally(fold_tallies(pending))]

    def config(self) -> dict:
        return {"table_checksum": None if self.table is None else self.table.checksum, "value": self.value,
                "rule": type(self).__name__, "total_steps": self.total_steps,
                "u_min": self.u_min, "u_max": self.u_max, "nonconvex_multiplier": self.nonconvex_multiplier,
                "warmup_multiplier": self.warmup_multiplier, "fallback": self.fallback}

    def _eta(self, eta):
        if eta is None:
            eta = self.eta
        if eta is None:
            raise InputError("LocalPolicy needs eta (the base learning rate): pass eta= here or to the constructor")
        return _positive("eta", eta)

    def inputs(self, step: int, stats, *, eta: float | None = None):
        """Table coordinates (tau_remaining, y) for the estimates (numpy)."""
        st = stats if isinstance(stats, Estimate) else Estimate.from_mapping(stats)
        with np.errstate(all="ignore"):
            return policy_inputs(np.asarray(st.a, dtype=np.float64), np.asarray(st.s2, dtype=np.float64),
                                 np.asarray(st.grad_norm, dtype=np.float64), self._eta(eta),
                                 float(self.total_steps - step))

    def evaluate(self, step, a, s2, grad_norm, ready, eta, lookup, xp=np, field=None, valid=None):
        """Generic core: (multiplier, status code, tau, y, lookup status) as arrays of ``xp``.

        ``lookup(tau, y, mask) -> (u, status)`` interpolates the table value
        where ``mask`` holds (status 0 inside, 1 clamped, 2 NaN query); other
        entries are ignored. Discrete-time policies call ``lookup(tau, y, mask, h)``
        and apply :func:`step_cap` with ``field``. Where ``valid`` is False the status is
        FALLBACK and u the safe multiplier ``fallback``.
        """
        consts = _Consts.of(self, xp, a)
        h = a * eta
        tau, y = policy_inputs(a, s2, grad_norm, eta, self.total_steps - step, xp, h=h, consts=consts)
        code = classify(a, s2, grad_norm, ready, xp, valid=valid, consts=consts)
        ok = code == OK
        if self.discrete:
            u_tab, lstat = lookup(tau, y, ok, h)
        elif self.declared is not None:
            coords = [f(a, s2, grad_norm, eta, self.total_steps - step) for f in self.declared.functions(xp)]
            broadcast = xp.broadcast_tensors if xp.__name__ == "torch" else xp.broadcast_arrays
            coords = [xp.where(ok, c, xp.zeros_like(c)) for c in broadcast(*(c + 0.0 * a for c in coords), a)[:-1]]
            u_tab, lstat = lookup(coords, ok)
            tau, y = (coords[self.declared.time] if self.declared.time is not None else xp.nan * a), xp.nan * a
        else:
            u_tab, lstat = lookup(tau, y, ok)
        lstat = xp.zeros_like(code) if isinstance(lstat, int) else xp.where(ok, lstat, 0)  # a rule: no lookup status
        # the multiplier of each status where the table is not read, one gather (constants in a's type and device)
        u = xp.where(ok, u_tab, xp.take(consts.sub, code))
        if self.discrete:
            u = step_cap(u, code, a, eta, field, xp, consts=consts)
        return u, code, tau, y, lstat

    def lookup_fn(self, xp=np):
        """The table lookup of :meth:`evaluate` for arrays of ``xp`` (numpy, torch or jax.numpy)."""
        if xp is np:
            if self.declared is not None:
                return self._np_lookup_declared
            return self._np_lookup_discrete if self.discrete else self._np_lookup
        from ..tables._array_lookup import array_table_lookup

        base = array_table_lookup(self.table, self.value, xp)
        if self.declared is not None:
            return lambda coords, mask: base(*coords)
        if not self.discrete:
            order = self._order

            def lookup(tau, y, mask):
                coords = (tau, y)
                return base(*(coords[i] for i in order))

            return lookup
        table, u_max, h_max = self.table, self.u_max, self.h_max
        return lambda tau, y, mask, h: array_lookup(base, table, u_max, h_max, h, tau, y, xp)

    def _np_lookup_discrete(self, tau, y, mask, h):
        shape = np.shape(tau)
        mask = np.broadcast_to(mask, shape).reshape(-1)
        hh = np.broadcast_to(np.asarray(h, dtype=np.float64), shape).reshape(-1)
        u = np.zeros(mask.size)
        status = np.zeros(mask.size, dtype=np.int8)
        if mask.any():
            u[mask], status[mask] = table_lookup(self.table, self.u_max, hh[mask],
                                                 np.asarray(tau, dtype=np.float64).reshape(-1)[mask],
                                                 np.asarray(y, dtype=np.float64).reshape(-1)[mask], self.value)
        return u.reshape(shape), status.reshape(shape)

    def _np_lookup_declared(self, coords, mask):
        shape = np.shape(coords[0])
        mask = np.broadcast_to(mask, shape).reshape(-1)
        u = np.zeros(mask.size)
        status = np.zeros(mask.size, dtype=np.int8)
        if mask.any():
            q = np.ascontiguousarray(np.stack([np.asarray(c, dtype=np.float64).reshape(-1)[mask] for c in coords],
                                              axis=1))
            res = self.table.lookup_array(q, names=[self.value])
            u[mask] = res.values[self.value]
            status[mask] = res.status
        return u.reshape(shape), status.reshape(shape)

    def _np_lookup(self, tau, y, mask):
        shape = np.shape(tau)
        mask = np.broadcast_to(mask, shape).reshape(-1)
        u = np.zeros(mask.size)
        status = np.zeros(mask.size, dtype=np.int8)
        if mask.any():
            cols = [np.asarray(tau, dtype=np.float64).reshape(-1)[mask],
                    np.asarray(y, dtype=np.float64).reshape(-1)[mask]]
            q = np.ascontiguousarray(np.stack([cols[i] for i in self._order], axis=1))
            res = self.table.lookup_array(q, names=[self.value])
            u[mask] = res.values[self.value]
            status[mask] = res.status
        return u.reshape(shape), status.reshape(shape)

    def _scalar(self, step, a, s2, gn, ready, eta, field=None):
        """Scalar twin of :meth:`evaluate` in plain Python (same formulas and order)."""
        lstat = 0
        tau = y = math.nan
        if not ready:
            code = WARMUP
        elif not (math.isfinite(a) and math.isfinite(gn) and gn >= 0):
            code = FALLBACK
        elif a <= 0:
            code = NONCONVEX
        elif not (math.isfinite(s2) and s2 >= 0):
            code = FALLBACK
        else:
            code = OK
        if code == OK and self.declared is not None:
            with np.errstate(all="ignore"):
                coords = tuple(float(f(a, s2, gn, eta, float(self.total_steps - step)))
                               for f in self.declared.functions(np))
            u, lstat = self.table.lookup_point(coords, self.value)
            if self.declared.time is not None:
                tau = coords[self.declared.time]
        elif code == OK:
            tau = a * eta * (self.total_steps - step)
            y = gn / math.sqrt(a * eta * s2) if s2 > 0 else math.inf
            if self.discrete:
                u, lstat = self._point_discrete(a * eta, tau, y)
            else:
                coords = (tau, y) if self._tau_first else (y, tau)
                u, lstat = self.table.lookup_point(coords, self.value)
        else:
            u = (self.nonconvex_multiplier if code == NONCONVEX else
                 self.warmup_multiplier if code == WARMUP else self.fallback)
        if self.discrete:  # scalar twin of step_cap
            m, apply = (abs(a), code == NONCONVEX) if field is None else (field, code in (OK, NONCONVEX))
            if apply and m > 0 and math.isfinite(m):
                u = min(u, 1.0 / (eta * m))
        return u, code, tau, y, lstat

    def _point_discrete(self, h, tau, y):
        """Discrete-time table value at one point (scalar twin of the discrete lookup)."""
        u, lstat = table_lookup(self.table, self.u_max, h, tau, y, self.value)
        return float(u), int(lstat)

    def __call__(self, step: int, stats, *, eta: float | None = None):
        """Multiplier u* for step ``step`` (0-based) given the estimates ``stats``."""
        st = stats if isinstance(stats, Estimate) else Estimate.from_mapping(stats)
        c = controller_step(self, step, st, eta=self._eta(eta))
        self.observe(c)
        return float(c.multiplier) if np.ndim(c.multiplier) == 0 else np.asarray(c.multiplier)


class OneStepPolicy(LocalPolicy):
    """The one-step-left Bellman rule of the discrete local model, in closed form (no table).

    With one step left the discrete iteration Y' = (1 - h u) Y - u sqrt(h) xi
    costs (1 - h u)^2 y^2 + h u^2 in expectation, minimised at

        u = min(u_max, y^2 / (1 + h y^2)),

    in the trainer's variables eta u = SNR / a with SNR = |grad|^2 / (|grad|^2 + s^2)
    (DESIGN section 4b): a Newton step along the step direction shrunk by the
    gradient's signal-to-noise ratio; never past the landing step h u = 1.
    Applied greedily at every step (it ignores the steps left). Non-convex
    directions and the field cap follow :func:`step_cap`. Same call
    interface as :class:`LocalPolicy`.

    Args:
        u_max: upper bound of the multiplier.
        total_steps: K (only reported in ``last``; the rule does not use it).
        eta: base learning rate (may also be passed per call).
        nonconvex_cap, warmup_multiplier, fallback: as for :class:`LocalPolicy`.
    """

    discrete = True

    def __init__(self, *, u_max: float = 1.0, total_steps: int = 1, eta: float | None = None,
                 nonconvex_cap: float | None = None, warmup_multiplier: float | None = None,
                 fallback: float | None = None):
        self.table = None
        self.value = "u"
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.eta = None if eta is None else _positive("eta", eta)
        self.u_min, self.u_max = 0.0, _positive("u_max", u_max)
        self.h_max = math.inf
        cap = self.u_max if nonconvex_cap is None else _positive("nonconvex_cap", nonconvex_cap, allow_zero=True)
        self.nonconvex_multiplier = float(min(cap, self.u_max))
        self.warmup_multiplier = self.nonconvex_multiplier if warmup_multiplier is None else \
            _in_range("warmup_multiplier", warmup_multiplier, 0.0, self.u_max)
        self.fallback = 0.0 if fallback is None else _in_range("fallback", fallback, 0.0, self.u_max)
        self.counts = {k: 0 for k in COUNT_NAMES}
        self.last = None

    def _point_discrete(self, h, tau, y):
        y2 = y * y
        return (min(self.u_max, 1.0 / (1.0 / y2 + h)) if y2 > 0 else 0.0), 0

    def lookup_fn(self, xp=np):
        u_max = self.u_max

        def rule(tau, y, mask, h):
            # u = min(u_max, 1 / (1 / y^2 + h)); y = inf gives 1 / h, y = 0 gives 0. Entries outside
            # ``mask`` may be NaN: evaluate() replaces them. The cap in u's type and device (made once).
            if xp.__name__ == "torch":
                c = _Consts.of(self, xp, y)
                u = c.reciprocal(c.reciprocal(y * y) + h)
                return xp.fmin(u, c.u_max), 0
            return xp.fmin(1.0 / (1.0 / (y * y) + h), u_max), 0

        return rule


def _positive(name, value, *, allow_zero=False):
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number; got {value!r}")
    return float(value)


def _in_range(name, value, lo, hi):
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
        raise InputError(f"{name} must be a number in [{lo}, {hi}]; got {value!r}")
    return float(value)
