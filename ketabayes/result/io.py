"""Reading result files: one loader for every model, with the file checked before it is trusted.

:func:`load_result` reads the model type stored in the file and rebuilds the matching
result class from the tree alone (no model object is built). It refuses, with a
:class:`~ketabayes.errors.ResultFileError` naming the file and the problem, a file that is
missing, empty, truncated, not netCDF, not written by ketabayes, written by an unknown
model, or whose stored data no longer match the hash recorded when it was saved.
"""

from __future__ import annotations

import json
from pathlib import Path

from ketabayes.errors import ResultFileError
from ketabayes.result.base import SETTINGS_ATTR, content_hash

__all__ = ["load_result", "RESULT_CLASSES"]


def _classes() -> dict:
    from ketabayes.result.bivariate_result import BivariateResult
    from ketabayes.result.bma_result import BMAResult
    from ketabayes.result.hierarchical_result import HierarchicalResult
    from ketabayes.result.multivariate_result import MultivariateResult
    from ketabayes.result.result import MetaResult

    return {"random effects": MetaResult, "fixed effect": MetaResult, "hierarchical": HierarchicalResult,
            "binomial": HierarchicalResult, "bma": BMAResult, "bivariate": BivariateResult,
            "multivariate": MultivariateResult}


#: model type stored in a file -> result class (filled on first use)
RESULT_CLASSES: dict = {}


def load_result(path):
    """Load a result saved with ``result.to_netcdf(path)``, whichever model made it.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ResultBase
        A :class:`~ketabayes.result.result.MetaResult` or
        :class:`~ketabayes.result.hierarchical_result.HierarchicalResult` (by the model type
        stored in the file). Exact results re-run their engine from the stored arrays
        (deterministic, milliseconds to a second), so exact summaries survive the round trip.

    Raises
    ------
    ResultFileError
        If the file is missing, unreadable, not a ketabayes result, or its data were changed
        after it was saved.
    """
    import xarray as xr

    from ketabayes.inference.diagnostics import Diagnostics

    path = Path(path)
    if not path.is_file():
        raise ResultFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ResultFileError(f"{path}: the file is empty (0 bytes): not a ketabayes result")
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if not (magic.startswith(b"\x89HDF") or magic.startswith(b"CDF")):
        raise ResultFileError(f"{path}: not a netCDF file (it does not start with a netCDF/HDF5 signature)")
    try:
        tree = xr.open_datatree(path, engine="netcdf4").load()
    except Exception as e:  # noqa: BLE001 - netCDF4/HDF5 raise many types for damaged files
        raise ResultFileError(f"{path}: cannot be read as netCDF ({type(e).__name__}: {e}); "
                              "the file may be truncated or damaged") from None
    if SETTINGS_ATTR not in tree.attrs:
        raise ResultFileError(f"{path}: a netCDF file, but not a ketabayes result (no {SETTINGS_ATTR!r} attribute)")
    try:
        settings = json.loads(tree.attrs[SETTINGS_ATTR])
    except (TypeError, ValueError) as e:
        raise ResultFileError(f"{path}: the stored settings are not valid JSON ({e})") from None
    if not isinstance(settings, dict) or "engine" not in settings:
        raise ResultFileError(f"{path}: the stored settings lack the engine; not a ketabayes result")
    for group in ("posterior", "observed_data", "constant_data"):
        if group not in tree.children:
            raise ResultFileError(f"{path}: the group {group!r} is missing")
    if not RESULT_CLASSES:
        RESULT_CLASSES.update(_classes())
    model = settings.get("model", "random effects")
    cls = RESULT_CLASSES.get(model)
    if cls is None:
        raise ResultFileError(f"{path}: unknown model type {model!r} (known: {', '.join(RESULT_CLASSES)})")
    stored = settings.get("content_hash")
    if stored is not None and stored != content_hash(tree):
        raise ResultFileError(f"{path}: the data stored in the file do not match the hash recorded when it was "
                              "saved: the file was edited or damaged; its numbers cannot be trusted")
    diag = settings.pop("diagnostics", None)
    diagnostics = Diagnostics(**{k: v for k, v in diag.items() if k != "ok"}) if diag else None
    try:
        return cls._from_tree(tree, settings, diagnostics)
    except ResultFileError:
        raise
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise ResultFileError(f"{path}: the contents are incomplete or inconsistent ({type(e).__name__}: {e})") \
            from None
