"""The package's one ``.npz`` container: a JSON header with format, version and checksum, plus plain arrays.

Solutions (:mod:`stochctl.solvers.solution`) and policy tables (:mod:`stochctl.tables`) are
both stored this way. A file holds the entry ``header``, a JSON string with at least

    {"format": <name>, "format_version": <int>, "checksum": "sha256:<hex>", ...}

and any number of arrays (never object arrays: files are read with ``allow_pickle=False``).
The checksum is SHA-256 over the canonical JSON of the header without its ``checksum`` key
(sorted keys, no spaces, ASCII, no NaN) followed, for each array in name order, by a line
``name|dtype|shape|nbytes`` and the array's bytes (C order). :func:`read` checks, in this order:
the file is a readable ``.npz`` with a header, the header is a JSON object of the expected format,
its version is one this package reads, and the checksum; the caller then validates the content
(shapes, ranges, finiteness) and raises :class:`~stochctl.errors.FileFormatError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._io import atomic_path
from .errors import FileFormatError

__all__ = ["canonical_json", "checksum", "parse", "read", "write"]


def canonical_json(obj) -> str:
    """JSON with sorted keys, no spaces, ASCII only; NaN and infinities refused (ValueError)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def checksum(header: Mapping, arrays: Mapping[str, np.ndarray]) -> str:
    """``"sha256:<hex>"`` of the header (without ``checksum``) and the arrays (module docstring)."""
    h = hashlib.sha256()
    h.update(canonical_json({k: v for k, v in header.items() if k != "checksum"}).encode("utf-8"))
    for key in sorted(arrays):
        arr = np.ascontiguousarray(arrays[key])
        h.update(f"\n{key}|{arr.dtype.str}|{list(arr.shape)}|{arr.nbytes}\n".encode("ascii"))
        h.update(arr.tobytes())
    return "sha256:" + h.hexdigest()


def write(path, header: Mapping, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> str:
    """Write ``header`` (with its checksum added) and ``arrays`` to ``path`` atomically; return the checksum."""
    if "header" in arrays:
        raise ValueError("an array may not be called 'header'")
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    full = dict(header)
    full["checksum"] = checksum(full, arrays)
    text = canonical_json(full)
    save = np.savez_compressed if compress else np.savez
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        save(fh, header=np.array(text), **arrays)
    return full["checksum"]


def read(path, *, kind: str, format_name: str, versions: range) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and verify a container written by :func:`write`: (header, arrays).

    Args:
        path: the file (its existence is the caller's check, with the caller's message).
        kind: what the file should be, for messages (``"policy table"``, ``"solution"``).
        format_name: the expected ``format``.
        versions: the ``format_version`` values this package reads.

    Raises:
        FileFormatError: unreadable container, no header, a header that is not a JSON object of
            this format, an unsupported version, or a checksum mismatch (the message names ``path``).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "header" not in data.files:
                raise FileFormatError(f"{path}: not a {kind} file (no 'header' entry)")
            header_arr = data["header"]
            arrays = {k: np.asarray(data[k]) for k in data.files if k != "header"}
    except FileFormatError:
        raise
    except Exception as exc:  # any failure to parse the container (zip, zlib, npy headers) is a bad file
        raise FileFormatError(f"{path}: not a readable .npz {kind} file ({type(exc).__name__}: {exc})") from None
    return parse(str(path), header_arr, arrays, kind=kind, format_name=format_name, versions=versions)


def parse(where: str, header_arr, arrays: dict, *, kind: str, format_name: str,
          versions: range) -> tuple[dict, dict[str, np.ndarray]]:
    """The checks of :func:`read` on entries already in memory (``where`` names them in messages)."""
    def bad(msg):
        return FileFormatError(f"{where}: {msg}")

    header_arr = np.asarray(header_arr)
    if header_arr.dtype.kind != "U" or header_arr.shape != ():
        raise bad("header entry is not a JSON string")
    try:
        header = json.loads(str(header_arr))
    except ValueError as exc:
        raise bad(f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != format_name:
        found = header.get("format") if isinstance(header, dict) else None
        raise bad(f"not a {kind} (format {found!r}, expected {format_name!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad(f"invalid format_version {version!r}")
    if version not in versions:
        if version > max(versions):
            raise bad(f"{kind} format version {version} is newer than this stochctl reads "
                      f"(up to {max(versions)}); upgrade stochctl")
        raise bad(f"{kind} format version {version} is not supported (this stochctl reads {list(versions)})")
    stored = header.get("checksum")
    try:
        computed = checksum(header, arrays)
    except (TypeError, ValueError) as exc:
        raise bad(f"header cannot be canonicalised ({exc})") from None
    if stored != computed:
        raise bad(f"checksum mismatch (stored {stored!r}, computed {computed!r}): "
                  "the file was modified or corrupted")
    return header, arrays
