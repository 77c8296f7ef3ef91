"""What a practitioner asks of a method, per task (study v3): the statistics of the v3 report.

All quality numbers are the task's primary metric on the **test** split at the end of the run;
the **validation** split only chooses rates. A diverged run counts as the worst value (+inf when
lower is better, 0 when higher is better) unless said otherwise. Per task and method:

- quality at the default: median and interquartile range over seeds of the runs at the method's
  documented default rate (:attr:`~stochctl.study.methods.Method.default`), no tuning;
- tuned rate: the grid rate with the best median *validation* metric over seeds (ties: the smaller
  rate); quality at the tuned rate: median and IQR of the test metric there;
- expected best after k random trials (:func:`expected_best_of_k`), k in the protocol's ``trials``;
- divergence rate over the grid's runs;
- convergence: gradient evaluations at the first evaluation at which a run's test metric is within
  a fraction (the protocol's ``reach``, 20% and 50%) of the task's best (:func:`within`), from the
  curves; median over the seeds at the tuned rate (a run that never gets there counts as never);
- robust range at each tolerance of the protocol (10, 20, 30, 50%): the longest run of consecutive
  grid rates at which no seed diverged and the median test metric is within the tolerance of the
  task's best, in decades; and the decades of it whose runs are not copies of the previous rate's
  (:func:`identical_to_previous`: every seed's metrics and gradient evaluations equal).

The task's best is the best median test metric over every method and grid rate.
"""

from __future__ import annotations

import math
from math import comb

import numpy as np

from .methods import get_method

_WORST = math.inf


def within(value: float, best: float, tolerance: float, higher_is_better: bool) -> bool:
    """Whether ``value`` is within ``tolerance`` (a fraction of |best|) of ``best``, on the bad side allowed."""
    if not (math.isfinite(value) and math.isfinite(best)):
        return False
    slack = tolerance * abs(best)
    return value >= best - slack if higher_is_better else value <= best + slack


def quantiles(values) -> tuple[float, float, float]:
    """(25%, 50%, 75%) percentiles (linear interpolation); a quantile touching +-inf is +-inf."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        return (math.nan,) * 3
    big = 1e300
    q = np.percentile(np.clip(v, -big, big), [25, 50, 75])
    return tuple(math.inf if x >= big / 1e10 else -math.inf if x <= -big / 1e10 else float(x) for x in q)


def expected_best_of_k(val, test, k: int, *, higher_is_better: bool = False, cap: float | None = None) -> float:
    """Expected test metric after k random trials of a grid, choosing on validation; mean over seeds.

    For one seed with n grid rates, validation values v_1..v_n and test values t_1..t_n: a
    practitioner tries a subset S of k distinct rates drawn uniformly without replacement among
    the C(n, k) subsets, keeps the rate of S with the best validation value (ties: the earlier
    rate of the grid) and gets its test value. Ranking the rates by (validation, grid position),
    best first, the rate of rank i (0-based) is kept exactly when it is in S and the i better ones
    are not, which has probability ``C(n - 1 - i, k - 1) / C(n, k)``; so

        E_k = sum_i C(n - 1 - i, k - 1) / C(n, k) * t_(i).

    The result is the mean of E_k over the seeds (rows of ``val`` and ``test``). NaN or infinite
    values (diverged runs) rank last on validation and count as ``cap`` on test (default: the
    worst finite test value given, so that one diverged trial does not make the expectation
    infinite). NaN when k exceeds the number of rates.

    Args:
        val, test: arrays (seeds, rates) of final validation and test metrics.
        k: number of trials.
        higher_is_better: direction of the metric.
        cap: the test value of a diverged run.
    """
    val = np.atleast_2d(np.asarray(val, dtype=np.float64))
    test = np.atleast_2d(np.asarray(test, dtype=np.float64))
    if val.shape != test.shape:
        raise ValueError(f"val and test must have one shape; got {val.shape} and {test.shape}")
    n = val.shape[1]
    if not 1 <= k <= n:
        return math.nan
    sign = -1.0 if higher_is_better else 1.0
    if cap is None:
        finite = test[np.isfinite(test)]
        cap = (finite.min() if higher_is_better else finite.max()) if finite.size else math.inf
    out = []
    for v, t in zip(val, test):
        key = np.where(np.isfinite(v), sign * v, math.inf)
        order = sorted(range(n), key=lambda j: (key[j], j))
        tv = np.where(np.isfinite(t), t, cap)
        weights = [comb(n - 1 - i, k - 1) / comb(n, k) for i in range(n)]
        out.append(sum(w * tv[j] for w, j in zip(weights, order)))
    return float(np.mean(out))


def identical_to_previous(runs_by_rate: list[list[dict]], names) -> list[bool]:
    """Per grid rate: whether its runs are copies of the previous rate's (same seeds, and for every
    seed the same gradient evaluations and the same value of every metric in ``names``)."""
    flags = [False]
    for prev, cur in zip(runs_by_rate, runs_by_rate[1:]):
        a = {r["seed"]: r for r in prev}
        b = {r["seed"]: r for r in cur}
        same = bool(a) and a.keys() == b.keys() and all(
            a[s]["grad_evals"] == b[s]["grad_evals"] and a[s]["diverged"] == b[s]["diverged"]
            and all(a[s].get(m) == b[s].get(m) for m in names) for s in a)
        flags.append(same)
    return flags


def _value(row: dict, key: str, higher_is_better: bool) -> float:
    v = row.get(key)
    if row["diverged"] or v is None:
        return 0.0 if higher_is_better else _WORST
    return float(v)


def first_reach(curve: dict | None, metric: str, best: float, fraction: float, higher_is_better: bool) -> float:
    """Gradient evaluations at the first evaluation whose test ``metric`` is within ``fraction`` of
    ``best``; inf when none is (or the run has no curve)."""
    if not curve:
        return math.inf
    for n, v in zip(curve["grad_evals"], curve["test"][metric]):
        if v is not None and within(v, best, fraction, higher_is_better):
            return float(n)
    return math.inf


def longest(flags) -> tuple[int, int]:
    """(length, start index) of the longest run of true values (the first such run)."""
    best = (0, 0)
    run = 0
    for i, ok in enumerate(flags):
        run = run + 1 if ok else 0
        if run > best[0]:
            best = (run, i - run + 1)
    return best


def practice_stats(config, rows: list[dict], curves: dict) -> dict:
    """``{task: {method: stats}}`` (module docstring); ``curves``: ``{(task, method, lr, seed): curve}``."""
    out: dict = {}
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    methods_all = list(config.methods) + sorted({r["method"] for r in rows} - set(config.methods))
    for t in tasks:
        task = config.task(t)
        prim = task.primary
        hib = prim.higher_is_better
        sign = 1.0 if hib else -1.0
        per: dict = {}
        for m in methods_all:
            runs = [r for r in rows if r["task"] == t and r["method"] == m]
            if not runs:
                continue
            record = get_method(m)
            sweep = list(config.sweep(m)) if record.has_rate else [float(runs[0]["lr"])]
            at = {lr: [r for r in runs if math.isclose(r["lr"], lr, rel_tol=1e-9)] for lr in sweep}
            by_lr = {}
            for lr, rs in at.items():
                if rs:
                    by_lr[lr] = dict(n=len(rs), diverged=sum(r["diverged"] for r in rs),
                                     reached=sum(r["reached"] for r in rs),
                                     final=quantiles(_value(r, f"final_{prim.name}", hib) for r in rs),
                                     val=quantiles(_value(r, f"val_{prim.name}", hib) for r in rs))
            tuned = max(by_lr, key=lambda lr: (sign * by_lr[lr]["val"][1], -lr)) if by_lr else None
            default = record.default
            d_runs = [r for r in runs if default is not None and math.isclose(r["lr"], default, rel_tol=1e-9)]
            grid_runs = [r for rs in at.values() for r in rs]
            seeds = sorted({r["seed"] for r in grid_runs})
            rated = [lr for lr in sweep if at[lr]]
            val = np.array([[_value(next((r for r in at[lr] if r["seed"] == s), {"diverged": 1}),
                                    f"val_{prim.name}", hib) for lr in rated] for s in seeds])
            test = np.array([[_value(next((r for r in at[lr] if r["seed"] == s), {"diverged": 1}),
                                     f"final_{prim.name}", hib) for lr in rated] for s in seeds])
            per[m] = dict(
                runs=len(grid_runs), diverged=sum(r["diverged"] for r in grid_runs),
                divergence_rate=(sum(r["diverged"] for r in grid_runs) / len(grid_runs)) if grid_runs else math.nan,
                sweep=sweep, by_lr=by_lr, best_lr=tuned, tuned=tuned, default=default,
                at_default=quantiles(_value(r, f"final_{prim.name}", hib) for r in d_runs) if d_runs else None,
                default_diverged=sum(r["diverged"] for r in d_runs), _val=val, _test=test,
                steps=float(np.median([r["steps"] for r in at.get(tuned, [])])) if tuned is not None else math.nan,
                grad_evals=float(np.median([r["grad_evals"] for r in at.get(tuned, [])])) if tuned is not None
                else math.nan,
                secondary={mm.name: quantiles(_value(r, f"final_{mm.name}", mm.higher_is_better)
                                              for r in at.get(tuned, [])) for mm in task.metrics[1:]},
                _runs=at,
            )
        medians = [b["final"][1] for s in per.values() for b in s["by_lr"].values() if math.isfinite(b["final"][1])]
        best = (max(medians) if hib else min(medians)) if medians else math.nan
        finite = [v for s in per.values() for v in s["_test"].ravel() if math.isfinite(v)]
        cap = (min(finite) if hib else max(finite)) if finite else math.inf
        names = [k for k in (rows[0] if rows else {}) if k.startswith(("final_", "val_"))]
        for m, s in per.items():
            s["task_best"] = best
            s["expected_best"] = {k: expected_best_of_k(s["_val"], s["_test"], k, higher_is_better=hib, cap=cap)
                                  if s["_val"].size else math.nan for k in config.trials}
            tuned_runs = s["_runs"].get(s["tuned"], [])
            s["reach"] = {f: float(np.median([first_reach(curves.get((t, m, r["lr"], r["seed"])), prim.name, best, f,
                                                          hib) for r in tuned_runs])) if tuned_runs else math.nan
                          for f in config.reach}
            sweep = s["sweep"]
            spacing = float(np.mean(np.diff(np.log10(sweep)))) if len(sweep) > 1 else 0.0
            same = identical_to_previous([s["_runs"][lr] for lr in sweep], names)
            s["identical"] = [lr for lr, f in zip(sweep, same) if f]
            s["robust"] = {}
            for tol in config.tolerances:
                flags = [lr in s["by_lr"] and s["by_lr"][lr]["diverged"] == 0
                         and within(s["by_lr"][lr]["final"][1], best, tol, hib) for lr in sweep]
                length, start = longest(flags)
                copies = sum(same[start + 1:start + length]) if length else 0
                s["robust"][tol] = (length * spacing, (length - copies) * spacing)
        out[t] = per
    return out
