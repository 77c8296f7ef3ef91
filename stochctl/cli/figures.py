"""``stochctl figures``: regenerate every figure of the package (PNG and captions) in one command."""

from __future__ import annotations

import sys
import time

from ._paths import ReplacedFiles, check_output_dir


def register(subparsers) -> None:
    from ..figures import FIGURES

    names = [s.name for s in FIGURES]
    parser = subparsers.add_parser(
        "figures",
        help="regenerate every figure (PNG, captions in README.md)",
        description="Build every figure of the package into a folder, with a progress bar, and write "
                    "their captions to README.md there. Figures: " + ", ".join(names) + ".",
    )
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: figures, or figures-quick with --quick, so that quick "
                             "versions never replace the full ones)")
    parser.add_argument("--quick", action="store_true",
                        help="coarse grids and few Monte Carlo paths (for tests; well under two minutes)")
    parser.add_argument("--only", action="append", choices=names, metavar="NAME",
                        help=f"build only this figure (repeatable); one of: {', '.join(names)}")
    parser.add_argument("--no-progress", action="store_true", help="do not show the progress bar")
    parser.set_defaults(func=run)


def run(args) -> int:
    from ..figures import generate

    out = check_output_dir(args.out if args.out is not None else "figures-quick" if args.quick else "figures", "--out")
    replaced = ReplacedFiles(out)
    timings = []
    start = time.perf_counter()
    paths = generate(out, quick=args.quick, names=args.only, progress=not args.no_progress,
                     callback=lambda spec, sec: timings.append((spec.name, sec)))
    for (name, sec), path in zip(timings, paths):
        print(f"{path}  ({sec:.1f} s)")
    print(f"{len(paths)} figures in {time.perf_counter() - start:.1f} s; captions in {out / 'README.md'}"
          f"{replaced.note()}", file=sys.stdout)
    return 0
