"""Expectations over independent standard normal noises.

``expectation(expr, noises, order)`` returns E[expr] as a sympy expression:

* a term polynomial in the noises is integrated exactly with the moments
  E[xi^k] = (k-1)!! for even k, 0 for odd k;
* a term that is a product of factors each depending on disjoint sets of
  noises is the product of their expectations (independence);
* any other factor is integrated by tensor Gauss-Hermite quadrature
  (probabilists' form), E[f(xi)] ~= sum_i w_i f(x_i) / sqrt(2 pi), with
  ``order`` nodes per noise; the error falls like the (2*order)-th derivative
  of f (exact for polynomials of degree < 2*order).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import sympy as sp

from ..errors import InputError


@functools.lru_cache(maxsize=64)
def hermite_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with sum_i w_i f(x_i) ~= E[f(xi)], xi ~ N(0, 1)."""
    if not isinstance(order, int) or order < 1 or order > 200:
        raise InputError(f"quadrature order must be an integer in [1, 200]; got {order!r}")
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    return nodes, weights / np.sqrt(2.0 * np.pi)


def _normal_moment(k: int) -> sp.Integer:
    if k % 2:
        return sp.Integer(0)
    return sp.factorial2(k - 1) if k > 0 else sp.Integer(1)


def _expect_factor(factor: sp.Expr, noises: tuple[sp.Symbol, ...], order: int) -> sp.Expr:
    present = [z for z in noises if factor.has(z)]
    if not present:
        return factor
    if factor.is_polynomial(*present):
        poly = sp.Poly(factor, *present)
        total = sp.Integer(0)
        for powers, coeff in poly.terms():
            m = sp.Integer(1)
            for k in powers:
                m *= _normal_moment(k)
            total += coeff * m
        return total
    nodes, weights = hermite_rule(order)
    total = factor
    for z in present:
        total = sp.Add(*[sp.Float(w, 17) * total.subs(z, sp.Float(x, 17)) for x, w in zip(nodes, weights)])
    return total


def expectation(expr: sp.Expr, noises: Sequence[sp.Symbol], order: int = 32) -> sp.Expr:
    """E[expr] over independent standard normal ``noises`` (see module docstring)."""
    noises = tuple(noises)
    expr = sp.sympify(expr)
    if not any(expr.has(z) for z in noises):
        return expr
    expanded = sp.expand(expr, deep=False, mul=True, multinomial=True, power_exp=False, log=False)
    result = sp.Integer(0)
    for term in sp.Add.make_args(expanded):
        groups: dict[frozenset, list] = {}
        for f in sp.Mul.make_args(term):
            key = frozenset(z for z in noises if f.has(z))
            groups.setdefault(key, []).append(f)
        value = sp.Integer(1)
        for key, factors in groups.items():
            value *= _expect_factor(sp.Mul(*factors), noises, order) if key else sp.Mul(*factors)
        result += value
    return result
