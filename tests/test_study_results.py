"""The committed full-study results: the README quotes summary.md verbatim, and the summary's
headline numbers follow from results.csv when recomputed here, independently of the report code."""

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


def test_readme_quotes_the_summary_tables(summary):
    readme = (ROOT / "README.md").read_text()
    tables = method_tables(summary)
    assert sorted(tables) == sorted(PRIMARY)
    for task, lines in tables.items():
        assert "\n".join(lines) in readme, f"README's {task} table differs from results/study-full/summary.md"


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
