"""Tasks of the empirical study: data samplers, networks, and the metrics each task reports.

Every task is a GAN trained with the non-saturating loss
``L_D = -E log D(x) - E log(1 - D(G(z)))``, ``L_G = -E log D(G(z))``.

- ``ring8``: mixture of 8 Gaussians (standard deviation 0.02) with centres
  evenly spaced on the circle of radius 2.
- ``grid25``: mixture of 25 Gaussians (standard deviation 0.05) centred on
  ``{-4, -2, 0, 2, 4}^2``.
  Both use MLP generator and discriminator (two hidden layers of 128 ReLU
  units), latent dimension 2, batch 256. Metrics on 2,500 generated samples
  (:func:`mode_metrics`, :func:`energy_distance`): modes covered (a mode counts
  when at least one high-quality sample is nearest to it), modes covered with a
  1 percent floor, percentage of high-quality samples (within 3 standard
  deviations of the nearest centre), reverse KL of the mode histogram of the
  high-quality samples against the uniform one, and the energy distance to
  2,500 fresh data points.
- ``sp500``: windows of 16 consecutive daily log-returns of the S&P 500
  (``arch.data.sp500``, adjusted close), standardised with the training
  period's mean and deviation. Training period up to 2014-12-31, held-out
  period 2015-01-01 on; the metrics compare 2,500 generated windows with the
  held-out series (:func:`return_metrics`). MLP networks as above with latent
  dimension 16.
- ``gauss1d``: data N(1, 0.5^2), affine generator ``x = b + w z``, logistic
  discriminator quadratic in x (so the optimal discriminator between two
  Gaussians is representable). The generated law is exactly N(b, w^2), so its
  2-Wasserstein distance to the data has the closed form
  ``W2^2 = (b - mu)^2 + (|w| - s)^2``, and W1 too (:func:`gaussian_w1`).
- ``data``: a user's series (``stochctl study --data FILE.csv``), the
  ``sp500`` networks and protocol on the file's first numeric column
  (:func:`stochctl.study.datafile.load_data_file`: comma, semicolon or tab separated, empty cells
  skipped): prices become log-returns, the first 80 percent
  is the training period, the rest held out, both standardised with the
  training period's mean and deviation.
"""

from __future__ import annotations

import functools
import math
import zlib
from dataclasses import dataclass

import numpy as np

from ..errors import InputError, require_extra
from .datafile import DATA_KINDS, DATA_MIN_ROWS, load_data_file  # noqa: F401
from .metrics import (  # noqa: F401
    ACF_LAGS,  # noqa: F401
    _mean_pairwise_distance,
    acf,
    energy_distance,
    excess_kurtosis,
    gaussian_w1,
    gaussian_w2,
    ks_distance,
    leverage,
    mode_metrics,
    return_metrics,
    wasserstein_1d,
)

TASK_NAMES = ("ring8", "grid25", "sp500", "gauss1d")

EVAL_SAMPLES = 2500
HIDDEN = 128
SP500_WINDOW = 16
SP500_SPLIT = "2015-01-01"


@dataclass(frozen=True)
class Metric:
    """A task metric.

    Attributes:
        name: column name.
        higher_is_better: direction of improvement.
        description: one line for reports.
    """

    name: str
    higher_is_better: bool
    description: str


def stream_seed(*keys) -> int:
    """A 63-bit seed derived deterministically from integers and strings."""
    ints = [k if isinstance(k, int) else zlib.crc32(str(k).encode()) for k in keys]
    return int(np.random.SeedSequence(ints).generate_state(2, dtype=np.uint64)[0] >> np.uint64(1))


def _mlp(torch, n_in: int, n_out: int):
    nn = torch.nn
    return nn.Sequential(nn.Linear(n_in, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, n_out))


class Task:
    """Base class: data sampler, networks, metrics of one study task.

    Attributes:
        name: task name.
        data_dim: dimension of a data point (a window for ``sp500``).
        latent_dim: dimension of the generator's standard normal input.
        batch_size: samples per training step.
        metrics: the :class:`Metric` list, primary first.
    """

    name: str = ""
    description: str = ""
    data_dim: int = 0
    latent_dim: int = 0
    batch_size: int = 256
    metrics: tuple[Metric, ...] = ()

    @property
    def primary(self) -> Metric:
        """The metric used for training curves and for choosing the best base rate."""
        return self.metrics[0]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.metrics)

    def sample_real(self, n: int, generator):  # pragma: no cover - abstract
        """``n`` training data points as a float32 tensor (n, data_dim)."""
        raise NotImplementedError

    def sample_latent(self, n: int, generator):
        """``n`` latent draws z ~ N(0, I) as a float32 tensor (n, latent_dim)."""
        torch = require_extra("torch", "study")
        return torch.randn(n, self.latent_dim, generator=generator)

    def networks(self):
        """Generator and discriminator, initialised from torch's global RNG."""
        torch = require_extra("torch", "study")
        return _mlp(torch, self.latent_dim, self.data_dim), _mlp(torch, self.data_dim, 1)

    def generate(self, G, n: int, generator) -> np.ndarray:
        """``n`` generated samples as a float64 array."""
        torch = require_extra("torch", "study")
        with torch.no_grad():
            return G(self.sample_latent(n, generator)).double().numpy()

    def evaluator(self, generator):
        """A function ``G -> metrics dict`` that reuses one fixed latent/reference draw."""
        raise NotImplementedError  # pragma: no cover

    def score(self, samples) -> dict:  # pragma: no cover - abstract
        """Metrics of generated samples (numpy)."""
        raise NotImplementedError

    def reference_metrics(self, seed: int = 0) -> dict:
        """Metrics of real data scored as if generated: what a perfect generator reaches."""
        torch = require_extra("torch", "study")
        gen = torch.Generator().manual_seed(stream_seed(self.name, "reference", seed))
        return self.score(self.sample_real(EVAL_SAMPLES, gen).double().numpy())


class MixtureTask(Task):
    """A 2D Gaussian mixture with equal weights."""

    data_dim = 2
    latent_dim = 2
    metrics = (
        Metric("energy", False, "energy distance to 2,500 fresh data points"),
        Metric("modes", True, "modes covered (at least one high-quality sample)"),
        Metric("modes_1pct", True, "modes covered with a 1% floor"),
        Metric("hq", True, "high-quality samples (% within 3 sd of the nearest mode)"),
        Metric("reverse_kl", False, "reverse KL of the mode histogram (high-quality samples)"),
    )

    def __init__(self, name: str, centers: np.ndarray, sd: float, description: str):
        self.name = name
        self.centers = np.asarray(centers, dtype=np.float64)
        self.sd = float(sd)
        self.description = description

    def sample_real(self, n, generator):
        torch = require_extra("torch", "study")
        c = torch.as_tensor(self.centers, dtype=torch.float32)
        k = torch.randint(0, len(c), (n,), generator=generator)
        return c[k] + self.sd * torch.randn(n, 2, generator=generator)

    def score(self, samples, reference=None, yy=None) -> dict:
        out = mode_metrics(samples, self.centers, self.sd)
        if reference is None:
            torch = require_extra("torch", "study")
            gen = torch.Generator().manual_seed(stream_seed(self.name, "fresh"))
            reference = self.sample_real(EVAL_SAMPLES, gen).double().numpy()
        out["energy"] = energy_distance(samples, reference, yy=yy)
        return out

    def evaluator(self, generator):
        z = self.sample_latent(EVAL_SAMPLES, generator)
        fresh = self.sample_real(EVAL_SAMPLES, generator).double().numpy()
        yy = _mean_pairwise_distance(fresh, fresh)

        def evaluate(G):
            torch = require_extra("torch", "study")
            with torch.no_grad():
                return self.score(G(z).double().numpy(), fresh, yy)

        return evaluate


@functools.lru_cache(maxsize=1)
def sp500_returns() -> tuple[np.ndarray, np.ndarray]:
    """Standardised daily log-returns (train, held-out) of the S&P 500 adjusted close.

    ``r_t = log(P_t / P_{t-1})``; both parts standardised with the training
    period's mean and standard deviation; the split is by date (:data:`SP500_SPLIT`).
    """
    sp500 = require_extra("arch.data.sp500", "study")
    price = sp500.load()["Adj Close"]
    r = np.log(price).diff().dropna()
    split = np.datetime64(SP500_SPLIT)
    dates = r.index.values
    train = r.values[dates < split].astype(np.float64)
    test = r.values[dates >= split].astype(np.float64)
    mean, sd = train.mean(), train.std()
    return (train - mean) / sd, (test - mean) / sd


class ReturnsTask(Task):
    """Windows of standardised returns: the S&P 500 (``sp500``) or a user's series (:class:`DataTask`)."""

    name = "sp500"
    description = "S&P 500 daily log-returns, windows of 16 (arch.data.sp500)"
    data_dim = SP500_WINDOW
    latent_dim = SP500_WINDOW
    metrics = (
        Metric("w1", False, "1-Wasserstein distance of the return marginal (held-out)"),
        Metric("kurtosis_err", False, "|excess kurtosis error|"),
        Metric("acf_r", False, "ACF score of returns, lags 1-5"),
        Metric("acf_r2", False, "ACF score of squared returns, lags 1-5"),
        Metric("acf_abs", False, "ACF score of absolute returns, lags 1-5"),
        Metric("leverage", False, "leverage-effect score corr(r_t, r_{t+tau}^2), tau 1-5"),
        Metric("ks", False, "Kolmogorov-Smirnov distance of the return marginal (held-out)"),
        Metric("q01", False, "generated 1% quantile (reported, not ranked)"),
        Metric("q99", False, "generated 99% quantile (reported, not ranked)"),
        Metric("kurtosis", False, "generated excess kurtosis (reported, not ranked)"),
    )

    def series(self) -> tuple[np.ndarray, np.ndarray]:
        """Standardised (training, held-out) returns."""
        return sp500_returns()

    def sample_real(self, n, generator):
        torch = require_extra("torch", "study")
        train = torch.as_tensor(self.series()[0], dtype=torch.float32)
        start = torch.randint(0, len(train) - SP500_WINDOW + 1, (n,), generator=generator)
        return train[start[:, None] + torch.arange(SP500_WINDOW)]

    def score(self, samples) -> dict:
        return return_metrics(samples, self.series()[1])

    def evaluator(self, generator):
        z = self.sample_latent(EVAL_SAMPLES, generator)

        def evaluate(G):
            torch = require_extra("torch", "study")
            with torch.no_grad():
                return self.score(G(z).double().numpy())

        return evaluate


class GaussianTask(Task):
    """N(mu, s^2) data, affine generator, quadratic logistic discriminator."""

    name = "gauss1d"
    description = "N(1, 0.5^2) with an affine generator and a quadratic discriminator"
    data_dim = 1
    latent_dim = 1
    mu = 1.0
    s = 0.5
    metrics = (
        Metric("w1", False, "1-Wasserstein distance N(b, w^2) to N(mu, s^2) (closed form)"),
        Metric("w2", False, "2-Wasserstein distance N(b, w^2) to N(mu, s^2) (closed form)"),
        Metric("mean_err", False, "|b - mu|"),
        Metric("sd_err", False, "||w| - s|"),
    )

    def sample_real(self, n, generator):
        torch = require_extra("torch", "study")
        return self.mu + self.s * torch.randn(n, 1, generator=generator)

    def networks(self):
        torch = require_extra("torch", "study")

        class Quadratic(torch.nn.Module):
            """Logit c + v1 x + v2 x^2."""

            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(2, 1)

            def forward(self, x):
                return self.linear(torch.cat([x, x * x], dim=-1))

        return torch.nn.Linear(1, 1), Quadratic()

    def score_params(self, b: float, w: float) -> dict:
        """Exact metrics of the generated law N(b, w^2)."""
        if not (math.isfinite(b) and math.isfinite(w)):
            return dict(w1=math.nan, w2=math.nan, mean_err=math.nan, sd_err=math.nan)
        return dict(w1=gaussian_w1(b, w, self.mu, self.s), w2=gaussian_w2(b, w, self.mu, self.s), mean_err=abs(b - self.mu),
                    sd_err=abs(abs(w) - self.s))

    def score(self, samples) -> dict:
        """Metrics of a sample, with its mean and standard deviation as (b, |w|)."""
        x = np.asarray(samples, dtype=np.float64).ravel()
        return self.score_params(float(x.mean()), float(x.std()))

    def evaluator(self, generator):
        def evaluate(G):
            return self.score_params(float(G.bias.detach()[0]), float(G.weight.detach()[0, 0]))

        return evaluate


def _ring8() -> MixtureTask:
    angles = 2 * np.pi * np.arange(8) / 8
    return MixtureTask("ring8", 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1), 0.02,
                       "8 Gaussians on a circle of radius 2, sd 0.02")


def _grid25() -> MixtureTask:
    g = np.arange(-4.0, 4.1, 2.0)
    centers = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)
    return MixtureTask("grid25", centers, 0.05, "25 Gaussians on {-4,-2,0,2,4}^2, sd 0.05")


DATA_TASK = "data"
DATA_TRAIN_FRACTION = 0.8


def standardised_split(series) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) parts of a returns series: the first :data:`DATA_TRAIN_FRACTION`
    for training, both standardised with the training part's mean and deviation."""
    r = np.asarray(series, dtype=np.float64)
    n = int(round(DATA_TRAIN_FRACTION * len(r)))
    train, test = r[:n], r[n:]
    mean, sd = train.mean(), train.std()
    if not sd > 0:
        raise InputError("--data: the training part of the series is constant; nothing to learn")
    return (train - mean) / sd, (test - mean) / sd


class DataTask(ReturnsTask):
    """The ``sp500`` task's networks and metrics on a user's returns series."""

    name = DATA_TASK

    def __init__(self, series, label: str = "user data"):
        self._split = standardised_split(series)
        self.description = f"{label}: returns, windows of {SP500_WINDOW} (first {DATA_TRAIN_FRACTION:.0%} trains)"

    def series(self):
        return self._split


_FACTORIES = {"ring8": _ring8, "grid25": _grid25, "sp500": ReturnsTask, "gauss1d": GaussianTask}


@functools.lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The task called ``name`` (one of :data:`TASK_NAMES`; the ``data`` task comes from
    :meth:`StudyConfig.task <stochctl.study.protocol.StudyConfig.task>`)."""
    if name == DATA_TASK:
        raise InputError("the 'data' task needs a data file: stochctl study --data FILE.csv")
    if name not in _FACTORIES:
        raise InputError(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}")
    return _FACTORIES[name]()


def all_metric_names() -> tuple[str, ...]:
    """Union of every task's metric names, in a fixed order (CSV columns)."""
    names: list[str] = []
    for t in TASK_NAMES:
        for m in get_task(t).metrics:
            if m.name not in names:
                names.append(m.name)
    return tuple(names)
