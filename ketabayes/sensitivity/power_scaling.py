"""Power-scaling prior and likelihood sensitivity of NUTS variants (no refit).

Pareto-smoothed importance weights from ArviZ (Kallioinen et al. 2024,
doi:10.1007/s11222-023-10366-5) and the local diagnostic :func:`arviz.psense`.
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes import dims
from ketabayes.sensitivity.analyses import _parse_target
from ketabayes.sensitivity.spec import Variant

__all__ = ["PARETO_K_THRESHOLD"]

#: Pareto k-hat above which power-scaled (importance-weighted) estimates are unreliable (Vehtari et al. 2024)
PARETO_K_THRESHOLD = 0.7


def _target_var(target: str, studies):
    """Posterior variable and coordinates of a target (``(None, None)`` if unknown)."""
    var, study = _parse_target(target, studies)
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


def _power_scaling(fit, variant: Variant, alphas, targets):
    """Power-scaled marginals (PSIS weights from ArviZ) and psense values for a NUTS fit."""
    import arviz as az
    import pymc as pm

    from ketabayes._compat import ieee_pytensor
    from ketabayes.inference.nuts import build_normal_normal

    ieee_pytensor()
    tree = fit.tree
    if "log_prior" not in tree.children or "log_likelihood" not in tree.children:
        model = getattr(fit, "model", None)
        if model is None:
            y = tree["observed_data"]["y"].values
            v = tree["constant_data"]["vi"].values
            model = build_normal_normal(y, v, fit.studies, variant.prior_mu, variant.prior_tau, fixed=variant.fixed)
        # the standard-normal auxiliaries z, z_new only generate theta from its exact conditional: they
        # are not part of the prior being assessed
        prior_vars = [rv.name for rv in model.free_RVs if rv.name not in ("z", "z_new")]
        post_vars = [v for v in tree["posterior"].data_vars if v in {rv.name for rv in model.free_RVs}
                     or v in {d.name for d in model.deterministics}]
        base = tree.copy()
        base["posterior"] = tree["posterior"].to_dataset()[post_vars]
        pm.stats.compute_log_likelihood(base, model=model, progressbar=False, extend_inferencedata=True)
        pm.stats.compute_log_prior(base, var_names=prior_vars, model=model, progressbar=False,
                                   extend_inferencedata=True)
        tree["log_likelihood"] = base["log_likelihood"]
        tree["log_prior"] = base["log_prior"]
    out = {}
    sample_dims = [dims.CHAIN, dims.DRAW]
    for component, group in (("prior", "log_prior"), ("likelihood", "log_likelihood")):
        lp = tree[group].to_dataset().to_stacked_array("_latent", sample_dims=sample_dims).sum("_latent")
        for a, val in _power_weights(lp, alphas, sample_dims).items():
            out[(component, a)] = val
    sens = {}
    for t in targets:
        var, coords = _target_var(t, fit.studies)
        if var is None:
            continue
        vals = {}
        for component in ("prior", "likelihood"):
            ps = az.psense(tree, var_names=[var], group=component, coords=coords)
            vals[component] = float(np.asarray(ps[var].values).ravel()[0])
        sens[t] = vals
    return out, sens, tree


def _target_draws(tree, target, studies):
    var, coords = _target_var(target, studies)
    da = tree["posterior"][var]
    if coords:
        da = da.sel(coords)
    return da.values.ravel()


