"""A table exported from a solved TOML model drives a trainer, through the axes' declared meaning."""

import math

import numpy as np
import pytest

from stochctl.cli import main
from stochctl.errors import InputError
from stochctl.policy import LocalPolicy, PolicyTable

QUARTIC = """
[model]
name = "quartic-noisy"
loss = "c*x**4/4 + x**2/2 - sigma*zeta*x"
noises = ["zeta"]
eta = 0.1

[[players]]
name = "x"
sense = "min"
symbols = ["x"]

[parameters]
c = 0.5
sigma = 0.8

[domain]
x = [-3.0, 3.0]
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A quartic TOML model (named by no other test), solved and exported with x = grad_norm / a."""
    d = tmp_path_factory.mktemp("quartic")
    (d / "quartic.toml").write_text(QUARTIC)
    assert main(["solve", str(d / "quartic.toml"), "--horizon", "2", "--out", str(d / "sol.npz")]) == 0
    assert main(["export", str(d / "sol.npz"), "--out", str(d / "t.npz"), "--axis-from", "x=grad_norm/a"]) == 0
    return PolicyTable.load(d / "t.npz")


def test_exported_axes_declare_their_meaning(exported):
    t_axis, x_axis = exported.axes
    assert (t_axis.name, t_axis.role, t_axis.from_trainer) == ("tau_remaining", "time_to_go", "eta*steps_left")
    assert t_axis.estimator == "eta*(K-k)"  # the model's clock t = k eta, not the local model's a eta k
    assert (x_axis.name, x_axis.role, x_axis.from_trainer) == ("x", "state", "grad_norm/a")


def test_the_table_drives_controlled_lr(exported):
    """ControlledLR on f = c x^4/4 + x^2/2 with the policy read at (eta (K - k), grad_norm / a): the rate it
    sets is eta times the table's value at those coordinates, computed here from the scheduler's estimates."""
    torch = pytest.importorskip("torch")
    from stochctl.policy import ControlledLR

    K, eta = 40, 0.1
    x = torch.tensor([1.5], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=eta)
    policy = LocalPolicy(exported, total_steps=K)
    sched = ControlledLR(opt, policy, curvature="own")
    gen = torch.Generator().manual_seed(0)
    checked, seen = 0, []
    for k in range(K):
        zeta = torch.randn(1, generator=gen, dtype=torch.float64)
        closure = lambda: (0.5 * x ** 4 / 4 + x ** 2 / 2 - 0.8 * zeta * x).sum()  # noqa: E731
        opt.zero_grad()
        closure().backward()
        sched.step(closure=closure)
        est = sched.last_estimates[0]
        if est.ready and est.a > 0:
            tau, xq = eta * (K - k), est.grad_norm / est.a
            expected = float(exported.lookup(tau_remaining=tau, x=xq)["u"])
            assert opt.param_groups[0]["lr"] == pytest.approx(eta * expected, rel=1e-12)
            checked += 1
            seen.append(expected)
        opt.step()
    assert checked >= K - 2
    # the policy moved the rate (the table is not constant along the run), and training stayed finite
    assert math.isfinite(x.item()) and max(seen) - min(seen) > 0.05, (min(seen), max(seen))


def test_a_table_without_declared_axes_is_refused_with_one_line(tmp_path):
    (tmp_path / "quartic.toml").write_text(QUARTIC)
    main(["solve", str(tmp_path / "quartic.toml"), "--horizon", "1", "--out", str(tmp_path / "sol.npz")])
    main(["export", str(tmp_path / "sol.npz"), "--out", str(tmp_path / "t.npz")])
    with pytest.raises(InputError, match=r"axis 'x' does not \(export the table with --axis-from x=FORMULA"):
        LocalPolicy(str(tmp_path / "t.npz"), total_steps=10)


@pytest.mark.parametrize("arg, message", [
    ("x", "--axis-from needs AXIS=FORMULA"),
    ("z=grad_norm", "--axis-from names unknown axis 'z'"),
    ("x=import os", "axis 'x' from_trainer"),
    ("x=b/a", "undeclared name 'b'"),
])
def test_bad_axis_from_is_one_clear_line(tmp_path, capsys, arg, message):
    (tmp_path / "quartic.toml").write_text(QUARTIC)
    main(["solve", str(tmp_path / "quartic.toml"), "--horizon", "1", "--out", str(tmp_path / "sol.npz")])
    capsys.readouterr()
    assert main(["export", str(tmp_path / "sol.npz"), "--out", str(tmp_path / "t.npz"), "--axis-from", arg]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "t.npz").exists()
