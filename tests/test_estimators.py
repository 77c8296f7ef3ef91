"""Online estimators against brute-force weighted regressions and synthetic quadratics
with known curvature and noise; LocalPolicy against the dimensionless SDE, path by path."""

import numpy as np
import pytest

from stochctl.errors import InputError
from stochctl.policy import (CompositeEstimator, Estimate, LocalPolicy, MicroBatchNoise, PolicyTable,
                             RegressionEstimator, SecantCurvature, TableAxis, TableValue, policy_inputs)


def ema_weights(k, beta):
    """Bias-corrected EMA weights w_j = (1-beta) beta^(k-j) / (1-beta^k), j = 1..k."""
    return (1 - beta) * beta ** np.arange(k - 1, -1, -1) / (1 - beta ** k)


def brute_force_regression(G, X, beta, x_now):
    """Weighted regression statistics of the stored history (rows = steps)."""
    w = ema_weights(len(G), beta)[:, None]
    mg, mx = (w * G).sum(0), (w * X).sum(0)
    vg = (w * (G - mg) ** 2).sum(0)
    vx = (w * (X - mx) ** 2).sum(0)
    c = (w * (G - mg) * (X - mx)).sum(0)
    S = (w ** 2).sum()
    res = np.maximum(vg - c ** 2 / vx, 0)
    s2_i = res / (1 - 2 * S)
    d2 = mg ** 2 / (mg ** 2).sum()
    a = (d2 * c).sum() / (d2 * vx).sum()
    s2 = (d2 * res).sum() / (1 - 2 * S)
    g_hat = mg + a * (x_now - mx)
    grad_norm = np.sqrt((g_hat ** 2).sum())
    a_i = c / vx
    gi = mg + a_i * (x_now - mx)
    gn_i = np.abs(gi)
    s2_rms = res.mean() / (1 - 2 * S)
    rms = np.sqrt(max((w * G ** 2).sum(0).mean() - s2_rms, 0.0))
    return dict(a=a, s2=s2, grad_norm=grad_norm, a_i=a_i, s2_i=s2_i, gn_i=gn_i, d2=d2, s2_rms=s2_rms, rms=rms)


def test_regression_recursion_equals_brute_force(rng):
    n, k, beta = 6, 57, 0.93
    a_true = rng.uniform(0.5, 3, n)
    X = np.cumsum(rng.normal(size=(k, n)), 0) + 3.0
    G = a_true * X + rng.normal(size=(k, n))
    x_now = X[-1] + 0.1
    ref = brute_force_regression(G, X, beta, x_now)
    d = RegressionEstimator(beta, warmup=3)
    c = RegressionEstimator(beta, mode="coordinate", warmup=3)
    for g, x in zip(G, X):
        d.update(g, x)
        c.update(list(np.split(g, [2])), list(np.split(x, [2])))  # lists of arrays are flattened
    e = d.estimate(x_now)
    assert e.count == k and e.ready
    np.testing.assert_allclose([e.a, e.s2, e.grad_norm], [ref["a"], ref["s2"], ref["grad_norm"]], rtol=1e-10)
    ec = c.estimate(x_now)
    np.testing.assert_allclose(ec.a, ref["a_i"], rtol=1e-10)
    np.testing.assert_allclose(ec.s2, ref["s2_i"], rtol=1e-10)
    np.testing.assert_allclose(ec.grad_norm, ref["gn_i"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ec.weights, ref["d2"], rtol=1e-12)
    assert e.distance == pytest.approx(ref["grad_norm"] / ref["a"], rel=1e-10)
    # the array-generic functional path (the one jax runs) agrees as well
    r = RegressionEstimator(beta, mode="rms", warmup=3)
    for g, x in zip(G, X):
        r.update_parts((g[:2], g[2:]), (x[:2], x[2:]))
    er = r.estimate(x_now)
    np.testing.assert_allclose([er.a, er.s2, er.grad_norm], [ref["a"], ref["s2_rms"], ref["rms"]], rtol=1e-10)
    ep = r.estimate_parts((x_now[:3], x_now[3:]))
    assert (ep.a, ep.s2, ep.grad_norm) == (er.a, er.s2, er.grad_norm)  # same kernels, same order
    assert ref["rms"] > 0  # the floor at 0 is not what is compared
    for mode, key in (("direction", ("a", "s2", "grad_norm")), ("coordinate", ("a_i", "s2_i", "gn_i")),
                      ("rms", ("a", "s2_rms", "rms"))):
        fn = RegressionEstimator(beta, mode=mode, warmup=3)
        state = fn.init_state(X[0], np)
        for g, x in zip(G, X):
            state = fn.next_state(state, g, x, np)
        r = fn.read(state, x_now, np)
        for name, ref_name in zip(("a", "s2", "grad_norm"), key):
            np.testing.assert_allclose(r[name], ref[ref_name], rtol=1e-10, atol=1e-12)
    total = RegressionEstimator(beta, noise="total", warmup=3)
    for g, x in zip(G, X):
        total.update(g, x)
    w = ema_weights(k, beta)[:, None]
    mg = (w * G).sum(0)
    vg = (w * (G - mg) ** 2).sum(0)
    S = (w ** 2).sum()
    assert total.estimate().s2 == pytest.approx((ref["d2"] * vg).sum() / (1 - S), rel=1e-10)


def sgd_on_quadratic(rng, a, s, h, n, steps, est, x0=0.0):
    """SGD on f = sum_i a_i x_i^2 / 2 with gradient noise N(0, s^2) per coordinate."""
    x = np.full(n, float(x0)) + 0.1 * rng.normal(size=n)
    for _ in range(steps):
        g = a * x + s * rng.normal(size=n)
        est.update(g, x)
        x = x - h * g
    return x


def test_direction_estimates_converge_on_stationary_sgd(rng):
    """a and s^2 of SGD at stationarity.

    Regression slope: Var(a_hat) = s^2 S sum(d_i^4) / (Vx (sum d_i^2)^2) for
    regressor variance Vx = h^2 s^2 / (1 - (1 - h a)^2) and S = sum_j w_j^2
    = (1-beta)/(1+beta). The window mean of x also depends on the noise of the
    step being regressed, a bias of about S / (h a) relative (1 percent
    here). Residual variance: relative standard error sqrt(2 S sum d^4).
    """
    a, s, h, n, beta = 2.0, 1.0, 0.05, 100, 0.999
    est = RegressionEstimator(beta)
    x = sgd_on_quadratic(rng, a, s, h, n, 8000, est)
    e = est.estimate(x)
    d2 = est.state["mg"] ** 2 / (est.state["mg"] ** 2).sum()
    S = (1 - beta) / (1 + beta)
    vx = h ** 2 * s ** 2 / (1 - (1 - h * a) ** 2)
    se_a = np.sqrt(s ** 2 * S * (d2 ** 2).sum() / vx)
    bias = a * S / (h * a)
    assert abs(e.a - a) < 4 * se_a + bias, (e.a, se_a)
    se_s2 = s ** 2 * np.sqrt(2 * S * (d2 ** 2).sum())
    assert abs(e.s2 - s ** 2) < 4 * se_s2 + 0.01
    assert est.state["sumw2"] == pytest.approx(S, rel=1e-3)


def test_coordinate_estimates_converge_for_distinct_curvatures(rng):
    """Per-coordinate slopes: z_i = (a_hat_i - a_i) / se_i with se_i^2 = s^2 S / Vx_i,
    Vx_i the stationary variance of coordinate i; the z_i must look standard normal."""
    n, s, h, beta = 64, 0.5, 0.05, 0.999
    a = np.linspace(0.5, 4.0, n)
    est = RegressionEstimator(beta, mode="coordinate")
    x = sgd_on_quadratic(rng, a, s, h, n, 8000, est)
    e = est.estimate(x)
    S = (1 - beta) / (1 + beta)
    vx = h ** 2 * s ** 2 / (1 - (1 - h * a) ** 2)
    z = (e.a - a) / np.sqrt(s ** 2 * S / vx)
    assert np.all(np.abs(z) < 5), z
    assert abs(z.mean()) < 4 / np.sqrt(n) + 0.5  # 0.5: the window bias S/(h a) in units of se
    np.testing.assert_allclose(e.s2, s ** 2, rtol=0.15)
    assert abs(e.s2.mean() / s ** 2 - 1) < 4 * np.sqrt(2 * S / n) + 0.01


def test_distance_tracks_the_minimum_in_the_transient(rng):
    """Far from the minimum (signal >> noise) |grad| / a is the distance |x|."""
    a, s, h, n = 1.5, 0.05, 0.01, 20
    est = RegressionEstimator(0.95)
    x = np.full(n, 5.0)
    for _ in range(60):
        g = a * x + s * rng.normal(size=n)
        est.update(g, x)
        x = x - h * g
    e = est.estimate(x)
    assert e.a == pytest.approx(a, rel=0.02)
    assert e.grad_norm == pytest.approx(a * np.linalg.norm(x), rel=0.01)
    assert e.distance == pytest.approx(np.linalg.norm(x), rel=0.03)
    lagging = est.estimate()  # without the current parameters: the EMA gradient, which lags
    assert lagging.grad_norm > 1.05 * a * np.linalg.norm(x)


def test_rms_mode_reads_the_stationary_sgd_distance_in_any_dimension(rng):
    """At the stationary point of SGD with step h on f = a |x|^2 / 2 with noise s^2 per
    coordinate, Var x_i = h s^2 / (a (2 - h a)), so y^2 = |grad f|^2 / (a h tr Sigma)
    has mean 1 / (2 - h a) whatever the dimension n; the rms mode must read that
    (averaged over chains and times). Allowances: the window bias of a (relative
    S / (h a) = 0.5 percent here) and, for n = 1, E[1 / a_hat] - 1 / a ~ se(a)^2 (1 percent).
    The direction mode's y^2 grows like n."""
    a, s, h, beta, chains = 1.0, 0.5, 0.1, 0.999, 16
    target = 1 / (2 - h * a)
    for n in (1, 400):
        x = s * np.sqrt(h / (a * (2 - h * a))) * rng.normal(size=(chains, n))
        ests = [RegressionEstimator(beta, mode="rms") for _ in range(chains)]
        old = RegressionEstimator(beta)
        y2, y2_old = [], []
        for k in range(6000):
            g = a * x + s * rng.normal(size=x.shape)
            for c in range(chains):
                ests[c].update(g[c], x[c])
            old.update(g[0], x[0])
            x = x - h * g
            if k >= 2000 and k % 100 == 0:
                for c in range(chains):
                    e = ests[c].estimate()
                    y2.append(e.grad_norm ** 2 / (e.a * h * e.s2))
                e = old.estimate(x[0])
                y2_old.append(e.grad_norm ** 2 / (e.a * h * e.s2))
        y2 = np.array(y2).reshape(-1, chains)
        chain_means = y2.mean(0)  # windows overlap within a chain; the chains are independent
        se = chain_means.std(ddof=1) / np.sqrt(chains)
        assert abs(y2.mean() - target) < 4 * se + 0.03 * target, (n, y2.mean(), target, se)
        if n > 1:
            assert np.mean(y2_old) > n / 4  # the direction mode's inflation the rms mode removes


def test_rms_mode_far_from_the_minimum_is_the_window_rms_gradient(rng):
    """Signal >> noise: the rms gradient is that of the window, sqrt(sum_j w_j |grad f(x_j)|^2 / n)."""
    a, s, h, n, beta = 1.5, 0.05, 0.01, 20, 0.95
    est = RegressionEstimator(beta, mode="rms")
    x = np.linspace(3.0, 6.0, n)
    X = []
    for _ in range(60):
        g = a * x + s * rng.normal(size=n)
        est.update(g, x)
        X.append(x)
        x = x - h * g
    e = est.estimate(x)
    w = ema_weights(len(X), beta)[:, None]
    window = np.sqrt((w * (a * np.array(X)) ** 2).sum(0).mean())
    assert e.a == pytest.approx(a, rel=0.02)
    assert e.grad_norm == pytest.approx(window, rel=0.01)
    assert e.grad_norm > a * np.linalg.norm(x) / np.sqrt(n)  # lags the shrinking gradient
    assert e.s2 == pytest.approx(s ** 2, rel=0.5)


def test_secant_is_the_rayleigh_quotient_of_the_steps(rng):
    n, beta = 5, 0.8
    H = np.diag(rng.uniform(0.5, 3.0, n))
    est = SecantCurvature(beta)
    iso = SecantCurvature(beta, mode="coordinate")
    x = rng.normal(size=n)
    X, num, den = [], [], []
    for _ in range(30):
        g = H @ x
        est.update(g, x)
        iso.update(2.5 * x, x)
        if X:
            dx = x - X[-1]
            num.append(dx @ H @ dx)
            den.append(dx @ dx)
        X.append(x.copy())
        x = x - 0.1 * g
    w = ema_weights(len(num), beta)
    assert est.estimate().a == pytest.approx((w * num).sum() / (w * den).sum(), rel=1e-12)
    np.testing.assert_allclose(iso.estimate().a, 2.5, rtol=1e-12)
    assert np.isnan(est.estimate().s2)


def test_microbatch_noise_recovers_the_batch_variance(rng):
    """Per-sample noise variance sigma^2, batch B in k chunks: the batch-mean gradient has
    variance sigma^2 / B; each step's unbiased estimate has relative variance 2/(k-1)."""
    n, B, k, sigma2, steps = 200, 64, 8, 4.0, 100
    est = MicroBatchNoise(beta=0.99)
    grad = np.linspace(1.0, 2.0, n)
    for _ in range(steps):
        samples = grad + np.sqrt(sigma2) * rng.normal(size=(B, n))
        est.update(samples.reshape(k, B // k, n).mean(1))
    e = est.estimate()
    d2 = est.state["mg"] ** 2 / (est.state["mg"] ** 2).sum()
    se = sigma2 / B * np.sqrt(2 / (k - 1) * (d2 ** 2).sum() / steps)
    assert abs(e.s2 - sigma2 / B) < 5 * se
    assert e.grad_norm == pytest.approx(np.linalg.norm(grad), rel=0.01)
    per_sample = MicroBatchNoise(beta=0.99, mode="coordinate")
    for _ in range(50):
        per_sample.update(grad[:4] + np.sqrt(sigma2) * rng.normal(size=(B, 4)))
    np.testing.assert_allclose(per_sample.estimate().s2, sigma2 / B, rtol=0.15)
    with pytest.raises(InputError, match="at least 2"):
        est.update(np.ones((1, n)))


def test_composite_takes_curvature_and_noise_from_its_parts(rng):
    a, n = 1.7, 30
    comp = CompositeEstimator(SecantCurvature(0.9), MicroBatchNoise(0.9))
    x = rng.normal(size=n) + 4.0
    for _ in range(20):
        chunks = a * x + 0.2 * rng.normal(size=(4, n))
        g = chunks.mean(0)
        comp.update(g, x, chunk_grads=chunks)
        x = x - 0.05 * g
    e = comp.estimate(x)
    assert e.ready and e.count == 19
    assert e.s2 == comp.noise.estimate().s2
    assert e.a == pytest.approx(a, rel=0.05)
    assert e.s2 == pytest.approx(0.04 / 4, rel=0.5)


def test_nonfinite_gradients_are_skipped(rng):
    est = RegressionEstimator(0.9, warmup=3)
    est.update(np.full(4, np.nan), np.full(4, np.inf))  # even as the very first observation
    assert est.state["skipped"] == 1 and est.state["count"] == 0 and np.all(est.state["mx"] == 0)
    for _ in range(5):
        x = rng.normal(size=4)
        est.update(2 * x, x)
    before = {k: np.copy(v) for k, v in est.state.items()}
    est.update(np.array([np.nan, 1, 1, 1]), np.ones(4))
    est.update(np.ones(4), np.array([1, np.inf, 1, 1]))
    assert est.state["skipped"] == 3
    for k in ("mg", "mx", "vg", "vx", "cgx", "count", "sumw2"):
        np.testing.assert_array_equal(est.state[k], before[k])


def test_state_dict_round_trip_continues_identically(rng):
    a = RegressionEstimator(0.95, mode="coordinate", warmup=4)
    data = [(rng.normal(size=3), rng.normal(size=3)) for _ in range(20)]
    for g, x in data[:10]:
        a.update(g, x)
    b = RegressionEstimator(0.95, mode="coordinate", warmup=4)
    b.load_state_dict(a.state_dict())
    for g, x in data[10:]:
        a.update(g, x)
        b.update(g, x)
    np.testing.assert_array_equal(a.estimate(data[-1][1]).a, b.estimate(data[-1][1]).a)
    with pytest.raises(InputError, match="configuration"):
        RegressionEstimator(0.9, mode="coordinate", warmup=4).load_state_dict(a.state_dict())
    with pytest.raises(InputError, match="not a regression state"):
        a.load_state_dict(SecantCurvature().state_dict())


@pytest.mark.parametrize("kw, match", [
    (dict(beta=1.0), "beta"), (dict(mode="diag"), r"\('direction', 'coordinate', 'rms'\)"),
    (dict(noise="x"), "noise"), (dict(warmup=1), "warmup"),
])
def test_estimator_options_are_validated(kw, match):
    with pytest.raises(InputError, match=match):
        RegressionEstimator(**kw)


# ------------------------------------------------------------------ LocalPolicy


def local_table(u_min=0.0, u_max=1.0):
    """Test policy with strong dependence on both inputs: u = clip(0.1 + y^2 / (1 + tau))."""
    tau = np.linspace(0.0, 5.0, 51)
    y = np.linspace(0.0, 6.0, 61)
    U = np.clip(0.1 + y[None, :] ** 2 / (1.0 + tau[:, None]), u_min, u_max)
    return PolicyTable.from_arrays([TableAxis("tau_remaining", tau), TableAxis("y", y)],
                                   [TableValue("u", U, valid_range=(u_min, u_max))])


@pytest.mark.parametrize("a, eta, s", [(1.0, 0.01, 1.0), (4.0, 0.0025, 0.3), (0.25, 0.04, 2.0)])
def test_policy_scaling_reproduces_the_dimensionless_sde_path_by_path(rng, a, eta, s):
    """SGD x <- x - eta u (a x + s xi) with u = policy(k, a, s^2, |a x|) is, after
    Y = x sqrt(a / (eta s^2)), the Euler scheme of dY = -u Y dtau + u dW with step
    a eta and u = U(T - tau, |Y|): the same numbers, path by path."""
    table = local_table()
    K, delta, N = 300, 0.01, 500
    assert a * eta == pytest.approx(delta)
    policy = LocalPolicy(table, total_steps=K, eta=eta)
    xi = np.random.default_rng(7).normal(size=(K, N))
    Y0 = np.random.default_rng(8).normal(0.0, 2.0, N)
    x = Y0 * np.sqrt(eta * s ** 2 / a)
    Y = Y0.copy()
    T = K * delta
    for k in range(K):
        stats = Estimate(np.full(N, a), np.full(N, s ** 2), np.abs(a * x), count=k, ready=True)
        u = policy(k, stats)
        x = x - eta * u * (a * x + s * xi[k])
        uY = table.lookup(tau_remaining=T - k * delta, y=np.abs(Y))["u"]
        Y = Y - delta * uY * Y - uY * np.sqrt(delta) * xi[k]
    np.testing.assert_allclose(x * np.sqrt(a / (eta * s ** 2)), Y, rtol=1e-9, atol=1e-12)
    assert policy.counts["ok"] == K * N and policy.counts["clamped"] > 0  # |Y| > 6 happens


def test_policy_inputs_formula():
    tau, y = policy_inputs(np.array(2.0), np.array(0.5), np.array(3.0), 0.1, 40)
    assert tau == pytest.approx(2.0 * 0.1 * 40)
    assert y == pytest.approx((3.0 / 2.0) * np.sqrt(2.0 / (0.1 * 0.5)))


def test_policy_guards_and_counts():
    table = local_table(u_min=0.05, u_max=0.9)
    pol = LocalPolicy(table, total_steps=100, eta=0.1, nonconvex_cap=0.6)
    assert pol(0, Estimate(1.0, 1.0, 1.0, 0, ready=False)) == 0.6          # warmup: u_max capped
    assert pol(5, {"a": -2.0, "s2": 1.0, "grad_norm": 1.0}) == 0.6        # not convex: endpoint, capped
    assert pol(5, {"a": np.nan, "s2": 1.0, "grad_norm": 1.0}) == 0.05     # NaN: safe u_min
    assert pol(5, {"a": 1.0, "s2": np.nan, "grad_norm": 1.0}) == 0.05
    assert pol(5, {"a": 1.0, "s2": -1.0, "grad_norm": 1.0}) == 0.05
    u = pol(5, {"a": 1.0, "s2": 0.0, "grad_norm": 1.0})                   # no noise: y = inf, clamped
    assert u == pytest.approx(table.lookup(tau_remaining=0.1 * 95, y=6.0)["u"])
    expect = table.lookup(tau_remaining=2.0 * 0.1 * 95, y=0.3 / np.sqrt(2.0 * 0.1 * 0.25))["u"]
    assert pol(5, {"a": 2.0, "s2": 0.25, "grad_norm": 0.3}) == pytest.approx(expect, rel=1e-12)
    assert pol.counts == {"ok": 2, "warmup": 1, "nonconvex": 1, "fallback": 3, "clamped": 2, "nan": 0}
    assert pol(150, {"a": 2.0, "s2": 0.25, "grad_norm": 0.3}) == pytest.approx(
        table.lookup(tau_remaining=0.0, y=0.3 / np.sqrt(2.0 * 0.1 * 0.25))["u"])  # past K: clamped
    assert LocalPolicy(table, total_steps=10, eta=1.0).nonconvex_multiplier == 0.9


def test_policy_degenerate_estimator_falls_back():
    """Parameters that never move give Var(x) = 0: a is undetermined, the multiplier is u_min."""
    est = RegressionEstimator(0.9, warmup=3)
    x = np.ones(3)
    for g in np.random.default_rng(1).normal(size=(10, 3)):
        est.update(g, x)
    e = est.estimate(x)
    assert np.isnan(e.a)
    pol = LocalPolicy(local_table(), total_steps=50, eta=0.1)
    assert pol(10, e) == 0.0 and pol.counts["fallback"] == 1


def test_concave_direction_is_detected():
    rng = np.random.default_rng(3)
    est = RegressionEstimator(0.95, warmup=5)
    x = rng.normal(size=8)
    for _ in range(50):
        g = -1.0 * x + 0.01 * rng.normal(size=8)  # f = -|x|^2/2
        est.update(g, x)
        x = x - 0.02 * g
    e = est.estimate(x)
    assert e.a == pytest.approx(-1.0, rel=0.05)
    pol = LocalPolicy(local_table(), total_steps=100, eta=0.02, nonconvex_cap=0.25)
    assert pol(50, e) == 0.25 and pol.counts["nonconvex"] == 1


def test_policy_configuration_errors():
    table = local_table()
    with pytest.raises(InputError, match=r"axes \[.tau_remaining., .y.\] do not fit: a trainer reads \[.tau., .y.\].*axis .tau_remaining. does not"):
        LocalPolicy(table, total_steps=10, tau_axis="tau")
    with pytest.raises(InputError, match="needs eta"):
        LocalPolicy(table, total_steps=10)(0, {"a": 1, "s2": 1, "grad_norm": 1})
    with pytest.raises(InputError, match="total_steps"):
        LocalPolicy(table, total_steps=0)
    with pytest.raises(InputError, match="warmup_multiplier"):
        LocalPolicy(table, total_steps=10, warmup_multiplier=2.0)
    with pytest.raises(InputError, match="grad_norm"):
        LocalPolicy(table, total_steps=10, eta=1.0)(0, {"a": 1, "s2": 1})
    swapped = PolicyTable.from_arrays([("y", table.axis("y").breakpoints),
                                       ("tau_remaining", table.axis("tau_remaining").breakpoints)],
                                      {"u": table["u"].T})
    p1 = LocalPolicy(table, total_steps=10, eta=0.5)
    p2 = LocalPolicy(swapped, total_steps=10, eta=0.5)
    st = {"a": 1.3, "s2": 0.7, "grad_norm": 0.4}
    assert p1(3, st) == pytest.approx(p2(3, st), rel=1e-14)


def test_scalar_and_array_policy_paths_agree(rng):
    """The plain-Python scalar path and the array path classify and interpolate alike."""
    n = 400
    a = rng.choice([-1.0, 0.0, np.nan, 0.5, 2.0, 30.0], n) * rng.uniform(0.5, 1.5, n)
    s2 = rng.choice([0.0, np.nan, -1.0, 0.3, 1.0, 5.0], n)
    gn = rng.choice([np.nan, 0.0, 0.2, 1.0, 40.0], n)
    ready = rng.uniform(size=n) > 0.1
    p_scalar = LocalPolicy(local_table(0.05, 0.95), total_steps=60, eta=0.1, nonconvex_cap=0.7)
    p_array = LocalPolicy(local_table(0.05, 0.95), total_steps=60, eta=0.1, nonconvex_cap=0.7)
    for r in (True, False):
        sel = ready == r
        u_arr = p_array(7, Estimate(a[sel], s2[sel], gn[sel], ready=r))
        u_sca = [p_scalar(7, Estimate(float(x), float(y), float(z), ready=r))
                 for x, y, z in zip(a[sel], s2[sel], gn[sel])]
        np.testing.assert_allclose(u_sca, u_arr, rtol=1e-14)
    assert p_scalar.counts == p_array.counts
    assert all(p_scalar.counts[k] > 0 for k in ("ok", "warmup", "nonconvex", "fallback", "clamped"))
    assert p_scalar.table.stats.as_dict() == p_array.table.stats.as_dict()


def test_tuple_of_views_gives_the_flat_results_bit_for_bit(rng):
    """update_parts/estimate_parts (a network's tensors as float32 views) equal update/estimate
    on the concatenated float64 copy, bit for bit, including a skipped non-finite step."""
    sizes = (5, 1, 130, 7, 2, 33)  # segment boundaries at every offset mod 4
    parts, flat = RegressionEstimator(0.9, warmup=3), RegressionEstimator(0.9, warmup=3)
    a_true = rng.uniform(0.5, 2.0, sum(sizes))
    x = rng.normal(size=sum(sizes))
    for k in range(25):
        g = (a_true * x + 0.3 * rng.normal(size=x.size)).astype(np.float32)
        seen = g.copy()
        if k == 11:
            seen[40] = np.inf
        xf = x.astype(np.float32)
        cuts = np.cumsum(sizes)[:-1]
        parts.update_parts(tuple(np.split(seen, cuts)), tuple(np.split(xf, cuts)))
        flat.update(seen.astype(np.float64), xf.astype(np.float64))
        x = x - 0.1 * g
        xn = x.astype(np.float32)
        e1, e2 = parts.estimate_parts(tuple(np.split(xn, cuts))), flat.estimate(xn.astype(np.float64))
        assert (e1.count, e1.ready) == (e2.count, e2.ready)
        for f in ("a", "s2", "grad_norm"):
            u, v = getattr(e1, f), getattr(e2, f)
            assert u == v or (np.isnan(u) and np.isnan(v))
    for key in flat.state:
        np.testing.assert_array_equal(parts.state[key], flat.state[key])
    assert parts.state["skipped"] == 1 and parts.state["count"] == 24
    # and both agree with the array-namespace read-out (numpy, pairwise sums) to rounding
    ref = flat._run(flat.read, np, flat.state, xn.astype(np.float64))
    assert e1.a == pytest.approx(float(ref["a"]), rel=1e-12)
    assert e1.s2 == pytest.approx(float(ref["s2"]), rel=1e-12)
    assert e1.grad_norm == pytest.approx(float(ref["grad_norm"]), rel=1e-12)
    with pytest.raises(InputError, match="changed size"):
        parts.update_parts((g[:3],), (xf[:3],))
