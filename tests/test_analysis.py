"""Convexity and well-posedness analysis against closed forms, brute force and finite differences."""

import json

import numpy as np
import pytest
import sympy as sp

from stochctl.analysis import analyze_convexity, analyze_wellposedness
from stochctl.cli import main
from stochctl.errors import InputError
from stochctl.models import Model, Player, get_model, load_model_toml


# ------------------------------------------------------------ references
def dirac_g(theta, omega, c):
    """Dirac GAN g = log sigmoid(omega c) + log sigmoid(-omega theta), written independently."""
    return -np.logaddexp(0.0, -omega * c) - np.logaddexp(0.0, omega * theta)


def gaussian_g(theta, omega, mu=1.0, s=1.0, beta=0.0, order=60):
    """Gaussian-mean GAN g by an independent 60-node Gauss-Hermite rule."""
    x, w = np.polynomial.hermite_e.hermegauss(order)
    w = w / w.sum()
    theta, omega = np.broadcast_arrays(np.asarray(theta, float), np.asarray(omega, float))
    real = omega[..., None] * (mu + s * x) + beta
    fake = omega[..., None] * (theta[..., None] + s * x) + beta
    return (-np.logaddexp(0.0, -real) @ w) + (-np.logaddexp(0.0, fake) @ w)


def fd_hessian(f, theta, omega, h=1e-4):
    """Central finite-difference Hessian of f(theta, omega)."""
    f0 = f(theta, omega)
    htt = (f(theta + h, omega) - 2 * f0 + f(theta - h, omega)) / h**2
    hoo = (f(theta, omega + h) - 2 * f0 + f(theta, omega - h)) / h**2
    hto = (f(theta + h, omega + h) - f(theta + h, omega - h) - f(theta - h, omega + h)
           + f(theta - h, omega - h)) / (4 * h**2)
    return np.array([[htt, hto], [hto, hoo]])


def brute_profile(f, thetas, lo, hi, n=40001):
    """max over a fine omega grid of f(theta, omega), per theta."""
    om = np.linspace(lo, hi, n)
    return np.array([f(t, om).max() for t in thetas])


SQUARE_GAP_TOML = """
[model]
name = "square-gap"
loss = "(theta - omega)**2"

[[players]]
name = "theta"
sense = "min"
symbols = ["theta"]

[[players]]
name = "omega"
sense = "max"
symbols = ["omega"]

[domain]
theta = [-1.0, 1.0]
omega = [-1.0, 1.0]
"""


def python_game(formula, box=(-1.0, 1.0)):
    th, om = sp.symbols("theta omega", real=True)
    return Model(name="game", description="test game", loss=formula(th, om),
                 players=(Player("theta", "min", (th,)), Player("omega", "max", (om,))),
                 domain={"theta": box, "omega": box})


# ------------------------------------------------------------ well-posedness
def test_square_gap_known_answer_from_toml_and_python(tmp_path):
    path = tmp_path / "square.toml"
    path.write_text(SQUARE_GAP_TOML)
    for model in (load_model_toml(path).model, python_game(lambda t, o: (t - o) ** 2)):
        rep = analyze_wellposedness(model)
        assert rep.upper_value == pytest.approx(1.0, abs=1e-9)
        assert rep.lower_value == pytest.approx(0.0, abs=1e-9)
        assert rep.gap == pytest.approx(1.0, abs=1e-9)
        assert not rep.saddle_point and rep.saddle is None and rep.value is None
        # min_theta max_omega is attained at theta = 0, with best response at a corner
        assert rep.upper_point[0] == pytest.approx(0.0, abs=1e-6)
        assert abs(rep.upper_point[1]) == pytest.approx(1.0)


def test_quadratic_game_saddle_at_origin():
    for a, b, c in [(1.0, 1.0, 1.0), (2.0, -0.7, 0.5)]:
        rep = analyze_wellposedness(get_model("quadratic-game", a=a, b=b, c=c))
        assert rep.saddle_point
        assert rep.upper_value == pytest.approx(0.0, abs=1e-9)
        assert rep.lower_value == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(rep.saddle, (0.0, 0.0), atol=1e-6)


def test_quadratic_game_saddle_on_the_boundary_closed_form():
    # g = th^2/2 + th om - om^2/2 on [0.5, 1.5] x [-1, 1]: U = L = 1/4 at (1/2, 1/2)
    rep = analyze_wellposedness(get_model("quadratic-game"), box={"theta": (0.5, 1.5), "omega": (-1, 1)})
    assert rep.upper_value == pytest.approx(0.25, abs=1e-9)
    assert rep.lower_value == pytest.approx(0.25, abs=1e-9)
    assert rep.saddle_point
    np.testing.assert_allclose(rep.saddle, (0.5, 0.5), atol=1e-6)


def test_bilinear_game_symmetric_box_has_saddle_at_zero():
    rep = analyze_wellposedness(get_model("quadratic-game", a=0.0, c=0.0), box={"theta": (-1, 1), "omega": (-1, 1)})
    assert rep.gap == pytest.approx(0.0, abs=1e-9)
    assert rep.saddle_point
    np.testing.assert_allclose(rep.saddle, (0.0, 0.0), atol=1e-6)


def test_nonconvex_game_against_brute_force():
    f = lambda t, o: np.sin(3 * t + 0.4) * np.cos(2 * o - 0.3) + t * o / 2  # noqa: E731
    model = python_game(lambda t, o: sp.sin(3 * t + sp.Rational(2, 5)) * sp.cos(2 * o - sp.Rational(3, 10))
                        + t * o / 2, box=(-1.5, 1.5))
    rep = analyze_wellposedness(model)
    grid = np.linspace(-1.5, 1.5, 3001)
    G = f(grid[:, None], grid[None, :])
    upper_bf, lower_bf = G.max(axis=1).min(), G.min(axis=0).max()
    # the brute-force outer search is off by up to (slope of the profile) x (grid step) at its kink
    assert rep.upper_value == pytest.approx(upper_bf, abs=2e-3)
    assert rep.lower_value == pytest.approx(lower_bf, abs=2e-3)
    assert rep.upper_value <= upper_bf + 1e-6 and rep.lower_value >= lower_bf - 1e-6
    # the refined inner problems are solved globally: a fine brute-force inner search agrees
    fine = np.linspace(-1.5, 1.5, 200001)
    assert f(rep.upper_point[0], fine).max() == pytest.approx(rep.upper_value, abs=1e-8)
    assert f(fine, rep.lower_point[1]).min() == pytest.approx(rep.lower_value, abs=1e-8)
    assert not rep.saddle_point and rep.gap > 0.4


def test_two_dimensional_min_player_profile_closed_form():
    t1, t2, om = sp.symbols("t1 t2 omega", real=True)
    model = Model(name="quad3", description="", loss=t1**2 + t2**2 - om**2 + t1 * om,
                  players=(Player("theta", "min", (t1, t2)), Player("omega", "max", (om,))),
                  domain={"t1": (-1, 1), "t2": (-1, 1), "omega": (-1, 1)})
    rep = analyze_wellposedness(model, points=15)
    assert rep.saddle_point
    np.testing.assert_allclose(rep.saddle, (0, 0, 0), atol=1e-5)
    conv = analyze_convexity(model, points=15)
    p = conv.profile
    T1, T2 = np.meshgrid(*p.axes, indexing="ij")
    np.testing.assert_allclose(p.values, 1.25 * T1**2 + T2**2, atol=1e-10)  # omega* = t1 / 2
    assert p.convex and conv.failures == ()


def test_one_player_model_values_are_the_minimum():
    rep = analyze_wellposedness(get_model("quadratic", a=2.0), box={"x": (0.5, 2.0)})
    assert rep.upper_value == rep.lower_value == pytest.approx(0.25)  # a x^2 / 2 at x = 0.5
    assert rep.saddle_point and rep.saddle == pytest.approx((0.5,))


# ------------------------------------------------------------ convexity
@pytest.mark.parametrize("c", [0.0, 1.0])
def test_dirac_gan_convexity_failures_against_finite_differences(c):
    rep = analyze_convexity(get_model("dirac-gan", c=c))
    theta_block, omega_block = rep.blocks
    assert theta_block.requirement == "convex" and omega_block.requirement == "concave"
    pts = [f for f in rep.failures if f.player == "theta"]
    assert len(pts) >= 3
    f = lambda t, o: dirac_g(t, o, c)  # noqa: E731
    for fp in pts:
        th, om = fp.point
        H = fd_hessian(f, th, om)
        assert fp.eigenvalue < 0
        assert fp.eigenvalue == pytest.approx(H[0, 0], abs=1e-6)
        # closed form D2_theta g = -omega^2 sigmoid(omega theta) sigmoid(-omega theta)
        sig = 1 / (1 + np.exp(-om * th))
        assert fp.eigenvalue == pytest.approx(-om**2 * sig * (1 - sig), rel=1e-12, abs=1e-15)
    # not convex exactly off the line omega = 0: every grid point but one column
    n_om = len(rep.axes[1])
    assert theta_block.failure_fraction == pytest.approx(1 - 1 / n_om)
    assert not theta_block.fails[:, n_om // 2].any()
    # D2_omega g = -c^2 s'(c omega) - theta^2 s'(-omega theta) <= 0: concave everywhere
    assert omega_block.holds and omega_block.failure_fraction == 0.0
    assert np.all(omega_block.extreme <= 1e-12)


def test_gaussian_gan_convexity_failures_against_finite_differences():
    rep = analyze_convexity(get_model("gaussian-gan"))
    pts = [f for f in rep.failures if f.player == "theta"]
    assert len(pts) >= 3
    order = get_model("gaussian-gan").quadrature_order
    same_rule = lambda t, o: gaussian_g(t, o, order=order)  # noqa: E731  (the model's quadrature rule)
    for fp in pts:
        assert fp.eigenvalue < -1e-3
        assert fp.eigenvalue == pytest.approx(fd_hessian(same_rule, *fp.point)[0, 0], abs=1e-6)
        # and against the converged expectation, within the quadrature error of that order
        assert fp.eigenvalue == pytest.approx(fd_hessian(gaussian_g, *fp.point)[0, 0], abs=1e-5)
    # the grid maps agree with the independent reference at a sample of grid points
    th, om = rep.axes
    i, j = np.array([3, 20, 45, 58]), np.array([5, 17, 40, 55])
    H = fd_hessian(same_rule, th[i], om[j])
    np.testing.assert_allclose(rep.blocks[0].extreme[i, j], H[0, 0], atol=1e-6)
    np.testing.assert_allclose(rep.blocks[1].extreme[i, j], H[1, 1], atol=1e-6)


def test_max_player_nonconcavity_detected():
    rep = analyze_convexity(get_model("quadratic-game", c=-1.5))
    theta_block, omega_block = rep.blocks
    assert theta_block.holds
    assert omega_block.failure_fraction == 1.0
    pts = [f for f in rep.failures if f.player == "omega"]
    assert pts and all(f.requirement == "concave" and f.eigenvalue == pytest.approx(1.5) for f in pts)


def test_dirac_gan_profile_against_brute_force_and_closed_form():
    rep = analyze_convexity(get_model("dirac-gan"))
    p = rep.profile
    thetas = p.axes[0]
    f = lambda t, o: dirac_g(t, o, 0.0)  # noqa: E731
    ref = brute_profile(f, thetas, -2.0, 2.0)
    assert np.all(p.values >= ref - 1e-12)
    np.testing.assert_allclose(p.values, ref, atol=1e-7)
    # closed form on omega in [-2, 2]: P = -log 2 - log(1 + exp(-2 |theta|))
    np.testing.assert_allclose(p.values, -np.log(2) - np.log1p(np.exp(-2 * np.abs(thetas))), atol=1e-10)
    # P is concave on each side of 0, so not convex; each reported point is a midpoint violation
    assert not p.convex and p.failures
    h = thetas[1] - thetas[0]
    for (t,), curv in p.failures:
        assert curv < 0
        mid = brute_profile(f, [t - h, t, t + h], -2.0, 2.0)
        assert mid[1] > (mid[0] + mid[2]) / 2


def test_gaussian_gan_profile_against_brute_force():
    rep = analyze_convexity(get_model("gaussian-gan"), points=41)
    p = rep.profile
    order = get_model("gaussian-gan").quadrature_order
    ref = brute_profile(lambda t, o: gaussian_g(t, o, order=order), p.axes[0], -2.0, 2.0, n=8001)
    assert np.all(p.values >= ref - 1e-9)
    np.testing.assert_allclose(p.values, ref, atol=1e-6)
    curv = np.diff(ref, 2) / (p.axes[0][1] - p.axes[0][0]) ** 2
    np.testing.assert_allclose(p.curvature[1:-1], curv, atol=1e-3)
    assert not p.convex
    for (t,), c in p.failures:
        k = int(np.argmin(np.abs(p.axes[0] - t)))
        assert curv[k - 1] < 0


def test_bad_box_and_points_raise_input_error():
    model = get_model("dirac-gan")
    with pytest.raises(InputError, match="'phi'"):
        analyze_convexity(model, box={"phi": (0, 1)})
    with pytest.raises(InputError, match="lo < hi"):
        analyze_wellposedness(model, box={"theta": (1, 1)})
    with pytest.raises(InputError, match="points"):
        analyze_wellposedness(model, points=2)


# ------------------------------------------------------------ CLI
def test_cli_json_keys_and_known_answer(capsys, tmp_path):
    assert main(["analyze", "dirac-gan", "--json", "--points", "41"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("upper_value", "lower_value", "gap", "saddle_point", "convexity_failures", "convexity"):
        assert key in out
    assert isinstance(out["saddle_point"], bool)
    assert out["convexity_failures"] and all(f["eigenvalue"] < 0 for f in out["convexity_failures"])
    assert set(out["convexity_failures"][0]["point"]) == {"theta", "omega"}

    path = tmp_path / "square.toml"
    path.write_text(SQUARE_GAP_TOML)
    assert main(["analyze", str(path), "--json", "--box", "theta=-1:1,omega=-1:1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["upper_value"] == pytest.approx(1.0, abs=1e-9)
    assert out["lower_value"] == pytest.approx(0.0, abs=1e-9)
    assert out["saddle_point"] is False


def test_cli_text_output(capsys):
    assert main(["analyze", "quadratic-game", "--param", "a=0,c=0", "--box", "theta=-1:1",
                 "--box", "omega=-1:1", "--points", "21"]) == 0
    out = capsys.readouterr().out
    assert "upper value" in out and "saddle point at theta=0, omega=0" in out


@pytest.mark.parametrize("argv, fragment", [
    (["analyze", "dirac-gan", "--box", "phi=-1:1"], "'phi'"),
    (["analyze", "dirac-gan", "--box", "theta=1:-1"], "1:-1"),
    (["analyze", "dirac-gan", "--box", "theta=a:1"], "a:1"),
    (["analyze", "dirac-gan", "--box", "theta=0:1:2"], "0:1:2"),
    (["analyze", "dirac-gan", "--box", "theta"], "theta"),
    (["analyze", "dirac-gan", "--points", "3"], "3"),
    (["analyze", "no-such-model"], "no-such-model"),
    (["analyze", "dirac-gan", "--param", "zz=1"], "zz"),
])
def test_cli_bad_input_exit_code_2(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err
