"""Files of a study folder: the results CSV (one row per run) and the generated-samples files."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import FileFormatError
from .protocol import Job
from .tasks import all_metric_names

BASE_COLUMNS = ("protocol", "task", "method", "family", "lr", "seed", "steps", "diverged",
                "diverged_step", "reached", "steps_to_threshold", "mult_g", "mult_d", "policy_cases", "seconds",
                "grad_evals", "curv_g", "curv_d", "field_g", "field_d", "samples")
INT_COLUMNS = ("seed", "steps", "diverged", "diverged_step", "reached", "steps_to_threshold", "grad_evals")
TEXT_COLUMNS = ("task", "method", "family", "protocol", "curve", "policy_cases", "samples")


def columns() -> tuple[str, ...]:
    """CSV header: run fields, ``final_<metric>`` for every task metric, the JSON curve."""
    return BASE_COLUMNS + tuple(f"final_{m}" for m in all_metric_names()) + ("curve",)


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
    if name in TEXT_COLUMNS:
        return text
    if name in INT_COLUMNS:
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
