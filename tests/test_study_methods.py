"""Study methods: divergence told by the exception's type."""

import pytest

from stochctl.errors import DivergenceError, InputError, NumericalError
from stochctl.study import tasks as T
from stochctl.study.protocol import Job, StudyConfig


def _tiny(tasks, methods, *, steps=4, lrs=(1e-2, 1.0), sweeps=None, **kw):
    sweeps = sweeps or (("sgd", tuple(lrs)), ("adam", tuple(lrs)))
    return StudyConfig(name="tiny", tasks=tuple(tasks), methods=tuple(methods), seeds=(0,), sweeps=sweeps,
                       steps=tuple((t, steps) for t in T.TASK_NAMES + (T.DATA_TASK,)), evaluations=2, **kw)


# --------------------------------------------------------------------------------------
# divergence by type
# --------------------------------------------------------------------------------------


def _raise_at(monkeypatch, step, exc):
    from stochctl.study.methods import PlayerOptimizer

    real = PlayerOptimizer.step
    seen = []

    def step_(self, **kw):
        seen.append(1)
        if len(seen) == 2 * step - 1:  # the discriminator's step of ``step``
            raise exc
        return real(self, **kw)

    monkeypatch.setattr(PlayerOptimizer, "step", step_)


def test_the_runner_counts_a_divergence_by_its_type(monkeypatch):
    pytest.importorskip("torch")
    from stochctl.study.runner import run_job

    cfg = _tiny(("gauss1d",), ("sgd",), steps=6)
    job = Job("gauss1d", "sgd", 1e-2, 0)
    assert run_job(cfg, job)[0]["diverged"] == 0
    _raise_at(monkeypatch, 3, DivergenceError("the curvature measurement blew up"))  # no word "non-finite"
    row = run_job(cfg, job)[0]
    assert (row["diverged"], row["diverged_step"], row["reached"]) == (1, 3, 0)
    for exc in (NumericalError("non-finite curvature"), InputError("a non-finite loss"), RuntimeError("x")):
        _raise_at(monkeypatch, 2, exc)
        with pytest.raises(type(exc), match=str(exc)):
            run_job(cfg, job)


def test_a_non_finite_measured_loss_is_a_divergence_error():
    torch = pytest.importorskip("torch")
    from stochctl.policy import OneStepPolicy
    from stochctl.policy.torch_adapter import ControlledLR

    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    sched = ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy(), curvature="own")
    (x ** 2).sum().backward()
    with pytest.raises(DivergenceError):
        sched.step(closure=lambda: (x ** 2).sum() * float("inf"))
