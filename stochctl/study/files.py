"""Files of a study folder: the results CSV (one row per run), the curves and the generated-samples files.

Version 2 folders keep each run's curve as JSON in the CSV's last column; version 3 folders keep
the CSV free of curves (:func:`columns`) and write them to ``curves/<task>/<method>.csv.gz``
(:func:`append_curve`, :func:`read_curves`), one gzip member per run, so no file grows with the
number of rates and seeds of the other methods.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import zlib
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from .protocol import Job
from .tasks import all_metric_names
from .tasks_v3 import SPLITS, split_metric_names

BASE_COLUMNS = ("protocol", "task", "method", "family", "lr", "seed", "steps", "diverged",
                "diverged_step", "reached", "steps_to_threshold", "mult_g", "mult_d", "policy_cases", "seconds",
                "grad_evals", "curv_g", "curv_d", "field_g", "field_d", "samples")
INT_COLUMNS = ("seed", "steps", "diverged", "diverged_step", "reached", "steps_to_threshold", "grad_evals")
V3_COLUMNS = ("budget_unit", "budget", "horizon")
INT_COLUMNS = INT_COLUMNS + ("budget", "horizon")
TEXT_COLUMNS = ("task", "method", "family", "protocol", "curve", "policy_cases", "samples", "budget_unit")
CURVES = "curves"


def columns(version: int = 2) -> tuple[str, ...]:
    """CSV header. Version 2: run fields, ``final_<metric>`` for every task metric, the JSON curve.
    Version 3: run fields (``steps`` is the steps taken), the budget (unit, size) and the controlled
    methods' horizon, ``val_<metric>`` (validation) and ``final_<metric>`` (test) for every metric."""
    if version < 3:
        return BASE_COLUMNS + tuple(f"final_{m}" for m in all_metric_names()) + ("curve",)
    names = split_metric_names()
    return BASE_COLUMNS + V3_COLUMNS + tuple(f"val_{m}" for m in names) + tuple(f"final_{m}" for m in names)


# --------------------------------------------------------------------------------------
# Curves (version 3)
# --------------------------------------------------------------------------------------

def curve_path(out: Path, task: str, method: str) -> Path:
    """The curves file of a (task, method) group."""
    return Path(out) / CURVES / task / f"{method.replace('/', '_')}.csv.gz"


def append_curve(out: Path, task: str, method: str, lr: float, seed: int, curve: dict) -> None:
    """Append a run's curve as one gzip member of CSV lines ``lr,seed,split,step,grad_evals,<metrics>``.

    ``curve``: ``{"step": [...], "grad_evals": [...], split: {metric: [...]}}`` for each split.
    """
    path = curve_path(out, task, method)
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics = [m for m in curve[SPLITS[0]]]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    if not path.exists() or path.stat().st_size == 0:
        w.writerow(["lr", "seed", "split", "step", "grad_evals"] + metrics)
    for split in SPLITS:
        for i, (k, n) in enumerate(zip(curve["step"], curve["grad_evals"])):
            w.writerow([repr(float(lr)), int(seed), split, int(k), int(n)]
                       + [_format(curve[split][m][i]) for m in metrics])
    with open(path, "ab") as f:
        f.write(gzip.compress(buf.getvalue().encode(), mtime=0))
        f.flush()
        os.fsync(f.fileno())


def _members(data: bytes) -> tuple[bytes, int]:
    """The text of the complete gzip members of ``data`` and the length they span (a member cut short
    by an interruption ends the readable part)."""
    out, pos = [], 0
    while pos < len(data):
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = d.decompress(data[pos:])
        except zlib.error:
            break
        if not d.eof:
            break
        out.append(chunk)
        pos = len(data) - len(d.unused_data)
    return b"".join(out), pos


def read_curves(out: Path, task: str, method: str, *, repair: bool = False) -> dict:
    """``{(lr, seed): {"step": [...], "grad_evals": [...], split: {metric: [...]}}}`` of a curves file
    (a run recorded twice, after an interrupted write, keeps its last record); with ``repair``, an
    incomplete last member is cut from the file."""
    path = curve_path(out, task, method)
    if not path.exists():
        return {}
    data = path.read_bytes()
    text, end = _members(data)
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    lines = [ln for ln in csv.reader(io.StringIO(text.decode())) if ln]
    if not lines:
        return {}
    header = lines[0]
    metrics = header[5:]
    runs: dict = {}
    for ln in lines[1:]:
        if ln == header:
            continue
        key = (float(ln[0]), int(ln[1]))
        split, step, n = ln[2], int(ln[3]), int(ln[4])
        c = runs.setdefault(key, {"step": [], "grad_evals": [], **{s: {m: [] for m in metrics} for s in SPLITS}})
        if split == SPLITS[0] and step in c["step"]:  # recorded again: start over
            c = runs[key] = {"step": [], "grad_evals": [], **{s: {m: [] for m in metrics} for s in SPLITS}}
        if split == SPLITS[0]:
            c["step"].append(step)
            c["grad_evals"].append(n)
        for m, v in zip(metrics, ln[5:]):
            c[split][m].append(None if v == "" else float(v))
    return runs


# --------------------------------------------------------------------------------------
# Sample files
# --------------------------------------------------------------------------------------

def save_samples(path: Path, samples: np.ndarray, job: Job, validation: np.ndarray | None = None) -> None:
    """Write generated samples as ``.npz`` (JSON metadata with a SHA-256 of the array).

    Version 1: ``samples`` (float32). Version 2 (study v3), with ``validation``: the test samples
    as ``samples`` and the validation samples as ``validation``, compressed, each with its SHA-256;
    float32, which holds the scored values exactly (the generators compute in float32).
    """
    arr = np.ascontiguousarray(samples, dtype=np.float32)
    meta = dict(schema="stochctl.study.samples", version=1 if validation is None else 2, task=job.task,
                method=job.method, lr=job.lr, seed=job.seed, sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    arrays = dict(samples=arr)
    if validation is not None:
        arrays["validation"] = np.ascontiguousarray(validation, dtype=np.float32)
        meta["sha256_validation"] = hashlib.sha256(arrays["validation"].tobytes()).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    (np.savez if validation is None else np.savez_compressed)(tmp, meta=np.array(json.dumps(meta)), **arrays)
    os.replace(tmp, path)


def load_samples(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Read a samples file written by :func:`save_samples` (checksum verified): the (test) samples and
    the metadata; the validation samples of a version 2 file are in ``meta["validation"]``."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as f:
            arr, meta = f["samples"], json.loads(str(f["meta"]))
            val = f["validation"] if "validation" in f.files else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise FileFormatError(f"{path}: not a readable study samples file ({exc})") from None
    if meta.get("schema") != "stochctl.study.samples" or meta.get("version") not in (1, 2):
        raise FileFormatError(f"{path}: unknown samples schema {meta.get('schema')!r} v{meta.get('version')!r}")
    if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != meta.get("sha256"):
        raise FileFormatError(f"{path}: checksum mismatch (file corrupted or modified)")
    if meta["version"] == 2:
        if val is None or hashlib.sha256(np.ascontiguousarray(val).tobytes()).hexdigest() != meta.get(
                "sha256_validation"):
            raise FileFormatError(f"{path}: validation samples missing or checksum mismatch")
        meta["validation"] = val
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


def format_row(row: dict, version: int = 2) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_format(row.get(c)) for c in columns(version)])
    return buf.getvalue()


def _parse(name: str, text: str):
    if text == "":
        return None
    if name in TEXT_COLUMNS:
        return text
    if name in INT_COLUMNS:
        return int(text)
    return float(text)


def read_results(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Rows of a results CSV as dicts (empty fields as None).

    A last line cut short by an interruption is dropped (and, with ``repair``,
    removed from the file). A header of neither version (:func:`columns`) raises FileFormatError.
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
    if header not in (columns(2), columns(3)):
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
