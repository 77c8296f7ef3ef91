"""Atomic file writes shared by every writer of the package.

A file is written to a temporary name in its own folder and renamed over the
target only when complete (``os.replace`` is atomic on one file system), so a
reader never sees a half-written file and a failure (an exception, Ctrl-C)
leaves the old file, if any, untouched and no temporary file behind.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "write_text_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The temporary file keeps the suffix of ``path`` (writers that append a
    suffix to a bare name, such as ``numpy.savez``, leave it alone) and gets the
    usual mode of a new file. On any exception it is removed and ``path`` is
    left as it was.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text_atomic(path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)
    return Path(path)
