"""The summary of a version-3 study folder: one table per task with the statistics of
:mod:`stochctl.study.practice`, the returns tasks' stylized facts, and the targets."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .files import read_curves
from .methods import get_method
from .practice import practice_stats
from .report_figures import _fmt
from .tasks_v3 import ReturnsSplits

STYLIZED = ("w1", "w1_5d", "acf_r", "acf_r2", "acf_abs", "leverage", "kurtosis_err")
"""Returns metrics shown side by side (test medians at the tuned rate)."""
RECOMMENDED = ("sgd+discrete", "adam+discrete")
"""The recommended controller on SGD and on Adam (the targets' subjects)."""
LR_FREE = ("prodigy", "dadapt", "dog", "schedulefree")
ANCHOR = "garch"


def load_curves(out: Path, rows: list[dict]) -> dict:
    """``{(task, method, lr, seed): curve}`` of every run of ``rows`` whose curve is in ``out/curves``."""
    curves: dict = {}
    for t, m in dict.fromkeys((r["task"], r["method"]) for r in rows):
        for (lr, seed), c in read_curves(out, t, m).items():
            curves[(t, m, lr, seed)] = c
    return curves


def figure_rows(rows: list[dict], curves: dict, metric_names) -> list[dict]:
    """Copies of ``rows`` carrying their test curve as v2's JSON (x axis: gradient evaluations)."""
    out = []
    for r in rows:
        c = curves.get((r["task"], r["method"], r["lr"], r["seed"]))
        if c is None:
            continue
        curve = {"step": c["grad_evals"], **{m: c["test"][m] for m in metric_names if m in c["test"]}}
        out.append(dict(r, curve=json.dumps(curve)))
    return out


def _q(q) -> str:
    return "n/a" if q is None else f"{_fmt(q[1])} [{_fmt(q[0])}, {_fmt(q[2])}]"


def _evals(v: float) -> str:
    return "never" if math.isinf(v) else "n/a" if math.isnan(v) else f"{v:.0f}"


def _rate(method: str, rate) -> str:
    record = get_method(method)
    if rate is None or not record.has_rate:
        return "-"
    return _fmt(rate, 2) + ("" if record.base_lr else f" ({record.multiplier})")


def target_lines(config, stats: dict) -> list[str]:
    """The issue's targets, per task, each met or not met (methods absent from the study are skipped)."""
    rows = []
    for t, per in stats.items():
        hib = config.task(t).primary.higher_is_better
        sign = 1.0 if hib else -1.0
        adam = per.get("adam")
        for ctl in (m for m in RECOMMENDED if m in per):
            s = per[ctl]
            cells = [t, ctl, "met" if s["diverged"] + s["default_diverged"] == 0 else
                     f"**not met** ({s['diverged'] + s['default_diverged']} runs)"]
            if adam is not None and s["at_default"] is not None and adam["tuned"] is not None:
                aq = adam["by_lr"][adam["tuned"]]["final"]
                ok = aq[0] <= s["at_default"][1] <= aq[2] or sign * s["at_default"][1] > sign * aq[1]
                cells.append(f"{'met' if ok else '**not met**'}: {_fmt(s['at_default'][1])} vs {_q(aq)}")
            else:
                cells.append("n/a")
            peers = [p for p in LR_FREE if p in per]
            if peers and 2 in s["expected_best"]:
                worse = [p for p in peers if not sign * s["expected_best"][2] > sign * per[p]["expected_best"][2]]
                cells.append(("met" if not worse else "**not met** (" + ", ".join(worse) + ")")
                             + f": {_fmt(s['expected_best'][2])}")
            else:
                cells.append("n/a")
            f = min(config.reach)
            if adam is not None and math.isinf(s["reach"][f]) and math.isinf(adam["reach"][f]):
                cells.append("n/a: neither gets there")
            elif adam is not None:
                ok = s["reach"][f] <= adam["reach"][f]
                cells.append(f"{'met' if ok else '**not met**'}: {_evals(s['reach'][f])} vs "
                             f"{_evals(adam['reach'][f])}")
            else:
                cells.append("n/a")
            g = per.get(ANCHOR)
            if isinstance(config.task(t), ReturnsSplits) and g is not None and g["tuned"] is not None:
                facts = [k for k in STYLIZED[2:] if s["secondary"][k][1] < g["secondary"][k][1]]
                cells.append(f"{len(facts)} of {len(STYLIZED) - 2} facts better than {ANCHOR}")
            else:
                cells.append("n/a")
            rows.append("| " + " | ".join(cells) + " |")
    if not rows:
        return []
    f = min(config.reach)
    return ["| task | method | never diverges | default within seed noise of tuned adam | expected best "
            f"after 2 trials beats every learning-rate-free peer | reaches {f:.0%} of the best in no more "
            f"gradient evaluations than tuned adam | beats {ANCHOR} on the stylized facts |",
            "|---|---|---|---|---|---|---|"] + rows


def _versus(a: float, b: float, sign: float) -> str:
    if a == b or (math.isinf(a) and math.isinf(b)):
        return "ties"
    return "wins" if sign * a > sign * b else "loses"


def verdict_lines(config, stats: dict) -> list[str]:
    """Per task and recommended controller, the comparison with every method that is not controlled, by
    name: quality at the tuned rate (within seed noise when inside the other's IQR), expected best after
    2 trials, divergence rate and gradient evaluations to the smallest reach level; wins and losses alike."""
    lines = []
    f = min(config.reach)
    k = 2 if 2 in config.trials else min(config.trials)
    for t, per in stats.items():
        sign = 1.0 if config.task(t).primary.higher_is_better else -1.0
        others = [m for m in per if not get_method(m).controlled and per[m]["tuned"] is not None]
        for ctl in (m for m in RECOMMENDED if m in per and per[m]["tuned"] is not None):
            s = per[ctl]
            q = s["by_lr"][s["tuned"]]["final"]
            parts = []
            for o in others:
                b = per[o]
                bq = b["by_lr"][b["tuned"]]["final"]
                quality = ("within seed noise" if bq[0] <= q[1] <= bq[2] else _versus(q[1], bq[1], sign))
                parts.append(f"vs {o}: tuned quality {quality} ({_fmt(q[1])} vs {_fmt(bq[1])}), E best {k} "
                             f"{_versus(s['expected_best'][k], b['expected_best'][k], sign)} "
                             f"({_fmt(s['expected_best'][k])} vs {_fmt(b['expected_best'][k])}), divergence "
                             f"{_versus(b['divergence_rate'], s['divergence_rate'], 1.0)} "
                             f"({s['divergence_rate']:.0%} vs {b['divergence_rate']:.0%}), reach {f:.0%} "
                             f"{_versus(b['reach'][f], s['reach'][f], 1.0)} ({_evals(s['reach'][f])} vs "
                             f"{_evals(b['reach'][f])} gradient evaluations)")
            if parts:
                lines.append(f"- **{t}**, {ctl}: " + "; ".join(parts) + ".")
    return lines


def summary_markdown_v3(config, rows: list[dict], curves: dict, *, command: str | None = None) -> str:
    """The Markdown summary of a version-3 study (tables per task)."""
    stats = practice_stats(config, rows, curves)
    lines = [f"# Study summary: {config.name} (protocol {config.protocol_hash()}, version {config.version})", ""]
    if command:
        lines += [f"Command: `{command}`", ""]
    if config.data is not None:
        lines += [config.data.note.replace("data: ", "Data: ", 1) + ".", ""]
    seeds = sorted({r["seed"] for r in rows})
    budgets = "; ".join(f"{t} {config.budget(t)[1]} {config.budget(t)[0].replace('_', ' ')}" for t in stats)
    lines += [
        f"Runs: {len(rows)}; seeds: {len(seeds)}; budget per run: {budgets}; {config.evaluations} evaluations per "
        "run on the validation and the test split.",
        "Rate sweeps: " + "; ".join(f"{fam}: " + ", ".join(_fmt(x, 2) for x in rates) for fam, rates in config.sweeps)
        + ".",
        "Quality is the primary metric on the test split at the end of the run (median [IQR] over seeds; a "
        "diverged run counts as the worst value). Tuned rate: best median on the validation split. E best k: "
        "expected test value after k random trials of the grid, keeping the trial best on validation, averaged "
        "over seeds (a diverged trial counts as the task's worst finished run). Reach: median gradient "
        "evaluations at the tuned rate until the test metric is first within "
        + " / ".join(f"{f:.0%}" for f in config.reach) + " of the task's best (best median over methods and "
        "rates). Robust range: decades of consecutive grid rates with no divergence and the median within the "
        "tolerance of the task's best; in parentheses, the decades whose runs are not copies of the previous "
        "rate's.",
        "",
    ]
    verdict = verdict_lines(config, stats)
    if verdict:
        lines += ["## Verdict", ""] + verdict + [""]
    targets = target_lines(config, stats)
    if targets:
        lines += ["## Targets", ""] + targets + [""]
    for t, per in stats.items():
        task = config.task(t)
        prim = task.primary
        best = next(iter(per.values()))["task_best"]
        lines += [f"## {t}: {task.description}", "",
                  f"Primary metric: {prim.name} ({prim.description}; {'higher' if prim.higher_is_better else 'lower'}"
                  f" is better); task's best median {_fmt(best)}.", ""]
        head = (["method", "runs", "diverged", "default", "at default", "tuned rate", "at tuned"]
                + [f"E best {k}" for k in config.trials]
                + [f"reach {f:.0%}" for f in config.reach]
                + [f"robust {tol:.0%}" for tol in config.tolerances] + ["steps", "grad evals"])
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for m, s in per.items():
            tuned_q = s["by_lr"][s["tuned"]]["final"] if s["tuned"] is not None else None
            cells = [m, str(s["runs"]), f"{s['divergence_rate']:.0%}", _rate(m, s["default"]), _q(s["at_default"]),
                     _rate(m, s["tuned"]), _q(tuned_q)]
            cells += [_fmt(s["expected_best"][k]) for k in config.trials]
            cells += [_evals(s["reach"][f]) for f in config.reach]
            cells += [f"{a:.2f}" + (f" ({b:.2f})" if b != a else "") for a, b in
                      (s["robust"][tol] for tol in config.tolerances)]
            cells += [_evals(s["steps"]), _evals(s["grad_evals"])]
            lines.append("| " + " | ".join(cells) + " |")
        copies = {m: s["identical"] for m, s in per.items() if s["identical"]}
        if copies:
            lines += ["", "Runs identical to the previous rate's (every seed): " + "; ".join(
                f"{m} at {', '.join(_fmt(x, 2) for x in lrs)}" for m, lrs in copies.items()) + "."]
        if isinstance(task, ReturnsSplits):
            ref = task.reference_metrics()
            lines += ["", "Stylized facts at the tuned rate (test medians; real training windows scored as "
                      "generated: " + ", ".join(f"{k} {_fmt(ref[k])}" for k in STYLIZED) + "):", "",
                      "| method | " + " | ".join(STYLIZED) + " |", "|---|" + "---|" * len(STYLIZED)]
            for m, s in per.items():
                if s["tuned"] is None:
                    continue
                vals = [s["by_lr"][s["tuned"]]["final"][1]] + [s["secondary"][k][1] for k in STYLIZED[1:]]
                lines.append(f"| {m} | " + " | ".join(_fmt(v) for v in vals) + " |")
        lines.append("")
    return "\n".join(lines)


def write_report_v3(out: Path, config, rows: list[dict], *, command: str | None = None) -> list[Path]:
    """``summary.md``, ``summary.json`` and the figures of a version-3 folder; the paths written
    (``summary.md`` first, ``summary.json`` not listed)."""
    from .._io import write_text_atomic
    from .report_figures import write_task_figures
    from .runner import write_summary_json

    out = Path(out)
    curves = load_curves(out, rows)
    written = [out / "summary.md"]
    write_text_atomic(written[0], summary_markdown_v3(config, rows, curves, command=command) + "\n")
    write_summary_json(out, config)
    stats = practice_stats(config, rows, curves)
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    seed = min(r["seed"] for r in rows)
    for t in stats:
        frows = figure_rows([r for r in rows if r["task"] == t], curves, config.task(t).metric_names)
        written += write_task_figures(config, out, figdir, stats, t, seed, frows, ReturnsSplits)
    return written
