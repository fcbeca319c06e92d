"""What every ketabayes result shares: the DataTree, settings, thresholds and netCDF output."""

from __future__ import annotations

from pathlib import Path

import xarray as xr

from ketabayes.result.decision import Thresholds
from ketabayes.result.provenance import to_json

__all__ = ["ResultBase", "SETTINGS_ATTR"]

#: root attribute of the DataTree that holds the settings as JSON
SETTINGS_ATTR = "ketabayes"


class ResultBase:
    """Base of :class:`~ketabayes.result.result.MetaResult` and
    :class:`~ketabayes.result.hierarchical_result.HierarchicalResult`.

    Holds ``tree`` (an :class:`xarray.DataTree`), ``settings`` (priors, thresholds,
    engine, seed, versions, data hash), ``exact`` and ``diagnostics``, and writes the
    settings into the tree's root attribute :data:`SETTINGS_ATTR` whenever the tree is
    created or saved.
    """

    def __init__(self, tree: xr.DataTree, settings: dict, *, exact=None, diagnostics=None):
        self.tree = tree
        self.settings = settings
        self.exact = exact
        self.diagnostics = diagnostics

    def _store_settings(self) -> None:
        self.tree.attrs[SETTINGS_ATTR] = to_json(self._stored_settings())

    def _stored_settings(self) -> dict:
        s = dict(self.settings)
        if self.diagnostics is not None:
            s["diagnostics"] = self.diagnostics.to_dict()
        return s

    @property
    def engine(self) -> str:
        return self.settings["engine"]

    @property
    def measure(self) -> str:
        return self.settings.get("measure") or "GEN"

    @property
    def posterior(self) -> xr.Dataset:
        return self.tree["posterior"].to_dataset()

    @property
    def thresholds(self) -> Thresholds | None:
        t = self.settings.get("thresholds")
        return Thresholds.from_dict(t) if t else None

    def _thresholds(self, mcid, benefit, harm, required=True) -> Thresholds | None:
        return Thresholds.resolve(self.thresholds, mcid, benefit, harm, self.measure, required=required)

    def to_netcdf(self, path) -> Path:
        """Save the tree, with every setting in its root attributes, to a netCDF file."""
        path = Path(path)
        self._store_settings()
        self.tree.to_netcdf(path, engine="netcdf4")
        return path
