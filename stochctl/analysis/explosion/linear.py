"""The iteration linearised at a point: Jacobian, noise covariances, iteration and second-moment matrices.

With the signed gradient field F = (grad_theta g, -grad_omega g), its Jacobian
J at the point and the players' multipliers U = diag(u_p), linearised GDA is
x <- M x with M = I - eta U J (simultaneous) or M = T_P ... T_1 with
T_p = I - eta E_p U J (alternating: players in the model's order, each at the
point left by the previous one; E_p selects player p's rows). The second moment
P = E[x x^T] under multiplicative minibatch noise evolves by
P -> M P M^T + eta^2 E[U Xi P Xi^T U] (simultaneous; alternating: the
composition of the per-player maps), Xi the per-sample fluctuation of s D2 l.
These are the exact one-step maps of :mod:`stochctl.solvers.iteration` for a
quadratic model.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import sympy as sp

from ..._evaluator import numpy_function
from ...errors import NumericalError
from ...models import Model, expectation
from ...solvers.iteration import check_update as _check_update
from ._common import _as_model, _signs_owner, resolve_point

def _player_rows(owner, n_players) -> np.ndarray:
    """(n_players, n) boolean: which coordinates each player owns."""
    owner = np.asarray(owner)
    return np.array([owner == p for p in range(n_players)])


def iteration_matrix(uj: np.ndarray, eta, owner, update: str = "simultaneous") -> np.ndarray:
    """Iteration matrix of linearised GDA: I - eta U J, or T_P ... T_1 for alternating updates.

    Args:
        uj: U J, shape (..., n, n).
        eta: base learning rate(s), broadcastable against ``uj.shape[:-2]``.
        owner: player index of each coordinate; players update in index order.
        update: ``"simultaneous"`` or ``"alternating"``.
    """
    _check_update(update)
    uj = np.asarray(uj, dtype=float)
    n = uj.shape[-1]
    step = np.asarray(eta, dtype=float)[..., None, None] * uj
    eye = np.eye(n)
    if update == "simultaneous":
        return eye - step
    rows = _player_rows(owner, int(np.max(owner)) + 1)
    out = np.broadcast_to(eye, step.shape).copy()
    for mask in rows:
        out = (eye - step * mask[:, None]) @ out
    return out


def _kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched Kronecker product with row-major vec: vec(A P B^T) = (A kron B) vec(P)."""
    n = a.shape[-1]
    return np.einsum("...ik,...jl->...ijkl", a, b).reshape(*a.shape[:-2], n * n, n * n)


def _noise_operator(cov4: np.ndarray, weights: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """K[(i,j),(k,l)] = w_i w_j Cov(D2l_ik, D2l_jl) for i, j both in ``mask`` (one minibatch)."""
    n = cov4.shape[-1]
    same = np.outer(mask, mask).astype(float)
    k4 = np.einsum("...i,...j,...ikjl,ij->...ijkl", weights, weights, cov4, same)
    return k4.reshape(*k4.shape[:-4], n * n, n * n)


def second_moment_matrix(uj: np.ndarray, cov4: np.ndarray, weights: np.ndarray, eta, owner,
                         update: str = "simultaneous") -> np.ndarray:
    """Linear map of E[x x^T] (row-major vec) for linearised SGD / SGA with multiplicative noise.

    Simultaneous: A = M kron M + eta^2 sum_p K_p with M = I - eta U J; alternating:
    A = A_P ... A_1 with A_p = T_p kron T_p + eta^2 K_p. K_p is player p's
    minibatch term E[(E_p U Xi) kron (E_p U Xi)] (module docstring).

    Args:
        uj: U J, shape (..., n, n).
        cov4: per-sample Cov(D2l_ij, D2l_kl), shape (..., n, n, n, n).
        weights: w_i = u_i s_i / sqrt(B_p(i)), shape (..., n).
        eta, owner, update: as in :func:`iteration_matrix`.
    """
    _check_update(update)
    uj = np.asarray(uj, dtype=float)
    eta = np.asarray(eta, dtype=float)
    n = uj.shape[-1]
    step = eta[..., None, None] * uj
    eta2 = (eta * eta)[..., None, None]
    eye = np.eye(n)
    rows = _player_rows(owner, int(np.max(owner)) + 1)
    if update == "simultaneous":
        m = eye - step
        out = _kron(m, m)
        for mask in rows:
            out = out + eta2 * _noise_operator(cov4, weights, mask)
        return out
    out = np.broadcast_to(np.eye(n * n), (*step.shape[:-2], n * n, n * n)).copy()
    for mask in rows:
        t = eye - step * mask[:, None]
        out = (_kron(t, t) + eta2 * _noise_operator(cov4, weights, mask)) @ out
    return out


def spectral_radius(matrices: np.ndarray) -> np.ndarray:
    """max |eigenvalue| of each matrix of a stack (inf for a matrix with non-finite entries)."""
    matrices = np.asarray(matrices, dtype=float)
    finite = np.all(np.isfinite(matrices), axis=(-2, -1))
    safe = np.where(finite[..., None, None], matrices, 0.0)
    rho = np.abs(np.linalg.eigvals(safe)).max(axis=-1)
    return np.where(finite, rho, np.inf)



@dataclass(frozen=True)
class _Ingredients:
    n: int
    hessian: object  # lambdified list of n*n entries
    moments: object  # lambdified list of E[D2l_P D2l_Q] - E[D2l_P] E[D2l_Q] over unique pairs P <= Q
    sigma: object  # lambdified list of n*n entries of Sigma(x)
    pairs: tuple
    products: tuple


_INGREDIENTS: dict[str, _Ingredients] = {}


def _structure_key(model: Model) -> str:
    parts = [sp.srepr(model.loss), sp.srepr(model.noises), sp.srepr(model.state_symbols),
             sp.srepr(model.parameter_symbols), str(model.quadrature_order)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _ingredients(model: Model) -> _Ingredients:
    """Symbolic Hessian, per-sample curvature covariance and Sigma as numpy functions (the package's one
    evaluator, :func:`stochctl._evaluator.numpy_function`); the symbolic work is cached by structure."""
    key = _structure_key(model)
    if key in _INGREDIENTS:
        return _INGREDIENTS[key]
    states = model.state_symbols
    n = len(states)
    args = list(states) + list(model.parameter_symbols)
    d2l = [[sp.diff(model.loss, si, sj) for sj in states] for si in states]
    pairs = tuple((i, j) for i in range(n) for j in range(i, n))
    products = tuple((p, q) for ip, p in enumerate(pairs) for q in pairs[ip:])
    mean = {p: expectation(d2l[p[0]][p[1]], model.noises, model.quadrature_order) for p in pairs}
    moments = []
    for p, q in products:
        second = expectation(d2l[p[0]][p[1]] * d2l[q[0]][q[1]], model.noises, model.quadrature_order)
        moments.append(second - mean[p] * mean[q])
    hess = model.hessian
    sigma = model.gradient_covariance
    ing = _Ingredients(
        n=n,
        hessian=numpy_function(args, [hess[i, j] for i in range(n) for j in range(n)]),
        moments=numpy_function(args, moments),
        sigma=numpy_function(args, [sigma[i, j] for i in range(n) for j in range(n)]),
        pairs=pairs,
        products=products,
    )
    _INGREDIENTS[key] = ing
    return ing


def _evaluate(model: Model, state: tuple[np.ndarray, ...]):
    """H (..., n, n), Cov of per-sample D2 l entries (..., n, n, n, n) and Sigma (..., n, n) at the states."""
    ing = _ingredients(model)
    n = ing.n
    shape = np.broadcast(*[np.asarray(s) for s in state]).shape
    values = model.parameter_values

    def entries(f):
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            raw = f(*state, *values)
        return [np.broadcast_to(np.asarray(v, dtype=float), shape) for v in raw]

    hess = np.stack(entries(ing.hessian), axis=-1).reshape(*shape, n, n)
    sig = np.stack(entries(ing.sigma), axis=-1).reshape(*shape, n, n)
    cov = np.zeros((*shape, n, n, n, n))
    for (p, q), v in zip(ing.products, entries(ing.moments)):
        for (i, j) in {p, p[::-1]}:
            for (k, l) in {q, q[::-1]}:
                cov[..., i, j, k, l] = v
                cov[..., k, l, i, j] = v
    for name, arr in (("Hessian", hess), ("gradient covariance", sig), ("curvature covariance", cov)):
        if not np.all(np.isfinite(arr)):
            raise NumericalError(f"model {model.name!r}: the {name} is not finite at the requested point(s)")
    return hess, cov, sig



@dataclass(frozen=True, eq=False)
class LocalLinearization:
    """The ingredients of the linearised iteration at a point.

    Attributes:
        model: the model's name.
        names: state coordinates, in order.
        point: the point.
        signs: +1 (minimiser) or -1 (maximiser) per coordinate.
        owner: player index per coordinate.
        players: player names.
        hessian: D2 g at the point.
        jacobian: J = diag(signs) D2 g, the Jacobian of the signed gradient field.
        curvature_covariance: per-sample Cov(D2 l_ij, D2 l_kl) over the noises, shape (n, n, n, n).
        gradient_covariance: per-sample Sigma(x) (additive noise).
    """

    model: str
    names: tuple[str, ...]
    point: np.ndarray
    signs: np.ndarray
    owner: np.ndarray
    players: tuple[str, ...]
    hessian: np.ndarray
    jacobian: np.ndarray
    curvature_covariance: np.ndarray
    gradient_covariance: np.ndarray



def local_linearization(model: Model, point) -> LocalLinearization:
    """Hessian, signed Jacobian and noise covariances of ``model`` at ``point`` (dict or sequence)."""
    model = _as_model(model)[0]
    x = resolve_point(model, point)
    hess, cov, sig = _evaluate(model, tuple(x))
    signs, owner = _signs_owner(model)
    return LocalLinearization(model=model.name, names=model.state_names, point=x, signs=signs, owner=owner,
                              players=tuple(p.name for p in model.players), hessian=hess,
                              jacobian=signs[:, None] * hess + 0.0, curvature_covariance=cov,
                              gradient_covariance=sig)
