"""ControlledLR on real PyTorch training loops, checked against the numpy estimator
and policy fed with the same gradients; checkpoints, groups, Adam, a GAN, fallbacks."""

import copy
import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stochctl.errors import InputError  # noqa: E402
from stochctl.policy import (ControlledLR, LocalPolicy, PolicyTable, RegressionEstimator,  # noqa: E402
                             TableAxis, TableValue, directional_curvature)

K = 120


def make_table(u_min=0.0, u_max=1.0):
    tau = np.linspace(0.0, 20.0, 81)
    y = np.linspace(0.0, 6.0, 61)
    U = np.clip(0.1 + y[None, :] ** 2 / (1.0 + tau[:, None]), u_min, u_max)
    return PolicyTable.from_arrays([TableAxis("tau_remaining", tau), TableAxis("y", y)],
                                   [TableValue("u", U, valid_range=(u_min, u_max))])


TABLE = make_table()


def regression_data(seed=0, n=256, d=5):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    Y = X @ torch.randn(d, 1, generator=g) + 0.5 * torch.randn(n, 1, generator=g)
    return X, Y


def flat(tensors, grads=False):
    return np.concatenate([(p.grad if grads else p).detach().numpy().astype(np.float64).ravel()
                           for p in tensors])


def batches(seed, steps, n=256, size=16):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, n, (size,), generator=g) for _ in range(steps)]


def test_sgd_learning_rates_follow_the_reference_policy():
    torch.manual_seed(0)
    X, Y = regression_data()
    model = torch.nn.Linear(5, 1)
    eta = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K))
    ref_est = RegressionEstimator()
    ref_pol = LocalPolicy(TABLE, total_steps=K, eta=eta)
    assert sched.get_last_lr() == [eta * ref_pol.warmup_multiplier]
    losses = []
    for k, idx in enumerate(batches(1, K)):
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        g, x = flat(model.parameters(), grads=True), flat(model.parameters())
        opt.step()
        sched.step()
        ref_est.update(g, x)
        u = ref_pol(k + 1, ref_est.estimate(flat(model.parameters())))
        assert sched.get_last_lr()[0] == pytest.approx(eta * u, rel=1e-9, abs=1e-15)
        assert opt.param_groups[0]["lr"] == sched.get_last_lr()[0]
        losses.append(((model(X) - Y) ** 2).mean().item())
    assert losses[-1] < 0.5 * losses[0]
    assert sched.counts["warmup"] == 20 and sched.counts["ok"] == K + 1 - 20
    assert sched.last_estimates[0].a > 0


def train_steps(model, opt, sched, X, Y, idxs):
    for idx in idxs:
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def test_state_dict_round_trip_reproduces_the_next_lr():
    torch.manual_seed(1)
    X, Y = regression_data(2)
    policy = LocalPolicy(TABLE, total_steps=K)
    model = torch.nn.Linear(5, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    sched = ControlledLR(opt, policy)
    idxs = batches(3, 40)
    train_steps(model, opt, sched, X, Y, idxs[:30])
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    lr_at_save = sched.get_last_lr()
    train_steps(model, opt, sched, X, Y, idxs[30:])
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)  # the state is plain tensors and numbers
    model2 = torch.nn.Linear(5, 1)
    model2.load_state_dict(ckpt["model"])
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.5)
    sched2 = ControlledLR(opt2, LocalPolicy(TABLE, total_steps=K))
    opt2.load_state_dict(ckpt["opt"])
    sched2.load_state_dict(ckpt["sched"])
    assert sched2.get_last_lr() == lr_at_save and sched2.last_epoch == 30
    train_steps(model2, opt2, sched2, X, Y, idxs[30:])
    assert sched2.get_last_lr() == sched.get_last_lr()
    assert sched2.counts == sched.counts
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    other = ControlledLR(torch.optim.SGD(torch.nn.Linear(5, 1).parameters(), lr=0.05),
                         LocalPolicy(make_table(u_max=0.8), total_steps=K))
    with pytest.raises(InputError, match="different policy"):
        other.load_state_dict(ckpt["sched"])


def test_each_parameter_group_has_its_own_estimate_and_rate():
    torch.manual_seed(2)
    X, Y = regression_data(4)
    model = torch.nn.Linear(5, 1)
    etas = (0.05, 0.01)
    opt = torch.optim.SGD([{"params": [model.weight], "lr": etas[0]},
                           {"params": [model.bias], "lr": etas[1]}])
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K))
    refs = [RegressionEstimator() for _ in etas]
    ref_pol = LocalPolicy(TABLE, total_steps=K)
    for k, idx in enumerate(batches(5, 60)):
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        obs = [(flat([p], True), flat([p])) for p in (model.weight, model.bias)]
        opt.step()
        sched.step()
        for i, (p, eta) in enumerate(zip((model.weight, model.bias), etas)):
            refs[i].update(*obs[i])
            u = ref_pol(k + 1, refs[i].estimate(flat([p])), eta=eta)
            assert sched.get_last_lr()[i] == pytest.approx(eta * u, rel=1e-9, abs=1e-15)
    u0, u1 = sched.last_multipliers
    assert u0 != pytest.approx(u1)
    assert sched.last_estimates[0].a != pytest.approx(sched.last_estimates[1].a)


def test_adam_learning_rate_is_scaled_and_nothing_else_changes():
    torch.manual_seed(3)
    X, Y = regression_data(6)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    init = copy.deepcopy(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    # Adam's step is not eta * grad: the local-model mapping takes an SGD-equivalent eta
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K), eta=5.0)
    idxs = batches(7, 50)
    lrs = []
    for idx in idxs:
        lrs.append(opt.param_groups[0]["lr"])
        train_steps(model, opt, sched, X, Y, [idx])
    assert len(set(lrs)) > 10 and max(lrs) <= 0.01
    replay = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    replay.load_state_dict(init)
    opt2 = torch.optim.Adam(replay.parameters(), lr=0.01)
    for lr, idx in zip(lrs, idxs):
        opt2.param_groups[0]["lr"] = lr
        loss = ((replay(X[idx]) - Y[idx]) ** 2).mean()
        opt2.zero_grad()
        loss.backward()
        opt2.step()
    for p, q in zip(model.parameters(), replay.parameters()):
        assert torch.equal(p, q)


def test_gan_with_two_optimizers_and_two_schedulers():
    torch.manual_seed(4)
    G = torch.nn.Linear(1, 1)
    D = torch.nn.Linear(1, 1)
    opt_g = torch.optim.SGD(G.parameters(), lr=0.05)
    opt_d = torch.optim.Adam(D.parameters(), lr=0.02)
    sched_g = ControlledLR(opt_g, LocalPolicy(TABLE, total_steps=80))
    sched_d = ControlledLR(opt_d, LocalPolicy(TABLE, total_steps=80))
    ref = {"g": RegressionEstimator(), "d": RegressionEstimator()}
    pol = LocalPolicy(TABLE, total_steps=80)
    bce = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(9)
    for k in range(80):
        real = 2.0 + 0.5 * torch.randn(32, 1, generator=gen)
        fake = G(torch.randn(32, 1, generator=gen))
        d_loss = bce(D(real), torch.ones(32, 1)) + bce(D(fake.detach()), torch.zeros(32, 1))
        opt_d.zero_grad()
        d_loss.backward()
        obs_d = (flat(D.parameters(), True), flat(D.parameters()))
        opt_d.step()
        sched_d.step()
        g_loss = bce(D(fake), torch.ones(32, 1))
        opt_g.zero_grad()
        g_loss.backward()  # also fills D's gradients, which opt_g must not see
        obs_g = (flat(G.parameters(), True), flat(G.parameters()))
        opt_g.step()
        sched_g.step()
        for name, obs, net, sched, eta in (("d", obs_d, D, sched_d, 0.02), ("g", obs_g, G, sched_g, 0.05)):
            ref[name].update(*obs)
            u = pol(k + 1, ref[name].estimate(flat(net.parameters())), eta=eta)
            assert sched.get_last_lr()[0] == pytest.approx(eta * u, rel=1e-9, abs=1e-15)
    assert sched_g.estimators[0].state["count"] == 80 and sched_d.estimators[0].state["count"] == 80
    assert sched_g.counts["ok"] == sched_d.counts["ok"] == 61


def test_safe_fallbacks_warmup_nonconvex_and_nan():
    w = torch.nn.Parameter(torch.tensor([1.0, -0.5, 2.0]))
    opt = torch.optim.SGD([w], lr=0.1)
    policy = LocalPolicy(make_table(u_min=0.05), total_steps=K, nonconvex_cap=0.3)
    sched = ControlledLR(opt, policy, estimator=RegressionEstimator(0.9, warmup=5))
    gen = torch.Generator().manual_seed(0)
    assert sched.get_last_lr() == [pytest.approx(0.1 * 0.3)]  # warmup multiplier = capped u_max
    for _ in range(30):  # concave objective -|w|^2/2: a < 0, the endpoint rule with the cap
        loss = -0.5 * (w ** 2).sum() + 0.01 * (torch.randn(3, generator=gen) * w).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert sched.last_estimates[0].a < 0
    assert sched.get_last_lr() == [pytest.approx(0.1 * 0.3)]
    assert sched.counts["nonconvex"] == 26 and sched.counts["warmup"] == 5
    state = copy.deepcopy(sched.estimators[0].state)
    w.grad = torch.tensor([float("nan"), 0.0, 0.0])
    with torch.no_grad():
        opt.step()  # the optimizer applies the NaN: the parameters are now NaN
    sched.step()
    est = sched.estimators[0].state
    assert est["skipped"] == state["skipped"] + 1
    np.testing.assert_array_equal(est["mg"], state["mg"])
    assert sched.get_last_lr() == [pytest.approx(0.1 * 0.05)]  # NaN statistics: safe u_min
    assert sched.counts["fallback"] == 1


def test_metrics_override_the_estimates():
    w = torch.nn.Parameter(torch.zeros(4))
    opt = torch.optim.SGD([w], lr=0.05)
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K))
    w.grad = torch.ones(4)
    opt.step()
    sched.step(metrics={"a": 2.0, "s2": 0.5, "grad_norm": 0.4})
    y = 0.4 / np.sqrt(2.0 * 0.05 * 0.5)
    expect = TABLE.lookup(tau_remaining=2.0 * 0.05 * (K - 1), y=y)["u"]
    assert sched.get_last_lr()[0] == pytest.approx(0.05 * expect, rel=1e-12)
    with pytest.raises(InputError, match="unknown metrics \\['loss'\\]"):
        sched.step(metrics={"loss": 1.0})
    with pytest.raises(InputError, match="one value per group"):
        sched.step(metrics={"a": [1.0, 2.0]})


def test_plain_callable_policy_and_eta_override():
    w = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.SGD([w], lr=0.2)
    seen = []

    def policy(step, stats):
        seen.append((step, stats.ready))
        return 0.5

    sched = ControlledLR(opt, policy)
    assert sched.get_last_lr() == [0.1] and seen == [(0, False)]
    with pytest.raises(InputError, match="eta"):
        ControlledLR(opt, LocalPolicy(TABLE, total_steps=K), eta=-1.0)
    with pytest.raises(InputError, match="optimizer"):
        ControlledLR(object(), policy)


def test_directional_curvature_is_the_rayleigh_quotient():
    h = torch.tensor([0.5, 2.0, 3.0], dtype=torch.float64)
    w = torch.tensor([1.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    loss = 0.5 * (h * w ** 2).sum() + (w[0] * w[1]) ** 2 * 0
    a = directional_curvature(loss, [w])
    g = (h * w).detach()
    d = g / g.norm()
    assert a == pytest.approx(float((h * d ** 2).sum()), rel=1e-12)


def test_every_n_steps_holds_the_rate_and_observes_the_last_step_before_a_change():
    torch.manual_seed(5)
    X, Y = regression_data(8)
    model = torch.nn.Linear(5, 1)
    eta, every = 0.05, 3
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K), estimator=RegressionEstimator(warmup=5),
                         every=every)
    ref_est = RegressionEstimator(warmup=5)
    ref_pol = LocalPolicy(TABLE, total_steps=K, eta=eta)
    lr_prev = sched.get_last_lr()[0]
    for k, idx in enumerate(batches(9, 60)):
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        g, x = flat(model.parameters(), grads=True), flat(model.parameters())
        opt.step()
        sched.step()
        if (k + 1) % every:
            assert sched.get_last_lr()[0] == lr_prev
            continue
        ref_est.update(g, x)
        u = ref_pol(k + 1, ref_est.estimate(flat(model.parameters())))
        assert sched.get_last_lr()[0] == pytest.approx(eta * u, rel=1e-9, abs=1e-15)
        lr_prev = sched.get_last_lr()[0]
    assert sched.estimators[0].state["count"] == 60 // every
    assert sched.counts["ok"] > 5


def test_coordinate_mode_reduces_with_gradient_direction_weights():
    """Per-coordinate multipliers u_i give one rate sum_i d_i^2 u_i (d: unit EMA gradient)."""
    torch.manual_seed(6)
    X, Y = regression_data(10)
    model = torch.nn.Linear(5, 1)
    eta = 0.05
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K),
                         estimator=RegressionEstimator(mode="coordinate", warmup=10))
    ref = RegressionEstimator(mode="coordinate", warmup=10)
    pol = LocalPolicy(TABLE, total_steps=K, eta=eta)
    for k, idx in enumerate(batches(11, 40)):
        loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        g, x = flat(model.parameters(), grads=True), flat(model.parameters())
        opt.step()
        sched.step()
        ref.update(g, x)
        e = ref.estimate(flat(model.parameters()))
        u = pol(k + 1, e)
        assert np.shape(u) == (6,)
        expect = float((e.weights * u).sum() / e.weights.sum())
        assert sched.get_last_lr()[0] == pytest.approx(eta * expect, rel=1e-9, abs=1e-15)
    assert sched.counts["ok"] > 0


def run_pair(make_model, steps=30, seed=12):
    """Train twice from the same start: with the tensor views (default) and with flat copies."""
    import stochctl.trainers.torch_adapter as ta

    lrs = []
    for views in (True, False):
        torch.manual_seed(seed)
        X, Y = regression_data(seed)
        model = make_model()
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K), estimator=RegressionEstimator(warmup=4))
        if not views:
            original = ta._param_views
            ta._param_views = lambda params, cache: None
        try:
            out = []
            for idx in batches(seed + 1, steps):
                loss = ((model(X[idx].to(next(model.parameters()).dtype)) - Y[idx]) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                out.append(sched.get_last_lr()[0])
        finally:
            if not views:
                ta._param_views = original
        lrs.append(out)
    return lrs


def test_tensor_views_and_flat_copies_give_the_same_rates():
    """The in-place views (CPU float32/float64) and the copying fallback agree bit for bit;
    a parameter without a gradient counts as a zero gradient in both."""
    class Partly(torch.nn.Module):
        def __init__(self, dtype):
            super().__init__()
            self.lin = torch.nn.Linear(5, 1).to(dtype)
            self.unused = torch.nn.Parameter(torch.ones(3, dtype=dtype))  # never gets a gradient

        def forward(self, x):
            return self.lin(x)

    for dtype in (torch.float32, torch.float64):
        with_views, with_copies = run_pair(lambda dtype=dtype: Partly(dtype))
        assert with_views == with_copies
        assert len(set(with_views[5:])) > 1  # the rate moves


def test_tensors_that_cannot_be_viewed_use_copies():
    from stochctl.trainers.torch_adapter import _grad_views, _param_views

    w = torch.nn.Parameter(torch.randn(3, 4).t())  # not contiguous
    assert _param_views([w], {}) is None
    h = torch.nn.Parameter(torch.randn(4, dtype=torch.float16))
    assert _param_views([h], {}) is None
    mixed = [torch.nn.Parameter(torch.randn(2)), torch.nn.Parameter(torch.randn(2, dtype=torch.float64))]
    assert _param_views(mixed, {}) is None
    p = [torch.nn.Parameter(torch.randn(2, 3)), torch.nn.Parameter(torch.randn(3))]
    cache = {}
    views = _param_views(p, cache)
    assert [v.shape for v in views] == [(6,), (3,)] and _param_views(p, cache) is views
    with torch.no_grad():
        p[0].add_(1.0)  # in place: the views see it
    np.testing.assert_array_equal(views[0], p[0].detach().numpy().reshape(-1))
    p[0].data = torch.zeros(2, 3)  # new storage: new views
    assert _param_views(p, cache) is not views
    p[0].grad = torch.ones(3, 2).t()  # a non-contiguous gradient is copied
    p[1].grad = None
    g = _grad_views(p, cache)
    np.testing.assert_array_equal(g[0], np.ones(6, dtype=np.float32))
    np.testing.assert_array_equal(g[1], np.zeros(3, dtype=np.float32))
    # half precision trains through the copying path
    model = torch.nn.Linear(5, 1).to(torch.float16)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    sched = ControlledLR(opt, LocalPolicy(TABLE, total_steps=K), estimator=RegressionEstimator(warmup=3))
    X, Y = regression_data(3)
    for idx in batches(4, 10):
        loss = ((model(X[idx].half()) - Y[idx].half()) ** 2).float().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    assert sched.estimators[0].state["count"] == 10 and sched.counts["ok"] == 10 - 3 + 1
