"""Host views and copies of a parameter group for the CPU estimators of :class:`~.torch_adapter.ControlledLR`.

For CPU tensors of one floating type (float32 or float64) the regression estimator reads the
parameters and gradients in place through numpy views of the tensors (kept while the parameters'
storage stays the same), so a step makes no copy of them. Other tensors (GPU, half precision,
sparse gradients) and other estimators get one flat float64 copy on the CPU.
"""

from __future__ import annotations

import numpy as np

from ..errors import require_extra

torch = require_extra("torch", "torch")
_VIEW_DTYPES = (torch.float32, torch.float64)


def _flat(tensors, *, grads: bool) -> np.ndarray:
    """A copy of the tensors (or of their gradients; missing ones are zero), flattened and concatenated.

    float32 and float64 CPU tensors keep their type (the estimators widen
    them); anything else becomes float64 on the CPU.
    """
    parts = _flat_parts(tensors, grads)
    if not parts:
        return np.zeros(0)
    flat = torch.cat(parts)  # always a new tensor: a snapshot
    if flat.device.type != "cpu" or flat.dtype not in (torch.float32, torch.float64):
        flat = flat.to(dtype=torch.float64, device="cpu")
    return flat.numpy()


def _flat_parts(tensors, grads: bool) -> list:
    """Each tensor (or its gradient; a missing one as zeros, a sparse one densified), detached and flattened."""
    parts = []
    for p in tensors:
        t = p.grad if grads else p
        if t is None:
            t = torch.zeros_like(p)
        elif t.is_sparse:
            t = t.to_dense()
        parts.append(t.detach().reshape(-1))
    return parts


def _device_flat(tensors, *, grads: bool):
    """A float64 copy of the tensors (or of their gradients; missing ones are zero), flattened and
    concatenated on their device: the on-device estimators' input, no host copy."""
    parts = _flat_parts(tensors, grads)
    if not parts:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat(parts).to(torch.float64)  # cat always makes a new tensor: a snapshot


def _param_views(params, cache: dict):
    """1-D numpy views of the parameters (no copy), or None when they cannot all be viewed.

    Views need CPU, dense, contiguous tensors of one dtype in ``_VIEW_DTYPES``.
    They are cached under the tensors' data pointers: a view keeps its storage
    alive, so an unchanged pointer means an unchanged tensor.
    """
    key = tuple(p.data_ptr() for p in params)
    hit = cache.get("params")
    if hit is not None and hit[0] == key:
        return hit[1]
    views = None
    if params and all(p.device.type == "cpu" and p.layout == torch.strided and p.is_contiguous()
                      and p.dtype == params[0].dtype for p in params) and params[0].dtype in _VIEW_DTYPES:
        views = tuple(p.detach().numpy().reshape(-1) for p in params)
    cache["params"] = (key, views)
    cache["zeros"] = {}
    return views


def _grad_views(params, cache: dict):
    """1-D numpy views of the gradients (zeros where a gradient is missing), or None."""
    dtype = cache["params"][1][0].dtype
    try:  # the common case: every gradient a dense CPU tensor without a graph
        out = tuple([p.grad.numpy().reshape(-1) for p in params])
    except (AttributeError, TypeError, RuntimeError):
        out = _grad_views_general(params, cache)
        if out is None:
            return None
    for v in out:
        if v.dtype != dtype:
            return None
    return out


def _grad_views_general(params, cache: dict):
    out = []
    for i, p in enumerate(params):
        g = p.grad
        if g is None:
            v = cache["zeros"].get(i)
            if v is None:
                v = cache["zeros"][i] = np.zeros(p.numel(), dtype=cache["params"][1][0].dtype)
        else:
            try:
                v = g.detach().numpy().reshape(-1)  # a copy only for a non-contiguous gradient
            except (TypeError, RuntimeError):  # another device or layout
                return None
        out.append(v)
    return tuple(out)


def _to_torch(obj):
    """numpy arrays/scalars -> tensors/floats, recursively (so ``torch.load(weights_only=True)`` works)."""
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_torch(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _to_numpy(obj):
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_numpy(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    return obj
