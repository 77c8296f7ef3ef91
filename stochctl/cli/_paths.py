"""Output and input paths of the commands, checked before any work starts.

Rules (also in the README, section "Files the commands write"):

* An output *file* (``solve --out``, ``export --out``/``--csv``,
  ``table build-local --out``) must be in an existing, writable folder; it
  must carry the suffix of the format written; it may not be one of the
  command's inputs. An existing file is replaced, atomically, and the command
  says so.
* An output *folder* (``figures``, ``demo``, ``sweep``, ``study``,
  ``derive --all``) is created, with missing parents, when the nearest
  existing ancestor is a writable folder; files inside it are replaced.
* An input file must be a readable file (not a folder).

Every refusal is an :class:`~stochctl.errors.InputError` naming the option and
the path.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from ..errors import InputError

__all__ = ["check_output_file", "check_output_dir", "check_input_file", "check_npz_input", "same_file",
           "replaced_note", "ReplacedFiles"]


def _not_empty(text: str, what: str) -> None:
    if not text.strip():
        raise InputError(f"{what}: expected a path; got an empty name {text!r}")


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried for real: permissions, read-only mounts)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".stochctl-probe-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(tmp)
    return True


def _nearest_existing(path: Path) -> Path:
    for parent in (path, *path.parents):
        if os.path.lexists(parent):
            return parent
    return Path(".")


def same_file(a, b) -> bool:
    """Whether two paths name the same file (existing or not)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def check_output_file(path, option: str, *, suffix: str, what: str, inputs=()) -> Path:
    """Refuse an output file path that cannot or must not be written.

    Args:
        path: the path given.
        option: the option that gave it, for the message (e.g. ``"--out"``).
        suffix: the suffix of the format written (``".npz"``, ``".csv"``).
        what: what is written, for the message (e.g. ``"a solution"``).
        inputs: the command's input files; the output may be none of them.

    Returns:
        The path.
    """
    text = os.fspath(path)
    _not_empty(text, option)
    path = Path(path)
    if not path.name or text.endswith(("/", os.sep)):
        raise InputError(f"{option} {text!r}: expected a file name; got a folder")
    if path.suffix.lower() != suffix:
        raise InputError(f"{option} {text!r}: {what} is written as {suffix}; "
                         f"give a file name ending in {suffix}")
    if path.is_dir():
        raise InputError(f"{option} {text!r} is a folder; expected a file name")
    for source in inputs:
        if source is not None and same_file(path, source):
            raise InputError(f"{option} {text!r} is also an input of this command; choose another file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        base = _nearest_existing(parent)
        if base.exists() and not base.is_dir():
            raise InputError(f"{option} {text!r}: {str(base)!r} is a file, not a folder")
        raise InputError(f"{option} {text!r}: the folder {str(parent)!r} does not exist; create it first")
    if not parent.is_dir():
        raise InputError(f"{option} {text!r}: {str(parent)!r} is a file, not a folder")
    if not _writable(parent):
        raise InputError(f"{option} {text!r}: the folder {str(parent)!r} is not writable")
    return path


def check_output_dir(path, option: str) -> Path:
    """Refuse an output folder that is a file or cannot be created or written.

    The folder itself is not created here (a refused command leaves nothing
    behind); the writer creates it.
    """
    text = os.fspath(path)
    _not_empty(text, option)
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise InputError(f"{option} {text!r} is a file; expected a folder")
        if not _writable(path):
            raise InputError(f"{option} {text!r}: the folder is not writable")
        return path
    base = _nearest_existing(path)
    if not base.is_dir():
        kind = "a file" if base.exists() else "a broken link"
        raise InputError(f"{option} {text!r}: {str(base)!r} is {kind}, not a folder")
    if not _writable(base):
        raise InputError(f"{option} {text!r}: cannot create it, the folder {str(base)!r} is not writable")
    return path


def check_input_file(path, what: str) -> Path:
    """Refuse an input that does not exist, is a folder or cannot be read."""
    _not_empty(os.fspath(path), what)
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; expected a file")
    if not path.exists():
        raise InputError(f"{what} {str(path)!r} does not exist")
    if not os.access(path, os.R_OK):
        raise InputError(f"{what} {str(path)!r} cannot be read")
    return path


def replaced_note(existed: bool) -> str:
    """``" (replaced the existing file)"`` when the output existed before."""
    return " (replaced the existing file)" if existed else ""


def check_npz_input(path, what: str) -> Path:
    """Refuse an input that is not an ``.npz`` archive, saying what it is instead.

    An ``.npz`` file is a zip archive; anything else (a folder, a text file, a
    bare ``.npy`` array) is named as such rather than reported by numpy.
    """
    path = check_input_file(path, what)
    with open(path, "rb") as fh:
        head = fh.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return path
    if not head:
        kind = "an empty file"
    elif head.startswith(b"\x93NUMPY"):
        kind = "a single .npy array, not an .npz archive"
    else:
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            kind = "binary data, not an .npz archive"
        else:
            first = text.strip().splitlines()[0][:40] if text.strip() else ""
            kind = f"a text file (it starts with {first!r}), not an .npz archive"
    raise InputError(f"{what} {str(path)!r} is {kind}")


class ReplacedFiles:
    """Counts the files of an output folder that a command rewrote.

    Create it before the command writes (it lists the files already there);
    :meth:`note` afterwards says how many of them were rewritten, or nothing.
    """

    def __init__(self, folder):
        folder = Path(folder)
        self.start = time.time() - 1.0  # file systems with coarse timestamps
        self.before = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []

    def count(self) -> int:
        return sum(1 for p in self.before if p.is_file() and p.stat().st_mtime >= self.start)

    def note(self) -> str:
        n = self.count()
        return f" (replaced {n} existing file{'s' if n != 1 else ''})" if n else ""
