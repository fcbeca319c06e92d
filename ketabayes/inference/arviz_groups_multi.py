"""``log_likelihood``, ``prior`` and ``log_prior`` groups of the bivariate, multivariate and model-averaged trees.

Conventions as in :mod:`ketabayes.inference.arviz_groups`; what a trial's pointwise likelihood is
(and so what ``az.loo`` leaves out) depends on the model:

* **bivariate** (efficacy and harm): ``log N2(y_i | mu, Sigma + S_i)`` of the trial's *pair* of
  estimates, over the outcomes it reports (a trial reporting one outcome contributes the normal
  density of that one: the bivariate normal's marginal). Leaving a trial out leaves out both of
  its estimates, which are correlated (``S_i``), as a unit.
* **multivariate** (multi-arm contrasts, time windows): ``log N(y_i | X_i beta, S_i + tau^2 K_i)``
  of the trial's whole *vector* of estimates, for the same reason: they share a control arm or
  the same patients. The dimension is ``study`` (trials), not ``estimate``.
* **model averaging**: see :func:`add_bma_groups`.

In all three the trial's own random effects are integrated out, as in the random-effects model.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ketabayes import dims
from ketabayes.inference.arviz_groups import log_prior_density, prior_draws, set_groups

__all__ = ["add_bivariate_groups", "add_multivariate_groups", "add_bma_groups", "lkj2_logpdf"]

_LOG_2PI = math.log(2.0 * math.pi)
OUTCOME = "outcome"


def lkj2_logpdf(r, eta: float):
    """Log density of the correlation of a 2x2 LKJ(eta) matrix: ``(r + 1) / 2 ~ Beta(eta, eta)``."""
    from scipy import stats

    return stats.beta.logpdf((np.asarray(r, dtype=float) + 1.0) / 2.0, eta, eta) - math.log(2.0)


def bivariate_loglik(y, v, rw, mu, tau, rho):
    """``(n, k)`` log densities of each trial's reported outcomes given draws ``mu (n, 2)``, ``tau (n, 2)``, ``rho (n,)``.

    ``y``/``v`` are ``(k, 2)`` with NaN for an unreported outcome; ``rw`` the within-trial correlations.
    """
    y, v = np.asarray(y, dtype=float), np.asarray(v, dtype=float)
    o1, o2 = np.isfinite(y[:, 0]), np.isfinite(y[:, 1])
    y0, v0 = np.where(np.isfinite(y), y, 0.0), np.where(np.isfinite(v), v, 1.0)
    t1, t2, rb = tau[:, :1], tau[:, 1:2], np.asarray(rho, dtype=float).reshape(-1, 1)
    s11, s22 = t1**2 + v0[:, 0], t2**2 + v0[:, 1]
    s12 = rb * t1 * t2 + np.asarray(rw, dtype=float) * np.sqrt(v0[:, 0] * v0[:, 1])
    d1, d2 = y0[:, 0] - mu[:, :1], y0[:, 1] - mu[:, 1:2]
    det = s11 * s22 - s12**2
    both = -0.5 * (np.log(det) + (s22 * d1**2 - 2.0 * s12 * d1 * d2 + s11 * d2**2) / det) - _LOG_2PI
    one1 = -0.5 * (np.log(s11) + d1**2 / s11 + _LOG_2PI)
    one2 = -0.5 * (np.log(s22) + d2**2 / s22 + _LOG_2PI)
    return np.where(o1 & o2, both, np.where(o1, one1, one2))


def add_bivariate_groups(tree: xr.DataTree, y, v, rw, prior_mu, prior_tau, rho_eta: float, *, seed: int,
                         outcomes) -> xr.DataTree:
    """Groups of a bivariate fit (``prior_tau=None``: fixed effect, no between-trial parameters)."""
    post = tree["posterior"].to_dataset()
    shape = (post.sizes[dims.CHAIN], post.sizes[dims.DRAW])
    n = shape[0] * shape[1]
    sd = (dims.CHAIN, dims.DRAW)
    fixed = prior_tau is None
    mu = post["mu"].values.reshape(n, 2)
    tau = post["tau"].values.reshape(n, 2) if not fixed else np.zeros((n, 2))
    rho = post["rho_between"].values.reshape(n) if not fixed else np.zeros(n)
    k = np.asarray(y).shape[0]
    ll = {"y": ((*sd, dims.STUDY), bivariate_loglik(y, v, rw, mu, tau, rho).reshape(*shape, k))}
    rng = np.random.default_rng([int(seed), 2])
    prior = {}
    d_mu = [prior_draws(p, n, rng) for p in prior_mu]
    have_mu = all(d is not None for d in d_mu)
    if have_mu:
        prior["mu"] = ((*sd, OUTCOME), np.stack(d_mu, axis=1).reshape(*shape, 2))
    if not fixed:
        d_tau = [prior_draws(p, n, rng) for p in prior_tau]
        d_rho = 2.0 * rng.beta(rho_eta, rho_eta, size=n) - 1.0
        prior["tau"] = ((*sd, OUTCOME), np.stack(d_tau, axis=1).reshape(*shape, 2))
        prior["rho_between"] = (sd, d_rho.reshape(shape))
        if have_mu:
            z1, z2 = rng.standard_normal((2, n))
            new = np.stack([d_mu[0] + d_tau[0] * z1,
                            d_mu[1] + d_tau[1] * (d_rho * z1 + np.sqrt(1.0 - d_rho**2) * z2)], axis=1)
            prior["theta_new"] = ((*sd, OUTCOME), new.reshape(*shape, 2))
    elif have_mu:
        prior["theta_new"] = prior["mu"]
    vcol = [np.asarray(v, dtype=float)[:, j] for j in (0, 1)]
    lp = {"mu": ((*sd, OUTCOME), np.stack([log_prior_density(p, mu[:, j]) for j, p in enumerate(prior_mu)],
                                          axis=1).reshape(*shape, 2))}
    if not fixed:
        lp["tau"] = ((*sd, OUTCOME), np.stack([log_prior_density(p, tau[:, j], vcol[j][np.isfinite(vcol[j])])
                                               for j, p in enumerate(prior_tau)], axis=1).reshape(*shape, 2))
        lp["rho_between"] = (sd, lkj2_logpdf(rho, rho_eta).reshape(shape))
    coords = {dims.STUDY: [str(s) for s in tree["observed_data"][dims.STUDY].values], OUTCOME: list(outcomes)}
    return set_groups(tree, log_likelihood=ll, prior=prior, log_prior=lp, coords=coords)


def _trial_blocks(trials):
    """Trials in order of first appearance and the indices of each one's estimates."""
    labels = list(dict.fromkeys(str(t) for t in trials))
    idx = {t: [] for t in labels}
    for i, t in enumerate(trials):
        idx[str(t)].append(i)
    return labels, [np.asarray(idx[t]) for t in labels]


def multivariate_loglik(y, S, trials, coef, rho, beta, tau):
    """``(n, trials)`` log densities of each trial's vector: ``N(y_i | X_i beta, S_i + tau^2 K_i)`` at the draws."""
    y, S = np.asarray(y, dtype=float), np.asarray(S, dtype=float)
    coef = np.asarray(coef, dtype=int)
    labels, blocks = _trial_blocks(trials)
    out = np.empty((beta.shape[0], len(blocks)))
    t2 = np.asarray(tau, dtype=float)[:, None, None] ** 2
    for b, idx in enumerate(blocks):
        d = idx.size
        K = (1.0 - rho) * np.eye(d) + rho * np.ones((d, d))
        V = S[np.ix_(idx, idx)][None] + t2 * K[None]
        r = y[idx][None, :] - beta[:, coef[idx]]
        L = np.linalg.cholesky(V)
        z = np.linalg.solve(L, r[..., None])[..., 0]
        out[:, b] = -0.5 * (d * _LOG_2PI + (z**2).sum(-1)) - np.log(np.diagonal(L, axis1=-2, axis2=-1)).sum(-1)
    return labels, out


def add_multivariate_groups(tree: xr.DataTree, y, S, trials, coef, rho: float, prior_beta, prior_tau, *,
                            seed: int) -> xr.DataTree:
    """Groups of a multivariate fit (``beta[coefficient]``, ``tau``, ``theta[estimate]``, ``theta_new[coefficient]``)."""
    post = tree["posterior"].to_dataset()
    shape = (post.sizes[dims.CHAIN], post.sizes[dims.DRAW])
    n = shape[0] * shape[1]
    sd = (dims.CHAIN, dims.DRAW)
    p = post.sizes["coefficient"]
    beta = post["beta"].values.reshape(n, p)
    tau = post["tau"].values.reshape(n)
    labels, ll = multivariate_loglik(y, S, trials, coef, rho, beta, tau)
    rng = np.random.default_rng([int(seed), 2])
    prior = {}
    d_beta = [prior_draws(prior_beta, n, rng) for _ in range(p)]
    d_tau = prior_draws(prior_tau, n, rng)
    if d_tau is not None:
        prior["tau"] = (sd, d_tau.reshape(shape))
    if all(d is not None for d in d_beta):
        b = np.stack(d_beta, axis=1)
        prior["beta"] = ((*sd, "coefficient"), b.reshape(*shape, p))
        if d_tau is not None:
            Kp = (1.0 - rho) * np.eye(p) + rho * np.ones((p, p))
            new = b + d_tau[:, None] * (rng.standard_normal((n, p)) @ np.linalg.cholesky(Kp).T)
            prior["theta_new"] = ((*sd, "coefficient"), new.reshape(*shape, p))
            coef = np.asarray(coef, dtype=int)
            theta = b[:, coef].copy()
            for idx in _trial_blocks(trials)[1]:
                d = idx.size
                K = (1.0 - rho) * np.eye(d) + rho * np.ones((d, d))
                theta[:, idx] += d_tau[:, None] * (rng.standard_normal((n, d)) @ np.linalg.cholesky(K).T)
            prior["theta"] = ((*sd, "estimate"), theta.reshape(*shape, -1))
    v = np.diag(np.asarray(S, dtype=float))
    lp = {"beta": ((*sd, "coefficient"), log_prior_density(prior_beta, beta).reshape(*shape, p)),
          "tau": (sd, log_prior_density(prior_tau, tau, v).reshape(shape))}
    coords = {dims.STUDY: labels, "coefficient": list(post["coefficient"].values),
              "estimate": list(post["estimate"].values)}
    return set_groups(tree, log_likelihood={"y": ((*sd, dims.STUDY), ll.reshape(*shape, -1))}, prior=prior,
                      log_prior=lp, coords=coords)


def add_bma_groups(tree: xr.DataTree, ens, *, seed: int, draws: int, chains: int) -> xr.DataTree:
    """Posterior draws and the ArviZ groups of a model-averaged fit (see :mod:`ketabayes.inference.bma_draws`).

    ``posterior``: ``chains x draws`` joint draws of ``model`` (index into the ``model`` coordinate of
    ``constant_data``), ``mu``, ``tau`` and ``theta_new`` (a new, bias-free trial's true effect);
    ``log_likelihood["y"]``: each trial's likelihood under the drawn model (the model-averaged
    leave-one-trial-out predictive in ``az.loo``); ``prior``: the same variables drawn from the
    ensemble's prior; ``log_prior``: ``model`` (log prior probability), ``mu``, ``tau`` and ``bias``.
    """
    from ketabayes.inference import bma_draws

    shape = (int(chains), int(draws))
    n = shape[0] * shape[1]
    sd = (dims.CHAIN, dims.DRAW)
    rng = np.random.default_rng([int(seed), 11])
    d = bma_draws.posterior_draws(ens, n, rng)
    post = {"model": (sd, d["model"].reshape(shape)), dims.MU: (sd, d["mu"].reshape(shape)),
            dims.TAU: (sd, d["tau"].reshape(shape)), dims.THETA_NEW: (sd, d["theta_new"].reshape(shape))}
    tree["posterior"] = xr.DataTree(xr.Dataset(post, coords={dims.CHAIN: np.arange(shape[0]),
                                                             dims.DRAW: np.arange(shape[1])}))
    ll = bma_draws.pointwise_loglik(ens, d)
    p = bma_draws.prior_draws(ens, n, np.random.default_rng([int(seed), 12]))
    prior = {"model": (sd, p["model"].reshape(shape)), dims.MU: (sd, p["mu"].reshape(shape)),
             dims.TAU: (sd, p["tau"].reshape(shape)), dims.THETA_NEW: (sd, p["theta_new"].reshape(shape))}
    lp = {k: (sd, val.reshape(shape)) for k, val in bma_draws.log_prior(ens, d).items()}
    coords = {dims.STUDY: [str(x) for x in tree["observed_data"][dims.STUDY].values]}
    return set_groups(tree, log_likelihood={"y": ((*sd, dims.STUDY), ll.reshape(*shape, -1))}, prior=prior,
                      log_prior=lp, coords=coords)
