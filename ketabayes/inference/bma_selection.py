"""Selection models (step weight functions on one-sided p-values) by sequential Monte Carlo.

Weighted-normal likelihood (Vevea & Hedges 1995; the formulation of RoBMA, Maier et al. 2023):
a study is published with relative probability ``omega_j`` when its one-sided p-value (in the
direction of benefit) falls in the ``j``-th interval of the weight function, so::

    p(y_i | mu, tau, omega) = omega_{j(i)} N(y_i; mu, v_i + tau**2) / sum_j omega_j P(p_i in I_j | mu, tau)

with ``omega_1 = 1`` for the most significant interval and ``omega`` non-increasing: ``eta ~
Dirichlet(alpha)``, ``omega_j = eta_1 + ... + eta_{J-j+1}`` (RoBMA's cumulative Dirichlet prior).
Two-sided weight functions use the two-sided p-value ``2 min(p, 1 - p)``.

The marginal likelihood of these models (3 to 5 parameters) is estimated with PyMC's sequential
Monte Carlo (:func:`pymc.sample_smc`, which reports ``log_marginal_likelihood`` per chain); its
Monte-Carlo error is the standard error of the mean of the chains' independent estimates.
The same code with no weight function (``wf=None``) fits the plain normal models, whose marginal
likelihood is known by quadrature: the tests compare the two.

References
----------
Vevea JL, Hedges LV (1995). A general linear model for estimating effect size in the presence of
publication bias. Psychometrika 60:419-435. doi:10.1007/BF02294384
Maier M, Bartoš F, Wagenmakers EJ (2023). Robust Bayesian meta-analysis: addressing publication
bias with model-averaging. Psychol Methods 28(1):107-122. doi:10.1037/met0000405
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ketabayes.model.priors import Normal, Prior

__all__ = ["WEIGHT_FUNCTIONS", "WeightFunction", "Cutoffs", "NORMAL_CUTOFFS", "SMCFit", "fit_smc", "interval_index",
           "interval_probabilities", "selection_bounds", "weight_function_logpdf", "weight_function_loglik"]


@dataclass(frozen=True)
class WeightFunction:
    """A step weight function: ``sided`` ("one"/"two") and cut-points on that p-value."""

    name: str
    sided: str
    steps: tuple

    @property
    def n_weights(self) -> int:
        return len(self.steps) + 1

    def describe(self) -> str:
        return f"{self.sided}-sided step weight function, cut-points {', '.join(f'{c:g}' for c in self.steps)}"


#: RoBMA's six default weight functions (Bartoš et al. 2023), named by side and cut-points
WEIGHT_FUNCTIONS = {
    "2s.05": WeightFunction("2s.05", "two", (0.05,)),
    "2s.05.10": WeightFunction("2s.05.10", "two", (0.05, 0.10)),
    "1s.05": WeightFunction("1s.05", "one", (0.05,)),
    "1s.025.05": WeightFunction("1s.025.05", "one", (0.025, 0.05)),
    "1s.05.50": WeightFunction("1s.05.50", "one", (0.05, 0.50)),
    "1s.025.05.50": WeightFunction("1s.025.05.50", "one", (0.025, 0.05, 0.50)),
}


@dataclass(frozen=True)
class Cutoffs:
    """How a study's p-value maps to its effect estimate: critical values of ``y`` per study.

    ``critical(alpha)`` returns, for one-sided levels ``alpha`` (shape ``(m,)``), the values
    ``c[i, l]`` of ``sign * y_i`` at which study ``i``'s one-sided p-value equals ``alpha[l]``
    (a two-sided level ``a`` is the one-sided ``a / 2`` on ``|y|``).

    * ``kind="normal"`` (the default): the z-test of ``y / se``, ``c = se * z_{1-alpha}``
      (RoBMA's rule for log odds ratios and unstandardised effects);
    * ``kind="correlation"`` with per-study sample sizes ``n``: ``y`` is Fisher's z of a
      correlation and the p-value is that of the study's t-test of the correlation with
      ``n - 2`` degrees of freedom, ``c = atanh(t / sqrt(n - 2 + t**2))``, ``t = t_{n-2, 1-alpha}``
      (RoBMA's rule for correlations, ``.get_cutoffs`` in RoBMA's ``R/transformations.R``).
    """

    kind: str = "normal"
    n: tuple | None = None

    def __post_init__(self):
        if self.kind not in ("normal", "correlation"):
            raise ValueError(f"Cutoffs kind must be 'normal' or 'correlation', got {self.kind!r}")
        if self.kind == "correlation" and (self.n is None or min(self.n) <= 3):
            raise ValueError("correlation cut-offs need every study's sample size n > 3")

    @classmethod
    def correlation(cls, n) -> Cutoffs:
        """Cut-offs of Fisher's z from the t-test of a correlation with ``n - 2`` degrees of freedom."""
        return cls("correlation", tuple(float(x) for x in np.ravel(n)))

    def critical(self, se, alpha) -> np.ndarray:
        se = np.asarray(se, dtype=float)
        a = np.atleast_1d(np.asarray(alpha, dtype=float))
        if self.kind == "normal":
            return se[:, None] * special.ndtri(1.0 - a)[None, :]
        from scipy import stats

        n = np.asarray(self.n, dtype=float)
        if n.shape != se.shape:
            raise ValueError(f"correlation cut-offs: {n.size} sample sizes for {se.size} studies")
        t = stats.t.isf(a[None, :], (n - 2.0)[:, None])
        return np.arctanh(t / np.sqrt(n[:, None] - 2.0 + t * t))


NORMAL_CUTOFFS = Cutoffs()


def selection_bounds(se, wf: WeightFunction, cutoffs: Cutoffs | None = None) -> np.ndarray:
    """Critical values of each interval's upper end: shape ``(k, J - 1)``, decreasing along the row.

    One-sided functions: on ``sign * y`` (interval ``j`` is ``c[j] < sign*y <= c[j-1]``, with
    ``c[-1] = inf`` and ``c[J-1] = -inf``); two-sided: on ``|y|`` (the same with ``c[J-1] = 0``).
    """
    a = np.asarray(wf.steps, dtype=float) / (1.0 if wf.sided == "one" else 2.0)
    return (cutoffs or NORMAL_CUTOFFS).critical(se, a)


def interval_index(y, se, wf: WeightFunction, sign: int, cutoffs: Cutoffs | None = None) -> np.ndarray:
    """Index ``j`` (0 = most significant) of the weight-function interval of each study's p-value."""
    c = selection_bounds(se, wf, cutoffs)
    s = sign * np.asarray(y, dtype=float) if wf.sided == "one" else np.abs(np.asarray(y, dtype=float))
    return np.sum(c >= s[:, None], axis=1)   # p == step (s == c) falls in the less significant interval


def interval_probabilities(mu, sd, c, wf: WeightFunction, sign: int, xp=np):
    """``P(study i's p-value in interval j | mu, sd)`` for every interval, as a list of ``J`` arrays.

    ``c`` are the bounds of :func:`selection_bounds`; ``mu`` and ``sd`` broadcast against them
    (``xp`` is numpy or pytensor.tensor).
    """
    n_cut = c.shape[1]
    if wf.sided == "one":
        m = sign * mu
        # upper tail beyond each cut-point, P(sign*y > c_l), accurate in both tails
        tails = [_ndtr(xp, (m - c[:, l]) / sd) for l in range(n_cut)]
    else:
        tails = [_ndtr(xp, (mu - c[:, l]) / sd) + _ndtr(xp, (-c[:, l] - mu) / sd) for l in range(n_cut)]
    probs = [tails[0]]
    probs += [tails[l] - tails[l - 1] for l in range(1, n_cut)]
    probs.append(1.0 - tails[-1])
    return probs


def weight_function_logpdf(y, se, mu, tau, omega, wf: WeightFunction, sign: int, xp=np,
                           cutoffs: Cutoffs | None = None):
    """Log likelihood of the weighted normal model (summed over studies), in numpy or pytensor (``xp``).

    ``omega[j]`` is the relative publication probability of interval ``j`` (0 = most significant);
    ``cutoffs`` maps p-values to critical values of ``y`` (default: the z-test of ``y / se``).
    """
    y = np.asarray(y, dtype=float)
    se = np.asarray(se, dtype=float)
    c = selection_bounds(se, wf, cutoffs)
    idx = interval_index(y, se, wf, sign, cutoffs)
    sd = xp.sqrt(se**2 + tau**2)
    denom = 0.0
    for j, pj in enumerate(interval_probabilities(mu, sd, c, wf, sign, xp)):
        denom = denom + omega[j] * pj
    norm_ll = -0.5 * math.log(2 * math.pi) - xp.log(sd) - 0.5 * ((y - mu) / sd) ** 2
    log_om = xp.log(xp.stack([omega[j] for j in range(wf.n_weights)]))[idx] if xp is not np else \
        np.log(np.asarray(omega))[idx]
    return xp.sum(log_om + norm_ll - xp.log(denom))


def weight_function_loglik(y, se, mu, tau, omega, wf: WeightFunction, sign: int,
                           cutoffs: Cutoffs | None = None) -> np.ndarray:
    """Pointwise log likelihood ``(n, k)`` of the weighted normal model at ``n`` draws (numpy).

    ``mu``, ``tau``: ``(n,)``; ``omega``: ``(n, J)``. Each study's term of
    :func:`weight_function_logpdf`: ``log omega_j(i) + log N(y_i; mu, v_i + tau^2) - log sum_j omega_j
    P(p_i in I_j | mu, tau)``, with the same per-study cut-offs.
    """
    y, se = np.asarray(y, dtype=float), np.asarray(se, dtype=float)
    mu = np.asarray(mu, dtype=float)[:, None]
    tau = np.asarray(tau, dtype=float)[:, None]
    omega = np.asarray(omega, dtype=float)
    c = selection_bounds(se, wf, cutoffs)
    idx = interval_index(y, se, wf, sign, cutoffs)
    sd = np.sqrt(se**2 + tau**2)
    denom = 0.0
    for j, pj in enumerate(interval_probabilities(mu, sd, c, wf, sign)):
        denom = denom + omega[:, j:j + 1] * pj
    norm_ll = -0.5 * math.log(2 * math.pi) - np.log(sd) - 0.5 * ((y - mu) / sd) ** 2
    return np.log(omega[:, idx]) + norm_ll - np.log(denom)


def _last_finite(x) -> float:
    """Last finite value of a (possibly nested object) array: the log marginal likelihood at the final stage."""
    flat = np.concatenate([np.ravel(np.asarray(e, dtype=float)) for e in np.ravel(np.asarray(x, dtype=object))])
    flat = flat[np.isfinite(flat)]
    return float(flat[-1]) if flat.size else float("nan")


def _ndtr(xp, x):
    if xp is np:
        return special.ndtr(x)
    return 0.5 * xp.erfc(-x / math.sqrt(2.0))


@dataclass
class SMCFit:
    """Result of one SMC run: per-chain log marginal likelihoods and pooled posterior draws."""

    log_ml_chains: np.ndarray
    mu: np.ndarray | None
    tau: np.ndarray | None
    omega: np.ndarray | None
    seconds: float

    @property
    def log_ml(self) -> float:
        """Log of the mean of the chains' marginal-likelihood estimates."""
        c = self.log_ml_chains
        return float(special.logsumexp(c) - math.log(c.size))

    @property
    def log_ml_se(self) -> float:
        """Monte-Carlo standard error of :attr:`log_ml` (spread of the chains / sqrt(chains))."""
        c = self.log_ml_chains
        return float(np.std(c, ddof=1) / math.sqrt(c.size)) if c.size > 1 else float("nan")


def fit_smc(yi, vi, *, prior_mu: Normal | None, prior_tau: Prior | None, wf: WeightFunction | None,
            sign: int = 1, mu_sign: int = 0, alpha=None, draws: int = 1000, chains: int = 4,
            seed: int = 0, smc_kwargs: dict | None = None, cutoffs: Cutoffs | None = None) -> SMCFit:
    """Fit a (selection) model with :func:`pymc.sample_smc` and return its log marginal likelihood.

    Parameters
    ----------
    yi, vi : array_like
    prior_mu : Normal or None
        ``None``: ``mu = 0``.
    prior_tau : Prior or None
        ``None``: fixed effect.
    wf : WeightFunction or None
        ``None``: no selection (the plain normal model; for checks against quadrature).
    sign : {1, -1}
        Direction of benefit (``1``: higher is better); p-values are one-sided in that direction.
    mu_sign : {0, 1, -1}
        ``1``/``-1``: the normal prior of ``mu`` is truncated to ``mu >= 0`` / ``mu <= 0``.
    alpha : array_like, optional
        Dirichlet parameters (default all ones).
    draws, chains, seed
        SMC particles, independent SMC runs and seed.
    cutoffs : Cutoffs, optional
        How p-values map to critical values of ``y`` (default: the z-test of ``y / se``).

    Returns
    -------
    SMCFit
    """
    import time

    import pymc as pm
    import pytensor.tensor as pt

    from ketabayes._compat import ieee_pytensor

    ieee_pytensor()
    y = np.asarray(yi, dtype=float)
    se = np.sqrt(np.asarray(vi, dtype=float))
    t0 = time.perf_counter()
    with pm.Model():
        if prior_mu is None:
            mu = pt.as_tensor(0.0)
        elif mu_sign:
            bounds = {"lower": 0.0} if mu_sign > 0 else {"upper": 0.0}
            mu = pm.TruncatedNormal("mu", mu=prior_mu.mu, sigma=prior_mu.sigma, **bounds)
        else:
            mu = prior_mu.to_pymc("mu")
        tau = prior_tau.to_pymc("tau") if prior_tau is not None else pt.as_tensor(0.0)
        if wf is None:
            sd = pt.sqrt(se**2 + tau**2)
            pm.Potential("loglik", pm.logp(pm.Normal.dist(mu, sd), y).sum())
        else:
            a = np.ones(wf.n_weights) if alpha is None else np.asarray(alpha, dtype=float)
            eta = pm.Dirichlet("eta", a=a)
            omega = pt.cumsum(eta)[::-1]        # omega_0 = 1 (most significant), non-increasing
            pm.Deterministic("omega", omega)
            pm.Potential("loglik", weight_function_logpdf(y, se, mu, tau, [omega[j] for j in range(wf.n_weights)],
                                                          wf, sign, xp=pt, cutoffs=cutoffs))
        log = logging.getLogger("pymc")
        level = log.level
        log.setLevel(logging.WARNING)  # no "Initializing SMC sampler..." lines per model
        try:
            idata = pm.sample_smc(draws=draws, chains=chains, cores=1, random_seed=seed, progressbar=False,
                                  compute_convergence_checks=False, **(smc_kwargs or {}))
        finally:
            log.setLevel(level)
    raw = idata["sample_stats"]["log_marginal_likelihood"].values   # per chain; ragged (object) if stages differ
    lml = np.array([_last_finite(raw[c]) for c in range(chains)])
    post = idata["posterior"]

    def get(n):
        return np.asarray(post[n].values).reshape(-1, *post[n].shape[2:]) if n in post.data_vars else None

    return SMCFit(lml, get("mu"), get("tau"), get("omega"), time.perf_counter() - t0)
