"""Summary table, verdict and figures of a study folder.

From ``results.csv`` (and ``study.json``) this writes ``summary.json`` (every
run: :func:`~stochctl.study.runner.write_summary_json`), ``summary.md`` and
``figures/``. Per task and method, over the base-rate grid:

- divergence rate: diverged runs / runs;
- robust range: the longest run of consecutive grid rates at which no seed
  diverged and the median final primary metric is within the protocol's
  tolerance (20%) of the task's best median over every method and rate, in
  decades (number of rates x grid spacing; :func:`robust_flags`);
- gradient evaluations per step (median over runs);
- stable learning-rate range: the longest run of consecutive sweep values at
  which at least ``stable_fraction`` of the seeds reach the quality threshold,
  in decades (values x sweep spacing);
- best base rate: the sweep value with the best median final primary metric
  (diverged runs count as the worst value, +inf or 0; ties go to the higher
  fraction of seeds reaching the threshold, then to the smaller rate);
- at the best base rate: median and interquartile range of the final primary
  metric over seeds, fraction reaching the threshold, median steps to the
  threshold (runs that never met it count as never), mean learning-rate
  multipliers of generator and discriminator.

The verdict (:func:`verdict_lines`) counts the tasks where the controlled
methods win and lose, then compares, per task, the controlled
methods (``+discrete``, ``+greedy``, ``+continuous``) with the baselines on
the best quality at the tuned rate (within seed noise when inside the best
baseline's interquartile range), the robust range and the divergence rate,
and each ``X+discrete`` with its base optimiser ``X``. The targets
(:func:`target_lines`) mark, per task, whether controlled SGD never diverged,
has a robust range at least one decade wider than every baseline's, and has a
best quality within seed noise of the best tuned baseline.

Figures: quality against the base learning rate (median primary metric per
method, diverged seeds marked), training curves of the primary metric
(median and IQR over seeds at each method's best rate), divergence and
success rate against the base rate,
generated samples (mixture tasks), the return histogram and QQ plot and the
absolute-return ACF (``sp500``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._io import write_text_atomic
from ..errors import FileFormatError, InputError
from .methods import get_method, is_controlled
from .protocol import StudyConfig
from .report_figures import _fmt, write_task_figures
from .runner import MANIFEST, RESULTS, read_results, write_summary_json
from .tasks import DATA_TASK, TASK_NAMES, ReturnsTask

SUMMARY = "summary.md"
FIGURES = "figures"


class OtherCodeWarning(UserWarning):
    """A study folder recorded by code of another fingerprint, under the same protocol, is read."""


def _warn(message: str) -> None:
    warnings.warn(message, OtherCodeWarning, stacklevel=3)


def load_study(out: str | os.PathLike, *, warn=_warn) -> tuple[StudyConfig, list[dict]]:
    """The configuration and result rows of a study folder.

    A folder recorded by code of another fingerprint is read when its protocol is
    otherwise the same as this code's reading of it; ``warn`` (default: an
    :class:`OtherCodeWarning`) gets a one-line message naming both fingerprints,
    and the configuration keeps the recorded one (:attr:`StudyConfig.code`).

    Raises:
        FileFormatError: the manifest is not valid, or does not match its stored hash or the rows.
        InputError: the protocol differs from this code's in more than the code fingerprint.
    """
    out = Path(out)
    manifest = out / MANIFEST
    if not manifest.exists():
        raise InputError(f"{str(out)!r} is not a study folder (no {MANIFEST})")
    try:
        data = json.loads(manifest.read_text())
        config = StudyConfig.from_json(data)
        stored, recorded = data["hash"], dict(data["protocol"])
        text = json.dumps(recorded, sort_keys=True, separators=(",", ":"))
    except InputError:  # the manifest is fine; what it points to (the data file) is not
        raise
    except (ValueError, KeyError, TypeError) as exc:
        raise FileFormatError(f"{manifest}: not a valid study manifest ({exc})") from None
    if hashlib.sha256(text.encode()).hexdigest()[:16] != stored:
        raise FileFormatError(f"{manifest}: the protocol does not reproduce its stored hash {stored}")
    current = config.protocol()
    differ = sorted(k for k in set(current) | set(recorded) if current.get(k) != recorded.get(k))
    if differ and differ != ["code"]:
        raise InputError(f"{str(out)!r} holds results of another study protocol (hash {stored}; "
                         f"{', '.join(differ)} differ from this code's)")
    if differ:
        config = replace(config, code=recorded["code"])
        warn(f"{str(out)!r} was recorded by code fingerprint {recorded['code']}, this code is "
             f"{current['code']}; the protocol is the same otherwise, so it is reported as recorded")
    rows = read_results(out / RESULTS)
    other = {r["protocol"] for r in rows} - {stored}
    if other:
        raise FileFormatError(f"{out / RESULTS} holds rows of another protocol ({', '.join(sorted(other))})")
    return config, rows


def _failure_value(higher_is_better: bool) -> float:
    return 0.0 if higher_is_better else math.inf


def _final(row: dict, metric: str, higher_is_better: bool) -> float:
    v = row.get(f"final_{metric}")
    if row["diverged"] or v is None:
        return _failure_value(higher_is_better)
    return float(v)


_BIG = 1e300


def _quantiles(values) -> tuple[float, float, float]:
    """(25%, 50%, 75%) percentiles (linear); a quantile that touches +inf is +inf."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan,) * 3
    q = np.percentile(np.where(np.isposinf(v), _BIG, v), [25, 50, 75])
    return tuple(math.inf if x >= _BIG / 1e10 else float(x) for x in q)


def within(value: float, best: float, tolerance: float, higher_is_better: bool) -> bool:
    """Whether ``value`` is within ``tolerance`` (a fraction of |best|) of ``best``, on the bad side allowed."""
    if not (math.isfinite(value) and math.isfinite(best)):
        return False
    slack = tolerance * abs(best)
    return value >= best - slack if higher_is_better else value <= best + slack


def robust_flags(by_lr: dict, sweep, best: float, tolerance: float, higher_is_better: bool) -> list[bool]:
    """Per grid rate: ran, no seed diverged, and median final primary metric within tolerance of ``best``."""
    return [lr in by_lr and by_lr[lr]["diverged"] == 0
            and within(by_lr[lr]["final"][1], best, tolerance, higher_is_better) for lr in sweep]


def longest_run(flags) -> int:
    """Length of the longest run of consecutive true values."""
    longest = run = 0
    for ok in flags:
        run = run + 1 if ok else 0
        longest = max(longest, run)
    return longest


def summarize(config: StudyConfig, rows: list[dict]) -> dict:
    """Per task and method: the sweep statistics and the best-rate summary (see module docstring)."""
    result: dict = {}
    tasks = [t for t in TASK_NAMES + (DATA_TASK,) if any(r["task"] == t for r in rows)]
    methods_all = [m for m in config.methods] + sorted({r["method"] for r in rows} - set(config.methods))
    for t in tasks:
        task = config.task(t)
        prim = task.primary
        per_method = {}
        for m in methods_all:
            runs = [r for r in rows if r["task"] == t and r["method"] == m]
            if not runs:
                continue
            sweep = list(config.sweep(m))
            by_lr = {}
            for lr in sweep:
                rs = [r for r in runs if math.isclose(r["lr"], lr, rel_tol=1e-9)]
                if not rs:
                    continue
                finals = [_final(r, prim.name, prim.higher_is_better) for r in rs]
                steps = [r["steps_to_threshold"] if r["steps_to_threshold"] is not None else math.inf for r in rs]
                by_lr[lr] = dict(
                    n=len(rs), diverged=sum(r["diverged"] for r in rs), reached=sum(r["reached"] for r in rs),
                    final=_quantiles(finals), steps=_quantiles(steps),
                    mult_g=float(np.median([r["mult_g"] for r in rs if r["mult_g"] is not None] or [math.nan])),
                    mult_d=float(np.median([r["mult_d"] for r in rs if r["mult_d"] is not None] or [math.nan])),
                    evals=float(np.median([r["grad_evals"] / (r["diverged_step"] or r["steps"]) for r in rs
                                           if r.get("grad_evals") is not None] or [math.nan])),
                    secondary={mm.name: _quantiles([_final(r, mm.name, mm.higher_is_better) for r in rs])
                               for mm in task.metrics[1:]},
                )
            n = sum(s["n"] for s in by_lr.values())
            div = sum(s["diverged"] for s in by_lr.values())
            stable = [lr in by_lr and by_lr[lr]["reached"] >= config.stable_fraction * by_lr[lr]["n"] - 1e-12
                      for lr in sweep]
            longest = longest_run(stable)
            spacing = float(np.mean(np.diff(np.log10(sweep)))) if len(sweep) > 1 else 0.0
            sign = -1.0 if prim.higher_is_better else 1.0

            def rank(lr):
                s = by_lr[lr]
                return (sign * s["final"][1], -s["reached"] / s["n"], lr)

            best = min(by_lr, key=rank) if by_lr else None
            cases: dict = {}
            for r in runs:
                for k, v in json.loads(r["policy_cases"] or "{}").items():
                    cases[k] = cases.get(k, 0) + v
            per_method[m] = dict(runs=n, diverged=div, divergence_rate=div / n if n else math.nan,
                                 stable_points=longest, stable_decades=longest * spacing,
                                 best_lr=best, by_lr=by_lr, sweep=sweep, policy_cases=cases)
        # the task's best median over every method and rate, then each method's robust range
        medians = [b["final"][1] for s in per_method.values() for b in s["by_lr"].values()
                   if math.isfinite(b["final"][1])]
        best = (max(medians) if prim.higher_is_better else min(medians)) if medians else math.nan
        for s in per_method.values():
            spacing = float(np.mean(np.diff(np.log10(s["sweep"])))) if len(s["sweep"]) > 1 else 0.0
            flags = robust_flags(s["by_lr"], s["sweep"], best, config.robust_tolerance, prim.higher_is_better)
            s["robust_points"] = longest_run(flags)
            s["robust_decades"] = s["robust_points"] * spacing
            s["task_best"] = best
            s["evals"] = float(np.median([b["evals"] for b in s["by_lr"].values()])) if s["by_lr"] else math.nan
        result[t] = per_method
    return result


def _best_of(group: dict, sign: float) -> tuple[str, tuple[float, float, float]]:
    """The method of ``group`` with the best median at its tuned rate, and its (25%, 50%, 75%) quantiles."""
    m = max(group, key=lambda k: sign * group[k]["by_lr"][group[k]["best_lr"]]["final"][1])
    return m, group[m]["by_lr"][group[m]["best_lr"]]["final"]


def _compare_quality(q: tuple, base_q: tuple, sign: float) -> str:
    """"within seed noise of" when the median ``q[1]`` lies in the interquartile range of ``base_q``,
    else "better than" or "worse than" (``sign`` +1 when higher is better, -1 when lower is)."""
    if base_q[0] <= q[1] <= base_q[2]:
        return "within seed noise of"
    return "better than" if sign * q[1] > sign * base_q[1] else "worse than"


def verdict_lines(config: StudyConfig, stats: dict) -> list[str]:
    """The verdict, generated from the numbers: per task, where the controlled methods win and lose."""
    lines = []
    tally: dict = {k: [] for k in ("quality wins", "quality losses", "robustness wins", "robustness losses")}
    for t, per_method in stats.items():
        prim = config.task(t).primary
        ctl = {m: s for m, s in per_method.items() if is_controlled(m) and s["best_lr"] is not None}
        base = {m: s for m, s in per_method.items() if not is_controlled(m) and s["best_lr"] is not None}
        if not ctl or not base:
            lines.append(f"- **{t}**: no comparison (needs both controlled and baseline methods).")
            continue
        sign = 1.0 if prim.higher_is_better else -1.0

        cm, cq = _best_of(ctl, sign)
        bm, bq = _best_of(base, sign)
        quality = _compare_quality(cq, bq, sign)
        cr = max(ctl, key=lambda k: ctl[k]["robust_decades"])
        br = max(base, key=lambda k: base[k]["robust_decades"])
        dr = ctl[cr]["robust_decades"] - base[br]["robust_decades"]
        robust = "wider than" if dr > 1e-9 else "narrower than" if dr < -1e-9 else "as wide as"
        parts = [f"best {prim.name} {_fmt(cq[1])} ({cm}) is {quality} the best baseline's {_fmt(bq[1])} ({bm}, "
                 f"IQR [{_fmt(bq[0])}, {_fmt(bq[2])}])",
                 f"the widest controlled robust range, {ctl[cr]['robust_decades']:.2f} decades ({cr}), is {robust} "
                 f"the widest baseline's {base[br]['robust_decades']:.2f} ({br})"]
        pairs = []
        for m, s in ctl.items():
            b = get_method(m).baseline
            if b in base:
                pairs.append(f"{m} {s['divergence_rate']:.0%} vs {b} {base[b]['divergence_rate']:.0%}")
        if pairs:
            parts.append("divergence over the grid: " + ", ".join(pairs))
        wins = [w for w, ok in (("quality", quality == "better than"), ("robustness", robust == "wider than")) if ok]
        losses = [w for w, ok in (("quality", quality == "worse than"), ("robustness", robust == "narrower than"))
                  if ok]
        for w in wins:
            tally[f"{w} wins"].append(t)
        for w in losses:
            tally[f"{w} losses"].append(t)
        head = ("controlled methods win on " + " and ".join(wins) if wins else "controlled methods win on nothing")
        head += ("; lose on " + " and ".join(losses) if losses else "; lose on nothing")
        lines.append(f"- **{t}**: {head}. " + "; ".join(parts) + ".")
    if len(lines) > 1:
        said = "; ".join(f"{k} on {', '.join(v)}" for k, v in tally.items() if v)
        lines.insert(0, f"Over {len(stats)} tasks, the controlled methods have: {said or 'no win and no loss'}.")
        lines.insert(1, "")
    return lines


CONTROLLED_SGD = "sgd+discrete"
TARGET_MARGIN_DECADES = 1.0


def target_lines(config: StudyConfig, stats: dict, method: str = CONTROLLED_SGD) -> list[str]:
    """The study's targets for controlled SGD (``method``), per task, each marked met or not met.

    1. never diverges: no run of ``method`` diverged at any rate of its grid;
    2. robust range at least :data:`TARGET_MARGIN_DECADES` wider than that of every baseline
       (every method that is not controlled, :func:`is_controlled`);
    3. best quality (median at its tuned rate) within seed noise of the best tuned baseline (inside
       that baseline's interquartile range) or better;
    and the gradient evaluations per step against its baseline (plain ``sgd``; the time cost of the
    curvature measurement is measured by ``benchmarks/bench_curvature.py``, not by the study).
    """
    rows = []
    for t, per_method in stats.items():
        s = per_method.get(method)
        base = {m: b for m, b in per_method.items() if not is_controlled(m) and b["best_lr"] is not None}
        if s is None or s["best_lr"] is None or not base:
            continue
        sign = 1.0 if config.task(t).primary.higher_is_better else -1.0
        diverged = [lr for lr, b in s["by_lr"].items() if b["diverged"]]
        never = (f"met (0 of {s['runs']} runs)" if not diverged else
                 f"**not met**: {s['diverged']} of {s['runs']} runs, at base rate "
                 + ", ".join(_fmt(lr, 2) for lr in diverged))
        br = max(base, key=lambda k: base[k]["robust_decades"])
        need = base[br]["robust_decades"] + TARGET_MARGIN_DECADES
        wide = (f"{'met' if s['robust_decades'] >= need - 1e-9 else '**not met**'}: "
                f"{s['robust_decades']:.2f} against {need:.2f} ({br} {base[br]['robust_decades']:.2f} + "
                f"{TARGET_MARGIN_DECADES:g})")
        bm, bq = _best_of(base, sign)
        q = s["by_lr"][s["best_lr"]]["final"]
        how = _compare_quality(q, bq, sign)
        quality = (f"{'**not met**' if how == 'worse than' else 'met'}: {_fmt(q[1])} is {how} {bm}'s "
                   f"{_fmt(bq[1])} [{_fmt(bq[0])}, {_fmt(bq[2])}]")
        plain_name = get_method(method).baseline
        plain = per_method.get(plain_name)
        evals = _fmt(s["evals"], 3) + (f" against {_fmt(plain['evals'], 3)} for {plain_name}" if plain else "")
        rows.append(f"| {t} | {never} | {wide} | {quality} | {evals} |")
    if not rows:
        return []
    return [f"Controlled SGD is `{method}`. Quality is the primary metric's median at the tuned rate; "
            "seed noise is the interquartile range over seeds.", "",
            "| task | never diverges | robust range at least 1 decade wider than every baseline's | "
            "best quality within seed noise of the best tuned baseline | gradient evaluations per step |",
            "|---|---|---|---|---|"] + rows


def _best_rate(method: str, rate: float) -> str:
    """The tuned swept value, with the multiplier's name for a method without a base learning rate."""
    record = get_method(method)
    return _fmt(rate, 2) + ("" if record.base_lr else f" ({record.multiplier})")


def _steps_fmt(v: float) -> str:
    return "never" if math.isinf(v) else ("n/a" if math.isnan(v) else f"{v:.0f}")


def summary_markdown(config: StudyConfig, rows: list[dict], *, command: str | None = None) -> str:
    """The Markdown summary of a study (tables per task)."""
    stats = summarize(config, rows)
    lines = [f"# Study summary: {config.name} (protocol {config.protocol_hash()})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if config.data is not None:
        lines += [config.data.note.replace("data: ", "Data: ", 1) + ".", ""]
    seeds = sorted({r["seed"] for r in rows})
    lines += [
        f"Runs: {len(rows)}; seeds per point: {len(seeds)}; step budget per task: "
        + ", ".join(f"{t} {config.task_steps(t)}" for t in stats) + f"; {config.evaluations} evaluations per run.",
        "Base-rate sweeps: " + "; ".join(f"{fam}: " + ", ".join(_fmt(x, 2) for x in rates)
                                         for fam, rates in config.sweeps) + ".",
        "Divergence: non-finite loss or parameters, or a network's parameter norm above "
        f"{_fmt(config.norm_bound)}.",
        f"Robust range: longest run of consecutive base rates where no seed diverged and the median final "
        f"primary metric is within {config.robust_tolerance:.0%} of the task's best median (over every method and "
        "rate), in decades. Gradient evaluations per step: both players, the step's gradients and the "
        "curvature measurements (median over the method's runs).",
        f"Stable range: longest run of consecutive base rates where at least {config.stable_fraction:.0%} of the "
        "seeds reach the threshold at the final evaluation (in decades; 0 = none). Best base rate: best median "
        "final primary metric (diverged runs count as the worst value).",
        "",
    ]
    lines += ["## Verdict", ""] + verdict_lines(config, stats) + [""]
    targets = target_lines(config, stats)
    if targets:
        lines += ["## Targets", ""] + targets + [""]
    for t, per_method in stats.items():
        task = config.task(t)
        prim = task.primary
        thr = " and ".join(str(c) for c in config.task_thresholds(t))
        ref = task.reference_metrics()
        lines += [f"## {t}: {task.description}", "",
                  f"Quality threshold: {thr}. Primary metric: {prim.name} ({prim.description}; "
                  f"{'higher' if prim.higher_is_better else 'lower'} is better). Real data scored as generated: "
                  + ", ".join(f"{k} {_fmt(v)}" for k, v in ref.items()) + ".", ""]
        sec = [mm for mm in task.metrics[1:3]]
        head = ["method", "runs", "diverged", "robust range (decades)", "grad evals / step",
                "stable range (decades)", "best base lr",
                f"{prim.name} at best: median [IQR]"] + [f"{mm.name} median" for mm in sec] + \
               ["reached", "steps to threshold (median)", "multiplier G / D"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, s in per_method.items():
            b = s["by_lr"].get(s["best_lr"])
            if b is None:
                continue
            q = b["final"]
            cells = [m, str(s["runs"]), f"{s['divergence_rate']:.0%}", f"{s['robust_decades']:.2f}",
                     _fmt(s["evals"], 3), f"{s['stable_decades']:.1f}",
                     _best_rate(m, s["best_lr"]), f"{_fmt(q[1])} [{_fmt(q[0])}, {_fmt(q[2])}]"]
            cells += [_fmt(b["secondary"][mm.name][1]) for mm in sec]
            cells += [f"{b['reached']}/{b['n']}", _steps_fmt(b["steps"][1]),
                      f"{_fmt(b['mult_g'], 2)} / {_fmt(b['mult_d'], 2)}"]
            lines.append("| " + " | ".join(cells) + " |")
        # per-rate tables, one per method family, columns = the family's base rates
        lines += ["", "Reached threshold / diverged seeds and median final "
                  f"{prim.name}, per base rate:", ""]
        for fam in sorted({get_method(m).family for m in per_method}):
            members = {m: s for m, s in per_method.items() if get_method(m).family == fam}
            sweep = next(iter(members.values()))["sweep"]
            lines += [f"| {fam} family | " + " | ".join(_fmt(x, 2) for x in sweep) + " |",
                      "|---|" + "---|" * len(sweep)]
            for m, st in members.items():
                cells = []
                for lr in st["sweep"]:
                    b = st["by_lr"].get(lr)
                    cells.append("-" if b is None else f"{b['reached']}/{b['n']}, {b['diverged']} div, "
                                 f"{_fmt(b['final'][1])}")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            lines.append("")
        for m, s in per_method.items():
            c = s["policy_cases"]
            total = sum(c.get(k, 0) for k in ("ok", "warmup", "nonconvex", "fallback"))
            if total:
                lines += ["", f"Policy cases of {m} (generator and discriminator steps of all its runs): "
                          + ", ".join(f"{k} {c.get(k, 0) / total:.0%}" for k in ("ok", "nonconvex", "warmup",
                                                                                   "fallback"))
                          + f"; table lookups clamped at the grid edge {c.get('clamped', 0) / total:.0%}."]
        lines.append("")
    return "\n".join(lines)


def write_report(out: str | os.PathLike, *, command: str | None = None, warn=_warn) -> list[Path]:
    """Write ``summary.json``, ``summary.md`` and the figures of the study in ``out``; return the
    paths written (``summary.md`` first, ``summary.json`` not listed). ``warn``: as in :func:`load_study`."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = Path(out)
    config, rows = load_study(out, warn=warn)
    if not rows:
        raise InputError(f"{str(out)!r} holds no finished runs yet")
    if config.version >= 3:
        from .report_v3 import write_report_v3

        return write_report_v3(out, config, rows, command=command)
    written = []
    summary = out / SUMMARY
    write_text_atomic(summary, summary_markdown(config, rows, command=command) + "\n")
    written.append(summary)
    write_summary_json(out, config)
    stats = summarize(config, rows)
    figdir = out / FIGURES
    figdir.mkdir(exist_ok=True)
    seed = min(r["seed"] for r in rows)
    for t in stats:
        written += write_task_figures(config, out, figdir, stats, t, seed, rows, ReturnsTask)
    return written
