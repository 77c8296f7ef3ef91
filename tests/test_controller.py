"""The one controller step: closed forms in numpy, torch and jax.numpy, and a torch step without host reads."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stochctl.errors import DivergenceError
from stochctl.policies import LocalPolicy, OneStepPolicy
from stochctl.policies.controller import COUNT_NAMES, controller_step
from stochctl.policies.estimators import Estimate

torch = pytest.importorskip("torch")

# a, s2, |g| with a > 0 and finite noise; one non-convex point; one with noise 0 (y = inf: u = 1 / h)
POINTS = [(2.0, 0.5, 1.0), (0.3, 4.0, 0.2), (7.0, 0.01, 3.0), (-1.5, 1.0, 1.0), (1.0, 0.0, 2.0)]


def _closed_form(a, s2, gn, eta, u_max):
    """u = min(u_max, y^2 / (1 + h y^2)), h = eta a, y^2 = |g|^2 / (a eta s2); u_max for a <= 0 capped at 1 / (eta |a|)."""
    if a <= 0:
        return min(u_max, 1.0 / (eta * abs(a)))
    h = eta * a
    if s2 == 0:
        return min(u_max, 1.0 / h)
    y2 = gn * gn / (a * eta * s2)
    return min(u_max, y2 / (1.0 + h * y2))


@pytest.mark.parametrize("lib", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("eta,u_max", [(0.1, 1.0), (1.0, 4.0), (3.0, 0.5)])
def test_one_step_multiplier_is_the_closed_form(lib, eta, u_max):
    pol = OneStepPolicy(u_max=u_max)
    a, s2, gn = (np.array([p[i] for p in POINTS]) for i in range(3))
    if lib == "torch":
        a, s2, gn = (torch.tensor(v, dtype=torch.float64) for v in (a, s2, gn))
    elif lib == "jax":
        jnp = pytest.importorskip("jax.numpy")
        import jax

        jax.config.update("jax_enable_x64", True)
        a, s2, gn = (jnp.asarray(v) for v in (a, s2, gn))
    c = controller_step(pol, 3, Estimate(a, s2, gn), eta=eta)
    u = np.asarray(c.multiplier.tolist() if lib == "torch" else c.multiplier, dtype=np.float64)
    expected = [_closed_form(*p, eta, u_max) for p in POINTS]
    np.testing.assert_allclose(u, expected, rtol=1e-12)
    assert type(c.multiplier).__module__.split(".")[0] == {"numpy": "numpy", "torch": "torch", "jax": "jax"}[lib] \
        or lib == "jax"
    tally = dict(zip(COUNT_NAMES, np.asarray(c.tally.tolist() if lib == "torch" else c.tally).tolist()))
    assert tally == {"ok": 4, "warmup": 0, "nonconvex": 1, "fallback": 0, "clamped": 0, "nan": 0}


def test_scalar_numpy_and_torch_agree_with_the_table_policy():
    """The discrete-time table read in torch (on the device) equals the numpy lookup, point by point."""
    pol = LocalPolicy("local-discrete", total_steps=50, u_max=1.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, s2, gn = rng.uniform(0.05, 5.0), rng.uniform(0.01, 3.0), rng.uniform(0.0, 3.0)
        ref = controller_step(pol, 7, Estimate(a, s2, gn), eta=0.3)
        t = controller_step(pol, 7, Estimate(*(torch.tensor(v, dtype=torch.float64) for v in (a, s2, gn))), eta=0.3)
        assert float(t.multiplier) == pytest.approx(ref.multiplier, rel=1e-12, abs=1e-15)
        assert t.tally.tolist() == list(ref.tally)


def test_invalid_measurement_takes_the_safe_multiplier_on_the_device():
    pol = OneStepPolicy(u_max=1.0, fallback=0.25)
    a = torch.tensor([2.0, 2.0], dtype=torch.float64)
    c = controller_step(pol, 0, Estimate(a, a * 0 + 0.5, a * 0 + 1.0), eta=0.1, valid=torch.tensor([True, False]))
    assert c.multiplier.tolist() == [pytest.approx(_closed_form(2.0, 0.5, 1.0, 0.1, 1.0)), 0.25]
    assert c.tally.tolist() == [1, 0, 0, 1, 0, 0]


CONVERSIONS = ("item", "__float__", "__bool__", "__int__", "__index__", "tolist", "numpy", "cpu")


@pytest.fixture
def conversions(monkeypatch):
    """Count conversions of tensors to Python values (and host copies) while ``active`` is set."""
    state = {"active": False, "count": 0, "where": []}
    for name in CONVERSIONS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, _name=name, **kwargs):
            if state["active"]:
                state["count"] += 1
                state["where"].append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return state


def _readme_gan(K, *, device="cpu", curvature_every=1, fused=False, conversions=None, per_step=None, lr=2.0):
    """The README's GAN loop (section "A GAN with the discrete-time policy"), K steps."""
    from stochctl.policy import ControlledLR

    torch.manual_seed(0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    G = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(device)
    D = torch.nn.Sequential(torch.nn.Linear(1, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).to(device)
    B = 64
    kw = {"fused": True} if fused else {}
    opt_g = torch.optim.SGD(G.parameters(), lr=lr, **kw)
    opt_d = torch.optim.SGD(D.parameters(), lr=lr, **kw)
    sched_g = ControlledLR(opt_g, OneStepPolicy(u_max=1.0), curvature="field", other_params=D.parameters(),
                           curvature_every=curvature_every)
    sched_d = ControlledLR(opt_d, OneStepPolicy(u_max=1.0), curvature="field", other_params=G.parameters(),
                           curvature_every=curvature_every)
    ones, zeros = torch.ones(B, 1, device=device), torch.zeros(B, 1, device=device)
    for k in range(K):
        x, z = 3.0 + 0.5 * torch.randn(B, 1, device=device), torch.randn(B, 1, device=device)
        d_loss = lambda: bce(D(x), ones) + bce(D(G(z)), zeros)  # noqa: E731
        g_loss = lambda: bce(D(G(z)), ones)  # noqa: E731
        opt_d.zero_grad()
        d_loss().backward()
        for sched, closure, other in ((sched_d, d_loss, g_loss),):
            if conversions is not None:
                conversions["active"], conversions["count"] = True, 0
            sched.step(closure=closure, other_closure=other)
            if conversions is not None:
                conversions["active"] = False
                per_step.append(conversions["count"])
        opt_d.step()
        opt_g.zero_grad()
        g_loss().backward()
        if conversions is not None:
            conversions["active"], conversions["count"] = True, 0
        sched_g.step(closure=g_loss, other_closure=d_loss)
        if conversions is not None:
            conversions["active"] = False
            per_step.append(conversions["count"])
        opt_g.step()
    return sched_g, sched_d


@pytest.mark.parametrize("curvature_every", [1, 3])
def test_readme_gan_step_makes_no_host_read(conversions, curvature_every):
    per_step = []
    sched_g, sched_d = _readme_gan(12, curvature_every=curvature_every, conversions=conversions, per_step=per_step)
    assert len(per_step) == 24 and per_step == [0] * 24, conversions["where"][:10]
    for s in (sched_g, sched_d):
        assert s.curvature_measurements == len(range(0, 12, curvature_every)) + s.remeasurements
    # the diagnostics are converted when read, and read right
    (cg, fg), (cd, fd) = sched_g.last_curvature[0], sched_d.last_curvature[0]
    assert all(math.isfinite(v) for v in (cg, fg, cd, fd)) and fg > 0 and fd > 0
    assert sum(sched_g.counts.values()) == sum(sched_d.counts.values()) == 12
    assert f"{sched_g.get_last_lr()[0]:.3f}" == f"{float(sched_g.get_last_lr()[0]):.3f}"
    assert isinstance(sched_g.optimizer.param_groups[0]["lr"], torch.Tensor)
    lr = float(sched_g.get_last_lr()[0])
    est = sched_g.last_estimates[0]
    # the rate is the field-capped one-step rule at the last estimate: eta u = min(eta, SNR / a, 1 / field)
    assert lr == pytest.approx(2.0 * _closed_form(est.a, est.s2, est.grad_norm, 2.0, 1.0) if est.a > 0 else lr)
    assert lr <= (1.0 / est.field) * (1 + 1e-6)  # float32 parameters


def test_divergence_is_masked_and_reported_when_read():
    from stochctl.policy import ControlledLR

    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.5)
    sched = ControlledLR(opt, OneStepPolicy(u_max=1.0), curvature="own", curvature_every=1)
    gen = torch.Generator().manual_seed(0)
    for k in range(6):
        bad = k in (2, 3)  # the measurement meets a non-finite loss at these steps
        xi = torch.randn(2, generator=gen, dtype=torch.float64)
        opt.zero_grad()
        (x ** 2 - xi * x).sum().backward()
        sched.step(closure=lambda: (x ** 2 - xi * x).sum() * (float("inf") if bad else 1.0))
        assert (float(sched.get_last_lr()[0]) == 0.0) if bad else float(sched.get_last_lr()[0]) > 0
        opt.step()
    with pytest.raises(DivergenceError, match="at 2 scheduler step\\(s\\), the first at step 2"):
        sched.last_curvature
    assert sched.counts["fallback"] == 2 and sched.counts["ok"] + sched.counts["nonconvex"] == 4
    checked = ControlledLR(torch.optim.SGD([x], lr=0.5), OneStepPolicy(u_max=1.0), curvature="own", check_every=2, curvature_every=1)
    closure = lambda: (x ** 2).sum() * float("nan")  # noqa: E731
    checked.step(closure=closure)  # step 1 of 2: not read yet
    with pytest.raises(DivergenceError):
        checked.step(closure=closure)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_readme_gan_runs_under_cuda_sync_debug_mode_error():
    torch.cuda.set_sync_debug_mode("error")
    try:
        _readme_gan(6, device="cuda", fused=True)
        _readme_gan(6, device="cuda", fused=True, curvature_every=3)
        _regression_loop(6, on_device=None, fused=True, device="cuda")  # estimator mode: on the device by default
    finally:
        torch.cuda.set_sync_debug_mode(0)


def _regression_loop(K, *, on_device, conversions=None, per_step=None, fused=False, device="cpu"):
    """Estimator mode (curvature=None, the regression estimator) on a noisy linear regression, K steps."""
    from stochctl.policy import ControlledLR

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 1).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.3, **({"fused": True} if fused else {}))
    sched = ControlledLR(opt, OneStepPolicy(u_max=1.0), on_device=on_device)
    X = torch.randn(64, 3).to(device)
    Y = X.sum(1, keepdim=True) + 0.5 * torch.randn(64, 1).to(device)
    if conversions is not None:  # the estimator's observation runs in the optimizer's step hook: counted too
        observe = sched._observe

        def counted_observe():
            conversions["active"], conversions["count"] = True, 0
            observe()
            conversions["active"] = False
            per_step.append(conversions["count"])

        sched._observe = counted_observe
    lrs = []
    for _ in range(K):
        i = torch.randint(0, 64, (16,)).to(device)
        opt.zero_grad()
        ((net(X[i]) - Y[i]) ** 2).mean().backward()
        opt.step()
        if conversions is not None:
            conversions["active"], conversions["count"] = True, 0
        sched.step()
        if conversions is not None:
            conversions["active"] = False
            per_step.append(conversions["count"])
        lrs.append(sched.optimizer.param_groups[0]["lr"])
    return sched, lrs


def test_estimator_mode_on_device_makes_no_host_read(conversions):
    per_step = []
    sched, lrs = _regression_loop(30, on_device=True, conversions=conversions, per_step=per_step)
    assert len(per_step) == 60 and per_step == [0] * 60, conversions["where"][:10]
    assert all(isinstance(lr, torch.Tensor) for lr in lrs[1:])
    assert sum(sched.counts.values()) == 31 and sched.counts["ok"] > 0  # the constructor's step too; read here


def test_estimator_mode_on_device_equals_the_host_path():
    """The same rates as the compiled numpy estimator reading the tensors in place (the reductions' order aside)."""
    host, lr_host = _regression_loop(30, on_device=False)
    dev, lr_dev = _regression_loop(30, on_device=True)
    lr_host, lr_dev = np.array([float(v) for v in lr_host]), np.array([float(v) for v in lr_dev])
    assert np.ptp(lr_host) > 0.1  # the policy acts: the rates move
    np.testing.assert_allclose(lr_dev, lr_host, rtol=1e-12)
    assert dev.counts == host.counts
    e_dev, e_host = dev.last_estimates[0], host.last_estimates[0]
    assert e_dev.count == e_host.count and e_dev.ready is True
    assert e_dev.a == pytest.approx(e_host.a, rel=1e-12) and e_dev.s2 == pytest.approx(e_host.s2, rel=1e-12)


def test_divergence_between_measurements_is_counted_at_its_step():
    """A NaN gradient at a step that does not measure (growth rule on) gets the safe rate and is reported."""
    from stochctl.policy import ControlledLR

    x = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.5)
    sched = ControlledLR(opt, OneStepPolicy(u_max=1.0), curvature="own", curvature_every=5)
    for k in range(6):
        opt.zero_grad()
        ((x ** 2).sum() * (float("nan") if k == 3 else 1.0)).backward()
        sched.step(closure=lambda: (x ** 2).sum())
        if k <= 3:  # (after it the noise averages hold the NaN: the safe rate stays)
            assert (float(sched.get_last_lr()[0]) == 0.0) == (k == 3)
        if k != 3:
            opt.step()
    with pytest.raises(DivergenceError, match="at 1 scheduler step\\(s\\), the first at step 3"):
        sched.check()
    assert sched.curvature_measurements == 2 + sched.remeasurements
