"""Benchmark: one process per study run against several seeds batched with torch.func.vmap.

    python benchmarks/bench_study_batching.py [--quick] [--json FILE]

The study trains one GAN per (task, method, rate, seed) in a process pool,
one torch thread per worker. The alternative is to train S seeds of the same
(task, method, rate) together: their parameters stacked along a leading
axis and every tensor operation batched with ``torch.func.vmap``, which
replaces S small matrix products by one batched product and pays Python
and dispatch overhead once per step instead of S times.

Measured on the ``ring8`` GAN (MLP generator and discriminator with two
hidden layers of 128 ReLU units, batch 256, SGD at rate 0.01, the training
step of :mod:`stochctl.study.runner`: data and latent draws, discriminator
step on BCE(D(x), 1) + BCE(D(G(z)), 0), generator step on BCE(D(G(z)), 1)
with the updated discriminator), one torch thread, CPU time of the thread
(``time.thread_time``), minimum over alternating blocks:

- sequential: S seeds one after the other with ``nn.Module`` and
  ``torch.optim.SGD``, as a study worker runs them;
- batched: the same S seeds in one vmapped functional step.

Both start from the same initial networks and draw the same batches, and
the batched trajectories must equal the sequential ones to 1e-4 relative
after the check steps, or the benchmark stops. The figure is the ratio of
seed-steps per second (batched / sequential) for S = 2, 5, 10, measured in
the same run; above 1 batching beats a process per run on the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

LR = 0.01
CHECK_STEPS = 5


def _setup(seeds):
    import torch

    from stochctl.study.tasks import get_task

    task = get_task("ring8")
    nets = []
    for s in seeds:
        torch.manual_seed(1000 + s)
        nets.append(task.networks())
    return task, nets


def _draws(task, seeds, steps):
    """The data and latent batches of every seed and step: [steps][seed] -> (x, z)."""
    import torch

    gens = [torch.Generator().manual_seed(2000 + s) for s in seeds]
    out = []
    for _ in range(steps):
        out.append([(task.sample_real(task.batch_size, g), task.sample_latent(task.batch_size, g)) for g in gens])
    return out


def _sequential(task, nets, draws):
    """Train each seed's (G, D) in turn on its draws; returns (seconds of thread time, networks)."""
    import copy

    import torch

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    batch = task.batch_size
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    nets = [(copy.deepcopy(G), copy.deepcopy(D)) for G, D in nets]
    t = time.thread_time()
    for i, (G, D) in enumerate(nets):
        opt_g = torch.optim.SGD(G.parameters(), lr=LR)
        opt_d = torch.optim.SGD(D.parameters(), lr=LR)
        d_params = list(D.parameters())
        for step in draws:
            x, z = step[i]
            fake = G(z)
            d_loss = bce(D(x), ones) + bce(D(fake.detach()), zeros)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            for p in d_params:
                p.requires_grad_(False)
            g_loss = bce(D(fake), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            for p in d_params:
                p.requires_grad_(True)
    return time.thread_time() - t, nets


def _batched(task, nets, draws):
    """Train all seeds together, parameters stacked on axis 0, one vmapped step;
    returns (seconds of thread time, stacked generator and discriminator parameters)."""
    import torch
    from torch.func import functional_call, grad, stack_module_state, vjp, vmap

    bce = torch.nn.functional.binary_cross_entropy_with_logits
    G0, D0 = nets[0]
    gp, _ = stack_module_state([G for G, _ in nets])
    dp, _ = stack_module_state([D for _, D in nets])
    gp = {k: v.detach() for k, v in gp.items()}
    dp = {k: v.detach() for k, v in dp.items()}

    def d_loss(dpar, x, fake):
        real = functional_call(D0, dpar, (x,))
        gen = functional_call(D0, dpar, (fake,))
        return bce(real, torch.ones_like(real)) + bce(gen, torch.zeros_like(gen))

    def g_loss_of_fake(fake, dpar):
        out = functional_call(D0, dpar, (fake,))
        return bce(out, torch.ones_like(out))

    def step(gpar, dpar, x, z):
        fake, pull = vjp(lambda p: functional_call(G0, p, (z,)), gpar)
        dg = grad(d_loss)(dpar, x, fake.detach())
        dpar = {k: v - LR * dg[k] for k, v in dpar.items()}
        (gg,) = pull(grad(g_loss_of_fake)(fake, dpar))
        gpar = {k: v - LR * gg[k] for k, v in gpar.items()}
        return gpar, dpar

    vstep = vmap(step)
    t = time.thread_time()
    for draws_k in draws:
        x = torch.stack([xz[0] for xz in draws_k])
        z = torch.stack([xz[1] for xz in draws_k])
        gp, dp = vstep(gp, dp, x, z)
    return time.thread_time() - t, (gp, dp)


def _check(task, seeds) -> float:
    """Largest relative difference between batched and sequential parameters after CHECK_STEPS."""
    _, nets = _setup(seeds)
    draws = _draws(task, seeds, CHECK_STEPS)
    _, seq = _sequential(task, nets, draws)
    _, (gp, dp) = _batched(task, nets, draws)
    worst = 0.0
    for i, (G, D) in enumerate(seq):
        for net, stacked in ((G, gp), (D, dp)):
            for name, p in net.named_parameters():
                a, b = p.detach().numpy(), stacked[name][i].numpy()
                worst = max(worst, float(np.max(np.abs(a - b)) / (np.max(np.abs(a)) + 1e-30)))
    return worst


def bench(sizes, steps: int, blocks: int) -> dict:
    import torch

    torch.set_num_threads(1)
    out = {}
    for S in sizes:
        seeds = list(range(S))
        task, nets = _setup(seeds)
        err = _check(task, seeds)
        if not err < 1e-4:
            raise SystemExit(f"batched and sequential training differ for S = {S}: relative {err:.2e}")
        draws = _draws(task, seeds, steps)
        _sequential(task, nets, draws[:10])
        _batched(task, nets, draws[:10])
        times = [(_sequential(task, nets, draws)[0], _batched(task, nets, draws)[0]) for _ in range(blocks)]
        t_seq = min(a for a, _ in times)
        t_bat = min(b for _, b in times)
        out[S] = {"sequential_ms_per_seed_step": 1e3 * t_seq / (S * steps),
                  "batched_ms_per_seed_step": 1e3 * t_bat / (S * steps),
                  "speedup": t_seq / t_bat, "check_relative_difference": err}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("study batching: skipped (torch is not installed)")
        return 0
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    sizes = (2, 5) if args.quick else (2, 5, 10)
    res = bench(sizes, 20 if args.quick else 100, 2 if args.quick else 3)
    print("ring8 GAN training, SGD, torch 1 thread: ms per seed-step (min over blocks)")
    for S, r in res.items():
        print(f"  S = {S:2d} seeds: sequential {r['sequential_ms_per_seed_step']:.3f}  "
              f"vmap-batched {r['batched_ms_per_seed_step']:.3f}  batched / sequential throughput "
              f"{r['speedup']:.2f}x  (trajectories agree to {r['check_relative_difference']:.1e})")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({str(k): v for k, v in res.items()}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
