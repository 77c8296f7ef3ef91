"""Compile a control problem's ingredients to numba functions.

The sympy expressions (g, grad g, D2 g, Sigma, G, r, and the per-sample
gradient) are printed as Python source after common-subexpression
elimination, with the state and the parameters passed as arrays (parameters
are arguments, never substituted, so one compiled module serves every
parameter value). The source is written to a cache folder under a name that
is the hash of its text and imported from there, so ``numba``'s
``cache=True`` keeps the machine code on disk and a second run does not
recompile.

Signatures (``x``, ``xi``, ``params`` are float64 1-D arrays)::

    grad(x, params, out)            out[i] = dg/dx_i
    hessian(x, params, out)         out[i, j] = d2g/dx_i dx_j
    sigma(x, params, out)           out[i, j] = Sigma_ij(x)
    sample_grad(x, xi, params, out) out[i] = dl/dx_i at noise values xi
    objective(x, params)            g(x)
    terminal(x, params)             G(x)
    running(x, params)              r(x) (state part)
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from .problem import ControlProblem

SOURCE_VERSION = 1


def cache_dir() -> Path:
    """Folder of generated kernel modules: $STOCHCTL_CACHE_DIR or ~/.cache/stochctl/kernels."""
    root = os.environ.get("STOCHCTL_CACHE_DIR")
    path = Path(root) if root else Path.home() / ".cache" / "stochctl" / "kernels"
    path.mkdir(parents=True, exist_ok=True)
    return path


class _Printer(PythonCodePrinter):
    def _print_Float(self, expr):
        return repr(float(expr))


def _body(exprs, outputs, printer) -> list[str]:
    replacements, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("_c"))
    lines = [f"    {printer.doprint(s)} = {printer.doprint(e)}" for s, e in replacements]
    lines += [f"    {o} = {printer.doprint(e)}" for o, e in zip(outputs, reduced)]
    return lines


def generate_source(problem: ControlProblem) -> str:
    """Python source of the numba module for ``problem`` (see module docstring)."""
    model = problem.model
    states, params, noises = model.state_symbols, model.parameter_symbols, model.noises
    xs = [sp.Symbol(f"_x{i}") for i in range(len(states))]
    ps = [sp.Symbol(f"_p{i}") for i in range(len(params))]
    zs = [sp.Symbol(f"_z{i}") for i in range(len(noises))]
    sub = dict(zip(states, xs)) | dict(zip(params, ps)) | dict(zip(noises, zs))
    printer = _Printer({"fully_qualified_modules": True, "standard": "python3"})
    n = len(states)

    def prologue(with_noise=False):
        lines = [f"    _x{i} = x[{i}]" for i in range(n)]
        lines += [f"    _p{i} = params[{i}]" for i in range(len(params))]
        if with_noise:
            lines += [f"    _z{i} = xi[{i}]" for i in range(len(noises))]
        return lines

    def vector(name, vec, with_noise=False):
        args = "x, xi, params, out" if with_noise else "x, params, out"
        exprs = [sp.sympify(e).xreplace(sub) for e in vec]
        return ["@numba.njit(cache=True, fastmath=False)", f"def {name}({args}):", *prologue(with_noise),
                *_body(exprs, [f"out[{i}]" for i in range(len(exprs))], printer), "    return out", ""]

    def matrix(name, mat):
        exprs = [sp.sympify(mat[i, j]).xreplace(sub) for i in range(n) for j in range(n)]
        outs = [f"out[{i}, {j}]" for i in range(n) for j in range(n)]
        return ["@numba.njit(cache=True, fastmath=False)", f"def {name}(x, params, out):", *prologue(),
                *_body(exprs, outs, printer), "    return out", ""]

    def scalar(name, expr):
        return ["@numba.njit(cache=True, fastmath=False)", f"def {name}(x, params):", *prologue(),
                *_body([sp.sympify(expr).xreplace(sub)], ["_result"], printer), "    return float(_result)", ""]

    lines = [
        f'"""Generated kernels for model {model.name!r} (source version {SOURCE_VERSION})."""',
        "import math",
        "import numba",
        "",
        *vector("grad", model.gradient),
        *matrix("hessian", model.hessian),
        *matrix("sigma", problem.covariance),
        *vector("sample_grad", model.sample_gradient, with_noise=True),
        *scalar("objective", model.objective),
        *scalar("terminal", problem.terminal_cost),
        *scalar("running", problem.running_cost),
    ]
    return "\n".join(lines) + "\n"


def import_generated(source: str, prefix: str = "stochctl_kernels"):
    """Import generated module source from the cache folder (written atomically once).

    The module is named ``<prefix>_<hash of source>`` so that numba's
    ``cache=True`` finds its machine code again in a later process.
    """
    digest = hashlib.sha256(source.encode()).hexdigest()[:20]
    name = f"{prefix}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    path = cache_dir() / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class CompiledProblem:
    """numba and numpy versions of a problem's ingredients (module docstring).

    Attributes:
        state_names: coordinate names in state-vector order.
        params: parameter values in the model's order (pass as ``params``).
        signs: +1 for a minimiser's coordinate, -1 for a maximiser's.
        owner: index of the player owning each coordinate.
        grad, hessian, sigma, sample_grad, objective, terminal, running: numba functions.
        np_grad, np_sigma, np_objective, np_terminal, np_running: vectorised numpy
            functions of the state arrays (reference implementations for tests).
    """

    state_names: tuple[str, ...]
    params: np.ndarray
    signs: np.ndarray
    owner: np.ndarray
    n_noises: int
    grad: object = field(repr=False)
    hessian: object = field(repr=False)
    sigma: object = field(repr=False)
    sample_grad: object = field(repr=False)
    objective: object = field(repr=False)
    terminal: object = field(repr=False)
    running: object = field(repr=False)
    np_grad: object = field(repr=False)
    np_sigma: object = field(repr=False)
    np_objective: object = field(repr=False)
    np_terminal: object = field(repr=False)
    np_running: object = field(repr=False)


def _problem_key(problem: ControlProblem) -> str:
    model = problem.model
    parts = [str(SOURCE_VERSION), sp.srepr(model.loss), sp.srepr(model.noises), sp.srepr(model.parameter_symbols),
             sp.srepr(model.state_symbols), str(model.quadrature_order), sp.srepr(problem.terminal_cost),
             sp.srepr(problem.running_cost), sp.srepr(problem.covariance) if problem.covariance is not None else ""]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:20]


def _source_for(problem: ControlProblem) -> str:
    """Generated source, reused from the cache folder when the problem's definition is unchanged."""
    index = cache_dir() / f"source_{_problem_key(problem)}.py"
    if index.exists():
        return index.read_text()
    source = generate_source(problem)
    fd, tmp = tempfile.mkstemp(dir=index.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        fh.write(source)
    os.replace(tmp, index)
    return source


_COMPILED: dict[tuple, CompiledProblem] = {}
_BY_OBJECT: "weakref.WeakKeyDictionary[ControlProblem, CompiledProblem]" = weakref.WeakKeyDictionary()


def compile_problem(problem: ControlProblem) -> CompiledProblem:
    """Compile ``problem``'s ingredients (cached on disk and per process; see module docstring).

    Within a process the result is reused for the same problem object and for
    any problem of the same definition and parameter values.
    """
    hit = _BY_OBJECT.get(problem)
    if hit is None:
        key = (_problem_key(problem), problem.model.parameter_values)
        if key not in _COMPILED:
            _COMPILED[key] = _compile(problem)
        hit = _BY_OBJECT[problem] = _COMPILED[key]
    return hit


def _compile(problem: ControlProblem) -> CompiledProblem:
    module = import_generated(_source_for(problem))
    model = problem.model
    n = len(model.state_symbols)
    owner = np.array([problem.owner(i) for i in range(n)], dtype=np.int64)
    signs = np.array([model.players[k].sign for k in owner], dtype=np.int64)
    return CompiledProblem(
        state_names=model.state_names,
        params=np.array(model.parameter_values, dtype=np.float64),
        signs=signs,
        owner=owner,
        n_noises=len(model.noises),
        grad=module.grad,
        hessian=module.hessian,
        sigma=module.sigma,
        sample_grad=module.sample_grad,
        objective=module.objective,
        terminal=module.terminal,
        running=module.running,
        np_grad=model.lambdify(model.gradient),
        np_sigma=model.lambdify(problem.covariance),
        np_objective=model.lambdify(model.objective),
        np_terminal=model.lambdify(problem.terminal_cost),
        np_running=model.lambdify(problem.running_cost),
    )
