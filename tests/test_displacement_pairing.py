"""The displacement of the measured curvature (infinitesimal, the step about to be taken, the secant of
the last step) and the pairing of two players' rates (both at the smaller multiplier).

Oracles: closed forms of a quartic (its gradient x^3 has the secant slope x0^2 + x0 x1 + x1^2 between
x0 and x1, and the derivative 3 x0^2), the rates two constant schedulers set on their own, and the
study's builder against the schedulers it builds.
"""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from stochctl.errors import InputError  # noqa: E402
from stochctl.policy import ControlledLR, OneStepPolicy  # noqa: E402
from stochctl.study import methods as M  # noqa: E402
from stochctl.study import tasks as T  # noqa: E402
from stochctl.trainers.pairing import MinPair, PairedLR  # noqa: E402

F64 = torch.float64


def _quartic_steps(displacement, *, x0=1.3, lr=0.2, steps=2, method="fd"):
    """SGD on f(x) = x^4 / 4 with a measuring scheduler: (x before each step, rate of each step, own curvature seen)."""
    x = torch.tensor([x0], dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    sched = ControlledLR(opt, OneStepPolicy(u_max=1.0), curvature="own", displacement=displacement, method=method,
                         remeasure_growth=None, curvature_every=1)
    xs, lrs, seen = [], [], []
    for _ in range(steps):
        closure = lambda: (x ** 4 / 4).sum()  # noqa: E731
        opt.zero_grad()
        closure().backward()
        xs.append(float(x.detach()))
        sched.step(closure=closure)
        lrs.append(float(opt.param_groups[0]["lr"]))
        seen.append(sched.last_curvature[0][0])
        opt.step()
    return xs, lrs, seen


def _secant(x0, x1):
    return x0 * x0 + x0 * x1 + x1 * x1  # (x0^3 - x1^3) / (x0 - x1)


def test_infinitesimal_displacement_is_the_derivative():
    xs, _, seen = _quartic_steps("fd")
    for x, c in zip(xs, seen):
        assert c == pytest.approx(3 * x * x, rel=1e-6)
    xs, _, exact = _quartic_steps("fd", method="hvp")
    assert exact == pytest.approx([3 * x * x for x in xs], rel=1e-12)


def test_step_displacement_is_the_secant_over_the_step_about_to_be_taken():
    lr = 0.2
    xs, lrs, seen = _quartic_steps("step", lr=lr)
    # first step: at the base rate (the scheduler's rate before any step), x1 = x0 - lr x0^3
    x0 = xs[0]
    assert seen[0] == pytest.approx(_secant(x0, x0 - lr * x0 ** 3), rel=1e-9)
    assert seen[0] < 3 * x0 * x0  # the slope of x^3 over a step towards 0 is below its derivative at x0
    # second step: at the rate of the step before (the last rate), from x1
    x1 = xs[1]
    assert seen[1] == pytest.approx(_secant(x1, x1 - lrs[0] * x1 ** 3), rel=1e-9)


def test_secant_displacement_is_the_secant_of_the_last_step():
    xs, lrs, seen = _quartic_steps("secant", steps=3)
    assert seen[0] == pytest.approx(3 * xs[0] ** 2, rel=1e-6)  # no step yet: infinitesimal
    assert xs[1] == pytest.approx(xs[0] - lrs[0] * xs[0] ** 3, rel=1e-12)
    assert seen[1] == pytest.approx(_secant(xs[0], xs[1]), rel=1e-9)
    assert seen[2] == pytest.approx(_secant(xs[1], xs[2]), rel=1e-9)


def test_a_vanishing_last_rate_measures_infinitesimally():
    # a rate of 0 (the one-step rule's u without signal) would make the step displacement 0 and the
    # difference 0 / 0: below the infinitesimal displacement, that one is taken instead
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.0 + 1e-300)
    sched = ControlledLR(opt, OneStepPolicy(), curvature="own", displacement="step", curvature_every=1)
    (x ** 4 / 4).sum().backward()
    sched.step(closure=lambda: (x ** 4 / 4).sum())
    assert sched.last_curvature[0][0] == pytest.approx(3.0, rel=1e-6)
    assert sched.divergences == 0


def test_displacement_bad_input():
    x = torch.tensor([1.0], dtype=F64, requires_grad=True)
    with pytest.raises(InputError, match="displacement must be one of .*; got 'far'"):
        ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy(), curvature="own", displacement="far", curvature_every=1)
    with pytest.raises(InputError, match="needs method='fd'"):
        ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy(), curvature="own", displacement="step",
                     method="hvp", curvature_every=1)
    with pytest.raises(InputError, match="displacement must be one of"):
        M.Measured(displacement="far")
    with pytest.raises(InputError, match="pairing must be None or 'min'"):
        M.Measured(pairing="max")


# ---------------------------------------------------------------------------------------------
# pairing


def _constant(factor, lr=0.5):
    x = torch.zeros(2, requires_grad=True)
    opt = torch.optim.SGD([x], lr=lr)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda k: factor)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
@pytest.mark.parametrize("fa,fb", [(0.3, 0.7), (0.9, 0.2)])
def test_min_pair_steps_both_players_at_the_smaller_multiplier(fa, fb):
    pair = MinPair()
    a, b = pair.wrap(_constant(fa, lr=0.5)), pair.wrap(_constant(fb, lr=2.0))
    assert isinstance(a, PairedLR) and a.optimizer is a.scheduler.optimizer  # attributes pass through
    a.step()  # b has not stepped yet: a keeps its own rate
    assert float(a.optimizer.param_groups[0]["lr"]) == pytest.approx(0.5 * fa)
    b.step()
    assert float(b.optimizer.param_groups[0]["lr"]) == pytest.approx(2.0 * min(fa, fb))
    a.step()
    assert float(a.optimizer.param_groups[0]["lr"]) == pytest.approx(0.5 * min(fa, fb))
    assert a.get_last_lr()[0] == pytest.approx(0.5 * min(fa, fb))
    with pytest.raises(InputError, match="exactly two schedulers"):
        pair.wrap(_constant(1.0))


def test_the_study_pairs_the_two_measured_schedulers():
    task = T.get_task("gauss1d")
    torch.manual_seed(0)
    G, D = task.networks()
    opt_g, opt_d = M.build_optimizers("sgd+min", G, D, 0.5, steps=5)
    assert opt_g.scheduler.pair is opt_d.scheduler.pair
    unpaired = M.build_optimizers("sgd+discrete-unpaired", G, D, 0.5, steps=5)
    assert not isinstance(unpaired[0].scheduler, PairedLR)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    gen = torch.Generator().manual_seed(0)
    ones, zeros = torch.ones(64, 1), torch.zeros(64, 1)
    for _ in range(4):
        x, z = task.sample_real(64, gen), task.sample_latent(64, gen)

        def d_closure():
            return bce(D(x), ones) + bce(D(G(z)), zeros)

        def g_closure():
            return bce(D(G(z)), ones)

        for opt, mine, other in ((opt_d, d_closure, g_closure), (opt_g, g_closure, d_closure)):
            opt.zero_grad()
            mine().backward()
            opt.step(closure=mine, other_closure=other)
        pair = opt_g.scheduler.pair
        u_g, u_d = (float(pair._latest[i]) for i in (0, 1))
        # the generator stepped last: its rate is the smaller of its own and the discriminator's multiplier
        assert float(opt_g.optimizer.param_groups[0]["lr"]) == pytest.approx(0.5 * min(u_g, u_d))
        assert float(opt_d.optimizer.param_groups[0]["lr"]) <= 0.5 * u_d + 1e-15


# ---------------------------------------------------------------------------------------------
# the recommended measuring interval is the default


def test_the_default_measuring_interval_is_twenty_steps():
    import inspect

    from stochctl.trainers import optax_adapter  # noqa: F401  (imports jax only when called)
    from stochctl.trainers.torch_adapter import CURVATURE_EVERY

    x = torch.tensor([1.0, -2.0], dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([x], lr=0.1)
    sched = ControlledLR(opt, OneStepPolicy(), curvature="own", remeasure_growth=None)
    for _ in range(45):
        closure = lambda: (x ** 2).sum()  # noqa: E731
        opt.zero_grad()
        closure().backward()
        sched.step(closure=closure)
        opt.step()
    assert CURVATURE_EVERY == 20 and sched.curvature_measurements == 3  # steps 0, 20, 40
    assert inspect.signature(optax_adapter.scale_by_policy).parameters["curvature_every"].default == CURVATURE_EVERY
