"""The study's peers (stochctl.study.peers): records, the evaluation hook, and each peer against an oracle.

Oracles: the minimiser of a 1-D quadratic (and the saddle of a quadratic game), the extragradient
Adam formula computed by hand on the bilinear game ``f(x, y) = x y``, DoG's polynomial-decay average
and the bias-corrected EMA recomputed from the iterates, schedule-free's ``x = (y - (1 - b1) z) / b1``,
the cosine schedule's mean ``1/2 + 1/(2K)``, the fitted GARCH's unconditional variance by Monte Carlo,
and gradient evaluations counted at torch's autograd entry points.
"""

import math
import pickle
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stochctl.errors import InputError, MissingExtraError
from stochctl.study import methods as M
from stochctl.study import peers as P
from stochctl.study import tasks as T
from stochctl.study.protocol import GRIDS, NO_RATE, Job, StudyConfig, quick_config
from stochctl.study.runner import run_job

LR_FREE = ("prodigy", "dadapt", "dog", "schedulefree")


def _config(methods, steps=6, evaluations=2, tasks=("gauss1d", "sp500"), version=2):
    """A tiny study, version 2 (a step budget, one evaluation draw) unless told."""
    return StudyConfig(name="tiny", tasks=tasks, methods=tuple(methods), seeds=(0,),
                       sweeps=tuple(GRIDS.items()), steps=tuple((t, steps) for t in T.TASK_NAMES + (T.DATA_TASK,)),
                       evaluations=evaluations, version=version)


def _rate(record):
    return record.default or 0.05


# --------------------------------------------------------------------------------------
# records and protocol
# --------------------------------------------------------------------------------------

def test_peer_records_and_their_grids():
    assert M.PEER_METHODS == ("prodigy", "dadapt", "dog", "schedulefree", "extra-adam", "sgd2-d0.1", "sgd2-d0.3",
                              "sgd2-d3", "sgd2-d10", "sgd-decay", "garch")
    assert not set(M.PEER_METHODS) & set(M.METHOD_NAMES)
    expected = {"prodigy": ("lr-free", 1.0, 1), "dadapt": ("lr-free", 1.0, 1), "dog": ("lr-free", 1.0, 1),
                "schedulefree": ("schedulefree", 0.0025, 1), "extra-adam": ("adam", 1e-3, 2),
                "sgd-decay": ("sgd", M.DEFAULT_RATES["sgd"], 1), "garch": ("garch", None, 1)}  # sgd-decay: SGD's default
    for name, (family, default, evals) in expected.items():
        m = M.get_method(name)
        assert (m.family, m.default, m.grad_evals, m.controlled) == (family, default, evals, False)
        if default is not None:
            grid = np.array(GRIDS[family])
            assert np.isclose(grid, default, rtol=1e-9).any()                       # a run at the default
            assert np.log10(default / grid[0]) >= 1 and np.log10(grid[-1] / default) >= 1  # a decade each side
    assert [M.get_method(n).base_lr for n in ("prodigy", "dadapt", "dog")] == [False] * 3
    assert M.get_method("garch").trains is False and "nothing" in M.get_method("garch").swept
    # garch runs once per seed, also under --lrs and in the quick configuration
    cfg = quick_config().select(methods=["garch", "prodigy"], tasks=["sp500"], lrs=[0.1, 1.0])
    assert cfg.sweep("garch") == () and cfg.rates("garch") == (NO_RATE,) and cfg.sweep("prodigy") == (0.1, 1.0)
    assert quick_config().rates("garch") == (NO_RATE,)
    assert M.twin_methods(M.PEER_METHODS) == {}
    for name in M.PEER_METHODS:                                          # records travel to worker processes
        assert pickle.loads(pickle.dumps(M.get_method(name))) == M.get_method(name)


def test_record_fields_are_checked():
    with pytest.raises(InputError, match="evaluation hook"):
        M.Method("x", "sgd", M.Players("sgd"), trains=False, base_lr=False)
    with pytest.raises(InputError, match="default_rate must be"):
        M.Method("x", "sgd", M.Players("sgd"), default_rate=-1.0)
    with pytest.raises(InputError, match="evaluation must be"):
        M.Method("x", "sgd", M.Players("sgd"), evaluation=3)
    with pytest.raises(InputError, match="valid: prodigy, dadapt, dog, schedulefree"):
        P.LrFree("adabelief")


def test_a_missing_peer_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigyopt", None)  # makes the import fail
    with pytest.raises(MissingExtraError, match=r"stochctl\[peers\]"):
        P.LrFree("prodigy").optimizer([torch.zeros(1, requires_grad=True)], 1.0)


# --------------------------------------------------------------------------------------
# every peer trains in the runner; gradient evaluations counted where autograd runs
# --------------------------------------------------------------------------------------

@pytest.fixture
def autograd_calls(monkeypatch):
    """Counts torch.autograd.backward (Tensor.backward) and torch.autograd.grad calls."""
    calls = [0]
    backward, grad = torch.autograd.backward, torch.autograd.grad

    def counted(fn):
        def call(*a, **k):
            calls[0] += 1
            return fn(*a, **k)
        return call

    monkeypatch.setattr(torch.autograd, "backward", counted(backward))
    monkeypatch.setattr(torch.autograd, "grad", counted(grad))
    return calls


@pytest.mark.parametrize("name", [n for n in M.PEER_METHODS if n != "garch"])
def test_each_peer_trains_and_counts_its_gradient_evaluations(name, autograd_calls):
    record, steps = M.get_method(name), 6
    row, samples = run_job(_config([name], steps=steps), Job("gauss1d", name, _rate(record), 0), samples=50)
    assert row["diverged"] == 0 and samples.shape == (50, 1) and np.isfinite(samples).all()
    assert row["grad_evals"] == 2 * record.grad_evals * steps == autograd_calls[0]
    assert all(math.isfinite(row[f"final_{m}"]) for m in ("w1", "w2"))


def test_garch_runs_once_without_training_and_refuses_other_tasks():
    cfg = _config(["garch"], tasks=("sp500",))
    row, samples = run_job(cfg, Job("sp500", "garch", 1.0, 0), samples=64)
    assert row["grad_evals"] == 0 and row["diverged"] == 0 and samples.shape == (64, T.SP500_WINDOW)
    assert '"step":[0]' in row["curve"] and math.isfinite(row["final_w1"])
    again, _ = run_job(cfg, Job("sp500", "garch", 1.0, 0), samples=64)
    other, _ = run_job(cfg, Job("sp500", "garch", 1.0, 1), samples=64)
    assert again["final_w1"] == row["final_w1"] != other["final_w1"]          # the seed drives the simulation
    for refuse in (lambda: _config(["sgd", "garch"], tasks=("sp500", "ring8")),   # before any run
                   lambda: run_job(_config(["sgd"]), Job("gauss1d", "garch", 1.0, 0))):
        with pytest.raises(InputError) as err:
            refuse()
        assert "returns task" in str(err.value) and "\n" not in str(err.value)
        assert "ring8" in str(err.value) or "gauss1d" in str(err.value)


# --------------------------------------------------------------------------------------
# each peer approaches a minimiser; extragradient by hand
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, rate", [("prodigy", 1.0), ("dadapt", 1.0), ("dog", 1.0), ("schedulefree", 0.1),
                                        ("sgd-decay", 0.3), ("sgd2-d3", 0.3)])
def test_each_peer_approaches_the_minimiser_of_a_quadratic(name, rate):
    """Both players minimise ``(x - 3)^2 / 2`` in their own weight; the evaluated generator ends near 3."""
    record = M.get_method(name)
    G, D = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    for net in (G, D):
        torch.nn.init.zeros_(net.weight)
    opt_g, opt_d = M.build_optimizers(record, G, D, rate, steps=400)
    for _ in range(400):
        for opt, net in ((opt_d, D), (opt_g, G)):
            opt.zero_grad()
            (0.5 * (net.weight[0, 0] - 3.0) ** 2).backward()
            opt.step()
    with record.evaluated(G, opt_g, None, 0) as gen:
        assert abs(float(gen.weight.detach()[0, 0]) - 3.0) < 0.01
    assert abs(float(D.weight.detach()[0, 0]) - 3.0) < 0.05


class _Scalar(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor([float(value)]))


def _game_step(opt_g, opt_d, f, x, y):
    """The runner's order: the discriminator's gradient at w, its step; the generator's gradient, its step."""
    g_closure, d_closure = (lambda: f(x.w, y.w)), (lambda: -f(x.w, y.w))
    opt_d.zero_grad()
    d_closure().backward()
    opt_d.step(closure=d_closure, other_closure=g_closure)
    opt_g.zero_grad()
    g_closure().backward()
    opt_g.step(closure=g_closure, other_closure=d_closure)


def test_extra_adam_is_the_extragradient_formula_on_a_bilinear_game():
    """x minimises f = x y, y maximises it; two steps of extragradient Adam by hand (plain floats)."""
    lr, (b1, b2), eps = 0.1, M.ADAM_BETAS, 1e-8
    x, y = _Scalar(1.0), _Scalar(0.5)
    opt_g, opt_d = M.build_optimizers("extra-adam", x, y, lr, steps=2)
    mom = {"x": [0.0, 0.0, 0], "y": [0.0, 0.0, 0]}

    def adam(key, g):
        st = mom[key]
        st[2] += 1
        st[0] = b1 * st[0] + (1 - b1) * g
        st[1] = b2 * st[1] + (1 - b2) * g * g
        return -lr * math.sqrt(1 - b2 ** st[2]) / (1 - b1 ** st[2]) * st[0] / (math.sqrt(st[1]) + eps)

    hx, hy, iterates = 1.0, 0.5, []
    for _ in range(2):
        ex, ey = hx + adam("x", hy), hy + adam("y", -hx)          # F(w) = (df/dx, -df/dy) = (y, -x)
        hx, hy = hx + adam("x", ey), hy + adam("y", -ex)          # update from w at F(w')
        iterates.append(hx)
        _game_step(opt_g, opt_d, lambda a, b: (a * b).sum(), x, y)
        assert (float(x.w.detach()), float(y.w.detach())) == pytest.approx((hx, hy), rel=1e-6, abs=1e-9)
    b = P.EXTRA_EMA
    average = ((1 - b) * b * iterates[0] + (1 - b) * iterates[1]) / (1 - b ** 2)
    with M.get_method("extra-adam").evaluated(x, opt_g, None, 0) as gen:
        assert gen is not x and float(gen.w.detach()) == pytest.approx(average, rel=1e-6)
    # simultaneous Adam from the same point differs (the extrapolation is not a no-op)
    assert abs(hx - (1.0 + adam("x", 0.5))) > 1e-3


def test_extra_adam_approaches_the_saddle_of_a_quadratic_game():
    """``f = (x - 3)^2 / 2 + x y - y^2 / 2``: saddle at x = y = 1.5."""
    x, y = _Scalar(0.0), _Scalar(0.0)
    opt_g, opt_d = M.build_optimizers("extra-adam", x, y, 0.01, steps=3000)
    for _ in range(3000):
        _game_step(opt_g, opt_d, lambda a, b: (0.5 * (a - 3) ** 2 + a * b - 0.5 * b ** 2).sum(), x, y)
    assert abs(float(x.w.detach()) - 1.5) < 0.02 and abs(float(y.w.detach()) - 1.5) < 0.02


# --------------------------------------------------------------------------------------
# evaluation hooks: the average, the eval mode, and the runner samples and scores from them
# --------------------------------------------------------------------------------------

def _random_steps(record, steps=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    G, D = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    opt_g, opt_d = M.build_optimizers(record, G, D, 1.0 if record.default is None else record.default, steps=steps)
    iterates = []
    for _ in range(steps):
        for opt, net in ((opt_d, D), (opt_g, G)):
            opt.zero_grad()
            noise = torch.randn((), generator=gen)
            (0.5 * ((net.weight - 2.0) ** 2).sum() + (net.weight.sum() + net.bias.sum()) * noise).backward()
            opt.step()
        iterates.append([p.detach().clone() for p in G.parameters()])
    return G, opt_g, iterates


def test_dog_scores_the_polynomial_decay_average_of_the_generator():
    record = M.get_method("dog")
    G, opt_g, iterates = _random_steps(record, steps=200)
    gamma = P.DOG_GAMMA
    avg = [t.clone() for t in iterates[0]]
    for t, x in enumerate(iterates[1:], start=2):
        w = (1 + gamma) / (t + gamma)
        avg = [(1 - w) * a + w * b for a, b in zip(avg, x)]
    with record.evaluated(G, opt_g, None, 0) as gen:
        assert gen is not G
        for a, p in zip(avg, gen.parameters()):
            torch.testing.assert_close(p.detach(), a)
    assert max(float((a - p.detach()).abs().max()) for a, p in zip(avg, G.parameters())) > 1e-2  # not the last


def test_schedulefree_evaluates_at_x_and_returns_to_train_mode():
    record = M.get_method("schedulefree")
    G, opt_g, _ = _random_steps(record)
    opt = opt_g.optimizer
    b1 = opt.param_groups[0]["betas"][0]
    y = [p.detach().clone() for p in G.parameters()]
    z = [opt.state[p]["z"].clone() for p in G.parameters()]
    with pytest.raises(RuntimeError, match="inside"), record.evaluated(G, opt_g, None, 0) as gen:
        assert gen is G and opt.param_groups[0]["train_mode"] is False
        for p, yi, zi in zip(G.parameters(), y, z):
            torch.testing.assert_close(p.detach(), (yi - (1 - b1) * zi) / b1)
        raise RuntimeError("inside")                            # an error while scoring still restores train mode
    assert opt.param_groups[0]["train_mode"] is True
    for p, yi in zip(G.parameters(), y):
        assert torch.equal(p.detach(), yi)                              # bit for bit: scoring leaves the run alone


def test_the_runner_scores_and_samples_the_generator_the_hook_gives():
    """dog on gauss1d: the final metrics are the averaged generator's closed form, and the saved samples
    are its outputs (a forward hook records them), not the trained generator's."""
    seen = []

    def probe(G, opt_g, task, seed):
        ctx = P.dog_average(G, opt_g, task, seed)
        gen = ctx.__enter__()
        outputs = []
        handle = gen.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
        seen.append((gen, G, outputs, handle))
        return ctx

    record = M.Method("dog-probe", "lr-free", M.get_method("dog").build, base_lr=False, multiplier="lr",
                      evaluation=probe)
    row, samples = run_job(_config(["dog"], steps=20), Job("gauss1d", "dog", 1.0, 0), samples=40, method=record)
    task = T.get_task("gauss1d")
    gen, G, _, _ = seen[-2]                                            # the final evaluation
    b, w = float(gen.bias.detach()[0]), float(gen.weight.detach()[0, 0])
    assert row["final_w2"] == pytest.approx(task.score_params(b, w)["w2"], rel=1e-12)
    assert row["final_w2"] != pytest.approx(task.score_params(float(G.bias.detach()[0]), float(G.weight.detach()[0, 0]))["w2"])
    gen, G, outputs, _ = seen[-1]                                      # the samples
    assert gen is not G and len(outputs) == 1
    np.testing.assert_array_equal(samples, outputs[0].double().numpy())



def test_version_3_scores_and_keeps_the_samples_of_the_generator_the_hook_gives():
    """The same under protocol 3: both splits are scored on the hook's generator, entered once per
    evaluation, and the samples kept are the outputs it scored, not the trained generator's."""
    seen = []

    def probe(G, opt_g, task, seed):
        ctx = P.dog_average(G, opt_g, task, seed)
        gen = ctx.__enter__()
        outputs = []
        gen.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
        seen.append((gen, G, outputs))
        return ctx

    record = M.Method("dog-probe", "lr-free", M.get_method("dog").build, base_lr=False, multiplier="lr",
                      evaluation=probe)
    row, (test, val) = run_job(_config(["dog"], steps=20, version=3), Job("gauss1d", "dog", 1.0, 0), samples=40,
                               method=record)
    gen, G, outputs = seen[-1]                                         # the final evaluation
    assert gen is not G and row["diverged"] == 0 and len(outputs) >= 2
    scored = [o.numpy().astype(test.dtype).reshape(-1) for o in outputs]
    for kept in (test, val):
        assert any(o.shape == kept.reshape(-1).shape and np.array_equal(o, kept.reshape(-1)) for o in scored)

# --------------------------------------------------------------------------------------
# sgd2, sgd-decay
# --------------------------------------------------------------------------------------

def test_sgd2_rates_and_the_cosine_schedule_mean():
    G, D = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    for r in M.SGD2_RATIOS:
        opt_g, opt_d = M.build_optimizers(f"sgd2-d{r:g}", G, D, 0.02, steps=5)
        assert opt_g.optimizer.param_groups[0]["lr"] == 0.02
        assert opt_d.optimizer.param_groups[0]["lr"] == pytest.approx(0.02 * r, rel=1e-15)
    K = 40
    opt_g, _ = M.build_optimizers("sgd-decay", G, D, 0.02, steps=K)
    rates = []
    for _ in range(K):
        opt_g.zero_grad()
        G.weight.sum().backward()
        rates.append(opt_g.optimizer.param_groups[0]["lr"])
        opt_g.step()
    k = np.arange(K)
    np.testing.assert_allclose(rates, 0.02 * (1 + np.cos(np.pi * k / K)) / 2, rtol=1e-12, atol=1e-15)
    assert opt_g.mean_multiplier == pytest.approx(0.5 + 1 / (2 * K), rel=1e-12)


# --------------------------------------------------------------------------------------
# garch
# --------------------------------------------------------------------------------------

def _variance_check(fit, n, seed):
    x = fit.simulate(n, T.SP500_WINDOW, np.random.default_rng(seed))
    per_window = ((x - fit.mu) ** 2).mean(axis=1)                      # windows are independent paths
    se = per_window.std(ddof=1) / math.sqrt(n)
    return per_window.mean(), se


def test_garch_simulation_has_the_unconditional_variance():
    """A model with a finite fourth moment (beta^2 + 2 alpha beta + kappa alpha^2 = 0.84, kappa = 4 at nu = 10):
    the simulated variance is omega / (1 - alpha - beta) = 2 within 4 Monte Carlo standard errors, and the
    excess kurtosis of the innovations' scale is right (standardised t: variance 1)."""
    fit = P.GarchFit(mu=0.05, omega=0.2, alpha=0.1, beta=0.8, nu=10.0)
    mean, se = _variance_check(fit, 20_000, 1)
    assert fit.variance == pytest.approx(2.0)
    assert abs(mean - fit.variance) < 4 * se and se < 0.02 * fit.variance
    fit0 = P.GarchFit(mu=0.0, omega=1.0, alpha=0.0, beta=0.0, nu=10.0)  # i.i.d. standardised t
    x = fit0.simulate(20_000, 8, np.random.default_rng(2)).ravel()
    assert abs(x.var() - 1.0) < 4 * math.sqrt((2 + 6 / (10 - 4)) / x.size)  # Var(x^2) = 2 + excess kurtosis
    with pytest.raises(InputError, match="stationary"):
        P.GarchFit(0.0, 1.0, 0.5, 0.6, 8.0).simulate(2, 3, np.random.default_rng(0))


def test_garch_fitted_on_the_training_returns():
    """The sp500 fit: the simulated windows follow its recursion exactly, their innovations
    (r - mu) / sigma are its standardised t (variance 1 within 4 standard errors: finite fourth moment
    at nu > 4), and their variance is near its unconditional one. The fit's own fourth moment is
    infinite (kappa alpha^2 + 2 alpha beta + beta^2 = 1.016 > 1), so that last check is a loose 15%, not
    a CLT bound."""
    task = T.get_task("sp500")
    fit = P.fit_garch(task.series()[0])
    assert 0 < fit.alpha < 0.3 and 0.6 < fit.beta and fit.alpha + fit.beta < 1 and 4 < fit.nu < 30
    assert 0.5 < fit.variance < 2.0                                    # standardised training returns: variance 1
    r, s2 = fit.simulate(20_000, T.SP500_WINDOW, np.random.default_rng(3), with_variance=True)
    np.testing.assert_allclose(s2[:, 1:], fit.omega + fit.alpha * (r[:, :-1] - fit.mu) ** 2 + fit.beta * s2[:, :-1],
                               rtol=1e-12)
    e2 = ((r - fit.mu) ** 2 / s2).ravel()
    kurt = 6 / (fit.nu - 4)                                            # excess kurtosis of the t innovations
    assert abs(e2.mean() - 1) < 4 * math.sqrt((2 + kurt) / e2.size)
    assert abs(((r - fit.mu) ** 2).mean() / fit.variance - 1) < 0.15
    with M.get_method("garch").evaluated(None, None, task, 0) as sampler:
        out = sampler(torch.zeros(5, task.latent_dim))
    assert out.shape == (5, T.SP500_WINDOW) and out.dtype == torch.float32


@pytest.mark.parametrize("name", ["dog", "schedulefree", "extra-adam"])
def test_scoring_leaves_the_run_alone(name):
    """The final metrics do not depend on how often the run was scored on the way (the hooks restore
    the training point exactly)."""
    record = M.get_method(name)
    rows = [run_job(_config([name], steps=24, evaluations=n), Job("sp500", name, record.default, 0))[0]
            for n in (1, 12)]
    assert rows[0]["final_w1"] == rows[1]["final_w1"] and rows[0]["final_kurtosis"] == rows[1]["final_kurtosis"]
