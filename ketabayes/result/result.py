"""The fitted result: posterior as an ``xarray.DataTree`` plus decision quantities.

:class:`MetaResult` is what :meth:`RandomEffectsModel.fit` returns, whichever
engine ran. Its ``tree`` works with ArviZ (``arviz.summary``,
``arviz.plot_forest``); its summaries and decision probabilities are exact when
the exact engine ran and Monte-Carlo estimates from the draws otherwise.
Everything needed to reproduce it -- priors, thresholds, engine settings, seed,
package versions and a hash of the input data -- is stored in the tree's root
attributes and survives :meth:`MetaResult.to_netcdf` / :func:`load_result`.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import xarray as xr

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.result.base import SETTINGS_ATTR as _ATTR
from ketabayes.result.base import ResultBase
from ketabayes.result.decision import RATIO_MEASURES, benefit_curve, decision_probabilities
from ketabayes.result.marginals import DrawsMarginal, Marginal
from ketabayes.result.provenance import to_json

__all__ = ["MetaResult", "load_result", "SUMMARY_COLUMNS"]

SUMMARY_COLUMNS = ["mean", "sd", "q025", "q50", "q975"]


class MetaResult(ResultBase):
    """Posterior of a normal-normal meta-analysis with decision quantities.

    Do not construct directly: use :meth:`RandomEffectsModel.fit` or
    :func:`load_result`.

    Attributes
    ----------
    tree : xarray.DataTree
        Groups ``posterior`` (``mu``, ``tau``, ``theta[study]``, ``theta_new``),
        ``observed_data`` (``y``), ``constant_data`` (``vi``) and, for NUTS,
        ``sample_stats``. Root attribute ``ketabayes`` holds the settings as JSON.
    engine : {"exact", "nuts"}
    settings : dict
        Priors, thresholds, engine settings, seed, versions and data hash.
    diagnostics : Diagnostics or None
        NUTS diagnostics (``None`` for the exact engine, whose draws are independent).
    frequentist : dict
        metafor-equivalent FE, DL and REML results (:class:`~ketabayes.inference.frequentist.RmaResult`).
    """

    def __init__(self, tree: xr.DataTree, settings: dict, *, exact=None, diagnostics=None, frequentist=None):
        super().__init__(tree, settings, exact=exact, diagnostics=diagnostics)
        self.frequentist = frequentist or {}
        self._store_settings()

    # ------------------------------------------------------------------ basics
    @property
    def studies(self) -> list[str]:
        return [str(s) for s in self.tree["observed_data"][dims.STUDY].values]

    @property
    def fixed(self) -> bool:
        return bool(self.settings.get("fixed", False))

    def _stored_settings(self) -> dict:
        s = super()._stored_settings()
        if self.frequentist:
            s["frequentist"] = {k: v.to_dict() for k, v in self.frequentist.items()}
        return s

    # ------------------------------------------------------------------ marginals
    def marginal(self, target: str = "mean") -> Marginal:
        """Posterior of one target as a :class:`~ketabayes.result.marginals.Marginal`.

        Parameters
        ----------
        target : str
            ``"mean"`` (the average effect mu), ``"predictive"`` (the effect in a
            new study, theta_new), ``"tau"``, or a study label / ``"study=<label>"``
            (that study's shrunken effect theta_i).
        """
        key = target[len("study="):] if target.startswith("study=") else target
        if self.exact is not None:
            if key in ("mean", dims.MU):
                return self.exact.mu
            if key in ("predictive", dims.THETA_NEW):
                return self.exact.theta_new
            if key == dims.TAU and not self.exact.fixed:
                return self.exact.tau
            if key in self.studies:
                return self.exact.theta(self.studies.index(key))
        post = self.posterior
        if key in ("mean", dims.MU):
            return DrawsMarginal(post[dims.MU].values)
        if key in ("predictive", dims.THETA_NEW):
            return DrawsMarginal(post[dims.THETA_NEW].values)
        if key == dims.TAU:
            return DrawsMarginal(post[dims.TAU].values if dims.TAU in post else np.zeros(1))
        if key in self.studies:
            return DrawsMarginal(post[dims.THETA].sel({dims.STUDY: key}).values)
        raise KetabayesError(f"unknown target {target!r}: use 'mean', 'predictive', 'tau' or a study label "
                             f"({', '.join(self.studies[:5])}{', ...' if len(self.studies) > 5 else ''})")

    # ------------------------------------------------------------------ summaries
    def summary(self, prob: float = 0.95) -> pd.DataFrame:
        """Posterior mean, sd and equal-tailed ``prob`` interval of every parameter.

        Exact (to ~1e-8) for the exact engine; from draws for NUTS, with
        R-hat and ESS columns added by ArviZ.

        Returns
        -------
        pandas.DataFrame
            Index: ``mu``, ``tau``, ``theta_new``, ``theta[<study>]``.
        """
        a = (1.0 - prob) / 2.0
        qs = np.array([a, 0.5, 1.0 - a])
        cols = ["mean", "sd", f"eti{prob * 100:g}_lb", "median", f"eti{prob * 100:g}_ub"]
        rows = {}
        if self.exact is not None:
            e = self.exact
            rows[dims.MU] = [e.mu.mean, e.mu.sd, *e.mu.ppf(qs)]
            if e.fixed:
                rows[dims.TAU] = [0.0, 0.0, 0.0, 0.0, 0.0]
            else:
                rows[dims.TAU] = [e.tau_mean, e.tau_sd, *e.tau_ppf(qs)]
            rows[dims.THETA_NEW] = [e.theta_new.mean, e.theta_new.sd, *e.theta_new.ppf(qs)]
            for i, s in enumerate(self.studies):
                m = e.theta(i)
                rows[f"{dims.THETA}[{s}]"] = [m.mean, m.sd, *m.ppf(qs)]
            return pd.DataFrame.from_dict(rows, orient="index", columns=cols)
        import arviz as az

        var_names = [v for v in (dims.MU, dims.TAU, dims.THETA_NEW, dims.THETA) if v in self.posterior]
        out = az.summary(self.tree, var_names=var_names, ci_prob=prob, ci_kind="eti", round_to="none")
        med = {}
        for v in var_names:
            da = self.posterior[v]
            if dims.STUDY in da.dims:
                for s in self.studies:
                    med[f"{v}[{s}]"] = float(np.median(da.sel({dims.STUDY: s}).values))
            else:
                med[v] = float(np.median(da.values))
        out.insert(3, "median", pd.Series(med))
        return out

    def decision_table(self, mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
                       targets=("mean", "predictive"), prob: float = 0.95) -> pd.DataFrame:
        """Probabilities of benefit beyond the MCID, practically no effect, harm, and any benefit.

        Parameters
        ----------
        mcid : float, optional
            Minimal clinically important difference (a ratio for OR/RR). Defaults
            to the one given at fit time.
        benefit : {"lower", "higher"}, optional
        harm : float, optional
            Harm threshold if different from the MCID.
        targets : sequence of str
            ``"mean"``, ``"predictive"`` and/or study labels.
        prob : float
            Probability of the reported equal-tailed interval (default 95%).

        Returns
        -------
        pandas.DataFrame
            One row per target: ``target, mean, sd, q025, q50, q975, p_benefit,
            p_trivial, p_harm, p_any_benefit`` on the analysis scale (log scale for
            OR/RR), plus ``exact`` (bool). ``attrs`` carry the thresholds and priors.
        """
        th = self._thresholds(mcid, benefit, harm)
        a = (1.0 - prob) / 2.0
        rows = []
        for t in targets:
            m = self.marginal(t)
            q = np.asarray(m.ppf(np.array([a, 0.5, 1.0 - a])), dtype=float)
            rows.append({"target": t, "mean": m.mean, "sd": m.sd, "q025": q[0], "q50": q[1], "q975": q[2],
                         **decision_probabilities(m, th), "exact": m.exact})
        df = pd.DataFrame(rows)
        if prob != 0.95:
            lo, hi = f"q{a * 1000:03.0f}", f"q{(1 - a) * 1000:03.0f}"
            df = df.rename(columns={"q025": lo, "q975": hi})
        df.attrs.update(thresholds=th.to_dict(), thresholds_text=th.describe(self.measure),
                        prior_mu=self.settings["prior_mu"], prior_tau=self.settings.get("prior_tau"),
                        measure=self.measure, engine=self.engine)
        return df

    def benefit_curve(self, thresholds=None, target: str = "mean") -> pd.DataFrame:
        """P(benefit at least as large as each threshold) for one target."""
        th = self._thresholds(None, None, None, required=False)
        benefit = th.benefit if th else "lower"
        ratio = self.measure in RATIO_MEASURES
        if thresholds is None:
            if ratio:
                thresholds = np.exp(np.linspace(0.0, 1.0, 51))
            else:
                m = self.marginal(target)
                thresholds = np.linspace(0.0, max(3.0 * m.sd + abs(m.mean), 1e-9), 51)
        df = benefit_curve(self.marginal(target), thresholds, benefit=benefit, ratio=ratio)
        df.insert(0, "target", target)
        return df

    def frequentist_table(self) -> pd.DataFrame:
        """metafor-equivalent FE / DL / REML estimates next to the Bayesian ones."""
        if not self.frequentist:
            return pd.DataFrame()
        return pd.DataFrame({k: v.to_dict() for k, v in self.frequentist.items()}).T

    # ------------------------------------------------------------------ output
    def to_dict(self, mcid=None, benefit=None, harm=None) -> dict:
        """Machine-readable result (what ``ketabayes analyse --json`` writes)."""
        out = {"measure": self.measure, "scale": "log" if self.measure in RATIO_MEASURES else "identity"}
        th = self._thresholds(mcid, benefit, harm, required=False)
        if th is not None:
            table = self.decision_table(th.mcid, th.benefit, th.harm)
            out["estimates"] = [{k: (bool(v) if k == "exact" else v) for k, v in r.items()}
                                for r in table.to_dict(orient="records")]
        else:
            out["estimates"] = []
            for t in ("mean", "predictive"):
                m = self.marginal(t)
                q = m.ppf(np.array([0.025, 0.5, 0.975]))
                out["estimates"].append({"target": t, "mean": m.mean, "sd": m.sd, "q025": q[0], "q50": q[1],
                                         "q975": q[2], "exact": m.exact})
        s = self.summary()
        lb, med, ub = s.columns[2], "median", s.columns[4]
        out["tau"] = {"mean": s.loc[dims.TAU, "mean"], "q025": s.loc[dims.TAU, lb],
                      "q50": s.loc[dims.TAU, med], "q975": s.loc[dims.TAU, ub]}
        out["frequentist"] = {k: v.to_dict() for k, v in self.frequentist.items()}
        out["diagnostics"] = self.diagnostics.to_dict() if self.diagnostics is not None else {
            "engine": "exact", "note": "independent draws from the exact posterior; no MCMC diagnostics apply"}
        out["settings"] = {k: v for k, v in self.settings.items()}
        if th is not None:
            out["settings"]["thresholds"] = th.to_dict()
        return json.loads(to_json(out))

    def __repr__(self) -> str:
        s = self.settings
        lines = [f"<MetaResult: {s.get('model', 'random effects')}, {len(self.studies)} studies, "
                 f"measure {self.measure}, engine {self.engine}>",
                 f"  prior mu:  {s['prior_mu']['text']}"]
        if not self.fixed:
            lines.append(f"  prior tau: {s['prior_tau']['text']}")
        if self.diagnostics is not None:
            lines.append(f"  diagnostics: {self.diagnostics}")
        lines.append(f"  data: {s['data_hash']}, seed {s['seed']}")
        return "\n".join(lines)


def load_result(path) -> MetaResult:
    """Load a result saved with :meth:`MetaResult.to_netcdf`.

    The exact engine is re-run from the stored data and priors (it is
    deterministic and takes milliseconds), so exact summaries survive the round-trip.
    """
    from ketabayes.inference.diagnostics import Diagnostics
    from ketabayes.inference.frequentist import RmaResult

    tree = xr.open_datatree(path, engine="netcdf4").load()
    settings = json.loads(tree.attrs[_ATTR])
    diag = settings.pop("diagnostics", None)
    freq = settings.pop("frequentist", None) or {}
    exact = None
    if settings["engine"] == "exact":
        from ketabayes.model.random_effects import _exact_from_settings

        exact = _exact_from_settings(tree, settings)
    diagnostics = None
    if diag is not None:
        diag = {k: v for k, v in diag.items() if k != "ok"}
        diagnostics = Diagnostics(**diag)
    # strict JSON stores NaN as null: undefined statistics (e.g. FE's prediction interval) become NaN again
    frequentist = {k: RmaResult(**{f: (float("nan") if x is None else x) for f, x in v.items()})
                   for k, v in freq.items()}
    return MetaResult(tree, settings, exact=exact, diagnostics=diagnostics, frequentist=frequentist)
