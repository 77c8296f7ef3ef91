"""Online estimates of the local quadratic model, and the policy that uses them.

Along the training trajectory the gradient of a parameter group is modelled,
coordinate by coordinate, as the local linear regression

    g_k = a (x_k - x*) + xi_k,   E xi_k = 0,  Var xi_k = s^2,

(curvature a, gradient-noise variance s^2 of the mini-batch gradient that the
step uses, distance |grad| / a to the local minimum). The regression estimator
of Li, Tai and E's cSGD keeps exponential moving averages (EMA) of g and x and
their second moments and reads off

    a = Cov(g, x) / Var(x),   s^2 = Var(g) - Cov(g, x)^2 / Var(x)   (residual),

or s^2 = Var(g) (``noise="total"``, cSGD's original choice, which also counts
the drift of the true gradient as noise). The EMAs use the bias-corrected
weights w_j = (1-beta) beta^(k-j) / (1-beta^k) in Welford/West form,

    alpha_k = (1-beta) / (1-beta^k),   m <- m + alpha dv,   V <- (1-alpha)(V + alpha dv^2),

which equals the bias-corrected EMA exactly and has no cancellation, and the
variances are divided by 1 - S (1 - 2S for the residual), S = sum_j w_j^2, so
that they are unbiased for independent noise. ``mode="direction"`` pools the
coordinates along the unit EMA-gradient direction d (weights d_i^2, diagonal
approximation): a = sum d_i^2 Cov_i / sum d_i^2 Var_i(x); ``mode="coordinate"``
keeps one estimate per coordinate; ``mode="rms"`` takes a along the direction,
the noise averaged over the n coordinates, s^2 = tr(Sigma) / n, and the
root-mean-square gradient of the window, |grad| = sqrt(max(mean_i EMA[g_i^2] - s^2, 0))
(EMA[g^2] = m_g^2 + V_g has mean |grad f|^2 / n + s^2), so that
y^2 = |grad f|^2 / (a eta tr Sigma) (below). The window average lags the
current point by about the window; while the gradient shrinks it errs
towards a larger y, hence a larger multiplier. (Predicting the gradient at
the current point instead, as the direction mode does, is biased low near a
minimum: the EMA noise is anticorrelated with the displacement it caused.) The gradient at the current parameters x is
predicted as g_hat = m_g + a (x - m_x) and |grad| = |g_hat|. Near a minimum
|g_hat|^2 also holds the noise left in the EMA (about S sum s_i^2): the
distance is overestimated there, which errs towards the larger multiplier
rather than towards stopping training.

Alternatives: :class:`SecantCurvature` (a = EMA[dg . dx] / EMA[|dx|^2] over
successive steps; biased when noise dominates the gradient change),
:class:`MicroBatchNoise` (s^2 from k chunk gradients of one batch, or from
per-sample gradients), combined by :class:`CompositeEstimator`.

:class:`LocalPolicy` maps the estimates to the dimensionless local model of
the design (section 4). With t = k eta the step is the SDE
dX = -u a X dt + u sqrt(eta s^2) dW; tau = a t and Y = X sqrt(a / (eta s^2))
turn it into dY = -u Y dtau + u dW, so the table inputs are

    tau_remaining = a eta (K - k),   y = (|grad| / a) sqrt(a / (eta s^2)) = |grad| / sqrt(a eta s^2).

Many coordinates: the direction mode compares the norm of an n-dimensional
gradient (whose stationary size grows like sqrt(n) noise scales, and whose
EMA keeps about S tr(Sigma) of noise) with the noise of one direction, so its
y grows like sqrt(n) and the multiplier stays at u_max. For the isotropic
model dY_i = -u Y_i dtau + u dW_i (i = 1..n) the normalised squared distance
R = |Y|^2 / n obeys dR = (-2 u R + u^2) dtau + (2 u / sqrt(n)) sqrt(R) dB,
the law of Y^2 in one dimension except for a noise sqrt(n) times smaller, with
terminal cost R; the rms mode's y = sqrt(R) feeds it to the one-dimensional
table, exactly for n = 1 and with the drift exact for n > 1. At the
stationary point of SGD with step h, E y^2 = 1 / (2 - h a) in every dimension.

Guards: before ``warmup`` observations the multiplier is ``warmup_multiplier``;
a <= 0 (not convex along the direction: B <= 0, the optimum is the endpoint
u_max of the explicit rule) gives min(u_max, nonconvex_cap); NaN or degenerate
statistics give the safe ``fallback`` (u_min). Each case is counted.

Near a stationary point of SGD with step h the window mean of x also
depends on the noise of the step being regressed, which biases a by about
S / (h a) relative; keep the window 2 / (1 - beta) long against the
relaxation time 1 / (h a).

The pure functions ``init_state``/``next_state``/``read`` take an array
namespace ``xp`` (numpy, torch or jax.numpy) and run inside a jitted optax
update; the stateful ``update``/``estimate`` fold numpy arrays in place with
compiled kernels (the same arithmetic), which the PyTorch scheduler uses.

Reference: Q. Li, C. Tai, W. E, "Stochastic modified equations and adaptive
stochastic gradient algorithms", ICML 2017 (cSGD).
"""

from __future__ import annotations

# the estimators, one module each (the pure functions, the stateful classes and their shared machinery)
from .base import (FALLBACK, MODES, NOISE_MODELS, NONCONVEX, OK, STATUS_NAMES, WARMUP, Estimate,  # noqa: F401
                   namespace)
from .microbatch import CompositeEstimator, MicroBatchNoise  # noqa: F401
from .regression import RegressionEstimator  # noqa: F401
from .secant import SecantCurvature  # noqa: F401

