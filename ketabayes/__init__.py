"""ketabayes: Bayesian re-analysis of meta-analyses.

The pipeline, one sub-package per stage::

    data       validation, effect sizes (metafor's escalc definitions), RevMan import, datasets
    model      priors, the normal-normal random-effects model, hierarchical models
    inference  exact (integration over tau; binomial-logit by nested quadrature), NUTS (PyMC), frequentist
               reference (metafor's rma, MH, Peto, diagnostics, small-study tests)
    result     posterior as xarray.DataTree + decision probabilities, save/load
    reporting  tables and figures
    sensitivity  one analysis over a grid of variants (above result/ and model/)

Public functions are imported lazily, so ``import ketabayes`` is fast and
PyMC is only loaded when a model is fitted.
"""

from __future__ import annotations

import importlib

from ketabayes._compat import check_versions as _check_versions

_check_versions()

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # data
    "effect_sizes": "ketabayes.data.effect_sizes",
    "check_risk_of_bias": "ketabayes.data.risk_of_bias",
    "read_revman_rob": "ketabayes.data.revman_rob",
    "revman_contrasts": "ketabayes.data.revman_trials",
    "read_revman": "ketabayes.data.revman",
    "read_csv_table": "ketabayes.data.csv_table",
    "list_datasets": "ketabayes.data.datasets",
    "load_dataset": "ketabayes.data.datasets",
    "from_published": "ketabayes.data.published",
    "crossover": "ketabayes.data.crossover",
    "fill_mean_sd": "ketabayes.data.conversions",
    "fill_se": "ketabayes.data.conversions",
    "fill_sd_change": "ketabayes.data.conversions",
    "mean_sd_from_quantiles": "ketabayes.data.conversions",
    "multiarm_contrasts": "ketabayes.data.multiarm",
    "combine_arms": "ketabayes.data.multiarm",
    "split_control": "ketabayes.data.multiarm",
    "handle_multiarm": "ketabayes.data.multiarm",
    "with_assumed_r": "ketabayes.data.crossover",
    # model
    "priors": "ketabayes.model.priors",
    "RandomEffectsModel": "ketabayes.model.random_effects",
    "HierarchicalModel": "ketabayes.model.hierarchical",
    "BinomialModel": "ketabayes.model.binomial",
    "BivariateModel": "ketabayes.model.bivariate",
    "MultivariateModel": "ketabayes.model.multivariate",
    "simulate_review": "ketabayes.data.simulate",
    "split_analyses": "ketabayes.data.revman",
    "describe_dataset": "ketabayes.data.datasets",
    # inference
    "rma": "ketabayes.inference.frequentist",
    "rma_all": "ketabayes.inference.frequentist",
    "REVMAN": "ketabayes.inference.frequentist",
    "rma_mh": "ketabayes.inference.frequentist",
    "rma_peto": "ketabayes.inference.frequentist",
    "leave1out": "ketabayes.inference.frequentist",
    "influence": "ketabayes.inference.frequentist",
    "subgroup": "ketabayes.inference.frequentist",
    "regtest": "ketabayes.inference.frequentist",
    "ranktest": "ketabayes.inference.frequentist",
    "trimfill": "ketabayes.inference.frequentist",
    "bayes_factor": "ketabayes.inference.bayes_factor",
    "ExactBinomial": "ketabayes.inference.exact_binomial",
    "ExactBinomialGrouped": "ketabayes.inference.exact_binomial_grouped",
    "ExactBinomialRegression": "ketabayes.inference.exact_binomial_regression",
    "ExactBinomialMixed": "ketabayes.inference.exact_binomial_mixed",
    "ExactBinomialNested": "ketabayes.inference.exact_binomial_nested",
    "CompiledModelCache": "ketabayes.inference.compiled_cache",
    "bma": "ketabayes.model.bma",
    "BiasPrior": "ketabayes.model.bias_priors",
    "meta_epidemiological_prior": "ketabayes.model.bias_priors",
    "bias_prior_table": "ketabayes.model.bias_priors",
    "adjust_for_elicited_bias": "ketabayes.model.bias_priors",
    "ExactMultivariateNormal": "ketabayes.inference.exact_multivariate",
    # result
    "MetaResult": "ketabayes.result.result",
    "BMAResult": "ketabayes.result.bma_result",
    "load_result": "ketabayes.result.io",
    "ResultBase": "ketabayes.result.base",
    "decision_probabilities": "ketabayes.decision",
    "Thresholds": "ketabayes.decision",
    "VerdictRule": "ketabayes.decision",
    "HierarchicalResult": "ketabayes.result.hierarchical_result",
    "load_hierarchical_result": "ketabayes.result.hierarchical_result",
    "next_trial": "ketabayes.result.next_trial",
    "BivariateResult": "ketabayes.result.bivariate_result",
    "NextTrial": "ketabayes.result.next_trial",
    "MultivariateResult": "ketabayes.result.multivariate_result",
    # reporting
    "prior_panel_analysis": "ketabayes.reporting.panel",
    "reanalyse_published": "ketabayes.reporting.panel",
    "compare_decisions": "ketabayes.reporting.compare",
    # sensitivity (above result/ and model/)
    "sensitivity_grid": "ketabayes.sensitivity",
    "Sensitivity": "ketabayes.sensitivity",
    "SensitivityResult": "ketabayes.sensitivity",
    "register_analysis": "ketabayes.sensitivity",
    "BiasAdjustment": "ketabayes.sensitivity",
    "plot_forest": "ketabayes.reporting.plots",
    "plot_decision": "ketabayes.reporting.plots",
    "plot_benefit_curve": "ketabayes.reporting.plots",
    "plot_funnel": "ketabayes.reporting.funnel",
    "plot_bma_mean": "ketabayes.reporting.bma_plots",
    "plot_model_probabilities": "ketabayes.reporting.bma_plots",
    "plot_weight_function": "ketabayes.reporting.bma_plots",
    "plot_robustness_heatmap": "ketabayes.reporting.robustness_plot",
    "plot_tornado": "ketabayes.reporting.robustness_plot",
    "plot_time_course": "ketabayes.reporting.time_plot",
    # errors
    "KetabayesError": "ketabayes.errors",
    "DataError": "ketabayes.errors",
    "RevManError": "ketabayes.errors",
    "PriorError": "ketabayes.errors",
    "ConvergenceError": "ketabayes.errors",
    "ExactIntegrationError": "ketabayes.errors",
    "ConvergenceWarning": "ketabayes.errors",
    "DataWarning": "ketabayes.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "priors" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ketabayes' has no attribute {name!r}")


def __dir__():
    return __all__
