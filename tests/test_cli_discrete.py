"""The discrete-time commands: solve --steps, query steps_left, table build-local --discrete and lookup."""

import json

import numpy as np
import pytest

from stochctl.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_solve_and_query_local_discrete(tmp_path, capsys):
    path = tmp_path / "F.npz"
    code, out, err = run(capsys, "solve", "local-discrete", "--param", "h=0.5", "--u-max", "4", "--steps", "8",
                         "--grid", "241", "--out", str(path), "--quiet")
    assert code == 0 and path.exists(), err
    code, out, err = run(capsys, "query", str(path), "--at", "steps_left=8,y=1", "--at", "steps_left=1,y=2",
                         "--at", "steps_left=0,y=2", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows[0]["steps_left"] == 8 and rows[0]["k"] == 0
    # one step left: the closed form y^2 / (1 + h y^2) and its value (1 - h u)^2 y^2 + h u^2
    u1 = 4.0 / (1 + 0.5 * 4.0)
    assert rows[1]["u"] == pytest.approx(u1, abs=1e-6)
    assert rows[1]["value"] == pytest.approx((1 - 0.5 * u1) ** 2 * 4 + 0.5 * u1**2, abs=1e-9)
    assert rows[2]["u"] is None and rows[2]["value"] == pytest.approx(4.0)
    # more steps left never cost more
    assert rows[0]["value"] < 1.0


def test_solve_prints_a_summary(tmp_path, capsys):
    code, out, err = run(capsys, "solve", "local-discrete", "--param", "h=0.25", "--steps", "3", "--grid", "121")
    assert code == 0, err
    assert "3 Bellman steps" in out and "not saved" in out


@pytest.mark.parametrize("argv,needle", [
    (["solve", "local-discrete", "--param", "h=-1", "--steps", "2"], "h"),
    (["solve", "local-discrete", "--steps", "0"], "steps"),
    (["solve", "local-discrete", "--u-min", "2", "--u-max", "1", "--steps", "2"], "u_min"),
    (["solve", "local-discrete", "--steps", "2", "--scheme", "implicit"], "--scheme"),
    (["solve", "local-discrete", "--steps", "100000000"], "steps"),
])
def test_bad_input_is_one_line(argv, needle, capsys):
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def test_query_rejects_a_fractional_or_out_of_range_step(tmp_path, capsys):
    path = tmp_path / "F.npz"
    assert run(capsys, "solve", "local-discrete", "--steps", "2", "--grid", "121", "--out", str(path),
               "--quiet")[0] == 0
    for at in ("steps_left=1.5,y=0", "steps_left=3,y=0", "steps_left=1,k=1,y=0"):
        code, out, err = run(capsys, "query", str(path), "--at", at)
        assert code == 2 and len(err.strip().splitlines()) == 1, (at, err)


def test_build_discrete_table_quick_and_look_it_up(tmp_path, capsys):
    path = tmp_path / "t.npz"
    code, out, err = run(capsys, "table", "build-local", "--discrete", "--quick", "--no-refine", "--workers", "1",
                         "--out", str(path))
    assert code == 0, err
    assert "smoke test" in out and "not fit for training" in out
    code, out, err = run(capsys, "table", "lookup", str(path), "--at", "u_max=1,h=1,tau_remaining=1,y=3",
                         "--json")
    assert code == 0, err
    (row,) = json.loads(out)
    # Z = h u_max = 1 is a node, T = u_max tau_remaining = 1 is one step left there and v = y = 3 a node
    # of the table and of the solve: the closed form 9 / 10
    assert row["u"] == pytest.approx(9.0 / 10.0, abs=1e-6)


def test_shipped_discrete_table_lookup(capsys):
    code, out, err = run(capsys, "table", "lookup", "local-discrete", "--at", "u_max=4,h=0.5,tau_remaining=4,y=1",
                         "--at", "u_max=2,h=0.25,tau_remaining=0.25,y=2", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert all(r["status"] == "inside" for r in rows)
    # one step left: the closed form min(2, 4 / (1 + 0.25 * 4)) = 2 (Z = 0.5 is a node, v = 2 / sqrt(2)
    # lies between v nodes where the continued policy is about 1 / u_max = 0.5 on either side)
    assert rows[1]["u"] == pytest.approx(2.0, abs=1e-3)
    assert 0.0 < rows[0]["u"] <= 4.0 and np.isfinite(rows[0]["u"])


def test_table_build_pool_after_threaded_kernels_in_the_parent():
    """The build's process pool must not fork a parent whose numba threads are running (it would
    abort the workers): solve with two threads first, then build on two workers."""
    from stochctl.models import get_model
    from stochctl.tables.shipped_discrete import build_discrete_table
    from stochctl.solvers.bellman import solve_discrete
    from stochctl.symbolic.problem import ControlProblem

    solve_discrete(ControlProblem.from_model(get_model("local-discrete", h=0.5)), steps=2, num_threads=2)
    from stochctl.tables.shipped_discrete import z_axis

    table = build_discrete_table(quick=True, check=False, workers=2)
    assert table["u"].shape[0] == z_axis(quick=True).size and np.all(np.isfinite(table["u"]))


def test_export_of_a_discrete_solution_counts_steps_left(tmp_path, capsys):
    sol, table = tmp_path / "F.npz", tmp_path / "T.npz"
    assert run(capsys, "solve", "local-discrete", "--param", "h=0.5", "--u-max", "4", "--steps", "4", "--grid",
               "241", "--out", str(sol), "--quiet")[0] == 0
    code, out, err = run(capsys, "export", str(sol), "--out", str(table))
    assert code == 0, err
    code, out, err = run(capsys, "table", "lookup", str(table), "--at", "steps_left=1,y=2", "--json")
    assert code == 0, err
    assert json.loads(out)[0]["u"] == pytest.approx(4.0 / (1 + 0.5 * 4.0), abs=1e-6)
