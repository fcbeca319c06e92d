r"""Exact marginal likelihood and posterior of the normal bias-shift model (risk of bias).

Model (:mod:`ketabayes.model.bias_priors`; ``x_i`` = 1 for a trial at high risk of bias)::

    y_i ~ N(mu + x_i (b + e_i), v_i + tau^2),   b ~ N(m, s^2),   e_i ~ N(0, kappa^2)
    mu ~ N(m0, s0^2) (optionally truncated to one side of 0) or mu = 0;   tau ~ p(tau) or tau = 0

Integrating ``b`` and ``e`` out, ``y ~ N(mu 1 + m x, C)`` with ``C = D + s^2 x x'`` and
``D = diag(v + tau^2 + kappa^2 x^2)``: a rank-one update of a diagonal matrix, inverted by the
Sherman-Morrison formula. Given ``tau`` the average effect is then conjugate (normal posterior,
closed-form evidence); ``log(tau)`` is integrated by composite Gauss-Legendre quadrature on the
panels of :mod:`ketabayes.inference.bma_quadrature`. The posterior of ``mu`` is a mixture of
(truncated) normals over the nodes.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from ketabayes.inference.bma_quadrature import QuadratureFit, TruncatedNormalMixture, _nodes, _panels
from ketabayes.marginals import MixtureMarginal, PointMass
from ketabayes.model.bias_priors import BiasPrior
from ketabayes.model.priors import Normal, Prior

__all__ = ["fit_bias_shift", "bias_prior_from_dict"]


def bias_prior_from_dict(d: dict) -> BiasPrior:
    """A stored :class:`~ketabayes.model.bias_priors.BiasPrior` (used when a saved result is loaded)."""
    return BiasPrior.from_dict(d)

_LOG_2PI = math.log(2.0 * math.pi)


def fit_bias_shift(yi, vi, x, *, shift_mean: float, shift_sd: float, kappa: float = 0.0,
                   prior_mu: Normal | None, prior_tau: Prior | None, mu_sign: int = 0,
                   nodes_per_panel: int = 10, core: float = 14.0, cutoff: float = 42.0, fine: float = 0.35,
                   coarse: float = 3.0) -> QuadratureFit:
    """Log marginal likelihood and posterior of ``mu`` under the normal bias-shift model.

    Parameters
    ----------
    yi, vi : array_like
        Effect estimates and sampling variances.
    x : array_like
        1 for trials at high risk of bias, 0 otherwise (any real weights are allowed).
    shift_mean, shift_sd : float
        Mean and SD of the shared shift ``b`` on the analysis scale (signed: the mean shift of a
        trial at high risk).
    kappa : float
        SD of the trial-specific part of the bias.
    prior_mu : Normal or None
        Prior of the average effect in trials at low risk (None: ``mu = 0``).
    prior_tau : Prior or None
        Proper prior of tau (None: fixed effect).
    mu_sign : {0, 1, -1}
        Directional prior of ``mu`` (truncated to ``mu >= 0`` / ``mu <= 0``).

    Returns
    -------
    QuadratureFit
        ``beta_nodes``/``beta_weights`` are None (the shift is integrated in closed form).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import stats
    >>> from ketabayes.model.priors import Normal
    >>> y, v, x = np.array([0.3, 0.1, 0.5]), np.array([0.04, 0.09, 0.05]), np.array([1.0, 0.0, 1.0])
    >>> f = fit_bias_shift(y, v, x, shift_mean=0.1, shift_sd=0.2, prior_mu=Normal(0, 1), prior_tau=None)
    >>> cov = np.diag(v) + 0.2**2 * np.outer(x, x) + 1.0
    >>> bool(abs(f.log_ml - stats.multivariate_normal(0.1 * x, cov).logpdf(y)) < 1e-12)
    True
    """
    if prior_mu is not None and not isinstance(prior_mu, Normal):
        from ketabayes.errors import PriorError

        raise PriorError(f"the normal bias-shift model needs a normal prior of the mean (closed form); got {prior_mu}")
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    xm = np.asarray(x, dtype=float)
    s2 = float(shift_sd) ** 2
    r = y - float(shift_mean) * xm
    extra = float(kappa) ** 2 * xm**2
    if prior_mu is not None:
        m0, s0 = float(prior_mu.mu), float(prior_mu.sigma)
        if mu_sign:
            prior_mass = float(special.ndtr(mu_sign * m0 / s0))

    def logdens(u):
        """log p(y | tau = e^u) with mu integrated out; u an array or None (tau = 0)."""
        t2 = np.exp(2.0 * np.asarray(u))[..., None] if u is not None else 0.0
        d = v + extra + t2
        w = 1.0 / d
        a = w * xm
        q = a @ xm if np.ndim(a) == 1 else (a * xm).sum(-1)
        c = s2 / (1.0 + s2 * q)
        sa, sar = a.sum(-1), (a * r).sum(-1)
        s11 = w.sum(-1) - c * sa**2
        s1r = (w * r).sum(-1) - c * sa * sar
        srr = (w * r * r).sum(-1) - c * sar**2
        logdet = np.log(d).sum(-1) + np.log1p(s2 * q)
        base = -0.5 * (y.size * _LOG_2PI + logdet)
        if prior_mu is None:
            return base - 0.5 * srr, None, None
        prec = s11 + 1.0 / s0**2
        mean = (s1r + m0 / s0**2) / prec
        out = base - 0.5 * np.log(s0**2 * prec) - 0.5 * (srr + m0**2 / s0**2 - prec * mean**2)
        if mu_sign:
            out = out + special.log_ndtr(mu_sign * mean * np.sqrt(prec)) - math.log(prior_mass)
        return out, mean, 1.0 / np.sqrt(prec)

    def mu_marginal(weights, means, sds):
        if prior_mu is None:
            return PointMass(0.0)
        if mu_sign:
            return TruncatedNormalMixture(weights, means, sds, mu_sign)
        return MixtureMarginal(weights, means, sds)

    if prior_tau is None:
        ld, mean, sd = logdens(None)
        mu = mu_marginal([1.0], np.atleast_1d(mean), np.atleast_1d(sd)) if prior_mu is not None else PointMass(0.0)
        return QuadratureFit(float(ld), mu, None, None, None, None, 1, _joint(np.ones(1), np.zeros(1), mean, sd),
                             prior_mu, mu_sign)

    def log_prior_u(u):
        return prior_tau.logpdf(np.exp(u)) + u

    scale_u = math.log(max(float(np.sqrt(np.median(v))), 1e-8))
    grid = np.arange(scale_u - 24.0, scale_u + 12.0, 0.25)
    prof = logdens(grid)[0] + log_prior_u(grid)
    prof = np.where(np.isfinite(prof), prof, -np.inf)
    u_n, u_w = _nodes(_panels(grid, prof, core, cutoff, fine, coarse), nodes_per_panel)
    ld, mean, sd = logdens(u_n)
    lt = np.log(u_w) + log_prior_u(u_n) + ld
    top = float(np.max(lt))
    wts = np.exp(lt - top)
    total = float(wts.sum())
    wts = wts / total
    mu = mu_marginal(wts, mean, sd) if prior_mu is not None else PointMass(0.0)
    return QuadratureFit(top + math.log(total), mu, np.exp(u_n), wts, None, None, int(wts.size),
                         _joint(wts, np.exp(u_n), mean, sd), prior_mu, mu_sign)


def _joint(weights, tau, mean, sd) -> dict:
    """The joint nodes of :class:`~ketabayes.inference.bma_quadrature.QuadratureFit` (the shift is integrated out in
    closed form, so ``beta`` is 0): the predictive of a new trial at low risk of bias and joint draws."""
    n = np.size(weights)
    return {"weight": np.asarray(weights, dtype=float).ravel(), "tau": np.asarray(tau, dtype=float).ravel(),
            "beta": np.zeros(n), "mean": np.zeros(n) if mean is None else np.broadcast_to(mean, (n,)).astype(float),
            "sd": np.ones(n) if sd is None else np.broadcast_to(sd, (n,)).astype(float)}
