"""Strict test harness: floating-point errors raise, seeded generators."""

import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def _strict_float_for_module_fixtures():
    """The same strictness for module-scoped fixtures, which run outside the per-test fixture."""
    old = np.seterr(all="raise", under="ignore")
    yield
    np.seterr(**old)


@pytest.fixture(autouse=True)
def _strict_float():
    old = np.seterr(all="raise", under="ignore")
    yield
    np.seterr(**old)


@pytest.fixture
def rng():
    return np.random.default_rng(20261124)
