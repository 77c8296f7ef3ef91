"""Study v3: equal gradient budget, validation and test splits, the practitioner's statistics, the
returns metrics, the saved samples as the scored samples, the curves files and bad input."""

import csv
import gzip
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from stochctl.errors import InputError
from stochctl.study import methods as M
from stochctl.study.metrics import aggregate_series, aggregate_windows, aggregated_w1, wasserstein_1d
from stochctl.study.practice import expected_best_of_k, identical_to_previous, practice_stats
from stochctl.study.protocol import NO_RATE, Job, StudyConfig, quick_config, v2_full_config
from stochctl.study.tasks_v3 import three_way_split

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def registry():
    saved = dict(M.METHODS)
    yield M.METHODS
    M.METHODS.clear()
    M.METHODS.update(saved)


def _brute_force_best_of_k(val, test, k, higher_is_better, cap):
    """Mean over seeds of the mean over every k-subset of the test value at the subset's validation best."""
    out = []
    sign = -1.0 if higher_is_better else 1.0
    for v, t in zip(val, test):
        n = len(v)
        vals = []
        for subset in itertools.combinations(range(n), k):
            key = lambda j: (sign * v[j] if math.isfinite(v[j]) else math.inf, j)  # noqa: E731
            j = min(subset, key=key)
            vals.append(t[j] if math.isfinite(t[j]) else cap)
        out.append(sum(vals) / len(vals))
    return sum(out) / len(out)


@pytest.mark.parametrize("higher_is_better", [False, True])
def test_expected_best_of_k_is_the_mean_over_every_subset(rng, higher_is_better):
    for n in (1, 2, 5, 8):
        val = rng.choice([0.1, 0.2, 0.3, 0.5, 0.9], size=(3, n))  # ties on purpose
        test = val + rng.normal(0, 0.1, size=(3, n))
        val[0, 0], test[0, 0] = math.inf, math.inf  # a diverged run
        cap = 7.0
        for k in range(1, n + 1):
            got = expected_best_of_k(val, test, k, higher_is_better=higher_is_better, cap=cap)
            assert got == pytest.approx(_brute_force_best_of_k(val, test, k, higher_is_better, cap), rel=1e-12)
        assert math.isnan(expected_best_of_k(val, test, n + 1))
    # k = 1 is the plain mean of the test values; k = n the test value at the validation best
    v, t = np.array([[0.3, 0.1, 0.2]]), np.array([[3.0, 5.0, 4.0]])
    assert expected_best_of_k(v, t, 1) == pytest.approx(4.0)
    assert expected_best_of_k(v, t, 3) == pytest.approx(5.0)
    assert expected_best_of_k(v, t, 2) == pytest.approx((5 + 5 + 4) / 3)


def test_w1_of_5_day_returns_by_hand():
    w = np.arange(32, dtype=float).reshape(2, 16)
    # blocks of 5 from each window's first day; day 15 is left out
    assert aggregate_windows(w).tolist() == [10.0, 35.0, 60.0, 90.0, 115.0, 140.0]
    assert aggregate_series(np.arange(12.0)).tolist() == [10.0, 35.0]
    real = np.array([1.0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 9])  # 5-day sums 5, 0, 10
    gen = np.zeros((3, 16))
    gen[0, :5] = 1.0  # sums: 5, 0, 0 | 0, 0, 0 | 0, 0, 0 ... -> {5, 0 x 8}
    # sorted laws: real {0, 5, 10} (weights 1/3), generated {0 x 8, 5} (weights 1/9)
    # W1 = int |F_g - F_r| = (8/9 - 1/3) * 5 + (1 - 2/3) * 5
    expected = (8 / 9 - 1 / 3) * 5 + (1 - 2 / 3) * 5
    assert aggregated_w1(gen, real) == pytest.approx(expected, rel=1e-12)
    assert aggregated_w1(gen, real) == pytest.approx(wasserstein_1d([5, 0, 0, 0, 0, 0, 0, 0, 0], [5, 0, 10]))


def test_returns_are_split_60_20_20_by_date_and_standardised_on_training(rng):
    r = rng.normal(0.1, 2.0, 1001)
    train, val, test = three_way_split(r)
    assert (len(train), len(val), len(test)) == (601, 200, 200)
    mean, sd = r[:601].mean(), r[:601].std()
    assert np.allclose(np.concatenate([train, val, test]) * sd + mean, r)
    assert abs(train.mean()) < 1e-12 and train.std() == pytest.approx(1.0)
    pytest.importorskip("arch")
    from stochctl.study.tasks_v3 import get_split_task, sp500_series

    task = get_split_task("sp500")
    full = sp500_series()
    n = len(full)
    assert len(task.part("train")) == round(0.6 * n) and len(task.part("test")) == n - round(0.8 * n)
    import arch.data.sp500 as sp

    price = sp.load()["Adj Close"].sort_index()
    dates = price.index[1:]
    # the test part is the last 20% of the dates
    assert dates[round(0.8 * n)] > dates[round(0.8 * n) - 1]
    assert np.allclose(task.part("test") * full[:round(0.6 * n)].std() + full[:round(0.6 * n)].mean(),
                       np.log(price.to_numpy())[round(0.8 * n) + 1:] - np.log(price.to_numpy())[round(0.8 * n):-1])


def test_validation_and_test_draws_are_separate_and_fixed():
    torch = pytest.importorskip("torch")
    from stochctl.study.tasks_v3 import get_split_task

    for name in ("ring8", "gauss1d"):
        task = get_split_task(name)
        a, b = task.split_evaluator("validation", 3), task.split_evaluator("test", 3)
        assert not torch.equal(a.z, b.z)
        assert torch.equal(a.z, task.split_evaluator("validation", 3).z)
        assert not torch.equal(a.z, task.split_evaluator("validation", 4).z)
    ring = get_split_task("ring8")
    assert not np.array_equal(ring.reference("validation", 0), ring.reference("test", 0))
    with pytest.raises(InputError, match="unknown split 'train2'"):
        ring.split_evaluator("train2", 0)


def _cfg(tasks=("gauss1d",), methods=("sgd", "sgd+discrete"), **kw):
    base = dict(name="t", tasks=tuple(tasks), methods=tuple(methods), seeds=(0,),
                sweeps=(("sgd", (1e-2, 0.1)), ("adam", (1e-3,))), evaluations=3,
                grad_evals=tuple((t, 60) for t in ("ring8", "grid25", "sp500", "gauss1d", "data")))
    base.update(kw)
    return StudyConfig(**base)


def test_every_run_gets_the_same_gradient_budget_and_pays_for_measurements_in_steps():
    pytest.importorskip("torch")
    from stochctl.study.runner import run_job
    from stochctl.study.spec import step_cost

    cfg = _cfg()
    plain, _ = run_job(cfg, Job("gauss1d", "sgd", 0.1, 0))
    measured, _ = run_job(cfg, Job("gauss1d", "sgd+discrete", 0.1, 0))
    assert plain["grad_evals"] == 60 and plain["steps"] == 30 and plain["horizon"] == 30
    cost = step_cost(M.get_method("sgd+discrete"))
    assert cost == 8  # 2 step gradients, 2 x 3 for the field measure
    assert 60 - cost < measured["grad_evals"] <= 60
    every = M.get_method("sgd+discrete").build.scheduler.every  # 3 evaluations per player and measurement
    assert measured["steps"] < plain["steps"] and measured["horizon"] == int(60 // (2 + 2 * 3 / every))
    assert plain["budget"] == measured["budget"] == 60 and plain["budget_unit"] == "grad_evals"
    # the last evaluation is at the end of the run, at the gradient count the curve records
    assert measured["curve"]["grad_evals"][-1] == measured["grad_evals"]
    assert measured["curve"]["step"][-1] == measured["steps"]
    # --steps keeps working as a budget in steps
    stepped = cfg.select(steps=7)
    row, _ = run_job(stepped, Job("gauss1d", "sgd+discrete", 0.1, 0))
    assert row["steps"] == 7 and row["budget_unit"] == "steps" and row["grad_evals"] > 14
    assert cfg.select(grad_evals=100).budget("gauss1d") == ("grad_evals", 100)


def test_defaults_and_methods_without_a_rate(registry):
    cfg = quick_config()
    assert cfg.version == 3 and 2e-4 in cfg.rates("adam") and cfg.rates("adam")[:-1] == cfg.sweep("adam")
    assert M.get_method("adam").default == 2e-4 and M.get_method("sgd").default == 1e-2
    assert M.get_method("sgd+discrete").default == 0.1 and M.get_method("ttur").default == 1e-4
    M.register(M.Method("fixed", "fixed", M.Players("sgd"), base_lr=False))
    assert not M.get_method("fixed").has_rate and M.get_method("fixed").default is None
    c = _cfg(methods=("sgd", "fixed"), seeds=(0, 1))
    assert [j.lr for j in c.jobs() if j.method == "fixed"] == [NO_RATE, NO_RATE]
    assert dict(c.select(lrs=(0.5,)).sweeps)["sgd"] == (0.5,)
    with pytest.raises(InputError, match="none of the chosen methods .fixed. has a learning rate"):
        c.select(methods=("fixed",), lrs=(0.5,))


def _one_line_exit_2(capsys, tmp_path, argv, words):
    from stochctl.cli import main

    out = tmp_path / "out"
    code = main(["study", *argv, "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_bad_input_is_one_line_exit_2_and_writes_nothing(registry, tmp_path, capsys):
    M.register(M.Method("fixed", "fixed", M.Players("sgd"), base_lr=False))
    _one_line_exit_2(capsys, tmp_path, ["--tasks", "gauss1d", "--methods", "sgd,nosuch"], "unknown method 'nosuch'")
    _one_line_exit_2(capsys, tmp_path, ["--tasks", "gauss1d", "--methods", "fixed", "--lrs", "0.1,1"],
                     "none of the chosen methods (fixed) has a learning rate")
    _one_line_exit_2(capsys, tmp_path, ["--tasks", "gauss1d", "--methods", "sgd,sgd+discrete", "--grad-evals", "7"],
                     "too small for one step of 'sgd+discrete' (8 gradient evaluations)")
    _one_line_exit_2(capsys, tmp_path, ["--tasks", "gauss1d", "--grad-evals", "10", "--steps", "5"],
                     "give one of them")


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    """A quick v3 study of the returns and gauss1d tasks (two methods, the quick grid and defaults)."""
    pytest.importorskip("torch")
    pytest.importorskip("arch")
    from stochctl.study.runner import run_study

    out = tmp_path_factory.mktemp("v3")
    cfg = quick_config().select(tasks=("sp500", "gauss1d"), methods=("sgd", "adam+discrete", "adam+discrete-field"),
                                grad_evals=60, seeds=(0, 1))
    run_study(cfg, out, workers=1, progress=False)
    return cfg, out


def test_every_reported_number_is_recomputed_from_the_saved_samples(quick_study):
    from stochctl.study.files import load_samples
    from stochctl.study.report import load_study
    from stochctl.study.report_v3 import load_curves
    from stochctl.study.tasks_v3 import rescore

    cfg, out = quick_study
    config, rows = load_study(out)
    assert len(rows) == len(cfg.jobs())
    recomputed = []
    for r in rows:
        if r["diverged"]:
            assert r["samples"] is None and r["final_w1"] is None
            recomputed.append(r)
            continue
        test, meta = load_samples(out / r["samples"])
        task = config.task(r["task"])
        again = dict(r)
        for prefix, split, x in (("final_", "test", test), ("val_", "validation", meta["validation"])):
            metrics = rescore(task, x.astype(np.float64), split, r["seed"])
            for name in task.metric_names:
                assert metrics[name] == pytest.approx(r[prefix + name], rel=1e-12, abs=1e-15), (r["task"], name)
                again[prefix + name] = metrics[name]
        recomputed.append(again)
    assert any(r["task"] == "sp500" and not r["diverged"] for r in rows)
    curves = load_curves(out, rows)
    a, b = practice_stats(config, rows, curves), practice_stats(config, recomputed, curves)
    for t in a:
        for m in a[t]:
            for key in ("tuned", "at_default", "expected_best", "robust", "reach", "divergence_rate", "secondary"):
                assert a[t][m][key] == b[t][m][key], (t, m, key)


def test_files_curves_summary_json_and_resume(quick_study, tmp_path):
    import shutil

    from stochctl.study import runner as R

    cfg, src = quick_study
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    header = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert "curve" not in header and "val_w1" in header and "final_w1_5d" in header
    for p in out.rglob("*"):
        assert p.stat().st_size < 5 * 2**20
    rows = R.read_results(out / "results.csv")
    curves = R.read_curves(out, "gauss1d", "sgd")
    with gzip.open(R.curve_path(out, "gauss1d", "sgd"), "rt") as f:
        lines = list(csv.reader(f))
    assert lines[0][:5] == ["lr", "seed", "split", "step", "grad_evals"]
    done = [r for r in rows if r["task"] == "gauss1d" and r["method"] == "sgd" and not r["diverged"]]
    assert {(r["lr"], r["seed"]) for r in done} <= set(curves)
    for r in done:
        assert curves[(r["lr"], r["seed"])]["test"]["w1"][-1] == pytest.approx(r["final_w1"], rel=1e-12)
        assert curves[(r["lr"], r["seed"])]["grad_evals"][-1] == r["grad_evals"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "stochctl.study.summary" and len(summary["runs"]) == len(rows)
    run = summary["runs"][0]
    for key in ("method", "lr", "seed", "diverged", "samples", "grad_evals", "steps", "metrics", "split"):
        assert key in run
    assert set(run["split"]) == {"validation", "test"} and run["split"]["test"] == run["metrics"]
    # resume: drop two rows and leave a cut gzip member behind; only those two runs run again
    text = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(text[:-2]))
    with open(R.curve_path(out, rows[-1]["task"], rows[-1]["method"]), "ab") as f:
        f.write(gzip.compress(b"0.1,0,validation,1,2,3\n")[:-6])
    ran = []
    original = R.run_job

    def counting(config, job, samples=0, method=None):
        ran.append(job)
        return original(config, job, samples, method)

    import unittest.mock

    with unittest.mock.patch.object(R, "run_job", counting):
        R.run_study(cfg, out, workers=1, progress=False)
    again = R.read_results(out / "results.csv")
    # the two dropped rows are a run and its twin (recorded under both names): trained once again
    assert [r["method"] for r in rows[-2:]] == ["adam+discrete", "adam+discrete-field"]
    assert [(j.task, j.method, j.lr, j.seed) for j in ran] == [(r["task"], r["method"], r["lr"], r["seed"])
                                                               for r in rows[-2:-1]]
    assert sorted(R.row_key(r) for r in again) == sorted(R.row_key(r) for r in rows)
    assert R.read_curves(out, rows[-1]["task"], rows[-1]["method"])  # readable after the repair


def test_twins_are_recorded_with_their_curves_and_samples(quick_study):
    from stochctl.study.files import load_samples, read_curves, read_results

    _, out = quick_study
    rows = read_results(out / "results.csv")
    key = lambda r: (r["task"], r["lr"], r["seed"])  # noqa: E731
    src = {key(r): r for r in rows if r["method"] == "adam+discrete"}
    twins = [r for r in rows if r["method"] == "adam+discrete-field"]
    assert twins and len(twins) == len(src)
    for r in twins:
        a = src[key(r)]
        assert {k: v for k, v in r.items() if k not in ("method", "samples")} == \
            {k: v for k, v in a.items() if k not in ("method", "samples")}
        assert read_curves(out, r["task"], r["method"])[(r["lr"], r["seed"])] == \
            read_curves(out, a["task"], a["method"])[(a["lr"], a["seed"])]
        if r["samples"]:
            x, mx = load_samples(out / r["samples"])
            y, my = load_samples(out / a["samples"])
            assert np.array_equal(x, y) and np.array_equal(mx["validation"], my["validation"])
            assert mx["method"] == "adam+discrete-field"


def test_quick_report_has_the_practitioner_columns(quick_study, tmp_path):
    import shutil

    from stochctl.study.report import write_report

    _, src = quick_study
    out = tmp_path / "r"
    shutil.copytree(src, out)
    written = write_report(out)
    text = written[0].read_text()
    for col in ("at default", "at tuned", "E best 1", "E best 2", "reach 20%", "reach 50%", "robust 10%",
                "robust 50%", "w1_5d", "leverage", "acf_abs", "kurtosis_err"):
        assert col in text
    assert "## Targets" in text


def test_identical_runs_are_found_and_the_tuned_rate_comes_from_validation():
    rows_a = [dict(seed=0, grad_evals=10, diverged=0, final_w1=0.5), dict(seed=1, grad_evals=10, diverged=0,
                                                                          final_w1=0.4)]
    rows_b = [dict(r) for r in rows_a]
    rows_c = [dict(r, final_w1=0.3) for r in rows_a]
    assert identical_to_previous([rows_a, rows_b, rows_c, [dict(r) for r in rows_c]], ["final_w1"]) == [
        False, True, False, True]
    # hand-made study: the test metric is best at 1.0, the validation metric at 0.1
    cfg = StudyConfig(name="t", tasks=("gauss1d",), methods=("sgd",), seeds=(0, 1),
                      sweeps=(("sgd", (0.01, 0.1, 1.0)), ("adam", (1e-3,))))
    val = {0.01: 0.9, 0.1: 0.2, 1.0: 0.5}
    test = {0.01: 0.8, 0.1: 0.6, 1.0: 0.1}
    rows = [dict(task="gauss1d", method="sgd", lr=lr, seed=s, diverged=0, reached=0, steps=5, grad_evals=10,
                 val_w1=val[lr] + 0.01 * s, final_w1=test[lr] + 0.01 * s)
            for lr in (0.01, 0.1, 1.0) for s in (0, 1)]
    s = practice_stats(cfg, rows, {})["gauss1d"]["sgd"]
    assert s["tuned"] == 0.1 and s["by_lr"][0.1]["final"][1] == pytest.approx(0.605)
    assert s["task_best"] == pytest.approx(0.105)
    assert s["robust"][0.1] == (pytest.approx(1.0), pytest.approx(1.0))  # only 1.0 is within 10%
    assert s["at_default"][1] == pytest.approx(0.805)  # sgd's default 1e-2 is on the grid


def test_version_2_protocol_reads_as_recorded():
    manifest = json.loads((ROOT / "results" / "study-v2" / "study.json").read_text())
    config = StudyConfig.from_json(manifest)
    assert config.version == 2 and not config.grad_evals
    mine, recorded = config.protocol(), manifest["protocol"]
    assert sorted(mine) == sorted(recorded)
    assert {k for k in mine if mine[k] != recorded[k]} <= {"code"}
    assert v2_full_config().version == 2 and len(v2_full_config().seeds) == 5
