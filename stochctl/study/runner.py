"""Run a study: one training run per job, in a process pool, one CSV row per finished run.

A run (:func:`run_job`) is a deterministic function of the protocol and the job
(task, method, base rate, seed): the seed fixes the network initialisation,
the training data stream and the evaluation draws through
:func:`~stochctl.study.tasks.stream_seed`, and each worker uses one torch
thread, so reruns reproduce the CSV rows (except the ``seconds`` column).

Output folder layout: ``study.json`` (the protocol and its hash),
``results.csv`` (one row per finished run, appended and flushed as soon as the
run ends), ``samples/`` (version 2: final generated samples of the returns and 1-D runs and of
the first seed's mixture runs; version 3: the samples each final metric was computed from, test
and validation, of the same runs), ``curves/`` (version 3: the curves, :mod:`stochctl.study.files`;
version 2 keeps them in the CSV). A folder whose protocol hash differs from the study's is refused;
an interrupted study resumes by skipping the jobs already in the CSV.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import time
from pathlib import Path

from ..errors import DivergenceError, FileFormatError, InputError, require_extra
from .files import BASE_COLUMNS, INT_COLUMNS, TEXT_COLUMNS, columns, format_row, load_samples  # noqa: F401
from .files import CURVES, append_curve, curve_path, read_curves, read_results, row_key, save_samples  # noqa: F401
from .methods import Method, build_optimizers, get_method, twin_methods
from .protocol import Job, StudyConfig, code_fingerprint
from .spec import horizon_steps, step_cost
from .summary import RESULTS, SUMMARY_JSON, summary_runs, write_summary_json  # noqa: F401
from .tasks import all_metric_names, stream_seed
from .tasks_v3 import SPLITS, split_metric_names

MANIFEST = "study.json"
SAMPLES = "samples"
SAMPLE_VALUES = 10_000
"""Generated values saved per run of the returns and 1-D tasks (returns: 625 windows of 16)."""
MIXTURE_SAMPLES = 1000
"""Generated points saved for the mixture tasks (first seed only, for the sample figures)."""
def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(float(v)) else None


def sample_path(job: Job) -> str:
    """Path of a run's samples file, relative to the output folder."""
    return f"{SAMPLES}/{job.run_id}.npz"


def _sample_count(task, seed: int, first_seed: int) -> int:
    """How many generated samples a run keeps (0: none)."""
    if task.data_dim == 2:
        return MIXTURE_SAMPLES if seed == first_seed else 0
    return -(-SAMPLE_VALUES // task.data_dim)


def _stepped(opt, loss, closure, other_closure) -> bool:
    """One player's step; False when it raised :class:`~stochctl.errors.DivergenceError` (a diverged run)."""
    try:
        opt.step(loss=loss.detach(), closure=closure, other_closure=other_closure)
    except DivergenceError:
        return False
    return True


def _on_evaluated(record: Method, G, opt_g, task, seed: int, fn):
    """``fn(generator)`` on the generator the method scores and samples (:meth:`Method.evaluated`:
    e.g. an iterate average, an optimiser's evaluation mode, a fitted model; default G itself)."""
    with record.evaluated(G, opt_g, task, seed) as gen:
        return fn(gen)


def run_job(config: StudyConfig, job: Job, samples: int = 0, method: Method | None = None):
    """Train one GAN; return its CSV row (a dict of Python values) and its generated samples.

    Each step draws a data batch x and latents z, then updates the
    discriminator on ``L_D = BCE(D(x), 1) + BCE(D(G(z)), 0)`` and the generator
    on ``L_G = BCE(D(G(z)), 1)`` with the updated discriminator, each on the
    same batch; a measured-curvature method's schedulers get both losses as
    closures between ``backward()`` and the optimiser step. After every step
    the run stops as diverged if a loss or either network's parameter norm is
    not finite or the norm exceeds ``config.norm_bound``.

    Budget (:meth:`StudyConfig.budget`): in steps, the run takes that many steps and evaluates the
    metrics at ``config.eval_steps(task)``; in gradient evaluations (v3), a step starts only while
    ``spent + c <= N`` (``spent`` counted as it happens, c the most a step may take, :func:`step_cost`),
    so no run spends more than N and none leaves c or more unspent, and the metrics are evaluated
    after the first step whose count reaches each of ``config.eval_marks(task)`` and after the
    last step. Version 2 evaluates one fixed draw; version 3 evaluates the validation and the test
    split (:mod:`stochctl.study.tasks_v3`) and keeps the samples the final metrics came from. Metrics are evaluated on the generator the method's
    evaluation hook gives (:meth:`Method.evaluated`); a method that does not train (``trains``
    False) takes no step and is evaluated once (curve step 0).

    Gradient evaluations (``grad_evals``): the method's ``grad_evals`` per player
    and step for the step itself, plus every loss-closure call of the schedulers.

    Args:
        config: the study.
        job: the run.
        samples: generated samples to return (0: none; none either when the run diverged); in v3
            any positive number keeps the scored samples.
        method: the record of ``job.method`` (default: the registry's).

    Returns:
        ``(row, samples)``: v2 an array or None; v3 ``(test, validation)`` arrays or None. The row's
        ``curve`` is JSON text (v2) or a dict (v3, written to the curves file by the caller).
    """
    torch = require_extra("torch", "study")
    record = get_method(job.method) if method is None else method
    task = config.task(job.task)
    v3 = config.version >= 3
    unit, size = config.budget(job.task)
    horizon = size if unit == "steps" else horizon_steps(record, size)
    eval_at = set(config.eval_steps(job.task)) if unit == "steps" else set()
    marks = list(config.eval_marks(job.task)) if unit == "grad_evals" else []
    thresholds = config.task_thresholds(job.task)
    start = time.perf_counter()

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(stream_seed(job.task, "init", job.seed))
        G, D = task.networks()
    data_gen = torch.Generator().manual_seed(stream_seed(job.task, "data", job.seed))
    if v3:
        evaluators = {s: task.split_evaluator(s, job.seed) for s in SPLITS}
    else:
        eval_gen = torch.Generator().manual_seed(stream_seed(job.task, "eval", job.seed))
        evaluate = task.evaluator(eval_gen)
    opt_g, opt_d = build_optimizers(record, G, D, job.lr, steps=horizon, table=config.policy_table)
    coupled = record.coupled
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    batch = task.batch_size
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    g_params, d_params = list(G.parameters()), list(D.parameters())
    bound = float(config.norm_bound)
    cost = step_cost(record)

    if v3:
        curve: dict = {"step": [], "grad_evals": [], **{s: {m: [] for m in task.metric_names} for s in SPLITS}}
    else:
        curve = {"step": [], **{m: [] for m in task.metric_names}}
    scored: dict = {}
    diverged_step = None
    first_met = None
    final: dict = {}
    finals: dict = {}
    base_evals = 0
    k = 0

    def spent() -> int:
        return base_evals + opt_g.grad_evals + opt_d.grad_evals

    def evaluate_now() -> dict:
        """Evaluate the metrics of G now, add them to the curve, return the (test) metrics."""
        if not v3:
            metrics = _on_evaluated(record, G, opt_g, task, job.seed, evaluate)
            curve["step"].append(k)
            for m in task.metric_names:
                curve[m].append(_finite_or_none(metrics[m]))
            return metrics
        curve["step"].append(k)
        curve["grad_evals"].append(spent())
        with record.evaluated(G, opt_g, task, job.seed) as gen:
            for s in SPLITS:
                finals[s], scored[s] = evaluators[s](gen)
        for s in SPLITS:
            for m in task.metric_names:
                curve[s][m].append(_finite_or_none(finals[s][m]))
        return finals[SPLITS[-1]]

    while record.trains and ((k < size) if unit == "steps" else (spent() + cost <= size)):
        k += 1
        x = task.sample_real(batch, data_gen)
        z = task.sample_latent(batch, data_gen)

        def d_closure():
            return bce(D(x), ones) + bce(D(G(z)), zeros)

        def g_closure():
            return bce(D(G(z)), ones)

        fake = G(z)
        d_loss = bce(D(x), ones) + bce(D(fake.detach()), zeros)
        opt_d.zero_grad()
        d_loss.backward()
        base_evals += record.grad_evals
        if not torch.isfinite(d_loss):
            diverged_step = k
            break
        if not _stepped(opt_d, d_loss, d_closure, g_closure):
            diverged_step = k
            break
        if not coupled:  # the generator's gradient needs no gradient in D's parameters
            for p in d_params:
                p.requires_grad_(False)
        g_loss = bce(D(fake), ones)
        opt_g.zero_grad()
        g_loss.backward()
        base_evals += record.grad_evals
        ok = bool(torch.isfinite(g_loss)) and _stepped(opt_g, g_loss, g_closure, d_closure)
        for p in d_params:
            p.requires_grad_(True)
        with torch.no_grad():
            norms = torch.stack([torch.linalg.vector_norm(torch.stack([p.norm() for p in ps]))
                                 for ps in (g_params, d_params)])
            ok = ok and bool((norms <= bound).all())
        if not ok:
            diverged_step = k
            break
        if unit == "steps":
            due = k in eval_at
        else:
            n = spent()
            due = (marks and n >= marks[0]) or n + cost > size
            while marks and n >= marks[0]:
                marks.pop(0)
        if due:
            metrics = evaluate_now()
            met = all(c.met(metrics) for c in thresholds)
            if met and first_met is None:
                first_met = k
            final = metrics

    if not record.trains:
        final = evaluate_now()
        first_met = 0 if all(c.met(final) for c in thresholds) else None
    diverged = diverged_step is not None
    if diverged:
        final, finals = {}, {}
    reached = (not diverged) and bool(final) and all(c.met(final) for c in thresholds)
    generated = None
    if samples and not diverged:
        generated = ((scored[SPLITS[-1]], scored[SPLITS[0]]) if v3 else
                     _on_evaluated(record, G, opt_g, task, job.seed, lambda gen: task.generate(gen, samples, eval_gen)))
    (cg, fg), (cd, fd) = opt_g.mean_curvature, opt_d.mean_curvature
    row = dict(
        policy_cases=None, protocol=config.protocol_hash(), task=job.task, method=job.method,
        family=record.family, lr=float(job.lr), seed=int(job.seed), steps=k if v3 else size,
        diverged=int(diverged), diverged_step=diverged_step, reached=int(reached),
        steps_to_threshold=first_met, mult_g=opt_g.mean_multiplier, mult_d=opt_d.mean_multiplier,
        seconds=time.perf_counter() - start, grad_evals=spent(),
        curv_g=_finite_or_none(cg), curv_d=_finite_or_none(cd), field_g=_finite_or_none(fg),
        field_d=_finite_or_none(fd), samples=None if generated is None else sample_path(job),
    )
    if v3:
        row.update(budget_unit=unit, budget=size, horizon=horizon)
        for m in split_metric_names():
            row[f"val_{m}"] = _finite_or_none(finals[SPLITS[0]].get(m)) if finals else None
            row[f"final_{m}"] = _finite_or_none(final.get(m)) if m in final else None
    else:
        for m in all_metric_names():
            row[f"final_{m}"] = _finite_or_none(final.get(m)) if m in final else None
    cases = [c for c in (opt_g.policy_counts, opt_d.policy_counts) if c is not None]
    if cases:
        row["policy_cases"] = json.dumps({k: sum(c.get(k, 0) for c in cases) for k in cases[0]},
                                         separators=(",", ":"))
    row["curve"] = curve if v3 else json.dumps(curve, separators=(",", ":"), allow_nan=False)
    return row, generated


# --------------------------------------------------------------------------------------
# Study
# --------------------------------------------------------------------------------------

def prepare_output(config: StudyConfig, out: str | os.PathLike) -> tuple[Path, list[dict]]:
    """Create or check the output folder; return it and the rows already there.

    Raises:
        InputError: the folder holds results of a different protocol.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {str(out)!r} exists and is not a folder")
    if config.code is not None and config.code != code_fingerprint(str(config.policy_table)):
        raise InputError(f"this code (fingerprint {code_fingerprint(str(config.policy_table))}) cannot add runs to "
                         f"a study recorded by code {config.code}; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    digest = config.protocol_hash()
    if manifest.exists():
        try:
            old = json.loads(manifest.read_text())
            old_hash = old["hash"]
        except (ValueError, KeyError, TypeError):
            raise FileFormatError(f"{manifest}: not a study manifest") from None
        if old_hash != digest:
            raise InputError(f"output folder {str(out)!r} holds results of another study protocol "
                             f"(hash {old_hash}, this one {digest}); choose another --out")
    rows = read_results(out / RESULTS, repair=True)
    for path in sorted((out / CURVES).glob("*/*.csv.gz")) if config.version >= 3 else ():
        read_curves(out, path.parent.name, path.name[:-len(".csv.gz")], repair=True)
    other = {r["protocol"] for r in rows} - {digest}
    if other:
        raise InputError(f"{out / RESULTS} holds rows of another study protocol ({', '.join(sorted(other))}); "
                         "choose another --out")
    data = config.to_json()
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, manifest)
    return out, rows


def _append(path: Path, row: dict, version: int = 2) -> None:
    new = not path.exists() or path.stat().st_size == 0
    head = columns(version)
    with open(path, "a", newline="") as f:
        f.write((format_row(dict(zip(head, head)), version) if new else "") + format_row(row, version))
        f.flush()
        os.fsync(f.fileno())


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _worker(config, job, samples, method=None):
    """A run in a worker; ``method`` carries the record to processes that do not have it registered."""
    torch = require_extra("torch", "study")
    torch.set_num_threads(1)  # also on executors this module did not start (Dask workers)
    return run_job(config, job, samples, method)


def _record(out: Path, job: Job, result, twins=(), version: int = 2) -> int:
    """Save a finished run's samples and (v3) its curve, then append its row (the row names the
    samples file), then the same run under each twin method name; return the number of rows written."""
    row, generated = result
    if generated is not None:
        if version >= 3:
            save_samples(out / row["samples"], generated[0], job, validation=generated[1])
        else:
            save_samples(out / row["samples"], generated, job)
    if version >= 3:
        row = dict(row)
        curve = row.pop("curve")
        append_curve(out, job.task, job.method, job.lr, job.seed, curve)
    _append(out / RESULTS, row, version)
    for method in twins:
        _copy_run(out, row, Job(job.task, method, job.lr, job.seed), version)
    return 1 + len(twins)


def _copy_run(out: Path, row: dict, job: Job, version: int = 2) -> None:
    """Record ``row`` (a finished run) again as ``job``, a twin method's run (same training)."""
    new = dict(row, method=job.method, samples=sample_path(job) if row["samples"] else None)
    if row["samples"]:
        arr, meta = load_samples(out / row["samples"])
        save_samples(out / new["samples"], arr, job, validation=meta.get("validation"))
    if version >= 3:
        curve = read_curves(out, row["task"], row["method"])[(float(row["lr"]), int(row["seed"]))]
        append_curve(out, job.task, job.method, job.lr, job.seed, curve)
    _append(out / RESULTS, new, version)


def run_study(config: StudyConfig, out: str | os.PathLike, *, workers: int = 1, executor=None,
              progress: bool = True) -> Path:
    """Run every job of ``config`` not yet in ``out/results.csv``, then write ``out/summary.json``.

    Args:
        config: the study.
        out: output folder (created; resumed when it holds this protocol's results).
        workers: processes of the local pool ("spawn" context; 1 runs in this
            process with one torch thread). Ignored with ``executor``.
        executor: a :class:`concurrent.futures.Executor` or a dask.distributed
            ``Client`` (its ``get_executor()``) to run the jobs on; the results
            come back to this process, which writes every file.
        progress: show a progress bar on stderr.

    Returns:
        The path of the results CSV.
    """
    torch = require_extra("torch", "study")
    if "sp500" in config.tasks:
        require_extra("arch", "study")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer; got {workers!r}")
    if executor is not None and hasattr(executor, "get_executor") and not isinstance(executor, cf.Executor):
        executor = executor.get_executor()
    if executor is not None and not isinstance(executor, cf.Executor):
        raise InputError(f"executor must be a concurrent.futures.Executor or a dask Client; "
                         f"got {type(executor).__name__}")
    if any(get_method(m).reads_table for m in config.methods):
        from ..tables import load_table

        load_table(config.policy_table)  # fail before any run if the policy table is unusable
    out, rows = prepare_output(config, out)
    done = {row_key(r): r for r in rows}
    jobs = config.jobs()
    pending = [j for j in jobs if j.key not in done]
    first_seed = min(config.seeds)
    twin_of = twin_methods(config.methods)
    twins: dict = {}  # run key -> twin methods still to record when it finishes
    for j in [j for j in pending if j.method in twin_of]:
        src = Job(j.task, twin_of[j.method], j.lr, j.seed)
        if src.key in done:  # resumed: the twin ran already
            _copy_run(out, done[src.key], j, config.version)
        else:
            twins.setdefault(src.key, []).append(j.method)
    pending = [j for j in pending if j.method not in twin_of]
    counts = {j.key: _sample_count(config.task(j.task), j.seed, first_seed) for j in pending}

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending) - sum(map(len, twins.values())),
               disable=not progress, desc=f"study {config.name}", unit="run", dynamic_ncols=True)
    try:
        if executor is not None:
            _pool_loop(executor, config, pending, 2 * max(workers, 2), out, counts, twins, bar)
        elif workers == 1 or len(pending) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in pending:
                    bar.update(_record(out, job, _worker(config, job, counts[job.key]), twins.get(job.key, ()),
                                       config.version))
            finally:
                torch.set_num_threads(threads)
        else:
            _run_pool(config, pending, workers, out, counts, twins, bar)
    finally:
        bar.close()
    write_summary_json(out, config)
    return out / RESULTS


def _run_pool(config, pending, workers, out, counts, twins, bar) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a parent that ran numba's threaded kernels must not fork
    # Spawned workers inherit the environment: one BLAS/OpenMP thread each.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            _pool_loop(pool, config, pending, 2 * workers, out, counts, twins, bar)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool_loop(pool, config, pending, queue_size, out, counts, twins, bar) -> None:
    futures = {}
    try:
        # Keep a short queue so an interruption loses little and the order stays seed-major.
        queue = list(reversed(pending))
        while queue or futures:
            while queue and len(futures) < queue_size:
                job = queue.pop()
                futures[pool.submit(_worker, config, job, counts[job.key], get_method(job.method))] = job
            finished, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                job = futures.pop(fut)
                bar.update(_record(out, job, fut.result(), twins.get(job.key, ()), config.version))
    except BaseException:
        for fut in futures:
            fut.cancel()
        if isinstance(pool, cf.ProcessPoolExecutor):
            pool.shutdown(wait=False, cancel_futures=True)
        raise
