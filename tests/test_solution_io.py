"""Solution: interpolation, time-level conventions, .npz round trip and validation on load."""

import json
import zipfile

import numpy as np
import pytest

from stochctl.errors import FileFormatError, InputError
from stochctl.models import get_model
from stochctl.solvers import Grid, Solution, solve
from stochctl.symbolic import BatchControl, ControlProblem


@pytest.fixture(scope="module")
def game():
    problem = ControlProblem.from_model(get_model("quadratic-game"), batch=BatchControl(1, 16, 0.01))
    return solve(problem, Grid(("theta", "omega"), (-2, -2), (2, 2), (21, 17)), horizon=0.3, store_every=5,
                 progress=False)


def synthetic(fn, grid, times, stored):
    """A Solution whose stored values are fn(t, *mesh) and whose control is its value (for interpolation tests)."""
    mesh = grid.mesh()
    values = np.array([fn(times[k], *mesh) for k in stored])
    u = values[:-1].copy()
    return Solution(problem="p", time_name="t", state_names=grid.names, grid=grid, times=times, stored=stored,
                    values=values, controls={"u_a": u}, convex={"a": u > 0}, u_bounds={"a": (0.0, 1.0)})


def test_multilinear_interpolation_is_exact_for_bilinear_functions(rng):
    grid = Grid(("x", "y"), (-1, 0), (1, 2), (5, 9))
    times = np.linspace(0, 1, 5)
    sol = synthetic(lambda t, x, y: 1 + 2 * x - y + 0.5 * x * y + t, grid, times, np.array([0, 2, 4]))
    pts = np.column_stack([rng.uniform(-1, 1, 50), rng.uniform(0, 2, 50)])
    exact = 1 + 2 * pts[:, 0] - pts[:, 1] + 0.5 * pts[:, 0] * pts[:, 1]
    np.testing.assert_allclose(sol.value_at(pts, t=0.0), exact, atol=1e-13)
    # linear in time between stored levels t = 0.5 and t = 1
    np.testing.assert_allclose(sol.value_at(pts, t=0.8), exact + 0.8, atol=1e-13)
    # dict input broadcasts, a single point gives a float
    out = sol.value_at({"x": pts[:, 0], "y": 1.0})
    np.testing.assert_allclose(out, 1 + 2 * pts[:, 0] - 1 + 0.5 * pts[:, 0], atol=1e-13)
    assert isinstance(sol.value_at([0.3, 0.7]), float)


def test_policy_is_piecewise_constant_on_stored_levels():
    grid = Grid(("x",), (0,), (1,), (3,))
    times = np.linspace(0, 1, 11)
    sol = synthetic(lambda t, x: t + 0 * x, grid, times, np.array([0, 4, 8, 10]))
    assert sol.policy_stored.tolist() == [0, 4, 8]
    # control at t uses the last stored policy level at or before t
    for t, level in ((0.0, 0.0), (0.39, 0.0), (0.4, 0.4), (0.79, 0.4), (0.85, 0.8), (1.0, 0.8)):
        assert sol.control_at("u_a", 0.5, t=t) == pytest.approx(level)
    assert sol.policy_index(0.4) == 1


def test_bad_queries_name_the_value():
    grid = Grid(("x", "y"), (-1, 0), (1, 2), (3, 3))
    sol = synthetic(lambda t, x, y: x + y, grid, np.linspace(0, 1, 3), np.array([0, 2]))
    with pytest.raises(InputError, match=r"point \(x=1.5, y=1\) is outside the solved domain"):
        sol.value_at([[0.0, 1.0], [1.5, 1.0]])
    with pytest.raises(InputError, match=r"t=2.0 is outside the solved time range \[0, 1\]"):
        sol.value_at([0.0, 1.0], t=2.0)
    with pytest.raises(InputError, match="unknown control 'u_b'; controls: u_a"):
        sol.control_at("u_b", [0.0, 1.0])
    with pytest.raises(InputError, match="2 coordinates"):
        sol.value_at([0.0, 1.0, 2.0])


def test_solution_contents(game):
    assert game.control_names == ("u_theta", "m_theta", "u_omega", "m_omega")
    assert set(game.convex) == {"theta", "omega"}
    assert game.values.shape == (len(game.stored), 21, 17)
    assert game.controls["u_theta"].shape == (len(game.stored) - 1, 21, 17)
    assert game.times[-1] == pytest.approx(0.3) and game.stored[-1] == game.n_steps
    assert game.metadata["model"] == "quadratic-game" and game.metadata["parameters"]["b"] == 1.0
    assert game.metadata["batch_control"]["theta"]["kappa"] == 0.01
    np.testing.assert_allclose(game.values[-1], ControlProblem.from_model(
        get_model("quadratic-game")).model.lambdify(get_model("quadratic-game").objective)(*game.grid.mesh()))
    # values at nodes are the stored arrays
    node = (game.grid.axes[0][7], game.grid.axes[1][3])
    assert game.value_at(node) == pytest.approx(game.values[0][7, 3], abs=1e-14)


def test_round_trip(game, tmp_path):
    path = game.save(tmp_path / "game.npz")
    back = Solution.load(path)
    assert back.grid == game.grid and back.state_names == game.state_names
    assert back.time_name == game.time_name and back.u_bounds == game.u_bounds
    np.testing.assert_array_equal(back.times, game.times)
    np.testing.assert_array_equal(back.stored, game.stored)
    np.testing.assert_array_equal(back.values, game.values)
    for name in game.controls:
        np.testing.assert_array_equal(back.controls[name], game.controls[name])
    for name in game.convex:
        np.testing.assert_array_equal(back.convex[name], game.convex[name])
    assert back.metadata == json.loads(json.dumps(game.metadata))
    assert back.diagnostics["scheme"] == "explicit" and back.diagnostics["steps"] == game.n_steps
    assert back.value_at([0.3, -0.2], t=0.1) == game.value_at([0.3, -0.2], t=0.1)
    with zipfile.ZipFile(path) as zf:  # plain arrays only: nothing needs pickle
        assert all(name.endswith(".npy") for name in zf.namelist())
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
    assert header["format"] == "stochctl.solution" and header["format_version"] == 2
    assert header["checksum"].startswith("sha256:")


def _header_change(key, value):
    def change(arrays):
        h = json.loads(str(arrays["header"]))
        h[key] = value
        arrays["header"] = np.array(json.dumps(h))
    return change


def _rewrite(path, change):
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    change(arrays)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("tamper, fragment", [
    (lambda a: a.__setitem__("values", a["values"] + 1e-9), "checksum mismatch"),
    (lambda a: a.__setitem__("header", np.array(str(a["header"]).replace("quadratic-game", "dirac-gan"))),
     "checksum mismatch"),
    (lambda a: a.pop("control__u_omega"), "checksum mismatch"),
    (lambda a: a.pop("times"), "checksum mismatch"),
    (_header_change("format_version", 99), "solution format version 99 is newer than this stochctl reads"),
    (_header_change("format", "stochctl-policy-table"), "not a solution"),
])
def test_tampered_files_are_rejected(game, tmp_path, tamper, fragment):
    path = game.save(tmp_path / "game.npz")
    _rewrite(path, tamper)
    with pytest.raises(FileFormatError, match=fragment):
        Solution.load(path)


def test_inconsistent_file_with_valid_checksum_is_rejected(game, tmp_path):
    """Shapes and finiteness are validated even when the checksum is recomputed."""
    from stochctl._npz import checksum

    path = game.save(tmp_path / "game.npz")

    def corrupt(arrays):
        v = arrays["values"].copy()
        v[0, 0, 0] = np.nan
        arrays["values"] = v
        header = json.loads(str(arrays["header"]))
        header["checksum"] = checksum(header, {k: x for k, x in arrays.items() if k != "header"})
        arrays["header"] = np.array(json.dumps(header))

    _rewrite(path, corrupt)
    with pytest.raises(FileFormatError, match="values contain NaN or Inf"):
        Solution.load(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileFormatError, match="does not exist"):
        Solution.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(FileFormatError, match="not a readable .npz"):
        Solution.load(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(FileFormatError, match="not a solution file \\(no 'header' entry\\)"):
        Solution.load(other)


def _write_schema_1(sol, path):
    """The first file version, written as it was: header, schema_version and checksum entries, the
    checksum over the header text and each array's |name|dtype|shape| and bytes."""
    import hashlib

    header = json.loads(json.dumps(sol._header()))
    for key in ("format", "format_version"):
        header.pop(key)
    header.update(schema="stochctl.solution", schema_version=1)
    text = json.dumps(header, sort_keys=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in sol._arrays().items()}
    h = hashlib.sha256(text.encode())
    for key in sorted(arrays):
        h.update(f"|{key}|{arrays[key].dtype.str}|{arrays[key].shape}|".encode())
        h.update(arrays[key].tobytes())
    np.savez(path, header=np.array(text), schema_version=np.array(1, dtype=np.int64),
             checksum=np.array(h.hexdigest()), **arrays)


def test_first_version_files_still_load_and_are_verified(game, tmp_path):
    path = tmp_path / "v1.npz"
    _write_schema_1(game, path)
    back = Solution.load(path)
    np.testing.assert_array_equal(back.values, game.values)
    assert back.controls.keys() == game.controls.keys() and back.metadata == json.loads(json.dumps(game.metadata))
    _rewrite(path, lambda a: a.__setitem__("values", a["values"] + 1e-9))
    with pytest.raises(FileFormatError, match="checksum mismatch"):
        Solution.load(path)
