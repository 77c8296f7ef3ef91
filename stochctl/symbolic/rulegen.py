"""Produce the numpy and numba forms of the control rules from :mod:`stochctl.symbolic.rules`.

* :func:`numpy_rules`: vectorised numpy functions, lambdified (through the one evaluator,
  :mod:`stochctl._evaluator`) from the rules' sympy expressions;
* :func:`kernel_source`: the source of :mod:`stochctl.symbolic._rule_kernels`, the numba
  functions every grid solver calls, printed from the same expressions (a Piecewise becomes a
  chain of conditional expressions, Min/Max become min/max). The file is committed and a test
  checks that it is what this function prints; regenerate it with
  ``python -m stochctl.symbolic.rulegen``.

Generated kernels use ``error_model="numpy"``: a branch that is not taken may divide by zero
(A / Bs where Bs = 0) inside a condition, and gives inf or nan there instead of raising.
"""

from __future__ import annotations

import functools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .. import _evaluator
from . import rules

__all__ = ["SYMBOLS", "numpy_rules", "kernel_source", "KERNEL_PATH", "write_kernels"]

SYMBOLS = SimpleNamespace(**{n: sp.Symbol(n, real=True) for n in
                             ("A", "B", "Bs", "Bt", "s", "u", "m", "c", "kappa", "ul", "uh", "ml", "mh")})
KERNEL_PATH = Path(__file__).with_name("_rule_kernels.py")


class _Printer(PythonCodePrinter):
    def _print_Float(self, expr):
        return repr(float(expr))


def _printer() -> _Printer:
    return _Printer({"fully_qualified_modules": True, "standard": "python3"})


# ------------------------------------------------------------------ numpy
def _vectorised(args, expr, dtype=float):
    f = _evaluator.numpy_function(args, expr)

    def run(*values):
        arrays = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in values))
        with np.errstate(all="ignore"):
            out = f(*arrays)
        return np.broadcast_to(np.asarray(out, dtype=dtype), arrays[0].shape)

    return run


@functools.cache
def numpy_rules() -> SimpleNamespace:
    """numpy forms of the rules: ``u_rule(A, Bs, ul, uh)``, ``m_rule(c, kappa, ml, mh)``,
    ``kkt`` (per candidate: ``(u, m, f, exists)`` functions of (A, Bs, kappa, ul, uh, ml, mh)),
    ``player_part(u, A, B, s)`` and ``joint_part(u, m, A, Bt, kappa, s)``."""
    S = SYMBOLS
    joint_args = (S.A, S.Bs, S.kappa, S.ul, S.uh, S.ml, S.mh)
    kkt = tuple((_vectorised(joint_args, u), _vectorised(joint_args, m), _vectorised(joint_args, f),
                 _vectorised(joint_args, ok, dtype=bool))
                for _, u, m, f, ok in rules.kkt_candidates(*joint_args))
    return SimpleNamespace(
        u_rule=_vectorised((S.A, S.Bs, S.ul, S.uh), rules.u_rule(S.A, S.Bs, S.ul, S.uh)),
        m_rule=_vectorised((S.c, S.kappa, S.ml, S.mh), rules.m_rule(S.c, S.kappa, S.ml, S.mh)),
        kkt=kkt,
        player_part=_vectorised((S.u, S.A, S.B, S.s), rules.player_part(S.u, S.A, S.B, S.s)),
        joint_part=_vectorised((S.u, S.m, S.A, S.Bt, S.kappa, S.s),
                               rules.joint_part(S.u, S.m, S.A, S.Bt, S.kappa, S.s)),
    )


# ------------------------------------------------------------------ numba source
def _function(name, args, doc, body, error_model=True):
    deco = '@jit(error_model="numpy")' if error_model else "@jit"
    return [deco, f"def {name}({', '.join(str(a) for a in args)}):", f'    """{doc}"""', *body, "", ""]


def _joint_body(printer) -> list[str]:
    S = SYMBOLS
    lines = ["    best_u = ul", "    best_m = mh", "    best_f = math.inf"]
    for label, u, m, f, ok in rules.kkt_candidates(S.A, S.Bs, S.kappa, S.ul, S.uh, S.ml, S.mh):
        lines.append(f"    # {label}")
        indent = "    "
        if ok is not sp.true:
            lines.append(f"    if {printer.doprint(ok)}:")
            indent = "        "
        value = repr(float(f)) if f.is_Number else printer.doprint(f)
        lines += [f"{indent}f = {value}",
                  f"{indent}if f < best_f:",
                  f"{indent}    best_u = {printer.doprint(u)}",
                  f"{indent}    best_m = {printer.doprint(m)}",
                  f"{indent}    best_f = f"]
    return lines + ["    return best_u, best_m, best_f"]


def kernel_source() -> str:
    """Source of :mod:`stochctl.symbolic._rule_kernels` (module docstring)."""
    S = SYMBOLS
    pr = _printer()
    out = [
        '"""numba forms of the control rules, generated from :mod:`stochctl.symbolic.rules`: do not edit.',
        "",
        "Regenerate with ``python -m stochctl.symbolic.rulegen`` (a test checks that this file is what",
        "it prints). The rules and their equations are stated in :mod:`stochctl.symbolic.rules`.",
        '"""',
        "",
        "import math",
        "",
        "from .._jit import jit",
        "",
        "",
    ]
    out += _function("player_part", (S.u, S.A, S.B, S.s), "h = -s u A + u^2 B / 2.",
                     [f"    return {pr.doprint(rules.player_part(S.u, S.A, S.B, S.s))}"], error_model=False)
    out += _function("joint_part", (S.u, S.m, S.A, S.Bt, S.kappa, S.s),
                     "f = -s u A + u^2 m Bt / 2 + s kappa / m.",
                     [f"    return {pr.doprint(rules.joint_part(S.u, S.m, S.A, S.Bt, S.kappa, S.s))}"])
    out += _function("is_convex", (S.Bs,), "Bs > 0: the clipped ratio applies.",
                     [f"    return {pr.doprint(rules.convex(S.Bs))}"], error_model=False)
    out += _function("u_rule", (S.A, S.Bs, S.ul, S.uh), "argmin over [ul, uh] of -u A + u^2 Bs / 2.",
                     [f"    return {pr.doprint(rules.u_rule(S.A, S.Bs, S.ul, S.uh))}"])
    out += _function("m_rule", (S.c, S.kappa, S.ml, S.mh), "argmin over [ml, mh] of m c / 2 + kappa / m.",
                     [f"    return {pr.doprint(rules.m_rule(S.c, S.kappa, S.ml, S.mh))}"])
    out += _function("joint_rule", (S.A, S.Bs, S.kappa, S.ul, S.uh, S.ml, S.mh),
                     "(u, m, f) minimising f = -u A + u^2 m Bs / 2 + kappa / m: first best KKT candidate.",
                     _joint_body(pr))
    out += _PLAYER_OPTIMUM
    return "\n".join(out).rstrip("\n") + "\n"


_PLAYER_OPTIMUM = '''@jit
def player_optimum(A, Bt, s, ul, uh, mfix, isbatch, kappa, ml, mh):
    """Optimal (u, m) of one player, its Hamiltonian part h and whether the clipped ratio applies.

    Fixed batch m: u = u_rule(A, s m Bt), h = player_part(u, A, m Bt, s), convex = s m Bt > 0.
    Batch control: (u, m) = joint_rule(A, s Bt, kappa, ...), h = joint_part(u, m, A, Bt, kappa, s).
    """
    if isbatch:
        Bs = s * Bt
        u, m, f = joint_rule(A, Bs, kappa, ul, uh, ml, mh)
        return u, m, joint_part(u, m, A, Bt, kappa, s), is_convex(Bs)
    B = mfix * Bt
    Bs = s * B
    u = u_rule(A, Bs, ul, uh)
    return u, mfix, player_part(u, A, B, s), is_convex(Bs)


@jit
def player_optimum_array(A, Bt, s, ul, uh, mfix, isbatch, kappa, ml, mh, U, M, H, C):
    """:func:`player_optimum` at every entry of the 1-D arrays A, Bt, into U, M, H, C."""
    for i in range(A.shape[0]):
        U[i], M[i], H[i], C[i] = player_optimum(A[i], Bt[i], s, ul, uh, mfix, isbatch, kappa, ml, mh)
'''.splitlines()


def write_kernels(path: Path = KERNEL_PATH) -> Path:
    """Write :func:`kernel_source` to ``path`` (the committed generated module by default)."""
    path.write_text(kernel_source())
    return path


if __name__ == "__main__":
    print(write_kernels())
