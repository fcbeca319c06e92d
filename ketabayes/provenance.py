"""What travels with every result: versions, a hash of the input data, settings."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from ketabayes._compat import package_versions

__all__ = ["data_hash", "package_versions", "to_json"]


def data_hash(*arrays, labels=None, extra: str = "") -> str:
    """SHA-256 of the analysed numbers (float64 bytes), study labels and ``extra``.

    Two results with the same hash were computed from bit-identical inputs.
    """
    h = hashlib.sha256()
    for a in arrays:
        arr = np.ascontiguousarray(np.asarray(a, dtype="<f8"))
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    if labels is not None:
        h.update("\x1f".join(map(str, labels)).encode("utf-8"))
    h.update(extra.encode("utf-8"))
    return "sha256:" + h.hexdigest()


def _default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean(o):
    """Replace NaN/inf floats by None so the output is strict JSON."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, (np.integer, np.bool_)):
        return o.item()
    if hasattr(o, "to_dict") and not isinstance(o, type):
        return _clean(o.to_dict())
    return o


def to_json(obj, **kwargs) -> str:
    """Strict JSON (NaN -> null) with NumPy scalars and objects with ``to_dict`` handled."""
    return json.dumps(_clean(obj), default=_default, allow_nan=False, **kwargs)
