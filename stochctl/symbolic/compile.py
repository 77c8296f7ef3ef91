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

For the grid solvers, :func:`compile_hamiltonian` takes the Hamiltonian terms and the
per-player control constants from the problem's derivation (computed once per problem,
:func:`derivation_of`); the control rules themselves are the generated kernels of
:mod:`stochctl.symbolic._rule_kernels`. numpy evaluation goes through :mod:`stochctl._evaluator`.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=None)
def file_hash(path: str) -> str:
    """First 16 hex digits of the SHA-256 of a file (a template's source file, tagged into generated code)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def bound_module(compiled, template: str, prefix: str, source_file: str, **fields):
    """Import ``template`` formatted for a compiled problem, from the kernel cache (:func:`import_generated`).

    numba cannot cache a kernel that receives the problem's compiled functions as arguments or
    through a closure, so kernels that call them are written as source bound to the problem's
    module: ``{kernels}`` in the template names it, ``{tag}`` a hash of ``source_file`` (so a
    change of the template's file makes a new module), and ``fields`` fill any other names.
    """
    kernels = compiled.grad.py_func.__module__
    if kernels not in sys.modules:
        raise RuntimeError(f"compiled problem module {kernels!r} is not imported")
    tag = f"{Path(source_file).stem} source {file_hash(str(source_file))}"
    return import_generated(template.format(kernels=kernels, tag=tag, **fields), prefix)


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


# ------------------------------------------------------------------ the derivation, compiled for grid solvers
@dataclass(frozen=True)
class CompiledPlayer:
    """One player's optimal-control rule with its constants taken from the derivation.

    Attributes:
        name: the player.
        sign: s = +1 (minimiser) or -1 (maximiser).
        u_min, u_max: bounds of u.
        m: m = 1 / batch size when the batch is fixed (the derivation's value of m_p).
        batch: whether (u, m) is optimised jointly (batch control).
        kappa, m_min, m_max: the compute cost and the bounds of m (batch control; else 0, m, m).
    """

    name: str
    sign: float
    u_min: float
    u_max: float
    m: float
    batch: bool
    kappa: float
    m_min: float
    m_max: float

    def optimum(self, A, Bt):
        """(u, m, h, convex) arrays at A_p, Bt_p (Bt_p = B_p / m_p), by the solvers' numba rule.

        h = -s u A + u^2 m Bt / 2 (+ s kappa / m) is the player's part of the Hamiltonian and
        ``convex`` whether the clipped ratio applies (s m Bt > 0).
        """
        from ._rule_kernels import player_optimum_array

        A, Bt = np.broadcast_arrays(np.asarray(A, dtype=float), np.asarray(Bt, dtype=float))
        shape = A.shape
        A, Bt = np.ascontiguousarray(A).ravel(), np.ascontiguousarray(Bt).ravel()
        U, M, H = np.empty(A.size), np.empty(A.size), np.empty(A.size)
        C = np.empty(A.size, dtype=np.bool_)
        player_optimum_array(A, Bt, self.sign, self.u_min, self.u_max, self.m, self.batch, self.kappa,
                             self.m_min, self.m_max, U, M, H, C)
        return U.reshape(shape), M.reshape(shape), H.reshape(shape), C.reshape(shape)


@dataclass(frozen=True)
class CompiledHamiltonian:
    """What a grid solver needs of a :class:`~stochctl.symbolic.derive.Derivation`.

    Per player p, A_p = sum_{i of p} g_i V_i and Bt_p = eta sum_{i, j of p} Sigma_ij V_ij; the
    solver reads the coefficients of the derivation's A_p and Bt_p and the player's rule.

    Attributes:
        derivation: the derivation they come from.
        players: one :class:`CompiledPlayer` per player, in order.
        owner: player index of each state coordinate.
        drift: g_i = dA_p / dV_i per coordinate (sympy).
        diffusion: Sigma_ii = dBt_p / dV_ii / eta per coordinate (sympy).
        eta: the base learning rate.
    """

    derivation: object = field(repr=False)
    players: tuple
    owner: np.ndarray
    drift: tuple = field(repr=False)
    diffusion: tuple = field(repr=False)
    eta: float = 0.0

    def evaluate(self, mesh) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(g_i, Sigma_ii) at the state arrays ``mesh`` (one evaluator, :mod:`stochctl._evaluator`)."""
        model = self.derivation.model
        with np.errstate(all="ignore"):
            g = [np.asarray(model.lambdify(e)(*mesh), dtype=float) for e in self.drift]
            sigma = [np.asarray(model.lambdify(e)(*mesh), dtype=float) for e in self.diffusion]
        return g, sigma


_DERIVED: "weakref.WeakKeyDictionary[ControlProblem, object]" = weakref.WeakKeyDictionary()
_HAMILTONIANS: "weakref.WeakKeyDictionary[ControlProblem, CompiledHamiltonian]" = weakref.WeakKeyDictionary()


def derivation_of(problem: ControlProblem):
    """:func:`~stochctl.symbolic.derive.derive` of ``problem``, computed once per problem object."""
    hit = _DERIVED.get(problem)
    if hit is None:
        from .derive import derive

        hit = _DERIVED[problem] = derive(problem)
    return hit


def compile_hamiltonian(problem: ControlProblem) -> CompiledHamiltonian:
    """The problem's Hamiltonian terms and control rules from its derivation (cached per problem)."""
    hit = _HAMILTONIANS.get(problem)
    if hit is not None:
        return hit
    d = derivation_of(problem)
    n = len(d.state_symbols)
    owner = np.array([problem.owner(i) for i in range(n)], dtype=np.int64)
    drift = tuple(sp.diff(d.players[owner[i]].A, d.value_gradient[i]) for i in range(n))
    diffusion = tuple(sp.diff(d.players[owner[i]].Bt, d.value_hessian[i, i]) / d.eta for i in range(n))
    players = []
    for p, control in zip(d.players, problem.controls):
        m = d.values.get(p.m.name, 1.0 / control.batch_size)  # under batch control: the default batch
        players.append(CompiledPlayer(
            name=p.name, sign=float(p.sign), u_min=float(p.u_min), u_max=float(p.u_max),
            m=m, batch=p.batch is not None,
            kappa=d.values[p.kappa.name] if p.kappa is not None else 0.0,
            m_min=p.batch.m_min if p.batch is not None else m,
            m_max=p.batch.m_max if p.batch is not None else m))
    hit = _HAMILTONIANS[problem] = CompiledHamiltonian(
        derivation=d, players=tuple(players), owner=owner, drift=drift, diffusion=diffusion,
        eta=float(d.values["eta"]))
    return hit
