"""Rendering of a :class:`~stochctl.symbolic.discrete.DiscreteDerivation`: Markdown, LaTeX and JSON.

The blocks, the LaTeX printer, number formatting and the model section are
those of :mod:`stochctl.documents.render`, so the discrete document reads like
the continuous ones. :func:`discrete_document` is the generated file
``derivations/local-discrete.md``; its content is deterministic.
"""

from __future__ import annotations

import json

import sympy as sp

from ..analysis.explosion import explosion_thresholds
from ..errors import InputError
from ..symbolic.discrete import DISCRETE_MODELS
from .render import DOCUMENT_HEADER, _Doc, _model_section, _placeholder_definitions, _Tex, fmt

__all__ = ["to_markdown", "to_latex", "to_dict", "to_json", "discrete_document", "DISCRETE_DOCUMENTS"]

#: Canonical models whose generated document is the discrete derivation.
DISCRETE_DOCUMENTS = DISCRETE_MODELS


def _derivative_names(V, y, order: int = 4) -> dict:
    """V^(k)(y) -> a symbol printed V', V'', ... (shorter than d^k/dy^k V(y))."""
    return {sp.diff(V(y), y, k): sp.Symbol("V" + "'" * k) for k in range(order, 0, -1)}


def _primes(expr, d):
    L = d.local
    (y,) = d.state_symbols
    return sp.sympify(expr).xreplace(_derivative_names(L.V, y)).xreplace({L.V(y): sp.Symbol("V")})


# ---------------------------------------------------------------- sections
def _problem_section(d, tex, doc):
    pr = d.problem
    doc.heading(2, "Discrete problem")
    steps = pr.horizon / pr.eta
    items = [f"base learning rate $\\eta = {tex(d.eta)}$, multiplier ${tex(d.u)} \\in [{fmt(d.u_min)}, "
             f"{fmt(d.u_max)}]$, batch size {pr.controls[0].batch_size} ($m = 1/B = {tex(d.m)}$)",
             f"horizon $T = {fmt(pr.horizon)}$, i.e. $K = T / \\eta = {fmt(steps)}$ steps",
             f"terminal cost $G = {tex(d.terminal_cost)}$, no running cost"]
    doc.items(items)


def _iteration_section(d, tex, doc):
    doc.heading(2, "Iteration")
    xs = d.state_symbols
    x = tex(xs[0]) if len(xs) == 1 else "x"
    xi = "\\xi"
    doc.para("One training step with the learning-rate multiplier $u$ and a Gaussian minibatch gradient "
             f"(${xi} \\sim N(0, I)$, independent across steps):")
    doc.math(f"{x}_{{k+1}} = {x}_k - \\eta\\, u_k \\left(\\nabla g({x}_k) + \\sqrt{{m}}\\, "
             f"\\Sigma({x}_k)^{{1/2}} {xi}_k\\right)")
    doc.items([f"$\\nabla g = {tex(d.gradient if len(xs) > 1 else d.gradient[0])}$",
               f"$\\Sigma = {tex(d.covariance if len(xs) > 1 else d.covariance[0])}$ (per-sample gradient "
               "covariance)"])
    if d.next_state is not None and len(xs) == 1:
        nxt = sp.collect(sp.expand(d.next_state[0]), xs[0])
        doc.para("so that")
        doc.math(f"{x}_{{k+1}} = {tex(nxt)} \\quad (\\text{{at }} {x}_k = {x},\\ u_k = {tex(d.u)})")
    doc.para(f"Given ${x}_k = {x}$ the next state is normal with mean and "
             + ("variance" if len(xs) == 1 else "covariance"))
    mean = d.next_mean[0] if len(xs) == 1 else d.next_mean
    cov = d.next_covariance[0] if len(xs) == 1 else d.next_covariance
    doc.math(f"\\mu = {tex(sp.collect(sp.expand(mean), xs[0]) if len(xs) == 1 else mean)}, \\qquad "
             f"C = \\eta^2 u^2 m\\, \\Sigma = {tex(sp.factor(cov) if len(xs) == 1 else cov)}")


def _bellman_section(d, tex, doc):
    doc.heading(2, "Bellman equation")
    xs = d.state_symbols
    x = tex(xs[0]) if len(xs) == 1 else "x"
    xi = "\\xi"
    doc.para("With $n$ steps left ($n = 1, \\dots, K$) and $V_0 = G$:")
    doc.math(f"V_0({x}) = {tex(d.terminal_cost)}, \\qquad V_n({x}) = \\min_{{{tex(d.u)} \\in [{fmt(d.u_min)}, "
             f"{fmt(d.u_max)}]}} \\mathbb{{E}}_{{{xi}}}\\, V_{{n-1}}\\!\\left({x} - \\eta\\, {tex(d.u)} "
             f"\\left(\\nabla g({x}) + \\sqrt{{m}}\\, \\Sigma({x})^{{1/2}} {xi}\\right)\\right)")
    doc.para("The policy with $n$ steps left is the minimiser, computed numerically by dynamic programming on a "
             "state grid; with one step left the expectation is available in closed form.")


def _one_step_section(d, tex, doc):
    doc.heading(2, "One-step problem")
    u = tex(d.u)
    if d.one_step is None:
        doc.para(f"$J({u}) = \\mathbb{{E}}\\, G(x_{{k+1}})$ has no closed form here: $G$ is not polynomial in "
                 "the state, so its Gaussian expectation is left to the numerical Bellman solver.")
        return
    doc.para("$J(u) = \\mathbb{E}\\, G(x_{k+1}) = \\sum_k (L^k G)(\\mu) / k!$ with "
             "$L = \\frac{1}{2} \\sum_{ij} C_{ij} \\partial_i \\partial_j$ (exact for polynomial $G$; for a "
             "quadratic $G$ it is $G(\\mu) + \\frac{1}{2} \\operatorname{tr}(D^2 G\\, C)$, the mean term plus "
             "the variance term):")
    doc.math(f"J({u}) = {tex(_compact_J(d))}")
    if d.coefficients is not None:
        c0, c1, c2 = d.coefficients
        doc.para(f"a quadratic in ${u}$: $J = c_0 + c_1 {u} + c_2 {u}^2$ with")
        doc.math(f"c_0 = {tex(c0)}, \\quad c_1 = {tex(c1)}, \\quad c_2 = {tex(c2)}")
    doc.para("Second derivative in the multiplier:")
    doc.math(f"\\frac{{d^2 J}}{{d {u}^2}} = {tex(d.curvature)}")
    if d.convex_always:
        doc.para(f"This is $> 0$ for every admissible state and parameter, so $J$ is convex in ${u}$.")
    elif d.convex_condition is not None:
        doc.para(f"$J$ is convex in ${u}$ exactly where ${tex(d.convex_condition)}$; elsewhere it is concave or "
                 "linear and has no interior minimum.")
    if d.stationary:
        doc.para(f"Stationary point ($dJ/d{u} = 0$, solved by sympy):")
        doc.math(", \\quad ".join(f"{u} = {tex(s)}" for s in d.stationary))
    if d.optimal_control is None:
        doc.para(f"$J$ is a polynomial of degree {sp.Poly(d.one_step, d.u).degree()} in ${u}$: the minimiser is "
                 "the best of the endpoints and the roots of $dJ/du$ inside the interval, found numerically.")
        return
    lo, hi = fmt(d.u_min), fmt(d.u_max)
    doc.para("Optimal multiplier with one step left (exact):")
    doc.math(f"{u}^* = {tex(d.optimal_control)}")
    items = []
    if d.stationary and d.convex_condition is not sp.false:
        where = "everywhere" if d.convex_always else f"where ${tex(d.convex_condition)}$"
        items.append(f"convex case ({where}): the stationary point clipped to $[{lo}, {hi}]$")
    if not d.convex_always:
        items.append(f"otherwise (not convex in ${u}$): the endpoint with the smaller $J$, ${u} = {hi}$ when "
                     f"$J({hi}) < J({lo})$, else ${lo}$ (ties go to ${lo}$)")
    doc.items(items)
    if d.one_step_value is not None:
        doc.para("Where the stationary point lies inside the interval the optimal one-step value is")
        doc.math(f"V_1 = J({u}^*) = {tex(d.one_step_value)}")
    doc.para("With $n \\ge 2$ steps left $V_{n-1}$ is no longer this quadratic (the clip bends it), so the "
             "dynamic-programming policy differs from the one-step rule.")


def _compact_J(d):
    if len(d.state_symbols) != 1:
        return sp.collect(d.one_step, d.u)
    x = d.state_symbols[0]
    return sp.collect(sp.factor_terms(d.one_step), [x**2, d.u], func=sp.factor)


def _small_step_section(d, tex, doc):
    S = d.small_step
    c = S.derivation
    ctex = _Tex(c)
    (p,) = c.players
    u = ctex(p.u)
    doc.heading(2, "Small-step limit")
    doc.para(f"With $\\Delta x = x_{{k+1}} - x_k$: $\\mathbb{{E}} \\Delta x = -\\eta {u} \\nabla g$, "
             f"$\\mathbb{{E}} \\Delta x \\Delta x^T = \\eta^2 {u}^2 (\\nabla g \\nabla g^T + {ctex(p.m)} \\Sigma)$ and "
             "third moments are $O(\\eta^3)$, so for a smooth $V$ (symbols of the continuous derivation, "
             "$\\eta$ and $m$ kept symbolic)")
    doc.math(f"\\frac{{\\mathbb{{E}}\\, V(x_{{k+1}}) - V(x_k)}}{{\\eta}} = {ctex(S.discrete)} + O(\\eta^2)")
    doc.para("where")
    doc.items(_placeholder_definitions(c, ctex))
    doc.para("The HJB generator of the continuous problem (`stochctl derive` without `--discrete`) is")
    doc.math(f"\\mathcal{{L}}^u V = {ctex(S.continuous)}")
    doc.para("They agree at order $\\eta^0$ (the drift); at order $\\eta$ the discrete step has in addition "
             "(sympy difference)")
    doc.math(ctex(S.correction))
    doc.para("the overshoot of the gradient step, of the same order as the diffusion term the SDE keeps: the SDE "
             "of design section 2 is the small-step model, accurate while $\\eta u a \\ll 1$.")


def _limit_section(d, tex, doc):
    L = d.local
    u, h = tex(d.u), tex(L.h)
    doc.heading(2, "Continuous limit")
    doc.para(f"For a smooth $V(y)$, Taylor-expand $V(y + \\Delta)$ with $\\Delta = -{h} {u} y - {u} \\sqrt{{{h}}}"
             f"\\, \\xi$ to order 4 (exact to $O({h})$, since $\\mathbb{{E}} \\Delta^k = O({h}^{{k/2}})$), take the "
             f"Gaussian expectation and expand in ${h}$ (sympy series):")
    s0, s1 = (tex(_primes(t, d)) for t in L.series)
    doc.math(f"\\frac{{\\mathbb{{E}}\\, V(y - {h} {u} y - {u} \\sqrt{{{h}}}\\, \\xi) - V(y)}}{{{h}}} = {s0} "
             f"+ {h} \\left({s1}\\right) + O({h}^2)")
    doc.para(f"As ${h} \\to 0$ this tends to")
    doc.math(f"{tex(_primes(L.limit, d))}")
    verdict = ("equal (sympy-simplified difference 0)" if L.limit_matches else "NOT equal")
    doc.para("which is the HJB Hamiltonian (generator $\\mathcal{L}^u V$) of the continuous local model "
             f"`local-quadratic`, $dY = -u Y d\\tau + u\\, dW$, taken from its own derivation: {verdict}; "
             f"time $\\tau = k {h}$. For $V = G = y^2$ the one-step problem gives, exactly,")
    doc.math(f"\\frac{{J({u}) - y^2}}{{{h}}} = {tex(L.quadratic_ratio)} \\;\\xrightarrow[{h} \\to 0]{{}}\\; "
             f"{tex(L.quadratic_limit)}")
    doc.para(f"the Hamiltonian at $V_y = 2y$, $V_{{yy}} = 2$. Its minimiser $y^2$ (clipped) is the continuous "
             f"clipped ratio; the discrete one-step rule $y^2 / (1 + {h} y^2) = y^2 - {h} y^4 + O({h}^2)$ tends to it "
             f"as ${h} \\to 0$ and, unlike it, never asks for more than $1/{h}$.")


def _moment_section(d, tex, doc):
    L = d.local
    u, h = tex(d.u), tex(L.h)
    doc.heading(2, "Second moment and explosion")
    doc.para(f"Since $J = \\mathbb{{E}}[Y_{{k+1}}^2 \\mid Y_k = y]$, a constant multiplier gives "
             f"$\\mathbb{{E}} Y_{{k+1}}^2 = {tex(L.second_moment_factor)}\\, \\mathbb{{E}} Y_k^2 + {h} {u}^2$. "
             f"The noise is additive, so deterministic and mean-square thresholds coincide: $\\mathbb{{E}} Y^2$ "
             f"grows geometrically iff $|1 - {h} {u}| > 1$, i.e. ${h} {u} > 2$ (${u} \\ge 0$), linearly (by "
             f"$4/{h}$ per step) at ${h} {u} = 2$, and for $0 < {h} {u} < 2$ it converges to")
    doc.math(f"\\lim_k \\mathbb{{E}} Y_k^2 = {tex(L.stationary_second_moment)}")
    doc.para(f"The one-step rule never crosses the threshold: ${u}^* \\le y^2 / (1 + {h} y^2) < 1/{h}$, half "
             f"the explosive step. A cap $u_{{\\max}}$ with ${h} u_{{\\max}} \\ge 2$ lets the constant policy "
             f"$u = u_{{\\max}}$ explode. Critical multipliers from "
             "`stochctl.analysis.explosion.critical_steps` (curvature $h$, no multiplicative noise) against "
             f"$u_{{\\max}} = {fmt(d.u_max)}$:")
    rows = [[fmt(hv), fmt(crit), fmt(hu), "yes" if bad else "no"] for hv, crit, hu, bad in L.explosion_rows]
    doc.table([f"${h}$", "critical $u = 2/h$", f"${h}\\, u_{{\\max}}$", "constant $u_{\\max}$: $E Y^2$ unbounded"], rows)


def _trainer_section(d, tex, doc):
    L = d.local
    g2, s2 = L.trainer_symbols[:2]
    names = {g2: sp.Symbol("|\\nabla f|^2"), s2: sp.Symbol("s^2")}
    h = tex(L.h)
    doc.heading(2, "In a trainer's variables")
    doc.para(f"Along the gradient direction with curvature $a > 0$, gradient-noise variance $s^2$ and "
             f"${h} = \\eta a$, the local variable is $y^2 = |\\nabla f|^2 / ({h} s^2)$ (design section 4). "
             f"Substituting into $\\eta u^* = \\eta\\, y^2 / (1 + {h} y^2)$ (sympy):")
    doc.math(f"\\eta u^* = {tex(L.trainer_step.xreplace(names))} "
             "= \\frac{\\mathrm{SNR}}{a}, \\qquad \\mathrm{SNR} = \\frac{|\\nabla f|^2}{|\\nabla f|^2 + s^2}")
    doc.para("a Newton step shrunk by the signal-to-noise ratio (before clipping to "
             "$[\\eta u_{\\min}, \\eta u_{\\max}]$).")


def _nonconvex_section(d, tex, doc):
    L = d.local
    u = tex(d.u)
    doc.heading(2, "Non-convex direction ($a \\le 0$)")
    doc.para("The local variables need $a > 0$. In the trainer's variables, with $f = a x^2 / 2$ along the "
             f"gradient and $x' = x - \\eta {u} (a x + s \\xi)$, the one-step problem is")
    doc.math(f"\\mathbb{{E}} f(x') = {tex(L.trainer_one_step)}, \\qquad "
             f"\\frac{{d^2}}{{d {u}^2}} \\mathbb{{E}} f(x') = {tex(L.trainer_curvature)}")
    doc.para(f"convex in ${u}$ only where ${tex(L.trainer_convex)}$. For $a < 0$ it is concave with slope "
             f"$\\frac{{d}}{{d {u}}} \\mathbb{{E}} f(x') = {tex(L.trainer_slope)} \\le 0$ (every term in the bracket "
             f"is $\\ge 0$ and $a < 0$; $< 0$ unless $x = s = 0$): no minimum along the direction, the endpoint rule gives "
             f"${u} = u_{{\\max}}$ ($a = 0$: flat, every ${u}$ ties). The cap then sets the step: with $a < 0$ "
             f"every step grows $|x|$ (deterministic factor $1 + \\eta u_{{\\max}} |a|$; `critical_steps(-1, 0)` = "
             f"{tuple(L.nonconvex_steps)}: threshold 0, every step explodes along that direction), and in the "
             "convex directions $\\eta u_{\\max}$ is checked against the thresholds $2/a$ (deterministic) and "
             "$2a/(a^2 + s_m^2)$ (mean-square, multiplicative noise of variance $s_m^2$) of design section 2.")


def explosion_at_centre(d):
    """Explosion thresholds of ``d``'s problem at the centre of its domain with multiplier u_max.

    Returns ``(thresholds, point, note)``; thresholds is None at a singular point (``note`` says why).
    """
    problem = d.problem
    point = {k: 0.5 * (lo + hi) for k, (lo, hi) in problem.model.domain.items()}
    try:
        th = explosion_thresholds(problem, point)
    except (ValueError, ArithmeticError) as exc:  # InputError is a ValueError
        return None, point, f"not evaluated at the domain centre: {exc}"
    return th, point, "at the centre of the domain"


def _explosion_section(d, tex, doc, level=2):
    doc.heading(level, "Explosion thresholds of the model")
    th, point, note = explosion_at_centre(d)
    where = ", ".join(f"${tex(sp.Symbol(k))} = {fmt(v)}$" for k, v in point.items())
    if th is None:
        doc.para(f"Thresholds {note}.")
        return
    doc.para(f"From `stochctl.analysis.explosion.explosion_thresholds` at {where} ({note}, "
             f"multiplier $u_{{\\max}} = {fmt(d.u_max)}$): the smallest base learning rate $\\eta$ at which the "
             f"linearised iteration explodes, against the problem's $\\eta = {fmt(d.problem.eta)}$.")
    rows = []
    labels = {"deterministic": "deterministic", "mean_square": "mean-square", "almost_sure": "almost-sure"}
    for c in th.criteria:
        v = th.critical(c)
        rows.append([labels[c], "never" if v is None else fmt(v),
                     "yes" if th.explodes(float(d.problem.eta), c) else "no"])
    doc.table(["criterion", "critical $\\eta$", f"explodes at $\\eta = {fmt(d.problem.eta)}$"], rows)


def _explosion_dict(d) -> dict | None:
    th, point, note = explosion_at_centre(d)
    return None if th is None else {"point": point, "note": note, **{c: th.critical(c) for c in th.criteria}}


def _build(d, *, title=True) -> _Doc:
    tex = _Tex()
    doc = _Doc()
    if title:
        doc.heading(1, f"Discrete derivation: {d.model.name}")
    _model_section(d, tex, doc)
    _problem_section(d, tex, doc)
    _iteration_section(d, tex, doc)
    _bellman_section(d, tex, doc)
    _one_step_section(d, tex, doc)
    if d.small_step is not None:
        _small_step_section(d, tex, doc)
    elif d.local is None:
        doc.para(f"The local-model sections (continuous limit in $h$, trainer variables, explosion in $h u$) "
                 f"describe the model at $\\eta = 1$ and batch size 1; here $\\eta = {tex(d.eta)}$, "
                 f"$m = {tex(d.m)}$.")
    if d.local is not None:
        _limit_section(d, tex, doc)
        _moment_section(d, tex, doc)
        _trainer_section(d, tex, doc)
        _nonconvex_section(d, tex, doc)
    _explosion_section(d, tex, doc)
    return doc


def to_markdown(d) -> str:
    """The discrete derivation as a Markdown document."""
    return _build(d).markdown()


def to_latex(d) -> str:
    """The discrete derivation as a LaTeX fragment."""
    return _build(d).latex()


# ---------------------------------------------------------------- JSON
def _s(expr):
    return None if expr is None else str(expr)


def to_dict(d) -> dict:
    """JSON-ready dict: the formulas as sympy strings, the thresholds, the parameters."""
    model, pr = d.model, d.problem
    out = {
        "model": model.name,
        "kind": "discrete",
        "state": [s.name for s in d.state_symbols],
        "parameters": {k: float(v) for k, v in model.values.items()},
        "problem": {"eta": pr.eta, "batch_size": pr.controls[0].batch_size, "u_min": d.u_min, "u_max": d.u_max,
                    "horizon": pr.horizon, "steps": pr.horizon / pr.eta},
        "control": d.u.name,
        "noises": [z.name for z in d.noise_symbols],
        "iteration": "x_{k+1} = x_k - eta u (grad g(x_k) + sqrt(m) Sigma(x_k)^(1/2) xi_k)",
        "gradient": [str(e) for e in d.gradient],
        "covariance": [[str(d.covariance[i, j]) for j in range(d.covariance.cols)] for i in range(d.covariance.rows)],
        "next_state": None if d.next_state is None else [str(e) for e in d.next_state],
        "next_mean": [str(e) for e in d.next_mean],
        "next_covariance": [[str(d.next_covariance[i, j]) for j in range(d.next_covariance.cols)]
                            for i in range(d.next_covariance.rows)],
        "terminal_cost": str(d.terminal_cost),
        "bellman": "V_0 = G; V_n(x) = min_{u in [u_min, u_max]} E V_{n-1}(x_{k+1})",
        "one_step": _s(d.one_step),
        "coefficients": None if d.coefficients is None else dict(zip(("c0", "c1", "c2"), map(str, d.coefficients))),
        "second_derivative": _s(d.curvature),
        "convex_condition": _s(d.convex_condition),
        "convex_always": d.convex_always,
        "stationary": [str(s) for s in d.stationary],
        "optimal_u": _s(d.optimal_control),
        "one_step_value": _s(d.one_step_value),
        "explosion": _explosion_dict(d),
        "values": dict(d.values),
    }
    S = d.small_step
    if S is not None:
        out["small_step"] = {"discrete": str(S.discrete), "continuous": str(S.continuous),
                             "correction": str(S.correction)}
    L = d.local
    if L is not None:
        out["continuous_limit"] = {
            "series_h0": str(_primes(L.series[0], d)),
            "series_h1": str(_primes(L.series[1], d)),
            "limit": str(_primes(L.limit, d)),
            "continuous_hamiltonian": str(_primes(L.continuous_hamiltonian, d)),
            "matches": L.limit_matches,
            "quadratic_ratio": str(L.quadratic_ratio),
            "quadratic_limit": str(L.quadratic_limit),
        }
        out["second_moment"] = {"factor": str(L.second_moment_factor),
                                "stationary": str(L.stationary_second_moment),
                                "explosion": [{"h": hv, "critical_u": crit, "h_u_max": hu, "unbounded": bad}
                                              for hv, crit, hu, bad in L.explosion_rows]}
        out["trainer"] = {"eta_u": str(L.trainer_step), "symbols": {"G2": "|grad f|^2", "s2": "s^2", "a": "curvature",
                                                                     "eta": "base learning rate"},
                          "one_step": str(L.trainer_one_step), "second_derivative": str(L.trainer_curvature),
                          "convex_condition": str(L.trainer_convex), "slope": str(L.trainer_slope)}
    return out


def to_json(d) -> str:
    """:func:`to_dict` as an indented JSON string."""
    return json.dumps(to_dict(d), indent=2, allow_nan=False)


# ---------------------------------------------------------------- document
def discrete_document(name: str) -> str:
    """The Markdown discrete derivation document of a canonical model (default problem options)."""
    from ..models import MODEL_NAMES, get_model
    from ..symbolic.discrete import derive_discrete
    from ..symbolic.problem import ControlProblem

    if name not in MODEL_NAMES:
        raise InputError(f"unknown model {name!r}; valid models: {', '.join(MODEL_NAMES)}")
    d = derive_discrete(ControlProblem.from_model(get_model(name)))
    doc = _Doc()
    doc.heading(1, f"Discrete derivation: {name}")
    doc.para(f"Default problem: $\\eta = {fmt(d.problem.eta)}$, multiplier in $[{fmt(d.u_min)}, {fmt(d.u_max)}]$, "
             f"batch size {d.problem.controls[0].batch_size}. Regenerate with "
             f"`stochctl derive --all --out derivations/`; `stochctl derive {name} --u-max 4` prints the same "
             "derivation for other options (`--format latex|json`).")
    doc.extend(_build(d, title=False))
    return DOCUMENT_HEADER + "\n\n" + doc.markdown()
