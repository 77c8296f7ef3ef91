"""Curvature of the step about to be taken, the discrete-time policies and the measured-curvature scheduler.

Oracles: torch.func.hessian of small networks, closed forms of quadratics, the
GDA thresholds of stochctl.analysis.explosion, the optimizer's own step, and the
one-step Bellman rule of the discrete local model.
"""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from torch.func import functional_call, hessian  # noqa: E402

from stochctl.analysis import explosion as ex  # noqa: E402
from stochctl.errors import DivergenceError, InputError  # noqa: E402
from stochctl.models import get_model  # noqa: E402
from stochctl.policy import ControlledLR, LocalPolicy, OneStepPolicy, PolicyTable  # noqa: E402
from stochctl.trainers.curvature import field_measure, own_curvature, step_direction  # noqa: E402
from stochctl.policies.estimators import Estimate  # noqa: E402
from stochctl.policies.local_policy import DISCRETE_AXES  # noqa: E402

F64 = torch.float64


def _flat(ts):
    return torch.cat([t.detach().reshape(-1) for t in ts])


def _unflat(v, params):
    out, i = [], 0
    for p in params:
        out.append(v[i:i + p.numel()].reshape(p.shape))
        i += p.numel()
    return out


def _net(seed, n_in, n_out):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(n_in, 5), torch.nn.Tanh(), torch.nn.Linear(5, n_out)).to(F64)


def _hessian_of(net, loss_of_output, inputs):
    names = [n for n, _ in net.named_parameters()]
    params = list(net.parameters())

    def f(v):
        return loss_of_output(functional_call(net, dict(zip(names, _unflat(v, params))), (inputs,)))

    return hessian(f)(_flat(params))


# ---------------------------------------------------------------------------------------------
# own curvature against torch.func.hessian


@pytest.mark.parametrize("method,rtol,one_sided", [("hvp", 1e-10, False), ("fd", 1e-6, False), ("fd", 1e-6, True)])
def test_own_curvature_matches_hessian(method, rtol, one_sided):
    net = _net(0, 3, 1)
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(16, 3, generator=gen, dtype=F64)
    Y = torch.randn(16, 1, generator=gen, dtype=F64)
    params = list(net.parameters())
    H = _hessian_of(net, lambda out: ((out - Y) ** 2).mean(), X)
    closure = lambda: ((net(X) - Y) ** 2).mean()  # noqa: E731
    directions = [[torch.randn(p.shape, generator=gen, dtype=F64) for p in params]]
    closure().backward()
    grad = [p.grad.clone() for p in params]
    directions.append(grad)  # the SGD step direction
    for d in directions:
        dv = _flat(d)
        exact = float(dv @ H @ dv / (dv @ dv))
        got = own_curvature(closure, params, d, method=method, grad=grad if one_sided else None)
        assert got == pytest.approx(exact, rel=rtol, abs=1e-12)
    before = _flat(params)
    own_curvature(closure, params, directions[0], method=method)
    assert torch.equal(_flat(params), before)  # parameters restored bit for bit


def test_own_curvature_is_signed():
    x = torch.tensor([0.4, -1.0], dtype=F64, requires_grad=True)
    A = torch.tensor([[-3.0, 0.0], [0.0, 1.0]], dtype=F64)
    closure = lambda: 0.5 * x @ A @ x  # noqa: E731
    for method in ("hvp", "fd"):
        assert own_curvature(closure, [x], [torch.tensor([1.0, 0.0], dtype=F64)], method=method) == \
            pytest.approx(-3.0, rel=1e-8)
        assert own_curvature(closure, [x], [torch.tensor([1.0, 1.0], dtype=F64)], method=method) == \
            pytest.approx(-1.0, rel=1e-8)


@pytest.mark.parametrize("opt_name", ["adam", "sgd-momentum"])
def test_step_direction_is_the_step_the_optimizer_takes(opt_name):
    net = _net(2, 2, 1)
    gen = torch.Generator().manual_seed(3)
    X = torch.randn(8, 2, generator=gen, dtype=F64)
    params = list(net.parameters())
    lr = 0.01
    opt = (torch.optim.Adam(params, lr=lr) if opt_name == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True))
    for _ in range(3):
        opt.zero_grad()
        (net(X) ** 2).mean().backward()
        d, g = step_direction(opt, opt.param_groups[0])
        before = _flat(params)
        opt.step()
        np.testing.assert_allclose(((before - _flat(params)) / lr).numpy(), _flat(d).numpy(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# field measure: a small GAN against the Hessians, the quadratic game against the explosion module


def test_field_measure_matches_hessians_of_a_small_gan():
    G, D = _net(4, 1, 2), _net(5, 2, 1)
    gen = torch.Generator().manual_seed(6)
    z = torch.randn(12, 1, generator=gen, dtype=F64)
    x = torch.randn(12, 2, generator=gen, dtype=F64)
    sp = torch.nn.functional.softplus
    gp, dp = list(G.parameters()), list(D.parameters())
    loss_d = lambda: (sp(-D(x)) + sp(D(G(z)))).mean()  # noqa: E731
    loss_g = lambda: sp(-D(G(z))).mean()  # noqa: E731
    ng = sum(p.numel() for p in gp)
    gnames = [n for n, _ in G.named_parameters()]
    dnames = [n for n, _ in D.named_parameters()]

    def joint(which):
        def f(v):
            gv = dict(zip(gnames, _unflat(v[:ng], gp)))
            dv = dict(zip(dnames, _unflat(v[ng:], dp)))
            fake = functional_call(G, gv, (z,))
            if which == "g":
                return sp(-functional_call(D, dv, (fake,))).mean()
            return (sp(-functional_call(D, dv, (x,))) + sp(functional_call(D, dv, (fake,)))).mean()
        return hessian(f)(torch.cat([_flat(gp), _flat(dp)]))

    Hg, Hd = joint("g"), joint("d")
    # rows: the generator's gradient of its loss, then the discriminator's gradient of its loss
    J = torch.cat([Hg[:ng], Hd[ng:]])
    dg = [torch.randn(p.shape, generator=gen, dtype=F64) for p in gp]
    dd = [torch.randn(p.shape, generator=gen, dtype=F64) for p in dp]
    for p, d, cols in ((0, dg, slice(0, ng)), (1, dd, slice(ng, None))):
        dv = _flat(d)
        exact_field = float(torch.linalg.norm(J[:, cols] @ dv) / torch.linalg.norm(dv))
        exact_own = float(dv @ J[cols, cols] @ dv / (dv @ dv))
        for method, rtol in (("hvp", 1e-10), ("fd", 1e-6)):
            own, fld = field_measure([loss_g, loss_d], [gp, dp], p, d, method=method)
            assert own == pytest.approx(exact_own, rel=rtol, abs=1e-10)
            assert fld == pytest.approx(exact_field, rel=rtol)
        # one-sided from this player's gradient at the current point (3 gradient evaluations)
        mine = [loss_g, loss_d][p]
        known = list(torch.autograd.grad(mine(), [gp, dp][p]))
        grads = [known, None] if p == 0 else [None, known]
        own, fld = field_measure([loss_g, loss_d], [gp, dp], p, d, method="fd", grads=grads)
        assert own == pytest.approx(exact_own, rel=1e-5, abs=1e-7)
        assert fld == pytest.approx(exact_field, rel=1e-5)


def _quadratic_game(a, b, c):
    th = torch.tensor([0.3], dtype=F64, requires_grad=True)
    om = torch.tensor([-0.2], dtype=F64, requires_grad=True)
    g = lambda: (a * th ** 2 / 2 + b * th * om - c * om ** 2 / 2).sum()  # noqa: E731
    return [g, lambda: -g()], [[th], [om]]


@pytest.mark.parametrize("method", ["hvp", "fd"])
@pytest.mark.parametrize("a,b,c", [(1.0, 2.0, 1.0), (0.5, 0.3, 0.5), (2.0, 0.0, 0.7), (0.8, 1.5, 0.2)])
def test_field_measure_recovers_the_gda_thresholds(method, a, b, c):
    closures, players = _quadratic_game(a, b, c)
    one = [torch.ones(1, dtype=F64)]
    (own_t, field_t), (own_o, field_o) = ((float(v) for v in field_measure(closures, players, p, one, method=method))
                                          for p in (0, 1))
    r = ex.explosion_thresholds(get_model("quadratic-game", a=a, b=b, c=c), {"theta": 0.3, "omega": -0.2})
    J = np.asarray(r.jacobian)
    tol = dict(rel=1e-8)
    assert (own_t, own_o) == (pytest.approx(J[0, 0], **tol), pytest.approx(J[1, 1], **tol))
    assert field_t == pytest.approx(np.linalg.norm(J[:, 0]), **tol)
    assert field_o == pytest.approx(np.linalg.norm(J[:, 1]), **tol)
    if b == 0.0:  # decoupled: each player's threshold 2 / field, the game's the smaller one
        assert r.simultaneous == pytest.approx(min(2 / field_t, 2 / field_o), rel=1e-8)
    if a == c:  # eigenvalues a +- i b: eta_crit = 2 Re / |lambda|^2 = 2 own / field^2 for both players
        assert r.simultaneous == pytest.approx(2 * own_t / field_t ** 2, rel=1e-8)
        assert r.simultaneous == pytest.approx(2 * own_o / field_o ** 2, rel=1e-8)


# ---------------------------------------------------------------------------------------------
# policies


def test_one_step_policy_closed_form_and_trainer_variables():
    pol = OneStepPolicy(u_max=4.0, total_steps=50)
    a, s2, gn, eta = 2.0, 0.5, 1.0, 0.1
    h = eta * a
    y2 = gn ** 2 / (a * eta * s2)
    u = pol(0, Estimate(a, s2, gn), eta=eta)
    assert u == pytest.approx(min(4.0, y2 / (1 + h * y2)), rel=1e-14)
    snr = gn ** 2 / (gn ** 2 + s2)
    assert eta * u == pytest.approx(snr / a, rel=1e-14)  # DESIGN 4b: eta u = SNR / a
    assert pol(0, Estimate(a, 1e-8, 50.0), eta=0.1) == 4.0  # clipped at u_max
    assert pol(0, Estimate(a, 0.0, 1.0), eta=1.0) == pytest.approx(1 / 2.0)  # no noise: lands, 1/h
    # non-convex: the endpoint u_max, capped by |a| (own) or by the field measure
    assert pol(0, Estimate(-0.1, 0.5, 1.0), eta=0.1) == 4.0
    assert pol(0, Estimate(-2.0, 0.5, 1.0), eta=1.0) == pytest.approx(0.5)
    assert pol(0, Estimate(-0.1, 0.5, 1.0, field=5.0), eta=1.0) == pytest.approx(0.2)
    assert pol(0, Estimate(a, 0.0, 1.0, field=8.0), eta=1.0) == pytest.approx(1 / 8.0)
    assert pol.counts["nonconvex"] == 3


def _discrete_table(u_max_nodes=(1.0, 2.0, 4.0, 8.0)):
    """A synthetic table with the axes of local-discrete and the one-step closed form as values."""
    um = np.asarray(u_max_nodes)
    h = np.geomspace(1e-3, 4.0, 80)
    tau = np.linspace(0.0, 8.0, 5)
    y = np.linspace(-6.0, 6.0, 241)
    U, H, _, Y = np.meshgrid(um, h, tau, y, indexing="ij")
    try:
        return PolicyTable.from_arrays(list(zip(DISCRETE_AXES, (um, h, tau, y))),
                                       {"u": np.minimum(U, Y ** 2 / (1 + H * Y ** 2))}, valid_range=(0.0, 8.0))
    except InputError as exc:  # the table format gains its fourth axis with the local-discrete table
        pytest.skip(f"PolicyTable does not take the four axes of local-discrete yet: {exc}")


def test_discrete_table_policy_agrees_with_the_closed_form():
    table = _discrete_table()
    cases = [(2.0, 0.5, 1.0, 0.1), (1.0, 1.0, 0.3, 0.5), (3.0, 0.2, 2.0, 1.0), (0.5, 0.1, 0.2, 0.2)]
    for u_max in (1.0, 4.0):  # at a node of the u_max axis: the closed form up to the (h, y) interpolation
        lp = LocalPolicy(table, total_steps=100, u_max=u_max)
        one = OneStepPolicy(u_max=u_max)
        for a, s2, gn, eta in cases:
            st = Estimate(a, s2, gn)
            assert lp(0, st, eta=eta) == pytest.approx(one(0, st, eta=eta), abs=0.02)
    # between nodes: linear in u_max between the slices 2 and 4
    lp = LocalPolicy(table, total_steps=100, u_max=3.0)
    for a, s2, gn, eta in cases:
        st = Estimate(a, s2, gn)
        mid = 0.5 * (OneStepPolicy(u_max=2.0)(0, st, eta=eta) + OneStepPolicy(u_max=4.0)(0, st, eta=eta))
        assert lp(0, st, eta=eta) == pytest.approx(mid, abs=0.02)
    # beyond the last h node the step h u of that node is kept
    lp = LocalPolicy(table, total_steps=10, u_max=1.0)
    assert lp(0, Estimate(40.0, 1e-6, 100.0), eta=1.0) * 40.0 == pytest.approx(
        lp(0, Estimate(4.0, 1e-6, 100.0 / math.sqrt(10)), eta=1.0) * 4.0, rel=1e-6)
    # the array path (numpy, and jax in optax) applies the same rule as the scalar one
    scalar = [lp(0, Estimate(a, 1e-6, g), eta=1.0) for a, g in ((40.0, 100.0), (4.0, 100.0 / math.sqrt(10)))]
    arrays = lp(0, Estimate(np.array([40.0, 4.0]), np.array([1e-6, 1e-6]), np.array([100.0, 100.0 / math.sqrt(10)])),
                eta=1.0)
    np.testing.assert_allclose(arrays, scalar, rtol=1e-12)


def test_discrete_policy_bad_input():
    table = _discrete_table()
    with pytest.raises(InputError, match="needs u_max"):
        LocalPolicy(table, total_steps=10)
    with pytest.raises(InputError, match=r"u_max axis range \[1.0, 8.0\]; got 9"):
        LocalPolicy(table, total_steps=10, u_max=9)


def test_tables_whose_axes_do_not_fit_are_refused():
    bad = PolicyTable.from_arrays([("h", [0.1, 1.0]), ("y", [0.0, 1.0])], {"u": np.zeros((2, 2))})
    with pytest.raises(InputError, match=r"axes \['h', 'y'\] do not fit.*'u_max', 'h', 'tau_remaining', 'y'"):
        LocalPolicy(bad, total_steps=10)
    with pytest.raises(InputError, match="u_max= selects a slice"):
        LocalPolicy("local-quadratic", total_steps=10, u_max=2.0)


def test_local_discrete_loads_by_name_once_shipped():
    from stochctl.tables import SHIPPED_TABLES

    if "local-discrete" not in SHIPPED_TABLES:
        pytest.skip("the local-discrete table is not shipped yet")
    lp = LocalPolicy("local-discrete", total_steps=100, u_max=4.0)
    assert lp.discrete and lp.u_max == 4.0
    u = lp(0, Estimate(2.0, 0.5, 1.0), eta=0.1)
    assert 0.0 <= u <= 4.0


# ---------------------------------------------------------------------------------------------
# the scheduler


def _noisy_quadratic(controlled, *, lr, a=2.0, s=1.0, K=400, seed=0, policy=None, opt="sgd", every=1,
                     method="fd", growth=2.0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.tensor([3.0], dtype=F64, requires_grad=True)
    optim = torch.optim.SGD([x], lr=lr) if opt == "sgd" else torch.optim.Adam([x], lr=lr)
    sched = ControlledLR(optim, policy or OneStepPolicy(u_max=1.0), curvature="own", method=method,
                         curvature_every=every, remeasure_growth=growth) if controlled else None
    path = []
    for _ in range(K):
        xi = torch.randn(1, generator=gen, dtype=F64)
        closure = lambda: (a * x ** 2 / 2 - s * xi * x).sum()  # noqa: E731
        optim.zero_grad()
        closure().backward()
        if controlled:
            sched.step(closure=closure)
        optim.step()
        path.append(x.item())
        if not math.isfinite(path[-1]) or abs(path[-1]) > 1e10:
            break
    return np.array(path), sched


def test_greedy_scheduler_survives_a_rate_where_sgd_explodes():
    a, lr = 2.0, 1.5  # constant-rate SGD explodes beyond 2 / a = 1
    plain, _ = _noisy_quadratic(False, lr=lr, a=a)
    assert len(plain) < 400 and abs(plain[-1]) > 1e10  # it explodes
    path, sched = _noisy_quadratic(True, lr=lr, a=a)
    assert len(path) == 400 and np.all(np.abs(path) < 4.0)
    # converges: the noise ratio shrinks the rate, E x^2 falls far below plain SGD's stationary s^2 / (a (2 - eta a))
    assert np.mean(path[-100:] ** 2) < 0.1
    assert sched.last_curvature[0][0] == pytest.approx(a)
    assert sched.counts["ok"] == 400 and sched.curvature_measurements == 400


@pytest.mark.parametrize("method,tol", [("hvp", 1e-12), ("fd", 1e-6)])
@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_first_noiseless_step_lands_on_the_minimum(opt, method, tol):
    # without noise the one-step rule is the Newton step along d: x_1 = 0 for any base rate
    path, sched = _noisy_quadratic(True, lr=3.0, s=0.0, K=1, policy=OneStepPolicy(u_max=1e3), opt=opt,
                                   method=method)
    assert path[0] == pytest.approx(0.0, abs=tol)


def test_curvature_every_reuses_the_measurement():
    _, sched = _noisy_quadratic(True, lr=0.5, K=23, every=5, growth=None)
    assert sched.curvature_measurements == 5  # steps 0, 5, 10, 15, 20
    _, sched = _noisy_quadratic(True, lr=0.5, K=23, every=5)  # the noisy gradient also triggers measurements
    assert sched.curvature_measurements == 5 + sched.remeasurements and sched.remeasurements > 0


def _switching_quadratic(growth, *, K=30, every=10, lr=0.5):
    """f = a_k x^2 / 2 with a = 1 at step 0 and 10 after: at step 1 the gradient is 10 x_1 = 5 against
    x_0 = 1 at the measurement, and the stale curvature 1 would allow eta a = 5 (|1 - 5| = 4 per step)."""
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    optim = torch.optim.SGD([x], lr=lr)
    sched = ControlledLR(optim, OneStepPolicy(u_max=1.0), curvature="own", curvature_every=every,
                         remeasure_growth=growth)
    seen, lrs = [], []
    for k in range(K):
        a = 1.0 if k < 1 else 10.0
        closure = lambda: (a * x ** 2 / 2).sum()  # noqa: E731
        optim.zero_grad()
        closure().backward()
        sched.step(closure=closure)
        optim.step()
        seen.append(sched.last_curvature[0][0])
        lrs.append(float(sched.get_last_lr()[0]))
    sched.lrs = np.array(lrs)
    return np.array(seen), sched


def test_gradient_growth_triggers_a_measurement_before_the_schedule():
    stale, s0 = _switching_quadratic(None)
    assert s0.curvature_measurements == 3 and s0.remeasurements == 0  # steps 0, 10, 20
    assert np.allclose(stale[:10], 1.0) and np.allclose(stale[10:], 10.0)
    # the growth is seen on the device at step 1: that step takes the safe multiplier (0 for the one-step
    # rule) instead of the stale rate eta u = 1 / 1, and the next step measures (the flag is read one step late)
    seen, s1 = _switching_quadratic(2.0)
    assert s1.remeasurements == 1 and s1.curvature_measurements == 4  # steps 0, 2, 10, 20
    assert seen[0] == pytest.approx(1.0) and seen[1] == pytest.approx(1.0) and np.allclose(seen[2:], 10.0)
    assert s1.lrs[0] == pytest.approx(0.5 * 1.0) and s1.lrs[1] == 0.0  # eta u = min(eta, 1 / a) at step 0
    assert np.all(s1.lrs[2:] <= 1.0 / 10.0 + 1e-12)  # once remeasured, never past the landing step 1 / a
    assert s0.lrs[1] > 2.0 / 10.0  # without it, the stale rate is past the explosion threshold 2 / a
    with pytest.raises(InputError, match="remeasure_growth must be a number above 1 or None; got 1.0"):
        _switching_quadratic(1.0)


def test_gan_field_scheduler_caps_the_coupled_step():
    a, b, c = 0.1, 2.0, 0.1
    closures, players = _quadratic_game(a, b, c)
    (th,), (om,) = players
    pol = OneStepPolicy(u_max=1.0)
    opt_g, opt_d = torch.optim.SGD([th], lr=1.0), torch.optim.SGD([om], lr=1.0)
    sg = ControlledLR(opt_g, pol, curvature="field", other_params=[om], curvature_every=1)
    sd = ControlledLR(opt_d, OneStepPolicy(u_max=1.0), curvature="field", other_params=opt_g, curvature_every=1)
    for opt, sch, mine, other in ((opt_d, sd, closures[1], closures[0]), (opt_g, sg, closures[0], closures[1])):
        opt.zero_grad()
        mine().backward()
        sch.step(closure=mine, other_closure=other)
        opt.step()
    # the field cap eta u field <= 1 binds: field = sqrt(a^2 + b^2) (own curvature a alone would allow u = 1)
    assert sg.last_curvature[0] == (pytest.approx(a), pytest.approx(math.hypot(a, b)))
    assert sg.get_last_lr()[0] == pytest.approx(1 / math.hypot(a, b))
    assert sd.get_last_lr()[0] == pytest.approx(1 / math.hypot(b, c))


@pytest.mark.parametrize("method", ["fd", "hvp"])
def test_scheduler_bad_input(method):
    x = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.1)
    sched = ControlledLR(opt, OneStepPolicy(), curvature="own", method=method, curvature_every=1)
    (x ** 2).sum().backward()
    with pytest.raises(InputError, match=r"scalar loss; got a tensor of shape \(2,\)"):
        sched.step(closure=lambda: x ** 2)
    sched.step(closure=lambda: (x ** 2).sum() * float("nan"))  # no host read at the step: masked on the device
    assert float(sched.get_last_lr()[0]) == 0.0  # the safe multiplier of the one-step rule
    with pytest.raises(DivergenceError, match="not finite at 1 scheduler step"):
        sched.counts  # reported when the diagnostics are read
    assert sched.counts["fallback"] == 1 and sched.divergences == 1  # and once only
    with pytest.raises(InputError, match="without a graph"):
        sched.step(closure=lambda: (x ** 2).sum().detach())
    with pytest.raises(InputError, match="needs scheduler.step\\(closure=loss_closure\\)"):
        sched.step()
    with pytest.raises(InputError, match="curvature must be one of"):
        ControlledLR(opt, OneStepPolicy(), curvature="hessian", curvature_every=1)
    with pytest.raises(InputError, match="needs the other player's parameters"):
        ControlledLR(opt, OneStepPolicy(), curvature="field", curvature_every=1)
    plain = ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy())
    with pytest.raises(InputError, match="closure= needs a scheduler with curvature"):
        plain.step(closure=lambda: (x ** 2).sum())
    y = torch.tensor([0.5], dtype=F64, requires_grad=True)
    field = ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy(), curvature="field", other_params=[y],
                         method=method, curvature_every=1)
    with pytest.raises(InputError, match="does not depend on this player's parameters"):
        field.step(closure=lambda: (x ** 2).sum() * y.detach().sum(), other_closure=lambda: (x.detach() * y).sum())
    assert x.grad is not None and torch.equal(x.grad, 2 * x.detach())  # gradients restored after a failure


def test_measured_scheduler_state_round_trip(tmp_path):
    a, s = 2.0, 1.0

    def make():
        x = torch.tensor([3.0], dtype=F64, requires_grad=True)
        opt = torch.optim.SGD([x], lr=1.5)
        return x, opt, ControlledLR(opt, OneStepPolicy(u_max=1.0), curvature="own", curvature_every=3)

    def run(x, opt, sched, xis):
        for xi in xis:
            closure = lambda: (a * x ** 2 / 2 - s * xi * x).sum()  # noqa: E731
            opt.zero_grad()
            closure().backward()
            sched.step(closure=closure)
            opt.step()
        return x.item(), sched.get_last_lr()[0]

    xis = [float(v) for v in np.random.default_rng(3).standard_normal(20)]
    ref = run(*make(), xis)
    x, opt, sched = make()
    run(x, opt, sched, xis[:10])
    torch.save({"x": x.detach(), "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.pt")
    saved = torch.load(tmp_path / "s.pt", weights_only=True)
    x2, opt2, sched2 = make()
    with torch.no_grad():
        x2.copy_(saved["x"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    assert run(x2, opt2, sched2, xis[10:]) == ref
