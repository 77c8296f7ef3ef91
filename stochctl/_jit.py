"""One place that sets how numba compiles the package's kernels.

Every kernel goes through :func:`jit` so that caching, threading and
floating-point strictness are decided once: ``cache=True`` (a second run loads
the machine code from disk), ``fastmath=False`` (results must match reference
computations to the last digit), ``nogil=True``.
"""

from __future__ import annotations

import os

import numba
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

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


@intrinsic
def stack_array(typingctx, size):
    """A float64 work array of literal length ``size`` on the stack of the calling kernel.

    Unlike ``np.empty`` it costs no heap allocation, and the compiler can keep its
    elements in registers when every index is known (loops over a literal length).
    It must not outlive the kernel that creates it (it has no memory owner).
    """
    if not isinstance(size, types.IntegerLiteral):
        return None
    n = size.literal_value
    array = types.Array(types.float64, 1, "C")

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        data = cgutils.alloca_once(builder, context.get_value_type(types.float64), size=n)
        out = context.make_array(array)(context, builder)
        context.populate_array(out, data=data, shape=[intp(n)], strides=[intp(8)], itemsize=intp(8), meminfo=None)
        return out._getvalue()

    return array(size), codegen


@intrinsic
def stack_matrix(typingctx, size):
    """A float64 ``size x size`` work array (C order) on the stack of the calling kernel, as :func:`stack_array`."""
    if not isinstance(size, types.IntegerLiteral):
        return None
    n = size.literal_value
    array = types.Array(types.float64, 2, "C")

    def codegen(context, builder, signature, args):
        intp = context.get_value_type(types.intp)
        data = cgutils.alloca_once(builder, context.get_value_type(types.float64), size=n * n)
        out = context.make_array(array)(context, builder)
        context.populate_array(out, data=data, shape=[intp(n), intp(n)], strides=[intp(8 * n), intp(8)],
                               itemsize=intp(8), meminfo=None)
        return out._getvalue()

    return array(size), codegen
