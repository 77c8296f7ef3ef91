"""The one numpy evaluator of sympy expressions, with the one cache of compiled functions.

    numpy_function(args, expr)(*values) = expr evaluated at args = values (vectorised numpy)

Every numerical evaluation of a model's formulas (g, grad g, D2 g, Sigma, G, r, the
derivation's Hamiltonian terms, the control rules' numpy form) goes through
:func:`numpy_function`: sympy's ``lambdify`` with common-subexpression elimination, cached by
(argument symbols, expression). Parameters are arguments, never substituted, so one cached
function serves every parameter value; :func:`state_function` binds the model's current values.
Matrices are evaluated entry by entry (shape ``(rows, cols, *broadcast shape)``).
"""

from __future__ import annotations

import functools

import numpy as np
import sympy as sp

CACHE_SIZE = 4096
"""Compiled functions kept (least recently used dropped first)."""

__all__ = ["numpy_function", "state_function", "evaluate", "cache_info", "clear_cache"]


def _key(expr):
    if isinstance(expr, sp.MatrixBase):
        return sp.ImmutableMatrix(expr)
    if isinstance(expr, (list, tuple)):
        return tuple(_key(e) for e in expr)
    return sp.sympify(expr)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compiled(args: tuple, expr):
    return sp.lambdify(list(args), expr, modules="numpy", cse=True)


def numpy_function(args, expr):
    """Vectorised numpy function of ``args`` (a sequence of symbols) computing ``expr`` (cached).

    ``expr`` may be an expression, a matrix or a list/tuple of expressions (a list is returned for
    those, as by sympy's lambdify).
    """
    return _compiled(tuple(args), _key(expr))


def _shape(state) -> tuple:
    return np.broadcast(*[np.asarray(s) for s in state]).shape if state else ()


def state_function(model, expr):
    """Function of the state arrays evaluating ``expr`` at the model's current parameter values.

    A scalar expression gives an array of the broadcast state shape (a float for scalar input); a
    matrix gives shape ``(rows, cols, *shape)``.
    """
    args = tuple(model.state_symbols) + tuple(model.parameter_symbols)
    values = model.parameter_values
    if isinstance(expr, sp.MatrixBase):
        rows, cols = expr.shape
        entries = [numpy_function(args, e) for e in expr]

        def matrix(*state):
            shape = _shape(state)
            vals = [f(*state, *values) for f in entries]
            return np.array([np.broadcast_to(v, shape) for v in vals], dtype=float).reshape(rows, cols, *shape)

        return matrix
    f = numpy_function(args, expr)

    def bound(*state):
        out = np.asarray(f(*state, *values), dtype=float)
        shape = _shape(state)
        return np.broadcast_to(out, shape).copy() if shape else float(out)

    return bound


def evaluate(model, expr, *state):
    """``expr`` at the state arrays (model parameters at their current values); see :func:`state_function`."""
    return state_function(model, expr)(*state)


def cache_info():
    """Hits, misses and size of the cache (``functools`` cache statistics)."""
    return _compiled.cache_info()


def clear_cache() -> None:
    _compiled.cache_clear()
