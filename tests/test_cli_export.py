"""``stochctl export``: a saved Solution becomes a table whose lookups reproduce the
solution's own policy and value, and whose CSV lists every grid node."""

import json

import numpy as np
import pytest

from stochctl.cli import main as cli_main
from stochctl.models import get_model
from stochctl.policy import PolicyTable
from stochctl.solvers import Grid, solve
from stochctl.symbolic.problem import ControlProblem


@pytest.fixture(scope="module")
def local_solution(tmp_path_factory):
    problem = ControlProblem.from_model(get_model("local-quadratic"), horizon=1.0)
    sol = solve(problem, Grid.from_domain({"y": (-3.0, 3.0)}, 31), scheme="implicit", dt=0.05,
                progress=False, num_threads=1)
    path = tmp_path_factory.mktemp("export") / "local.npz"
    sol.save(path)
    return sol, path


def test_export_reproduces_the_solution(local_solution, tmp_path, capsys):
    sol, path = local_solution
    out = tmp_path / "table.npz"
    assert cli_main(["export", str(path), "--out", str(out), "--value", "--convex", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    table = PolicyTable.load(out)
    assert summary["checksum"] == table.checksum and summary["csv"] is None
    assert table.axis_names == ("tau_remaining", "y") and table.value_names == ("u", "V", "convex")
    assert summary["axes"] == {"tau_remaining": sol.n_steps + 1, "y": 31}
    y = sol.grid.axes[0]
    for k, t in enumerate(sol.policy_times):  # the policy in force on [t_k, t_k+1) at time to go T - t_k
        got = table.lookup(tau_remaining=sol.horizon - t, y=y)
        np.testing.assert_allclose(got["u"], sol.control_at("u_y", y, t), rtol=0, atol=1e-12)
        np.testing.assert_allclose(got["V"], sol.value_at(y, t), rtol=0, atol=1e-12)
        np.testing.assert_array_equal(got["convex"], sol.convex["y"][k].astype(float))
    np.testing.assert_allclose(table.lookup(tau_remaining=0.0, y=y)["V"], y**2, atol=1e-12)
    meta = table.metadata
    assert meta["problem"] == "local-quadratic" and meta["scheme"] == "implicit" and meta["source"] == str(path)


def test_export_csv_and_options(local_solution, tmp_path, capsys):
    sol, path = local_solution
    out = tmp_path / "t.npz"
    assert cli_main(["export", str(path), "--out", str(out), "--csv", "--time-axis", "t"]) == 0
    text = capsys.readouterr().out
    csv = tmp_path / "t.csv"
    assert f"wrote {csv}" in text
    data = np.genfromtxt(csv, delimiter=",", names=True)
    assert data.dtype.names == ("t", "y", "u")
    assert data.size == sol.n_steps * 31
    for row in data[::37]:
        assert row["u"] == pytest.approx(sol.control_at("u_y", row["y"], row["t"]), abs=1e-12)
    other = tmp_path / "elsewhere.csv"
    assert cli_main(["export", str(path), "--out", str(out), "--csv", str(other)]) == 0
    assert other.read_text().splitlines()[0] == "tau_remaining,y,u"


def test_export_two_players(tmp_path, capsys):
    problem = ControlProblem.from_model(get_model("quadratic-game"), horizon=0.2)
    sol = solve(problem, Grid.from_domain({"theta": (-1.0, 1.0), "omega": (-1.0, 1.0)}, 11), progress=False,
                num_threads=1, store_every=5)
    path = sol.save(tmp_path / "game.npz")
    out = tmp_path / "game_table.npz"
    assert cli_main(["export", str(path), "--out", str(out), "--control", "u_omega"]) == 0
    table = PolicyTable.load(out)
    assert table.axis_names == ("tau_remaining", "theta", "omega") and table.value_names == ("u_omega",)
    th, om = np.meshgrid(*sol.grid.axes, indexing="ij")
    pts = np.stack([th, om], axis=-1)
    got = table.lookup(tau_remaining=sol.horizon - sol.policy_times[0], theta=th, omega=om)["u_omega"]
    np.testing.assert_allclose(got, sol.control_at("u_omega", pts, 0.0), atol=1e-12)


def test_export_errors(local_solution, tmp_path, capsys):
    path = local_solution[1]
    assert cli_main(["export", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "x.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert cli_main(["export", str(path), "--out", str(tmp_path / "x.npz"), "--control", "u_z"]) == 2
    assert "unknown control" in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(path.read_bytes()[:-100])
    assert cli_main(["export", str(bad), "--out", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()


def test_large_csv_is_announced_with_its_size(local_solution, tmp_path, capsys, monkeypatch):
    """Above the notice size the CLI says how large the CSV will be before writing it; the estimate
    is checked against the size of the file written (sampled rows: within 5%)."""
    from stochctl.cli import export as export_cli

    sol, path = local_solution
    out = tmp_path / "t.npz"
    assert cli_main(["export", str(path), "--out", str(out), "--csv"]) == 0
    assert "about" not in capsys.readouterr().err           # far below 100 MB: no notice
    table = PolicyTable.load(out)
    actual = (tmp_path / "t.csv").stat().st_size
    assert table.csv_size(sample=10**9) == actual             # every row formatted: exact
    assert abs(table.csv_size(sample=50) - actual) < 0.05 * actual
    monkeypatch.setattr(export_cli, "CSV_NOTICE_BYTES", actual // 2)
    assert cli_main(["export", str(path), "--out", str(out), "--csv"]) == 0
    err = capsys.readouterr().err
    rows = (sol.n_steps + 1) * 31
    assert f"({rows:,} rows)" in err and f"about {table.csv_size() / 1e6:,.0f} MB" in err


def test_table_info_shows_trainer_formulas(local_solution, tmp_path, capsys):
    _, path = local_solution
    out = tmp_path / "declared.npz"
    assert cli_main(["export", str(path), "--out", str(out), "--axis-from", "y=grad_norm/sqrt(a*eta*s2)"]) == 0
    capsys.readouterr()
    assert cli_main(["table", "info", str(out)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("y:")]
    assert len(lines) == 1 and "from trainer: grad_norm/sqrt(a*eta*s2)" in lines[0]
