"""Mutation check of the test suite: break the code on purpose and see the tests fail.

Each entry of ``tools/mutations.toml`` names a source file, a snippet that must occur in it
exactly once, its replacement (the mutant), and the test files that must catch it. For every
entry the package and the tests are copied to a temporary folder, the mutant is applied there,
and the named tests run on the copy (``python -m pytest -x``). A mutant is *caught* when the tests
fail (exit status 1) and *survives* when they pass; any other status (collection error, crash)
is reported as such, since a mutant that only breaks the import says nothing about the tests.

    python tools/mutate.py                       # every mutant, table on stdout
    python tools/mutate.py --only bellman-variance --report docs/MUTATIONS.md

Exit status 1 if a mutant survives or a snippet no longer matches (the list went stale).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIST = Path(__file__).with_name("mutations.toml")


@dataclass(frozen=True)
class Mutant:
    """One deliberate bug: replace ``original`` (once) by ``mutant`` in ``file``; ``tests`` must fail."""

    name: str
    file: str
    original: str
    mutant: str
    tests: tuple[str, ...]
    what: str


def load(path: Path = LIST) -> list[Mutant]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    return [Mutant(m["name"], m["file"], m["original"], m["mutant"], tuple(m["tests"]), m["what"])
            for m in data["mutant"]]


def _copy(dst: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(ROOT / "stochctl", dst / "stochctl", ignore=ignore)
    shutil.copytree(ROOT / "tests", dst / "tests", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dst / name)
    for folder in ("derivations", "docs", "results", "benchmarks"):
        if (ROOT / folder).exists():
            os.symlink(ROOT / folder, dst / folder)


def run(m: Mutant, timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, last line of pytest's output) of one mutant."""
    with tempfile.TemporaryDirectory(prefix="stochctl-mutant-") as tmp:
        tmp = Path(tmp)
        _copy(tmp)
        target = tmp / m.file
        text = target.read_text()
        if text.count(m.original) != 1:
            return "stale", 0.0, f"snippet found {text.count(m.original)} times in {m.file}"
        target.write_text(text.replace(m.original, m.mutant))
        env = dict(os.environ, PYTHONPATH=str(tmp), NUMBA_CACHE_DIR=str(tmp / ".numba"),
                   PYTHONDONTWRITEBYTECODE="1")
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *m.tests],
                                  cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "timeout", time.perf_counter() - t0, f"no answer within {timeout:.0f} s"
        seconds = time.perf_counter() - t0
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()] or proc.stderr.splitlines() or [""]
        last = lines[-1].strip()
        outcome = {0: "SURVIVED", 1: "caught"}.get(proc.returncode, f"error (status {proc.returncode})")
        return outcome, seconds, last


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", help="run only this mutant (repeatable)")
    p.add_argument("--report", help="also write the table as Markdown to this file")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant (default 900)")
    args = p.parse_args(argv)
    mutants = load()
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in mutants})
        if unknown:
            p.error(f"unknown mutant(s) {unknown}; known: {[m.name for m in mutants]}")
        mutants = [m for m in mutants if m.name in args.only]
    rows = []
    for m in mutants:
        outcome, seconds, last = run(m, args.timeout)
        rows.append((m, outcome, seconds, last))
        print(f"{m.name:<28} {outcome:<10} {seconds:6.1f} s  {last}", flush=True)
    table = ["| mutant | file | what it breaks | tests | outcome |", "|---|---|---|---|---|"]
    table += [f"| {m.name} | `{m.file}` | {m.what} | {', '.join(f'`{t}`' for t in m.tests)} | {o} |"
              for m, o, _, _ in rows]
    if args.report:
        Path(args.report).write_text(
            "# Mutation check\n\nEvery row is a deliberate bug put into a copy of the package "
            "(`python tools/mutate.py`, list in `tools/mutations.toml`); *caught* means the named tests "
            "failed on it.\n\n" + "\n".join(table) + "\n")
    bad = [m.name for m, o, _, _ in rows if o in ("SURVIVED", "stale")]
    if bad:
        print(f"survived or stale: {bad}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
