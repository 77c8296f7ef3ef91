"""Quality metrics of the study (numpy, independent of torch): mixtures, returns, Gaussians."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InputError

ACF_LAGS = 5


# --------------------------------------------------------------------------------------
# Metric functions (numpy, independent of torch)
# --------------------------------------------------------------------------------------

def mode_metrics(samples, centers, sd: float, *, hq_sds: float = 3.0, floor: float = 0.01) -> dict:
    """Mode coverage and quality of samples from a Gaussian mixture.

    Each sample is assigned to its nearest centre; it is high quality when its
    distance to that centre is at most ``hq_sds * sd``. With ``c_k`` the number
    of high-quality samples assigned to centre k among n samples:

    - ``modes`` = #{k : c_k >= 1}; ``modes_1pct`` = #{k : c_k >= floor * n};
    - ``hq`` = 100 sum_k c_k / n (percent);
    - ``reverse_kl`` = sum_k q_k log(K q_k) with q = c / sum c (KL(q || uniform)),
      NaN when no sample is high quality.

    Args:
        samples: (n, d) array.
        centers: (K, d) array of mixture centres.
        sd: the mixture components' standard deviation.
    """
    x = np.asarray(samples, dtype=np.float64)
    c = np.asarray(centers, dtype=np.float64)
    n, k = x.shape[0], c.shape[0]
    nan = dict(modes=math.nan, modes_1pct=math.nan, hq=math.nan, reverse_kl=math.nan)
    if n == 0 or not np.all(np.isfinite(x)):
        return nan
    d2 = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=-1)
    nearest = d2.argmin(axis=1)
    dist = np.sqrt(d2[np.arange(n), nearest])
    good = dist <= hq_sds * sd
    counts = np.bincount(nearest[good], minlength=k)
    total = counts.sum()
    if total:
        q = counts[counts > 0] / total
        rkl = float(np.sum(q * np.log(k * q)))
    else:
        rkl = math.nan
    return dict(modes=float(np.count_nonzero(counts >= 1)),
                modes_1pct=float(np.count_nonzero(counts >= floor * n)),
                hq=float(100.0 * total / n), reverse_kl=rkl)


def _mean_pairwise_distance(a: np.ndarray, b: np.ndarray, chunk: int = 256) -> float:
    """(1 / (n m)) sum_ij |a_i - b_j| (Euclidean), in row chunks to bound memory.

    Accumulates the squared distance coordinate by coordinate (no BLAS call, so
    no thread pool is started inside a worker process).
    """
    total = 0.0
    for i in range(0, a.shape[0], chunk):
        blk = a[i:i + chunk]
        d2 = np.zeros((blk.shape[0], b.shape[0]))
        for k in range(a.shape[1]):
            diff = blk[:, k, None] - b[None, :, k]
            d2 += diff * diff
        total += np.sqrt(d2, out=d2).sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(x, y, *, yy: float | None = None) -> float:
    """Energy distance between the empirical laws of two samples.

    ``D = sqrt(2 E|X - Y| - E|X - X'| - E|Y - Y'|)`` with the expectations over
    all pairs of the empirical distributions (the convention of
    ``scipy.stats.energy_distance`` in one dimension).

    Args:
        x: (n, d) or (n,) sample.
        y: (m, d) or (m,) sample.
        yy: precomputed E|Y - Y'| (reused when y is a fixed reference sample).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x = x.reshape(len(x), -1)
    y = y.reshape(len(y), -1)
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    if yy is None:
        yy = _mean_pairwise_distance(y, y)
    d2 = 2.0 * _mean_pairwise_distance(x, y) - _mean_pairwise_distance(x, x) - yy
    return math.sqrt(max(d2, 0.0))


def wasserstein_1d(x, y) -> float:
    """1-Wasserstein distance of two 1D empirical laws: integral of |F_x - F_y|."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    y = np.sort(np.asarray(y, dtype=np.float64).ravel())
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    grid = np.sort(np.concatenate([x, y]))
    fx = np.searchsorted(x, grid[:-1], side="right") / x.size
    fy = np.searchsorted(y, grid[:-1], side="right") / y.size
    return float(np.sum(np.abs(fx - fy) * np.diff(grid)))


def excess_kurtosis(x) -> float:
    """Sample excess kurtosis ``m4 / m2^2 - 3`` with central moments m_k (biased)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    xc = x - x.mean()
    m2 = np.mean(xc**2)
    return float(np.mean(xc**4) / m2**2 - 3.0) if m2 > 0 else math.nan


def acf(x, nlags: int, *, adjusted: bool = True) -> np.ndarray:
    """Autocorrelations at lags 1..nlags of a series or of a panel of windows.

    For windows ``x[w, t]`` (a single series is one window of length L), with
    the mean m and ``c_0 = mean((x - m)^2)`` over all entries:
    ``rho_k = [sum_w sum_{t < L-k} (x_{w,t} - m)(x_{w,t+k} - m) / N_k] / c_0`` where
    ``N_k = n (L - k)`` (adjusted) or ``n L``. For one series this is
    ``statsmodels.tsa.stattools.acf(x, adjusted=...)[1:]``.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    n, length = x.shape
    if nlags >= length:
        raise InputError(f"nlags must be below the window length {length}; got {nlags}")
    xc = x - x.mean()
    c0 = np.mean(xc**2)
    out = np.empty(nlags)
    for k in range(1, nlags + 1):
        num = np.sum(xc[:, :-k] * xc[:, k:])
        out[k - 1] = num / (n * (length - k) if adjusted else n * length) / c0
    return out


def leverage(x, nlags: int) -> np.ndarray:
    """Leverage effect: Pearson correlation of r_t with r_{t+tau}^2, tau = 1..nlags.

    Pairs are taken within each window of a panel ``x[w, t]`` (or along one series).
    """
    x = np.asarray(x, dtype=np.float64)
    x = x[None, :] if x.ndim == 1 else x
    out = np.empty(nlags)
    for tau in range(1, nlags + 1):
        a = x[:, :-tau].ravel()
        b = x[:, tau:].ravel() ** 2
        a = a - a.mean()
        b = b - b.mean()
        out[tau - 1] = np.sum(a * b) / math.sqrt(np.sum(a * a) * np.sum(b * b))
    return out


def return_metrics(generated, real, *, nlags: int = ACF_LAGS) -> dict:
    """Stylised-facts scores of generated return windows against a real series.

    - ``w1``: 1-Wasserstein distance of the pooled marginal;
    - ``kurtosis_err``: |excess kurtosis(generated) - excess kurtosis(real)|;
    - ``acf_r``, ``acf_r2``, ``acf_abs``: Euclidean distance between the real and
      generated autocorrelations at lags 1..nlags of r, r^2 and |r| (:func:`acf`);
    - ``leverage``: Euclidean distance between the leverage correlations (:func:`leverage`);
    - ``ks``: Kolmogorov-Smirnov distance of the pooled marginal (:func:`ks_distance`);
    - ``q01``, ``q99``, ``kurtosis``: the generated marginal's 1% and 99% quantiles and
      excess kurtosis (reported next to the real series' values, not ranked).

    Args:
        generated: (n, L) windows.
        real: (T,) series.
    """
    g = np.asarray(generated, dtype=np.float64)
    r = np.asarray(real, dtype=np.float64)
    if g.size == 0 or not np.all(np.isfinite(g)) or np.std(g) == 0:
        return dict(w1=math.nan, kurtosis_err=math.nan, acf_r=math.nan, acf_r2=math.nan,
                    acf_abs=math.nan, leverage=math.nan, ks=math.nan, q01=math.nan, q99=math.nan,
                    kurtosis=math.nan)
    dist = lambda u, v: float(np.linalg.norm(u - v))  # noqa: E731
    return dict(
        w1=wasserstein_1d(g, r),
        kurtosis_err=abs(excess_kurtosis(g) - excess_kurtosis(r)),
        acf_r=dist(acf(g, nlags), acf(r, nlags)),
        acf_r2=dist(acf(g**2, nlags), acf(r**2, nlags)),
        acf_abs=dist(acf(np.abs(g), nlags), acf(np.abs(r), nlags)),
        leverage=dist(leverage(g, nlags), leverage(r, nlags)),
        ks=ks_distance(g, r), q01=float(np.quantile(g, 0.01)), q99=float(np.quantile(g, 0.99)),
        kurtosis=excess_kurtosis(g),
    )


AGGREGATION_DAYS = 5


def aggregate_windows(windows, days: int = AGGREGATION_DAYS) -> np.ndarray:
    """Sums of ``days`` consecutive returns inside each window: for a window of length L,
    ``R_j = r_{j days} + ... + r_{(j + 1) days - 1}`` for j = 0 .. floor(L / days) - 1 (non-overlapping
    blocks from the window's first day; log-returns add). Returns a flat array."""
    w = np.asarray(windows, dtype=np.float64)
    w = w.reshape(-1, w.shape[-1]) if w.ndim > 1 else w.reshape(1, -1)
    blocks = w.shape[1] // days
    return w[:, :blocks * days].reshape(w.shape[0], blocks, days).sum(axis=2).ravel()


def aggregate_series(series, days: int = AGGREGATION_DAYS) -> np.ndarray:
    """Sums of non-overlapping blocks of ``days`` consecutive returns of a series, from its first day
    (a last, incomplete block is dropped)."""
    return aggregate_windows(np.asarray(series, dtype=np.float64).ravel(), days)


def aggregated_w1(generated, real, days: int = AGGREGATION_DAYS) -> float:
    """W1 of ``days``-day returns: :func:`wasserstein_1d` of :func:`aggregate_windows` (generated
    windows) and :func:`aggregate_series` (the real series)."""
    return wasserstein_1d(aggregate_windows(generated, days), aggregate_series(real, days))


def ks_distance(x, y) -> float:
    """Two-sample Kolmogorov-Smirnov distance sup_t |F_x(t) - F_y(t)| of two 1D empirical laws."""
    x = np.sort(np.asarray(x, dtype=np.float64).ravel())
    y = np.sort(np.asarray(y, dtype=np.float64).ravel())
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        return math.nan
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / x.size
    fy = np.searchsorted(y, grid, side="right") / y.size
    return float(np.max(np.abs(fx - fy)))


def gaussian_w1(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """1-Wasserstein distance of N(mu1, s1^2) and N(mu2, s2^2).

    The quantile coupling gives W1 = E|m + c Z| with m = mu1 - mu2,
    c = |s1| - |s2|, Z standard normal, i.e.
    ``|c| sqrt(2/pi) exp(-m^2 / (2 c^2)) + m (1 - 2 Phi(-m / |c|))`` (``|m|`` when c = 0).
    """
    m, c = mu1 - mu2, abs(abs(s1) - abs(s2))
    if c == 0:
        return abs(m)
    phi = 0.5 * math.erfc(m / c / math.sqrt(2.0))  # Phi(-m / c)
    return c * math.sqrt(2.0 / math.pi) * math.exp(-m * m / (2 * c * c)) + m * (1.0 - 2.0 * phi)


def gaussian_w2(mu1: float, s1: float, mu2: float, s2: float) -> float:
    """2-Wasserstein distance of N(mu1, s1^2) and N(mu2, s2^2): sqrt((mu1-mu2)^2 + (s1-s2)^2)."""
    return math.hypot(mu1 - mu2, abs(s1) - abs(s2))


# --------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------
