"""Rebuild the exact engines from the arrays a saved result stores in its tree.

Loading a result never rebuilds a model object: the exact engines are deterministic
functions of the data, the priors and (for hierarchical models) the design matrices,
all of which travel in the tree (``observed_data``, ``constant_data``) and its settings.
"""

from __future__ import annotations

import numpy as np

from ketabayes.model.priors import prior_from_dict

__all__ = ["exact_normal_normal", "exact_hierarchical", "exact_bivariate", "DESIGN_VARS"]

#: ``constant_data`` variables that hold a hierarchical model's design (see :func:`design_constants`)
DESIGN_VARS = ("design_X", "design_Z", "design_term_of_col", "target_A", "target_pred")


def _prior(entry):
    if entry is None:
        return None
    return prior_from_dict({k: v for k, v in entry.items() if k != "text"})


def exact_normal_normal(tree, settings):
    """:class:`~ketabayes.inference.exact.ExactNormalNormal` of a saved random-effects result."""
    from ketabayes.inference.exact import ExactNormalNormal, QuadratureSettings

    y = tree["observed_data"]["y"].values
    v = tree["constant_data"]["vi"].values
    qs = QuadratureSettings(**settings.get("engine_settings", {}))
    return ExactNormalNormal(y, v, _prior(settings["prior_mu"]), _prior(settings.get("prior_tau")),
                             fixed=settings.get("fixed", False), settings=qs)


def design_constants(design) -> dict:
    """``constant_data`` entries that let :func:`exact_hierarchical` run without the model object."""
    return {"design_X": (("study", "coefficient"), np.asarray(design.X, dtype=float)),
            "design_Z": (("study", "random_column"), np.asarray(design.Z, dtype=float)),
            "design_term_of_col": (("random_column",), np.asarray(design.term_of_col, dtype=np.int64)),
            "target_A": (("target", "effect_column"), np.asarray(design.A, dtype=float)),
            "target_pred": (("target", "component"), np.asarray(design.pred, dtype=np.int8))}


def exact_hierarchical(tree, settings):
    """:class:`~ketabayes.inference.exact_hierarchical.ExactHierarchical` of a saved hierarchical result."""
    from ketabayes.inference.exact_hierarchical import ExactHierarchical, GridSettings

    const = tree["constant_data"].to_dataset()
    fixed_priors = [_prior(settings["prior_mu"]), *(_prior(p) for p in settings.get("prior_gamma", {}).values())]
    sd_priors = [_prior(p) for p in settings.get("prior_sd", {}).values()]
    return ExactHierarchical(tree["observed_data"]["y"].values, const["vi"].values, const["design_X"].values,
                             fixed_priors, const["design_Z"].values, const["design_term_of_col"].values,
                             _prior(settings["prior_tau"]), sd_priors, const["target_A"].values,
                             const["target_pred"].values.astype(bool),
                             settings=GridSettings.from_dict(settings["engine_settings"]))


def exact_bivariate(tree, settings):
    """:class:`~ketabayes.inference.exact_bivariate.ExactBivariate` of a saved bivariate result."""
    from ketabayes.inference.exact_bivariate import BivariateGrid, ExactBivariate

    const = tree["constant_data"]
    outcomes = settings["outcomes"]
    fixed = settings.get("fixed", False)
    prior_mu = [_prior(settings["prior_mu"][o]) for o in outcomes]
    prior_tau = None if fixed else [_prior(settings["prior_tau"][o]) for o in outcomes]
    return ExactBivariate(tree["observed_data"]["y"].values, const["vi"].values, const["rho_within"].values,
                          prior_mu, prior_tau, rho_eta=settings.get("rho_eta", 1.0), fixed=fixed,
                          settings=BivariateGrid(**settings.get("engine_settings", {})))
