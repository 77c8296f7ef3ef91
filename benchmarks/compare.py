"""One benchmark before and after a change, in one run: ``python benchmarks/compare.py REV [BENCH ...] [-- ARGS]``.

Checks out REV (a commit, default ``HEAD~1``) into a temporary git worktree and runs each named
benchmark (default: ``bench_solver bench_bellman``) there and in this tree, one after the other and
alternating, with the same arguments (default ``--quick``), each in a fresh process whose imports
resolve to its own tree. Both outputs are printed, the earlier revision first, so that the ratios
each benchmark measures against its in-run reference can be read side by side under the same load.
A benchmark missing at REV is run in this tree only, and said so.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ("bench_solver", "bench_bellman")


def run_bench(tree: Path, name: str, args: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    script = tree / "benchmarks" / f"{name}.py"
    proc = subprocess.run([sys.executable, str(script), *args], cwd=tree, env=env, capture_output=True, text=True)
    return proc.stdout + (f"[exit {proc.returncode}] {proc.stderr.strip()[-2000:]}\n" if proc.returncode else "")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ["--quick"]
    if "--" in argv:
        i = argv.index("--")
        argv, args = argv[:i], argv[i + 1:]
    rev = argv[0] if argv else "HEAD~1"
    names = argv[1:] or list(DEFAULT)
    commit = subprocess.run(["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True)
    if commit.returncode:
        print(f"compare: unknown revision {rev!r}", file=sys.stderr)
        return 2
    commit = commit.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="stochctl-bench-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), commit], cwd=ROOT, check=True)
        try:
            for name in names:
                print(f"== {name} {' '.join(args)} ==", flush=True)
                if (old / "benchmarks" / f"{name}.py").exists():
                    print(f"-- before ({commit}) --\n{run_bench(old, name, args)}", flush=True)
                else:
                    print(f"-- before ({commit}): no {name} at that revision --", flush=True)
                print(f"-- after (this tree) --\n{run_bench(ROOT, name, args)}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
