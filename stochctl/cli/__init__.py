"""The ``stochctl`` console command.

Each subcommand lives in its own module ``stochctl/cli/<name>.py`` exposing
``register(subparsers)``, which adds its parser and sets ``func`` (called with
the parsed arguments, returns an exit code). Errors raised on purpose
(:class:`~stochctl.errors.StochctlError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import re
import sys

from ..errors import StochctlError

COMMANDS = ("demo", "derive", "analyze", "solve", "query", "export", "table", "sweep", "explode",
            "figures", "study")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit code 2), like every other error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = _Parser(
        prog="stochctl",
        description="Learning rate (and batch size) of SGD/GAN training as a stochastic control.",
    )
    parser.add_argument("--version", action="version", version=f"stochctl {__version__}")
    from . import analyze, demo, derive, explode, export, figures, query, solve, study, sweep, table

    modules = {m.__name__.rsplit(".", 1)[1]: m for m in (demo, derive, analyze, solve, query, export, table, sweep,
                                                        explode, figures, study)}
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        modules[name].register(sub)
    _plain_help(parser)
    return parser


_ROLE = re.compile(r":[a-z]+:`~?(?:[\w.]+\.)?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str | None) -> str | None:
    """``text`` without reST markup: ``code`` -> code, :func:`~a.b.f` -> f."""
    if not text:
        return text
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


def _plain_help(parser: argparse.ArgumentParser) -> None:
    """Strip reST markup from the descriptions, epilogs and option help of ``parser`` and its subcommands
    (module docstrings double as descriptions)."""
    parser.description = plain(parser.description)
    parser.epilog = plain(parser.epilog)
    for action in parser._actions:
        action.help = plain(action.help)
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                choice.help = plain(choice.help)
            for sub in set(action.choices.values()):
                _plain_help(sub)


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
