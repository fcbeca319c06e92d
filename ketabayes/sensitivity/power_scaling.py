"""Power-scaling prior and likelihood sensitivity of NUTS variants (no refit).

Pareto-smoothed importance weights from ArviZ (Kallioinen et al. 2024,
doi:10.1007/s11222-023-10366-5) and the local diagnostic :func:`arviz.psense`.
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.sensitivity.analyses import _parse_target
from ketabayes.sensitivity.spec import Variant

__all__ = ["PARETO_K_THRESHOLD"]

#: Pareto k-hat above which power-scaled (importance-weighted) estimates are unreliable (Vehtari et al. 2024)
PARETO_K_THRESHOLD = 0.7


def _target_var(target: str, fit):
    """Posterior variable and coordinates of a target in a fit's tree (``(None, None)`` if unknown).

    Normal-normal trees hold ``mu``, ``theta_new`` and ``theta[study]``; hierarchical and binomial trees
    hold every target in ``effect[target]``.
    """
    post = fit.tree["posterior"]
    if "effect" in post.data_vars and dims.TARGET in post["effect"].dims:
        key = target.removeprefix("study=")
        return ("effect", {dims.TARGET: key}) if key in {str(t) for t in post[dims.TARGET].values} else (None, None)
    var, study = _parse_target(target, fit.studies)
    return var, ({dims.STUDY: study} if var == dims.THETA else None)


def _power_weights(lp, alphas, sample_dims) -> dict[float, tuple[np.ndarray, float, float]]:
    """Power-scaling importance weights of one component's log density ``lp`` (a DataArray over the draws).

    For each ``alpha``: the Pareto-smoothed normalised weights (ArviZ's
    ``power_scale_lw``), their effective sample size ``1 / sum(w**2)`` and the
    Pareto k-hat of the raw weights ``exp((alpha - 1) * lp)`` (ArviZ's
    ``pareto_khat``, right tail; above :data:`PARETO_K_THRESHOLD` the estimates
    are unreliable).
    """
    out = {}
    for a in alphas:
        lw = lp.azstats.power_scale_lw(alpha=float(a), dim=sample_dims).values.ravel()
        w = np.exp(lw - lw.max())
        w /= w.sum()
        raw = (float(a) - 1.0) * lp
        if float(a) == 1.0 or float(np.ptp(raw.values)) == 0.0:
            khat = math.nan  # constant weights: nothing to diagnose
        else:
            # k-hat of the right tail of the raw weights exp((alpha - 1) lp), scaled to max 1. (Not
            # pareto_khat(log_weights=True): arviz-stats 1.3 fits that to the log weights themselves.)
            khat = float((raw - raw.max()).pipe(np.exp).azstats.pareto_khat(sample_dims=sample_dims,
                                                                             tail="right").values)
        out[float(a)] = (w, float(1.0 / np.sum(w * w)), khat)
    return out


def _log_prior(fit, variant: Variant):
    """Log prior density of the top-level parameters at every posterior draw, ``(chain, draw)``.

    The parameters whose prior is power-scaled: ``mu``, ``tau`` and the SD of every grouping
    (``sd_<grouping>``, priors from the fit's settings); their densities are the priors' own
    ``logpdf`` on the parameter scale. Study-level structure (trial effects, baselines) belongs to the
    model, not to the prior being assessed.
    """
    import xarray as xr

    from ketabayes.model._fit_common import prior_from_entry

    post = fit.tree["posterior"]
    settings = getattr(fit, "settings", None) or {}
    terms = [(post[dims.MU], variant.prior_mu), (post.get(dims.TAU), None if variant.fixed else variant.prior_tau)]
    sd_vars = [v for v in post.data_vars if str(v).startswith("sd_")]
    for name, spec in settings.get("prior_sd", {}).items():     # keyed by grouping; "interaction": sd_a_x_b
        match = [v for v in sd_vars if v == f"sd_{name}" or (name == "interaction" and "_x_" in str(v))]
        if match:
            terms.append((post[match[0]], prior_from_entry(spec)))
    for name, spec in settings.get("prior_gamma", {}).items():  # moderator slopes
        if "gamma" in post.data_vars and name in post["gamma"].coords.get("moderator", []):
            terms.append((post["gamma"].sel(moderator=name, drop=True), prior_from_entry(spec)))
    total = None
    for da, prior in terms:
        if da is None or prior is None:
            continue
        lp = xr.apply_ufunc(lambda x, p=prior: np.asarray(p.logpdf(x), dtype=float), da)
        total = lp if total is None else total + lp
    if total is None:
        raise KetabayesError("power-scaling: no parameter with a prior (mu, tau, sd_*) in the posterior")
    return total.rename("log_prior")


def _power_scaling(fit, variant: Variant, alphas, targets):
    """Power-scaled marginals (PSIS weights from ArviZ) and psense values for a NUTS fit.

    The likelihood is the tree's pointwise ``log_likelihood`` group (every model's NUTS tree has one:
    normal-normal, hierarchical, binomial), the prior :func:`_log_prior`; both at the same draws as the
    targets, so no PyMC model is needed.
    """
    import arviz as az
    import xarray as xr

    tree = fit.tree.copy()
    if "log_likelihood" not in tree.children:
        raise KetabayesError("power-scaling needs the pointwise log-likelihood of the fit (a log_likelihood group "
                             "in its tree); this analysis does not store one")
    if "log_prior" not in tree.children:
        tree["log_prior"] = xr.DataTree(xr.Dataset({"log_prior": _log_prior(fit, variant)}))
    out = {}
    sample_dims = [dims.CHAIN, dims.DRAW]
    for component, group in (("prior", "log_prior"), ("likelihood", "log_likelihood")):
        lp = tree[group].to_dataset().to_stacked_array("_latent", sample_dims=sample_dims).sum("_latent")
        for a, val in _power_weights(lp, alphas, sample_dims).items():
            out[(component, a)] = val
    sens = {}
    for t in targets:
        var, coords = _target_var(t, fit)
        if var is None:
            continue
        vals = {}
        for component in ("prior", "likelihood"):
            ps = az.psense(tree, var_names=[var], group=component, coords=coords)
            vals[component] = float(np.asarray(ps[var].values).ravel()[0])
        sens[t] = vals
    return out, sens, tree


def _target_draws(fit, target):
    """A target's posterior draws in the tree's (chain, draw) order -- the order of the importance weights."""
    var, coords = _target_var(target, fit)
    da = fit.tree["posterior"][var]
    if coords:
        da = da.sel(coords)
    return da.values.ravel()


