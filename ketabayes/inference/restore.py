"""Rebuild the exact engines from the arrays a saved result stores in its tree.

Loading a result never rebuilds a model object: the exact engines are deterministic
functions of the data, the priors and (for hierarchical models) the design matrices,
all of which travel in the tree (``observed_data``, ``constant_data``) and its settings.
"""

from __future__ import annotations

import numpy as np

from ketabayes.model.priors import prior_from_dict

__all__ = ["exact_normal_normal", "exact_hierarchical", "exact_binomial", "exact_bivariate",
           "exact_multivariate", "DESIGN_VARS"]

#: ``constant_data`` variables that hold a hierarchical model's design (see :func:`design_constants`)
DESIGN_VARS = ("design_X", "design_Z", "design_term_of_col", "target_A", "target_pred", "target_study")


def _prior(entry):
    if entry is None:
        return None
    return prior_from_dict({k: v for k, v in entry.items() if k != "text"})


def exact_normal_normal(tree, settings):
    """:class:`~ketabayes.inference.exact.ExactNormalNormal` of a saved random-effects result."""
    from ketabayes.inference.exact import ExactNormalNormal, QuadratureSettings

    y = tree["observed_data"]["y"].values
    v = tree["constant_data"]["vi"].values
    qs = QuadratureSettings.from_dict(settings.get("engine_settings", {}))
    return ExactNormalNormal(y, v, _prior(settings["prior_mu"]), _prior(settings.get("prior_tau")),
                             fixed=settings.get("fixed", False), settings=qs)


def design_constants(design) -> dict:
    """``constant_data`` entries that let :func:`exact_hierarchical` run without the model object."""
    return {"design_X": (("study", "coefficient"), np.asarray(design.X, dtype=float)),
            "design_Z": (("study", "random_column"), np.asarray(design.Z, dtype=float)),
            "design_term_of_col": (("random_column",), np.asarray(design.term_of_col, dtype=np.int64)),
            "target_A": (("target", "effect_column"), np.asarray(design.A, dtype=float)),
            "target_pred": (("target", "component"), np.asarray(design.pred, dtype=np.int8)),
            "target_study": (("target",), np.asarray(design.shrink, dtype=np.int64))}


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
                             settings=GridSettings.from_dict(settings["engine_settings"]),
                             shrink=const["target_study"].values if "target_study" in const else None)


def exact_binomial(tree, settings):
    """:class:`~ketabayes.inference.exact_binomial.ExactBinomial` (or its one-grouping, one-moderator, mixed or nested form) of a
    saved binomial-logit result, from the stored counts, priors, design, target definitions and grid settings."""
    from ketabayes.inference.exact_hierarchical import GridSettings

    obs = tree["observed_data"].to_dataset()
    const = tree["constant_data"].to_dataset()
    a, c = obs["ai"].values, obs["ci"].values
    n1, n2 = const["n1i"].values, const["n2i"].values
    A, pred = const["target_A"].values, const["target_pred"].values.astype(bool)
    grid = GridSettings.from_dict(settings["engine_settings"])
    prior_mu, prior_tau, prior_base = (_prior(settings[k]) for k in ("prior_mu", "prior_tau", "prior_baseline"))
    shrink = const["target_study"].values if "target_study" in const else None
    sd = list(settings.get("prior_sd", {}).values())
    gamma = list(settings.get("prior_gamma", {}).values())
    if len(sd) == 2:
        from ketabayes.inference.exact_binomial_nested import ExactBinomialNested

        Z, term = const["design_Z"].values, const["design_term_of_col"].values
        outer, inner = np.argmax(Z[:, term == 0], axis=1), np.argmax(Z[:, term == 1], axis=1)
        parent = np.zeros(int(np.sum(term == 1)), dtype=int)
        parent[inner] = outer
        return ExactBinomialNested(a, n1, c, n2, inner, parent, prior_mu, prior_tau, _prior(sd[0]), _prior(sd[1]),
                                   prior_base, A, pred, settings=grid, shrink=shrink)
    if gamma and sd:
        from ketabayes.inference.exact_binomial_mixed import ExactBinomialMixed

        group = np.argmax(const["design_Z"].values, axis=1)
        return ExactBinomialMixed(a, n1, c, n2, group, const["design_X"].values[:, 1], prior_mu, _prior(gamma[0]),
                                  prior_tau, _prior(sd[0]), prior_base, A, pred, settings=grid, shrink=shrink)
    if gamma:
        from ketabayes.inference.exact_binomial_regression import ExactBinomialRegression

        return ExactBinomialRegression(a, n1, c, n2, const["design_X"].values[:, 1], prior_mu, _prior(gamma[0]),
                                       prior_tau, prior_base, A, pred, settings=grid, shrink=shrink)
    if sd:
        from ketabayes.inference.exact_binomial_grouped import ExactBinomialGrouped

        group = np.argmax(const["design_Z"].values, axis=1)
        return ExactBinomialGrouped(a, n1, c, n2, group, prior_mu, prior_tau, _prior(sd[0]), prior_base, A, pred,
                                    settings=grid, shrink=shrink)
    from ketabayes.inference.exact_binomial import ExactBinomial

    return ExactBinomial(a, n1, c, n2, prior_mu, prior_tau, prior_base, A, pred, settings=grid, shrink=shrink)


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


def exact_multivariate(tree, settings):
    """:class:`~ketabayes.inference.exact_multivariate.ExactMultivariateNormal` of a saved multivariate
    result, from the stored estimates, covariance, trial and coefficient of every estimate, and priors."""
    from ketabayes.inference.exact import QuadratureSettings
    from ketabayes.inference.exact_multivariate import ExactMultivariateNormal

    const = tree["constant_data"].to_dataset()
    trial = [str(s) for s in const["trial"].values]
    return ExactMultivariateNormal(tree["observed_data"]["y"].values, const["S"].values, trial,
                                   const["coef"].values, _prior(settings["prior_mu"]), _prior(settings["prior_tau"]),
                                   rho=float(settings["rho"]), labels=trial,
                                   settings=QuadratureSettings.from_dict(settings.get("engine_settings", {})))
