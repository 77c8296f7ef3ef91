"""Run every benchmark of the package: ``python benchmarks/run.py [--quick]``.

Each ``benchmarks/bench_*.py`` module exposes ``main(argv)``; they run one
after the other in this process and print their own figures.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    here = Path(__file__).resolve().parent
    status = 0
    for path in sorted(here.glob("bench_*.py")):
        print(f"== {path.stem} ==", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        status |= int(module.main(argv) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
