"""The demo command runs the main job end to end and its artefacts agree with each other."""

import numpy as np

from stochctl.cli import main
from stochctl.policy import PolicyTable
from stochctl.solvers import Solution


def test_demo_writes_consistent_artefacts(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--no-figures", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "Isaacs condition" in text and "saddle point: yes" in text
    assert (out / "derivation-dirac-gan.md").read_text().startswith("# Derivation: dirac-gan")
    sol = Solution.load(out / "local_quadratic_solution.npz")
    table = PolicyTable.load(out / "local_quadratic_table.npz")
    # the exported table reproduces the solution's policy at its own nodes
    ys = np.array([-1.2, -0.3, 0.05, 0.4, 2.5])
    horizon = sol.times[-1]
    for t in (0.0, 1.0, 1.9):
        k = sol.policy_index(t)
        tau_rem = horizon - sol.times[sol.stored[k]]
        expected = sol.control_at("u_y", ys[:, None], t=sol.times[sol.stored[k]])
        got = table.lookup(np.column_stack([np.full(ys.size, tau_rem), ys])).values["u"]
        np.testing.assert_allclose(got, expected, atol=1e-12)
    # V at tau = 0 printed by the demo matches the saved solution
    v = float(sol.value_at([[1.5]])[0])
    assert f"y=1.5: V = {v:.5f}" in text
    assert (out / "local_quadratic_table.csv").stat().st_size > 0


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: stochctl" in capsys.readouterr().out


def test_version(capsys):
    import pytest

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert "stochctl 0.1.0" in capsys.readouterr().out
