"""Run a study: one training run per job, in a process pool, one CSV row per finished run.

A run (:func:`run_job`) is a deterministic function of the protocol and the job
(task, method, base rate, seed): the seed fixes the network initialisation,
the training data stream and the evaluation draws through
:func:`~stochctl.study.tasks.stream_seed`, and each worker uses one torch
thread, so reruns reproduce the CSV rows (except the ``seconds`` column).

Output folder layout: ``study.json`` (the protocol and its hash),
``results.csv`` (one row per finished run, appended and flushed as soon as the
run ends), ``samples/`` (final generated samples of the first seed's runs, for
the figures). A folder whose protocol hash differs from the study's is refused;
an interrupted study resumes by skipping the jobs already in the CSV.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np

from ..errors import FileFormatError, InputError, require_extra
from .methods import METHOD_FAMILY, TABLE_METHODS, build_optimizers
from .protocol import Job, StudyConfig
from .tasks import all_metric_names, get_task, stream_seed

RESULTS = "results.csv"
MANIFEST = "study.json"
SAMPLES = "samples"
SAMPLE_COUNT = 1000
BASE_COLUMNS = ("protocol", "task", "method", "family", "lr", "seed", "steps", "diverged",
                "diverged_step", "reached", "steps_to_threshold", "mult_g", "mult_d", "policy_cases", "seconds")


def columns() -> tuple[str, ...]:
    """CSV header: run fields, ``final_<metric>`` for every task metric, the JSON curve."""
    return BASE_COLUMNS + tuple(f"final_{m}" for m in all_metric_names()) + ("curve",)


def _finite_or_none(v):
    return float(v) if v is not None and math.isfinite(float(v)) else None


def run_job(config: StudyConfig, job: Job, samples_dir: str | os.PathLike | None = None) -> dict:
    """Train one GAN and return its CSV row (a dict of Python values).

    Each step: draw a data batch x and latents z; discriminator update on
    ``BCE(D(x), 1) + BCE(D(G(z)), 0)``; generator update on ``BCE(D(G(z)), 1)``
    with the updated discriminator. After every step the run stops as diverged
    if a loss or either network's parameter norm is not finite or the norm
    exceeds ``config.norm_bound``. Metrics are evaluated at
    ``config.eval_steps(task)`` on fixed evaluation draws.
    """
    torch = require_extra("torch", "study")
    task = get_task(job.task)
    steps = config.task_steps(job.task)
    eval_at = set(config.eval_steps(job.task))
    thresholds = config.task_thresholds(job.task)
    start = time.perf_counter()

    with torch.random.fork_rng(devices=[]):  # leave the caller's global RNG untouched
        torch.manual_seed(stream_seed(job.task, "init", job.seed))
        G, D = task.networks()
    data_gen = torch.Generator().manual_seed(stream_seed(job.task, "data", job.seed))
    eval_gen = torch.Generator().manual_seed(stream_seed(job.task, "eval", job.seed))
    evaluate = task.evaluator(eval_gen)
    opt_g, opt_d = build_optimizers(job.method, G, D, job.lr, steps=steps, table=config.policy_table)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    batch = task.batch_size
    ones, zeros = torch.ones(batch, 1), torch.zeros(batch, 1)
    g_params, d_params = list(G.parameters()), list(D.parameters())
    bound = float(config.norm_bound)

    curve: dict[str, list] = {"step": [], **{m: [] for m in task.metric_names}}
    diverged_step = None
    first_met = None
    final: dict = {}
    for k in range(1, steps + 1):
        x = task.sample_real(batch, data_gen)
        z = task.sample_latent(batch, data_gen)
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
        with torch.no_grad():
            norms = torch.stack([torch.linalg.vector_norm(torch.stack([p.norm() for p in ps]))
                                 for ps in (g_params, d_params)])
            ok = bool(torch.isfinite(d_loss) & torch.isfinite(g_loss) & (norms <= bound).all())
        if not ok:
            diverged_step = k
            break
        if k in eval_at:
            metrics = evaluate(G)
            curve["step"].append(k)
            for m in task.metric_names:
                curve[m].append(_finite_or_none(metrics[m]))
            met = all(c.met(metrics) for c in thresholds)
            if met and first_met is None:
                first_met = k
            final = metrics

    diverged = diverged_step is not None
    if diverged:
        final = {}
    reached = (not diverged) and bool(final) and all(c.met(final) for c in thresholds)
    if samples_dir is not None and not diverged:
        save_samples(Path(samples_dir) / f"{job.run_id}.npz", task.generate(G, SAMPLE_COUNT, eval_gen), job)
    row = dict(
        policy_cases=None, protocol=config.protocol_hash(), task=job.task, method=job.method,
        family=METHOD_FAMILY[job.method], lr=float(job.lr), seed=int(job.seed), steps=steps,
        diverged=int(diverged), diverged_step=diverged_step, reached=int(reached),
        steps_to_threshold=first_met, mult_g=opt_g.mean_multiplier, mult_d=opt_d.mean_multiplier,
        seconds=time.perf_counter() - start,
    )
    for m in all_metric_names():
        row[f"final_{m}"] = _finite_or_none(final.get(m)) if m in final else None
    cases = [c for c in (opt_g.policy_counts, opt_d.policy_counts) if c is not None]
    if cases:
        row["policy_cases"] = json.dumps({k: sum(c.get(k, 0) for c in cases) for k in cases[0]},
                                         separators=(",", ":"))
    row["curve"] = json.dumps(curve, separators=(",", ":"), allow_nan=False)
    return row


# --------------------------------------------------------------------------------------
# Sample files
# --------------------------------------------------------------------------------------

def save_samples(path: Path, samples: np.ndarray, job: Job) -> None:
    """Write generated samples as ``.npz`` (JSON metadata with a SHA-256 of the array)."""
    import hashlib

    arr = np.ascontiguousarray(samples, dtype=np.float32)
    meta = dict(schema="stochctl.study.samples", version=1, task=job.task, method=job.method,
                lr=job.lr, seed=job.seed, sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, samples=arr, meta=np.array(json.dumps(meta)))
    os.replace(tmp, path)


def load_samples(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a samples file written by :func:`save_samples` (checksum verified)."""
    import hashlib
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            arr, meta = f["samples"], json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"{path}: not a readable study samples file ({exc})") from None
    if meta.get("schema") != "stochctl.study.samples" or meta.get("version") != 1:
        raise FileFormatError(f"{path}: unknown samples schema {meta.get('schema')!r} v{meta.get('version')!r}")
    if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != meta.get("sha256"):
        raise FileFormatError(f"{path}: checksum mismatch (file corrupted or modified)")
    return arr, meta


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------

def _format(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ""
    return str(v)


def format_row(row: dict) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(row.get(c)) for c in columns()])
    return buf.getvalue()


def _parse(name: str, text: str):
    if text == "":
        return None
    if name in ("task", "method", "family", "protocol", "curve", "policy_cases"):
        return text
    if name in ("seed", "steps", "diverged", "diverged_step", "reached", "steps_to_threshold"):
        return int(text)
    return float(text)


def read_results(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Rows of a results CSV as dicts (empty fields as None).

    A last line cut short by an interruption is dropped (and, with ``repair``,
    removed from the file). A different header raises FileFormatError.
    """
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        if repair:
            path.write_text(text)
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        return []
    header = tuple(lines[0])
    if header != columns():
        raise FileFormatError(f"{path}: unexpected CSV header (not a results file of this stochctl version)")
    rows = []
    for i, values in enumerate(lines[1:], start=2):
        if len(values) != len(header):
            raise FileFormatError(f"{path}: line {i} has {len(values)} fields; expected {len(header)}")
        try:
            rows.append({c: _parse(c, v) for c, v in zip(header, values)})
        except ValueError as exc:
            raise FileFormatError(f"{path}: line {i}: {exc}") from None
    return rows


def row_key(row: dict) -> tuple:
    return (row["task"], row["method"], repr(float(row["lr"])), int(row["seed"]))


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
    other = {r["protocol"] for r in rows} - {digest}
    if other:
        raise InputError(f"{out / RESULTS} holds rows of another study protocol ({', '.join(sorted(other))}); "
                         "choose another --out")
    data = config.to_json()
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, manifest)
    return out, rows


def _append(path: Path, row: dict) -> None:
    new = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="") as f:
        f.write((format_row(dict(zip(columns(), columns()))) if new else "") + format_row(row))
        f.flush()
        os.fsync(f.fileno())


_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _worker(config, job, samples_dir):
    return run_job(config, job, samples_dir)


def run_study(config: StudyConfig, out: str | os.PathLike, *, workers: int = 1,
              progress: bool = True) -> Path:
    """Run every job of ``config`` not yet in ``out/results.csv``.

    Args:
        config: the study.
        out: output folder (created; resumed when it holds this protocol's results).
        workers: processes (1 runs in this process with one torch thread).
        progress: show a progress bar on stderr.

    Returns:
        The path of the results CSV.
    """
    torch = require_extra("torch", "study")
    if "sp500" in config.tasks:
        require_extra("arch", "study")
    if not isinstance(workers, int) or workers < 1:
        raise InputError(f"workers must be a positive integer; got {workers!r}")
    if any(m in TABLE_METHODS for m in config.methods):
        from ..policy import load_table

        load_table(config.policy_table)  # fail before any run if the policy table is unusable
    out, rows = prepare_output(config, out)
    csv_path, samples_dir = out / RESULTS, out / SAMPLES
    done = {row_key(r) for r in rows}
    jobs = config.jobs()
    pending = [j for j in jobs if j.key not in done]
    first_seed = min(config.seeds)

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), disable=not progress,
               desc=f"study {config.name}", unit="run", dynamic_ncols=True)
    try:
        if workers == 1 or len(pending) <= 1:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                for job in pending:
                    row = _worker(config, job, samples_dir if job.seed == first_seed else None)
                    _append(csv_path, row)
                    bar.update()
            finally:
                torch.set_num_threads(threads)
        else:
            _run_pool(config, pending, workers, csv_path, samples_dir, first_seed, bar)
    finally:
        bar.close()
    return csv_path


def _run_pool(config, pending, workers, csv_path, samples_dir, first_seed, bar) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    # Spawned workers inherit the environment: one BLAS/OpenMP thread each.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        _pool_loop(ctx, config, pending, workers, csv_path, samples_dir, first_seed, bar)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _pool_loop(ctx, config, pending, workers, csv_path, samples_dir, first_seed, bar) -> None:
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
        futures = set()
        try:
            # Keep a short queue so an interruption loses little and the order stays seed-major.
            queue = list(reversed(pending))
            while queue or futures:
                while queue and len(futures) < 2 * workers:
                    job = queue.pop()
                    futures.add(pool.submit(_worker, config, job,
                                            samples_dir if job.seed == first_seed else None))
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    _append(csv_path, fut.result())
                    bar.update()
        except BaseException:
            for fut in futures:
                fut.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            raise
