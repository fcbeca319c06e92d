"""The ArviZ groups a result tree carries besides the posterior: ``log_likelihood``, ``prior``, ``log_prior``.

With them ``arviz.loo``, ``arviz.psense`` and ``arviz.plot_prior_posterior`` work on
``result.tree`` unchanged, for the exact engine and NUTS alike:

* ``log_likelihood["y"][chain, draw, study]``: each trial's likelihood given the draw, with the
  trial's own random effect integrated out -- for the normal-normal model
  ``log N(y_i | mu, v_i + tau^2)``, for the hierarchical model ``log N(y_i | eta_i, v_i + tau^2)``
  with the linear predictor ``eta_i`` (``mu``, the trial's group effects and moderators) at the
  draw. Leave-one-trial-out cross-validation (``az.loo``) then predicts a *new trial's estimate*
  of the same groups. A likelihood conditional on the trial's own effect ``theta_i`` would ask
  about re-measuring the same trial and, since ``theta_i`` is informed mostly by ``y_i``, gives
  high Pareto k in PSIS-LOO; the marginal one is what both engines condition on.
* ``prior``: independent draws from the prior of every posterior variable whose prior is proper
  (scale parameters and means by numerical inversion of each prior's CDF,
  :func:`prior_draws`; trial, group and new-trial effects from the model given those; the
  standard-normal raw effects ``z...`` of a non-centred NUTS fit), so
  ``az.plot_prior_posterior`` compares like with like. A variable with an improper prior
  (``flat()``) and everything depending on it has no prior draws (plot it with ``var_names=``).
* ``log_prior``: the log prior density of each parameter at the posterior draws (improper priors:
  their unnormalised log density), which ``az.psense`` power-scales.

The bivariate, multivariate and model-averaged results get the same groups from
:mod:`ketabayes.inference.arviz_groups_multi`.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ketabayes import dims

__all__ = ["add_groups", "add_normal_normal_groups", "add_hierarchical_groups", "prior_draws", "log_prior_density",
           "set_groups"]


def prior_draws(prior, n: int, rng: np.random.Generator, *, nodes: int = 20001) -> np.ndarray | None:
    """``n`` draws from a proper prior by inverting its CDF, or ``None`` for an improper prior.

    The CDF is the cumulative trapezoid integral of the density on a dense grid over the
    region holding all but ~1e-12 of the mass -- on ``log(x)`` for priors on ``(0, inf)``,
    where even heavy-tailed priors (half-Cauchy, log-t on tau^2) are well resolved -- and is
    inverted by linear interpolation. Vectorised: milliseconds for any prior family.
    """
    if prior is None or not getattr(prior, "proper", True):
        return None
    from scipy.integrate import cumulative_trapezoid

    lo, hi = prior.bounds()
    log_scale = lo == 0.0

    def logpdf(u):
        with np.errstate(all="ignore"):
            if log_scale:
                return np.asarray(prior.logpdf(np.exp(u)), dtype=float) + u
            return np.asarray(prior.logpdf(u), dtype=float)

    a, b = (-700.0, math.log(hi) if math.isfinite(hi) else 700.0) if log_scale else (
        lo if math.isfinite(lo) else -1e300, hi if math.isfinite(hi) else 1e300)
    # locate the mass on a coarse grid, then integrate densely over where it is
    coarse = np.linspace(a, b, 20001) if log_scale else np.concatenate(
        [-np.logspace(300, -300, 6001), [0.0], np.logspace(-300, 300, 6001)])
    coarse = coarse[(coarse >= a) & (coarse <= b)]
    lp = logpdf(coarse)
    keep = np.isfinite(lp) & (lp > np.nanmax(lp[np.isfinite(lp)]) - 60.0)
    idx = np.flatnonzero(keep)
    u_lo, u_hi = coarse[max(idx[0] - 1, 0)], coarse[min(idx[-1] + 1, coarse.size - 1)]
    u = np.linspace(u_lo, u_hi, nodes)
    lp = logpdf(u)
    dens = np.exp(np.where(np.isfinite(lp), lp - np.max(lp[np.isfinite(lp)]), -np.inf))
    cdf = cumulative_trapezoid(dens, u, initial=0.0)
    cdf /= cdf[-1]
    x = np.interp(rng.random(n), cdf, u)
    return np.exp(x) if log_scale else x


def log_prior_density(prior, x, vi=None) -> np.ndarray | None:
    """Log prior density at ``x`` (data-dependent reference priors resolved with ``vi``); ``None`` without a prior."""
    if prior is None:
        return None
    if vi is not None:
        from ketabayes.model.priors_extra import resolve_prior

        prior = resolve_prior(prior, vi)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.asarray(prior.logpdf(np.asarray(x, dtype=float)), dtype=float)


def set_groups(tree: xr.DataTree, *, log_likelihood: dict | None = None, prior: dict | None = None,
               log_prior: dict | None = None, coords: dict | None = None) -> xr.DataTree:
    """Put the non-empty groups into the tree (each ``{name: (dims, values)}``, sample dims ``chain, draw``)."""
    post = tree["posterior"]
    base = {dims.CHAIN: post[dims.CHAIN].values, dims.DRAW: post[dims.DRAW].values}
    for group, data in (("log_likelihood", log_likelihood), ("prior", prior), ("log_prior", log_prior)):
        if not data:
            continue
        used = {d for dd, _ in data.values() for d in dd}
        cc = {k: v for k, v in {**base, **(coords or {})}.items() if k in used}
        tree[group] = xr.DataTree(xr.Dataset(data, coords=cc))
    return tree


def _raw_normal_draws(post, prior: dict, rng: np.random.Generator) -> None:
    """Prior draws of the standard-normal raw effects of a non-centred NUTS parameterisation (``z``, ``z_<group>``)."""
    for name, da in post.data_vars.items():
        if name not in prior and (name == "z" or str(name).startswith("z_")):
            prior[name] = (da.dims, rng.standard_normal(da.shape))


def _normal_logpdf(y, mean, var):
    return -0.5 * (np.log(2.0 * math.pi * var) + np.square(y - mean) / var)


def add_normal_normal_groups(tree: xr.DataTree, yi, vi, studies, prior_mu, prior_tau, *, seed: int,
                             log_likelihood: bool = True) -> xr.DataTree:
    """``log_likelihood`` (unless ``log_likelihood=False``: large k), ``prior`` and ``log_prior`` groups of a
    normal-normal fit (``prior_tau=None``: fixed effect)."""
    post = tree["posterior"].to_dataset()
    shape = (post.sizes[dims.CHAIN], post.sizes[dims.DRAW])
    sd = (dims.CHAIN, dims.DRAW)
    y, v = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    studies = list(studies)
    fixed = prior_tau is None
    mu = post[dims.MU].values
    tau = post[dims.TAU].values if (not fixed and dims.TAU in post) else np.zeros(shape)
    ll = None
    if log_likelihood:
        ll = {"y": ((*sd, dims.STUDY), _normal_logpdf(y, mu[..., None], v + np.square(tau)[..., None]))}
    rng = np.random.default_rng([int(seed), 2])
    n = shape[0] * shape[1]
    prior = {}
    d_mu = prior_draws(prior_mu, n, rng)
    d_tau = np.zeros(n) if fixed else prior_draws(prior_tau, n, rng)
    if d_mu is not None:
        prior[dims.MU] = (sd, d_mu.reshape(shape))
    if d_tau is not None and not fixed:
        prior[dims.TAU] = (sd, d_tau.reshape(shape))
    if d_mu is not None and d_tau is not None:
        if dims.THETA in post:
            theta = d_mu[:, None] + d_tau[:, None] * rng.standard_normal((n, y.size))
            prior[dims.THETA] = ((*sd, dims.STUDY), theta.reshape(*shape, y.size))
        prior[dims.THETA_NEW] = (sd, (d_mu + d_tau * rng.standard_normal(n)).reshape(shape))
    _raw_normal_draws(post, prior, rng)
    lp = {dims.MU: (sd, log_prior_density(prior_mu, mu))}
    if not fixed:
        lp[dims.TAU] = (sd, log_prior_density(prior_tau, tau, v))
    coords = {dims.STUDY: studies, **{d: post[d].values for name in prior for d in prior[name][0] if d in post.coords}}
    return set_groups(tree, log_likelihood=ll, prior=prior, log_prior=lp, coords=coords)


def add_hierarchical_groups(tree: xr.DataTree, yi, vi, studies, design, priors: dict, prior_gamma: dict, *,
                            seed: int) -> xr.DataTree:
    """``log_likelihood``, ``prior`` and ``log_prior`` groups of a normal hierarchical fit.

    The pointwise log-likelihood is each trial's ``log N(y_i | eta_i, v_i + tau^2)`` at the draws
    of ``mu``, the moderator slopes ``gamma`` and the group effects (``eta_i = x_i' b + z_i' u``,
    the design matrices of ``design``), the trial's own effect integrated out as in the
    random-effects model. ``priors`` maps ``mu``, ``tau`` and ``sd_<group>`` to their priors,
    ``prior_gamma`` each moderator to the prior of its slope. Prior draws of the group effects
    are ``N(0, sd^2)`` given the drawn SDs, those of ``effect[target]`` the targets' definitions
    (``A (b, u)`` plus the prediction terms; a trial's effect adds ``N(0, tau^2)``).
    """
    post = tree["posterior"].to_dataset()
    shape = (post.sizes[dims.CHAIN], post.sizes[dims.DRAW])
    n = shape[0] * shape[1]
    sd = (dims.CHAIN, dims.DRAW)
    y, v = np.asarray(yi, dtype=float), np.asarray(vi, dtype=float)
    mods = list(design.moderators)
    # ---- log-likelihood: eta_i = x_i' b + z_i' u at the draws
    b = [post[dims.MU].values.reshape(n, 1)]
    if mods:
        b.append(post["gamma"].values.reshape(n, -1))
    u = [post[f"{t.dim}_effect"].values.reshape(n, -1) for t in design.terms]
    coef = np.concatenate(b + u, axis=1)
    W = np.concatenate([design.X, design.Z], axis=1)
    eta = coef @ W.T
    tau = post[dims.TAU].values.reshape(n, 1)
    ll = {"y": ((*sd, dims.STUDY), _normal_logpdf(y, eta, v + tau**2).reshape(*shape, y.size))}
    # ---- prior draws
    rng = np.random.default_rng([int(seed), 2])
    prior = {}
    draws = {name: prior_draws(p, n, rng) for name, p in priors.items()}
    for name, d in draws.items():
        if d is not None:
            prior[name] = (sd, d.reshape(shape))
    g_draws = [prior_draws(prior_gamma[m], n, rng) for m in mods]
    if mods and all(g is not None for g in g_draws):
        prior["gamma"] = ((*sd, "moderator"), np.stack(g_draws, axis=1).reshape(*shape, len(mods)))
    u_draws = []
    for t in design.terms:
        s = draws.get(f"sd_{t.dim}")
        if s is None:
            u_draws = None
            break
        uu = s[:, None] * rng.standard_normal((n, len(t.levels)))
        prior[f"{t.dim}_effect"] = ((*sd, t.dim), uu.reshape(*shape, len(t.levels)))
        u_draws.append(uu)
    phi = [draws.get(c) for c in design.components]
    if (draws.get(dims.MU) is not None and (not mods or prior.get("gamma") is not None) and u_draws is not None
            and all(p is not None for p in phi) and "effect" in post):
        bb = [draws[dims.MU][:, None]] + ([np.stack(g_draws, axis=1)] if mods else [])
        full = np.concatenate(bb + u_draws, axis=1)
        ph = np.stack(phi, axis=1)
        eff = full @ design.A.T + np.sqrt(ph**2 @ design.pred.T.astype(float)) * rng.standard_normal(
            (n, design.A.shape[0]))
        rows = np.flatnonzero(design.shrink >= 0)
        eff[:, rows] += ph[:, :1] * rng.standard_normal((n, rows.size))  # a trial's own effect: + e_i
        prior["effect"] = ((*sd, dims.TARGET), eff.reshape(*shape, -1))
    _raw_normal_draws(post, prior, rng)
    # ---- log prior at the posterior draws
    lp = {}
    for name, p in priors.items():
        if name in post:
            lp[name] = (sd, log_prior_density(p, post[name].values, v))
    if mods:
        g = post["gamma"].values
        lp["gamma"] = ((*sd, "moderator"), np.stack([log_prior_density(prior_gamma[m], g[..., j])
                                                     for j, m in enumerate(mods)], axis=-1))
    coords = {dims.STUDY: list(studies), dims.TARGET: [t.name for t in design.targets], "moderator": mods,
              **{t.dim: list(t.levels) for t in design.terms},
              **{d: post[d].values for name in prior for d in prior[name][0] if d in post.coords}}
    return set_groups(tree, log_likelihood=ll, prior=prior, log_prior=lp, coords=coords)


def add_groups(tree: xr.DataTree, log_lik, studies, priors: dict, *, seed: int) -> xr.DataTree:
    """``log_likelihood`` (pointwise values ``log_lik (chain, draw, study)``), ``prior`` (draws of each proper prior
    in ``priors``, posterior variable name -> prior) and ``log_prior`` (each prior's log density at the
    posterior draws) groups -- for models whose pointwise likelihood the caller computes (binomial)."""
    post = tree["posterior"].to_dataset()
    sd = (dims.CHAIN, dims.DRAW)
    rng = np.random.default_rng([int(seed), 2])
    shape = (post.sizes[dims.CHAIN], post.sizes[dims.DRAW])
    prior, lp = {}, {}
    for name, p in priors.items():
        d = prior_draws(p, shape[0] * shape[1], rng)
        if d is not None:
            prior[name] = (sd, d.reshape(shape))
        if name in post and p is not None:
            lp[name] = (sd, log_prior_density(p, post[name].values))
    return set_groups(tree, log_likelihood={"y": ((*sd, dims.STUDY), np.asarray(log_lik, dtype=float))},
                      prior=prior, log_prior=lp, coords={dims.STUDY: [str(s) for s in studies]})
