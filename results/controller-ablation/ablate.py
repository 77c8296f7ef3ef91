"""Controller ablation: train the planned (task, method, base rate, seed) runs, one CSV row per finished run.

    PYTHONPATH=. nice -n 5 python results/controller-ablation/ablate.py PLAN [PLAN ...] [--workers 2]

Each run is :func:`stochctl.study.runner.run_job` under the study protocol with the step budgets of
:data:`STEPS` (shorter than the full protocol's, to fit the time available). Finished runs are
appended to ``results.csv`` here at once; a run already there (same task, method, rate, seed) is
skipped, so an interrupted plan resumes. The ablation's own method variants are registered by
:mod:`variants` (next to this file). The ``curve`` column keeps only the primary metric.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import csv
import json
import multiprocessing
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
OUT = HERE / "results.csv"
DATA = HERE / "nasdaq_adj_close.csv"
TASKS = ("ring8", "grid25", "sp500", "gauss1d", "data")
STEPS = {"ring8": 1000, "grid25": 1000, "sp500": 1000, "gauss1d": 1000, "data": 1000}
SEEDS = (0, 1, 2)
PRIMARY = {"ring8": "energy", "grid25": "energy", "sp500": "w1", "gauss1d": "w1", "data": "w1"}
SGD_GRID = (0.01, 0.0316, 0.1, 0.316, 1.0, 10.0)
ADAM_GRID = (1e-4, 1e-3, 1e-2)
COLUMNS = ("task", "method", "lr", "seed", "steps", "diverged", "diverged_step", "final", "mult_g", "mult_d",
           "grad_evals", "grad_evals_per_step", "seconds", "curv_g", "curv_d", "field_g", "field_d",
           "final_w1", "final_energy", "final_w2", "final_modes", "final_hq", "policy_cases", "curve")


def config():
    from stochctl.study.protocol import DataSpec, StudyConfig

    import variants

    return StudyConfig(name="controller-ablation", tasks=TASKS, methods=variants.ALL, seeds=SEEDS,
                       sweeps=(("sgd", SGD_GRID), ("adam", ADAM_GRID)), steps=tuple(STEPS.items()), version=2,
                       data=DataSpec.load(str(DATA)))


def plans():
    """PLAN name -> list of (methods, rates, tasks[, seeds]): run in order, seed-major within a plan."""
    import variants

    return variants.PLANS


def _run(job):
    import torch

    torch.set_num_threads(1)
    import variants  # noqa: F401  (registers the variants in this process)
    from stochctl.study.methods import get_method
    from stochctl.study.protocol import Job
    from stochctl.study.runner import run_job

    task, method, lr, seed = job
    row, _ = run_job(config(), Job(task, method, lr, seed), 0, get_method(method))
    steps_taken = row["diverged_step"] or row["steps"]
    curve = json.loads(row["curve"])
    out = {k: row.get(k) for k in COLUMNS if k in row}
    out.update(final=row.get(f"final_{PRIMARY[task]}"), grad_evals_per_step=row["grad_evals"] / steps_taken,
               curve=json.dumps({"step": curve["step"], PRIMARY[task]: curve[PRIMARY[task]]},
                                separators=(",", ":")))
    return out


def done_keys():
    if not OUT.exists():
        return set()
    with open(OUT, newline="") as f:
        return {(r["task"], r["method"], f"{float(r['lr']):.6g}", int(r["seed"])) for r in csv.DictReader(f)}


def append(row):
    new = not OUT.exists() or OUT.stat().st_size == 0
    with open(OUT, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            w.writeheader()
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
        f.flush()
        os.fsync(f.fileno())


def tuned_rates():
    """{(task, family): tuned rate}: the family baseline's grid rate with the best median final primary
    metric over the seeds (a diverged run counts as the worst), among rates with every seed finished."""
    import statistics

    runs = {}
    if OUT.exists():
        with open(OUT, newline="") as f:
            for r in csv.DictReader(f):
                if r["method"] in ("sgd", "adam"):
                    v = float(r["final"]) if r["final"] and r["diverged"] == "0" else float("inf")
                    runs.setdefault((r["task"], r["method"], float(r["lr"])), []).append(v)
    best = {}
    for (task, fam, lr), vals in runs.items():
        if len(vals) < len(SEEDS):
            continue
        med = statistics.median(vals)
        if (task, fam) not in best or med < best[task, fam][1]:
            best[task, fam] = (lr, med)
    return {k: v[0] for k, v in best.items()}


def planned(names):
    """The jobs of the plans, plan after plan, seed-major within each (tuned rates not yet known are left out)."""
    from stochctl.study.methods import get_method

    import variants

    tuned = tuned_rates()
    jobs = []
    for name in names:
        for methods, rates, tasks, *seeds in plans()[name]:
            for seed in (seeds[0] if seeds else SEEDS):
                for task in tasks:
                    for m in methods:
                        for lr in rates:
                            if lr == variants.TUNED:
                                lr = tuned.get((task, get_method(m).family))
                                if lr is None:
                                    continue
                            jobs.append((task, m, float(lr), seed))
    return list(dict.fromkeys(jobs))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("plan", nargs="+")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    os.environ.update({k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    ctx = multiprocessing.get_context("spawn")
    failed = set()
    with cf.ProcessPoolExecutor(max_workers=args.workers, mp_context=ctx) as pool:
        while True:  # plans whose tuned rates become known as the baselines finish are picked up
            done = done_keys()
            jobs = [j for j in planned(args.plan) if (j[0], j[1], f"{j[2]:.6g}", j[3]) not in done and j not in failed]
            if not jobs:
                break
            print(f"{len(jobs)} runs to do", flush=True)
            failed |= _run_all(pool, jobs, args.workers)


def _run_all(pool, jobs, workers):
    """Run ``jobs`` on ``pool``, appending each finished row; return the jobs that failed."""
    failed = set()
    futures = {}
    queue = list(reversed(jobs))
    while queue or futures:
        while queue and len(futures) < 2 * workers:
            j = queue.pop()
            futures[pool.submit(_run, j)] = j
        finished, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        for fut in finished:
            j = futures.pop(fut)
            try:
                row = fut.result()
            except Exception as exc:  # report and go on: one broken variant must not stop the plan
                print(f"FAILED {j}: {exc!r}", flush=True)
                failed.add(j)
                continue
            append(row)
            print(f"{j} final={row['final']} div={row['diverged']} ge/step={row['grad_evals_per_step']:.2f} "
                  f"t={row['seconds']:.1f}", flush=True)
    return failed


if __name__ == "__main__":
    main()
