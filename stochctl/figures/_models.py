"""Canonical models shared between figures, so that each symbolic derivation is done once per process."""

from __future__ import annotations

import functools

from ..models import get_model


@functools.lru_cache(maxsize=None)
def _cached_model(name: str, params: tuple):
    return get_model(name, **dict(params))


def cached_model(name: str, **params):
    """A canonical model, shared between figures so that its symbolic derivation is done once."""
    return _cached_model(name, tuple(sorted(params.items())))
