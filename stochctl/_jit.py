"""One place that sets how numba compiles the package's kernels.

Every kernel goes through :func:`jit` so that caching, threading and
floating-point strictness are decided once: ``cache=True`` (a second run loads
the machine code from disk), ``fastmath=False`` (results must match reference
computations to the last digit), ``nogil=True``.
"""

from __future__ import annotations

import os

import numba

_DEFAULTS = dict(cache=True, fastmath=False, nogil=True)


def jit(fn=None, *, parallel: bool = False, **overrides):
    """Decorate ``fn`` with ``numba.njit`` using the package defaults."""
    options = dict(_DEFAULTS, parallel=parallel, **overrides)

    def wrap(f):
        return numba.njit(**options)(f)

    return wrap(fn) if fn is not None else wrap


def set_num_threads(n: int | None = None) -> int:
    """Set the number of threads parallel kernels use (default: all cores).

    The environment variable ``STOCHCTL_NUM_THREADS`` gives the default. On a
    shared machine a busy second core can make two threads slower than one.

    Returns:
        The number of threads now in use.
    """
    from .errors import InputError

    if n is None:
        n = int(os.environ.get("STOCHCTL_NUM_THREADS", numba.config.NUMBA_NUM_THREADS))
    if not isinstance(n, int) or n < 1 or n > numba.config.NUMBA_NUM_THREADS:
        raise InputError(
            f"num_threads must be an integer in [1, {numba.config.NUMBA_NUM_THREADS}]; got {n!r}"
        )
    numba.set_num_threads(n)
    return n
