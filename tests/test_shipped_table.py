"""The packaged local-model table: file and schema, agreement with a fresh
low-resolution solve (tolerance from that solve's own refinement error), the
closed form at the end of training, symmetry, stationarity, and a
deterministic rebuild by one command."""

import json
import math
import shutil
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

import stochctl
from stochctl.cli import main as cli_main
from stochctl.errors import FileFormatError
from stochctl.policy import LocalPolicy, PolicyTable
from stochctl.tables import shipped
from stochctl.tables import packaged_table_path

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def table():
    return PolicyTable.shipped("local-quadratic")


def test_file_is_packaged_validated_and_small(table, tmp_path):
    path = packaged_table_path("local-quadratic")
    assert path == shipped.default_path() and path.stat().st_size < 1_000_000
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch(str(path.relative_to(ROOT / "stochctl")), pat) for pat in package_data["stochctl"])
    with np.load(path, allow_pickle=False) as npz:  # the stored checksum is the one load() verified
        assert json.loads(str(npz["header"]))["checksum"] == table.checksum
    # one changed multiplier (inside its valid range) is refused, not loaded as another table
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    u = arrays["value_0"].copy()
    u[70, 200] = 0.5 * u[70, 200]
    arrays["value_0"] = u
    np.savez_compressed(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(FileFormatError, match="checksum mismatch"):
        PolicyTable.load(tmp_path / "tampered.npz")


def test_schema_and_metadata(table):
    assert table.axis_names == ("tau_remaining", "y") and table.value_names == ("u", "V")
    tau, y = (a.breakpoints for a in table.axes)
    assert tau[0] == 0.0 and tau[-1] == shipped.TAU_MAX and y[0] == -6.0 and y[-1] == 6.0
    np.testing.assert_array_equal(tau, shipped.table_axes()[0])
    np.testing.assert_array_equal(y, shipped.table_axes()[1])
    u = table.value("u")
    assert u.valid_range == (0.0, 1.0) and u.fallback == 0.0 and u.units == "multiplier of eta"
    assert math.isnan(table.value("V").fallback)
    assert table.axis("tau_remaining").estimator == "a*eta*(K-k)"
    assert table.axis("y").estimator == "|grad|/sqrt(a*eta*s^2)"
    assert all(a.extrapolation == ("clip", "clip") for a in table.axes)
    meta = table.metadata
    assert meta["problem"] == "local-quadratic" and meta["scheme"] == "implicit"
    assert meta["package_version"] == stochctl.__version__ and meta["history"]
    assert meta["grid"]["points"] == shipped.STANDARD.points and meta["solver"]["dt"] == shipped.STANDARD.dt
    ref = meta["refinement_error"]
    assert ref["reference"]["h"] == shipped.STANDARD.h / 2
    assert 0 < ref["u_mean_abs"] < 5e-3 and ref["u_p99_abs"] < 0.05 and ref["V_max_rel"] < 0.01
    assert meta["stationarity"]["checked_to"] >= 2 * shipped.TAU_MAX
    assert meta["stationarity"]["max_change_u"] <= 1e-3


def test_symmetry_and_exact_facts(table):
    y = table.axis("y").breakpoints
    U, V = table["u"], table["V"]
    np.testing.assert_array_equal(U, U[:, ::-1])  # u*, V are even in y
    np.testing.assert_array_equal(V, V[:, ::-1])
    # tau_remaining = 0: V = y^2 (terminal cost); the last step's policy is the clipped
    # ratio y V_y / V_yy = y^2 up to O(h + dt)
    np.testing.assert_allclose(V[0], y**2, atol=1e-6)
    np.testing.assert_allclose(U[0], np.minimum(1.0, y**2), atol=5e-3)
    # the ratio saturates for |y| >= 1 at every time to go, so clamping beyond |y| = 6 is exact
    assert np.all(U[:, np.abs(y) >= 1.0] == 1.0)
    assert np.all(U[:, y == 0.0] == 0.0)  # no drift to exploit at the minimum: u* = 0
    # V is non-increasing in the time to go (waiting with u = 0 is allowed)
    assert np.all(np.diff(V, axis=0) <= 1e-9)


def solve_full_domain(points, dt, horizon=shipped.TAU_MAX):
    """The local model on [-6, 6] (the model's own boundary), independent of the mirrored build."""
    from stochctl.models import get_model
    from stochctl.solvers import Grid, solve
    from stochctl.symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model("local-quadratic"), horizon=horizon)
    grid = Grid.from_domain({"y": (-6.0, 6.0)}, points, "linear")
    return solve(problem, grid, scheme="implicit", dt=dt, progress=False, num_threads=1)


def test_matches_a_fresh_low_resolution_solve(table):
    """|table - u_h| against |u_2h - u_h|: for a first-order scheme the latter estimates the
    error of u_h, so the table (whose own error is in its metadata) must be within both."""
    fine, coarse = solve_full_domain(1501, 0.025), solve_full_domain(751, 0.05)
    y = coarse.grid.axes[0]
    keep = np.abs(y) <= 1.5  # u* = 1 beyond; keep the comparison where the policy varies
    tau = shipped.TAU_MAX - coarse.policy_times  # common nodes: every other node and level of `fine`
    u_h = fine.controls["u_y"][::2, ::2][:, keep]
    u_2h = coarse.controls["u_y"][:, keep]
    v_h, v_2h = fine.values[:-1:2, ::2][:, keep], coarse.values[:-1, keep]
    T, Y = np.meshgrid(tau, y[keep], indexing="ij")
    err = table.metadata["refinement_error"]

    def distances(shift=0.0):
        got = table.lookup(tau_remaining=T + shift, y=Y)
        return np.abs(got["u"] - u_h).mean(), np.abs(got["V"] - v_h).max()

    tol_u = 1.5 * np.abs(u_2h - u_h).mean() + err["u_mean_abs"]
    tol_v = 1.5 * np.abs(v_2h - v_h).max() + err["V_max_abs"]
    du, dv = distances()
    assert du <= tol_u and dv <= tol_v
    # the tolerances are tight enough to catch a table that is off by 0.1 in time to go
    du, dv = distances(0.1)
    assert du > tol_u and dv > tol_v


def test_policy_is_stationary_beyond_the_table(table):
    """u* = 1 except inside a front |y| < delta(tau_r) that shrinks like e^{-tau_r} (the
    e^{-tau_r} tail of the Ornstein-Uhlenbeck hitting time of 0): fitted on a fresh solve,
    the front passes the first y breakpoint before TAU_MAX, so no tabulated u* changes
    beyond it and clamping is exact at the breakpoints."""
    sol = solve_full_domain(6001, 0.02, horizon=6.0)
    y, U = sol.grid.axes[0], sol.controls["u_y"]
    tau = 6.0 - sol.policy_times
    front = np.array([y[y > 0][np.argmax(u[y > 0] >= 0.5)] for u in U])
    fit = (tau >= 1.0) & (tau <= 4.5)
    slope, intercept = np.polyfit(tau[fit], np.log(front[fit]), 1)
    assert -1.1 < slope < -0.9
    first = table.axis("y").breakpoints
    first = first[first > 0][0]
    assert math.exp(intercept + slope * shipped.TAU_MAX) < first
    rows = table.axis("tau_remaining").breakpoints >= 7.5
    assert np.all(table["u"][rows] == table["u"][-1])
    beyond = table.lookup(tau_remaining=[8.0, 50.0], y=[0.3, 0.3])
    assert beyond["u"][0] == beyond["u"][1] and beyond.status.tolist() == [0, 1]


def test_local_policy_and_cli_use_the_packaged_table(table, capsys):
    a, eta, s2, g, K, k = 2.0, 0.05, 3.0, 0.4, 100, 98
    policy = LocalPolicy("local-quadratic", total_steps=K, eta=eta)
    tau, y = a * eta * (K - k), g / math.sqrt(a * eta * s2)
    expect = float(table.lookup(tau_remaining=tau, y=y)["u"])
    assert policy(k, {"a": a, "s2": s2, "grad_norm": g}) == expect and 0.0 < expect < 1.0
    assert cli_main(["table", "lookup", "local-quadratic", "--at", "tau_remaining=1,y=0.5", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    res = table.lookup(tau_remaining=1.0, y=0.5)
    assert row == {"tau_remaining": 1.0, "y": 0.5, "u": float(res["u"]), "V": float(res["V"]), "status": "inside"}
    assert cli_main(["table", "info", "local-quadratic", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checksum"] == table.checksum and info["checksum_verified"]


def test_rebuild_is_deterministic_apart_from_the_creation_time(tmp_path, capsys):
    out = tmp_path / "lq.npz"
    assert cli_main(["table", "build-local", "--quick", "--no-refine", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    a = PolicyTable.load(out)
    b = shipped.build_local_table(shipped.QUICK, refine=False)
    for name in ("u", "V"):
        np.testing.assert_array_equal(a[name], b[name])
    ma, mb = a.metadata, b.metadata
    for m in (ma, mb):
        m.pop("created")
        for h in m["history"]:
            h.pop("time")
    assert ma == mb


@pytest.mark.slow
def test_standard_rebuild_reproduces_the_packaged_arrays(table, tmp_path):
    """The packaged arrays are what ``stochctl table build-local`` computes (without the
    refinement solve, which only adds metadata)."""
    rebuilt = shipped.build_local_table(shipped.STANDARD, refine=False)
    for name in ("u", "V"):
        np.testing.assert_allclose(rebuilt[name], table[name], rtol=0, atol=1e-12)
    copy = tmp_path / "copy.npz"
    shutil.copy(packaged_table_path("local-quadratic"), copy)
    assert PolicyTable.load(copy).checksum == table.checksum


def test_table_files_get_the_usual_permissions(table, tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = table.save(tmp_path / "t.npz")
    finally:
        os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert os.stat(packaged_table_path("local-quadratic")).st_mode & 0o044 == 0o044  # readable by all
