"""optax adapters under jax.jit against the numpy estimator and policy on the same
gradients; the jax.numpy table lookup against the numba kernel; fallbacks."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")
optax = pytest.importorskip("optax")
import jax.numpy as jnp  # noqa: E402

from stochctl.errors import InputError  # noqa: E402
from stochctl.policy import (LocalPolicy, PolicySchedule, PolicyTable, RegressionEstimator,  # noqa: E402
                             TableAxis, TableValue, scale_by_policy)
from stochctl.trainers.optax_adapter import counts_dict, jax_table_lookup  # noqa: E402

K = 100
F32 = dict(rtol=2e-4, atol=2e-5)  # float32 state against the float64 reference


def make_table(u_min=0.0, u_max=1.0, extrapolation=("clip", "clip")):
    tau = np.linspace(0.0, 20.0, 81)
    y = np.linspace(0.0, 6.0, 61)
    U = np.clip(0.1 + y[None, :] ** 2 / (1.0 + tau[:, None]), u_min, u_max)
    return PolicyTable.from_arrays([TableAxis("tau_remaining", tau, extrapolation=extrapolation),
                                    TableAxis("y", y)],
                                   [TableValue("u", U, valid_range=(u_min, u_max))])


TABLE = make_table()


def test_jax_lookup_matches_the_numba_kernel(rng):
    q = np.column_stack([rng.uniform(-2, 25, 400), rng.uniform(-1, 7, 400)])
    q[::37, 0] = np.nan
    q[::41, 1] = np.inf
    ref = TABLE.lookup(q)
    out, status = jax.jit(jax_table_lookup(TABLE, "u"))(q[:, 0].astype(np.float32), q[:, 1].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(status), ref.status)
    np.testing.assert_allclose(np.asarray(out), ref["u"], rtol=1e-5, atol=1e-6)
    axes = [np.sort(rng.uniform(0, 1, 6)), np.sort(rng.uniform(0, 1, 5)), np.sort(rng.uniform(0, 1, 4))]
    t3 = PolicyTable.from_arrays([("a", axes[0]), ("b", axes[1]), ("c", axes[2])],
                                 {"v": rng.uniform(size=(6, 5, 4))})
    q3 = rng.uniform(-0.1, 1.1, (300, 3))
    out3, st3 = jax_table_lookup(t3, "v")(*q3.T)
    ref3 = t3.lookup(q3)
    np.testing.assert_array_equal(np.asarray(st3), ref3.status)
    np.testing.assert_allclose(np.asarray(out3), ref3["v"], rtol=1e-5, atol=1e-6)


def quadratic_problem(seed, n=8, batch=8):
    """Least squares with mini-batch noise; data fixed up front so both paths see the same batches."""
    r = np.random.default_rng(seed)
    A = r.normal(size=(256, n)).astype(np.float32)
    b = (A @ r.normal(size=n) + 0.5 * r.normal(size=256)).astype(np.float32)
    idx = r.integers(0, 256, (K, batch))
    A, b = jnp.asarray(A), jnp.asarray(b)

    def loss(p, i):
        Ai, bi = A[i], b[i]
        return jnp.mean((Ai @ p["w"] + p["c"] - bi) ** 2)

    params = {"w": jnp.zeros(n, jnp.float32), "c": jnp.zeros((), jnp.float32)}
    return loss, params, idx


def flat(tree):
    return np.concatenate([np.asarray(t, np.float64).ravel() for t in jax.tree.leaves(tree)])


def run_reference(gs, xs, eta, mode="direction", warmup=20):
    """Multiplier of update k from the numpy estimator fed with updates 0..k-1."""
    est = RegressionEstimator(mode=mode, warmup=warmup)
    pol = LocalPolicy(TABLE, total_steps=K, eta=eta)
    us = []
    for g, x in zip(gs, xs):
        us.append(pol(len(us), est.estimate(x)))
        est.update(g, x)
    return np.array(us), pol.counts


@pytest.mark.parametrize("mode", ["direction", "rms"])
def test_scale_by_policy_follows_the_reference(mode):
    loss, params, idx = quadratic_problem(0)
    eta = 0.05
    policy = LocalPolicy(TABLE, total_steps=K, eta=eta)
    tx = optax.chain(scale_by_policy(policy, estimator=RegressionEstimator(mode=mode)), optax.sgd(eta))
    state = tx.init(params)

    @jax.jit
    def step(p, s, i):
        g = jax.grad(loss)(p, i)
        up, s = tx.update(g, s, p)
        return optax.apply_updates(p, up), s, g, up

    gs, xs, us = [], [], []
    for i in idx:
        xs.append(flat(params))
        params, state, g, up = step(params, state, i)
        gs.append(flat(g))
        us.append(float(state[0].multiplier))
        np.testing.assert_allclose(flat(up), -eta * us[-1] * gs[-1], rtol=1e-6, atol=1e-9)
    ref, ref_counts = run_reference(gs, xs, eta, mode)
    np.testing.assert_allclose(us, ref, **F32)
    assert len(np.unique(np.round(ref, 6))) > 20
    assert counts_dict(state[0]) == ref_counts


def test_policy_schedule_with_inject_hyperparams_matches_scale_by_policy():
    loss, params, idx = quadratic_problem(1)
    eta = 0.05
    policy = LocalPolicy(TABLE, total_steps=K)
    sched = PolicySchedule(policy, eta=eta, params=params)
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
    state = tx.init(params)
    assert float(state.hyperparams["learning_rate"]) == pytest.approx(eta * policy.warmup_multiplier)

    @jax.jit
    def step(p, s, i):
        g = jax.grad(loss)(p, i)
        up, s = tx.update(g, s, p, grads=g, model_params=p)
        return optax.apply_updates(p, up), s, g

    gs, xs, lrs = [], [], []
    for i in idx:
        xs.append(flat(params))
        params, state, g = step(params, state, i)
        gs.append(flat(g))
        lrs.append(float(state.hyperparams["learning_rate"]))
    ref, ref_counts = run_reference(gs, xs, eta)
    np.testing.assert_allclose(np.array(lrs) / eta, ref, **F32)
    assert counts_dict(state.hyperparams_states["learning_rate"]) == ref_counts


def test_coordinate_mode_scales_each_coordinate():
    loss, params, idx = quadratic_problem(2, n=4)
    eta = 0.05
    est = RegressionEstimator(mode="coordinate", warmup=10)
    tx = optax.chain(scale_by_policy(LocalPolicy(TABLE, total_steps=K, eta=eta), estimator=est),
                     optax.sgd(eta))
    state = tx.init(params)
    step = jax.jit(lambda p, s, i: (lambda g: (g, *tx.update(g, s, p)))(jax.grad(loss)(p, i)))
    ref_est = RegressionEstimator(mode="coordinate", warmup=10)
    ref_pol = LocalPolicy(TABLE, total_steps=K, eta=eta)
    for k, i in enumerate(idx):
        x = flat(params)
        u_ref = ref_pol(k, ref_est.estimate(x))
        g, up, state = step(params, state, i)
        u = np.asarray(state[0].multiplier)
        assert u.shape == (5,)
        np.testing.assert_allclose(u, u_ref, **F32)
        np.testing.assert_allclose(flat(up), -eta * u * flat(g), rtol=1e-6, atol=1e-9)
        ref_est.update(flat(g), x)
        params = optax.apply_updates(params, up)
    assert counts_dict(state[0])["ok"] > 0


def test_estimator_sees_raw_gradients_after_adam():
    loss, params, idx = quadratic_problem(3)
    eta = 0.01
    policy = LocalPolicy(TABLE, total_steps=K, eta=0.5)
    tx = optax.chain(optax.scale_by_adam(), scale_by_policy(policy), optax.scale(-eta))
    state = tx.init(params)

    @jax.jit
    def step(p, s, i):
        g = jax.grad(loss)(p, i)
        up, s = tx.update(g, s, p, grads=g)
        return optax.apply_updates(p, up), s, g

    gs, xs, us = [], [], []
    for i in idx:
        xs.append(flat(params))
        params, state, g = step(params, state, i)
        gs.append(flat(g))
        us.append(float(state[1].multiplier))
    ref, _ = run_reference(gs, xs, 0.5)
    np.testing.assert_allclose(us, ref, **F32)


def test_fallbacks_and_counts():
    policy = LocalPolicy(make_table(u_min=0.05), total_steps=K, eta=0.1, nonconvex_cap=0.3)
    tx = scale_by_policy(policy, estimator=RegressionEstimator(0.9, warmup=5))
    params = jnp.array([1.0, -0.5, 2.0])
    state = tx.init(params)
    update = jax.jit(tx.update)
    r = np.random.default_rng(0)
    for _ in range(30):  # concave: g = -x + noise
        g = -params + 0.01 * jnp.asarray(r.normal(size=3), jnp.float32)
        up, state = update(g, state, params)
        params = params - 0.1 * up
    c = counts_dict(state)
    assert c["warmup"] == 5 and c["nonconvex"] == 25
    up, state = update(jnp.array([jnp.nan, 0.0, 0.0]), state, params)
    assert float(state.multiplier) == pytest.approx(0.3)  # computed before the NaN was seen
    assert float(state.estimator["skipped"]) == 1 and float(state.estimator["count"]) == 30
    up, state = update(jnp.ones(3), state, jnp.array([jnp.nan, 1.0, 1.0]))
    assert float(state.multiplier) == pytest.approx(0.05)  # NaN parameters: safe u_min
    assert counts_dict(state)["fallback"] == 1


def test_invalid_configurations_are_refused():
    with pytest.raises(InputError, match="cannot raise"):
        scale_by_policy(LocalPolicy(make_table(extrapolation=("clip", "error")), total_steps=K, eta=0.1))
    with pytest.raises(InputError, match="needs eta"):
        scale_by_policy(LocalPolicy(TABLE, total_steps=K))
    tx = scale_by_policy(LocalPolicy(TABLE, total_steps=K, eta=0.1))
    state = tx.init(jnp.zeros(2))
    with pytest.raises(InputError, match="needs the parameters"):
        tx.update(jnp.ones(2), state)
    sched = PolicySchedule(LocalPolicy(TABLE, total_steps=K), eta=0.1, params=jnp.zeros(2))
    tx2 = optax.inject_hyperparams(optax.sgd)(learning_rate=sched)
    s2 = tx2.init(jnp.zeros(2))
    with pytest.raises(InputError, match="model_params=params"):
        tx2.update(jnp.ones(2), s2, jnp.zeros(2))


# ---------------------------------------------------------------------------------------------
# measured curvature (curvature="own", the loss as the value_fn extra argument)


def _quadratic_runs(lr, a=2.0, s=1.0, steps=60, opt="sgd", make_policy=None):
    """The same noisy 1-D quadratic under ControlledLR (torch) and scale_by_policy (optax), float64."""
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    from stochctl.policy import ControlledLR, OneStepPolicy

    make_policy = make_policy or (lambda: OneStepPolicy(u_max=1.0))
    xis = np.random.default_rng(7).standard_normal(steps)
    x = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
    topt = torch.optim.SGD([x], lr=lr) if opt == "sgd" else torch.optim.Adam([x], lr=lr)
    sched = ControlledLR(topt, make_policy(), curvature="own", method="hvp", curvature_every=1)  # exact, as jax.jvp
    torch_path, torch_lr = [], []
    for xi in xis:
        closure = lambda: (a * x ** 2 / 2 - s * float(xi) * x).sum()  # noqa: E731
        topt.zero_grad()
        closure().backward()
        sched.step(closure=closure)
        topt.step()
        torch_path.append(x.item())
        torch_lr.append(sched.get_last_lr()[0])

    def loss(p, xi):
        return jnp.sum(a * p["x"] ** 2 / 2 - s * xi * p["x"])

    with jax.enable_x64(True):
        base = optax.identity() if opt == "sgd" else optax.scale_by_adam()
        tx = optax.chain(base, scale_by_policy(make_policy(), eta=lr, curvature="own", curvature_every=1), optax.scale(-lr))
        p = {"x": jnp.array([3.0], dtype=jnp.float64)}
        state = tx.init(p)

        @jax.jit
        def step(p, state, xi):
            g = jax.grad(loss)(p, xi)
            up, state = tx.update(g, state, p, value_fn=loss, xi=xi, grads=g)
            return optax.apply_updates(p, up), state

        jax_path, jax_lr = [], []
        for xi in xis:
            p, state = step(p, state, xi)
            jax_path.append(float(p["x"][0]))
            jax_lr.append(lr * float(state[1].multiplier))
    return np.array(torch_path), np.array(jax_path), np.array(torch_lr), np.array(jax_lr)


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_measured_curvature_agrees_with_the_torch_scheduler(opt):
    tp, jp, tlr, jlr = _quadratic_runs(1.5, opt=opt)  # beyond SGD's explosion threshold 2 / a = 1
    np.testing.assert_allclose(jp, tp, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(jlr, tlr, rtol=1e-12)
    assert np.all(np.abs(tp) < 4.0)


def test_measured_curvature_with_a_discrete_table_agrees_with_torch():
    from stochctl.policies.local_policy import DISCRETE_AXES

    um, h = np.array([1.0, 2.0, 4.0, 8.0]), np.geomspace(1e-3, 4.0, 40)
    tau, y = np.linspace(0.0, 8.0, 5), np.linspace(-6.0, 6.0, 121)
    U, H, _, Y = np.meshgrid(um, h, tau, y, indexing="ij")
    try:
        table = PolicyTable.from_arrays(list(zip(DISCRETE_AXES, (um, h, tau, y))),
                                        {"u": np.minimum(U, Y ** 2 / (1 + H * Y ** 2))}, valid_range=(0.0, 8.0))
    except InputError as exc:
        pytest.skip(f"PolicyTable does not take the four axes of local-discrete yet: {exc}")
    tp, jp, tlr, jlr = _quadratic_runs(1.5, make_policy=lambda: LocalPolicy(table, total_steps=60, u_max=3.0))
    np.testing.assert_allclose(jp, tp, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jlr, tlr, rtol=1e-10)


def test_field_measure_caps_the_coupled_step_as_in_torch():
    # quadratic game g = a th^2/2 + b th om - c om^2/2: field sqrt(a^2 + b^2) for theta, sqrt(b^2 + c^2) for omega
    from stochctl.policy import OneStepPolicy

    a, b, c = 0.1, 2.0, 0.1
    g = lambda th, om: jnp.sum(a * th ** 2 / 2 + b * th * om - c * om ** 2 / 2)  # noqa: E731
    th, om = jnp.array([0.3]), jnp.array([-0.2])
    results = {}
    for name, mine, other, fn, ofn in (("theta", th, om, lambda p: g(p, om), lambda q, p: -g(p, q)),
                                       ("omega", om, th, lambda p: -g(th, p), lambda q, p: g(q, p))):
        tx = scale_by_policy(OneStepPolicy(u_max=1.0), eta=1.0, curvature="field", curvature_every=1)
        state = tx.init(mine)
        grad = jax.grad(fn)(mine)
        up, state = tx.update(grad, state, mine, value_fn=fn, other_value_fn=ofn, other_params=other)
        results[name] = (np.asarray(state.curvature), float(state.multiplier))
    np.testing.assert_allclose(results["theta"][0], [a, np.hypot(a, b)], rtol=1e-6)
    np.testing.assert_allclose(results["omega"][0], [c, np.hypot(b, c)], rtol=1e-6)
    assert results["theta"][1] == pytest.approx(1 / np.hypot(a, b), rel=1e-6)  # eta u field = 1
    assert results["omega"][1] == pytest.approx(1 / np.hypot(b, c), rel=1e-6)


def test_measured_curvature_bad_input():
    from stochctl.policy import OneStepPolicy

    params = {"x": jnp.ones(3)}
    tx = scale_by_policy(OneStepPolicy(), eta=0.1, curvature="own", curvature_every=1)
    state = tx.init(params)
    with pytest.raises(InputError, match=r"value_fn must return a scalar loss; got shape \(3,\)"):
        tx.update(params, state, params, value_fn=lambda p: p["x"] ** 2)
    with pytest.raises(InputError, match="needs the loss"):
        tx.update(params, state, params)
    with pytest.raises(InputError, match="curvature must be None, 'own' or 'field'"):
        scale_by_policy(OneStepPolicy(), eta=0.1, curvature="hessian", curvature_every=1)
    field = scale_by_policy(OneStepPolicy(), eta=0.1, curvature="field", curvature_every=1)
    with pytest.raises(InputError, match="needs the other player"):
        field.update(params, field.init(params), params, value_fn=lambda p: jnp.sum(p["x"] ** 2))
    with pytest.raises(InputError, match="continuous-time table"):
        scale_by_policy(LocalPolicy(TABLE, total_steps=K), eta=0.1, curvature="own", curvature_every=1)
