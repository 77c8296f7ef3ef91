"""Accuracy of the packaged discrete table over the whole input range, against fresh Bellman solves.

    python benchmarks/bench_discrete_table.py [--quick] [u_max,h ...]

(``u_max,h``: only those cases of :data:`CASES`, for example ``8,0.0001``; ``--cache DIR``: keep each
case's fresh reference (points and fresh u*, which do not depend on the table) in DIR and reuse it.)

For each (u_max, h) case one fresh ``solve_discrete`` of ``local-discrete`` at that (h, u_max)
(``tests/_discrete_reference.py``: spacing 0.01 in y, at most 0.02 in w = sqrt(h) y; caps
h u_max above 64 solved at 64, which does not bind), then |u_table - u_fresh| at 400 random
(n steps left, y): n short (1..20) or log-uniform up to the solve's length, y of both signs, half
in [-6, 6] and half from the trainer's SNR (y = sqrt(SNR / (1 - SNR) / h), |y| <= 12 for h <= 1).
Also the one-step closed form u = min(u_max, y^2 / (1 + h y^2)) at 40000 points, by band of
Z = h u_max, and the table's build time and file size.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import itertools

from _discrete_reference import compare

from stochctl.tables import load_table
from stochctl.tables.discrete_policy import lookup
from stochctl.tables.shipped_discrete import default_path

CASES = [(1.0, 1e-4, 2000), (2.0, 1e-4, 2000), (8.0, 1e-4, 2000), (8.0, 2.5e-4, 3000), (1.0, 2e-3, 6000),
         (4.0, 1e-3, 3000), (8.0, 4e-3, 1000), (1.5, 0.02, 1000), (8.0, 0.02, 1000), (5.0, 0.05, 400), (1.0, 0.1, 800), (2.5, 0.3, 150), (8.0, 0.7, 100), (1.0, 2.0, 100),
         (4.0, 30.0, 100), (6.0, 300.0, 100), (1.2, 1e4, 100)]
QUICK = [(1.0, 1e-3, 300), (8.0, 0.05, 100), (4.0, 30.0, 60)]


def cached_compare(table, u_max, h, steps, cache):
    """``compare`` of ``tests/_discrete_reference.py``, its fresh reference kept in (and read from) ``cache``."""
    path = None if cache is None else cache / f"{u_max:g}_{h:g}_{steps}.npz"
    if path is None or not path.exists():
        c = compare(table, u_max, h, steps)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, n=c["n"], y=c["y"], ref=c["ref"], dropped=c["dropped"])
        return c
    d = np.load(path)
    got, status = lookup(table, u_max, h, d["n"] * h, d["y"])
    return {"err": np.abs(got - d["ref"]), "n": d["n"], "y": d["y"], "ref": d["ref"], "got": got, "status": status,
            "dropped": int(d["dropped"])}


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    quick = "--quick" in args
    only = [c for c in CASES if f"{c[0]:g},{c[1]:g}" in args]
    cache = Path(args[args.index("--cache") + 1]) if "--cache" in args else None
    table = load_table("local-discrete")
    meta = table.metadata
    print(f"local-discrete: {os.path.getsize(default_path()) / 1e6:.2f} MB, built in "
          f"{meta['solver']['wall_seconds']:.0f} s on {meta['solver']['workers']} workers "
          f"({meta['solver']['solver_seconds']:.0f} s of solves)")
    rng = np.random.default_rng(20261207)
    m = 40000
    h = np.exp(rng.uniform(math.log(1e-4), math.log(1e4), m))
    u_max = rng.uniform(1.0, 8.0, m)
    snr = rng.uniform(0.0, 0.999, m)
    y = np.where(rng.uniform(size=m) < 0.5, rng.uniform(-6, 6, m),
                 rng.choice([-1.0, 1.0], m) * np.sqrt(snr / (1 - snr) / h))
    got, _ = lookup(table, u_max, h, h, y)
    err = np.abs(got - np.minimum(u_max, y**2 / (1 + h * y**2)))
    Z = h * u_max
    print("one step left, closed form: band of Z = h u_max, points, largest |du|, 99th percentile")
    edges = [1e-4, 2.0**-11, 2.0**-8, 2.0**-4, 0.25, 2.0**0.25, 10.0, 1e3, 1e5]
    for lo, hi in itertools.pairwise(edges):
        s = (Z >= lo) & (Z < hi)
        print(f"  [{lo:<8.3g}, {hi:<8.3g}) {s.sum():6d}  {err[s].max():.4f}  {np.quantile(err[s], 0.99):.4f}")
    print("fresh Bellman solves: u_max, h, steps, largest |du|, 99th percentile, mean, worst point (n, y, fresh, "
          "table), points dropped (the fresh V_n below 1e-8: its minimiser is noise)")
    for u_m, hh, steps in (QUICK if quick else only or CASES):
        t0 = time.perf_counter()
        c = cached_compare(table, u_m, hh, steps, cache)
        e, n, yy, ref, got = c["err"], c["n"], c["y"], c["ref"], c["got"]
        i = int(e.argmax())
        print(f"  {u_m:<4g} {hh:<8g} {steps:5d}  {e.max():.4f}  {np.quantile(e, 0.99):.4f}  {e.mean():.5f}  "
              f"(n={n[i]}, y={yy[i]:.3g}, {ref[i]:.4f}, {got[i]:.4f})  {c['dropped']} dropped  "
              f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
