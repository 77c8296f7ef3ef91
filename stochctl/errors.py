"""Exception family of stochctl.

Every error the package raises on purpose derives from :class:`StochctlError`
and from the built-in exception a caller would expect (``ValueError`` for bad
input, ``RuntimeError`` for numerical failure), so ``except ValueError`` keeps
working. Messages name the offending value and what was expected.
"""

from __future__ import annotations


class StochctlError(Exception):
    """Base class of every error raised on purpose by stochctl."""


class InputError(StochctlError, ValueError):
    """An argument, parameter, option or configuration value is invalid."""


class FormulaError(InputError):
    """A user formula uses a token outside the whitelist or an undeclared name."""


class FileFormatError(StochctlError, ValueError):
    """A file is corrupted, truncated, tampered with, or of an unknown schema."""


class NumericalError(StochctlError, RuntimeError):
    """A computation produced NaN/Inf or failed to converge."""


class DivergenceError(NumericalError):
    """Training diverged: a loss, gradient or curvature measurement became NaN/Inf.

    Raised where a divergence is detected (a measurement, or the diagnostics that report one
    read on demand), so that callers tell a diverged run from any other failure by type.
    """


class MissingExtraError(StochctlError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def require_extra(module: str, extra: str):
    """Import an optional dependency or raise :class:`MissingExtraError`.

    Args:
        module: importable module name, e.g. ``"torch"``.
        extra: the pip extra that installs it, e.g. ``"torch"``.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingExtraError(
            f"{module!r} is not installed; install it with: pip install 'stochctl[{extra}]'"
        ) from exc
