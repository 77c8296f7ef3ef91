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
    sched = ControlledLR(opt, policy, curvature="own", curvature_every=1)
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


def test_declared_axes_read_alike_in_numpy_and_jax(rng):
    """The optax path evaluates the same formulas and lookup under jax.numpy (jitted updates)."""
    pytest.importorskip("jax")
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from stochctl.tables import TableAxis, TableValue

    tau, x = np.linspace(0, 5, 11), np.linspace(0, 4, 9)
    table = PolicyTable.from_arrays(
        [TableAxis("tau_remaining", tau, role="time_to_go", from_trainer="eta*steps_left"),
         TableAxis("x", x, role="state", from_trainer="grad_norm/a")],
        [TableValue("u", np.clip(0.2 + 0.1 * tau[:, None] + 0.15 * x[None, :] ** 2, 0, 1), valid_range=(0, 1))])
    pol = LocalPolicy(table, total_steps=30, eta=0.1)
    a, s2, gn = rng.uniform(-0.5, 3, 50), rng.uniform(0, 1, 50), rng.uniform(0, 5, 50)
    u_np, code_np, *_ = pol.evaluate(7, a, s2, gn, True, 0.1, pol.lookup_fn(np), np)
    u_jx, code_jx, *_ = pol.evaluate(7, jnp.asarray(a), jnp.asarray(s2), jnp.asarray(gn), True, 0.1,
                                     pol.lookup_fn(jnp), jnp)
    np.testing.assert_allclose(np.asarray(u_jx), u_np, rtol=1e-12, atol=1e-12)
    assert np.array_equal(np.asarray(code_jx), code_np)
    ok = a > 0  # and where the estimates are usable: the table at (eta (K - k), grad_norm / a)
    ref = table.lookup(tau_remaining=np.full(ok.sum(), 0.1 * 23), x=gn[ok] / a[ok])["u"]
    np.testing.assert_allclose(u_np[ok], ref, rtol=1e-12)
    for i in np.flatnonzero(ok)[:5]:  # the scalar path agrees
        assert pol(7, {"a": float(a[i]), "s2": float(s2[i]), "grad_norm": float(gn[i])}) == pytest.approx(u_np[i])
