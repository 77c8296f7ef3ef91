"""The committed study results: the headline numbers of the first study's summary.md and of the
README's table of the second study follow from their results.csv when recomputed here,
independently of the report code; the README's targets table is the one the code computes."""

import csv
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "study-full"
PRIMARY = {"ring8": "energy", "grid25": "energy", "sp500": "w1", "gauss1d": "w2"}  # lower is better


def method_tables(text: str) -> dict:
    """{task: [table lines]} of the per-method tables of a summary."""
    out = {}
    for sec in re.split(r"\n## ", text)[1:]:
        task = sec.split(":", 1)[0]
        lines = sec.splitlines()
        i = next(k for k, line in enumerate(lines) if line.startswith("| method | runs"))
        out[task] = [line for line in lines[i:] if line.startswith("|")][: 2 + 6]
    return out


@pytest.fixture(scope="module")
def summary():
    return (RESULTS / "summary.md").read_text()


@pytest.fixture(scope="module")
def rows():
    with open(RESULTS / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_summary_numbers_follow_from_the_csv(summary, rows):
    assert len(rows) == 1680
    runs = defaultdict(list)
    for r in rows:
        runs[(r["task"], r["method"])].append(r)
    for task, lines in method_tables(summary).items():
        metric = f"final_{PRIMARY[task]}"
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip("|").split("|")]
            method, n, div, _, best_lr, at_best = cells[:6]
            rs = runs[(task, method)]
            assert int(n) == len(rs) == 70
            diverged = np.mean([int(r["diverged"]) for r in rs])
            assert float(div.rstrip("%")) == pytest.approx(100 * diverged, abs=0.5)
            by_lr = defaultdict(list)
            for r in rs:
                v = r[metric]
                by_lr[float(r["lr"])].append(float(v) if v not in ("", None) and not int(r["diverged"]) else math.inf)
            medians = {lr: float(np.median(v)) for lr, v in by_lr.items()}
            best = min(medians, key=medians.get)
            assert float(best_lr) == pytest.approx(best, rel=0.02), (task, method)
            median = float(at_best.split("[")[0])
            assert median == pytest.approx(medians[best], rel=6e-3), (task, method)
            q1, q3 = (float(x) for x in at_best.split("[")[1].rstrip("]").split(","))
            lo, hi = np.percentile(by_lr[best], [25, 75])
            assert (q1, q3) == (pytest.approx(lo, rel=6e-3), pytest.approx(hi, rel=6e-3)), (task, method)


# --------------------------------------------------------------------------------------
# the second study (v2): the README's results table, recomputed from results.csv
# --------------------------------------------------------------------------------------

V2 = ROOT / "results" / "study-v2"
V2_TASKS = ("ring8", "grid25", "sp500", "gauss1d")
V2_PRIMARY = {"ring8": "energy", "grid25": "energy", "sp500": "w1", "gauss1d": "w1"}  # lower is better
V2_HEADING = "### Results of the second study (v2)"


@pytest.fixture(scope="module")
def v2_rows():
    with open(V2 / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _readme_v2_table() -> dict:
    """{method: {task: (median, q1, q3, divergence %, robust decades)}} from the README's v2 table."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(V2_HEADING):]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| method | ring8 energy"))
    out = {}
    for ln in lines[start + 1:]:
        cells = [c.strip().replace("**", "") for c in ln.strip("|").split("|")]
        if cells[0].startswith("---"):
            continue
        if len(cells) != 13:
            break
        per_task = {}
        for j, task in enumerate(V2_TASKS):
            q, div, robust = cells[1 + 3 * j: 4 + 3 * j]
            median = float(q.split("[")[0])
            q1, q3 = (float(x) for x in q.split("[")[1].rstrip("]").split(","))
            per_task[task] = (median, q1, q3, float(div.rstrip("%")), float(robust))
        out[cells[0]] = per_task
    return out


def _v2_recomputed(rows, task):
    """Per method: {lr: (finals, diverged seeds, reached seeds)} of the task's primary metric."""
    metric = f"final_{V2_PRIMARY[task]}"
    per = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["task"] == task:
            diverged = int(r["diverged"])
            v = math.inf if diverged or r[metric] in ("", None) else float(r[metric])
            per[r["method"]][float(r["lr"])].append((v, diverged, int(r["reached"])))
    return per


def test_v2_readme_table_follows_from_the_csv(v2_rows):
    assert len(v2_rows) == 4520
    table = _readme_v2_table()
    assert {"sgd", "adam", "ttur", "csgd", "gap", "sgd+discrete", "adam+discrete", "sgd+greedy",
            "sgd+continuous"} <= set(table)
    for task in V2_TASKS:
        per = _v2_recomputed(v2_rows, task)
        medians = {m: {lr: float(np.median([v for v, _, _ in runs])) for lr, runs in by_lr.items()}
                   for m, by_lr in per.items()}
        task_best = min(v for by_lr in medians.values() for v in by_lr.values())
        for method, cells in table.items():
            median, q1, q3, div, robust = cells[task]
            by_lr = per[method]
            runs = [x for rs in by_lr.values() for x in rs]
            assert len(runs) in (80, 95), (task, method)
            assert div == pytest.approx(100 * np.mean([d for _, d, _ in runs]), abs=0.5), (task, method)
            # tuned rate: best median; ties to more seeds reaching the threshold, then the smaller rate
            best = min(by_lr, key=lambda lr: (medians[method][lr], -sum(x for _, _, x in by_lr[lr]), lr))
            assert median == pytest.approx(medians[method][best], rel=6e-3), (task, method)
            lo, hi = np.percentile([v for v, _, _ in by_lr[best]], [25, 75])
            assert (q1, q3) == (pytest.approx(lo, rel=6e-3), pytest.approx(hi, rel=6e-3)), (task, method)
            # robust range: longest run of consecutive grid rates, no seed diverged and the median
            # within 20% of the task's best, at a third of a decade per rate
            longest = run = 0
            for lr in sorted(by_lr):
                ok = all(d == 0 for _, d, _ in by_lr[lr]) and medians[method][lr] <= 1.2 * task_best
                run = run + 1 if ok else 0
                longest = max(longest, run)
            assert robust == pytest.approx(longest / 3, abs=0.006), (task, method)


def test_v2_readme_targets_are_the_computed_ones(v2_rows):
    import json

    from stochctl.study.protocol import StudyConfig
    from stochctl.study.report import summarize, target_lines
    from stochctl.study.runner import read_results

    config = StudyConfig.from_json(json.loads((V2 / "study.json").read_text()))
    lines = target_lines(config, summarize(config, read_results(V2 / "results.csv")))
    assert len([ln for ln in lines if ln.startswith("| ") and ln.split("|")[1].strip() in V2_TASKS]) == 4
    assert "\n".join(lines) in (ROOT / "README.md").read_text()
