"""Pointwise optimal controls against brute-force optimisation of the Hamiltonian."""

import numpy as np
import pytest
import sympy as sp

from stochctl.errors import InputError
from stochctl.symbolic.optimal import (
    control_value,
    convex_case,
    joint_value,
    kkt_candidates,
    optimal_m,
    optimal_u,
    optimal_u_m,
    optimal_u_max_player,
    optimal_u_min_player,
    piecewise_m,
    piecewise_u,
    piecewise_u_m,
    piecewise_u_value,
)

A_, B_, K_, U_ = sp.symbols("A B kappa u", real=True)


def _random_u_problems(rng, n):
    A = rng.normal(0.0, 2.0, n)
    B = rng.normal(0.0, 2.0, n)
    B[:20] = 0.0  # degenerate (linear) case
    A[20:30] = 0.0
    lo = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.0, 0.5, n))
    hi = lo + rng.uniform(0.2, 2.0, n)
    return A, B, lo, hi


@pytest.mark.parametrize("sense", ["min", "max"])
def test_u_rule_matches_brute_force(rng, sense):
    n = 400
    A, B, lo, hi = _random_u_problems(rng, n)
    fn = optimal_u_min_player if sense == "min" else optimal_u_max_player
    u = fn(A, B, lo, hi)
    assert np.all((u >= lo) & (u <= hi))
    s = 1 if sense == "min" else -1
    grid = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 4001)[None, :]
    # the player's objective written as a cost to minimise
    cost_grid = s * control_value(grid, A[:, None], B[:, None], sense)
    cost = s * control_value(u, A, B, sense)
    best = cost_grid.min(axis=1)
    h = (hi - lo) / 4000
    assert np.all(cost <= best + 1e-12)  # never beaten by any grid point
    assert np.all(best - cost <= np.abs(B) * h**2 + 1e-12)  # and the grid gets close
    # both convexity cases occur, and the clipped ratio applies exactly where s B > 0
    conv = convex_case(B, sense)
    assert conv.any() and (~conv).any()
    ratio = np.divide(A, s * B, out=np.zeros(n), where=conv)
    np.testing.assert_allclose(u[conv], np.clip(ratio, lo, hi)[conv], rtol=0, atol=1e-14)
    # non-convex case: an endpoint
    assert np.all((u[~conv] == lo[~conv]) | (u[~conv] == hi[~conv]))


def test_u_rule_ties_and_examples():
    # min player, B < 0, phi(0) = phi(1): tie goes to u_min
    assert optimal_u_min_player(-0.5, -1.0, 0.0, 1.0) == 0.0
    assert optimal_u_min_player(-0.49, -1.0, 0.0, 1.0) == 1.0
    assert optimal_u_min_player(1.0, 0.0, 0.0, 1.0) == 1.0  # linear, descent direction: upper bound
    assert optimal_u_min_player(3.0, 4.0, 0.0, 1.0) == 0.75
    assert optimal_u_min_player(5.0, 4.0, 0.0, 1.0) == 1.0
    # max player, B > 0: psi(0) = psi(1) when A = -B/2
    assert optimal_u_max_player(-0.5, 1.0, 0.0, 1.0) == 0.0
    assert optimal_u_max_player(3.0, -4.0, 0.0, 1.0) == 0.75
    assert optimal_u(3.0, -4.0, 0.0, 1.0, sense="max") == 0.75
    # tiny B does not overflow: the ratio is never formed outside the bounds
    assert optimal_u_min_player(1.0, 1e-320, 0.0, 1.0) == 1.0
    with pytest.raises(InputError):
        optimal_u_min_player(1.0, 1.0, 1.0, 0.5)
    with pytest.raises(InputError):
        optimal_u(1.0, 1.0, 0.0, 1.0, sense="sideways")


@pytest.mark.parametrize("sense", ["min", "max"])
def test_batch_rule_matches_brute_force(rng, sense):
    n = 300
    u = rng.uniform(0.0, 2.0, n)
    u[:10] = 0.0
    Bt = rng.normal(0.0, 2.0, n)
    kappa = rng.uniform(0.0, 0.2, n)
    kappa[10:20] = 0.0
    m_lo = 1.0 / rng.uniform(16, 64, n)
    m_hi = 1.0 / rng.uniform(1, 4, n)
    m = optimal_m(u, Bt, kappa, m_lo, m_hi, sense=sense)
    assert np.all((m >= m_lo) & (m <= m_hi))
    s = 1 if sense == "min" else -1
    grid = np.geomspace(m_lo, m_hi, 20001, axis=1)

    def cost(mm):
        return s * (0.5 * u[:, None] ** 2 * mm * Bt[:, None]) + kappa[:, None] / mm

    best = cost(grid).min(axis=1)
    val = cost(m[:, None])[:, 0]
    assert np.all(val <= best + 1e-12)
    assert np.all(best - val <= 1e-6 * (1 + np.abs(best)))
    # closed form where s u^2 Bt > 0, smallest batch (m_max) otherwise
    pos = s * u**2 * Bt > 0
    closed = np.clip(np.sqrt(2 * kappa[pos] / (s * u[pos] ** 2 * Bt[pos])), m_lo[pos], m_hi[pos])
    np.testing.assert_allclose(m[pos], closed, rtol=1e-14)
    np.testing.assert_array_equal(m[~pos], m_hi[~pos])


def _brute_joint(A, Bt, kappa, ul, uh, ml, mh, sense, n1=161, n2=81):
    """min over a grid of the cost (f for min, -objective for max), refined around the best cell."""
    s = 1 if sense == "min" else -1

    def cost(uu, mm):
        return s * joint_value(uu, mm, A, Bt, kappa, sense)

    us = np.linspace(ul, uh, n1)
    ms = np.geomspace(ml, mh, n1)
    C = cost(us[:, None], ms[None, :])
    i, j = np.unravel_index(np.argmin(C), C.shape)
    u2 = np.linspace(us[max(i - 2, 0)], us[min(i + 2, n1 - 1)], n2)
    m2 = np.geomspace(ms[max(j - 2, 0)], ms[min(j + 2, n1 - 1)], n2)
    return min(C.min(), cost(u2[:, None], m2[None, :]).min())


@pytest.mark.parametrize("sense", ["min", "max"])
def test_joint_rule_matches_brute_force(rng, sense):
    n = 250
    A = rng.normal(0.0, 1.0, n)
    Bt = rng.normal(0.0, 2.0, n)
    kappa = rng.uniform(0.0, 0.1, n)
    kappa[:10] = 0.0
    ul = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0.0, 0.3, n))
    uh = ul + rng.uniform(0.3, 1.5, n)
    ml = 1.0 / rng.uniform(8, 32, n)
    mh = 1.0 / rng.uniform(1, 4, n)
    u, m = optimal_u_m(A, Bt, kappa, ul, uh, ml, mh, sense=sense)
    assert np.all((u >= ul) & (u <= uh) & (m >= ml) & (m <= mh))
    s = 1 if sense == "min" else -1
    val = s * joint_value(u, m, A, Bt, kappa, sense)
    gaps = np.array([_brute_joint(*(v[k] for v in (A, Bt, kappa, ul, uh, ml, mh)), sense) - val[k]
                     for k in range(n)])
    assert np.all(gaps >= -1e-10), "a grid point beats the KKT optimum"
    assert np.all(gaps <= 1e-3), "the KKT optimum is not attained near the grid optimum"
    # the convexity split of the batch objective occurs in both directions
    assert (s * Bt > 0).any() and (s * Bt < 0).any()


def test_joint_rule_interior_stationary_curve():
    # A^2 = 2 kappa Bt: f = -u A + u^2 m Bt / 2 + kappa / m vanishes on the curve u m = A / Bt
    A, Bt, kappa = 2.0, 2.0, 1.0
    u, m = optimal_u_m(A, Bt, kappa, 0.0, 4.0, 0.25, 4.0)
    assert u * m == pytest.approx(A / Bt)
    assert 0.25 < m < 4.0 and 0.0 < u < 4.0
    assert joint_value(u, m, A, Bt, kappa) == pytest.approx(0.0, abs=1e-14)
    assert _brute_joint(A, Bt, kappa, 0.0, 4.0, 0.25, 4.0, "min") >= -1e-12


def test_joint_rule_reduces_to_one_dimensional_rules(rng):
    # kappa = 0 and Bt <= 0: smallest batch (m_max), then the u-rule with B = m_max Bt
    A = rng.normal(size=50)
    Bt = -np.abs(rng.normal(size=50))
    u, m = optimal_u_m(A, Bt, 0.0, 0.0, 1.0, 0.1, 1.0)
    np.testing.assert_array_equal(m, 1.0)
    np.testing.assert_array_equal(u, optimal_u_min_player(A, Bt, 0.0, 1.0))


# ------------------------------------------------------------------ sympy versions
def _lambdify(args, expr):
    f = sp.lambdify(args, expr, modules="numpy")

    def call(*a):
        with np.errstate(all="ignore"):  # numpy.select evaluates every branch
            return np.asarray(f(*a), dtype=float)

    return call


@pytest.mark.parametrize("sense", ["min", "max"])
def test_piecewise_u_agrees_with_numpy(rng, sense):
    A, B, _, _ = _random_u_problems(rng, 300)
    lo, hi = sp.Rational(1, 10), sp.Integer(2)
    f = _lambdify((A_, B_), piecewise_u(A_, B_, lo, hi, sense))
    np.testing.assert_array_equal(f(A, B), optimal_u(A, B, 0.1, 2.0, sense))
    v = _lambdify((A_, B_), piecewise_u_value(A_, B_, lo, hi, sense))
    expected = control_value(optimal_u(A, B, 0.1, 2.0, sense), A, B, sense)
    np.testing.assert_allclose(v(A, B), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sense", ["min", "max"])
def test_piecewise_m_agrees_with_numpy(rng, sense):
    n = 200
    u = rng.uniform(0, 2, n)
    u[:5] = 0
    Bt = rng.normal(0, 2, n)
    kappa = rng.uniform(0, 0.2, n)
    f = _lambdify((U_, A_, K_), piecewise_m(U_, A_, K_, sp.Rational(1, 32), sp.Rational(1, 2), sense))
    np.testing.assert_allclose(f(u, Bt, kappa), optimal_m(u, Bt, kappa, 1 / 32, 0.5, sense), rtol=1e-14)


@pytest.mark.parametrize("sense", ["min", "max"])
def test_piecewise_u_m_agrees_with_numpy(rng, sense):
    n = 300
    A = rng.normal(0.0, 1.0, n)
    Bt = rng.normal(0.0, 2.0, n)
    kappa = rng.uniform(0.0, 0.1, n)
    kappa[:10] = 0.0
    A[10], Bt[10], kappa[10] = 2.0, (2.0 if sense == "min" else -2.0), 1.0  # interior stationary curve
    bounds = (sp.Integer(0), sp.Integer(4), sp.Rational(1, 16), sp.Integer(1))
    u_pw, m_pw, v_pw = piecewise_u_m(A_, B_, K_, *bounds, sense)
    us, ms, vs = (_lambdify((A_, B_, K_), e)(A, Bt, kappa) for e in (u_pw, m_pw, v_pw))
    un, mn = optimal_u_m(A, Bt, kappa, 0.0, 4.0, 1 / 16, 1.0, sense)
    vn = joint_value(un, mn, A, Bt, kappa, sense)
    np.testing.assert_allclose(vs, vn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(joint_value(us, ms, A, Bt, kappa, sense), vn, rtol=1e-12, atol=1e-12)
    same = np.isclose(us, un, rtol=1e-12, atol=1e-14) & np.isclose(ms, mn, rtol=1e-12)
    assert same.mean() > 0.95  # points differ only at exact ties
    assert np.isclose(us[10] * ms[10], 1.0) and 1 / 16 < ms[10] < 1


def test_kkt_candidates_cover_faces_and_corners():
    labels = [c[0] for c in kkt_candidates(A_, B_, K_, sp.Rational(1, 10), 1, sp.Rational(1, 8), 1)]
    assert labels[0] == "interior"
    assert sum(lab.startswith("face") for lab in labels) == 4
    assert sum(lab.startswith("corner") for lab in labels) == 4
    # with u_min = 0, f = kappa / m on the face u = 0: no stationary point inside it
    labels0 = [c[0] for c in kkt_candidates(A_, B_, K_, 0, 1, sp.Rational(1, 8), 1)]
    assert sum(lab.startswith("face") for lab in labels0) == 3
