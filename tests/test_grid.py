"""Grid construction, validation and geometry."""

import math

import numpy as np
import pytest

from stochctl.errors import InputError
from stochctl.models import get_model
from stochctl.solvers import BOUNDARY_KINDS, Grid
from stochctl.solvers.api import default_grid
from stochctl.symbolic import ControlProblem


def test_axes_spacing_shape_and_mesh():
    g = Grid(("a", "b"), (-1.0, 0.0), (1.0, 3.0), (5, 4))
    assert g.shape == (5, 4) and g.ndim == 2 and g.size == 20
    assert g.spacing == pytest.approx((0.5, 1.0))
    np.testing.assert_allclose(g.axes[0], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_allclose(g.axes[1], [0, 1, 2, 3])
    A, B = g.mesh()
    assert A.shape == B.shape == (5, 4)
    assert A[3, 2] == 0.5 and B[3, 2] == 2.0


@pytest.mark.parametrize("boundary, expected", [
    ("reflecting", (("reflecting", "reflecting"), ("reflecting", "reflecting"))),
    (("linear", ("dirichlet", "reflecting")), (("linear", "linear"), ("dirichlet", "reflecting"))),
    ({"b": "dirichlet"}, (("linear", "linear"), ("dirichlet", "dirichlet"))),
])
def test_boundary_forms(boundary, expected):
    g = Grid(("a", "b"), (0, 0), (1, 1), (3, 3), boundary)
    assert g.boundary == expected
    assert g.boundary_codes().tolist() == [[BOUNDARY_KINDS.index(k) for k in pair] for pair in expected]


def test_one_axis_pair_is_lower_upper():
    g = Grid(("x",), (0,), (1,), (3,), ("reflecting", "dirichlet"))
    assert g.boundary == (("reflecting", "dirichlet"),)
    assert g.dirichlet_mask().tolist() == [False, False, True]


def test_dirichlet_mask_marks_faces_only():
    g = Grid(("a", "b"), (0, 0), (1, 1), (4, 5), (("dirichlet", "linear"), ("linear", "dirichlet")))
    mask = g.dirichlet_mask()
    expected = np.zeros((4, 5), bool)
    expected[0, :] = True
    expected[:, -1] = True
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(points=(2,)), "points >= 3; got 2"),
    (dict(points=(3.5,)), "got 3.5"),
    (dict(lower=(math.inf,)), "finite; got (inf"),
    (dict(upper=(float("nan"),)), "finite"),
    (dict(lower=(1.0,), upper=(1.0,)), "lower < upper; got (1, 1)"),
    (dict(lower=(2.0,), upper=(1.0,)), "lower < upper; got (2, 1)"),
    (dict(boundary="periodic"), "unknown kind 'periodic'; valid kinds: dirichlet, linear, reflecting"),
])
def test_validation_messages(kwargs, fragment):
    args = dict(names=("x",), lower=(0.0,), upper=(1.0,), points=(5,), boundary="linear")
    args.update(kwargs)
    with pytest.raises(InputError) as err:
        Grid(**args)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_dimension_limits():
    with pytest.raises(InputError, match="1 to 3 axes"):
        Grid(("a", "b", "c", "d"), (0,) * 4, (1,) * 4, (3,) * 4)
    with pytest.raises(InputError, match="distinct"):
        Grid(("a", "a"), (0, 0), (1, 1), (3, 3))
    with pytest.raises(InputError, match="expected 2 entries"):
        Grid(("a", "b"), (0, 0), (1, 1), (3, 3, 3))


def test_enlarged_contains_original_nodes():
    g = Grid(("a", "b"), (-1.0, 0.0), (1.0, 2.0), (21, 11), "reflecting")
    big = g.enlarged(1.5)
    assert big.spacing == pytest.approx(g.spacing)
    assert big.boundary == g.boundary
    for small_ax, big_ax in zip(g.axes, big.axes):
        offset = int(round((small_ax[0] - big_ax[0]) / (big_ax[1] - big_ax[0])))
        np.testing.assert_allclose(big_ax[offset:offset + len(small_ax)], small_ax, atol=1e-12)
    assert (big.upper[0] - big.lower[0]) == pytest.approx(3.0)
    with pytest.raises(InputError, match="factor must be a number > 1"):
        g.enlarged(1.0)


def test_contains_and_dict_roundtrip():
    g = Grid(("a", "b"), (0, 0), (1, 2), (3, 5), (("dirichlet", "linear"), "reflecting"))
    assert g.contains(np.array([[0.5, 2.0], [1.0 + 1e-9, 1.0]])).tolist() == [True, False]
    assert Grid.from_dict(g.to_dict()) == g


def test_default_grid_per_dimension():
    one = default_grid(ControlProblem.from_model(get_model("quadratic")))
    two = default_grid(ControlProblem.from_model(get_model("dirac-gan")))
    assert one.shape == (401,) and (one.lower, one.upper) == ((-3.0,), (3.0,))
    assert two.shape == (101, 101) and two.names == ("theta", "omega")
    assert all(k == "linear" for pair in two.boundary for k in pair)
