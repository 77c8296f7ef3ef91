"""Empirical study: metrics against independent computations, protocol, runner, report, CLI."""

import csv
import json
import math
import sys

import numpy as np
import pytest
import scipy.stats

from stochctl.errors import FileFormatError, InputError, MissingExtraError
from stochctl.study import tasks as T
from stochctl.study.methods import METHOD_FAMILY, METHOD_NAMES
from stochctl.study.protocol import GRIDS, Job, StudyConfig, Threshold, full_config, log_sweep, quick_config

# --------------------------------------------------------------------------------------
# metrics
# --------------------------------------------------------------------------------------


def test_mode_metrics_on_constructed_samples():
    ang = 2 * np.pi * np.arange(8) / 8
    centers = 2.0 * np.stack([np.cos(ang), np.sin(ang)], axis=1)
    sd = 0.02
    unit = np.array([0.6, 0.8])  # a unit vector
    parts = [
        centers[0] + np.zeros((100, 2)),              # 100 high quality at mode 0
        centers[1] + 2.0 * sd * unit + np.zeros((50, 2)),  # 50 at 2 sd of mode 1: high quality
        centers[2] + 4.0 * sd * unit + np.zeros((30, 2)),  # 30 at 4 sd of mode 2: not high quality
        centers[3] + 2.9 * sd * unit + np.zeros((1, 2)),   # 1 high-quality sample at mode 3
        np.zeros((19, 2)),                             # 19 at the origin, 2 away from every mode
    ]
    m = T.mode_metrics(np.concatenate(parts), centers, sd)
    n = 200
    assert m["modes"] == 3                 # modes 0, 1, 3 have a high-quality sample
    assert m["modes_1pct"] == 2            # the floor is 2 samples: mode 3 has one
    assert m["hq"] == pytest.approx(100 * 151 / n)
    q = np.array([100, 50, 1]) / 151
    assert m["reverse_kl"] == pytest.approx(sum(qi * math.log(qi / (1 / 8)) for qi in q))
    # no high-quality sample: reverse KL undefined, coverage zero
    far = T.mode_metrics(np.full((10, 2), 10.0), centers, sd)
    assert far["modes"] == 0 and far["hq"] == 0 and math.isnan(far["reverse_kl"])
    # a perfect uniform histogram has reverse KL 0
    exact = T.mode_metrics(np.repeat(centers, 5, axis=0), centers, sd)
    assert exact["modes_1pct"] == 8 and exact["hq"] == 100 and exact["reverse_kl"] == pytest.approx(0, abs=1e-15)


def test_mode_metrics_against_brute_force(rng):
    g = np.arange(-4.0, 4.1, 2.0)
    centers = np.array([(a, b) for a in g for b in g])
    sd = 0.05
    x = centers[rng.integers(0, 25, 700)] + rng.normal(0, 0.12, (700, 2))
    m = T.mode_metrics(x, centers, sd)
    counts = [0] * 25
    for p in x:
        dists = [math.dist(p, c) for c in centers]
        k = min(range(25), key=dists.__getitem__)
        if dists[k] <= 3 * sd:
            counts[k] += 1
    total = sum(counts)
    assert m["modes"] == sum(c >= 1 for c in counts)
    assert m["modes_1pct"] == sum(c >= 7 for c in counts)
    assert m["hq"] == pytest.approx(100 * total / 700)
    assert m["reverse_kl"] == pytest.approx(sum(c / total * math.log(25 * c / total) for c in counts if c))


def test_energy_distance_matches_scipy_in_1d_and_brute_force_in_2d(rng):
    x, y = rng.normal(0, 1, 300), rng.standard_t(3, 200) + 0.3
    assert T.energy_distance(x, y) == pytest.approx(scipy.stats.energy_distance(x, y), rel=1e-9)
    a, b = rng.normal(size=(40, 2)), rng.normal(0.5, 1.5, size=(30, 2))
    exy = np.mean([[np.linalg.norm(p - q) for q in b] for p in a])
    exx = np.mean([[np.linalg.norm(p - q) for q in a] for p in a])
    eyy = np.mean([[np.linalg.norm(p - q) for q in b] for p in b])
    assert T.energy_distance(a, b) == pytest.approx(math.sqrt(2 * exy - exx - eyy), rel=1e-9)
    assert T.energy_distance(a, a) == pytest.approx(0, abs=1e-7)


def test_wasserstein_kurtosis_acf_leverage_against_references(rng):
    x, y = rng.standard_t(4, 500), 0.7 * rng.normal(size=333)
    assert T.wasserstein_1d(x, y) == pytest.approx(scipy.stats.wasserstein_distance(x, y), rel=1e-12)
    u, v = rng.normal(size=100), rng.normal(size=100)
    assert T.wasserstein_1d(u, v) == pytest.approx(np.mean(np.abs(np.sort(u) - np.sort(v))), rel=1e-12)
    assert T.excess_kurtosis(x) == pytest.approx(scipy.stats.kurtosis(x, fisher=True, bias=True), rel=1e-12)
    # autocorrelation of an AR(1)-like series: numpy reference with the textbook sums
    s = np.zeros(400)
    for t in range(1, 400):
        s[t] = 0.6 * s[t - 1] + rng.normal()
    sc = s - s.mean()
    for adjusted in (True, False):
        ref = [np.sum(sc[:-k] * sc[k:]) / ((400 - k) if adjusted else 400) / np.mean(sc**2) for k in range(1, 6)]
        assert np.allclose(T.acf(s, 5, adjusted=adjusted), ref, rtol=1e-12)
    stattools = pytest.importorskip("statsmodels.tsa.stattools")
    assert np.allclose(T.acf(s, 5), stattools.acf(s, nlags=5, adjusted=True, fft=False)[1:], rtol=1e-10)
    # panel of windows: pooled sums with the global mean, brute force
    w = rng.normal(size=(7, 16)).cumsum(axis=1)
    mu, c0 = w.mean(), np.mean((w - w.mean()) ** 2)
    for k in (1, 3):
        num = sum((w[i, t] - mu) * (w[i, t + k] - mu) for i in range(7) for t in range(16 - k))
        assert T.acf(w, 3)[k - 1] == pytest.approx(num / (7 * (16 - k)) / c0, rel=1e-12)
    lev = T.leverage(w, 2)
    pairs = np.array([(w[i, t], w[i, t + 2] ** 2) for i in range(7) for t in range(14)])
    assert lev[1] == pytest.approx(np.corrcoef(pairs.T)[0, 1], rel=1e-12)


def test_gaussian_w2_closed_form_matches_quantile_integral():
    p = (np.arange(200000) + 0.5) / 200000
    for mu1, s1, mu2, s2 in [(0.0, 1.0, 1.0, 0.5), (2.0, 0.3, -1.0, 2.0)]:
        q1, q2 = scipy.stats.norm.ppf(p, mu1, s1), scipy.stats.norm.ppf(p, mu2, s2)
        assert T.gaussian_w2(mu1, s1, mu2, s2) == pytest.approx(math.sqrt(np.mean((q1 - q2) ** 2)), rel=1e-4)
    assert T.gaussian_w2(1.0, -0.5, 1.0, 0.5) == 0  # the sign of the generator's scale is irrelevant


def test_sp500_split_and_standardisation():
    pytest.importorskip("arch")
    train, test = T.sp500_returns()
    assert abs(train.mean()) < 1e-12 and train.std() == pytest.approx(1.0, rel=1e-12)
    import arch.data.sp500

    price = arch.data.sp500.load()["Adj Close"]
    r = np.log(price.values[1:] / price.values[:-1])
    n_train = int(np.sum(price.index[1:] < "2015-01-01"))
    assert len(train) == n_train and len(train) + len(test) == len(r)
    assert np.allclose(test, (r[n_train:] - r[:n_train].mean()) / r[:n_train].std(), rtol=1e-10)


# --------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("a_eta", [0.1, 2.4])
def test_csgd_moment_control_on_a_quadratic(a_eta):
    """g = a x + noise; stationary cSGD multiplier is min(1, E g^2 / (a eta Var g)) = min(1, 1/(a eta))."""
    torch = pytest.importorskip("torch")
    from stochctl.study.methods import ControlledSGD

    gen = torch.Generator().manual_seed(1)
    a, d = 2.0, 2000
    eta = a_eta / a
    x = torch.ones(d, requires_grad=True)
    opt = ControlledSGD([x], lr=eta)
    for _ in range(800):
        x.grad = a * x.detach() + torch.randn(d, generator=gen)
        opt.step()
    u = opt.multipliers()[0].mean().item()
    assert u == pytest.approx(min(1.0, 1.0 / a_eta), rel=0.08)
    # plain SGD at a eta = 2.4 explodes (|1 - a eta| > 1); cSGD stays near E x^2 = (1/a)^2
    assert (x.detach() ** 2).mean().item() < (0.5 if a_eta > 2 else 0.05)


# --------------------------------------------------------------------------------------
# protocol and bad input
# --------------------------------------------------------------------------------------


def test_protocol_sweeps_seeds_and_hash():
    full, quick = full_config(), quick_config()
    assert set(full.tasks) == set(T.TASK_NAMES) and set(full.methods) == set(METHOD_NAMES)
    assert len(full.seeds) >= 10 and len(quick.seeds) >= 1 and full.version == quick.version == 3
    usual = {"sgd": 1e-2, "adam": 1e-4}
    for fam in usual:  # the peers' grids: tests/test_study_peers.py
        r = np.array(dict(full.sweeps)[fam])
        assert np.log10(r[-1] / r[0]) >= 3 - 1e-12
        assert np.allclose(np.diff(np.log10(r)), 1 / 3, atol=1e-9)                       # three per decade
        assert r[0] <= usual[fam] / 10                                                    # well below the usual
    for fam, rates in quick.sweeps:
        assert set(rates) <= set(GRIDS[fam]) and len(rates) >= min(3, len(GRIDS[fam]))
        assert (rates[0], rates[-1]) == (GRIDS[fam][0], GRIDS[fam][-1])
    assert set(full.sweep("ttur")) == set(full.sweep("adam")) == set(full.sweep("gap"))
    assert set(full.sweep("sgd+discrete")) == set(full.sweep("sgd"))
    # the hash covers the protocol, not the selection
    assert full.select(tasks=["gauss1d"], seeds=[3]).protocol_hash() == full.protocol_hash()
    assert full.select(steps=10).protocol_hash() != full.protocol_hash()
    assert StudyConfig.from_json(json.loads(json.dumps(full.to_json()))).protocol_hash() == full.protocol_hash()
    assert [j.seed for j in full.jobs()][:3] == [0, 0, 0]
    per_seed = sum(len(full.rates(m)) for m in METHOD_NAMES)
    # every grid rate, and each method's default where it is off the grid: adam's and gap's 2e-4
    off_grid = [m for m in METHOD_NAMES if full.rates(m) != full.sweep(m)]
    assert off_grid == ["adam", "gap"] and all(full.rates(m)[-1] == 2e-4 for m in off_grid)
    assert len(full.jobs()) == 4 * per_seed * len(full.seeds) and per_seed == 7 * 16 + 6 * 19 + 2


@pytest.mark.parametrize("kwargs, words", [
    (dict(tasks=("ring9",)), ["ring9"] + list(T.TASK_NAMES)),
    (dict(methods=("adamw",)), ["adamw"] + list(METHOD_NAMES)),
    (dict(sweeps=(("sgd", (0.0, 0.1)), ("adam", (1e-3,)))), ["sgd", "positive", "0.0"]),
    (dict(sweeps=(("sgd", (-0.1, 0.1)), ("adam", (1e-3,)))), ["positive", "-0.1"]),
    (dict(sweeps=(("sgd", (float("nan"),)), ("adam", (1e-3,)))), ["positive", "nan"]),
    (dict(sweeps=(("sgd", (0.1, 0.01)), ("adam", (1e-3,)))), ["increasing"]),
    (dict(seeds=(0, 0)), ["seeds"]),
])
def test_bad_configurations_are_refused(kwargs, words):
    with pytest.raises(InputError) as err:
        StudyConfig(**kwargs)
    for w in words:
        assert w in str(err.value)


def test_bad_sweep_centre_and_threshold_operator():
    with pytest.raises(InputError, match="positive"):
        log_sweep(-1.0)
    with pytest.raises(InputError, match="operator"):
        Threshold("w1", "<", 1.0)
    with pytest.raises(InputError, match="does not fit task"):
        StudyConfig(thresholds=(("ring8", (Threshold("w1", "<=", 1.0),)),))


# --------------------------------------------------------------------------------------
# runner, report, CLI
# --------------------------------------------------------------------------------------



def _tiny(tasks, methods, *, steps=6, seeds=(0,), sweeps=None, **kw):
    sweeps = sweeps or (("sgd", (1e-2, 1e3)), ("adam", (1e-3, 1e-2)))
    kw.setdefault("version", 2)  # the second protocol's runner path (v3's: tests/test_study_v3.py)
    return StudyConfig(name="tiny", tasks=tuple(tasks), methods=tuple(methods), seeds=tuple(seeds),
                       sweeps=sweeps, steps=tuple((t, steps) for t in T.TASK_NAMES), evaluations=2, **kw)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny study end to end (in this process), with its summary and figures."""
    pytest.importorskip("torch")
    pytest.importorskip("arch")
    from stochctl.study.report import write_report
    from stochctl.study.runner import run_study

    cfg = _tiny(("ring8", "sp500", "gauss1d"), METHOD_NAMES)  # the controlled methods' table ships with the package
    out = tmp_path_factory.mktemp("study")
    run_study(cfg, out, workers=1, progress=False)
    return cfg, out, write_report(out)


def test_end_to_end_csv(study):
    cfg, out, _ = study
    rows = _csv_rows(out / "results.csv")
    assert len(rows) == len(cfg.jobs())
    assert {(r["task"], r["method"], float(r["lr"]), int(r["seed"])) for r in rows} == \
        {(j.task, j.method, j.lr, j.seed) for j in cfg.jobs()}
    assert {r["protocol"] for r in rows} == {cfg.protocol_hash()}
    for r in rows:
        task = T.get_task(r["task"])
        assert r["family"] == METHOD_FAMILY[r["method"]]
        curve = json.loads(r["curve"])
        if r["diverged"] == "1":
            assert int(r["diverged_step"]) >= 1 and all(r[f"final_{m}"] == "" for m in task.metric_names)
            continue
        assert r["diverged_step"] == "" and curve["step"] == list(cfg.eval_steps(r["task"]))
        finals = {m: float(r[f"final_{m}"]) for m in task.metric_names if r[f"final_{m}"] != ""}
        assert set(finals) >= {task.primary.name}
        assert finals[task.primary.name] == pytest.approx(curve[task.primary.name][-1])
        met = all(c.met(finals) for c in cfg.task_thresholds(r["task"]))
        assert r["reached"] == str(int(met))
        others = set(T.all_metric_names()) - set(task.metric_names)
        assert all(r[f"final_{m}"] == "" for m in others)
    for r in rows:  # the policy methods record how often each policy case occurred
        if "+" in r["method"] or r["method"].startswith("ctl"):
            c = json.loads(r["policy_cases"])
            taken = int(r["diverged_step"] or r["steps"])
            assert 2 * (taken - 1) <= sum(c[k] for k in ("ok", "warmup", "nonconvex", "fallback")) <= 2 * (taken + 1)
        else:
            assert r["policy_cases"] == ""
    # SGD at rate 1000 leaves the parameter-norm bound at once on every task
    assert all(r["diverged"] == "1" for r in rows if r["method"] == "sgd" and float(r["lr"]) == 1e3)


def test_end_to_end_summary_and_figures(study):
    cfg, out, written = study
    from stochctl.study.report import summarize
    from stochctl.study.runner import read_results

    rows = _csv_rows(out / "results.csv")
    text = (out / "summary.md").read_text()
    stats = summarize(cfg, read_results(out / "results.csv"))
    for t in ("ring8", "sp500", "gauss1d"):
        assert f"## {t}" in text
        for m in cfg.methods:
            mine = [r for r in rows if r["task"] == t and r["method"] == m]
            rate = sum(r["diverged"] == "1" for r in mine) / len(mine)
            assert stats[t][m]["divergence_rate"] == pytest.approx(rate)
            assert f"| {m} | {len(mine)} | {rate:.0%} |" in text
            # best rate = best median final primary metric (diverged = worst), recomputed from the CSV
            prim = T.get_task(t).primary.name
            med = {}
            for lr in cfg.sweep(m):
                vals = [math.inf if r["diverged"] == "1" else float(r[f"final_{prim}"])
                        for r in mine if float(r["lr"]) == lr]
                med[lr] = float(np.median(vals))
            assert med[stats[t][m]["best_lr"]] == min(med.values())
    names = {p.name for p in written}
    expected = {"summary.md", "sp500_returns.png", "sp500_acf.png", "samples_ring8.png"} | \
        {f"{k}_{t}.png" for k in ("quality", "curves", "divergence") for t in ("ring8", "sp500", "gauss1d")}
    assert names == expected
    import matplotlib.image

    for p in written:
        if p.suffix == ".png":
            img = matplotlib.image.imread(p)
            assert img.shape[0] > 100 and img.shape[1] > 100 and img.std() > 0


def test_runs_are_reproducible_and_divergence_rule():
    pytest.importorskip("torch")
    from stochctl.study.runner import run_job

    cfg = _tiny(("gauss1d", "ring8"), ("adam", "csgd"), steps=5)
    for job in (Job("gauss1d", "csgd", 1e-2, 3), Job("ring8", "adam", 1e-3, 1)):
        (a, _), (b, _) = run_job(cfg, job), run_job(cfg, job)
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    # a norm bound below the initial norm: diverged at the first step, nothing evaluated
    low = _tiny(("ring8",), ("adam",), steps=5, norm_bound=1.0)
    row, samples = run_job(low, Job("ring8", "adam", 1e-3, 0), 10)
    assert samples is None and row["samples"] is None
    assert row["diverged"] == 1 and row["diverged_step"] == 1 and row["reached"] == 0
    assert json.loads(row["curve"])["step"] == []


def test_table_methods_scale_the_rate_by_the_table_value(tmp_path):
    """With a table that is 1/2 everywhere (and 1/2 in every fallback case), ctl-X at eta is X at eta/2."""
    pytest.importorskip("torch")
    from stochctl.policy import PolicyTable, TableValue
    from stochctl.study.runner import run_job

    half = TableValue("u", np.full((3, 4), 0.5), valid_range=(0.0, 0.5), fallback=0.5)
    table = PolicyTable.from_arrays([("tau_remaining", [0.0, 1.0, 10.0]), ("y", [0.0, 0.5, 1.0, 4.0])], [half])
    path = table.save(tmp_path / "half.npz")
    cfg = _tiny(("ring8", "gauss1d"), ("sgd", "adam", "ctl-sgd", "ctl-adam"), steps=25, policy_table=str(path))
    for task in ("ring8", "gauss1d"):
        for plain, lr in (("sgd", 0.05), ("adam", 2e-3)):
            ctl = run_job(cfg, Job(task, "ctl-" + plain, lr, 0))[0]
            ref = run_job(cfg, Job(task, plain, lr / 2, 0))[0]
            assert ctl["mult_g"] == 0.5 and ctl["mult_d"] == 0.5 and ref["mult_g"] == 1.0
            for key in ("curve", "diverged", "reached"):
                assert ctl[key] == ref[key]


def test_resume_after_interrupt(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from stochctl.study import runner

    cfg = _tiny(("gauss1d",), ("sgd", "adam"), steps=5, seeds=(0, 1))
    real = runner._worker
    calls = []

    def interrupted(config, job, samples):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(job)
        return real(config, job, samples)

    monkeypatch.setattr(runner, "_worker", interrupted)
    with pytest.raises(KeyboardInterrupt):
        runner.run_study(cfg, tmp_path / "a", workers=1, progress=False)
    csv_path = tmp_path / "a" / "results.csv"
    assert len(_csv_rows(csv_path)) == 3
    with open(csv_path, "a") as f:  # a row cut short by the interruption
        f.write(f"{cfg.protocol_hash()},gauss1d,adam,adam,0.0")
    calls.clear()
    monkeypatch.setattr(runner, "_worker", lambda c, j, s: calls.append(j) or real(c, j, s))
    runner.run_study(cfg, tmp_path / "a", workers=1, progress=False)
    assert len(calls) == len(cfg.jobs()) - 3            # finished runs are not repeated
    resumed = _csv_rows(csv_path)
    runner.run_study(cfg, tmp_path / "b", workers=1, progress=False)
    fresh = _csv_rows(tmp_path / "b" / "results.csv")
    key = lambda r: (r["method"], r["lr"], r["seed"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert sorted(map(strip, resumed), key=key) == sorted(map(strip, fresh), key=key)


def test_process_pool_matches_serial_runs(tmp_path):
    pytest.importorskip("torch")
    from stochctl.study.runner import run_study

    cfg = _tiny(("gauss1d",), ("sgd", "csgd"), steps=5, seeds=(0, 1))
    run_study(cfg, tmp_path / "pool", workers=2, progress=False)
    run_study(cfg, tmp_path / "serial", workers=1, progress=False)
    key = lambda r: (r["method"], r["lr"], r["seed"])  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    pool = sorted(map(strip, _csv_rows(tmp_path / "pool" / "results.csv")), key=key)
    serial = sorted(map(strip, _csv_rows(tmp_path / "serial" / "results.csv")), key=key)
    assert pool == serial and len(pool) == len(cfg.jobs())


def test_mixing_protocols_is_refused(tmp_path):
    pytest.importorskip("torch")
    from stochctl.study.runner import run_study

    cfg = _tiny(("gauss1d",), ("sgd",), steps=3)
    run_study(cfg, tmp_path, workers=1, progress=False)
    with pytest.raises(InputError, match="another study protocol"):
        run_study(cfg.select(steps=4), tmp_path, workers=1, progress=False)
    # growing the selection (more seeds, another method) under the same protocol is fine
    run_study(cfg.select(seeds=(0, 1), methods=("sgd", "adam")), tmp_path, workers=1, progress=False)
    assert len(_csv_rows(tmp_path / "results.csv")) == 2 * 2 * 2
    # a results file holding another protocol's rows is refused even without the manifest
    (tmp_path / "study.json").unlink()
    with pytest.raises(InputError, match="another study protocol"):
        run_study(cfg.select(steps=4), tmp_path, workers=1, progress=False)


def test_missing_extras_name_the_extra(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from stochctl.cli import main
    from stochctl.study.runner import run_study

    monkeypatch.setitem(sys.modules, "arch", None)
    with pytest.raises(MissingExtraError, match=r"stochctl\[study\]"):
        run_study(_tiny(("sp500",), ("sgd",)), tmp_path / "x", workers=1, progress=False)
    assert not (tmp_path / "x" / "results.csv").exists()
    code = main(["study", "--tasks", "sp500", "--methods", "sgd", "--steps", "2", "--seeds", "1",
                 "--out", str(tmp_path / "y"), "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "stochctl[study]" in err and len(err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match="torch"):
        run_study(_tiny(("gauss1d",), ("sgd",)), tmp_path / "z", workers=1, progress=False)


def test_cli_end_to_end_and_bad_names(tmp_path, capsys):
    pytest.importorskip("torch")
    from stochctl.cli import main

    out = tmp_path / "cli"
    code = main(["study", "--tasks", "gauss1d", "--methods", "sgd,adam", "--steps", "4", "--seeds", "1",
                 "--lrs", "1e-3,0.1", "--out", str(out), "--workers", "1", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "summary:" in printed and (out / "summary.md").exists() and (out / "summary.json").exists()
    rows = _csv_rows(out / "results.csv")
    # two methods over the two given rates and each one's default (v3: sgd 1e-2, adam 2e-4), one seed
    assert sorted((r["method"], float(r["lr"])) for r in rows) == [
        ("adam", 2e-4), ("adam", 1e-3), ("adam", 0.1), ("sgd", 1e-3), ("sgd", 1e-2), ("sgd", 0.1)]
    assert "stochctl study --tasks gauss1d --methods sgd,adam --lrs 0.001,0.1" in (out / "summary.md").read_text()
    for argv, words in ((["--tasks", "ring9"], ["ring9", "ring8, grid25, sp500, gauss1d"]),
                        (["--methods", "sgd,rmsprop"], ["rmsprop", ", ".join(METHOD_NAMES)])):
        code = main(["study", *argv, "--out", str(tmp_path / "bad"), "--no-progress"])
        err = capsys.readouterr().err
        assert code == 2 and all(w in err for w in words)
    with pytest.raises(FileFormatError):
        from stochctl.study.runner import read_results

        (tmp_path / "junk.csv").write_text("a,b\n1,2\n")
        read_results(tmp_path / "junk.csv")
