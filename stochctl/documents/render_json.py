"""Derivations as data: the JSON form of a Derivation (expressions as strings, definitions, coefficients)."""

from __future__ import annotations

import json

import sympy as sp

from ._text import uses_quadrature


def _s(expr) -> str | None:
    return None if expr is None else str(expr)


def _definition_strings(d) -> dict:
    model = d.model
    quad = uses_quadrature(model)
    E = "E_{" + ",".join(z.name for z in model.noises) + "}"
    out = {}
    xs = model.state_symbols
    for s, e in d.placeholders.items():
        if not quad:
            out[s.name] = str(e)
            continue
        parts = s.name.split("_")[1:]
        if s.name.startswith("g_"):
            x = next(v for v in xs if v.name == "_".join(parts))
            out[s.name] = f"{E}[{sp.diff(model.loss, x)}]"
        else:
            i, j = _pair_indices(xs, s.name[len("Sigma_"):])
            li, lj = sp.diff(model.loss, xs[i]), sp.diff(model.loss, xs[j])
            out[s.name] = f"Var_{E[2:]}[{li}]" if i == j else f"Cov_{E[2:]}[{li}, {lj}]"
    return out


def _pair_indices(xs, rest: str):
    for i, a in enumerate(xs):
        for j, b in enumerate(xs):
            if f"{a.name}_{b.name}" == rest:
                return i, j
    raise KeyError(rest)


def to_dict(d) -> dict:
    """The derivation as a JSON-ready dict: formulas as strings, the Isaacs verdict, parameters."""
    model, pr = d.model, d.problem
    quad = uses_quadrature(model)
    iv = d.isaacs
    players = {}
    for p, c in zip(d.players, pr.controls):
        entry = {
            "sense": p.sense,
            "u_min": p.u_min,
            "u_max": p.u_max,
            "batch_size": None if c.batch is not None else c.batch_size,
            "batch_control": None if c.batch is None else {"b_min": c.batch.b_min, "b_max": c.batch.b_max,
                                                           "kappa": c.batch.kappa},
            "A": str(p.A_compact),
            "B": str(p.B_compact),
            "Bt": str(p.Bt_compact),
            "hamiltonian_part": str(p.hamiltonian),
            "convex_case": str(p.convex_condition),
            "effective_A": str(p.effective_A),
            "best_response_to": p.best_response_to,
            "optimal_u": str(p.optimal_control),
            "optimal_m": _s(p.optimal_batch),
            "optimal_m_given_u": _s(p.batch_given_u),
            "kkt_candidates": [{"label": lab, "u": str(u), "m": str(m), "value": str(v), "admissible": str(ok)}
                               for lab, u, m, v, ok in p.kkt],
            "optimal_value": _s(p.value),
        }
        players[p.name] = entry
    return {
        "model": model.name,
        "description": model.description,
        "state": [s.name for s in model.state_symbols],
        "time": model.time_name,
        "parameters": {k: float(v) for k, v in model.values.items()},
        "problem": {"eta": pr.eta, "horizon": pr.horizon, "noise": pr.noise,
                    "terminal_cost": "g" if pr.terminal_cost == model.objective else str(pr.terminal_cost),
                    "running_cost": str(d.running_cost)},
        "loss": str(model.loss),
        "noises": [z.name for z in model.noises],
        "objective": ("E_{" + ",".join(z.name for z in model.noises) + "}[l]") if quad else str(model.objective),
        "quadrature_order": model.quadrature_order if quad else None,
        "definitions": _definition_strings(d),
        "drift": [str(e) for e in d.drift_compact],
        "diffusion": [[str(d.diffusion_compact[i, j]) for j in range(d.diffusion_compact.cols)]
                      for i in range(d.diffusion_compact.rows)],
        "generator": str(d.generator_compact),
        "hamiltonian": str(d.hamiltonian_compact),
        "hamiltonian_ab": str(d.hamiltonian_ab),
        "cross_term": None if d.cross_symbol is None else {"symbol": d.cross_symbol.name, "C": str(d.cross_compact)},
        "separable": d.separable,
        "isaacs": {
            "applicable": iv.applicable,
            "holds": iv.holds,
            "reason": iv.reason,
            "lower_hamiltonian": _s(iv.lower),
            "upper_hamiltonian": _s(iv.upper),
            "counterexample": iv.counterexample,
        },
        "players": players,
        "reduced_hamiltonian": _s(d.reduced_hamiltonian),
        "values": dict(d.values),
    }


def to_json(d) -> str:
    """:func:`to_dict` as an indented JSON string."""
    return json.dumps(to_dict(d), indent=2, allow_nan=False)
