"""Tables of the ablation from ``results.csv``: ``python results/controller-ablation/summarize.py [--md FILE]``.

Per task, method and base rate: the median final primary metric over the seeds (energy distance on the
mixtures, held-out W1 on ``sp500`` and ``data``, W1 on ``gauss1d``) with its range, diverged runs, the
median effective rate multipliers of the generator and the discriminator (mean lr / base lr over a run),
gradient evaluations per step (2 for a plain step) and the median wall time.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TASKS = ("ring8", "grid25", "sp500", "gauss1d", "data")
METRIC = {"ring8": "energy", "grid25": "energy", "sp500": "W1", "gauss1d": "W1", "data": "held-out W1"}


def load(path=HERE / "results.csv"):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def groups(rows):
    g = defaultdict(list)
    for r in rows:
        g[r["task"], r["method"], float(r["lr"])].append(r)
    return g


def _f(x):
    return float(x) if x not in ("", None) else math.nan


def cell(runs):
    """Summary of one (task, method, rate): dict of numbers."""
    finals = [(_f(r["final"]) if r["diverged"] == "0" else math.inf) for r in runs]
    ok = [r for r in runs if r["diverged"] == "0"]
    med = statistics.median(finals) if finals else math.nan
    return dict(n=len(runs), median=med, lo=min(finals), hi=max(finals),
                diverged=sum(r["diverged"] != "0" for r in runs),
                mult_g=statistics.median(_f(r["mult_g"]) for r in ok) if ok else math.nan,
                mult_d=statistics.median(_f(r["mult_d"]) for r in ok) if ok else math.nan,
                ge=statistics.median(_f(r["grad_evals_per_step"]) for r in runs),
                seconds=statistics.median(_f(r["seconds"]) for r in runs))


def tuned(g, task, method):
    """(rate, cell) of the method's best median on the task, among rates with 3 seeds."""
    best = None
    for (t, m, lr), runs in g.items():
        if t == task and m == method and len(runs) >= 3:
            c = cell(runs)
            if best is None or c["median"] < best[1]["median"]:
                best = (lr, c)
    return best


def quality_at_equal_evals(runs, level):
    """Median over seeds of the gradient evaluations per step times the first evaluated step at which the
    primary metric is at or below ``level`` (inf if never): the cost of reaching a given quality."""
    out = []
    for r in runs:
        curve = json.loads(r["curve"])
        name = next(k for k in curve if k != "step")
        hit = next((s for s, v in zip(curve["step"], curve[name]) if v is not None and v <= level), None)
        out.append(math.inf if hit is None or r["diverged"] != "0" else hit * _f(r["grad_evals_per_step"]))
    return statistics.median(out)


def fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "div"
    return f"{x:.{digits}g}"


def table(g, methods, rates, tasks=TASKS):
    lines = ["| task | method | rate | median [min, max] | div | mult G / D | grad evals / step | s |",
             "|---|---|---|---|---|---|---|---|"]
    for task in tasks:
        for m in methods:
            for lr in rates(task, m):
                runs = g.get((task, m, lr))
                if not runs:
                    continue
                c = cell(runs)
                lines.append(f"| {task} | {m} | {fmt(lr)} | {fmt(c['median'])} [{fmt(c['lo'])}, {fmt(c['hi'])}] | "
                             f"{c['diverged']}/{c['n']} | {fmt(c['mult_g'], 2)} / {fmt(c['mult_d'], 2)} | "
                             f"{fmt(c['ge'])} | {fmt(c['seconds'], 2)} |")
    return "\n".join(lines)


def compact(g, methods, tasks=TASKS, rates=(0.1, 1.0, 10.0)):
    """Per task: one row per method; the median final metric [range] and divergences at SGD's tuned
    rate and at ``rates``, the median multipliers G / D at base rate 1 (or the nearest run rate), the
    gradient evaluations per step."""
    out = []
    for task in tasks:
        t_sgd = tuned(g, task, "sgd")
        if t_sgd is None:
            continue
        lr_t = t_sgd[0]
        out.append(f"\n**{task}** ({METRIC[task]}; SGD's tuned rate {fmt(lr_t)}: {fmt(t_sgd[1]['median'])})\n")
        out.append(f"| method | at {fmt(lr_t)} (tuned SGD) | " + " | ".join(f"at {fmt(r)}" for r in rates)
                   + " | own tuned rate: metric | mult G / D at 1 | evals / step |")
        out.append("|---" * (len(rates) + 5) + "|")
        for m in methods:
            cells = []
            for r in (lr_t,) + tuple(rates):
                runs = g.get((task, m, r))
                if not runs:
                    cells.append("")
                    continue
                c = cell(runs)
                div = f" ({c['diverged']}/{c['n']} div)" if c["diverged"] else ""
                seeds = "" if c["n"] >= 3 else f" ({c['n']} seed{'s' if c['n'] > 1 else ''})"
                cells.append(f"{fmt(c['median'])} [{fmt(c['lo'])}, {fmt(c['hi'])}]{div}{seeds}")
            if not any(cells):
                continue
            own = tuned(g, task, m)
            at1 = g.get((task, m, 1.0))
            c1 = cell(at1) if at1 else None
            all_runs = [r for (t, mm, _), runs in g.items() if t == task and mm == m for r in runs]
            ge = statistics.median(_f(r["grad_evals_per_step"]) for r in all_runs)
            out.append(f"| {m} | " + " | ".join(cells) + f" | {fmt(own[0]) + ': ' + fmt(own[1]['median']) if own else ''}"
                       f" | {fmt(c1['mult_g'], 2) + ' / ' + fmt(c1['mult_d'], 2) if c1 else ''} | {fmt(ge)} |")
    return "\n".join(out)


def reach(g, methods, tasks=("data", "gauss1d"), factor=1.5):
    """Gradient evaluations (both players, per run; median over seeds) until the primary metric first
    reaches ``factor`` times tuned SGD's final median, per method and rate ("never": not in the run)."""
    out = []
    for task in tasks:
        t_sgd = tuned(g, task, "sgd")
        if t_sgd is None:
            continue
        level = factor * t_sgd[1]["median"]
        rates = sorted({lr for (t, m, lr) in g if t == task and m in methods})
        out.append(f"\n**{task}**: evaluations to reach {METRIC[task]} <= {fmt(level)} ({factor} x tuned SGD's "
                   f"{fmt(t_sgd[1]['median'])})\n")
        out.append("| method | " + " | ".join(f"at {fmt(r)}" for r in rates) + " |")
        out.append("|---" * (len(rates) + 1) + "|")
        for m in methods:
            cells = []
            for r in rates:
                runs = g.get((task, m, r))
                if not runs or len(runs) < 3:
                    cells.append("")
                    continue
                v = quality_at_equal_evals(runs, level)
                cells.append("never" if math.isinf(v) else f"{v:.0f}")
            if any(cells):
                out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default=None)
    ap.add_argument("--full", action="store_true", help="every (task, method, rate) with its spread and costs")
    ap.add_argument("--reach", action="store_true", help="gradient evaluations to reach 1.5 x tuned SGD's quality")
    args = ap.parse_args()
    rows = load()
    g = groups(rows)
    methods = args.methods.split(",") if args.methods else list(dict.fromkeys(r["method"] for r in rows))
    if args.reach:
        print(reach(g, methods))
    elif args.full:
        print(table(g, methods, lambda task, m: sorted({lr for (t, mm, lr) in g if t == task and mm == m})))
    else:
        print(compact(g, methods))


if __name__ == "__main__":
    main()
