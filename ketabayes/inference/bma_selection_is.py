"""Marginal likelihoods of selection models by importance sampling on randomised quasi-Monte Carlo points.

A selection model has at most five free parameters: the average effect ``mu`` (effect models),
``u = log(tau)`` (random effects) and ``J - 1`` publication weights. The weights are written by
stick-breaking, ``eta ~ Dirichlet(alpha)`` with ``b_l = eta_l / (1 - eta_1 - ... - eta_{l-1}) ~
Beta(alpha_l, alpha_{l+1} + ... + alpha_J)`` independent and ``x_l = logit(b_l)``, so every
coordinate is unconstrained and the log posterior kernel ``f(theta)`` (likelihood x prior x
Jacobian) is smooth. Its integral is estimated by importance sampling (Geweke 1989) from a
multivariate Student-t with 3 degrees of freedom centred at the mode of ``f``, scaled by the
inverse of the negative Hessian there (finite differences): heavier tails than the posterior's
(exponential in these coordinates), so the estimator has finite variance. The points are
scrambled Sobol' sequences (randomised quasi-Monte Carlo, :class:`scipy.stats.qmc.Sobol`;
Owen 1997): ``replicates`` independent scramblings give independent unbiased estimates of the
marginal likelihood, whose spread is the Monte-Carlo error reported (``log_ml_se``, delta
method). The caller falls back to sequential Monte Carlo when that error is too large.

The posterior is the pooled weighted points (mean, sd and quantiles of ``mu`` and ``tau`` from
them); draws of the weights ``omega`` for plots are a systematic resample of the points.

References
----------
Geweke J (1989). Bayesian inference in econometric models using Monte Carlo integration.
Econometrica 57(6):1317-1339. doi:10.2307/1913710
Owen AB (1997). Scrambled net variance for integrals of smooth functions. Ann Stat
25(4):1541-1562. doi:10.1214/aos/1031594731
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

from ketabayes.inference.bma_selection import (
    Cutoffs,
    WeightFunction,
    interval_index,
    interval_probabilities,
    selection_bounds,
)
from ketabayes.model.priors import Normal, Prior

__all__ = ["SelectionISFit", "fit_selection_is", "omega_from_logits"]

_LOG_2PI = math.log(2.0 * math.pi)
_NU = 3.0   # degrees of freedom of the Student-t proposal


@dataclass
class SelectionISFit:
    """Log marginal likelihood with its Monte-Carlo error, and the weighted posterior points."""

    log_ml: float
    log_ml_se: float
    weights: np.ndarray
    mu: np.ndarray | None
    tau: np.ndarray | None
    omega: np.ndarray
    ess: float

    def resample(self, n: int = 4000) -> np.ndarray:
        """Indices of a systematic (deterministic) resample of ``n`` points by their weights."""
        cw = np.cumsum(self.weights)
        return np.minimum(np.searchsorted(cw, (np.arange(n) + 0.5) / n), cw.size - 1)


def omega_from_logits(x, alpha):
    """Publication weights ``omega`` (column 0 = most significant = 1) and the log density of ``x``.

    ``x``: array ``(..., J - 1)`` of logits of the stick-breaking fractions of ``eta ~
    Dirichlet(alpha)``; ``omega_j = eta_1 + ... + eta_{J-j}``. The log density includes the
    Jacobian of the logit.
    """
    x = np.asarray(x, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    J = alpha.size
    b = special.expit(x)
    log_b, log_1b = -np.logaddexp(0.0, -x), -np.logaddexp(0.0, x)
    rest = np.cumsum(alpha[::-1])[::-1]          # alpha_l + ... + alpha_J
    a, beta = alpha[:-1], rest[1:]
    logp = np.sum(a * log_b + beta * log_1b - special.betaln(a, beta), axis=-1)
    eta, left = [], np.ones(x.shape[:-1])
    for m in range(J - 1):
        eta.append(left * b[..., m])
        left = left * (1.0 - b[..., m])
    cum = np.cumsum(np.stack(eta, axis=-1), axis=-1)          # eta_1, eta_1 + eta_2, ...
    omega = np.concatenate([np.ones(x.shape[:-1] + (1,)), cum[..., ::-1]], axis=-1)
    return omega, logp


def fit_selection_is(yi, vi, *, prior_mu: Prior | None, prior_tau: Prior | None, wf: WeightFunction,
                     sign: int = 1, mu_sign: int = 0, alpha=None, cutoffs: Cutoffs | None = None,
                     points: int = 2**13, replicates: int = 8, seed: int = 0) -> SelectionISFit:
    """Log marginal likelihood of one selection model by importance sampling (randomised QMC).

    Parameters
    ----------
    yi, vi : array_like
        Effect estimates and sampling variances.
    prior_mu : Prior or None
        Prior of ``mu`` (``None``: ``mu = 0``).
    prior_tau : Prior or None
        Prior of ``tau`` (``None``: fixed effect).
    wf : WeightFunction
        The step weight function.
    sign : {1, -1}
        Direction of benefit (one-sided p-values favour it).
    mu_sign : {0, 1, -1}
        ``1``/``-1``: the normal prior of ``mu`` is truncated to ``mu >= 0`` / ``mu <= 0``.
    alpha : array_like, optional
        Dirichlet parameters of the weights (default all ones).
    cutoffs : Cutoffs, optional
        How p-values map to critical values of ``y`` (default: the z-test of ``y / se``).
    points : int
        Points per replicate (a power of 2: a Sobol' net).
    replicates : int
        Independent scramblings (their spread is the Monte-Carlo error).
    seed : int
        Seed of the scramblings.

    Returns
    -------
    SelectionISFit

    Examples
    --------
    >>> from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS
    >>> f = fit_selection_is([0.3, 0.1, 0.5], [0.04, 0.09, 0.05], prior_mu=None, prior_tau=None,
    ...                      wf=WEIGHT_FUNCTIONS["1s.05"], seed=1)
    >>> bool(f.log_ml_se < 0.01)
    True
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    J = wf.n_weights
    alpha = np.ones(J) if alpha is None else np.asarray(alpha, dtype=float)
    if mu_sign and not isinstance(prior_mu, Normal):
        raise ValueError("a directional (truncated) prior of mu is only available for a normal prior")
    if points < 2 or points & (points - 1):
        raise ValueError(f"points must be a power of 2 (a Sobol' net), got {points}")
    target = _Target(y, v, prior_mu, prior_tau, wf, sign, mu_sign, alpha, cutoffs)
    mode, L = target.laplace()
    if L is None:
        return SelectionISFit(float("nan"), float("inf"), np.ones(1), None, None, np.ones((1, J)), 0.0)
    d = mode.size
    q = stats.multivariate_t(np.zeros(d), np.eye(d), df=_NU)
    log_det = float(np.sum(np.log(np.diag(L))))
    est, lws, thetas = [], [], []
    for r in range(replicates):
        u = stats.qmc.Sobol(d + 1, scramble=True, seed=np.random.default_rng([seed, r])).random(points)
        u = np.clip(u, 1e-16, 1 - 1e-16)
        z = special.ndtri(u[:, :d]) / np.sqrt(stats.chi2.ppf(u[:, d], _NU) / _NU)[:, None]
        theta = mode + z @ L.T
        lw = target.logf(theta) - (q.logpdf(z) - log_det)
        est.append(float(special.logsumexp(lw) - math.log(points)))
        lws.append(lw)
        thetas.append(theta)
    est = np.array(est)
    log_ml = float(special.logsumexp(est) - math.log(replicates))
    rel = np.exp(est - log_ml)                     # replicate estimates / their mean
    log_ml_se = float(np.std(rel, ddof=1) / math.sqrt(replicates))
    lw = np.concatenate(lws)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    keep = w > 1e-14
    mu, tau, omega, _ = target.unpack(np.concatenate(thetas)[keep])
    return SelectionISFit(log_ml, log_ml_se, w[keep] / w[keep].sum(), mu if target.has_mu else None,
                          tau if target.has_tau else None, omega, float(1.0 / np.sum(w**2)))


class _Target:
    """The log posterior kernel of one selection model in unconstrained coordinates."""

    def __init__(self, y, v, prior_mu, prior_tau, wf, sign, mu_sign, alpha, cutoffs):
        self.y, self.v, self.wf, self.sign, self.mu_sign, self.alpha = y, v, wf, sign, mu_sign, alpha
        self.prior_mu, self.prior_tau = prior_mu, prior_tau
        self.has_mu, self.has_tau = prior_mu is not None, prior_tau is not None
        se = np.sqrt(v)
        self.c = selection_bounds(se, wf, cutoffs)
        self.counts = np.bincount(interval_index(y, se, wf, sign, cutoffs), minlength=wf.n_weights)
        self.log_mass = (math.log(special.ndtr(mu_sign * prior_mu.mu / prior_mu.sigma))
                         if (self.has_mu and mu_sign) else 0.0)

    def unpack(self, theta):
        theta = np.atleast_2d(theta)
        k, lp = 0, np.zeros(theta.shape[0])
        mu = np.zeros(theta.shape[0])
        if self.has_mu:
            if self.mu_sign:
                mu = self.mu_sign * np.exp(theta[:, 0])
                lp = lp + np.asarray(self.prior_mu.logpdf(mu), dtype=float) - self.log_mass + theta[:, 0]
            else:
                mu = theta[:, 0]
                lp = lp + np.asarray(self.prior_mu.logpdf(mu), dtype=float)
            k += 1
        tau = np.zeros(theta.shape[0])
        if self.has_tau:
            tau = np.exp(theta[:, k])
            lp = lp + np.asarray(self.prior_tau.logpdf(tau), dtype=float) + theta[:, k]
            k += 1
        omega, lp_om = omega_from_logits(theta[:, k:], self.alpha)
        return mu, tau, omega, lp + lp_om

    def logf(self, theta, chunk: int = 16384):
        theta = np.atleast_2d(theta)
        out = np.empty(theta.shape[0])
        for s in range(0, theta.shape[0], chunk):
            mu, tau, omega, lp = self.unpack(theta[s:s + chunk])
            sd = np.sqrt(self.v[None, :] + tau[:, None] ** 2)
            probs = interval_probabilities(mu[:, None], sd, self.c, self.wf, self.sign)
            denom = sum(omega[:, [j]] * np.maximum(p, 0.0) for j, p in enumerate(probs))
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ll = (self.counts * np.log(omega)).sum(1) + np.sum(
                    -0.5 * _LOG_2PI - np.log(sd) - 0.5 * ((self.y - mu[:, None]) / sd) ** 2 - np.log(denom), axis=1)
                tot = ll + lp
            out[s:s + chunk] = np.where(np.isfinite(tot), tot, -np.inf)
        return out

    def laplace(self):
        """Mode of ``logf`` (BFGS from the pooled mean and from ~0) and the Cholesky factor of ``-H^{-1}``."""
        y, v = self.y, self.v
        w0 = 1.0 / v
        starts = []
        for m0 in ((float(np.sum(w0 * y) / np.sum(w0)), 0.05 * self.sign) if self.has_mu else (None,)):
            t = []
            if self.has_mu:
                t.append(math.log(max(abs(m0), 1e-3)) if self.mu_sign else m0)
            if self.has_tau:
                t.append(math.log(max(float(np.std(y)), 0.1 * float(np.sqrt(np.median(v))))))
            starts.append(np.array(t + [0.0] * (self.wf.n_weights - 1)))
        best = None
        for x0 in starts:
            r = optimize.minimize(lambda t: -self.logf(t)[0], x0, method="BFGS", options={"gtol": 1e-7})
            if np.isfinite(r.fun) and (best is None or r.fun < best.fun):
                best = r
        if best is None:
            return starts[0], None
        H = -_hessian(self.logf, best.x)
        try:
            return best.x, np.linalg.cholesky(np.linalg.inv(H))
        except np.linalg.LinAlgError:
            return best.x, None


def _hessian(f, x, h: float = 1e-3):
    """Central finite-difference Hessian of a vectorised scalar function at ``x``."""
    d = x.size
    E = np.eye(d) * h
    pts = [x]
    for i in range(d):
        pts += [x + E[i], x - E[i]]
        for j in range(i + 1, d):
            pts += [x + E[i] + E[j], x + E[i] - E[j], x - E[i] + E[j], x - E[i] - E[j]]
    vals = f(np.array(pts))
    f0, k = vals[0], 1
    H = np.empty((d, d))
    for i in range(d):
        H[i, i] = (vals[k] - 2 * f0 + vals[k + 1]) / h**2
        k += 2
        for j in range(i + 1, d):
            H[i, j] = H[j, i] = (vals[k] - vals[k + 1] - vals[k + 2] + vals[k + 3]) / (4 * h**2)
            k += 4
    return H
