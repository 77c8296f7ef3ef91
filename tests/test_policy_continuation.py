"""The optimal multiplier continued past its bounds (discrete solver) and the tables' clip rule that uses it."""

import math

import numpy as np
import pytest

from stochctl.errors import FileFormatError, InputError
from stochctl.models import get_model
from stochctl.tables import PolicyTable, TableAxis, TableValue
from stochctl.solvers import Grid
from stochctl.solvers.bellman import continuation_reach, expected_next_value, solve_discrete
from stochctl.symbolic.problem import ControlProblem


def local(h, u_max=1.0, u_min=0.0):
    return ControlProblem.from_model(get_model("local-discrete", h=h), u_max=u_max, u_min=u_min)


def grid(points, half=6.0):
    return Grid.from_domain({"y": (-half, half)}, points, "linear")


@pytest.mark.parametrize("h,u_min,u_max", [(0.5, 0.5, 1.5), (0.1, 0.0, 1.0), (2.0, 0.2, 0.4)])
def test_one_step_continuation_is_the_unclipped_closed_form(h, u_min, u_max):
    """With one step left J(u) = (1 - h u)^2 y^2 + h u^2: its only minimiser is y^2 / (1 + h y^2),
    which the continuation returns (clipped: the policy), on both sides of the bounds."""
    sol = solve_discrete(local(h, u_max, u_min), grid(241), steps=1, continuation=True)
    y = sol.grid.axes[0]
    free = y**2 / (1 + h * y**2)
    lo, hi = continuation_reach(u_min, u_max)
    w = sol.controls["continued_u_y"][0]
    inside = (free >= u_min - lo) & (free <= u_max + hi)
    assert np.max(np.abs(w[inside] - free[inside])) <= 1e-6
    assert np.all(w[free > u_max + hi] == u_max + hi)  # beyond the reach: capped there
    assert np.array_equal(np.clip(w, u_min, u_max), sol.controls["u_y"][0])
    assert (w > u_max).any() and (w < u_min - 1e-6).any() == bool(u_min > 0)


def _first_local_min_outwards(J, us):
    """Index of the first grid point, walking along ``us``, after which J increases."""
    for k in range(1, len(us)):
        if J[k] > J[k - 1]:
            return k - 1
    return len(us) - 1


def test_multi_step_continuation_is_the_nearest_minimiser_beyond_the_bound():
    """Brute force over 4001 multipliers beyond u_max: the continued value is the first local
    minimiser met walking outwards from the bound; inside (u_min, u_max) it is u* itself."""
    h, u_max, u_min = 0.3, 1.5, 0.3
    sol = solve_discrete(local(h, u_max, u_min), grid(301), steps=5, continuation=True)
    nodes = sol.grid.axes[0]
    prev = sol.values[1]  # 4 steps left
    u, w = sol.controls["u_y"][0], sol.controls["continued_u_y"][0]
    lo_reach, hi_reach = continuation_reach(u_min, u_max)
    up = np.flatnonzero(u >= u_max - 1e-7)
    down = np.flatnonzero((u <= u_min + 1e-7) & (np.abs(nodes) > 0.05))
    assert up.size >= 20 and down.size >= 5
    us_up = np.linspace(u_max, u_max + hi_reach, 4001)
    for i in up[:: max(1, up.size // 15)]:
        J = expected_next_value(prev, nodes, nodes[i], us_up, h * nodes[i], math.sqrt(h))
        k = _first_local_min_outwards(J, us_up)
        assert abs(w[i] - us_up[k]) <= 2 * (us_up[1] - us_up[0]), (nodes[i], w[i], us_up[k])
    # below u_min the multiplier can turn negative: the noise std is then |u| sqrt(h)
    us_down = np.linspace(u_min, u_min - lo_reach, 4001)
    for i in down:
        b = np.where(us_down >= 0, math.sqrt(h), -math.sqrt(h))
        J = expected_next_value(prev, nodes, nodes[i], us_down, h * nodes[i], b)
        k = _first_local_min_outwards(J, us_down)
        assert abs(w[i] - us_down[k]) <= 2 * abs(us_down[1] - us_down[0]), (nodes[i], w[i], us_down[k])
    free = (u > u_min + 1e-7) & (u < u_max - 1e-7)
    assert free.any() and np.array_equal(w[free], u[free])
    assert np.array_equal(np.clip(sol.controls["continued_u_y"], u_min, u_max), sol.controls["u_y"])


def test_continuation_has_no_kink_where_the_policy_saturates():
    """Across the h where u* reaches u_max the continued policy is smooth: interpolated linearly
    between every fourth h and clipped, it misses u* by far less than interpolating u* itself,
    whose kink sits there."""
    u_max, y = 2.0, 3.0
    hs = np.linspace(0.2, 0.6, 41)
    u, w = [], []
    for h in hs:
        sol = solve_discrete(local(h, u_max), grid(301), steps=4, continuation=True)
        i = int(np.argmin(np.abs(sol.grid.axes[0] - y)))
        u.append(sol.controls["u_y"][0][i])
        w.append(sol.controls["continued_u_y"][0][i])
    u, w = np.array(u), np.array(w)
    assert (u == u_max).any() and (u < u_max).any()
    err_u = np.abs(np.interp(hs, hs[::4], u[::4]) - u)
    err_w = np.abs(np.clip(np.interp(hs, hs[::4], w[::4]), 0.0, u_max) - u)
    assert err_w.max() < 0.25 * err_u.max(), (err_w.max(), err_u.max())


def test_continuation_is_refused_for_two_dimensional_states():
    import sympy as sp

    from stochctl.models import Model, Parameter, Player

    x1, x2, z, s = sp.symbols("x1 x2 z sigma", real=True)
    model = Model(name="bowl", description="two coordinates", loss=x1**2 / 2 + x2**2 / 2 - s * z * x1,
                  players=(Player("x", "min", (x1, x2)),), noises=(z,), parameters=(Parameter(s, 0.5, "nonnegative"),),
                  eta=0.2, domain={"x1": (-3, 3), "x2": (-3, 3)})
    with pytest.raises(InputError, match="one-dimensional"):
        solve_discrete(ControlProblem.from_model(model, u_max=1.0), Grid.from_domain({"x1": (-3, 3), "x2": (-3, 3)}, 11),
                       steps=1, continuation=True)


def clipped_table(w=None):
    """Two axes (u_max, x); ``w`` = 3 x on each row; value u = clip(w, 0, u_max) with w as its interpolant."""
    u_max = np.array([1.0, 2.0])
    x = np.linspace(-1.0, 2.0, 7)
    W = np.broadcast_to(3.0 * x, (2, 7)).copy() if w is None else w
    U = np.clip(W, 0.0, u_max[:, None])
    return PolicyTable.from_arrays(
        [TableAxis("u_max", u_max), TableAxis("x", x)],
        [TableValue("u", U, valid_range=(0.0, 2.0), interpolant="w", clip=(0.0, "u_max")),
         TableValue("w", W, valid_range=(-math.inf, math.inf), fallback=0.0)])


def test_clip_rule_lookups_are_the_clipped_interpolant(tmp_path, rng):
    t = clipped_table()
    um = rng.uniform(0.5, 2.5, 500)  # also beyond the u_max axis: the bound is the clamped coordinate
    x = rng.uniform(-1.5, 2.5, 500)
    res = t.lookup(u_max=um, x=x)
    xc = np.clip(x, -1.0, 2.0)
    assert np.allclose(res["w"], 3.0 * xc, atol=1e-12)
    assert np.allclose(res["u"], np.clip(3.0 * xc, 0.0, np.clip(um, 1.0, 2.0)), atol=1e-12)
    # the clipped policy's own nodes, interpolated, would cut the kink at x = u_max / 3
    naive = np.interp(0.3, t.axis("x").breakpoints, t["u"][0])
    assert abs(t.lookup(u_max=1.0, x=0.3)["u"] - 0.9) <= 1e-12 and abs(naive - 0.9) > 0.05
    for k in range(20):
        v, status = t.lookup_point((um[k], x[k]), "u")
        assert v == pytest.approx(float(res["u"][k]), abs=1e-12)
    nan = t.lookup(u_max=np.nan, x=0.5)
    assert nan["u"] == 0.0 and nan.status == 2
    path = t.save(tmp_path / "t.npz")
    back = PolicyTable.load(path)
    assert back.value("u").interpolant == "w" and back.value("u").clip == (0.0, "u_max")
    assert back.checksum == t.checksum
    assert np.array_equal(back.lookup(u_max=um, x=x)["u"], res["u"])


def test_clip_rule_in_jax_matches_numpy(rng):
    pytest.importorskip("jax")
    from stochctl.tables._jax_lookup import jax_table_lookup

    import jax

    jax.config.update("jax_enable_x64", True)
    t = clipped_table()
    um, x = rng.uniform(0.5, 2.5, 200), rng.uniform(-1.5, 2.5, 200)
    got, status = jax_table_lookup(t, "u")(um, x)
    assert np.allclose(np.asarray(got), t.lookup(u_max=um, x=x)["u"], atol=1e-12)


def test_tables_without_rules_keep_their_format_and_checksum():
    """The shipped continuous table has no rule: its header and checksum are those it was saved with."""
    t = PolicyTable.shipped("local-quadratic")
    assert all(v.interpolant is None and v.clip is None for v in t.values)
    assert "interpolant" not in t._header()["values"][0]


@pytest.mark.parametrize("change,match", [
    (dict(interpolant="nope"), "must name another value"),
    (dict(interpolant="u"), "must name another value"),
    (dict(clip=(0.0, "nope")), "not an axis"),
    (dict(clip=(0.0, math.nan)), "finite numbers or axis names"),
    (dict(clip=(0.0,)), "pair"),
])
def test_bad_rules_are_one_clear_error(change, match):
    x = np.linspace(0.0, 1.0, 3)
    kw = dict(valid_range=(0.0, 1.0), interpolant="w", clip=(0.0, 1.0))
    kw.update(change)
    with pytest.raises(InputError, match=match):
        PolicyTable.from_arrays([TableAxis("x", x)], [TableValue("u", x, **kw), TableValue("w", x)])


def test_data_must_equal_the_clipped_interpolant():
    W = np.broadcast_to(3.0 * np.linspace(-1.0, 2.0, 7), (2, 7)).copy()
    t = clipped_table(W)
    U = t["u"].copy()
    U[1, 3] += 0.01
    with pytest.raises(InputError, match=r"differs from its clipped interpolant 'w' by 0.01 at node \(1, 3\)"):
        PolicyTable.from_arrays(list(t.axes), [TableValue("u", U, valid_range=(0.0, 2.0), interpolant="w",
                                                          clip=(0.0, "u_max")), t.value("w")])


def test_a_file_with_an_unknown_value_key_is_refused(tmp_path):
    import json

    from stochctl.tables import _checksum

    path = clipped_table().save(tmp_path / "t.npz")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(str(arrays["header"]))
    header["values"][0]["smooth"] = True
    content = {k: v for k, v in header.items() if k != "checksum"}
    header["checksum"] = _checksum(content, {k: v for k, v in arrays.items() if k != "header"})
    arrays["header"] = np.array(json.dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(FileFormatError, match=r"unknown header keys \['smooth'\]"):
        PolicyTable.load(tmp_path / "bad.npz")
