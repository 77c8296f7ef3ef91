"""Trainer adapters: the PyTorch scheduler, the optax transformation and the curvature they measure.

Each module needs its optional extra (``stochctl[torch]`` or ``stochctl[optax]``), so the names
are loaded on first use and importing this package imports neither torch nor jax.
"""

from __future__ import annotations

_TORCH = ("ControlledLR", "directional_curvature")
_CURVATURE = ("own_curvature", "field_measure", "step_direction")
_OPTAX = ("scale_by_policy", "PolicySchedule")
_PAIRING = ("MinPair",)

__all__ = [*_TORCH, *_CURVATURE, *_OPTAX, *_PAIRING]


def __getattr__(name):
    if name in _TORCH:
        from . import torch_adapter
        return getattr(torch_adapter, name)
    if name in _CURVATURE:
        from . import curvature
        return getattr(curvature, name)
    if name in _PAIRING:
        from . import pairing
        return getattr(pairing, name)
    if name in _OPTAX:
        from . import optax_adapter
        return getattr(optax_adapter, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
