"""The ``stochctl`` console command.

Each subcommand lives in its own module ``stochctl/cli/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (called with
the parsed arguments, returns an exit code). Errors raised on purpose
(:class:`~stochctl.errors.StochctlError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from ..errors import StochctlError

COMMANDS = ("demo", "derive", "analyze", "solve", "query", "export", "table", "sweep", "explode",
            "figures", "study")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="stochctl",
        description="Learning rate (and batch size) of SGD/GAN training as a stochastic control.",
    )
    parser.add_argument("--version", action="version", version=f"stochctl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except StochctlError as exc:
        print(f"stochctl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stochctl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (e.g. `| head`)
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
