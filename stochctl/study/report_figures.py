"""Figures of the study report: quality and divergence against the base rate, learning curves, samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .files import load_samples
from .methods import is_controlled
from .runner import sample_path
from .tasks import ACF_LAGS, acf


def _fmt(v: float, digits: int = 3) -> str:
    """``v`` to ``digits`` significant digits; n/a, inf, -inf and 0 spelled out."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}"


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

def _curve_stats(rows: list[dict], metric: str):
    steps = None
    series = []
    for r in rows:
        c = json.loads(r["curve"])
        if steps is None or len(c["step"]) > len(steps):
            steps = c["step"]
        series.append(c[metric])
    if not steps:
        return None
    mat = np.full((len(series), len(steps)), np.nan)
    for i, s in enumerate(series):
        vals = [np.nan if v is None else v for v in s]
        mat[i, :len(vals)] = vals
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            q = np.nanpercentile(mat, [25, 50, 75], axis=0)
    return np.asarray(steps), q


def _method_colors(methods):
    import matplotlib

    n = 10 if len(methods) <= 10 else 20
    cmap = matplotlib.colormaps[f"tab{n}"]
    return {m: cmap(i % n) for i, m in enumerate(methods)}


def figure_quality(config, stats, task_name, path):
    """Median final primary metric against the base rate, per method; x marks rates where a seed diverged."""
    import matplotlib.pyplot as plt

    prim = config.task(task_name).primary
    per_method = stats[task_name]
    colors = _method_colors(list(per_method))
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    for m, s in per_method.items():
        lrs = [lr for lr in s["sweep"] if lr in s["by_lr"]]
        med = np.array([s["by_lr"][lr]["final"][1] for lr in lrs], dtype=float)
        shown = np.where(np.isfinite(med), med, np.nan)
        ls = "-" if is_controlled(m) else "--"
        ax.plot(lrs, shown, ls, marker="o", ms=3, color=colors[m], label=m, lw=1.2)
        bad = [lr for lr in lrs if s["by_lr"][lr]["diverged"]]
        if bad:
            top = np.nanmax(shown) if np.any(np.isfinite(shown)) else 1.0
            ax.plot(bad, [top] * len(bad), "x", color=colors[m], ms=5)
    best = next(iter(per_method.values()))["task_best"]
    if math.isfinite(best):
        bound = best * (1 - config.robust_tolerance if prim.higher_is_better else 1 + config.robust_tolerance)
        ax.axhline(bound, color="gray", lw=0.8, ls=":")
    ax.set_xscale("log")
    if not prim.higher_is_better:
        ax.set_yscale("log")
    ax.set_xlabel("base learning rate")
    ax.set_ylabel(f"final {prim.name} (median over seeds)")
    ax.set_title(f"{task_name}: quality against the base rate (solid: controlled; x: a seed diverged; "
                 f"dotted: robust bound)", fontsize=8)
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_curves(config, rows, stats, task_name, path):
    import matplotlib.pyplot as plt

    task = config.task(task_name)
    prim = task.primary
    per_method = stats[task_name]
    colors = _method_colors(list(per_method))
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for m, s in per_method.items():
        rs = [r for r in rows if r["task"] == task_name and r["method"] == m
              and s["best_lr"] is not None and math.isclose(r["lr"], s["best_lr"], rel_tol=1e-9)]
        cs = _curve_stats(rs, prim.name)
        if cs is None:
            continue
        steps, q = cs
        ax.plot(steps, q[1], color=colors[m], label=f"{m} (lr {_fmt(s['best_lr'], 2)})")
        ax.fill_between(steps, q[0], q[2], color=colors[m], alpha=0.15, linewidth=0)
    if not prim.higher_is_better:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(prim.name)
    ax.set_title(f"{task_name}: {prim.name} at each method's best base rate (median, IQR)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_divergence(config, stats, task_name, path):
    import matplotlib.pyplot as plt

    per_method = stats[task_name]
    colors = _method_colors(list(per_method))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6), sharex=True)
    for m, s in per_method.items():
        lrs = [lr for lr in s["sweep"] if lr in s["by_lr"]]
        div = [s["by_lr"][lr]["diverged"] / s["by_lr"][lr]["n"] for lr in lrs]
        ok = [s["by_lr"][lr]["reached"] / s["by_lr"][lr]["n"] for lr in lrs]
        axes[0].plot(lrs, div, "o-", color=colors[m], label=m, ms=3)
        axes[1].plot(lrs, ok, "o-", color=colors[m], label=m, ms=3)
    for ax, name in zip(axes, ("divergence rate", "fraction reaching the threshold")):
        ax.set_xscale("log")
        ax.set_xlabel("base learning rate")
        ax.set_ylabel(name)
        ax.set_ylim(-0.05, 1.05)
    axes[1].axhline(config.stable_fraction, color="gray", lw=0.8, ls="--")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task_name}: robustness over the base-rate sweep", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _best_samples(out: Path, stats, task_name: str, seed: int) -> dict:
    from .protocol import Job

    found = {}
    for m, s in stats[task_name].items():
        if s["best_lr"] is None:
            continue
        f = out / sample_path(Job(task_name, m, s["best_lr"], seed))
        found[m] = load_samples(f)[0] if f.exists() else None
    return found


def figure_samples(config, out, stats, task_name, seed, path):
    import matplotlib.pyplot as plt

    task = config.task(task_name)
    samples = _best_samples(out, stats, task_name, seed)
    n = max(len(samples), 1)
    cols = min(n, 3)
    rows_ = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_, cols, figsize=(3.0 * cols, 3.0 * rows_), squeeze=False)
    lim = np.abs(task.centers).max() * 1.5
    for ax, (m, x) in zip(axes.ravel(), samples.items()):
        ax.scatter(task.centers[:, 0], task.centers[:, 1], s=25, marker="x", color="red", lw=1)
        if x is None:
            ax.text(0.5, 0.5, "diverged", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.scatter(x[:, 0], x[:, 1], s=1.5, alpha=0.5)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.set_title(f"{m} (lr {_fmt(stats[task_name][m]['best_lr'], 2)})", fontsize=8)
        ax.tick_params(labelsize=6)
    for ax in axes.ravel()[len(samples):]:
        ax.axis("off")
    fig.suptitle(f"{task_name}: generated samples at the best base rate (seed {seed}); x = modes", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def figure_returns(config, out, stats, task_name, seed, path_hist, path_acf):
    import matplotlib.pyplot as plt

    task = config.task(task_name)
    real = task.series()[1]
    samples = {m: x for m, x in _best_samples(out, stats, task_name, seed).items() if x is not None}
    colors = _method_colors(list(stats[task_name]))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.8))
    bins = np.linspace(-8, 8, 81)
    axes[0].hist(real, bins=bins, density=True, histtype="stepfilled", color="0.8", label="held-out data")
    probs = np.linspace(0.005, 0.995, 199)
    qr = np.quantile(real, probs)
    for m, x in samples.items():
        axes[0].hist(x.ravel(), bins=bins, density=True, histtype="step", color=colors[m], label=m)
        axes[1].plot(qr, np.quantile(x.ravel(), probs), ".", ms=2.5, color=colors[m], label=m)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("standardised return")
    axes[0].set_ylabel("density")
    lo, hi = qr[0], qr[-1]
    axes[1].plot([lo, hi], [lo, hi], color="k", lw=0.8)
    axes[1].set_xlabel("held-out quantile")
    axes[1].set_ylabel("generated quantile")
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task_name}: return distribution at the best base rate (seed {seed})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path_hist, dpi=110)
    plt.close(fig)

    nl = min(ACF_LAGS * 2, task.data_dim - 1)
    lags = np.arange(1, nl + 1)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ax.plot(lags, acf(np.abs(real), nl), "k-o", ms=3, label="held-out data")
    for m, x in samples.items():
        ax.plot(lags, acf(np.abs(x), nl), "-o", ms=2.5, color=colors[m], label=m)
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_xlabel("lag (days)")
    ax.set_ylabel("ACF of |r|")
    ax.set_title(f"{task_name}: volatility clustering (absolute-return autocorrelation)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path_acf, dpi=110)
    plt.close(fig)


def write_task_figures(config, out, figdir, stats, task: str, seed: int, curve_rows, returns_type) -> list:
    """The figures of one task (quality, curves, divergence; samples of a mixture; returns and
    autocorrelations of a returns task, ``returns_type`` its task class); the paths written."""
    written = []
    for name, fn in ((f"quality_{task}.png", lambda p: figure_quality(config, stats, task, p)),
                     (f"curves_{task}.png", lambda p: figure_curves(config, curve_rows, stats, task, p)),
                     (f"divergence_{task}.png", lambda p: figure_divergence(config, stats, task, p))):
        fn(figdir / name)
        written.append(figdir / name)
    if task in ("ring8", "grid25"):
        p = figdir / f"samples_{task}.png"
        figure_samples(config, out, stats, task, seed, p)
        written.append(p)
    if isinstance(config.task(task), returns_type):
        ph, pa = figdir / f"{task}_returns.png", figdir / f"{task}_acf.png"
        figure_returns(config, out, stats, task, seed, ph, pa)
        written += [ph, pa]
    return written
