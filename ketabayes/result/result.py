"""The result of a normal-normal (random- or fixed-effect) meta-analysis.

:class:`MetaResult` is what :meth:`RandomEffectsModel.fit` returns, whichever
engine ran. It follows the one result contract of
:class:`~ketabayes.result.base.ResultBase`: targets ``mean`` (mu), ``predictive``
(theta_new), each study label (its shrunken effect theta_i) and the scale parameter
``tau``. Its ``tree`` works with ArviZ (``log_likelihood`` and ``prior`` groups
included); its summaries and decision probabilities are exact when the exact engine
ran and Monte-Carlo estimates from the draws otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ketabayes import dims
from ketabayes.marginals import DrawsMarginal, Marginal
from ketabayes.result.base import ResultBase, TargetInfo

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["MetaResult", "load_result"]


class MetaResult(ResultBase):
    """Posterior of a normal-normal meta-analysis with decision quantities.

    Do not construct directly: use :meth:`RandomEffectsModel.fit` or
    :func:`~ketabayes.result.io.load_result`.

    Attributes
    ----------
    tree : xarray.DataTree
        Groups ``posterior`` (``mu``, ``tau``, ``theta[study]``, ``theta_new``),
        ``observed_data`` (``y``), ``constant_data`` (``vi``), ``log_likelihood``
        (``y[study]``, the marginal likelihood ``N(y_i | mu, v_i + tau^2)``), ``prior``
        (for proper priors) and, for NUTS, ``sample_stats``.
    frequentist : dict
        metafor-equivalent FE, DL and REML results (:class:`~ketabayes.inference.frequentist.RmaResult`).
    """

    default_targets = ("mean", "predictive")

    def __init__(self, tree: xr.DataTree, settings: dict, *, exact=None, diagnostics=None, frequentist=None,
                 studies=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics, studies=studies)
        self.frequentist = frequentist or {}
        self._store_settings()

    # ------------------------------------------------------------------ the contract
    @property
    def fixed(self) -> bool:
        return bool(self.settings.get("fixed", False))

    @property
    def targets(self) -> list[TargetInfo]:
        return ([TargetInfo("mean", "mean", n_trials=len(self.studies)),
                 TargetInfo("predictive", "predictive", n_trials=len(self.studies))]
                + [TargetInfo(s, "study", n_trials=1) for s in self.studies])

    @property
    def scale_names(self) -> list[str]:
        return [] if self.fixed else [dims.TAU]

    def _marginal(self, key: str) -> Marginal | None:
        e = self.exact
        if e is not None:
            if key in ("mean", dims.MU):
                return e.mu
            if key in ("predictive", dims.THETA_NEW):
                return e.theta_new
            if key == dims.TAU and not e.fixed:
                return e.tau
            if key in self._study_index:
                return e.theta(self._study_index[key])
            return None
        post = self.tree["posterior"]
        if key in ("mean", dims.MU):
            return DrawsMarginal(post[dims.MU].values)
        if key in ("predictive", dims.THETA_NEW):
            return DrawsMarginal(post[dims.THETA_NEW].values)
        if key == dims.TAU:
            return DrawsMarginal(post[dims.TAU].values if dims.TAU in post.data_vars else np.zeros(1))
        if key in self._study_index:
            return DrawsMarginal(post[dims.THETA].isel({dims.STUDY: self._study_index[key]}).values)
        return None

    @property
    def _study_index(self) -> dict:
        idx = getattr(self, "_study_index_cache", None)
        if idx is None:
            idx = self._study_index_cache = {s: i for i, s in enumerate(self.studies)}
        return idx

    def _scale_stats(self, name: str, qs) -> list[float]:
        if self.exact is not None:
            e = self.exact
            return [e.tau_mean, e.tau_sd, *np.asarray(e.tau_ppf(np.asarray(qs)), dtype=float)]
        x = self.tree["posterior"][name].values.ravel()
        return [float(x.mean()), float(x.std(ddof=1)), *np.quantile(x, qs)]

    def _diagnostic_var(self, name: str):
        if name == "mean":
            return dims.MU, {}
        if name == "predictive":
            return dims.THETA_NEW, {}
        if name in self._study_index:
            return dims.THETA, {dims.STUDY: name}
        return None

    # ------------------------------------------------------------------ extras of this model
    def frequentist_table(self, scale: str | None = None) -> pd.DataFrame:
        """metafor-equivalent FE / DL / REML estimates next to the Bayesian ones.

        Parameters
        ----------
        scale : {"identity", "log", "ratio"}, optional
            As in :meth:`decision_table`: ``"ratio"`` exponentiates the estimate and the confidence
            and prediction interval bounds of an OR/RR analysis (``se`` stays on the log scale).
        """
        if not self.frequentist:
            return pd.DataFrame()
        scale = self._resolve_scale(scale)
        out = pd.DataFrame({k: v.to_dict() for k, v in self.frequentist.items()}).T
        if scale == "ratio":
            for c in ("estimate", "ci_low", "ci_high", "pi_low", "pi_high"):
                if c in out:
                    out[c] = np.exp(pd.to_numeric(out[c], errors="coerce").astype(float))
            if "se" in out:
                out = out.rename(columns={"se": "se_log"})
        out["scale"] = scale
        return out

    def _stored_settings(self) -> dict:
        s = super()._stored_settings()
        if self.frequentist:
            s["frequentist"] = {k: v.to_dict() for k, v in self.frequentist.items()}
        return s

    def _extra_dict(self) -> dict:
        return {"frequentist": {k: v.to_dict() for k, v in self.frequentist.items()}}

    @classmethod
    def _from_tree(cls, tree, settings, diagnostics):
        """Rebuild from a saved tree: the exact engine is re-run from the stored data and priors."""
        from ketabayes.inference.frequentist import RmaResult
        from ketabayes.inference.restore import exact_normal_normal

        freq = settings.pop("frequentist", None) or {}
        exact = exact_normal_normal(tree, settings) if settings["engine"] == "exact" else None
        # strict JSON stores NaN as null: undefined statistics (e.g. FE's prediction interval) become NaN again
        frequentist = {k: RmaResult(**{f: (float("nan") if x is None else x) for f, x in v.items()})
                       for k, v in freq.items()}
        return cls(tree, settings, exact=exact, diagnostics=diagnostics, frequentist=frequentist)


def load_result(path):
    """Load any ketabayes result file (see :func:`ketabayes.result.io.load_result`)."""
    from ketabayes.result.io import load_result as _load

    return _load(path)
