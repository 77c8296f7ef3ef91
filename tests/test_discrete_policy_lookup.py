"""One reading of the discrete table: LocalPolicy (scalar, numpy, torch, jax) and ``stochctl table lookup``
give exactly :func:`stochctl.tables.discrete_policy.lookup`; the exact symmetries it rests on."""

import json
import math

import numpy as np
import pytest
from _discrete_reference import fresh_policy, fresh_solve

from stochctl.cli import main
from stochctl.policies.estimators.base import Estimate
from stochctl.policies.local_policy import LocalPolicy
from stochctl.tables import load_table
from stochctl.tables.discrete_policy import lookup


@pytest.fixture(scope="module")
def table():
    return load_table("local-discrete")


def _points(rng, m):
    """Trainer estimates over the whole range: h = eta a log-uniform in [1e-4, 1e4], SNR in [0, 1)."""
    eta = 0.1
    h = np.exp(rng.uniform(math.log(1e-4), math.log(1e4), m))
    a = h / eta
    s2 = rng.uniform(0.1, 10.0, m)
    snr = rng.uniform(0.0, 0.999, m)
    grad = np.sqrt(snr / (1 - snr) * s2)  # |grad|^2 / (|grad|^2 + s2) = SNR
    return eta, a, s2, grad


@pytest.mark.parametrize("u_max", [1.0, 3.3, 8.0])
def test_local_policy_reads_the_one_lookup(table, u_max):
    rng = np.random.default_rng(int(10 * u_max))
    eta, a, s2, grad = _points(rng, 300)
    K = 10**6
    step = rng.integers(0, K, 300)
    pol = LocalPolicy("local-discrete", total_steps=K, u_max=u_max)
    h = eta * a
    tau = h * (K - step)
    y = grad / np.sqrt(a * eta * s2)
    ref, _ = lookup(table, u_max, h, tau, y)
    scalar = np.array([pol(int(k), Estimate(float(ai), float(si), float(gi)), eta=eta)
                       for k, ai, si, gi in zip(step, a, s2, grad)])
    assert np.array_equal(scalar, ref)
    for k in (0, K // 2, K - 1):  # arrays of estimates at one step
        arr = pol(k, Estimate(a, s2, grad), eta=eta)
        want, _ = lookup(table, u_max, h, h * (K - k), y)
        assert np.array_equal(arr, want)
    assert pol.counts["clamped"] == 0 and pol.counts["nan"] == 0


def test_jax_lookup_is_the_same_function(table):
    jnp = pytest.importorskip("jax.numpy")
    pytest.importorskip("optax")
    import jax

    jax.config.update("jax_enable_x64", True)
    try:
        rng = np.random.default_rng(5)
        eta, a, s2, grad = _points(rng, 200)
        pol = LocalPolicy("local-discrete", total_steps=1000, u_max=4.0)
        h = eta * a
        tau, y = h * 1000, grad / np.sqrt(a * eta * s2)
        u, _status = pol.lookup_fn(jnp)(jnp.asarray(tau), jnp.asarray(y), jnp.ones(200, bool), jnp.asarray(h))
        ref, _ = lookup(table, 4.0, h, tau, y)
        assert np.allclose(np.asarray(u), ref, rtol=1e-12, atol=1e-14)
    finally:
        jax.config.update("jax_enable_x64", False)


def test_command_line_lookup_is_the_same_function(table, capsys):
    pts = [(4.0, 30.0, 300.0, 0.3), (8.0, 0.004, 40.0, -1.2), (1.0, 1e-4, 0.5, 2.0), (2.5, 1e4, 1e4, 0.01)]
    args = ["table", "lookup", "local-discrete", "--json"]
    for um, h, tau, y in pts:
        args += ["--at", f"u_max={um},h={h},tau_remaining={tau},y={y}"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    for row, (um, h, tau, y) in zip(rows, pts):
        want, _ = lookup(table, um, h, tau, y)
        assert row["u"] == float(want) and row["status"] == "inside"


def test_beyond_the_old_h_edge_the_step_follows_the_fresh_solve(table):
    """h = 30, u_max = 4 (the old table's edge was h = 4): the fresh Bellman solve with n steps left,
    and h u* is the landing-type step z*(n, sqrt(h) y) < 1, not a multiple of the cap."""
    h, u_max = 30.0, 4.0
    sol = fresh_solve(u_max, h, 12, y_reach=2.0)
    y = np.array([-1.5, -0.4, -0.05, 0.05, 0.2, 0.7, 1.9])
    for n in (1, 3, 12):
        got, _ = lookup(table, u_max, h, n * h, y)
        ref = fresh_policy(sol, np.full(y.size, n), y)
        assert np.abs(got - ref).max() <= 2e-3, n
        assert np.all(h * got < 1.0)


def test_a_cap_above_one_does_not_bind():
    """z* = h u* never reaches 1, so the policy at caps Z = h u_max of 2 and 64 is the same (the
    large-h rule and the reference solves of the accuracy tests rest on this): to 1e-3 in z. The
    two solves differ in their bracket (33 and 257 points) and their policies by 1.1e-4 in u at
    most (seen; not traced further)."""
    h = 2.0
    lo = fresh_solve(1.0, h, 40, y_reach=12.0)
    hi = fresh_solve(32.0, h, 40, y_reach=12.0)
    u_lo, u_hi = lo.controls["u_y"], hi.controls["u_y"]
    assert (h * u_lo).max() < 1.0
    assert h * np.abs(u_lo - u_hi).max() <= 1e-3


def test_torch_lookup_is_the_same_function(table):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    eta, a, s2, grad = _points(rng, 200)
    pol = LocalPolicy("local-discrete", total_steps=1000, u_max=2.5)
    h = eta * a
    tau, y = h * 1000, grad / np.sqrt(a * eta * s2)
    t = [torch.as_tensor(v, dtype=torch.float64) for v in (tau, y, h)]
    u, _ = pol.lookup_fn(torch)(t[0], t[1], torch.ones(200, dtype=torch.bool), t[2])
    ref, _ = lookup(table, 2.5, h, tau, y)
    assert np.allclose(u.numpy(), ref, rtol=1e-12, atol=1e-14)
