"""Joint draws from a model-averaged ensemble, and what ArviZ needs of them.

The ensemble is one model with a discrete model indicator ``M``: its posterior is
``p(M, theta_M | y) = p(M | y) p(theta_M | y, M)``. :func:`posterior_draws` draws from it (the
model by its posterior probability, then the model's parameters: by quadrature node and the
conditional of ``mu``, or from the stored SMC particles of a selection model);
:func:`prior_draws` from the same ensemble's prior. On these joint draws

* :func:`pointwise_loglik` is each trial's ``log p(y_i | theta_M, M)`` under the drawn model
  (normal, PET/PEESE/RoB shift, or weighted normal for selection): PSIS-LOO (``az.loo``) on it
  estimates the leave-one-trial-out predictive density of the *model-averaged* posterior
  predictive, ``log sum_M p(M | y_-i) p(y_i | y_-i, M)`` -- the importance weights carry the
  change in model probabilities when trial ``i`` is left out, which a per-model LOO would miss.
  A high Pareto k then flags a trial on which the model probabilities hinge;
* :func:`log_prior` is ``log P(M)`` (variable ``model``) and the within-model log prior densities of
  ``mu``, ``tau`` and the bias parameter at the draws (0 where the model fixes the parameter; the
  Dirichlet weights of a selection model are uniform, so constant), which ``az.psense`` power-scales
  jointly; ``group_var_names=["model"]`` scales only the prior model probabilities.
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS, weight_function_loglik

__all__ = ["can_draw", "posterior_draws", "prior_draws", "pointwise_loglik", "log_prior"]


def can_draw(ens) -> bool:
    """Whether every model with posterior probability has joint draws (quadrature nodes or SMC particles)."""
    return all(f.quad is not None or f.smc is not None or getattr(f, "points", None) is not None
               for f, q in zip(ens.fits, ens.post_probs) if q > 0)


def _model_draws(fit, n: int, rng: np.random.Generator) -> dict:
    if fit.quad is not None:
        d = fit.quad.sample(n, rng)
        d["omega"] = None
        return d
    if getattr(fit, "points", None) is not None:   # importance sampling: resampled joint points
        p = fit.points
        idx = rng.integers(0, p["omega"].shape[0], n)
        return {"mu": p["mu"][idx], "tau": p["tau"][idx], "beta": np.zeros(n), "omega": p["omega"][idx]}
    s = fit.smc
    if s is None:
        raise NotImplementedError(f"{fit.spec.label}: no joint posterior draws for this engine")
    size = (s.mu if s.mu is not None else s.tau if s.tau is not None else s.omega).shape[0]
    idx = rng.integers(0, size, n)
    return {"mu": s.mu[idx] if s.mu is not None else np.zeros(n), "tau": s.tau[idx] if s.tau is not None
            else np.zeros(n), "beta": np.zeros(n), "omega": s.omega[idx]}


def _assemble(ens, counts, draw_one, rng):
    n = int(np.sum(counts))
    out = {"model": np.empty(n, dtype=np.int64), "mu": np.empty(n), "tau": np.empty(n), "beta": np.zeros(n)}
    omega = {}
    start = 0
    for k, c in enumerate(counts):
        if c == 0:
            continue
        d = draw_one(k, int(c))
        sl = slice(start, start + c)
        out["model"][sl] = k
        for key in ("mu", "tau", "beta"):
            out[key][sl] = d[key]
        if d.get("omega") is not None:
            omega[k] = (sl, d["omega"])
        start += c
    order = rng.permutation(n)
    inv = np.argsort(order)
    out = {key: val[order] for key, val in out.items()}
    out["omega"] = {k: (inv[np.arange(sl.start, sl.stop)], om) for k, (sl, om) in omega.items()}
    out["theta_new"] = out["mu"] + out["tau"] * rng.standard_normal(n)
    return out


def posterior_draws(ens, n: int, rng: np.random.Generator) -> dict:
    """``n`` joint draws: ``model`` (index into ``ens.fits``), ``mu``, ``tau``, ``beta`` (0 without a slope),
    ``theta_new = mu + tau z`` and ``omega`` (``{model: (positions, weights)}`` for selection models)."""
    counts = rng.multinomial(n, ens.post_probs / ens.post_probs.sum())
    return _assemble(ens, counts, lambda k, c: _model_draws(ens.fits[k], c, rng), rng)


def _prior_mu(prior, mu_sign, n, rng):
    from ketabayes.inference.arviz_groups import prior_draws as draws

    if not mu_sign:
        return draws(prior, n, rng)
    from scipy import stats

    a, b = (0.0 - prior.mu) / prior.sigma, np.inf
    if mu_sign < 0:
        a, b = -np.inf, (0.0 - prior.mu) / prior.sigma
    return stats.truncnorm.rvs(a, b, loc=prior.mu, scale=prior.sigma, size=n, random_state=rng)


def _bias_prior(ens, spec):
    return ens.priors.get(spec.bias) if spec.bias in ("PET", "PEESE", "RoB") else None


def prior_draws(ens, n: int, rng: np.random.Generator) -> dict:
    """``n`` draws from the ensemble's prior (model by prior probability, then its parameters' priors)."""
    from ketabayes.inference.arviz_groups import prior_draws as draws

    prior = np.array([f.spec.prior_prob for f in ens.fits])
    counts = rng.multinomial(n, prior / prior.sum())
    p = ens.priors
    sign = ens.data.get("sign", 1)

    def one(k, c):
        spec = ens.fits[k].spec
        mu = _prior_mu(p["mu"], p.get("mu_sign", 0), c, rng) if spec.effect else np.zeros(c)
        tau = draws(p["tau"], c, rng) if spec.heterogeneity else np.zeros(c)
        bp = _bias_prior(ens, spec)
        beta = sign * draws(bp, c, rng) if bp is not None else np.zeros(c)
        omega = None
        if spec.bias in WEIGHT_FUNCTIONS:
            eta = rng.dirichlet(np.ones(WEIGHT_FUNCTIONS[spec.bias].n_weights), size=c)
            omega = np.cumsum(eta, axis=1)[:, ::-1]
        return {"mu": mu, "tau": tau, "beta": beta, "omega": omega}

    return _assemble(ens, counts, one, rng)


def pointwise_loglik(ens, draws: dict) -> np.ndarray:
    """``(n, k)`` log likelihood of each trial under the drawn model and parameters."""
    y, v = ens.data["y"], ens.data["v"]
    se = np.sqrt(v)
    n = draws["mu"].size
    out = np.empty((n, y.size))
    for k, fit in enumerate(ens.fits):
        rows = np.flatnonzero(draws["model"] == k)
        if rows.size == 0:
            continue
        mu, tau, beta = draws["mu"][rows, None], draws["tau"][rows, None], draws["beta"][rows, None]
        spec = fit.spec
        if spec.bias in WEIGHT_FUNCTIONS:
            pos, omega = draws["omega"][k]
            om = np.empty((rows.size, omega.shape[1]))
            om[np.searchsorted(rows, pos)] = omega
            out[rows] = weight_function_loglik(y, se, mu[:, 0], tau[:, 0], om, WEIGHT_FUNCTIONS[spec.bias],
                                               ens.data.get("sign", 1), cutoffs=ens.data.get("cutoffs"))
            continue
        x = {"PET": se, "PEESE": v, "RoB": ens.data.get("rob")}.get(spec.bias)
        mean = mu + (beta * x if x is not None else 0.0)
        var = v + tau**2
        out[rows] = -0.5 * (np.log(2.0 * math.pi * var) + (y - mean) ** 2 / var)
    return out


def log_prior(ens, draws: dict) -> dict:
    """Log prior at the draws: ``model`` (log prior probability) and ``mu``, ``tau``, ``bias`` given the model."""
    from scipy import special

    p = ens.priors
    n = draws["mu"].size
    out = {"model": np.empty(n), "mu": np.zeros(n), "tau": np.zeros(n), "bias": np.zeros(n)}
    for k, fit in enumerate(ens.fits):
        rows = np.flatnonzero(draws["model"] == k)
        if rows.size == 0:
            continue
        spec = fit.spec
        with np.errstate(divide="ignore"):
            out["model"][rows] = math.log(spec.prior_prob) if spec.prior_prob > 0 else -np.inf
        if spec.effect:
            lp = np.asarray(p["mu"].logpdf(draws["mu"][rows]), dtype=float)
            if p.get("mu_sign"):  # the prior truncated to one side of 0, renormalised
                lp = lp - special.log_ndtr(p["mu_sign"] * p["mu"].mu / p["mu"].sigma)
            out["mu"][rows] = lp
        if spec.heterogeneity:
            out["tau"][rows] = np.asarray(p["tau"].logpdf(draws["tau"][rows]), dtype=float)
        bp = _bias_prior(ens, spec)
        if bp is not None:
            out["bias"][rows] = np.asarray(bp.logpdf(np.abs(draws["beta"][rows])), dtype=float)
    return out
