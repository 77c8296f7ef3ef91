"""Tasks of study v3: the v2 tasks with a validation and a test split, scored on the samples they keep.

- Returns (``sp500`` and ``data``): the series in date order is cut into training, validation and
  test parts, the first :data:`SPLIT_FRACTIONS` 60%, the next 20% and the last 20%
  (:func:`three_way_split`), each standardised with the training part's mean and deviation; the
  GAN trains on windows of the training part, and a split's metrics compare
  :data:`RETURNS_WINDOWS` generated windows (10,000 values) with that split's series
  (:func:`~stochctl.study.metrics.return_metrics`, plus ``w1_5d``, the W1 of 5-day aggregated
  returns, :func:`~stochctl.study.metrics.aggregated_w1`).
- Mixtures (``ring8``, ``grid25``): a split's metrics compare :data:`EVAL_SAMPLES` generated
  points with :data:`EVAL_SAMPLES` data points; validation and test draw their latents and their
  data points from separate seeds (``stream_seed(task, split, seed)``).
- ``gauss1d``: a split's metrics are the closed forms of the Gaussian N(mean, sd^2) of
  :data:`GAUSS_SAMPLES` generated values (their sample mean and deviation) against N(1, 0.5^2);
  validation and test draw their latents from separate seeds.

The samples a split is scored on are the samples a run keeps (:meth:`SplitEvaluator.__call__`
returns both), so every reported number is recomputed from the saved samples by
:func:`rescore`.
"""

from __future__ import annotations

import functools

import numpy as np

from ..errors import InputError, require_extra
from .metrics import aggregated_w1, return_metrics
from .tasks import (DATA_TASK, EVAL_SAMPLES, SP500_WINDOW, TASK_NAMES, GaussianTask, Metric, MixtureTask,
                    ReturnsTask, _mean_pairwise_distance, all_metric_names, get_task, stream_seed)

SPLITS = ("validation", "test")
"""The evaluation splits: the tuned rate is chosen on the first, tables report the second."""
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
RETURNS_WINDOWS = 625
"""Generated windows a returns split is scored on (625 x 16 = 10,000 values)."""
GAUSS_SAMPLES = 10_000
W1_5D = Metric("w1_5d", False, "1-Wasserstein distance of 5-day aggregated returns")


def three_way_split(series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training, validation, test) parts of a returns series in date order.

    With n values: training ``r[:round(0.6 n)]``, validation ``r[round(0.6 n):round(0.8 n)]``, test
    the rest; all standardised with the training part's mean and (population) deviation.
    """
    r = np.asarray(series, dtype=np.float64).ravel()
    a = int(round(SPLIT_FRACTIONS[0] * len(r)))
    b = int(round((SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]) * len(r)))
    train = r[:a]
    mean, sd = train.mean(), train.std()
    if not sd > 0:
        raise InputError("--data: the training part of the series is constant; nothing to learn")
    return (train - mean) / sd, (r[a:b] - mean) / sd, (r[b:] - mean) / sd


@functools.lru_cache(maxsize=1)
def sp500_series() -> np.ndarray:
    """Daily log-returns ``log(P_t / P_{t-1})`` of the S&P 500 adjusted close, in date order."""
    sp500 = require_extra("arch.data.sp500", "study")
    price = sp500.load()["Adj Close"].sort_index()
    return np.diff(np.log(price.to_numpy(dtype=np.float64)))


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split


def _generator(task: str, split: str, seed: int):
    torch = require_extra("torch", "study")
    return torch.Generator().manual_seed(stream_seed(task, _check_split(split), seed))


class ReturnsSplits(ReturnsTask):
    """A returns task with training, validation and test parts (module docstring)."""

    metrics = ReturnsTask.metrics + (W1_5D,)

    def __init__(self, series, name: str = "sp500", description: str | None = None):
        self.name = name
        self._parts = three_way_split(series)
        if description is not None:
            self.description = description

    def series(self):
        """Standardised (training, test) returns (what the v2 interface calls held out)."""
        return self._parts[0], self._parts[2]

    def part(self, split: str) -> np.ndarray:
        """The standardised series of ``split`` (``train``, ``validation`` or ``test``)."""
        if split == "train":
            return self._parts[0]
        return self._parts[1 + SPLITS.index(_check_split(split))]

    def score(self, samples, split: str = "test") -> dict:
        real = self.part(split)
        out = return_metrics(samples, real)
        g = np.asarray(samples, dtype=np.float64)
        out["w1_5d"] = aggregated_w1(g.reshape(-1, SP500_WINDOW), real) if np.all(np.isfinite(g)) else np.nan
        return out

    def split_evaluator(self, split: str, seed: int) -> "SplitEvaluator":
        z = self.sample_latent(RETURNS_WINDOWS, _generator(self.name, split, seed))
        return SplitEvaluator(self, split, seed, z)


class MixtureSplits(MixtureTask):
    """A mixture task whose validation and test draws come from separate seeds."""

    def reference(self, split: str, seed: int) -> np.ndarray:
        """The data points a split's generated points are compared with (fixed by task, split, seed)."""
        gen = _generator(self.name, split, seed)
        self.sample_latent(EVAL_SAMPLES, gen)  # the latents come first from the same stream
        return self.sample_real(EVAL_SAMPLES, gen).double().numpy()

    def score(self, samples, split: str = "test", seed: int = 0, reference=None, yy=None) -> dict:
        ref = self.reference(split, seed) if reference is None else reference
        return MixtureTask.score(self, samples, ref, yy)

    def split_evaluator(self, split: str, seed: int) -> "SplitEvaluator":
        gen = _generator(self.name, split, seed)
        z = self.sample_latent(EVAL_SAMPLES, gen)
        ref = self.sample_real(EVAL_SAMPLES, gen).double().numpy()
        return SplitEvaluator(self, split, seed, z, dict(reference=ref, yy=_mean_pairwise_distance(ref, ref)))


class GaussianSplits(GaussianTask):
    """``gauss1d`` scored on generated samples, validation and test from separate latent draws."""

    def score(self, samples, split: str = "test") -> dict:
        return GaussianTask.score(self, samples)

    def split_evaluator(self, split: str, seed: int) -> "SplitEvaluator":
        z = self.sample_latent(GAUSS_SAMPLES, _generator(self.name, split, seed))
        return SplitEvaluator(self, split, seed, z)


class SplitEvaluator:
    """``evaluate(G) -> (metrics, samples)``: the generated samples of a split's fixed latents and their
    metrics (``task.score(samples, split, ...)``)."""

    def __init__(self, task, split: str, seed: int, z, extra: dict | None = None):
        self.task, self.split, self.seed, self.z = task, split, seed, z
        self.extra = extra or {}

    def __call__(self, G) -> tuple[dict, np.ndarray]:
        torch = require_extra("torch", "study")
        with torch.no_grad():
            samples = G(self.z).double().numpy()
        if isinstance(self.task, MixtureSplits):
            return self.task.score(samples, self.split, self.seed, **self.extra), samples
        return self.task.score(samples, self.split), samples


def rescore(task, samples, split: str, seed: int) -> dict:
    """The metrics of saved samples, recomputed as the run computed them."""
    if isinstance(task, MixtureSplits):
        return task.score(samples, split, seed)
    return task.score(samples, split)


def _sp500() -> ReturnsSplits:
    return ReturnsSplits(sp500_series(), "sp500", "S&P 500 daily log-returns, windows of 16 (arch.data.sp500; "
                         "first 60% trains, next 20% validates, last 20% tests)")


def _mixture(name: str) -> MixtureSplits:
    v2 = get_task(name)
    return MixtureSplits(name, v2.centers, v2.sd, v2.description)


_FACTORIES = {"ring8": lambda: _mixture("ring8"), "grid25": lambda: _mixture("grid25"), "sp500": _sp500,
              "gauss1d": GaussianSplits}


@functools.lru_cache(maxsize=None)
def get_split_task(name: str):
    """The v3 task called ``name`` (one of :data:`~stochctl.study.tasks.TASK_NAMES`)."""
    if name == DATA_TASK:
        raise InputError("the 'data' task needs a data file: stochctl study --data FILE.csv")
    if name not in _FACTORIES:
        raise InputError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    return _FACTORIES[name]()


def data_split_task(series, label: str = "user data") -> ReturnsSplits:
    """The ``data`` task of v3 on a user's returns series."""
    return ReturnsSplits(series, DATA_TASK, f"{label}: returns, windows of {SP500_WINDOW} (first 60% trains, "
                         "next 20% validates, last 20% tests)")


def split_metric_names() -> tuple[str, ...]:
    """Union of every v3 task's metric names, in a fixed order (CSV columns): v2's and ``w1_5d``."""
    return all_metric_names() + (W1_5D.name,)
