"""``summary.json``: every finished run of a study folder, in a documented schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .files import read_results

RESULTS = "results.csv"
SUMMARY_JSON = "summary.json"


def summary_runs(rows: list[dict]) -> list[dict]:
    """The ``runs`` entries of ``summary.json`` (schema in :func:`write_summary_json`)."""
    runs = []
    for r in rows:
        metrics = {k[len("final_"):]: v for k, v in r.items() if k.startswith("final_") and v is not None}
        runs.append(dict(
            task=r["task"], method=r["method"], family=r["family"], lr=r["lr"], seed=r["seed"],
            steps=r["steps"], diverged=r["diverged_step"] if r["diverged"] else None,
            grad_evals=r["grad_evals"],
            grad_evals_per_step=(r["grad_evals"] / (r["diverged_step"] or r["steps"])
                                 if r["grad_evals"] is not None else None),
            seconds=r["seconds"], reached=bool(r["reached"]), metrics=metrics,
            multiplier=dict(generator=r["mult_g"], discriminator=r["mult_d"]),
            curvature=dict(generator=r["curv_g"], discriminator=r["curv_d"]),
            field=dict(generator=r["field_g"], discriminator=r["field_d"]),
            samples=r["samples"],
        ))
        if "budget" in r:  # version 3
            runs[-1].update(
                budget={"unit": r["budget_unit"], "size": r["budget"]}, horizon=r["horizon"],
                split={"validation": {k[len("val_"):]: v for k, v in r.items()
                                      if k.startswith("val_") and v is not None},
                       "test": metrics})
    return runs


def write_summary_json(out: str | os.PathLike, config) -> Path:
    """Write ``out/summary.json``: every finished run of the folder (``config``: its StudyConfig).

    Schema (``stochctl.study.summary``, version 1)::

        {"schema": "stochctl.study.summary", "version": 1,
         "protocol": "<16 hex digits>",            # the protocol hash of study.json
         "study": {...},                           # study.json: selection and protocol
         "runs": [{
            "task": str, "method": str, "family": "sgd" | "adam",
            "lr": float,                           # base learning rate
            "seed": int, "steps": int,             # step budget
            "diverged": int | null,                # step at which the run diverged, null if it did not
            "grad_evals": int,                     # gradient evaluations, both players, all steps
            "grad_evals_per_step": float,          # per step taken
            "seconds": float,                      # wall time (one torch thread)
            "reached": bool,                       # quality threshold met at the final evaluation
            "metrics": {name: float},              # final metrics (empty if diverged)
            "multiplier": {"generator": float, "discriminator": float},   # mean lr / base lr
            "curvature": {"generator": float | null, "discriminator": float | null},  # mean own
            "field": {"generator": float | null, "discriminator": float | null},      # mean field
            "samples": str | null,                 # npz path relative to the folder (load_samples)
            # protocol version 3 adds:
            "budget": {"unit": "grad_evals" | "steps", "size": int},   # every run of the task gets it
            "horizon": int,                        # the controlled methods' horizon K (steps)
            "split": {"validation": {name: float}, "test": {name: float}}  # final metrics per split
         }, ...]}

    In version 3 ``steps`` is the steps taken (fewer for a method that spends more per step) and
    ``metrics`` are the test metrics (``split["test"]``).

    Runs appear in the order they finished.
    """
    out = Path(out)
    rows = read_results(out / RESULTS)
    data = dict(schema="stochctl.study.summary", version=1, protocol=config.protocol_hash(),
                study=config.to_json(), runs=summary_runs(rows))
    path = out / SUMMARY_JSON
    tmp = path.with_suffix(".tmp")
    # version 3 folders hold about twice the runs with twice the metrics: written without indentation
    compact = dict(separators=(",", ":")) if config.version >= 3 else dict(indent=1)
    tmp.write_text(json.dumps(data, allow_nan=False, **compact))
    os.replace(tmp, path)
    return path
