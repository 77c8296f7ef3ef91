"""Study methods as records: the registry, what each record builds, records read instead of names,
the README's example of adding a method, and divergence told by the exception's type."""

import functools
import json
import re
from pathlib import Path

import pytest

from stochctl.errors import DivergenceError, InputError, NumericalError
from stochctl.study import methods as M
from stochctl.study import tasks as T
from stochctl.study.protocol import Job, StudyConfig

README = Path(__file__).resolve().parent.parent / "README.md"

# family, controlled, baseline of each method, as the README's method table and the v2 protocol state them
EXPECTED = {
    "sgd": ("sgd", False, None), "adam": ("adam", False, None), "ttur": ("adam", False, None),
    "csgd": ("sgd", False, None), "gap": ("adam", False, None),
    "sgd+discrete": ("sgd", True, "sgd"), "adam+discrete": ("adam", True, "adam"),
    "sgd+discrete-own": ("sgd", True, "sgd"), "sgd+discrete-field": ("sgd", True, "sgd"),
    "adam+discrete-own": ("adam", True, "adam"), "adam+discrete-field": ("adam", True, "adam"),
    "sgd+continuous": ("sgd", True, "sgd"), "sgd+greedy": ("sgd", True, "sgd"),
    "ctl-sgd": ("sgd", True, None), "ctl-adam": ("adam", True, None),
}

# the game-aware candidates: family, baseline and game rule; not in the default selection
CANDIDATES = {"sgd+game": ("sgd", "joint"), "adam+game": ("adam", "joint"), "sgd+game-nash": ("sgd", "nash"),
              "adam+game-nash": ("adam", "nash"), "sgd+game-min": ("sgd", "min"), "adam+game-min": ("adam", "min"),
              "sgd+game-tied": ("sgd", "tied"), "adam+game-tied": ("adam", "tied")}
# candidates pairing the per-player discrete-policy rates (both at the smaller multiplier; every 10 steps), and
# the per-player rule of study v2 (every 10 steps): family
PAIRED = {"sgd+min": "sgd", "adam+min": "adam"}
UNPAIRED = {"sgd+discrete-unpaired": "sgd", "adam+discrete-unpaired": "adam"}


def _tiny(tasks, methods, *, steps=4, lrs=(1e-2, 1.0), sweeps=None, **kw):
    sweeps = sweeps or (("sgd", tuple(lrs)), ("adam", tuple(lrs)))
    kw.setdefault("version", 2)  # the second protocol's runner path (v3's: tests/test_study_v3.py)
    return StudyConfig(name="tiny", tasks=tuple(tasks), methods=tuple(methods), seeds=(0,), sweeps=sweeps,
                       steps=tuple((t, steps) for t in T.TASK_NAMES + (T.DATA_TASK,)), evaluations=2, **kw)


@pytest.fixture
def registry():
    """Records registered in a test are removed afterwards."""
    saved = dict(M.METHODS)
    yield M.METHODS
    M.METHODS.clear()
    M.METHODS.update(saved)


def test_records_match_the_published_method_table():
    assert M.METHOD_NAMES + M.LEGACY_METHODS == tuple(EXPECTED)
    assert M.LEGACY_METHODS == ("ctl-sgd", "ctl-adam")
    for name, (family, controlled, baseline) in EXPECTED.items():
        m = M.get_method(name)
        assert (m.family, m.controlled, m.baseline, m.base_lr, m.grad_evals) == (family, controlled, baseline,
                                                                                  True, 1)
        assert M.METHOD_FAMILY[name] == family
    assert {k: v for k, v in M.METHOD_FAMILY.items() if k not in M.PEER_METHODS} == {
        **{k: v[0] for k, v in EXPECTED.items()}, **{k: v[0] for k, v in CANDIDATES.items()}, **PAIRED, **UNPAIRED}
    assert M.PEER_METHODS and not set(M.PEER_METHODS) & (set(EXPECTED) | set(CANDIDATES))  # tests/test_study_peers.py
    assert set(M.TABLE_METHODS) == {"sgd+continuous", "ctl-sgd", "ctl-adam"}
    assert M.MEASURED == {"sgd+discrete": ("discrete", "field"), "adam+discrete": ("discrete", "field"),
                          "sgd+discrete-own": ("discrete", "own"), "sgd+discrete-field": ("discrete", "field"),
                          "adam+discrete-own": ("discrete", "own"), "adam+discrete-field": ("discrete", "field"),
                          "sgd+greedy": ("greedy", "field"),
                          **{name: ("greedy", "field") for name in CANDIDATES},
                          **{name: ("discrete", "field") for name in {**PAIRED, **UNPAIRED}}}
    assert M.twin_methods(tuple(EXPECTED)) == {"sgd+discrete-field": "sgd+discrete",
                                               "adam+discrete-field": "adam+discrete",
                                               "ctl-sgd": "sgd+continuous"}


def test_each_record_builds_its_optimizers_and_schedulers():
    torch = pytest.importorskip("torch")
    from stochctl.trainers.torch_adapter import ControlledLR
    from stochctl.study.methods import ControlledSGD, GapAwareLR
    from stochctl.trainers.pairing import PairedLR

    G, D = torch.nn.Linear(2, 1), torch.nn.Linear(1, 1)
    lr = 0.03
    for name in EXPECTED:
        g, d = M.build_optimizers(name, G, D, lr, steps=10)
        adam = M.get_method(name).family == "adam"
        kind = torch.optim.Adam if adam else torch.optim.SGD
        if name == "csgd":
            assert isinstance(g.optimizer, ControlledSGD) and isinstance(d.optimizer, ControlledSGD)
            assert (g.optimizer.lr, d.optimizer.lr, g.scheduler, d.scheduler) == (lr, lr, None, None)
            continue
        assert type(g.optimizer) is kind and type(d.optimizer) is kind
        if adam:
            assert g.optimizer.param_groups[0]["betas"] == (0.5, 0.999)
        assert g.optimizer.param_groups[0]["lr"] == lr
        assert d.optimizer.param_groups[0]["lr"] == (4 * lr if name == "ttur" else lr)
        assert [p is q for p, q in zip(g.optimizer.param_groups[0]["params"], G.parameters())] == [True, True]
        if name in ("sgd", "adam", "ttur"):
            assert g.scheduler is None and d.scheduler is None
        elif name == "gap":
            assert g.scheduler is None and isinstance(d.scheduler, GapAwareLR) and d.kind == "loss"
        elif name.startswith(("sgd+discrete", "adam+discrete")):  # the recommended controller: paired, every 20
            assert isinstance(g.scheduler, PairedLR) and g.scheduler.pair is d.scheduler.pair
            assert isinstance(g.scheduler.scheduler, ControlledLR) and isinstance(d.scheduler.scheduler, ControlledLR)
            assert g.scheduler.curvature_every == d.scheduler.curvature_every == M.RECOMMENDED_EVERY == 20
            assert (g.kind, d.kind) == ("measured", "measured")
        else:
            assert isinstance(g.scheduler, ControlledLR) and isinstance(d.scheduler, ControlledLR)
            measured = name in M.MEASURED
            assert (g.kind, d.kind) == (("measured",) * 2 if measured else ("after",) * 2)
    with pytest.raises(InputError, match="base learning rate must be positive; got 0"):
        M.build_optimizers("sgd", G, D, 0.0, steps=10)


def test_unknown_method_is_one_line_and_the_cli_writes_nothing(tmp_path, capsys):
    with pytest.raises(InputError, match=r"^unknown method 'rmsprop'; valid methods: sgd, adam, ttur, ") as exc:
        M.get_method("rmsprop")
    assert "\n" not in str(exc.value)
    with pytest.raises(InputError, match="unknown method 'rmsprop'"):
        _tiny(("gauss1d",), ("sgd", "rmsprop"))
    from stochctl.cli import main

    out = tmp_path / "out"
    code = main(["study", "--tasks", "gauss1d", "--methods", "sgd,rmsprop", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "unknown method 'rmsprop'" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_records_are_refused(registry):
    good = M.Players("sgd")
    for kw, words in ((dict(name=""), "non-empty"), (dict(name="a,b"), "without commas"),
                      (dict(build=3), "build must be callable"),
                      (dict(multiplier="scale"), "multiplier only when"),
                      (dict(default_rate=0.0), "default_rate must be a positive finite number"),
                      (dict(grad_evals=0), "grad_evals must be a positive integer")):
        with pytest.raises(InputError, match=words):
            M.Method(**{**dict(name="x", family="sgd", build=good), **kw})
    # neither a base rate nor a multiplier: a method without a rate (study v3 runs it once per seed)
    assert not M.Method("x", "sgd", good, base_lr=False).has_rate
    with pytest.raises(InputError, match="'sgd' is already registered"):
        M.register(M.Method("sgd", "sgd", good))
    with pytest.raises(InputError, match="unknown method 'nope'"):
        M.register(M.Method("x", "sgd", good, baseline="nope"))
    with pytest.raises(InputError, match="unknown optimizer 'rmsprop'"):
        M.Players("rmsprop")
    assert "x" not in M.METHODS


def test_no_rule_reads_a_methods_name(registry, tmp_path):
    """A record named like a controlled Adam method but declared an uncontrolled SGD-family baseline is one."""
    pytest.importorskip("torch")
    from stochctl.study.report import is_controlled, summary_markdown, verdict_lines, summarize
    from stochctl.study.runner import read_results, run_study

    M.register(M.Method("adam+discrete-x", "sgd", M.Players("sgd")))
    assert not is_controlled("adam+discrete-x") and M.METHOD_FAMILY["adam+discrete-x"] == "sgd"
    cfg = _tiny(("gauss1d",), ("adam+discrete-x", "sgd+discrete"), sweeps=(("sgd", (1e-2, 0.1)),))
    assert cfg.sweep("adam+discrete-x") == (1e-2, 0.1)
    # trains as plain SGD: the same rows as sgd (it is sgd's twin when both are selected)
    assert M.twin_methods(("sgd", "adam+discrete-x")) == {"adam+discrete-x": "sgd"}
    run_study(cfg, tmp_path, progress=False)
    rows = read_results(tmp_path / "results.csv")
    assert {r["family"] for r in rows} == {"sgd"}
    assert all(r["grad_evals"] == 2 * 4 for r in rows if r["method"] == "adam+discrete-x")
    lines = verdict_lines(cfg, summarize(cfg, rows))
    assert "(adam+discrete-x" in lines[0] and "the widest baseline's" in lines[0]
    text = summary_markdown(cfg, rows)
    assert "| sgd family |" in text and "adam family" not in text


def test_a_method_without_a_base_learning_rate_sweeps_its_multiplier(registry, tmp_path):
    """One record: no base rate, its own family; the sweep varies the multiplier, which the report names."""
    torch = pytest.importorskip("torch")
    from stochctl.study.report import summary_markdown
    from stochctl.study.runner import read_results, run_study

    def build(G, D, scale, *, steps, table):
        # SGD at a fixed rate of 1e-2 times the swept multiplier, two gradient evaluations per player
        return M.Players("sgd")(G, D, 1e-2 * scale, steps=steps, table=table)

    M.register(M.Method("scaled", "scale", build, base_lr=False, multiplier="scale", grad_evals=2))
    with pytest.raises(InputError, match="no learning-rate sweep for family 'scale'"):
        _tiny(("gauss1d",), ("sgd", "scaled"))
    cfg = _tiny(("gauss1d",), ("scaled",), sweeps=(("scale", (1.0, 10.0)),))
    assert dict(cfg.select(lrs=(2.0,)).sweeps) == {"sgd": (2.0,), "adam": (2.0,), "scale": (2.0,)}
    assert _tiny(("gauss1d",), ("sgd",)).select(lrs=(1.0,)).sweeps == (("sgd", (1.0,)), ("adam", (1.0,)))
    run_study(cfg, tmp_path, progress=False)
    rows = read_results(tmp_path / "results.csv")
    assert sorted(r["lr"] for r in rows) == [1.0, 10.0] and {r["family"] for r in rows} == {"scale"}
    assert all(r["grad_evals"] == 2 * 2 * 4 for r in rows)
    # the multiplier 10 trains like plain SGD at rate 0.1
    ref = _tiny(("gauss1d",), ("sgd",), lrs=(0.1,))
    from stochctl.study.runner import run_job

    plain = run_job(ref, Job("gauss1d", "sgd", 0.1, 0))[0]
    scaled = next(r for r in rows if r["lr"] == 10.0)
    assert json.loads(scaled["curve"]) == json.loads(plain["curve"])
    assert "(scale) |" in summary_markdown(cfg, rows)
    del torch


def test_a_registered_method_runs_in_a_process_pool(registry, tmp_path):
    """Workers are fresh processes: the record travels with the job."""
    torch = pytest.importorskip("torch")
    from stochctl.study.runner import read_results, run_study

    M.register(M.Method("momentum", "sgd", M.Players(functools.partial(torch.optim.SGD, momentum=0.9))))
    cfg = _tiny(("gauss1d",), ("sgd", "momentum"), steps=3)
    run_study(cfg, tmp_path / "pool", workers=2, progress=False)
    run_study(cfg, tmp_path / "serial", workers=1, progress=False)
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    key = lambda r: (r["method"], r["lr"])  # noqa: E731
    pool = sorted(map(strip, read_results(tmp_path / "pool" / "results.csv")), key=key)
    serial = sorted(map(strip, read_results(tmp_path / "serial" / "results.csv")), key=key)
    assert pool == serial and len(pool) == 4
    by = {(r["method"], r["lr"]): r["curve"] for r in pool}
    assert by[("momentum", 1.0)] != by[("sgd", 1.0)]  # momentum trains differently from plain SGD


def _readme_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if marker in b]
    assert len(found) == 1
    return found[0]


def test_readme_example_adds_a_method_with_one_record(registry, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from stochctl.study.runner import read_results

    code = _readme_block("register(Method(")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    name = next(n for n in M.METHODS if n not in EXPECTED and n not in CANDIDATES and n not in PAIRED
                and n not in UNPAIRED and n not in M.PEER_METHODS)
    rows = read_results(tmp_path / "study-momentum" / "results.csv")
    assert {r["method"] for r in rows} == {"sgd", name}
    assert (tmp_path / "study-momentum" / "summary.md").read_text().count(f"| {name} |") >= 1


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
    from stochctl.policies import OneStepPolicy
    from stochctl.trainers.torch_adapter import ControlledLR

    x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    sched = ControlledLR(torch.optim.SGD([x], lr=0.1), OneStepPolicy(), curvature="own", curvature_every=1)
    (x ** 2).sum().backward()
    sched.step(closure=lambda: (x ** 2).sum() * float("inf"))  # masked on the device: no host read at the step
    with pytest.raises(DivergenceError):  # raised when the diagnostics are read, as the study's player does
        sched.last_curvature


def test_game_candidates_share_one_rule_between_both_players():
    torch = pytest.importorskip("torch")
    from stochctl.policies.game_policy import GameRule
    from stochctl.trainers.torch_adapter import ControlledLR

    from stochctl.trainers.pairing import MinPair, PairedLR

    assert M.CANDIDATE_METHODS == tuple(CANDIDATES) + tuple(PAIRED) + tuple(UNPAIRED)
    assert not set(M.CANDIDATE_METHODS) & set(M.METHOD_NAMES)
    G, D = torch.nn.Linear(2, 1), torch.nn.Linear(1, 1)
    for name, (family, rule) in CANDIDATES.items():
        m = M.get_method(name)
        assert (m.family, m.controlled, m.baseline, m.candidate, m.coupled) == (family, True, family, True, True)
        g, d = M.build_optimizers(name, G, D, 0.1, steps=10)
        assert isinstance(g.scheduler.game, GameRule) and g.scheduler.game is d.scheduler.game
        assert (g.scheduler.role, d.scheduler.role, g.scheduler.game.rule) == ("generator", "discriminator", rule)
        assert (g.scheduler.curvature, g.kind) == ("field", "measured")
        g2, _ = M.build_optimizers(name, G, D, 0.1, steps=10)
        assert g2.scheduler.game is not g.scheduler.game  # one rule per run, never shared across runs
    for name, family in PAIRED.items():  # both measured schedulers, paired (tests/test_displacement_pairing.py)
        m = M.get_method(name)
        assert (m.family, m.controlled, m.baseline, m.candidate, m.coupled) == (family, True, family, True, True)
        g, d = M.build_optimizers(name, G, D, 0.1, steps=10)
        assert isinstance(g.scheduler, PairedLR) and isinstance(d.scheduler, PairedLR)
        assert isinstance(g.scheduler.scheduler, ControlledLR) and g.scheduler.scheduler.game is None
        assert isinstance(g.scheduler.pair, MinPair) and g.scheduler.pair is d.scheduler.pair
        assert M.build_optimizers(name, G, D, 0.1, steps=10)[0].scheduler.pair is not g.scheduler.pair
        assert g.scheduler.curvature_every == M.CURVATURE_EVERY == 10  # as the ablation ran it
    for name, family in UNPAIRED.items():  # the per-player rule as study v2 ran it
        g, d = M.build_optimizers(name, G, D, 0.1, steps=10)
        assert isinstance(g.scheduler, ControlledLR) and g.scheduler.curvature_every == 10
        assert (M.get_method(name).family, g.scheduler.game) == (family, None)
    for name in M.METHOD_NAMES:
        g, d = M.build_optimizers(name, G, D, 0.1, steps=10)
        assert getattr(g.scheduler, "game", None) is None  # the existing methods keep their per-player rates
