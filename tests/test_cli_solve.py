"""``stochctl solve`` and ``stochctl query`` end to end through ``stochctl.cli.main``."""

import json

import numpy as np
import pytest

from stochctl.cli import main
from stochctl.solvers import Solution


def test_solve_then_query_json_one_player(tmp_path, capsys):
    out = tmp_path / "local.npz"
    rc = main(["solve", "local-quadratic", "--grid", "401", "--dt", "0.01", "--param", "u_max=2", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "local-quadratic" in text and "implicit" in text and str(out) in text
    sol = Solution.load(out)
    assert sol.u_bounds == {"y": (0.0, 2.0)} and sol.grid.points == (401,) and sol.time_name == "tau"
    rc = main(["query", str(out), "--at", "tau=0,y=1.5", "--at", "y=-2.25,tau=0.5", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and len(rows) == 2
    assert set(rows[0]) == {"tau", "y", "value", "u_y", "u"}
    assert rows[1]["tau"] == 0.5 and rows[1]["y"] == -2.25
    assert rows[0]["value"] == pytest.approx(sol.value_at(1.5, t=0.0))
    assert rows[1]["u"] == rows[1]["u_y"] == pytest.approx(sol.control_at("u_y", -2.25, t=0.5))
    assert 0.0 <= rows[0]["u"] <= 2.0


def test_solve_game_from_toml_config(tmp_path, capsys):
    cfg = tmp_path / "game.toml"
    cfg.write_text("""
[model]
name = "tilted-game"
loss = "a*theta**2/2 + theta*omega - omega**2/2 - sigma*(z1*theta + z2*omega)"
noises = ["z1", "z2"]
eta = 0.1
horizon = 1.0

[[players]]
name = "theta"
sense = "min"
symbols = ["theta"]

[[players]]
name = "omega"
sense = "max"
symbols = ["omega"]

[parameters]
a = 1.0
sigma = 0.5

[domain]
theta = [-1.0, 1.0]
omega = [-1.0, 1.0]

[control]
u_max = 1.5

[solver]
grid = [21, 25]
horizon = 0.25
store_every = 4
""")
    out = tmp_path / "game.npz"
    assert main(["solve", str(cfg), "--param", "a=2", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    sol = Solution.load(out)
    assert sol.grid.points == (21, 25) and sol.horizon == pytest.approx(0.25)
    assert sol.u_bounds == {"theta": (0.0, 1.5), "omega": (0.0, 1.5)}
    assert sol.metadata["parameters"]["a"] == 2.0
    assert np.all(np.diff(sol.stored)[:-1] == 4)
    assert main(["query", str(out), "--at", "t=0.1,theta=0.2,omega=-0.3", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert set(row) == {"t", "theta", "omega", "value", "u_theta", "u_omega"}
    assert main(["query", str(out), "--at", "theta=0.2,omega=-0.3"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["t", "theta", "omega", "value", "u_theta", "u_omega"]


@pytest.mark.parametrize("argv, fragment", [
    (["solve", "local-quadratic", "--grid", "2", "--quiet"], "points >= 3; got 2"),
    (["solve", "local-quadratic", "--horizon", "-1", "--quiet"], "horizon must be a positive number; got -1.0"),
    (["solve", "quadratic", "--grid", "41", "--dt", "1", "--quiet"], "largest allowed step is"),
    (["solve", "dirac-gan", "--grid", "11", "12", "13", "--quiet"], "expected 1 or 2 numbers"),
    (["solve", "no-such-model", "--quiet"], "unknown model 'no-such-model'"),
    (["solve", "dirac-gan", "--scheme", "implicit", "--grid", "11", "--quiet"], "one-player problems"),
])
def test_solve_errors_are_one_line(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1


def test_query_errors(tmp_path, capsys):
    out = tmp_path / "q.npz"
    assert main(["solve", "quadratic", "--grid", "41", "--horizon", "0.2", "--out", str(out), "--quiet"]) == 0
    for at, fragment in (("t=0,x=4", "point (x=4) is outside the solved domain (x in [-3, 3])"),
                         ("t=0.5,x=0", "t=0.5 is outside the solved time range [0, 0.2]"),
                         ("t=0,y=1", "unknown coordinate 'y'; valid: t, x"),
                         ("t=0", "missing coordinate 'x'"),
                         ("x=abc", "x must be a number; got 'abc'")):
        assert main(["query", str(out), "--at", at]) == 2
        assert fragment in capsys.readouterr().err
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    assert main(["query", str(bad), "--at", "x=0"]) == 2
    assert "is a text file (it starts with 'junk'), not an .npz archive" in capsys.readouterr().err
