"""Tensor-product uniform grids with a boundary condition on every face.

A :class:`Grid` covers the box prod_i [lower_i, upper_i] with ``points[i]``
equally spaced nodes per axis (both ends included), in 1 to 3 dimensions.
Each of the 2 d faces carries one boundary condition of the finite-difference
scheme (:mod:`stochctl.solvers.explicit`):

``"dirichlet"``
    V(t, x) = G(x) + (T - t) r(x) on the face: the process is stopped there
    and only pays the state running cost. Monotone (the node is not updated).
``"linear"``
    Linear extrapolation through a ghost node, V_{-1} = 2 V_0 - V_1: zero
    second derivative, so the diffusion term vanishes on the face. A drift
    that points into the domain uses the inward one-sided difference, which is
    the upwind one. A drift that points *out* of the domain would need the
    ghost node with coefficient b/h < 0 on V_1, which is not monotone; the
    scheme instead takes the ghost node equal to the boundary value there
    (zero-order extrapolation for the drift), so that drift term vanishes.
    The scheme stays monotone; the price is a first-order error confined to
    where the flow leaves the box, measured by
    :func:`stochctl.solvers.boundary_sensitivity`.
``"reflecting"``
    Zero normal derivative through a mirrored ghost node, V_{-1} = V_1, in
    both the upwind first difference and the central second difference. Every
    neighbour coefficient stays non-negative, so it is monotone for either
    drift direction.

Boundary of the canonical models (their
:attr:`~stochctl.models.SolveDefaults.boundary`, collected in :data:`DEFAULT_BOUNDARY`):
``"linear"`` on every face of every canonical model. For the one-player quadratic models
(``quadratic`` with a > 0, ``local-quadratic``) the drift -u g'(x) points into
the box on both faces, so the face is reached only through the second
difference, and a Dirichlet face (stopping the process) or a reflecting one
(forcing V_x = 0 where V_x ~ 2 c x is largest) would bias the value far more
than dropping one node's diffusion. For ``quadratic-game`` with a, b, c > 0
the drift also points inward (or along the face at the corners). For the
logistic GAN objectives (``dirac-gan``, ``gaussian-gan``) g is asymptotically
linear along each axis (log sigmoid(z) ~ z or ~ 0), so the value's second
derivative is small at the faces; their rotational flow leaves the box on parts
of the faces, where the monotone outflow rule above applies and the boundary
sensitivity diagnostic reports how far it reaches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..models import canonical_solve_defaults

BOUNDARY_KINDS = ("dirichlet", "linear", "reflecting")
"""Valid boundary-condition names, in the order of their integer codes."""

DEFAULT_POINTS = {1: 401, 2: 101, 3: 31}
"""Default number of nodes per axis by dimension."""

DEFAULT_BOUNDARY = {name: d.boundary for name, d in canonical_solve_defaults().items()}
"""Boundary condition on every face of each canonical model, read from its solve defaults (module docstring)."""


def _as_tuple(value, n, what):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise InputError(f"{what}: expected {n} entries (one per axis); got {len(value)}")
    return value


def _normalise_boundary(boundary, names):
    """One (lower, upper) pair of kind names per axis from a str, per-axis str/pairs or a dict."""
    n = len(names)
    if isinstance(boundary, dict):
        unknown = set(boundary) - set(names)
        if unknown:
            raise InputError(f"boundary: unknown axis {sorted(unknown)[0]!r}; axes: {', '.join(names)}")
        boundary = [boundary.get(name, "linear") for name in names]
    if n == 1 and isinstance(boundary, (tuple, list)) and len(boundary) == 2 and all(
            isinstance(b, str) for b in boundary):
        boundary = (tuple(boundary),)  # one axis: a (lower, upper) pair
    per_axis = _as_tuple(boundary, n, "boundary")
    out = []
    for name, item in zip(names, per_axis):
        pair = (item, item) if isinstance(item, str) else tuple(item)
        if len(pair) != 2:
            raise InputError(f"boundary of axis {name!r}: expected a kind or a (lower, upper) pair; got {item!r}")
        for kind in pair:
            if kind not in BOUNDARY_KINDS:
                raise InputError(
                    f"boundary of axis {name!r}: unknown kind {kind!r}; valid kinds: {', '.join(BOUNDARY_KINDS)}"
                )
        out.append((str(pair[0]), str(pair[1])))
    return tuple(out)


@dataclass(frozen=True)
class Grid:
    """Uniform tensor-product grid with per-face boundary conditions.

    Attributes:
        names: axis (state coordinate) names.
        lower: lower bound per axis.
        upper: upper bound per axis (> lower).
        points: number of nodes per axis (>= 3), ends included.
        boundary: per axis a ``(lower face, upper face)`` pair of kinds from
            :data:`BOUNDARY_KINDS`. The constructor also accepts one kind for
            every face, one kind or pair per axis, or a dict ``{axis: kind}``.
    """

    names: tuple[str, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    points: tuple[int, ...]
    boundary: tuple[tuple[str, str], ...] = "linear"

    def __post_init__(self):
        names = (self.names,) if isinstance(self.names, str) else tuple(self.names)
        n = len(names)
        if not 1 <= n <= 3:
            raise InputError(f"grid: expected 1 to 3 axes; got {n}")
        if len(set(names)) != n or not all(isinstance(s, str) and s for s in names):
            raise InputError(f"grid: axis names must be distinct non-empty strings; got {names!r}")
        lower = _as_tuple(self.lower, n, "grid lower bounds")
        upper = _as_tuple(self.upper, n, "grid upper bounds")
        points = _as_tuple(self.points, n, "grid points")
        lo_out, hi_out, pts_out = [], [], []
        for name, lo, hi, p in zip(names, lower, upper, points):
            try:
                lo_f, hi_f = float(lo), float(hi)
            except (TypeError, ValueError):
                raise InputError(f"grid axis {name!r}: bounds must be numbers; got ({lo!r}, {hi!r})") from None
            if not (math.isfinite(lo_f) and math.isfinite(hi_f)):
                raise InputError(f"grid axis {name!r}: bounds must be finite; got ({lo!r}, {hi!r})")
            if not lo_f < hi_f:
                raise InputError(f"grid axis {name!r}: need lower < upper; got ({lo_f:g}, {hi_f:g})")
            if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 3:
                raise InputError(f"grid axis {name!r}: need an integer number of points >= 3; got {p!r}")
            lo_out.append(lo_f)
            hi_out.append(hi_f)
            pts_out.append(int(p))
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "lower", tuple(lo_out))
        object.__setattr__(self, "upper", tuple(hi_out))
        object.__setattr__(self, "points", tuple(pts_out))
        object.__setattr__(self, "boundary", _normalise_boundary(self.boundary, names))

    # ------------------------------------------------------------ constructors
    @classmethod
    def from_domain(cls, domain: dict, points=None, boundary="linear") -> "Grid":
        """A grid over ``{name: (lo, hi)}`` with ``points`` per axis (default :data:`DEFAULT_POINTS`)."""
        names = tuple(domain)
        if points is None:
            points = DEFAULT_POINTS.get(len(names), 3)
        return cls(names, tuple(domain[k][0] for k in names), tuple(domain[k][1] for k in names),
                   _as_tuple(points, len(names), "grid points"), boundary)

    @classmethod
    def for_problem(cls, problem, points=None, boundary=None) -> "Grid":
        """A grid over the model's domain with its declared boundary kind (``model.solve_defaults.boundary``)."""
        model = problem.model
        if boundary is None:
            boundary = model.solve_defaults.boundary
        return cls.from_domain({s: model.domain[s] for s in model.state_names}, points, boundary)

    # ------------------------------------------------------------------ access
    @property
    def ndim(self) -> int:
        return len(self.names)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.points

    @property
    def size(self) -> int:
        return int(np.prod(self.points))

    @property
    def spacing(self) -> tuple[float, ...]:
        """h_i = (upper_i - lower_i) / (points_i - 1)."""
        return tuple((hi - lo) / (n - 1) for lo, hi, n in zip(self.lower, self.upper, self.points))

    @property
    def axes(self) -> tuple[np.ndarray, ...]:
        """Node coordinates per axis."""
        return tuple(np.linspace(lo, hi, n) for lo, hi, n in zip(self.lower, self.upper, self.points))

    def mesh(self) -> tuple[np.ndarray, ...]:
        """Coordinate arrays of shape :attr:`shape` (``indexing="ij"``)."""
        return tuple(np.meshgrid(*self.axes, indexing="ij"))

    def boundary_codes(self) -> np.ndarray:
        """Integer codes (index in :data:`BOUNDARY_KINDS`) of shape (ndim, 2)."""
        return np.array([[BOUNDARY_KINDS.index(k) for k in pair] for pair in self.boundary], dtype=np.int64)

    def dirichlet_mask(self) -> np.ndarray:
        """Boolean array of :attr:`shape`, True on nodes of a Dirichlet face."""
        mask = np.zeros(self.shape, dtype=bool)
        for i, (lo_kind, hi_kind) in enumerate(self.boundary):
            index = [slice(None)] * self.ndim
            if lo_kind == "dirichlet":
                index[i] = 0
                mask[tuple(index)] = True
            if hi_kind == "dirichlet":
                index[i] = -1
                mask[tuple(index)] = True
        return mask

    def contains(self, points, rtol: float = 1e-12) -> np.ndarray:
        """Whether each point of an array (..., ndim) lies in the box (up to a relative tolerance)."""
        pts = np.asarray(points, dtype=float)
        ok = np.ones(pts.shape[:-1], dtype=bool)
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper)):
            tol = rtol * (hi - lo)
            ok &= (pts[..., i] >= lo - tol) & (pts[..., i] <= hi + tol)
        return ok

    def enlarged(self, factor: float) -> "Grid":
        """A grid with the same spacing over a box ``factor`` times as wide (same centre).

        The nodes of ``self`` are nodes of the result: each side gets
        round((factor - 1) / 2 * (points - 1)) extra nodes.
        """
        if not (isinstance(factor, (int, float)) and math.isfinite(factor) and factor > 1):
            raise InputError(f"enlargement factor must be a number > 1; got {factor!r}")
        extra = [max(1, int(round((factor - 1) / 2 * (n - 1)))) for n in self.points]
        h = self.spacing
        return Grid(self.names, tuple(lo - e * hh for lo, e, hh in zip(self.lower, extra, h)),
                    tuple(hi + e * hh for hi, e, hh in zip(self.upper, extra, h)),
                    tuple(n + 2 * e for n, e in zip(self.points, extra)), self.boundary)

    def to_dict(self) -> dict:
        """JSON-ready description (inverse of :meth:`from_dict`)."""
        return {"names": list(self.names), "lower": list(self.lower), "upper": list(self.upper),
                "points": list(self.points), "boundary": [list(p) for p in self.boundary]}

    @classmethod
    def from_dict(cls, data: dict) -> "Grid":
        try:
            return cls(tuple(data["names"]), tuple(data["lower"]), tuple(data["upper"]), tuple(data["points"]),
                       tuple(tuple(p) for p in data["boundary"]))
        except (KeyError, TypeError) as exc:
            raise InputError(f"grid description is incomplete: {exc}") from None

    def describe(self) -> str:
        parts = [f"{n} in [{lo:g}, {hi:g}] x {p}" for n, lo, hi, p in zip(self.names, self.lower, self.upper,
                                                                          self.points)]
        kinds = sorted({k for pair in self.boundary for k in pair})
        return "; ".join(parts) + f" (boundary: {', '.join(kinds)})"
