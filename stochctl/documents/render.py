"""Rendering of a :class:`~stochctl.symbolic.derive.Derivation`: Markdown, LaTeX and JSON.

Formulas are shown in compact form: the Hamiltonian in terms of
A_p = grad_p g . grad_p V, B_p = eta m_p tr(Sigma_pp D2_pp V) (and C), and these
in terms of placeholders g_<x> = dg/dx and Sigma_<x>_<y>, which are defined
separately. Where the model's expectation needs quadrature (the Gaussian GAN)
the placeholders are shown as expectations of per-sample quantities,
g = E_xi[l], g_x = E_xi[dl/dx], Sigma_xy = Cov_xi[dl/dx, dl/dy], with the
quadrature order, instead of the long Gauss-Hermite sums.

:func:`stochctl.documents.write.write_derivations` writes the derivation documents of all canonical
models (``stochctl derive --all``; ``local-discrete`` gets the discrete-time
document of :mod:`stochctl.documents.discrete_render`); their content is deterministic: no
timestamps, floats printed with a fixed number of significant digits.
"""

from __future__ import annotations


import sympy as sp

from ..errors import InputError
from ..symbolic.derive import exact
from ._text import (DOCUMENT_HEADER, SIMPLIFY_LIMIT, _Doc, _escape, _expectation_tex, _latex_text,  # noqa: F401
                    _quadrature_note, _simplified, _Tex, fmt, uses_quadrature)
from .render_convexity import _convexity_section, _grid, _sign_statement, convexity_findings  # noqa: F401
from .render_json import _definition_strings, _pair_indices, _s, to_dict, to_json  # noqa: F401

__all__ = ["to_markdown", "to_latex", "to_dict", "to_json", "convexity_findings", "derivation_document",
           "DOCUMENT_HEADER"]

def _placeholder_definitions(d, tex) -> list[str]:
    """Definitions of g_<x> and Sigma_<x>_<y> as list items."""
    model = d.model
    quad = uses_quadrature(model)
    E = _expectation_tex(model)
    xs = model.state_symbols
    items = []
    by_name = {s.name: s for s in d.placeholders}
    for i, x in enumerate(xs):
        s = by_name[f"g_{x.name}"]
        lhs = f"{tex(s)} = \\partial g / \\partial {tex(x)}"
        if quad:
            dl = _simplified(sp.diff(model.loss, x))
            items.append(f"${lhs} = {E}[\\partial l / \\partial {tex(x)}]$ with "
                         f"$\\partial l / \\partial {tex(x)} = {tex(dl)}$")
        else:
            items.append(f"${lhs} = {tex(_simplified(d.placeholders[s]))}$")
    n = len(xs)
    for i in range(n):
        for j in range(i, n):
            name = f"Sigma_{xs[i].name}_{xs[j].name}"
            if name not in by_name:
                continue
            s = by_name[name]
            if quad:
                rhs = (f"\\mathrm{{Var}}_{{{', '.join(sp.latex(z) for z in model.noises)}}}"
                       f"[\\partial l / \\partial {tex(xs[i])}]" if i == j else
                       f"\\mathrm{{Cov}}_{{{', '.join(sp.latex(z) for z in model.noises)}}}"
                       f"[\\partial l / \\partial {tex(xs[i])}, \\partial l / \\partial {tex(xs[j])}]")
            else:
                rhs = tex(_simplified(d.placeholders[s]))
            items.append(f"${tex(s)} = {rhs}$ (per-sample gradient covariance)")
    if quad:
        items.append("expectations " + _quadrature_note(model))
    return items


def _objective_item(model, tex) -> str:
    E = _expectation_tex(model) if model.noises else ""
    if uses_quadrature(model):
        return f"mean objective $g = {E}[l]$, " + _quadrature_note(model)
    g = _simplified(model.objective)
    return f"mean objective $g = {E + '[l] = ' if E else ''}{tex(g)}$"


def _case_items(p, tex) -> list[str]:
    """The explicit clip-or-endpoint rule of one player, case by case."""
    A, u = p.effective_A, p.u
    B = p.m * p.Bt_symbol if p.batch is not None else p.B_symbol
    lo, hi = exact(p.u_min), exact(p.u_max)
    s = p.sign
    ratio = A / B if s == 1 else A / (-B)
    u_star = f"{tex(u)}^*"
    convex = (B > 0) if s == 1 else (B < 0)
    nonconvex = (B <= 0) if s == 1 else (B >= 0)
    switch = A > (lo + hi) * s * B / 2
    kind = "convex" if s == 1 else "concave"
    return [
        f"${tex(convex)}$ ({kind} in ${tex(u)}$): ${u_star} = \\mathrm{{clip}}\\left({tex(ratio)}, "
        f"{tex(lo)}, {tex(hi)}\\right)$",
        f"${tex(nonconvex)}$ and ${tex(switch)}$: ${u_star} = {tex(hi)}$ (upper endpoint)",
        f"${tex(nonconvex)}$ otherwise: ${u_star} = {tex(lo)}$ (lower endpoint; ties go here)",
    ]


# ---------------------------------------------------------------- document content
def _model_section(d, tex, doc):
    model = d.model
    doc.heading(2, "Model")
    doc.para(model.description)

    def who(p):
        syms = tex(sp.Matrix(p.symbols).T if len(p.symbols) > 1 else p.symbols[0])
        named = "" if [s.name for s in p.symbols] == [p.name] else f"{p.name}, "
        return f"${syms}$ ({named}{p.sense}imises)"

    items = ["players: " + ", ".join(who(p) for p in model.players)]
    items.append(f"per-sample loss $l = {tex(model.loss)}$")
    if model.noises:
        items.append("noises $" + ", ".join(tex(z) for z in model.noises) + "$: independent standard normal")
    items.append(_objective_item(model, tex))
    doc.items(items)
    if model.parameters:
        doc.table(["parameter", "value", "meaning"],
                  [[f"${tex(p.symbol)}$", fmt(model.values[p.name]), p.description] for p in model.parameters])


def _problem_section(d, tex, doc):
    pr, model = d.problem, d.model
    t = tex(sp.Symbol(model.time_name))
    doc.heading(2, "Control problem")
    items = [f"base learning rate $\\eta = {fmt(pr.eta)}$, horizon $T = {fmt(pr.horizon)}$ (time ${t} = k \\eta$)",
             "noise: " + ("one minibatch per player (independent noises)" if pr.noise == "independent"
                          else "one minibatch shared by the players (correlated noises)")]
    for p, c in zip(d.players, pr.controls):
        base = f"${tex(p.u)} \\in [{fmt(p.u_min)}, {fmt(p.u_max)}]$"
        if c.batch is None:
            base += f", batch size {c.batch_size} (${tex(p.m)} = 1/B = {fmt(1.0 / c.batch_size)}$)"
        else:
            b = c.batch
            base += (f", batch size $B \\in [{fmt(b.b_min)}, {fmt(b.b_max)}]$ as a control: "
                     f"${tex(p.m)} = 1/B \\in [{fmt(b.m_min)}, {fmt(b.m_max)}]$, compute cost "
                     f"${tex(p.kappa)} / {tex(p.m)}$ with ${tex(p.kappa)} = {fmt(b.kappa)}$")
        items.append(base)
    G = pr.terminal_cost
    items.append("terminal cost " + ("$G = g$" if G == model.objective else f"$G = {tex(G)}$"))
    items.append(f"running cost $r = {tex(d.running_cost)}$")
    doc.items(items)


def _sde_section(d, tex, doc):
    model = d.model
    t = tex(sp.Symbol(model.time_name))
    doc.heading(2, "Controlled SDE")
    lines = []
    by_name = {s.name: s for s in d.placeholders}
    for p, mp in zip(d.players, model.players):
        sign = "-" if p.sense == "min" else "+"
        for x in mp.symbols:
            g = tex(by_name[f"g_{x.name}"])
            S = by_name.get(f"Sigma_{x.name}_{x.name}")
            noise = (f" + {tex(p.u)} \\sqrt{{\\eta {tex(p.m)}}}\\, \\left(\\Sigma^{{1/2}} dW\\right)_{{{tex(x)}}}"
                     if S is not None else "")
            lines.append(f"d{tex(x)} &= {sign}{tex(p.u)}\\, {g}\\, d{t}{noise}")
    doc.math("\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}")
    doc.para("Drift $b$ and diffusion covariance $a$ (generator "
             "$\\mathcal{L}^u V = \\sum_i b_i V_i + \\frac{1}{2} \\sum_{ij} a_{ij} V_{ij}$):")
    doc.math(f"b = {tex(d.drift_compact)}, \\qquad a = {tex(d.diffusion_compact)}")
    doc.para("where")
    doc.items(_placeholder_definitions(d, tex))


def _hamiltonian_section(d, tex, doc):
    model = d.model
    t = tex(sp.Symbol(model.time_name))
    doc.heading(2, "Generator and Hamiltonian")
    doc.math(f"\\mathcal{{L}}^u V = {tex(d.generator_compact)}")
    lines = []
    for p in d.players:
        P = tex(sp.Symbol(p.name))
        lines.append(f"{tex(p.A_symbol)} &= \\nabla_{{{P}}} g \\cdot \\nabla_{{{P}}} V = {tex(p.A_compact)}")
        if p.batch is None:
            lines.append(f"{tex(p.B_symbol)} &= \\eta\\, {tex(p.m)} \\operatorname{{tr}}"
                         f"(\\Sigma_{{{P}{P}}} D^2_{{{P}{P}}} V) = {tex(p.B_compact)}")
        else:
            lines.append(f"{tex(p.B_symbol)} &= {tex(p.m)} {tex(p.Bt_symbol)}, \\quad {tex(p.Bt_symbol)} = \\eta "
                         f"\\operatorname{{tr}}(\\Sigma_{{{P}{P}}} D^2_{{{P}{P}}} V) = {tex(p.Bt_compact)}")
    if d.cross_symbol is not None:
        a, b = (tex(sp.Symbol(p.name)) for p in d.players)
        lines.append(f"{tex(d.cross_symbol)} &= \\eta \\sqrt{{m_{{{a}}} m_{{{b}}}}} \\operatorname{{tr}}"
                     f"(\\Sigma_{{{a}{b}}} D^2_{{{b}{a}}} V) = {tex(d.cross_compact)}")
    doc.math("\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}")
    doc.para("With $V_x = \\partial V / \\partial x$ and $V_{xy} = \\partial^2 V / \\partial x \\partial y$, "
             "the Hamiltonian before optimisation is")
    doc.math(f"H^u = \\mathcal{{L}}^u V + r = {tex(d.hamiltonian_ab)}")
    ops = " ".join(("\\min" if p.sense == "min" else "\\max") + f"_{{{tex(p.u)}}}"
                   + ("" if p.batch is None else f"\\!{{}}_{{,\\, {tex(p.m)}}}") for p in d.players)
    eq = "HJB" if not d.isaacs.applicable else "Isaacs"
    doc.para(f"{eq} equation: $\\partial_{{{t}}} V + H(x, DV, D^2 V) = 0$, $V(T, x) = G(x)$, with "
             f"$H = {ops} H^u$.")
    if len(d.players) > 1:
        doc.para("The Hamiltonian separates by player: $H^u$ is a sum of one function per player." if d.separable
                 else "The Hamiltonian does not separate: the cross term "
                      f"${tex(d.cross_symbol)}\\, {tex(d.players[0].u)} {tex(d.players[1].u)}$ couples the players.")


def _counterexample_rows(ce, tex):
    rows = [[f"state ${tex(sp.Symbol(k))}$", fmt(v)] for k, v in ce["state"].items()]
    rows += [[f"${_coef_tex(k)}$", fmt(v)] for k, v in ce["coefficients"].items()]
    rows += [[f"${tex(sp.Symbol(k))}$", fmt(v)] for k, v in ce["derivatives"].items() if v != 0]
    rows += [["lower $H^-$", fmt(ce["lower"])], ["upper $H^+$", fmt(ce["upper"])]]
    return rows


def _label(label: str) -> str:
    kind, _, rest = label.partition(" ")
    return f"{kind} ${rest}$" if rest else kind


def _coef_tex(name: str) -> str:
    if name.startswith("Bt_") or name.startswith("Ct_"):
        return r"\tilde{%s}_{%s}" % (name[0], " ".join(sp.latex(sp.Symbol(n)) for n in name[3:].split("_")))
    return sp.latex(sp.Symbol(name))


def _isaacs_section(d, tex, doc, level=2, title="Isaacs condition"):
    iv = d.isaacs
    doc.heading(level, title)
    if not iv.applicable:
        doc.para(f"Not applicable: {iv.reason}.")
        return
    if iv.holds:
        doc.para(f"**Holds**: {iv.reason}. The lower Hamiltonian $H^- = \\max \\min H^u$ and the upper "
                 "Hamiltonian $H^+ = \\min \\max H^u$ coincide, so the game has a value.")
        return
    doc.para(f"**Fails**: {iv.reason}.")
    doc.math(f"\\begin{{aligned}}\nH^- &= {tex(iv.lower)} \\\\\nH^+ &= {tex(iv.upper)}\n\\end{{aligned}}")
    ce = iv.counterexample
    doc.para(f"Counterexample ({ce['method']} values; derivatives of $V$ not listed are 0): "
             f"$H^- = {fmt(ce['lower'])} < H^+ = {fmt(ce['upper'])}$.")
    doc.table(["quantity", "value"], _counterexample_rows(ce, tex))


def _controls_section(d, tex, doc):
    doc.heading(2, "Optimal controls")
    for p in d.players:
        P = tex(sp.Symbol(p.name))
        doc.heading(3, f"${P}$ ({p.sense}imises)")
        doc.math(f"h_{{{P}}} = {tex(p.hamiltonian)}")
        if p.best_response_to is not None:
            doc.para(f"Best response to the other player's control: ${tex(p.A_symbol)}$ is replaced by "
                     f"${tex(p.effective_A)}$.")
        rule = ("For fixed $m$: c" if p.batch is not None else "C") + "lipped ratio where $h$ is " + \
            ("convex" if p.sign == 1 else "concave") + \
            f" in ${tex(p.u)}$, the better endpoint (bang-bang) where it is not:"
        doc.para(rule)
        doc.items(_case_items(p, tex))
        if p.batch is None or p.batch_given_u is None:
            doc.math(f"{tex(p.u)}^* = {tex(p.optimal_control)}")
        if p.batch is not None and p.batch_given_u is not None:
            doc.para(f"Batch control for fixed ${tex(p.u)}$ (the "
                     + ("min" if p.sign == 1 else "max")
                     + f" of ${tex(p.u)}^2 {tex(p.m)} {tex(p.Bt_symbol)} / 2 "
                     + ("+" if p.sign == 1 else "-") + f" {tex(p.kappa)} / {tex(p.m)}$):")
            doc.math(f"{tex(p.m)}^* = {tex(p.batch_given_u)}")
            doc.para("Joint $(u, m)$ optimum: the first admissible KKT candidate with the "
                     + ("smallest" if p.sign == 1 else "largest") + " value of $h$ (interior stationary point, "
                     "stationary points inside the faces, corners):")
            doc.table(["candidate", "$u$", "$m$", "admissible when"],
                      [[_label(lab), f"${tex(u)}$", f"${tex(m)}$", "always" if ok is sp.true else f"${tex(ok)}$"]
                       for lab, u, m, _, ok in p.kkt])
            doc.para("The joint optimum as a Piecewise over these candidates is in the JSON output "
                     "(`optimal_u`, `optimal_m`).")
        elif p.value is not None:
            op = "\\min" if p.sign == 1 else "\\max"
            doc.para("Optimal value of the player's part:")
            doc.math(f"{op}_{{{tex(p.u)}}} h_{{{P}}} = {tex(p.value)}")


def _reduced_section(d, tex, doc):
    doc.heading(2, "Reduced Hamiltonian")
    if d.reduced_hamiltonian is None:
        doc.para("The Hamiltonian does not separate, so there is no pointwise reduction player by player: "
                 "the equation uses $H^+$ or $H^-$ above.")
        return
    parts = []
    for p in d.players:
        op = "\\min" if p.sign == 1 else "\\max"
        ctrl = tex(p.u) if p.batch is None else f"{tex(p.u)}, {tex(p.m)}"
        parts.append(f"{op}_{{{ctrl}}} h_{{{tex(sp.Symbol(p.name))}}}")
    r = d.problem.running_cost
    lhs = (" + ".join(parts) if r == 0 else f"{tex(r)} + " + " + ".join(parts))
    doc.para("Substituting the optimal controls:")
    doc.math(f"H = {lhs}")
    if all(p.batch is None for p in d.players):
        doc.para("with the optimal values of each player's part given above.")
    else:
        doc.para("with each player's optimal value taken over the KKT candidates above.")


def _build(d, *, title=True) -> _Doc:
    tex = _Tex(d)
    doc = _Doc()
    if title:
        doc.heading(1, f"Derivation: {d.model.name}")
    _model_section(d, tex, doc)
    _problem_section(d, tex, doc)
    _sde_section(d, tex, doc)
    _hamiltonian_section(d, tex, doc)
    _isaacs_section(d, tex, doc)
    _controls_section(d, tex, doc)
    _reduced_section(d, tex, doc)
    return doc


def to_markdown(d) -> str:
    """The derivation as a Markdown document (math in ``$...$`` / ``$$...$$``)."""
    return _build(d).markdown()


def to_latex(d) -> str:
    """The derivation as a LaTeX fragment (sections, display math, itemize, tabular)."""
    return _build(d).latex()


# ---------------------------------------------------------------- JSON


def derivation_document(name: str) -> str:
    """The Markdown derivation document of a canonical model (default problem options)."""
    from ..models import MODEL_NAMES, get_model
    from ..symbolic.derive import derive
    from ..symbolic.problem import ControlProblem

    if name not in MODEL_NAMES:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    model = get_model(name)
    d = derive(ControlProblem.from_model(model))
    tex = _Tex(d)
    doc = _Doc()
    doc.heading(1, f"Derivation: {name}")
    doc.para(f"Default problem: $\\eta = {fmt(d.problem.eta)}$, controls in "
             f"$[{fmt(d.players[0].u_min)}, {fmt(d.players[0].u_max)}]$, "
             f"batch size {d.problem.controls[0].batch_size}, independent noise. "
             f"Regenerate with `stochctl derive --all --out derivations/`; "
             f"`stochctl derive {name} --format markdown` prints the same derivation for other options.")
    body = _build(d, title=False)
    doc.extend(body)
    _convexity_section(model, tex, doc)
    if model.is_game:
        shared = derive(ControlProblem.from_model(model, noise="shared"))
        doc.heading(2, "Shared minibatch")
        if shared.separable:
            doc.para("With one minibatch shared by both players (`--noise shared`) the per-sample gradients of "
                     "the players are uncorrelated ($\\Sigma_{\\theta\\omega} = 0$), so the Hamiltonian still "
                     "separates and the Isaacs condition holds.")
        else:
            doc.para("With one minibatch shared by both players (`--noise shared`) the per-sample gradients are "
                     "correlated: the diffusion gains the cross term below and the Hamiltonian no longer "
                     "separates.")
            stex = _Tex(shared)
            doc.math(f"{stex(shared.cross_symbol)} = {stex(shared.cross_compact)}")
            _isaacs_section(shared, stex, doc, level=3, title="Isaacs condition with a shared minibatch")
    return DOCUMENT_HEADER + "\n\n" + doc.markdown()
