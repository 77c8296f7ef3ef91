"""A user's price or returns series from a delimited text file (``stochctl study --data FILE``).

The separator is a comma, a semicolon or a tab, whichever splits the file's first lines into the
same number of fields (a file of one column needs none). With a semicolon or tab separator a
decimal comma (``1,25``) is read as a decimal point. The first line is a header when one of its
cells is not a number. The series is the first column in which most data lines hold a number;
its empty cells (market holidays in a price file) are skipped and counted, while NaN, Inf or
text in it are errors that give the file's line number. ``kind="auto"``: all values positive
means prices (turned into log-returns ``log(P_t / P_{t-1})`` of consecutive values), anything else
returns; ``"prices"`` / ``"returns"`` say it.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..errors import InputError

DATA_KINDS = ("auto", "prices", "returns")
DATA_MIN_ROWS = 500
SEPARATORS = (",", ";", "\t")
_SEPARATOR_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_SNIFF_LINES = 20


def _number(text: str, separator: str) -> float | None:
    """``text`` as a float (a decimal comma accepted unless the separator is a comma), or None."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if separator != "," and text.count(",") == 1 and "." not in text:
        try:
            return float(text.replace(",", "."))
        except ValueError:
            return None
    return None


def detect_separator(lines: list[str]) -> str:
    """The separator that splits the first lines into one same number (> 1) of fields; a comma otherwise."""
    sample = lines[:_SNIFF_LINES]
    best, best_fields = ",", 1
    for sep in SEPARATORS:
        counts = {len(next(csv.reader([line], delimiter=sep))) for line in sample}
        if len(counts) == 1 and (fields := counts.pop()) > best_fields:
            best, best_fields = sep, fields
    return best


def _numeric_column(data: list[tuple[int, list[str]]], sep: str) -> int | None:
    """The first column in which more than half of the data lines hold a number."""
    width = max((len(r) for _, r in data), default=0)
    for col in range(width):
        numbers = sum(1 for _, r in data if col < len(r) and _number(r[col], sep) is not None)
        if numbers * 2 > len(data):
            return col
    return None


def load_data_file(path, kind: str = "auto") -> tuple[np.ndarray, str]:
    """The returns series of a delimited file's first numeric column, and one line saying what was assumed.

    Raises:
        InputError: unreadable file, no numeric column, fewer than :data:`DATA_MIN_ROWS` values,
            a NaN, infinite or non-numeric cell (its file line number in the message), or
            non-positive prices.
    """
    if kind not in DATA_KINDS:
        raise InputError(f"--data-kind must be one of {', '.join(DATA_KINDS)}; got {kind!r}")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--data {str(path)!r}: cannot read the file ({exc})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise InputError(f"--data {str(path)!r}: the file is empty; expected a CSV with a numeric column")
    sep = detect_separator([line for _, line in lines])
    try:
        rows = [(n, next(csv.reader([line], delimiter=sep))) for n, line in lines]
    except csv.Error as exc:
        raise InputError(f"--data {str(path)!r}: cannot read the file ({exc})") from None
    header = rows[0][1] if any(_number(c, sep) is None for c in rows[0][1]) else None
    data = rows[1:] if header is not None else rows
    col = _numeric_column(data, sep)
    if col is None:
        raise InputError(f"--data {str(path)!r}: no numeric column (expected a column of numbers such as "
                         f"prices or returns, separated by commas, semicolons or tabs)")
    name = header[col].strip() if header is not None and col < len(header) else f"column {col + 1}"
    values, skipped = [], []
    for n, r in data:
        cell = r[col].strip() if col < len(r) else ""
        if not cell:
            skipped.append(n)
            continue
        v = _number(cell, sep)
        if v is None or not math.isfinite(v):
            raise InputError(f"--data {str(path)!r}: line {n} of the file, column {name!r}, is {cell!r}; "
                             "expected a finite number (NaN and Inf are refused; empty cells are skipped)")
        values.append(v)
    values = np.asarray(values, dtype=np.float64)
    if len(values) < DATA_MIN_ROWS:
        raise InputError(f"--data {str(path)!r}: {len(values)} rows in {name!r}; at least {DATA_MIN_ROWS} needed")
    positive = bool(np.all(values > 0))
    if kind == "prices" and not positive:
        raise InputError(f"--data {str(path)!r}: --data-kind prices needs positive values; {name!r} has "
                         f"{int(np.sum(values <= 0))} that are not")
    read = f"{len(values):,} values"
    if sep != "," or skipped:
        read += f" ({_SEPARATOR_NAMES[sep]}-separated" if sep != "," else " ("
        if skipped:
            first = ", ".join(map(str, skipped[:3])) + (", ..." if len(skipped) > 3 else "")
            read += ("; " if sep != "," else "") + f"{len(skipped):,} empty cells skipped, file lines {first}"
        read += ")"
    if kind == "prices" or (kind == "auto" and positive):
        why = "all positive, so taken as prices" if kind == "auto" else "prices (--data-kind prices)"
        series = np.diff(np.log(values))
        note = (f"data: {path.name}, column {name!r}: {read}, {why}; trained on their "
                f"{len(series):,} log-returns" + (" (--data-kind returns to use them as they are)"
                                                  if kind == "auto" else ""))
    else:
        why = "not all positive, so taken as returns" if kind == "auto" else "returns (--data-kind returns)"
        series = values
        note = f"data: {path.name}, column {name!r}: {read}, {why}"
    return series, note
