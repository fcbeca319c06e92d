"""The result of a Bayesian model-averaged meta-analysis (:func:`ketabayes.bma`).

:class:`BMAResult` follows the one result contract (:class:`~ketabayes.result.base.ResultBase`).
Targets: ``"mean"`` (the average effect averaged over every model, with a point mass at 0 from
the no-effect models), ``"mean|effect"`` (averaged over the models with an effect only: the
"conditional" estimate of metaBMA and RoBMA), ``"predictive"`` (the true effect of a new trial,
``mu + tau z``, averaged over every model: ``N(mu, tau^2)`` under random effects, ``mu`` under a
fixed effect, ``N(0, tau^2)`` or 0 without an effect; under a bias model the bias-corrected
effect of a new unbiased trial, see :func:`~ketabayes.inference.bma.fit_ensemble`) and
``"mean|model=<label>"`` (one model); scale parameter ``"tau"`` (averaged, 0 under the
fixed-effect models). A point mass at 0 counts as "practically no effect" and not as "any
benefit" in the decision table.

Its tree holds ``chains x draws`` joint draws of the model-averaged posterior (``model``, ``mu``,
``tau``, ``theta_new``) with ``log_likelihood``, ``prior`` and ``log_prior`` groups
(:func:`~ketabayes.inference.arviz_groups_multi.add_bma_groups`), the model table in
``constant_data`` and the posterior model probabilities and SMC output in ``model_averaging``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ketabayes.marginals import Marginal
from ketabayes.result.base import ResultBase, TargetInfo

__all__ = ["BMAResult"]

_MODEL = "mean|model="
#: the unadjusted and the bias-adjusted average effect: averaged over the models without / with a bias component
_BIAS_TARGETS = {"mean|no bias": "no bias", "mean|bias": "bias"}


class BMAResult(ResultBase):
    """Model-averaged meta-analysis: model probabilities, inclusion Bayes factors, averaged posteriors.

    Do not construct directly: use :func:`ketabayes.bma` or :func:`ketabayes.load_result`.

    Attributes
    ----------
    ensemble : ketabayes.inference.bma.Ensemble
        The fitted models.
    """

    @property
    def default_targets(self) -> tuple:
        """``mean``, ``mean|effect`` and ``predictive`` (when every model has a predictive)."""
        return ("mean", "mean|effect") + (("predictive",) if self.ensemble.has_predictive else ())

    def __init__(self, tree: xr.DataTree, settings: dict, ensemble, *, diagnostics=None):
        super().__init__(tree, settings, exact=None, diagnostics=diagnostics)
        self.ensemble = ensemble
        self._store_settings()

    # ------------------------------------------------------------------ the contract
    @property
    def targets(self) -> list[TargetInfo]:
        n = len(self.studies)
        pred = [TargetInfo("predictive", "predictive", n_trials=n)] if self.ensemble.has_predictive else []
        bias = [TargetInfo(t, "mean", n_trials=n) for t in _BIAS_TARGETS] if self._has_bias else []
        return ([TargetInfo("mean", "mean", n_trials=n), TargetInfo("mean|effect", "mean", n_trials=n)] + pred + bias
                + [TargetInfo(f"{_MODEL}{lab}", "model", n_trials=n) for lab in self.ensemble.labels])

    @property
    def _has_bias(self) -> bool:
        biases = {f.spec.bias for f in self.ensemble.fits if f.spec.prior_prob > 0}
        return "none" in biases and len(biases) > 1

    @property
    def scale_names(self) -> list[str]:
        return ["tau"]

    def _marginal(self, name: str) -> Marginal | None:
        e = self.ensemble
        if name == "mean":
            return e.averaged("mu")
        if name == "mean|effect":
            return e.averaged("mu", "effect")
        if name == "predictive":
            return e.averaged("predictive") if e.has_predictive else None
        if name in _BIAS_TARGETS and self._has_bias:
            return e.averaged("mu", _BIAS_TARGETS[name])
        if name == "tau":
            return e.averaged("tau")
        if name.startswith(_MODEL):
            try:
                return e.fit(name[len(_MODEL):]).mu
            except KeyError:
                return None
        return None

    def _scale_stats(self, name: str, qs) -> list[float]:
        m = self._marginal(name)
        return [m.mean, m.sd, *np.asarray(m.ppf(np.asarray(qs, dtype=float)), dtype=float)]

    def _table(self, targets, prob, th, scale):
        df = super()._table(targets, prob, th, scale)
        if th is not None and th.benefit == "lower" and len(df):
            # "any benefit" is the strict event mu < 0: an atom at 0 (no-effect models) is not a benefit
            df["p_any_benefit"] = [float(np.asarray(self.marginal(t).prob_below(np.array(0.0)))) for t in df["target"]]
        return df

    # ------------------------------------------------------------------ model averaging
    @property
    def models(self) -> pd.DataFrame:
        """One row per model: ``model, effect, heterogeneity, bias, prior_prob, log_ml, log_ml_se, post_prob, method``.

        ``log_ml_se`` is the Monte-Carlo standard error of an SMC estimate (0 for quadrature).
        """
        return self.ensemble.models()

    def inclusion_bf(self, component: str = "effect") -> dict:
        """Inclusion Bayes factor of ``"effect"``, ``"heterogeneity"``, ``"bias"`` (or ``"PET"``, ``"PEESE"``,
        ``"selection"``, a weight function): posterior over prior inclusion odds, with ``log_bf_se``,
        the Monte-Carlo error of ``log_bf`` propagated from the SMC estimates."""
        return self.ensemble.inclusion_bf(component)

    def adjustment_table(self, mcid: float | None = None, benefit: str | None = None, harm: float | None = None,
                         prob: float = 0.95, scale: str | None = None) -> pd.DataFrame:
        """Unadjusted and bias-adjusted decision probabilities side by side.

        One row each for ``"mean|no bias"`` (averaged over the models without a bias component: the
        unadjusted answer), ``"mean|bias"`` (over the bias models: the adjusted answer) and
        ``"mean"`` (averaged over all, weighted by the posterior probability of bias), with an
        ``analysis`` column naming them and the columns of :meth:`decision_table`. Needs an ensemble
        fitted with ``bias=``.
        """
        if not self._has_bias:
            from ketabayes.errors import KetabayesError

            raise KetabayesError("adjustment_table needs an ensemble with and without bias models (kb.bma(..., "
                                 "bias=...)); this one has none")
        df = self.decision_table(mcid, benefit, harm, targets=["mean|no bias", "mean|bias", "mean"], prob=prob,
                                 scale=scale)
        df.insert(0, "analysis", ["unadjusted (models without bias)", "bias-adjusted (models with bias)",
                                  "model-averaged"])
        return df

    def inclusion_table(self) -> pd.DataFrame:
        """Inclusion Bayes factors of every component the ensemble varies."""
        comps = ["effect", "heterogeneity"] + (["bias"] if (self.models["bias"] != "none").any() else [])
        return pd.DataFrame([self.inclusion_bf(c) for c in comps])

    def _extra_dict(self) -> dict:
        return {"models": self.models.to_dict(orient="records"),
                "inclusion": self.inclusion_table().to_dict(orient="records")}

    def _header(self) -> list[str]:
        lines = super()._header()
        inc = self.inclusion_table()
        lines.insert(1, "; ".join(f"BF_incl({r.component}) = {r.bf:.4g}" for r in inc.itertuples()))
        return lines

    # ------------------------------------------------------------------ loading
    @classmethod
    def _from_tree(cls, tree, settings, diagnostics):
        """Rebuild: quadrature models are re-integrated, selection models read their stored SMC output."""
        from ketabayes.inference.bma import fit_ensemble
        from ketabayes.inference.bma_selection import SMCFit
        from ketabayes.inference.restore import _prior

        cache = {}
        post = tree["model_averaging"] if "model_averaging" in tree.children else tree["posterior"]
        if "smc_model" in post.dims:
            for i, lab in enumerate(post["smc_model"].values):
                def arr(var, i=i):
                    if var not in post.data_vars:
                        return None
                    a = np.asarray(post[var].values[i], dtype=float)
                    return None if np.all(np.isnan(a)) else a[~np.isnan(a).reshape(a.shape[0], -1).any(1)]
                om = arr("omega_smc")
                cache[str(lab)] = SMCFit(np.asarray(post["log_ml_chains"].values[i], dtype=float), arr("mu_smc"),
                                         arr("tau_smc"), om, 0.0)
        es = settings["engine_settings"]
        ens = fit_ensemble(tree["observed_data"]["y"].values, tree["constant_data"]["vi"].values,
                           prior_mu=_prior(settings["prior_mu"]), prior_tau=_prior(settings["prior_tau"]),
                           bias=es["bias"] or None, prior_probs=es["prior_probs"], benefit=es["bias_direction"],
                           mu_truncation=es["mu_truncation"], prior_pet=_prior(es["prior_pet"]),
                           prior_peese=_prior(es["prior_peese"]), smc_draws=es["smc_draws"],
                           smc_chains=es["smc_chains"], seed=settings["seed"], smc_cache=cache,
                           rob=(tree["constant_data"]["rob_high"].values if "rob_high" in tree["constant_data"] else None),
                           prior_rob=_bias_prior_entry(es))
        return cls(tree, settings, ens, diagnostics=diagnostics)


def _bias_prior_entry(es: dict):
    """The stored prior of the risk-of-bias shift: a BiasPrior (``bias_prior``) or a Prior (``prior_rob``)."""
    from ketabayes.inference.bias_adjusted import bias_prior_from_dict
    from ketabayes.inference.restore import _prior

    return bias_prior_from_dict(es["bias_prior"]) if es.get("bias_prior") else _prior(es.get("prior_rob"))
