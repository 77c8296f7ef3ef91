"""Benchmark: cost of measuring the curvature of the step about to be taken, against a base training step.

    python benchmarks/bench_curvature.py [--quick] [--json FILE]

Measured on the ``ring8`` GAN of the study (:mod:`stochctl.study.tasks`: MLP
generator and discriminator, two hidden layers of 128 ReLU units, batch 256)
with the training step of :mod:`stochctl.study.runner` (data and latent draws,
discriminator step on BCE(D(x), 1) + BCE(D(G(z)), 0), generator step on
BCE(D(G(z)), 1) with the updated discriminator), SGD at rate 0.01, one torch
thread, CPU time of the thread (``time.thread_time``), minimum over
alternating blocks.

- base: the study's step;
- controlled: the same step with a :class:`~stochctl.policy.ControlledLR`
  per player (the one-step policy), ``scheduler.step(closure=...)`` between
  each player's ``backward()`` and ``optimizer.step()``: the step direction,
  the noise ratio and the rate at every step, the curvature every k steps.

The figure is the overhead (controlled - base) / base, in percent of a base
step, for ``curvature_every`` k = 1, 5, 10, 20, all measured in the same run. The
default measurement is ``curvature="own"`` with the scheduler's default
``method="fd"`` (one-sided difference from the gradient ``backward()`` just
computed: one gradient evaluation per player); the double-backward
``"hvp"`` and the player-aware ``"field"`` measure (which also
differentiates the other player's loss) are printed alongside. Target for the
default: at most 30%.

Second table (``--evals``): per measure, the time of a measuring scheduler step
(``scheduler.step(closure=...)`` at ``curvature_every=1``, summed over both
players) against the time of the gradient evaluations that measurement needs,
run alone at the same points (the same closure calls and ``torch.autograd.grad``
calls, nothing else): own fd 1 gradient, own hvp a gradient with graph and one
backward of g . d, field fd 3 gradients (this player's at x + eps d, the other
player's at x and at x + eps d, the latter also in this player's parameters),
field hvp 2 gradients with graph and 2 backwards. The ratio measures the
bookkeeping around the evaluations; target at most 1.10.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time

LR = 0.01
EVERY = (1, 5, 10, 20)
RECOMMENDED = ("field", "fd", 20)
"""The controller's default setting (``ControlledLR``'s ``curvature_every``, the study's ``sgd+discrete``)."""
VARIANTS = (("own", "fd"), ("own", "hvp"), ("field", "fd"), ("field", "hvp"))
DEFAULT = ("own", "fd")


def _setup(steps: int):
    import torch

    from stochctl.study.tasks import get_task

    task = get_task("ring8")
    torch.manual_seed(1000)
    G, D = task.networks()
    gen = torch.Generator().manual_seed(2000)
    draws = [(task.sample_real(task.batch_size, gen), task.sample_latent(task.batch_size, gen))
             for _ in range(steps)]
    return task, (G, D), draws


def _train(nets, draws, variant=None, every: int = 1) -> tuple[float, int]:
    """Train a copy of (G, D) on the draws; returns (thread seconds, curvature measurements)."""
    import torch

    from stochctl.policy import ControlledLR, OneStepPolicy

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    G, D = (copy.deepcopy(n) for n in nets)
    batch = draws[0][0].shape[0]
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=LR)
    d_params = list(D.parameters())
    sg = sd = None
    if variant is not None:
        mode, method = variant
        kw = dict(curvature=mode, method=method, curvature_every=every)
        sg = ControlledLR(opt_g, OneStepPolicy(u_max=1.0), other_params=d_params if mode == "field" else None, **kw)
        sd = ControlledLR(opt_d, OneStepPolicy(u_max=1.0), other_params=opt_g if mode == "field" else None, **kw)
    t = time.thread_time()
    for x, z in draws:
        fake = G(z)
        d_loss = bce(D(x), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        if sd is not None:
            fixed = fake.detach()  # the generator does not move during the discriminator's step
            d_closure = lambda: bce(D(x), ones) + bce(D(fixed), zeros)  # noqa: E731
            g_closure = lambda: bce(D(G(z)), ones)  # noqa: E731
            if sd.curvature == "field":
                sd.step(closure=d_closure, other_closure=g_closure)
            else:
                sd.step(closure=d_closure)
        opt_d.step()
        for p in d_params:
            p.requires_grad_(False)
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        if sg is not None and sg.curvature == "field":
            for p in d_params:  # the field differentiates the discriminator's loss in its own parameters
                p.requires_grad_(True)
            sg.step(closure=lambda: bce(D(G(z)), ones),
                    other_closure=lambda: bce(D(x), ones) + bce(D(G(z)), zeros))
        elif sg is not None:
            sg.step(closure=lambda: bce(D(G(z)), ones))
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
    elapsed = time.thread_time() - t
    if not all(bool(torch.isfinite(p).all()) for p in list(G.parameters()) + d_params):
        raise SystemExit("training produced non-finite parameters")
    return elapsed, 0 if sg is None else sg.curvature_measurements + sd.curvature_measurements


def _evals_alone(mode: str, method: str, params, other, closure, other_closure) -> None:
    """The gradient evaluations a measurement of ``mode``/``method`` needs, and nothing else."""
    import torch

    grad = torch.autograd.grad
    if method == "fd":
        grad(closure(), params)
        if mode == "field":
            grad(other_closure(), other)
            grad(other_closure(), other + params, allow_unused=True)
        return
    gp = grad(closure(), params, create_graph=True)
    d = [g.detach() for g in gp]
    grad(sum((g * v).sum() for g, v in zip(gp, d)), params)
    if mode == "field":
        vq = grad(other_closure(), params, create_graph=True)
        grad(sum((g * v).sum() for g, v in zip(vq, d)), other)


def _train_timed(nets, draws, mode: str, method: str) -> tuple[float, float]:
    """(thread seconds in the schedulers' steps, thread seconds of their gradient evaluations alone)."""
    import torch

    from stochctl.policy import ControlledLR, OneStepPolicy

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    G, D = (copy.deepcopy(n) for n in nets)
    batch = draws[0][0].shape[0]
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=LR)
    g_params, d_params = list(G.parameters()), list(D.parameters())
    kw = dict(curvature=mode, method=method, curvature_every=1)
    sg = ControlledLR(opt_g, OneStepPolicy(u_max=1.0), other_params=d_params if mode == "field" else None, **kw)
    sd = ControlledLR(opt_d, OneStepPolicy(u_max=1.0), other_params=opt_g if mode == "field" else None, **kw)
    t_sched = t_evals = 0.0
    for x, z in draws:
        fake = G(z)
        d_loss = bce(D(x), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        fixed = fake.detach()
        d_closure = lambda: bce(D(x), ones) + bce(D(fixed), zeros)  # noqa: E731
        g_closure = lambda: bce(D(G(z)), ones)  # noqa: E731
        t = time.thread_time()
        _evals_alone(mode, method, d_params, g_params, d_closure, g_closure)
        t_evals += time.thread_time() - t
        t = time.thread_time()
        sd.step(closure=d_closure, other_closure=g_closure) if mode == "field" else sd.step(closure=d_closure)
        t_sched += time.thread_time() - t
        opt_d.step()
        for p in d_params:
            p.requires_grad_(mode == "field")
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        g_closure = lambda: bce(D(G(z)), ones)  # noqa: E731
        o_closure = lambda: bce(D(x), ones) + bce(D(G(z)), zeros)  # noqa: E731
        t = time.thread_time()
        _evals_alone(mode, method, g_params, d_params, g_closure, o_closure)
        t_evals += time.thread_time() - t
        t = time.thread_time()
        sg.step(closure=g_closure, other_closure=o_closure) if mode == "field" else sg.step(closure=g_closure)
        t_sched += time.thread_time() - t
        opt_g.step()
        for p in d_params:
            p.requires_grad_(True)
    return t_sched, t_evals


def bench_evals(steps: int, blocks: int, variants=VARIANTS) -> list:
    """Per measure: ms per step of the measuring scheduler steps and of their gradient evaluations alone."""
    import torch

    torch.set_num_threads(1)
    _, nets, draws = _setup(steps)
    for v in variants:  # warm-up
        _train_timed(nets, draws[:5], *v)
    best = {v: (float("inf"), float("inf")) for v in variants}
    for _ in range(blocks):
        for v in variants:
            ts, te = _train_timed(nets, draws, *v)
            best[v] = (min(best[v][0], ts), min(best[v][1], te))
    return [{"curvature": v[0], "method": v[1], "measuring_ms": 1e3 * best[v][0] / steps,
             "evals_ms": 1e3 * best[v][1] / steps, "ratio": best[v][0] / best[v][1]} for v in variants]


def bench(steps: int, blocks: int, variants=VARIANTS, everys=EVERY) -> dict:
    import torch

    torch.set_num_threads(1)
    _, nets, draws = _setup(steps)
    configs = [None] + [(v, k) for v in variants for k in everys]
    for c in configs:  # warm-up
        _train(nets, draws[:5], *(c or (None,)))
    best = {c: float("inf") for c in configs}
    measurements = {}
    for _ in range(blocks):
        for c in configs:
            t, n = _train(nets, draws, *(c or (None,)))
            best[c] = min(best[c], t)
            measurements[c] = n
    base = best[None]
    out = {"base_ms_per_step": 1e3 * base / steps, "steps": steps, "blocks": blocks, "configs": []}
    for (variant, k) in configs[1:]:
        out["configs"].append({"curvature": variant[0], "method": variant[1], "curvature_every": k,
                               "ms_per_step": 1e3 * best[variant, k] / steps,
                               "overhead_percent": 100.0 * (best[variant, k] - base) / base,
                               "measurements_per_step": measurements[variant, k] / steps})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and blocks (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--evals", action="store_true", help="only the second table: measuring step against its "
                        "gradient evaluations alone")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("curvature: skipped (torch is not installed)")
        return 0
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    steps, blocks = (20, 2) if args.quick else (100, 5)
    if args.evals:
        res = {"evals": bench_evals(steps, blocks), "steps": steps, "blocks": blocks}
        _print_evals(res)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(res, fh, indent=2)
        return 0
    res = bench(steps, blocks)
    res["evals"] = bench_evals(steps, blocks)
    print(f"ring8 GAN, SGD, torch 1 thread: base step {res['base_ms_per_step']:.3f} ms (min over "
          f"{res['blocks']} blocks of {res['steps']} steps); curvature overhead in % of a base step")
    for r in res["configs"]:
        tag = " (default)" if (r["curvature"], r["method"]) == DEFAULT else ""
        if (r["curvature"], r["method"], r["curvature_every"]) == RECOMMENDED:
            tag += " (recommended: the controller's default interval; target 30%)"
        print(f"  curvature={r['curvature']:<5} method={r['method']:<3} every {r['curvature_every']:2d}: "
              f"{r['ms_per_step']:.3f} ms/step, overhead {r['overhead_percent']:6.1f}%{tag}")
    _print_evals(res)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


def _print_evals(res) -> None:
    print(f"measuring step (both players' schedulers, curvature_every 1) against its gradient evaluations alone "
          f"(ms per step, min over {res['blocks']} blocks of {res['steps']} steps; target ratio <= 1.10)")
    for r in res["evals"]:
        print(f"  curvature={r['curvature']:<5} method={r['method']:<3}: measuring {r['measuring_ms']:.3f} ms, "
              f"evaluations {r['evals_ms']:.3f} ms, ratio {r['ratio']:.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
