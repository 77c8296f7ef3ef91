"""PolicyTable: interpolation against exact multilinear functions and scipy,
clamping and NaN accounting, file round trips and rejection of damaged files, CSV."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator

from stochctl.cli import main as cli_main
from stochctl.errors import FileFormatError, InputError
from stochctl.policy import PolicyTable, TableAxis, TableValue
from stochctl.tables import FORMAT_VERSION, _canonical_json, _checksum


def random_axis(rng, n, lo, hi):
    """Strictly increasing, deliberately non-uniform breakpoints."""
    inner = np.sort(rng.uniform(lo, hi, n - 2))
    return np.unique(np.concatenate([[lo], inner, [hi]]))


def clipped_ratio_table(u_min=0.0, u_max=1.0, **axis_kw):
    """The explicit rule u = clip(A/B) for V = y^2/(1 + tau): A/B = y^2 / (1 + tau)."""
    tau = np.linspace(0.0, 4.0, 41)
    y = np.linspace(0.0, 5.0, 51)
    U = np.clip(y[None, :] ** 2 / (1.0 + tau[:, None]), u_min, u_max)
    return PolicyTable.from_arrays(
        [TableAxis("tau_remaining", tau, long_name="time to go", estimator="a*eta*(K-k)", **axis_kw),
         TableAxis("y", y, long_name="scaled distance")],
        [TableValue("u", U, valid_range=(u_min, u_max))],
        metadata={"problem": "local-quadratic", "eta": 1.0, "horizon": 4.0})


def multilinear_function(rng, d):
    """f(x) = sum over subsets S of c_S prod_{j in S} x_j: affine in each coordinate."""
    subsets = [tuple(j for j in range(d) if m >> j & 1) for m in range(1 << d)]
    coef = rng.normal(size=len(subsets))

    def f(*xs):
        out = 0.0
        for c, s in zip(coef, subsets):
            term = c
            for j in s:
                term = term * xs[j]
            out = out + term
        return out

    return f


@pytest.mark.parametrize("d", [1, 2, 3])
def test_multilinear_functions_are_reproduced_exactly(rng, d):
    axes = [random_axis(rng, n, -1.0 - j, 2.0 + j) for j, n in zip(range(d), (7, 9, 5))]
    f = multilinear_function(rng, d)
    grids = np.meshgrid(*axes, indexing="ij")
    table = PolicyTable.from_arrays([(f"x{j}", a) for j, a in enumerate(axes)],
                                    {"v": f(*grids)}, valid_range=(-np.inf, np.inf))
    q = np.column_stack([rng.uniform(a[0], a[-1], 2000) for a in axes])
    res = table.lookup(q)
    np.testing.assert_allclose(res["v"], f(*q.T), rtol=1e-12, atol=1e-12)
    assert res.clamped == 0 and res.nan == 0
    # at the nodes the table returns the nodes' values
    nodes = np.stack([g.reshape(-1) for g in grids], axis=1)
    np.testing.assert_allclose(table.lookup(nodes)["v"], f(*nodes.T), rtol=1e-13, atol=1e-13)
    # outside: the value at the clamped point
    far = q * 10.0
    clamped = np.column_stack([np.clip(far[:, j], a[0], a[-1]) for j, a in enumerate(axes)])
    np.testing.assert_allclose(table.lookup(far)["v"], f(*clamped.T), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_matches_scipy_regular_grid_interpolator(rng, d):
    axes = [random_axis(rng, n, 0.0, 1.0 + j) for j, n in zip(range(d), (30, 17, 11))]
    data = rng.normal(size=tuple(a.size for a in axes))
    table = PolicyTable.from_arrays([(f"x{j}", a) for j, a in enumerate(axes)],
                                    [TableValue("v", data, units="1", valid_range=(-10, 10)),
                                     TableValue("w", np.tanh(data), units="1", valid_range=(-1, 1))])
    q = np.column_stack([rng.uniform(a[0], a[-1], 5000) for a in axes])
    res = table.lookup(q)
    np.testing.assert_allclose(res["v"], RegularGridInterpolator(axes, data)(q), rtol=0, atol=1e-12)
    np.testing.assert_allclose(res["w"], RegularGridInterpolator(axes, np.tanh(data))(q), rtol=0, atol=1e-12)
    only_w = table.lookup(q, names=["w"])
    assert list(only_w.values) == ["w"]
    np.testing.assert_array_equal(only_w["w"], res["w"])


def test_clamping_is_counted_per_axis_and_side(rng):
    table = clipped_ratio_table()
    tau = np.array([-1.0, 0.5, 9.0, 2.0, np.inf, 1.0, 3.0])
    y = np.array([1.0, -2.0, 7.0, 2.5, 1.0, 1.0, -np.inf])
    res = table.lookup(tau_remaining=tau, y=y)
    # inside: (2.0, 2.5), (1.0, 1.0); outside: the other five
    assert res.clamped == 5 and res.nan == 0
    assert res.by_axis == {"tau_remaining": (1, 2), "y": (2, 1)}
    np.testing.assert_array_equal(res.status, [1, 1, 1, 0, 1, 0, 1])
    exact = np.clip(np.clip(y, 0, 5) ** 2 / (1 + np.clip(tau, 0, 4)), 0, 1)
    np.testing.assert_allclose(res["u"], exact, atol=5e-3)  # grid error of u = y^2/(1+tau)
    table.lookup(tau_remaining=9.0, y=1.0)
    assert table.stats.queries == 8 and table.stats.clamped == 6
    assert table.stats.by_axis["tau_remaining"] == [1, 3]
    table.stats.reset()
    assert table.stats.as_dict() == {"queries": 0, "clamped": 0, "nan": 0,
                                     "by_axis": {"tau_remaining": [0, 0], "y": [0, 0]}}


def test_nan_queries_return_the_safe_value_and_are_counted():
    table = clipped_ratio_table(u_min=0.1, u_max=0.9)
    res = table.lookup(tau_remaining=[np.nan, 1.0, 1.0, np.nan], y=[1.0, np.nan, 2.0, np.nan])
    np.testing.assert_array_equal(res["u"][[0, 1, 3]], [0.1, 0.1, 0.1])  # u_min
    assert res.nan == 3 and res.clamped == 0
    np.testing.assert_array_equal(res.status, [2, 2, 0, 2])
    custom = PolicyTable.from_arrays(table.axes, [TableValue("u", table["u"], valid_range=(0.1, 0.9),
                                                             fallback=0.5)])
    assert custom.lookup(tau_remaining=np.nan, y=1.0)["u"] == 0.5
    assert custom.stats.nan == 1


def test_error_extrapolation_names_the_point():
    table = clipped_ratio_table(extrapolation=("error", "clip"))
    assert table.lookup(tau_remaining=99.0, y=1.0).clamped == 1  # upper side clips
    with pytest.raises(InputError, match=r"tau_remaining=-0\.5, y=1\.0.*'error'"):
        table.lookup(tau_remaining=[1.0, -0.5], y=[1.0, 1.0])


def test_lookup_argument_forms_and_errors():
    table = clipped_ratio_table()
    a = table.lookup(tau_remaining=np.array([[0.5], [1.5]]), y=np.array([1.0, 2.0, 3.0]))
    assert a["u"].shape == (2, 3)
    b = table.lookup({"tau_remaining": 1.5, "y": 3.0})
    assert b["u"].shape == () and b["u"] == a["u"][1, 2]
    c = table.lookup(np.array([1.5, 3.0]))
    assert c["u"] == b["u"]
    with pytest.raises(InputError, match="missing \\['y'\\]"):
        table.lookup(tau_remaining=1.0)
    with pytest.raises(InputError, match="unknown \\['z'\\]"):
        table.lookup(tau_remaining=1.0, y=1.0, z=2.0)
    with pytest.raises(InputError, match="shape"):
        table.lookup(np.ones((4, 3)))
    with pytest.raises(InputError, match="unknown value 'v'"):
        table.lookup(tau_remaining=1.0, y=1.0, names=["v"])


@pytest.mark.parametrize("bad, match", [
    (dict(axes=[("t", [0.0, 1.0, 1.0]), ("y", [0, 1])]), "strictly increasing"),
    (dict(axes=[("t", [0.0, np.nan, 2.0]), ("y", [0, 1])]), "finite"),
    (dict(axes=[("t", [0.0]), ("y", [0, 1])]), "at least 2"),
    (dict(axes=[("t", [0.0, 1.0, 2.0])]), "shape"),
    (dict(values={"u": np.full((3, 2), 1.5)}), r"must lie in \[0.0, 1.0\]"),
    (dict(values={"u": np.full((3, 2), np.nan)}), "non-finite"),
    (dict(values={"y": np.zeros((3, 2))}), "distinct"),
    (dict(axes=[("t", [0.0, 1.0, 2.0]), ("bad name", [0, 1])]), "identifier"),
])
def test_invalid_tables_are_refused(bad, match):
    kw = dict(axes=[("t", [0.0, 1.0, 2.0]), ("y", [0.0, 1.0])], values={"u": np.zeros((3, 2))})
    kw.update(bad)
    with pytest.raises(InputError, match=match):
        PolicyTable.from_arrays(kw["axes"], kw["values"])


def test_axis_and_value_options_are_validated():
    with pytest.raises(InputError, match=r"\('clip', 'error'\)"):
        TableAxis("t", [0, 1], extrapolation="linear")
    with pytest.raises(InputError, match="fallback"):
        TableValue("u", [0.5, 0.5], valid_range=(0, 1), fallback=2.0)
    with pytest.raises(InputError, match="lo < hi"):
        TableValue("u", [0.5, 0.5], valid_range=(1, 0))
    with pytest.raises(InputError, match="JSON-like"):
        PolicyTable.from_arrays([("t", [0, 1])], {"u": [0, 1]}, metadata={"x": object()})


def test_metadata_is_canonical_and_immutable():
    table = clipped_ratio_table()
    meta = table.metadata
    assert meta["problem"] == "local-quadratic" and meta["eta"] == 1.0
    assert meta["package_version"] and meta["created"]
    assert meta["history"][-1]["event"] == "created from arrays"
    assert set(meta) >= {"problem", "parameters", "eta", "horizon", "scheme", "grid", "refinement_error",
                         "package_version", "created", "history"}
    meta["eta"] = 5.0
    assert table.metadata["eta"] == 1.0
    with pytest.raises(Exception):
        table["u"][0, 0] = 3.0  # arrays are read-only


def test_save_load_round_trip(tmp_path, rng):
    table = clipped_ratio_table(extrapolation=("clip", "error"))
    path = table.save(tmp_path / "policy")  # no suffix added
    assert path == tmp_path / "policy" and path.is_file()
    back = PolicyTable.load(path)
    assert back.checksum == table.checksum
    assert back.metadata == table.metadata
    for a, b in zip(table.axes, back.axes):
        np.testing.assert_array_equal(a.breakpoints, b.breakpoints)
        assert (a.name, a.units, a.long_name, a.estimator, a.extrapolation) == \
            (b.name, b.units, b.long_name, b.estimator, b.extrapolation)
    v, w = table.value("u"), back.value("u")
    np.testing.assert_array_equal(v.data, w.data)
    assert (v.units, v.valid_range, v.fallback) == (w.units, w.valid_range, w.fallback)
    q = np.column_stack([rng.uniform(0, 4, 100), rng.uniform(0, 5, 100)])
    np.testing.assert_array_equal(back.lookup(q)["u"], table.lookup(q)["u"])
    # unbounded ranges and NaN fallbacks survive the JSON header
    vt = PolicyTable.from_arrays([("x", [0.0, 1.0])], [TableValue("V", [-3.0, 7.0], units="cost",
                                                                   valid_range=(-np.inf, np.inf))])
    vb = PolicyTable.load(vt.save(tmp_path / "v.npz"))
    assert vb.value("V").valid_range == (-np.inf, np.inf) and np.isnan(vb.value("V").fallback)
    assert vb.checksum == vt.checksum


def write_npz(path, header, arrays):
    with open(path, "wb") as f:
        np.savez(f, header=np.array(_canonical_json(header)), **arrays)


def parts(table):
    return table._header(with_checksum=False), dict(table._arrays())


def resign(header, arrays):
    header = dict(header)
    header.pop("checksum", None)
    header["checksum"] = _checksum(header, arrays)
    return header


def test_corrupted_files_never_load_as_a_different_table(tmp_path, rng):
    table = clipped_ratio_table()
    good = table.save(tmp_path / "good.npz").read_bytes()
    positions = np.unique(np.concatenate([rng.integers(0, len(good), 300), np.arange(0, len(good), 97)]))
    detected = 0
    for pos in positions:
        bad = bytearray(good)
        bad[pos] ^= 0xFF
        p = tmp_path / "bad.npz"
        p.write_bytes(bytes(bad))
        try:
            back = PolicyTable.load(p)
        except FileFormatError:
            detected += 1
            continue
        # a flip in an unused zip field may leave the content intact: then it must be identical
        assert back.checksum == table.checksum
        np.testing.assert_array_equal(back["u"], table["u"])
    assert detected >= 0.9 * len(positions)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_files_are_rejected(tmp_path, fraction):
    good = clipped_ratio_table().save(tmp_path / "good.npz").read_bytes()
    p = tmp_path / "cut.npz"
    p.write_bytes(good[: int(len(good) * fraction)])
    with pytest.raises(FileFormatError):
        PolicyTable.load(p)


def test_tampered_arrays_or_header_fail_the_checksum(tmp_path):
    table = clipped_ratio_table()
    header, arrays = parts(table)
    signed = resign(header, arrays)
    arrays2 = dict(arrays)
    u = arrays2["value_0"].copy()
    u[3, 7] = 0.5 * u[3, 7] + 0.25
    arrays2["value_0"] = u
    write_npz(tmp_path / "a.npz", signed, arrays2)
    with pytest.raises(FileFormatError, match="checksum mismatch"):
        PolicyTable.load(tmp_path / "a.npz")
    h2 = json.loads(json.dumps(signed))
    h2["metadata"]["eta"] = 2.0
    write_npz(tmp_path / "b.npz", h2, arrays)
    with pytest.raises(FileFormatError, match="checksum mismatch"):
        PolicyTable.load(tmp_path / "b.npz")
    # correctly re-signed but with content outside the valid range: still refused
    u[0, 0] = 1.5
    write_npz(tmp_path / "c.npz", resign(header, arrays2), arrays2)
    with pytest.raises(FileFormatError, match=r"must lie in \[0.0, 1.0\]"):
        PolicyTable.load(tmp_path / "c.npz")
    arrays3 = dict(arrays)
    arrays3["axis_1"] = arrays["axis_1"][::-1].copy()
    write_npz(tmp_path / "d.npz", resign(header, arrays3), arrays3)
    with pytest.raises(FileFormatError, match="strictly increasing"):
        PolicyTable.load(tmp_path / "d.npz")


def test_newer_or_foreign_formats_are_rejected(tmp_path):
    table = clipped_ratio_table()
    header, arrays = parts(table)
    newer = dict(header, format_version=FORMAT_VERSION + 1)
    write_npz(tmp_path / "new.npz", resign(newer, arrays), arrays)
    with pytest.raises(FileFormatError, match="newer"):
        PolicyTable.load(tmp_path / "new.npz")
    foreign = dict(header, format="something-else")
    write_npz(tmp_path / "f.npz", resign(foreign, arrays), arrays)
    with pytest.raises(FileFormatError, match="not a policy table"):
        PolicyTable.load(tmp_path / "f.npz")
    extra = dict(arrays, axis_9=np.zeros(3))
    write_npz(tmp_path / "x.npz", resign(header, extra), extra)
    with pytest.raises(FileFormatError, match="array entries"):
        PolicyTable.load(tmp_path / "x.npz")
    (tmp_path / "text.npz").write_text("not a zip file")
    with pytest.raises(FileFormatError):
        PolicyTable.load(tmp_path / "text.npz")
    with open(tmp_path / "pickle.npz", "wb") as f:
        np.savez(f, header=np.array([{"a": 1}], dtype=object))
    with pytest.raises(FileFormatError):
        PolicyTable.load(tmp_path / "pickle.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(FileFormatError, match="no 'header'"):
        PolicyTable.load(tmp_path / "empty.npz")
    with pytest.raises(InputError, match="does not exist"):
        PolicyTable.load(tmp_path / "missing.npz")


def read_csv(path):
    lines = path.read_text().splitlines()
    return lines[0].split(","), np.array([[float(x) for x in ln.split(",")] for ln in lines[1:]])


def test_csv_export_1d_2d_3d(tmp_path, rng):
    t1 = PolicyTable.from_arrays([("y", [0.0, 0.5, 2.0])], {"u": [0.0, 0.1, 1.0]})
    names, rows = read_csv(t1.to_csv(tmp_path / "t1.csv"))
    assert names == ["y", "u"]
    np.testing.assert_array_equal(rows, [[0.0, 0.0], [0.5, 0.1], [2.0, 1.0]])
    t2 = clipped_ratio_table()
    names, rows = read_csv(t2.to_csv(tmp_path / "t2.csv"))
    assert names == ["tau_remaining", "y", "u"]
    assert rows.shape == (41 * 51, 3)
    tau, y = t2.axis("tau_remaining").breakpoints, t2.axis("y").breakpoints
    np.testing.assert_array_equal(rows[:, 0], np.repeat(tau, 51))
    np.testing.assert_array_equal(rows[:, 1], np.tile(y, 41))
    np.testing.assert_array_equal(rows[:, 2], t2["u"].reshape(-1))  # round-trip precision
    axes = [random_axis(rng, n, 0, 1) for n in (3, 4, 2)]
    data = rng.uniform(size=(3, 4, 2))
    t3 = PolicyTable.from_arrays([("a", axes[0]), ("b", axes[1]), ("c", axes[2])], {"u": data})
    names, rows = read_csv(t3.to_csv(tmp_path / "t3.csv"))
    assert names == ["a", "b", "c", "u"] and rows.shape == (24, 4)
    np.testing.assert_array_equal(rows[:, 3], data.reshape(-1))


def test_from_solution_of_the_local_model_solve():
    """A low-resolution solve of the local model: the table reproduces every stored policy
    level at the nodes, in time-to-go order, and feeds a LocalPolicy."""
    from stochctl.models import get_model
    from stochctl.policy import LocalPolicy
    from stochctl.solvers import Grid, solve
    from stochctl.symbolic.problem import ControlProblem

    problem = ControlProblem.from_model(get_model("local-quadratic"), horizon=1.0)
    sol = solve(problem, Grid.for_problem(problem, points=41), store_every=4)
    table = PolicyTable.from_solution(sol, include_value=True, include_convex=True,
                                      metadata={"refinement_error": 1e-3})
    assert table.axis_names == ("tau_remaining", "y")
    assert table.value_names == ("u", "V", "convex")
    T, y = sol.horizon, sol.grid.axes[0]
    tau = table.axis("tau_remaining").breakpoints
    np.testing.assert_allclose(tau, np.sort(T - sol.times[sol.stored]), rtol=0, atol=1e-12)
    for j, k in enumerate(sol.policy_stored):
        at = table.lookup(tau_remaining=T - sol.times[k], y=y)
        np.testing.assert_allclose(at["u"], sol.controls["u_y"][j], rtol=0, atol=1e-12)
        np.testing.assert_allclose(at["V"], sol.values[j], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(at["convex"], sol.convex["y"][j].astype(float))
    np.testing.assert_allclose(table.lookup(tau_remaining=0.0, y=y)["u"], sol.controls["u_y"][-1], atol=1e-12)
    np.testing.assert_allclose(table.lookup(tau_remaining=0.0, y=y)["V"], sol.values[-1], atol=1e-12)
    assert table.value("u").valid_range == sol.u_bounds["y"]
    meta = table.metadata
    assert meta["problem"] == "local-quadratic" and meta["eta"] == 1.0 and meta["horizon"] == T
    assert meta["scheme"] == sol.diagnostics["scheme"] and meta["refinement_error"] == 1e-3
    assert meta["grid"]["points"] == [41] and meta["grid"]["time_steps"] == sol.n_steps
    assert table.axis("y").estimator == "|grad|/sqrt(a*eta*s^2)"
    policy = LocalPolicy(table, total_steps=100, eta=0.01)
    u = policy(50, {"a": 1.0, "s2": 1.0, "grad_norm": 0.05})  # tau = 0.5, y = 0.5
    assert u == pytest.approx(table.lookup(tau_remaining=0.5, y=0.5)["u"], rel=1e-12)


def test_from_solution_names_bounds_and_time_axis():
    """Two players with batch control: value names, valid ranges, the t axis."""
    from stochctl.solvers import Grid, Solution

    grid = Grid(("theta", "omega"), (-1.0, -2.0), (1.0, 2.0), (5, 7))
    K, T = 6, 3.0
    times = np.linspace(0.0, T, K + 1)
    stored = np.array([0, 2, 4, 6])
    th, om = np.meshgrid(*grid.axes, indexing="ij")
    lv = [np.clip(0.2 + 0.1 * j + 0.1 * th * om, 0.1, 0.9) for j in range(3)]
    sol = Solution(problem="quadratic-game", time_name="t", state_names=grid.names, grid=grid, times=times,
                   stored=stored, values=np.stack([th ** 2 + om ** 2 + j for j in range(4)]),
                   controls={"u_theta": np.stack(lv), "u_omega": np.stack(lv)[::-1].copy(),
                             "m_theta": np.full((3, 5, 7), 1 / 32)},
                   convex={"theta": np.ones((3, 5, 7), bool), "omega": np.zeros((3, 5, 7), bool)},
                   u_bounds={"theta": (0.1, 0.9), "omega": (0.0, 1.0)},
                   metadata={"model": "quadratic-game", "eta": 0.1, "parameters": {"a": 1.0},
                             "batch_control": {"theta": {"b_min": 8, "b_max": 64, "kappa": 0.01}}})
    table = PolicyTable.from_solution(sol, include_convex=True)
    assert table.value_names == ("u_theta", "u_omega", "m_theta", "convex_theta", "convex_omega")
    assert table.value("u_theta").valid_range == (0.1, 0.9)
    assert table.value("m_theta").valid_range == (1 / 64, 1 / 8)
    assert table.value("m_theta").units == "1/samples"
    np.testing.assert_allclose(table.axis("tau_remaining").breakpoints, [0.0, 1.0, 2.0, 3.0])
    got = table.lookup(tau_remaining=T - times[2], theta=th, omega=om)
    np.testing.assert_allclose(got["u_theta"], lv[1], atol=1e-15)
    np.testing.assert_allclose(got["u_omega"], lv[1], atol=1e-15)
    t_table = PolicyTable.from_solution(sol, controls=["u_omega"], names={"u_omega": "lr"}, time_axis="t")
    assert t_table.axis_names == ("t", "theta", "omega") and t_table.value_names == ("lr",)
    np.testing.assert_allclose(t_table.axis("t").breakpoints, times[stored[:-1]])
    np.testing.assert_allclose(t_table.lookup(t=times[4], theta=th, omega=om)["lr"], lv[0], atol=1e-15)
    with pytest.raises(InputError, match="unknown control"):
        PolicyTable.from_solution(sol, controls=["u_x"])
    with pytest.raises(InputError, match="time_axis"):
        PolicyTable.from_solution(sol, time_axis="tau")


def test_importing_the_package_does_not_import_frameworks():
    code = ("import sys, stochctl.policy as p; "
            "assert 'torch' not in sys.modules and 'jax' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_info_and_lookup(tmp_path, capsys):
    table = clipped_ratio_table()
    path = str(table.save(tmp_path / "t.npz"))
    assert cli_main(["table", "info", path, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checksum"] == table.checksum and info["checksum_verified"]
    assert [a["name"] for a in info["axes"]] == ["tau_remaining", "y"]
    assert cli_main(["table", "lookup", path, "--at", "tau_remaining=1,y=0.5",
                     "--at", "y=9, tau_remaining=3", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    expect = table.lookup(tau_remaining=[1.0, 3.0], y=[0.5, 9.0])["u"]
    assert rows[0] == {"tau_remaining": 1.0, "y": 0.5, "u": expect[0], "status": "inside"}
    assert rows[1]["u"] == expect[1] and rows[1]["status"] == "clamped"
    assert cli_main(["table", "lookup", path, "--at", "tau_remaining=1"]) == 2
    assert "misses the coordinate(s) ['y']" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    assert cli_main(["table", "info", str(bad)]) == 2
    assert "is a text file (it starts with 'garbage'), not an .npz archive" in capsys.readouterr().err


def test_cli_packaged_table_name():
    from stochctl.tables import SHIPPED_TABLES, packaged_table_path

    assert "local-quadratic" in SHIPPED_TABLES
    try:
        path = packaged_table_path("local-quadratic")
    except FileFormatError as exc:
        assert "missing" in str(exc)
        assert cli_main(["table", "info", "local-quadratic"]) == 2
    else:
        table = PolicyTable.load(path)
        assert table.axis_names == ("tau_remaining", "y") and "u" in table.value_names
        assert cli_main(["table", "lookup", "local-quadratic", "--at", "tau_remaining=1,y=0.5"]) == 0


def test_point_lookup_matches_array_lookup(rng):
    table = clipped_ratio_table(extrapolation=("error", "clip"))
    other = clipped_ratio_table(extrapolation=("error", "clip"))
    pts = np.column_stack([rng.uniform(0, 6, 200), rng.uniform(-1, 7, 200)])
    pts[::17, 1] = np.nan
    res = other.lookup(pts)
    for p, v, s in zip(pts, res["u"], res.status):
        got, st = table.lookup_point(tuple(p))
        assert st == s and (got == v or (np.isnan(v) and np.isnan(got)))
    assert table.stats.as_dict() == other.stats.as_dict()
    with pytest.raises(InputError, match="tau_remaining=-1.0"):
        table.lookup_point((-1.0, 2.0))
    assert table.stats.as_dict() == other.stats.as_dict()  # a refused point is not counted


@pytest.mark.parametrize("d", [1, 2, 3])
def test_threaded_kernel_equals_serial_kernel(rng, d):
    from stochctl.tables._lookup import THREADED_FROM

    axes = [random_axis(rng, n, 0.0, 1.0) for n in (9, 7, 5)[:d]]
    table = PolicyTable.from_arrays([(f"x{j}", a) for j, a in enumerate(axes)],
                                    {"v": rng.uniform(size=tuple(a.size for a in axes))})
    q = rng.uniform(-0.2, 1.2, (THREADED_FROM + 123, d))
    q[::101, 0] = np.nan
    big = table.lookup(q)
    chunks = [table.lookup(c) for c in np.array_split(q, 4)]  # each below the threshold
    np.testing.assert_array_equal(big["v"], np.concatenate([c["v"] for c in chunks]))
    np.testing.assert_array_equal(big.status, np.concatenate([c.status for c in chunks]))
    assert big.clamped == sum(c.clamped for c in chunks) and big.nan == sum(c.nan for c in chunks)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_uniform_axes_direct_index_equals_bucket_search(rng, d):
    """Equally spaced axes skip the bucket search; both paths give the same numbers, exact at nodes."""
    from stochctl.tables._lookup import SCALE, UNIFORM, Lookup, is_uniform, make_hints

    axes = [np.linspace(-1.0 - j, 2.0 + 0.3 * j, n) for j, n in zip(range(d), (13, 9, 7))]
    data = rng.normal(size=tuple(a.size for a in axes))
    fast = Lookup(axes, [data], [np.nan])
    slow = Lookup(axes, [data], [np.nan])  # the same table forced onto the bucket search
    slow.axi[:, UNIFORM] = 0
    slow.axf[:, SCALE] = [make_hints(a)[1] for a in axes]
    assert all(is_uniform(a) for a in axes) and fast.axi[:, UNIFORM].all()
    assert not is_uniform(random_axis(rng, 9, 0.0, 1.0))
    q = np.column_stack([rng.uniform(a[0] - 0.5, a[-1] + 0.5, 3000) for a in axes])
    q[::97, -1] = np.nan
    a_out, a_st, a_c, a_n = fast(q)
    b_out, b_st, b_c, b_n = slow(q)
    np.testing.assert_allclose(a_out, b_out, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(a_st, b_st)
    assert (a_c, a_n) == (b_c, b_n) == (int(np.sum(a_st == 1)), int(np.sum(a_st == 2)))
    nodes = np.stack([g.reshape(-1) for g in np.meshgrid(*axes, indexing="ij")], axis=1)
    np.testing.assert_array_equal(fast(nodes)[0][0], data.reshape(-1))  # exact at every node


def test_bucket_hints_start_left_of_every_query(rng):
    """x[hints[b]] < q for every q of bucket b, so the forward walk alone finds the cell."""
    from stochctl.tables._lookup import make_hints

    for _ in range(20):
        b = np.unique(np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 30)) ** 3, [1.0]]))
        hints, scale = make_hints(b)
        q = np.concatenate([rng.uniform(0, 1, 5000), b, np.nextafter(b, -1.0)[1:], np.nextafter(b, 2.0)[:-1]])
        bucket = ((q - b[0]) * scale).astype(np.int64)
        cell = np.clip(np.searchsorted(b, q, side="right") - 1, 0, b.size - 2)
        h = hints[bucket]
        assert np.all((b[h] < q) | (h == 0)) and np.all(h <= cell)
