"""The jax.numpy import of the optax extra and the tables' lookup in jax.numpy, for jitted optax transformations.

Kept apart from :mod:`.optax_adapter` so that the policies of :mod:`.estimators` can evaluate
their table under ``jax.numpy`` without importing the adapter.
"""

from __future__ import annotations

from ..errors import require_extra
from ._array_lookup import array_table_lookup


def _jax():
    require_extra("optax", "optax")
    jax = require_extra("jax", "optax")
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    return jax, jnp, ravel_pytree


def jax_table_lookup(table, value: str):
    """jax.numpy multilinear interpolation of one table value: f(*coords) -> (values, status).

    Same rules as the numba kernel (:func:`~stochctl.tables._array_lookup.array_table_lookup`).
    """
    _, jnp, _ = _jax()
    return array_table_lookup(table, value, jnp)
