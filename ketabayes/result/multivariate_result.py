"""The result of the multivariate normal model (multi-arm trials, estimates at several time points).

:class:`MultivariateResult` follows the one result contract
(:class:`~ketabayes.result.base.ResultBase`). Targets: ``mean`` and ``predictive`` and one per
estimate ``<study>|<arm>`` for multi-arm contrasts; ``mean|time=<t>``, ``predictive|time=<t>``
and ``<study>|time=<t>`` for time windows. Scale parameter: ``tau``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketabayes.marginals import DrawsMarginal, Marginal
from ketabayes.result.base import ResultBase, TargetInfo

__all__ = ["MultivariateResult"]


class MultivariateResult(ResultBase):
    """Posterior of a multivariate normal random-effects model with decision quantities.

    Do not construct directly: use :meth:`~ketabayes.model.multivariate.MultivariateModel.fit`
    or :func:`~ketabayes.result.io.load_result`.

    Attributes
    ----------
    tree : xarray.DataTree
        ``posterior`` (``beta[coefficient]``, ``tau``, ``theta[estimate]``,
        ``theta_new[coefficient]``), ``observed_data`` (``y[estimate]``), ``constant_data``
        (``S`` the within-trial covariance, ``trial`` and ``coef`` of every estimate).
    frequentist : dict
        REML and ML fits (metafor's ``rma.mv`` with ``struct="CS"`` and the same ``rho``).
    """

    def __init__(self, tree, settings, *, exact=None, diagnostics=None, frequentist=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics)
        self.frequentist = frequentist or {}
        self._store_settings()

    # ------------------------------------------------------------------ the contract
    @property
    def factor(self):
        return self.settings.get("factor")

    @property
    def coef_names(self) -> list[str]:
        return [str(c) for c in self.tree["posterior"]["coefficient"].values]

    @property
    def estimates(self) -> list[str]:
        return [str(s) for s in self.tree["observed_data"]["estimate"].values]

    @property
    def studies(self) -> list[str]:
        """Trial labels (each once, in order)."""
        return list(dict.fromkeys(str(s) for s in self.tree["constant_data"]["trial"].values))

    def _coef_target(self, j: int, kind: str) -> str:
        return kind if self.factor is None else f"{kind}|{self.factor}={self.coef_names[j]}"

    @property
    def targets(self) -> list[TargetInfo]:
        coef = self.tree["constant_data"]["coef"].values
        trial = self.tree["constant_data"]["trial"].values
        out = []
        for kind in ("mean", "predictive"):
            for j, c in enumerate(self.coef_names):
                lv = {} if self.factor is None else {self.factor: c}
                out.append(TargetInfo(self._coef_target(j, kind), kind, lv,
                                      n_trials=len(set(trial[coef == j].tolist()))))
        for i, name in enumerate(self.estimates):
            lv = {} if self.factor is None else {self.factor: self.coef_names[int(coef[i])]}
            out.append(TargetInfo(name, "study", lv, n_trials=1))
        return out

    @property
    def _index(self) -> dict:
        idx = getattr(self, "_index_cache", None)
        if idx is None:
            idx = {}
            for j in range(len(self.coef_names)):
                idx[self._coef_target(j, "mean")] = ("beta", j)
                idx[self._coef_target(j, "predictive")] = ("new", j)
            idx.update({s: ("theta", i) for i, s in enumerate(self.estimates)})
            self._index_cache = idx
        return idx

    @property
    def scale_names(self) -> list[str]:
        return ["tau"]

    def _marginal(self, key: str) -> Marginal | None:
        e = self.exact
        if key == "tau":
            return e.tau if e is not None else DrawsMarginal(self.tree["posterior"]["tau"].values)
        where = self._index.get(key)
        if where is None:
            return None
        what, j = where
        if e is not None:
            return {"beta": e.beta, "new": e.predictive, "theta": e.theta}[what](j)
        var = {"beta": "beta", "new": "theta_new", "theta": "theta"}[what]
        da = self.tree["posterior"][var]
        return DrawsMarginal(da.isel({da.dims[-1]: j}).values)

    def _scale_stats(self, name: str, qs) -> list[float]:
        if self.exact is not None:
            e = self.exact
            return [e.tau_mean, e.tau_sd, *np.asarray(e.tau_ppf(np.asarray(qs)), dtype=float)]
        x = self.tree["posterior"][name].values.ravel()
        return [float(x.mean()), float(x.std(ddof=1)), *np.quantile(x, qs)]

    def _level_columns(self) -> list[str]:
        return [] if self.factor is None else [self.factor]

    def _default_targets(self) -> list[str]:
        return [self._coef_target(j, k) for k in ("mean", "predictive") for j in range(len(self.coef_names))]

    # ------------------------------------------------------------------ extras
    def frequentist_table(self) -> pd.DataFrame:
        """REML and ML estimates (one row per method and coefficient), as metafor's ``rma.mv`` gives them."""
        rows = []
        for m, f in self.frequentist.items():
            for j, c in enumerate(self.coef_names):
                rows.append({"method": m, "coefficient": c, "estimate": f["beta"][j], "se": f["se"][j],
                             "tau2": f["tau2"]})
        return pd.DataFrame(rows)

    def _header(self) -> list[str]:
        head = super()._header()
        head[0] = (f"{type(self).__name__}: multivariate, {len(self.estimates)} estimates from "
                   f"{len(self.studies)} trials, measure {self.measure}, engine {self.engine}")
        a = self.settings.get("assumptions") or {}
        note = a.get("note") or a.get("rho_note")
        if note:
            head.insert(1, f"assumption: {note}")
        return head

    def _stored_settings(self) -> dict:
        s = super()._stored_settings()
        if self.frequentist:
            s["frequentist"] = self.frequentist
        return s

    def _extra_dict(self) -> dict:
        return {"frequentist": self.frequentist}

    @classmethod
    def _from_tree(cls, tree, settings, diagnostics):
        """Rebuild from a saved tree: the exact engine is re-run from the stored arrays and priors."""
        from ketabayes.inference.restore import exact_multivariate

        freq = settings.pop("frequentist", None) or {}
        return cls(tree, settings, exact=exact_multivariate(tree, settings), diagnostics=diagnostics,
                   frequentist=freq)
