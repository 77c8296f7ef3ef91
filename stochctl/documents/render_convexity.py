"""The convexity part of the derivation documents: where g is not convex (concave) in a player's block."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ._text import _expectation_tex, _simplified, fmt, uses_quadrature


# ---------------------------------------------------------------- convexity and documents
def _grid(model, max_points: int = 4096):
    xs = model.state_symbols
    per_axis = max(5, int(round(max_points ** (1.0 / len(xs)))))
    per_axis = min(per_axis, 41) if len(xs) > 1 else 201
    axes = [np.linspace(*model.domain[s.name], per_axis) for s in xs]
    return np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(xs), -1), per_axis


def convexity_findings(model) -> list[dict]:
    """Where g is not convex in a min player's block / not concave in a max player's block.

    The convexity scan of :func:`stochctl.analysis.convexity.scan_block_convexity`
    (one tolerance, :data:`~stochctl.analysis.convexity.CONVEXITY_TOL`) on a grid of the
    model's domain. Returns one dict per player with the symbolic block, the number
    of failing grid points, the worst point and its eigenvalue.
    """
    from ..analysis.convexity import scan_block_convexity

    pts, per_axis = _grid(model)
    out = []
    for mp, scan in zip(model.players, scan_block_convexity(model, list(pts))):
        crit = scan.extreme
        scale = max(1.0, float(np.max(np.abs(scan.eigenvalues))))
        worst = int(np.argmin(np.round(crit / scale, 9)) if mp.sense == "min" else np.argmax(np.round(crit / scale, 9)))
        out.append({
            "player": mp.name,
            "sense": mp.sense,
            "symbols": [s.name for s in mp.symbols],
            "block": scan.block,
            "grid_points": int(pts.shape[1]),
            "per_axis": per_axis,
            "failing": int(np.count_nonzero(scan.fails)),
            "worst_point": {s.name: float(v) for s, v in zip(model.state_symbols, pts[:, worst])},
            "worst_eigenvalue": float(crit[worst]),
            "range": (float(crit.min()), float(crit.max())),
        })
    return out


def _sign_statement(expr, sense: str, quad: bool) -> str:
    """What the symbolic sign of a 1-D Hessian block (or its per-sample integrand) implies."""
    what = "convex" if sense == "min" else "concave"
    anti = "concave" if sense == "min" else "convex"
    ge, le = "$\\ge 0$", "$\\le 0$"
    nonneg, nonpos = expr.is_nonnegative, expr.is_nonpositive
    if nonneg and nonpos:
        return "identically zero"
    where = "the integrand is" if quad else "this is"
    good, bad = (ge, le) if sense == "min" else (le, ge)
    if (sense == "min" and nonneg) or (sense == "max" and nonpos):
        return f"{where} {good} for all states and parameters: {what}"
    if (sense == "min" and nonpos) or (sense == "max" and nonneg):
        return f"{where} {bad} for all states and parameters: {anti}, so not {what} wherever it is nonzero"
    if quad:
        return ""
    rel = "<" if sense == "min" else ">"
    return f"not {what} exactly where ${sp.latex(expr)} {rel} 0$"


def _convexity_section(model, tex, doc):
    doc.heading(2, "Convexity of the objective")
    quad = uses_quadrature(model)
    E = _expectation_tex(model)
    findings = convexity_findings(model)
    dom = ", ".join(f"${tex(sp.Symbol(k))} \\in [{fmt(lo)}, {fmt(hi)}]$" for k, (lo, hi) in model.domain.items())
    doc.para(f"Hessian blocks of $g$, checked on a grid of {findings[0]['grid_points']} points of the domain "
             f"{dom} (parameters at the values above). A min player needs $g$ convex in its block "
             "($\\partial^2 g \\succeq 0$), a max player concave ($\\partial^2 g \\preceq 0$).")
    items = []
    for f in findings:
        syms = [next(s for s in model.state_symbols if s.name == n) for n in f["symbols"]]
        need = "\\ge 0" if f["sense"] == "min" else "\\le 0"
        if len(syms) == 1:
            x = tex(syms[0])
            if quad:
                per = _simplified(sp.diff(model.loss, syms[0], 2))
                formula = (f"$\\partial^2 g / \\partial {x}^2 = {E}[\\partial^2 l / \\partial {x}^2]$ with "
                           f"$\\partial^2 l / \\partial {x}^2 = {tex(per)}$")
            else:
                formula = f"$\\partial^2 g / \\partial {x}^2 = {tex(_simplified(f['block'][0, 0]))}$"
            cond = f"$\\partial^2 g / \\partial {x}^2 {need}$"
            sign = _sign_statement(per if quad else _simplified(f["block"][0, 0]), f["sense"], quad)
            if sign:
                formula += f" ({sign})"
        else:
            formula = f"$D^2_{{{f['player']}}} g = {tex(f['block'])}$"
            cond = "$D^2 g " + ("\\succeq 0$" if f["sense"] == "min" else "\\preceq 0$")
        where = ", ".join(f"${tex(sp.Symbol(k))} = {fmt(v)}$" for k, v in f["worst_point"].items())
        word = "convex" if f["sense"] == "min" else "concave"
        if f["failing"]:
            verdict = (f"not {word} in ${f['player'] if len(syms) > 1 else tex(syms[0])}$: {cond} fails at "
                       f"{f['failing']} of {f['grid_points']} grid points; worst at {where} "
                       f"(eigenvalue {fmt(f['worst_eigenvalue'])})")
        else:
            lo, hi = f["range"]
            verdict = (f"{word} in ${tex(syms[0]) if len(syms) == 1 else f['player']}$ on the whole grid "
                       f"(eigenvalues in [{fmt(lo)}, {fmt(hi)}])")
        items.append(f"{formula}: {verdict}.")
    doc.items(items)
    if model.is_game:
        bad = [f for f in findings if f["failing"]]
        doc.para("So $g$ is " + ("not convex-concave on this domain: gradient descent-ascent has no "
                                 "convexity guarantee there." if bad else "convex-concave on this domain."))
    return findings
