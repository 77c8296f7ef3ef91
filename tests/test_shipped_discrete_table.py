"""The packaged table of the discrete local model against independent answers."""

import numpy as np
import pytest

from stochctl.tables.shipped_discrete import CONTINUED, policy_at, policy_points, solve_slice, tau_node_values
from stochctl.tables import load_table


@pytest.fixture(scope="module")
def table():
    return load_table("local-discrete")


def test_axes_and_value_are_the_documented_ones(table):
    assert list(table.axis_names) == ["u_max", "h", "tau_remaining", "y"]
    assert list(table.value_names) == ["u", "u_continued"]
    rule = table.value("u")
    assert rule.interpolant == "u_continued" and rule.clip == (0.0, "u_max")
    u_max = table.axis("u_max").breakpoints[:, None, None, None]
    assert np.array_equal(table["u"], np.clip(table["u_continued"], 0.0, u_max))
    assert table["u"].min() >= 0.0 and (table["u"] <= u_max).all()
    assert {1.0, 2.0, 4.0, 8.0} <= set(table.axis("u_max").breakpoints)
    h = table.axis("h").breakpoints
    assert h[0] <= 1e-3 and h[-1] >= 4.0
    assert np.all(np.diff(np.log(h)) > 0) and np.diff(np.log(h)).max() <= np.log(2.0) + 1e-12
    tau = table.axis("tau_remaining").breakpoints
    assert tau[0] == 0.0 and tau[-1] == 8.0
    assert table.metadata["build_command"] == "stochctl table build-local --discrete"


def test_one_step_left_is_the_closed_form_at_every_node(table):
    """At an h node with one step left (tau_remaining = h a tau node), u = min(u_max, y^2 / (1 + h y^2)).

    Exact (1e-6) at the y breakpoints that are nodes of the solves (multiples of 0.02); at the
    others the table holds the solve's linear interpolation of the continued policy between its
    nodes, clipped: there it equals the unclipped closed form interpolated linearly on the 0.02
    grid, then clipped.
    """
    fine = np.linspace(-6.0, 6.0, 601)
    tau_nodes = table.axis("tau_remaining").breakpoints
    y = table.axis("y").breakpoints
    on_solve_grid = np.isclose(np.round(y / 0.02), y / 0.02, atol=1e-9)
    for u_max in table.axis("u_max").breakpoints:
        for h in table.axis("h").breakpoints:
            if not np.any(np.isclose(tau_nodes, h)):
                continue
            got = np.asarray(table.lookup(u_max=np.full_like(y, u_max), h=np.full_like(y, h),
                                          tau_remaining=np.full_like(y, h), y=y)["u"])
            exact = np.minimum(u_max, y**2 / (1 + h * y**2))
            interpolated = np.minimum(u_max, np.interp(y, fine, fine**2 / (1 + h * fine**2)))
            assert np.abs(got - exact)[on_solve_grid].max() <= 1e-6, (u_max, h)
            assert np.abs(got - interpolated).max() <= 1e-6, (u_max, h)


def test_the_policy_never_steps_past_the_explosion_threshold(table):
    """h u* <= 1 at every node, whatever u_max allows: never past the minimum along the direction
    (u = 1/h + e has the mean distance of 1/h - e and more noise), so never near the explosion
    threshold h u = 2 beyond which the constant u_max explodes."""
    h = table.axis("h").breakpoints[None, :, None, None]
    step = h * table["u"]
    assert step.max() <= 1.0 + 1e-9
    # and where the bound would explode, the policy does not take it
    u_max = table.axis("u_max").breakpoints[:, None, None, None]
    beyond = np.broadcast_to(h * u_max > 2.0, step.shape)
    assert beyond.any() and (table["u"] < np.broadcast_to(u_max, step.shape))[beyond].all()


@pytest.mark.slow
def test_lookups_between_h_nodes_match_direct_solves(table):
    """Independent of the build's own check: fresh solves at h between nodes, at random (n, y).

    The stated error (metadata) is at most 0.02 at interior points (those whose table cell does not
    straddle the edge of the zone near y = 0 where u* = 0): measured 0.013 over 6400 points. Here,
    at other h and points, saturated cells included (where interpolating u* itself would miss by up
    to 0.09 at u_max = 8): 99th percentile at most 0.01; the largest seen is 0.023 (2 to 4 steps
    left at h = 0.07, u_max = 8, where u* changes fast with the steps left), so the bound is 0.025.
    """
    err = table.metadata["interpolation_error"]
    assert err["interior_u_max_abs"] <= 0.02 and err["interior_points"] >= 0.9 * err["points"]
    assert err["u_p99_abs"] <= 0.015 and err["u_mean_abs"] <= 0.003
    rng = np.random.default_rng(11)
    hs = table.axis("h").breakpoints
    for u_max, h in ((4.0, 0.17), (8.0, 0.07), (1.0, 1.3), (2.0, 0.3)):
        sol = solve_slice(u_max, h)
        n = rng.integers(1, sol.n_steps + 1, 400)
        y = rng.uniform(-5, 5, 400)
        ref = policy_points(sol, n, y)
        got = np.asarray(table.lookup(u_max=np.full(400, u_max), h=np.full(400, h), tau_remaining=n * h, y=y)["u"])
        e = np.abs(got - ref)
        # the edge of the zone u* = 0: any of the cell's corners (h nodes, tau and y breakpoints) in it
        ih = int(np.searchsorted(hs, h) - 1)
        tau_bp, y_bp = table.axis("tau_remaining").breakpoints, table.axis("y").breakpoints
        it = np.clip(np.searchsorted(tau_bp, n * h) - 1, 0, tau_bp.size - 2)
        j = np.clip(np.searchsorted(y_bp, y) - 1, 0, y_bp.size - 2)
        corners = np.array([policy_points(sol, np.maximum(1, np.rint(tau_bp[it + dt] / h)).astype(int), y_bp[j + dy])
                            for dt in (0, 1) for dy in (0, 1)])
        interior = corners.min(axis=0) >= 1e-3
        assert interior.mean() >= 0.8
        assert e[interior].max() <= 0.025 and np.quantile(e[interior], 0.99) <= 0.01, (u_max, h, e[interior].max())
        assert np.quantile(e, 0.99) <= 0.03 and e.mean() <= 0.005, (u_max, h, np.quantile(e, 0.99), e.mean())
        saturated = interior & (ref >= u_max - 1e-6)  # u* can reach u_max only where h u_max < 1
        if h * u_max < 1.0:
            assert saturated.sum() >= 20


def test_continuous_limit_at_the_smallest_h(table):
    """u_max = 1 at h = 2^-10: the continuous table local-quadratic, to the first-order difference
    O(h) away from the policy's front near y = 0 (measured: mean 0.005, largest 0.05 for |y| >= 0.5)."""
    agree = table.metadata["continuous_agreement"]
    assert agree["u_mean_abs"] <= 0.01 and agree["u_max_abs_y_ge_0.5"] <= 0.06
    cont = load_table("local-quadratic")
    y = np.linspace(0.5, 5.0, 91)
    for tau in (0.5, 2.0, 7.0):
        d = np.asarray(table.lookup(u_max=np.ones_like(y), h=np.full_like(y, 2.0**-10),
                                    tau_remaining=np.full_like(y, tau), y=y)["u"])
        c = np.asarray(cont.lookup(tau_remaining=np.full_like(y, tau), y=y)["u"])
        assert np.max(np.abs(d - c)) <= 0.06, tau


@pytest.mark.parametrize("u_max,h_index", [(4.0, 40), (8.0, 30), (1.0, 46)])
def test_packaged_slices_are_reproduced_by_the_current_solver(table, u_max, h_index):
    """A slice of the packaged table recomputed now equals the shipped one (the file comes from this code).

    Equal to the refinement's own accuracy: the minimiser stops within ``xatol`` = 1e-8 in u, so another
    compiler or library version (round-off in the Newton/Brent steps) may stop elsewhere inside it
    (seen: 1.6e-8 with numba 0.68 / numpy 2.4 against the build's toolchain); any change of the
    scheme moves the values by far more."""
    h = float(table.axis("h").breakpoints[h_index])
    i = int(np.flatnonzero(table.axis("u_max").breakpoints == u_max)[0])
    sol = solve_slice(u_max, h, continuation=True)
    tau = table.axis("tau_remaining").breakpoints
    fresh = tau_node_values(sol, h, tau, table.axis("y").breakpoints, key=CONTINUED)
    tol = 5 * sol.diagnostics["xatol"]
    assert np.max(np.abs(fresh - table["u_continued"][i, h_index])) <= tol
    assert np.max(np.abs(np.clip(fresh, 0.0, u_max) - table["u"][i, h_index])) <= tol


@pytest.mark.parametrize("u_max,h_index", [(8.0, 12), (4.0, 20), (2.0, 26), (1.0, 34)])
def test_lookups_at_whole_steps_reproduce_the_n_step_policy(table, u_max, h_index):
    """At an h node, tau_remaining = n h gives the policy with n steps left (n = 1..5) at the y
    breakpoints, to the fit's 1e-3 weight (measured at most 3e-3), although n h falls between tau
    breakpoints (whose spacing, 1/16, is below h)."""
    h = float(table.axis("h").breakpoints[h_index])
    sol = solve_slice(u_max, h)
    y = table.axis("y").breakpoints
    for n in range(1, 6):
        ref = policy_at(sol, np.array([n]), y)[0]
        got = np.asarray(table.lookup(u_max=np.full_like(y, u_max), h=np.full_like(y, h),
                                      tau_remaining=np.full_like(y, n * h), y=y)["u"])
        assert np.max(np.abs(got - ref)) <= 5e-3, (n, np.max(np.abs(got - ref)))
