"""Exact posterior of the bivariate normal-normal meta-analysis (two outcomes per trial).

Model (trial ``i``, outcomes 1 = efficacy, 2 = harm; a trial may report only one)::

    y_i | theta_i ~ N2(theta_i, S_i),   S_i = [[v_i1, rw_i sqrt(v_i1 v_i2)], [., v_i2]]  (known)
    theta_i | mu, Sigma ~ N2(mu, Sigma), Sigma = [[t1^2, rb t1 t2], [., t2^2]]
    mu_j ~ Normal or flat (independent),  t1, t2 ~ p(t),  rb ~ LKJ(eta) (uniform on (-1, 1) for eta = 1)

``rw_i`` is the within-trial correlation (known or assumed). Given ``(t1, t2, rb)`` the model is
Gaussian: ``y_i ~ N(A_i mu, A_i (Sigma + S_i) A_i')`` over the reported outcomes (``A_i`` selects
them), so ``mu | t1, t2, rb, y`` is bivariate normal with closed-form mean and covariance and the
marginal likelihood is closed-form. The three variance parameters are integrated by a tensor
Gauss-Legendre rule in ``(log t1, log t2, atanh rb)`` -- on these scales the integrand is analytic
in a strip of half-width about pi/2 around the real axis, like the univariate engine's -- on panels
that cover all but ``exp(-30)`` of the posterior (found by a scan). The posterior of ``mu`` (and of a
new trial's ``theta_new``) is then a mixture of bivariate normals over the nodes, and rectangle
probabilities are exact sums of bivariate normal CDFs (Owen's T function).

A fixed-effect model (``Sigma = 0``) has a single node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from ketabayes.inference._panel_cdf import PanelCDF
from ketabayes.marginals import CdfMarginal, Marginal, MixtureMarginal
from ketabayes.model.priors import Flat, Normal

__all__ = ["ExactBivariate", "BivariateGrid", "bvn_cdf"]

_LOG_2PI = math.log(2.0 * math.pi)


def bvn_cdf(h, k, r):
    """Standard bivariate normal CDF ``P(X <= h, Y <= k)`` with correlation ``r`` (vectorised).

    Owen's (1956) formula with Owen's T function (:func:`scipy.special.owens_t`)::

        Phi2(h, k; r) = (Phi(h) + Phi(k)) / 2 - T(h, a_h) - T(k, a_k) - beta

    with ``a_h = (k - r h) / (h sqrt(1 - r^2))``, ``a_k = (h - r k) / (k sqrt(1 - r^2))`` and
    ``beta = 1/2`` if ``h k < 0`` (or ``h k = 0`` and ``h + k < 0``), else 0.

    Examples
    --------
    >>> from ketabayes.inference.exact_bivariate import bvn_cdf
    >>> round(float(bvn_cdf(0.0, 0.0, 0.5)), 6)  # 1/4 + asin(0.5) / (2 pi)
    0.333333
    """
    h, k, r = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (h, k, r)))
    h = np.where(h == 0.0, 1e-300, h)
    k = np.where(k == 0.0, 1e-300, k)
    s = np.sqrt(np.maximum(1.0 - r * r, 1e-300))
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        ah = (k - r * h) / (h * s)
        ak = (h - r * k) / (k * s)
    beta = np.where(h * k < 0, 0.5, 0.0)
    out = 0.5 * (special.ndtr(h) + special.ndtr(k)) - special.owens_t(h, ah) - special.owens_t(k, ak) - beta
    # infinite bounds
    out = np.where(np.isposinf(h), special.ndtr(k), out)
    out = np.where(np.isposinf(k), np.where(np.isposinf(h), 1.0, special.ndtr(h)), out)
    out = np.where(np.isneginf(h) | np.isneginf(k), 0.0, out)
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class BivariateGrid:
    """Settings of the tensor quadrature over ``(log t1, log t2, atanh rb)``.

    The defaults give probabilities to about 1e-6 (checked against a rule with 200 nodes per
    dimension) and the CDFs of tau1, tau2 and rho to about 2e-5 (against a brute-force integration of
    a six-trial example) in about a second for ten trials; the rule is a tensor grid of some 60 nodes
    per dimension.

    Attributes
    ----------
    nodes_per_panel : int
        Gauss-Legendre nodes per panel and dimension.
    panel_width : float
        Panel width in the core (log density within ``core_cutoff`` of its maximum).
    tail_growth, max_tail_width : float
        Outside the core the panels widen geometrically (by ``tail_growth``, up to ``max_tail_width``)
        up to ``mass_cutoff``: they hold little mass, and the integrand is analytic there too.
    mass_cutoff, core_cutoff : float
        Cut-offs of the profile log density below its maximum.
    scan_step : float
        Step of the first scan; ``half_range`` its half-width in log(t) around the data scale.
    """

    nodes_per_panel: int = 6
    panel_width: float = 1.5
    tail_growth: float = 2.0
    max_tail_width: float = 6.0
    mass_cutoff: float = 25.0
    core_cutoff: float = 7.0
    scan_step: float = 1.0
    half_range: float = 16.0

    def to_dict(self):
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class ExactBivariate:
    """Exact posterior of the bivariate normal-normal model.

    Parameters
    ----------
    y, v : array_like, shape (k, 2)
        Estimates and sampling variances of the two outcomes (NaN where a trial does not report one).
    rho_within : array_like, shape (k,)
        Within-trial correlations (used where both outcomes are reported).
    prior_mu : pair of Normal or Flat
    prior_tau : pair of Prior, or None for a fixed-effect model
    rho_eta : float
        LKJ shape of the between-trial correlation: density ``∝ (1 - rb^2)^(eta - 1)`` (1: uniform).
    fixed : bool
    settings : BivariateGrid, optional

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_bivariate import ExactBivariate
    >>> from ketabayes.model.priors import Flat
    >>> post = ExactBivariate([[-15.79, 1.18]], [[8.32 ** 2, 0.577 ** 2]], [0.0], (Flat(), Flat()), None, fixed=True)
    >>> round(float(post.prob_rectangle("mean", -10.0, np.log(1.25))), 4)  # P(MD < -10, RR < 1.25)
    0.0368
    """

    def __init__(self, y, v, rho_within, prior_mu, prior_tau, *, rho_eta: float = 1.0, fixed: bool = False,
                 settings: BivariateGrid | None = None):
        self.y = np.asarray(y, dtype=float).reshape(-1, 2)
        self.v = np.asarray(v, dtype=float).reshape(-1, 2)
        self.rw = np.broadcast_to(np.asarray(rho_within, dtype=float), (self.y.shape[0],)).copy()
        self.obs = np.isfinite(self.y) & np.isfinite(self.v)
        if np.any(self.obs.sum(0) == 0):
            raise ValueError("each outcome needs at least one trial that reports it")
        self.prior_mu = tuple(prior_mu)
        for p in self.prior_mu:
            if not isinstance(p, (Normal, Flat)):
                raise TypeError(f"the exact engine needs normal or flat priors for mu, got {p!r}")
        self.prior_tau = None if fixed else tuple(prior_tau)
        self.rho_eta = float(rho_eta)
        self.fixed = bool(fixed)
        self.settings = settings or BivariateGrid()
        self._y0 = np.where(self.obs, self.y, 0.0)
        self._v0 = np.where(self.obs, self.v, 1.0)
        if self.fixed:
            self.t1 = self.t2 = self.rb = np.zeros(1)
            self.weights = np.ones(1)
            self.log_evidence = float(self._loglik(self.t1, self.t2, self.rb)[0][0])
        else:
            self._integrate()
        self.log_weights = np.log(self.weights)
        _, self.cond_mean, self.cond_cov = self._loglik(self.t1, self.t2, self.rb)

    # ------------------------------------------------------------------ closed forms given (t1, t2, rb)
    def _loglik(self, t1, t2, rb):
        """``log p(y | t1, t2, rb)`` (mu integrated out), and mean (n, 2) / covariance (n, 2, 2) of mu."""
        t1, t2, rb = (np.asarray(x, dtype=float)[:, None] for x in (t1, t2, rb))
        v1, v2 = self._v0[:, 0], self._v0[:, 1]
        o1, o2 = self.obs[:, 0], self.obs[:, 1]
        both = o1 & o2
        s11 = t1**2 + v1
        s22 = t2**2 + v2
        s12 = np.where(both, rb * t1 * t2 + self.rw * np.sqrt(v1 * v2), 0.0)
        det = np.where(both, s11 * s22 - s12**2, np.where(o1, s11, 1.0) * np.where(o2, s22, 1.0))
        # W = inverse covariance of the reported outcomes, zero rows/columns for the others
        w11 = np.where(both, s22 / det, np.where(o1, 1.0 / s11, 0.0))
        w22 = np.where(both, s11 / det, np.where(o2, 1.0 / s22, 0.0))
        w12 = np.where(both, -s12 / det, 0.0)
        y1, y2 = self._y0[:, 0], self._y0[:, 1]
        p11, p22, p12 = w11.sum(1), w22.sum(1), w12.sum(1)
        b1 = (w11 * y1 + w12 * y2).sum(1)
        b2 = (w12 * y1 + w22 * y2).sum(1)
        quad = (w11 * y1**2 + 2 * w12 * y1 * y2 + w22 * y2**2).sum(1)
        n_obs = int(self.obs.sum())
        out = -0.5 * np.log(det).sum(1) - 0.5 * n_obs * _LOG_2PI
        for j, p in enumerate(self.prior_mu):
            if isinstance(p, Normal):
                prec0 = 1.0 / p.sigma**2
                if j == 0:
                    p11, b1 = p11 + prec0, b1 + prec0 * p.mu
                else:
                    p22, b2 = p22 + prec0, b2 + prec0 * p.mu
                quad = quad + prec0 * p.mu**2
                out = out - 0.5 * math.log(2 * math.pi * p.sigma**2)
        pdet = p11 * p22 - p12**2
        c11, c22, c12 = p22 / pdet, p11 / pdet, -p12 / pdet
        m1 = c11 * b1 + c12 * b2
        m2 = c12 * b1 + c22 * b2
        out = out - 0.5 * (quad - (b1 * m1 + b2 * m2)) + _LOG_2PI - 0.5 * np.log(pdet)
        mean = np.stack([m1, m2], axis=-1)
        cov = np.stack([np.stack([c11, c12], -1), np.stack([c12, c22], -1)], -2)
        return out, mean, cov

    def _log_density(self, u1, u2, z):
        """Unnormalised log posterior density of ``(log t1, log t2, atanh rb)`` (flat arrays)."""
        t1, t2, rb = np.exp(u1), np.exp(u2), np.tanh(z)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lp = (self.prior_tau[0].logpdf(t1) + u1 + self.prior_tau[1].logpdf(t2) + u2
                  + self.rho_eta * np.log1p(-rb * rb))  # LKJ (1 - r^2)^(eta - 1) times the Jacobian 1 - r^2
            out = np.empty_like(lp)
            for s in range(0, lp.size, 20000):
                sl = slice(s, s + 20000)
                out[sl] = lp[sl] + self._loglik(t1[sl], t2[sl], rb[sl])[0]
        return np.where(np.isfinite(out), out, -np.inf)

    # ------------------------------------------------------------------ integration
    def _panels(self, grid, prof, top):
        st = self.settings
        x, w = special.roots_legendre(st.nodes_per_panel)

        def span(cut):
            idx = np.flatnonzero(prof > top - cut)
            return grid[max(idx[0] - 1, 0)], grid[min(idx[-1] + 1, grid.size - 1)]

        a, b = span(st.mass_cutoff)
        c, d = span(st.core_cutoff)
        n_core = max(2, math.ceil((d - c) / st.panel_width))
        core = np.linspace(c, d, n_core + 1)
        width = (d - c) / n_core

        def tail(length):
            out, dist, wd = [], 0.0, width
            while dist < length * (1 - 1e-12):
                wd = min(wd * st.tail_growth, st.max_tail_width)
                dist = min(dist + wd, length)
                out.append(dist)
            return np.asarray(out)

        edges = np.concatenate([c - tail(c - a)[::-1], core, d + tail(b - d)])
        half = 0.5 * np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        return (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel(), edges

    def _integrate(self):
        st = self.settings
        scales = [math.sqrt(float(np.nanmedian(self.v[:, j]))) + float(np.nanstd(self.y[:, j])) for j in (0, 1)]
        grids = []
        for j in (0, 1):
            lo, hi = math.log(scales[j]) - st.half_range, math.log(scales[j]) + 0.5 * st.half_range
            lb, ub = self.prior_tau[j].bounds()
            if lb > 0:
                lo = max(lo, math.log(lb))
            if math.isfinite(ub):
                hi = min(hi, math.log(ub))
            grids.append(np.arange(lo, hi + st.scan_step, st.scan_step))
        gz = np.arange(-13.0, 13.0 + st.scan_step, st.scan_step)
        U1, U2, Z = np.meshgrid(grids[0], grids[1], gz, indexing="ij")
        ld = self._log_density(U1.ravel(), U2.ravel(), Z.ravel()).reshape(U1.shape)
        top = float(ld.max())
        if not np.isfinite(top):
            raise FloatingPointError("the posterior of (tau1, tau2, rho) could not be evaluated")
        n1, w1, e1 = self._panels(grids[0], ld.max((1, 2)), top)
        n2, w2, e2 = self._panels(grids[1], ld.max((0, 2)), top)
        nz, wz, ez = self._panels(gz, ld.max((0, 1)), top)
        U1, U2, Z = (a.ravel() for a in np.meshgrid(n1, n2, nz, indexing="ij"))
        LW = np.log(np.einsum("i,j,k->ijk", w1, w2, wz).ravel())
        logw = self._log_density(U1, U2, Z) + LW
        keep = logw > logw.max() - 28.0
        log_z = special.logsumexp(logw[keep])
        # each parameter's marginal: node masses (the other two summed over, every node: the many nodes
        # dropped from the mixtures below hold ~1e-7 together) -> CDF between the nodes
        full = (logw - special.logsumexp(logw)).reshape(n1.size, n2.size, nz.size)
        self._param_cdf = {
            name: PanelCDF(edges, special.logsumexp(full, axis=tuple(a for a in range(3) if a != ax)), np.log(w),
                           st.nodes_per_panel)
            for ax, (name, edges, w) in enumerate((("tau1", e1, w1), ("tau2", e2, w2), ("rho", ez, wz)))}
        self.t1, self.t2, self.rb = np.exp(U1[keep]), np.exp(U2[keep]), np.tanh(Z[keep])
        self.weights = np.exp(logw[keep] - log_z)
        self.log_evidence = float(log_z)
        self.n_nodes = (n1.size, n2.size, nz.size)

    # ------------------------------------------------------------------ marginals and joint probabilities
    def components(self, target: str = "mean"):
        """Weights, means (n, 2) and covariances (n, 2, 2) of the mixture for ``mean`` or ``predictive``."""
        cov = self.cond_cov
        if target == "predictive":
            sb = np.stack([np.stack([self.t1**2, self.rb * self.t1 * self.t2], -1),
                           np.stack([self.rb * self.t1 * self.t2, self.t2**2], -1)], -2)
            cov = cov + sb
        elif target != "mean":
            raise ValueError(f"target must be 'mean' or 'predictive', got {target!r}")
        return self.weights, self.cond_mean, cov

    def marginal(self, target: str, j: int) -> MixtureMarginal:
        w, m, c = self.components(target)
        return MixtureMarginal(w, m[:, j], np.sqrt(c[:, j, j]))

    def prob_rectangle(self, target: str, a: float, b: float) -> float:
        """``P(X1 <= a, X2 <= b)`` for the mean or predictive pair (exact mixture of bivariate normal CDFs)."""
        w, m, c = self.components(target)
        s1, s2 = np.sqrt(c[:, 0, 0]), np.sqrt(c[:, 1, 1])
        r = c[:, 0, 1] / (s1 * s2)
        return float(w @ bvn_cdf((a - m[:, 0]) / s1, (b - m[:, 1]) / s2, r))

    def prob_quadrant(self, target: str, a: float, b: float, s1: float = 1.0, s2: float = 1.0) -> float:
        """``P(s1 X1 <= s1 a, s2 X2 <= s2 b)`` with signs ``s1, s2`` in {1, -1} (which side of each cut)."""
        w, m, c = self.components(target)
        sd1, sd2 = np.sqrt(c[:, 0, 0]), np.sqrt(c[:, 1, 1])
        r = s1 * s2 * c[:, 0, 1] / (sd1 * sd2)
        return float(w @ bvn_cdf(s1 * (a - m[:, 0]) / sd1, s2 * (b - m[:, 1]) / sd2, r))

    def param_cdf(self, name: str, x) -> np.ndarray:
        """Posterior CDF of ``tau1``, ``tau2`` or ``rho`` (between-trial SDs and correlation).

        The marginal density is known at the quadrature nodes of its own coordinate (``log tau``
        or ``atanh rho``: node mass over node weight); between them the CDF integrates the
        interpolated log density panel by panel (:class:`~ketabayes.inference._panel_cdf.PanelCDF`),
        so it is exact to the accuracy of the rule, like the CDFs of the other engines.
        """
        x = np.asarray(x, dtype=float)
        if self.fixed:
            return (x >= 0.0).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.log(x) if name in ("tau1", "tau2") else np.arctanh(np.clip(x, -1.0, 1.0))
        return self._param_cdf[name].cdf(w)

    def param_ppf(self, name: str, q) -> np.ndarray:
        """Posterior quantiles of ``tau1``, ``tau2`` or ``rho`` (Brent's method on :meth:`param_cdf`)."""
        q = np.asarray(q, dtype=float)
        if self.fixed:
            return np.zeros(q.shape)
        w = self._param_cdf[name].ppf(q)
        return np.exp(w) if name in ("tau1", "tau2") else np.tanh(w)

    def param_stats(self, name: str, qs) -> list[float]:
        """``[mean, sd, *quantiles]`` of ``tau1``, ``tau2`` or ``rho``.

        Mean and SD are quadrature sums (exact to the rule); quantiles solve :meth:`param_cdf`.
        """
        x = {"tau1": self.t1, "tau2": self.t2, "rho": self.rb}[name]
        if self.fixed:
            return [0.0, 0.0, *([0.0] * len(qs))]
        mean = float(self.weights @ x)
        sd = float(math.sqrt(max(self.weights @ x**2 - mean**2, 0.0)))
        return [mean, sd, *np.atleast_1d(self.param_ppf(name, np.asarray(qs, dtype=float)))]

    def param_marginal(self, name: str) -> Marginal:
        """Exact posterior of ``tau1``, ``tau2`` or ``rho`` as a :class:`~ketabayes.marginals.Marginal`."""
        mean, sd = self.param_stats(name, [])
        return CdfMarginal(lambda x: self.param_cdf(name, x), mean, sd, lower=0.0 if name != "rho" else -1.0,
                           ppf=lambda q: self.param_ppf(name, q))

    def sample(self, n: int, rng: np.random.Generator) -> dict:
        """Draws of ``mu`` (n, 2), ``theta_new`` (n, 2), ``tau1, tau2, rho`` (node values drawn by weight)."""
        idx = rng.choice(self.weights.size, size=n, p=self.weights)
        out = {"tau1": self.t1[idx], "tau2": self.t2[idx], "rho": self.rb[idx]}
        for target in ("mean", "predictive"):
            _, m, c = self.components(target)
            L = np.linalg.cholesky(c[idx] + 1e-300 * np.eye(2))
            out[target] = m[idx] + np.einsum("nij,nj->ni", L, rng.standard_normal((n, 2)))
        return out
