"""Exact posterior of the normal-normal random-effects model by integration over tau.

Model::

    y_i | theta_i ~ N(theta_i, v_i)          (v_i = se_i**2, known)
    theta_i | mu, tau ~ N(mu, tau**2)
    mu ~ Normal(m0, s0**2) or flat,  tau ~ p(tau)

Given ``tau`` everything is Gaussian (Röver 2020, sec. 2): with
``w_i = 1 / (v_i + tau**2)`` and ``P = sum(w) + 1/s0**2``,

* ``mu | tau, y ~ N(m(tau), 1/P)`` with ``m = (sum(w y) + m0/s0**2) / P``;
* ``theta_new | tau, y ~ N(m, 1/P + tau**2)``;
* ``theta_i | tau, y ~ N((1-B_i) y_i + B_i m, (1-B_i) v_i + B_i**2 / P)``,
  ``B_i = v_i / (v_i + tau**2)``;
* the marginal likelihood ``p(y | tau)`` is closed-form.

So the posterior of every quantity is a one-dimensional integral over ``tau``.
We integrate in ``u = log(tau)`` -- the integrand ``p(tau|y) tau`` is smooth and
decays exponentially at both ends for every prior offered -- with composite
Gauss-Legendre quadrature on an interval, found by a scan of the log density, that
holds all but ``exp(-40)`` of the posterior mass: narrow panels where the mass is,
geometrically wider ones in the tails (see :class:`QuadratureSettings`). The posterior of ``mu``,
``theta_i`` and ``theta_new`` is then a mixture of normals over the quadrature
nodes (:class:`~ketabayes.result.marginals.MixtureMarginal`), whose CDF and
quantiles are computed exactly.

References
----------
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R
package. J Stat Softw 93(6):1-51. doi:10.18637/jss.v093.i06
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import optimize, special

from ketabayes.model.priors import Flat, Normal, Prior
from ketabayes.result.marginals import Marginal, MixtureMarginal

__all__ = ["ExactNormalNormal", "QuadratureSettings", "prior_tau_nodes"]

_LOG_2PI = math.log(2.0 * math.pi)


@functools.lru_cache(maxsize=8)
def _gauss_legendre(n: int):
    """Gauss-Legendre nodes and weights on [-1, 1] (cached: computing them takes ~0.3 ms)."""
    x, w = special.roots_legendre(n)
    x.flags.writeable = w.flags.writeable = False
    return x, w


@dataclass(frozen=True)
class QuadratureSettings:
    """Settings of the integration over ``u = log(tau)``.

    The interval is found by one vectorised scan of the log density (step
    ``scan_step``) and a finer look around its best point. The *core* of the
    posterior (log density within ``core_cutoff`` of its maximum) gets panels of
    at most ``panel_width``; towards the ends of the interval, where the density
    is smaller still, the panels grow by ``tail_growth`` per panel up to
    ``max_tail_width`` (the integrand is analytic in ``u`` with singularities
    ``pi/2`` off the real axis, so wide Gauss-Legendre panels stay exact there).

    Attributes
    ----------
    nodes_per_panel : int
        Gauss-Legendre nodes per panel.
    panel_width : float
        Maximum panel width in the core, in ``log(tau)`` units.
    max_panels : int
        Upper limit of the number of core panels (they widen beyond it).
    mass_cutoff : float
        The interval is cut where the log density is ``mass_cutoff`` below its maximum.
    half_range : float
        The scan spans ``log(scale) +/- half_range``.
    scan_step : float
        Step of the scan in ``log(tau)`` units.
    core_cutoff : float
        The core is where the log density is within ``core_cutoff`` of its maximum.
    tail_growth : float
        Ratio of the widths of successive tail panels.
    max_tail_width : float
        Maximum width of a tail panel.
    """

    nodes_per_panel: int = 16
    panel_width: float = 0.4
    max_panels: int = 96
    mass_cutoff: float = 40.0
    half_range: float = 36.0
    scan_step: float = 0.5
    core_cutoff: float = 12.0
    tail_growth: float = 2.0
    max_tail_width: float = 3.2

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class ExactNormalNormal:
    """Exact posterior of the normal-normal (random- or fixed-effect) model.

    Construction does the integration (a few milliseconds); every summary is
    then computed from closed forms on the quadrature nodes.

    Parameters
    ----------
    yi, vi : array_like
        Effect estimates and their (known) sampling variances.
    prior_mu : Normal or Flat
        Prior of the average effect.
    prior_tau : Prior
        Prior of the between-study standard deviation (ignored if ``fixed``).
    fixed : bool
        Fixed-effect (common-effect) model: ``tau = 0``.
    settings : QuadratureSettings, optional

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact import ExactNormalNormal
    >>> from ketabayes.model.priors import Normal, HalfNormal
    >>> post = ExactNormalNormal([0.1, 0.3, -0.2], [0.04, 0.09, 0.05], Normal(0, 4), HalfNormal(0.5))
    >>> round(float(post.mu.cdf(0.0)), 3)
    0.413
    """

    def __init__(self, yi, vi, prior_mu: Prior, prior_tau: Prior | None, *, fixed: bool = False,
                 settings: QuadratureSettings | None = None):
        self.y = np.asarray(yi, dtype=float).ravel()
        self.v = np.asarray(vi, dtype=float).ravel()
        if self.y.shape != self.v.shape or self.y.size == 0:
            raise ValueError("yi and vi must be non-empty and of equal length")
        if not isinstance(prior_mu, (Normal, Flat)):
            raise TypeError(f"the exact engine needs a normal or flat prior for mu, got {prior_mu!r}")
        self.prior_mu = prior_mu
        self.prior_tau = prior_tau
        self.fixed = bool(fixed)
        self.settings = settings or QuadratureSettings()
        if self.fixed:
            self.tau_nodes = np.zeros(1)
            self.log_weights = np.zeros(1)
            self.log_evidence = float(self._loglik(self.tau_nodes)[0])
            self.weights = np.ones(1)
            self.edges = None
        else:
            if prior_tau is None:
                raise ValueError("a random-effects model needs a prior for tau")
            self._integrate()
        self.cond_mean, self.cond_var = self._conditional(self.tau_nodes)

    # ------------------------------------------------------------------
    # closed forms given tau
    # ------------------------------------------------------------------
    def _conditional(self, tau):
        """Mean and variance of ``mu | tau, y`` for an array of tau values."""
        tau = np.asarray(tau, dtype=float)
        return self._mu_given_weights(1.0 / (self.v + tau[..., None] ** 2))

    def _mu_given_weights(self, w):
        """Mean and variance of ``mu | tau, y`` from the weights ``w = 1 / (v + tau**2)``."""
        prec = w.sum(-1)
        num = w @ self.y
        if isinstance(self.prior_mu, Normal):
            p0 = 1.0 / self.prior_mu.sigma**2
            prec = prec + p0
            num = num + p0 * self.prior_mu.mu
        return num / prec, 1.0 / prec

    def _loglik(self, tau):
        """``log p(y | tau)`` with mu integrated out (up to nothing for a normal prior).

        For a flat prior on mu this is the integrated likelihood against Lebesgue
        measure, which is not a proper marginal likelihood.
        """
        tau = np.asarray(tau, dtype=float)
        tv = self.v + tau[..., None] ** 2
        w = 1.0 / tv
        m, var = self._mu_given_weights(w)
        resid = self.y - m[..., None]
        out = -0.5 * (np.log(tv).sum(-1) + self.y.size * _LOG_2PI) - 0.5 * (w * resid**2).sum(-1)
        if isinstance(self.prior_mu, Normal):
            s0 = self.prior_mu.sigma
            out = out - 0.5 * (m - self.prior_mu.mu) ** 2 / s0**2 - 0.5 * np.log(s0**2 / var)
        else:
            out = out + 0.5 * _LOG_2PI + 0.5 * np.log(var)
        return out

    def _log_u_density(self, u):
        """Unnormalised log posterior density of ``u = log(tau)``."""
        u = np.asarray(u, dtype=float)
        tau = np.exp(u)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lp = self.prior_tau.logpdf(tau) + u + self._loglik(tau)
        return np.where(np.isfinite(lp), lp, -np.inf)

    # ------------------------------------------------------------------
    # integration over u = log(tau)
    # ------------------------------------------------------------------
    def _integrate(self):
        st = self.settings
        scale = math.sqrt(float(np.median(self.v))) + float(np.std(self.y))
        lo_b, hi_b = self.prior_tau.bounds()
        u_lo = math.log(scale) - st.half_range
        u_hi = math.log(scale) + st.half_range
        if lo_b > 0:
            u_lo = max(u_lo, math.log(lo_b))
        if math.isfinite(hi_b):
            u_hi = min(u_hi, math.log(hi_b))
        # one scan of the whole range (and a finer look around its best point if the peak is
        # sharp), so that the maximum is known to well within the cut-offs however narrow the peak
        grid = np.linspace(u_lo, u_hi, max(9, math.ceil((u_hi - u_lo) / st.scan_step) + 1))
        lg = self._log_u_density(grid)
        i = int(np.argmax(lg))
        top = float(lg[i])
        if top - min(lg[max(i - 1, 0)], lg[min(i + 1, grid.size - 1)]) > 1.0:
            # a peak narrower than the scan step: the scan's maximum may be too low
            fine = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], 33)
            top = max(top, float(np.max(self._log_u_density(fine))))
        if not np.isfinite(top):
            raise FloatingPointError("the posterior of tau could not be evaluated (non-finite density)")

        def span(cutoff):
            # grid points bracketing {log density > top - cutoff} (one scan step beyond)
            idx = np.flatnonzero(lg > top - cutoff)
            first, last = min(idx[0], i) if idx.size else i, max(idx[-1], i) if idx.size else i
            return grid[max(first - 1, 0)], grid[min(last + 1, grid.size - 1)]

        a, b = span(st.mass_cutoff)
        c_lo, c_hi = span(min(st.core_cutoff, st.mass_cutoff))
        n_core = int(min(st.max_panels, max(4, math.ceil((c_hi - c_lo) / st.panel_width))))
        core = np.linspace(c_lo, c_hi, n_core + 1)
        width = (c_hi - c_lo) / n_core
        edges = np.concatenate([c_lo - self._tail_offsets(c_lo - a, width)[::-1], core,
                                c_hi + self._tail_offsets(b - c_hi, width)])
        x, w = _gauss_legendre(st.nodes_per_panel)
        half = 0.5 * np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        u = (mid[:, None] + half[:, None] * x[None, :]).ravel()
        lw = np.log((half[:, None] * w[None, :]).ravel())
        ld = self._log_u_density(u)
        logw = ld + lw
        log_z = special.logsumexp(logw)
        self.edges = edges
        self._gl = (x, w)
        self.u_nodes = u
        self.tau_nodes = np.exp(u)
        self.log_weights = logw - log_z
        self.weights = np.exp(self.log_weights)
        self._log_density_norm = log_z
        self.log_evidence = float(log_z)

    def _tail_offsets(self, length, width):
        """Distances of the tail panel edges from the core, panels growing geometrically."""
        st = self.settings
        out, d = [], 0.0
        while d < length * (1.0 - 1e-12):
            width = min(width * st.tail_growth, st.max_tail_width)
            d = min(d + width, length)
            out.append(d)
        return np.asarray(out)

    # ------------------------------------------------------------------
    # tau
    # ------------------------------------------------------------------
    def tau_pdf(self, tau):
        """Posterior density of tau."""
        tau = np.asarray(tau, dtype=float)
        if self.fixed:
            raise ValueError("tau is fixed at 0 in a fixed-effect model")
        with np.errstate(divide="ignore"):
            u = np.log(tau)
        return np.exp(self._log_u_density(u) - self._log_density_norm) / tau

    @cached_property
    def _edge_cdf(self):
        """Posterior CDF of tau at the panel edges (exact sums of the quadrature weights)."""
        n_panels = len(self.edges) - 1
        panel_mass = np.exp(special.logsumexp(self.log_weights.reshape(n_panels, -1), axis=1))
        return np.concatenate([[0.0], np.cumsum(panel_mass)])

    def tau_cdf(self, tau):
        """Posterior CDF of tau (Gauss-Legendre on each panel, exact to ~1e-12)."""
        tau = np.atleast_1d(np.asarray(tau, dtype=float))
        if self.fixed:
            return (tau >= 0).astype(float)
        edges = self.edges
        x, w = self._gl
        cum = self._edge_cdf
        with np.errstate(divide="ignore"):
            u = np.log(tau).ravel()
        out = np.where(u >= edges[-1], 1.0, 0.0)
        inside = np.flatnonzero((u > edges[0]) & (u < edges[-1]))
        chunk = max(1, 200_000 // (x.size * self.y.size))
        for start in range(0, inside.size, chunk):
            idx = inside[start:start + chunk]
            ui = u[idx]
            p = np.searchsorted(edges, ui, side="right") - 1
            lo = edges[p]
            half = 0.5 * (ui - lo)
            nodes = lo[:, None] + half[:, None] * (x[None, :] + 1.0)
            dens = np.exp(self._log_u_density(nodes.ravel()) - self._log_density_norm).reshape(nodes.shape)
            out[idx] = cum[p] + (dens * w[None, :]).sum(1) * half
        return np.clip(out, 0.0, 1.0).reshape(tau.shape)

    def tau_ppf(self, q):
        """Posterior quantiles of tau (Brent's method within the panel holding each quantile)."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        if self.fixed:
            return np.zeros_like(q)
        edges, cum = self.edges, self._edge_cdf
        out = np.full(q.shape, np.nan)
        for idx in np.ndindex(q.shape):
            qq = q[idx]
            if not 0.0 <= qq <= 1.0:
                continue
            p = int(np.clip(np.searchsorted(cum, qq) - 1, 0, len(edges) - 2))
            lo, hi = edges[p], edges[p + 1]

            def f(u, qq=qq):
                return float(self.tau_cdf(math.exp(u))[0]) - qq

            if f(lo) >= 0.0:
                out[idx] = math.exp(lo)
            elif f(hi) <= 0.0:
                out[idx] = math.exp(hi)
            else:
                out[idx] = math.exp(optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-14))
        return out

    @property
    def tau_mean(self) -> float:
        return float(self.weights @ self.tau_nodes)

    @property
    def tau_sd(self) -> float:
        m = self.tau_mean
        return float(np.sqrt(max(self.weights @ self.tau_nodes**2 - m * m, 0.0)))

    @cached_property
    def tau(self) -> Marginal:
        """Posterior of tau as a :class:`~ketabayes.result.marginals.Marginal` (exact)."""
        return _TauMarginal(self)

    # ------------------------------------------------------------------
    # marginals of mu, theta_new and theta_i
    # ------------------------------------------------------------------
    @cached_property
    def mu(self) -> MixtureMarginal:
        """Posterior of the average effect."""
        return MixtureMarginal(self.weights, self.cond_mean, np.sqrt(self.cond_var))

    @cached_property
    def theta_new(self) -> MixtureMarginal:
        """Predictive distribution of the effect in a new study."""
        return MixtureMarginal(self.weights, self.cond_mean, np.sqrt(self.cond_var + self.tau_nodes**2))

    def theta(self, i: int) -> MixtureMarginal:
        """Posterior of study ``i``'s own (shrunken) effect."""
        t2 = self.tau_nodes**2
        b = self.v[i] / (self.v[i] + t2)
        mean = (1.0 - b) * self.y[i] + b * self.cond_mean
        var = (1.0 - b) * self.v[i] + b**2 * self.cond_var
        return MixtureMarginal(self.weights, mean, np.sqrt(var))

    # ------------------------------------------------------------------
    # draws
    # ------------------------------------------------------------------
    def sample_tau(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draws of tau by inverting a tabulated CDF (piecewise linear in log tau).

        The CDF is tabulated on 16 equal sub-intervals of every quadrature panel,
        i.e. densely where the posterior mass is.
        """
        if self.fixed:
            return np.zeros(n)
        sub = np.arange(16) / 16.0
        grid_u = np.append((self.edges[:-1, None] + np.diff(self.edges)[:, None] * sub).ravel(), self.edges[-1])
        cdf = self.tau_cdf(np.exp(grid_u))
        cdf[0], cdf[-1] = 0.0, 1.0
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        return np.exp(np.interp(rng.uniform(size=n), cdf[keep], grid_u[keep]))

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Joint posterior draws of ``tau, mu, theta (n, k), theta_new``."""
        tau = self.sample_tau(n, rng)
        m, var = self._conditional(tau)
        mu = rng.normal(m, np.sqrt(var))
        t2 = tau[:, None] ** 2
        with np.errstate(divide="ignore", invalid="ignore"):
            prec = 1.0 / self.v + np.where(t2 > 0, 1.0 / t2, np.inf)
            cmean = np.where(t2 > 0, (self.y / self.v + mu[:, None] / t2) / prec, mu[:, None])
            csd = np.where(t2 > 0, np.sqrt(1.0 / prec), 0.0)
        theta = cmean + csd * rng.standard_normal((n, self.y.size))
        theta_new = mu + tau * rng.standard_normal(n)
        return {"tau": tau, "mu": mu, "theta": theta, "theta_new": theta_new}


def prior_tau_nodes(prior) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and normalised weights of a prior for tau, integrated in ``log(tau)``.

    Used where a heterogeneity is *assumed* rather than estimated (e.g. the next trial after a
    published pooled estimate). The interval holds all but ``exp(-40)`` of the prior density's peak
    (found by a scan); 40 panels of 16 nodes.

    Parameters
    ----------
    prior : Prior or str
        A prior on tau > 0, e.g. ``"halfnormal(10)"``.
    """
    from ketabayes.errors import KetabayesError
    from ketabayes.model.priors import parse_prior

    p = parse_prior(prior)
    if p.support != "positive":
        raise KetabayesError(f"tau must be a prior on tau > 0, got {p}")
    u = np.linspace(-25.0, 12.0, 3701)
    with np.errstate(divide="ignore"):
        ld = p.logpdf(np.exp(u)) + u
    ld = np.where(np.isfinite(ld), ld, -np.inf)
    idx = np.flatnonzero(ld > ld.max() - 40.0)
    a, b = u[max(idx[0] - 1, 0)], u[min(idx[-1] + 1, u.size - 1)]
    x, w = _gauss_legendre(16)
    edges = np.linspace(a, b, 41)
    half, mid = 0.5 * np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
    un = (mid[:, None] + half[:, None] * x).ravel()
    lw = p.logpdf(np.exp(un)) + un + np.log((half[:, None] * w).ravel())
    wt = np.exp(lw - lw.max())
    return np.exp(un), wt / wt.sum()


class _TauMarginal(Marginal):
    """Exact posterior of tau from :class:`ExactNormalNormal` (CDF and quantiles by quadrature)."""

    exact = True

    def __init__(self, post: ExactNormalNormal):
        self._post = post

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return self._post.tau_cdf(x).reshape(x.shape)

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        return self._post.tau_ppf(q).reshape(q.shape)

    @property
    def mean(self) -> float:
        return self._post.tau_mean

    @property
    def sd(self) -> float:
        return self._post.tau_sd
