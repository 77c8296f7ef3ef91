"""Benchmark of the policy tables and of the PyTorch scheduler.

    python benchmarks/bench_policy.py [--quick] [--json FILE]

1. Table lookups per second, 10^6 query points in a 2D table, the package's
   numba kernel (1 thread, and every numba thread) against
   scipy.interpolate.RegularGridInterpolator (method "linear") in the same run,
   on two tables: the packaged local-model table (141 x 383, non-uniform
   axes, value ``u``) and a uniform 161 x 241 table. The queries are uniform in
   the box; the two answers must agree to 1e-12 or the benchmark stops.
   Target: at least 5 times scipy with one thread.
2. Per-step overhead of ``ControlledLR`` (regression estimator, packaged
   table) on the study's GAN: ``ring8`` of :mod:`stochctl.study.tasks`, MLP
   generator and discriminator with two hidden layers of 128 ReLU units, 2-D
   data, latent dimension 2, batch 256, SGD, the non-saturating loss, the
   training step of :mod:`stochctl.study.runner` (sample, discriminator step,
   generator step). overhead = (t_with - t_without) / t_without, t the time
   of a full training step (both players) with one scheduler per optimizer and
   without schedulers, measured as CPU time of the training thread
   (``time.thread_time``; torch runs on one thread, so this is the wall time
   minus the time the thread waits for a core). The two loops alternate in
   blocks; each figure is the minimum over the blocks, which discards blocks
   slowed down by other processes, and the median of the per-block ratios is
   printed too. Target: under 15 percent.

The machine's load average is printed: on a shared machine the figures move.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

TARGET_LOOKUP_SPEEDUP = 5.0
TARGET_OVERHEAD = 0.15


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_lookup(n: int, repeat: int) -> dict:
    """Lookups per second of the numba kernel and of scipy's RegularGridInterpolator."""
    import numba
    from scipy.interpolate import RegularGridInterpolator

    from stochctl.policy import PolicyTable

    shipped = PolicyTable.shipped("local-quadratic")
    a0, a1 = np.linspace(0.0, 8.0, 161), np.linspace(-6.0, 6.0, 241)
    tables = {
        "local-quadratic (non-uniform 141x383)": PolicyTable.from_arrays(shipped.axes, [shipped.value("u")]),
        "uniform 161x241": PolicyTable.from_arrays(
            [("tau_remaining", a0), ("y", a1)],
            {"u": 0.5 + 0.5 * np.cos(a0)[:, None] * np.sin(a1)[None, :]}),
    }
    rng = np.random.default_rng(0)
    threads = numba.get_num_threads()
    out = {}
    for name, table in tables.items():
        (lo0, hi0), (lo1, hi1) = (a.bounds for a in table.axes)
        q = np.column_stack([rng.uniform(lo0, hi0, n), rng.uniform(lo1, hi1, n)])
        rgi = RegularGridInterpolator(tuple(a.breakpoints for a in table.axes), table["u"], method="linear")
        ref = rgi(q)
        row = {}
        for nt in sorted({1, threads}):
            numba.set_num_threads(nt)
            got = table.lookup_array(q)["u"]
            err = float(np.abs(got - ref).max())
            if err > 1e-12:
                raise SystemExit(f"numba and scipy disagree by {err:.3g} on {name}")
            row[f"numba_{nt}t"] = n / _best(lambda t=table, q=q: t.lookup_array(q), repeat)
        numba.set_num_threads(threads)
        row["scipy"] = n / _best(lambda f=rgi, q=q: f(q), max(2, repeat // 2))
        row["speedup_1t"] = row["numba_1t"] / row["scipy"]
        row[f"speedup_{threads}t"] = row[f"numba_{threads}t"] / row["scipy"]
        out[name] = row
    return out


def bench_scheduler(blocks: int, steps: int) -> dict:
    """Training-step time of the study's GAN with and without ControlledLR."""
    import torch

    from stochctl.study.methods import controlled_scheduler
    from stochctl.study.tasks import get_task

    torch.set_num_threads(1)
    task = get_task("ring8")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    batch = task.batch_size
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)

    def setup(controlled: bool):
        torch.manual_seed(0)
        G, D = task.networks()
        opt_g = torch.optim.SGD(G.parameters(), lr=0.02)
        opt_d = torch.optim.SGD(D.parameters(), lr=0.02)
        sch = [controlled_scheduler(o, steps=10**7) for o in (opt_g, opt_d)] if controlled else [None, None]
        return G, D, opt_g, opt_d, sch[0], sch[1], torch.Generator().manual_seed(1)

    def run(state, n):
        G, D, opt_g, opt_d, sch_g, sch_d, gen = state
        d_params = list(D.parameters())
        t = time.thread_time()
        for _ in range(n):
            x = task.sample_real(batch, gen)
            z = task.sample_latent(batch, gen)
            fake = G(z)
            d_loss = bce(D(x), ones) + bce(D(fake.detach()), zeros)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            if sch_d is not None:
                sch_d.step()
            for p in d_params:
                p.requires_grad_(False)
            g_loss = bce(D(fake), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            if sch_g is not None:
                sch_g.step()
            for p in d_params:
                p.requires_grad_(True)
        return (time.thread_time() - t) / n

    plain, controlled = setup(False), setup(True)
    run(plain, 30)
    run(controlled, 30)
    times = [(run(plain, steps), run(controlled, steps)) for _ in range(blocks)]
    t0 = min(a for a, _ in times)
    t1 = min(b for _, b in times)
    n_params = sum(p.numel() for p in plain[0].parameters()) + sum(p.numel() for p in plain[1].parameters())
    return {"step_plain_ms": 1e3 * t0, "step_controlled_ms": 1e3 * t1, "overhead": (t1 - t0) / t0,
            "overhead_median_of_blocks": float(np.median([(b - a) / a for a, b in times])),
            "parameters": n_params, "blocks": blocks, "steps_per_block": steps,
            "multipliers": [s.last_multipliers[0] for s in controlled[4:6]]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    n = 10**5 if args.quick else 10**6
    results = {"lookup_points": n, "lookup": bench_lookup(n, 3 if args.quick else 9)}
    print(f"table lookups, {n:.0e} query points, 2D (points per second):")
    ok = True
    for name, row in results["lookup"].items():
        rates = "  ".join(f"{k} {v / 1e6:.1f} M/s" for k, v in row.items() if k.startswith(("numba", "scipy")))
        print(f"  {name}: {rates}")
        print(f"    numba / scipy: {row['speedup_1t']:.1f}x with 1 thread"
              + "".join(f", {v:.1f}x with {k.split('_')[1]}" for k, v in row.items()
                        if k.startswith("speedup_") and k != "speedup_1t")
              + f" (target >= {TARGET_LOOKUP_SPEEDUP:g}x)")
        ok &= row["speedup_1t"] >= TARGET_LOOKUP_SPEEDUP
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch scheduler overhead: skipped (torch is not installed)")
    else:
        s = bench_scheduler(3 if args.quick else 9, 40 if args.quick else 150)
        results["scheduler"] = s
        print(f"PyTorch scheduler on the ring8 GAN ({s['parameters']} parameters, batch 256, SGD, torch 1 thread):")
        print(f"  training step without schedulers {s['step_plain_ms']:.3f} ms, with ControlledLR "
              f"{s['step_controlled_ms']:.3f} ms (min over {s['blocks']} blocks of {s['steps_per_block']} steps)")
        print(f"  overhead {100 * s['overhead']:.1f}% (median over blocks {100 * s['overhead_median_of_blocks']:.1f}%; "
              f"target < {100 * TARGET_OVERHEAD:g}%)")
        ok &= s["overhead"] < TARGET_OVERHEAD
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("targets met" if ok else "TARGETS MISSED")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
