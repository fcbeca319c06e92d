"""Exact posterior of the normal-normal random-effects model by integration over tau.

Model::

    y_i | theta_i ~ N(theta_i, v_i)          (v_i = se_i**2, known)
    theta_i | mu, tau ~ N(mu, tau**2)
    mu ~ Normal(m0, s0**2) or flat,  tau ~ p(tau)

(Other priors for ``mu`` -- Student-t, Cauchy, truncated, a point mass -- are handled too: a point
mass fixes ``mu``; for the others the Gaussian conditional below is the *likelihood* of ``mu`` given
``tau``, which :mod:`ketabayes.inference._mu_grid` integrates against the prior by quadrature at
every ``tau`` node, so the posterior becomes a 2-D quadrature.)

Given ``tau`` everything is Gaussian (Röver 2020, sec. 2): with
``w_i = 1 / (v_i + tau**2)`` and ``P = sum(w) + 1/s0**2``,

* ``mu | tau, y ~ N(m(tau), 1/P)`` with ``m = (sum(w y) + m0/s0**2) / P``;
* ``theta_new | tau, y ~ N(m, 1/P + tau**2)``;
* ``theta_i | tau, y ~ N((1-B_i) y_i + B_i m, (1-B_i) v_i + B_i**2 / P)``,
  ``B_i = v_i / (v_i + tau**2)``;
* the marginal likelihood ``p(y | tau)`` is closed-form.

So the posterior of every quantity is a one-dimensional integral over ``tau``,
computed as follows.

1. **Standardised scale.** The data are centred at the median estimate ``c`` and
   divided by ``s = sqrt(median(v))``; priors are transformed accordingly and every
   result is transformed back (the marginals keep standardised components, so
   probabilities stay accurate for estimates of any size, e.g. ``1e8 +/- 0.1`` or
   scales ``1e-150``..``1e150``).
2. **Range from prior and likelihood.** In ``u = log(tau / s)`` a scan covers where the
   likelihood varies (below the smallest and above the largest within-study sd and
   the spread of the estimates) and the prior's quantiles ``1e-14 .. 1 - 1e-14``,
   together with the ends of the prior's support (e.g. ``uniform``'s upper bound) as
   exact breakpoints. It is bisected wherever neighbouring log densities differ by
   more than 1 (so a peak of any width is resolved) and extended until the density
   has fallen by ``exp(-32)`` and the extrapolated mass beyond each end is below
   ``1e-13``. Prior mass below the smallest representable ``tau`` (``1e-300``;
   possible under very wide log-scale priors), where the likelihood equals its value
   at ``tau = 0``, becomes one component at ``tau = 0`` weighted by the prior's CDF.
3. **Checked quadrature.** Composite Gauss-Legendre (16 nodes per panel) on panels
   over which the log density changes by at most 6; on every panel near the peak the
   16-point rule is compared with an 8-point rule (for the density and the density
   times the conditional mean of ``mu``), and panels failing the check are split.
   A posterior that does not decay within the representable range (an improper
   posterior) or a check that keeps failing raises :class:`ExactIntegrationError`,
   which suggests NUTS.

The posterior of ``mu``, ``theta_i`` and ``theta_new`` is then a mixture of normals
over the quadrature nodes (:class:`~ketabayes.marginals.MixtureMarginal`),
whose CDF and quantiles are computed exactly.

Accuracy
--------
Posterior probabilities (CDF values of ``mu``, ``theta_i``, ``theta_new``) to
``1e-8`` absolute, quantiles and means of ``mu`` to ``1e-8`` posterior sd, and the
CDF of ``tau`` to ``1e-7``, for data scales ``1e-150 .. 1e150``, offsets, outliers,
variance ratios up to ``1e20``, narrow and nearly flat priors and ``k = 1 ..
100,000`` (``tests/test_exact_robust.py`` checks this against an independent brute
force; the errors measured there are below ``1e-10`` for probabilities).
Priors whose scale lies outside ``1e-200 .. 1e200`` are rejected with a
:class:`~ketabayes.errors.PriorError`.

References
----------
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R
package. J Stat Softw 93(6):1-51. doi:10.18637/jss.v093.i06
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
from scipy import optimize, special

from ketabayes.errors import DataError, ExactIntegrationError, PriorError
from ketabayes.inference._log_scale_quadrature import QuadratureSettings, integrate_log_scale
from ketabayes.inference._mu_grid import GridTargetMarginal, MuGrid
from ketabayes.marginals import Marginal, MixtureMarginal, PointMass
from ketabayes.model.priors import Flat, Normal, Prior
from ketabayes.model.priors_extra import Point, resolve_prior

__all__ = ["ExactIntegrationError", "ExactNormalNormal", "QuadratureSettings", "prior_tau_nodes"]  # the first two re-exported

_LOG_2PI = math.log(2.0 * math.pi)


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

    Raises
    ------
    DataError
        Non-finite estimates or variances, or variances that are not positive.
    PriorError
        The prior of tau and the data differ in scale by more than about 1e290.
    ExactIntegrationError
        The quadrature could not capture the posterior to the documented accuracy
        (e.g. an improper posterior); use NUTS.

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
        y = np.asarray(yi, dtype=float).ravel()
        v = np.asarray(vi, dtype=float).ravel()
        if y.shape != v.shape or y.size == 0:
            raise DataError("yi and vi must be non-empty and of equal length")
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            raise DataError(f"non-finite effect estimate at position {int(bad[0])}", column="yi")
        bad = np.flatnonzero(~(np.isfinite(v) & (v > 0)))
        if bad.size:
            raise DataError(f"sampling variance must be positive and finite, got {v[bad[0]]!r} "
                            f"at position {int(bad[0])}", column="vi")
        if not isinstance(prior_mu, Prior) or prior_mu.support != "real":
            raise TypeError(f"the exact engine needs a prior for mu on the real line, got {prior_mu!r}")
        if isinstance(prior_mu, Flat):
            self._mode = "flat"
        elif isinstance(prior_mu, Normal) and not prior_mu.truncated:
            self._mode = "normal"
        elif isinstance(prior_mu, Point):
            self._mode = "point"
        elif hasattr(prior_mu, "cdf"):
            self._mode = "grid"  # Student-t, Cauchy, truncated priors: integrate over mu as well
        else:
            raise TypeError(f"the exact engine cannot integrate over the prior {prior_mu} for mu")
        prior_tau = resolve_prior(prior_tau, v)
        self.y, self.v = y, v
        self.prior_mu = prior_mu
        self.prior_tau = prior_tau
        self.fixed = bool(fixed)
        self.settings = settings or QuadratureSettings()
        # standardised scale: y = c + s y', v = s^2 v', tau = s tau', mu = c + s mu'
        self._c = float(np.median(y))
        self._s = float(np.sqrt(np.median(v)))
        self._log_s = math.log(self._s)
        self._ys = (y - self._c) / self._s
        self._vs = v / self._s**2
        if self._mode == "normal":
            self._m0 = (prior_mu.mu - self._c) / self._s
            self._s0 = prior_mu.sigma / self._s
        elif self._mode == "point":
            self._m0 = (prior_mu.value - self._c) / self._s
        elif self._mode == "grid":
            loc, sc = getattr(prior_mu, "scale_points", lambda: (prior_mu.mu, prior_mu.sigma))()
            lo_b, hi_b = prior_mu.bounds()
            self._grid = MuGrid(lambda x: prior_mu.logpdf(self._c + self._s * x) + self._log_s,
                                (loc - self._c) / self._s, sc / self._s, (lo_b - self._c) / self._s,
                                (hi_b - self._c) / self._s)
        self._log_jac = -self.y.size * self._log_s + (self._log_s if self._mode == "flat" else 0.0)
        if self.fixed:
            self.u_nodes = np.array([-np.inf])
            self._t_nodes = np.zeros(1)
            self.log_weights = np.zeros(1)
            self.weights = np.ones(1)
            self.edges = None
            self._atom = 0.0
            m, var, ll = self._gauss_std(self._t_nodes)
            self.log_evidence = float(ll[0]) + self._log_jac
        else:
            if prior_tau is None:
                raise ValueError("a random-effects model needs a prior for tau")
            self._integrate()
            m, var, _ = self._gauss_std(self._t_nodes)
        self.tau_nodes = self._s * self._t_nodes
        self._cm, self._cv = m, var
        self.cond_mean = self._c + self._s * m
        self.cond_var = self._s**2 * var

    # ------------------------------------------------------------------
    # closed forms given tau (standardised scale)
    # ------------------------------------------------------------------
    def _gauss_std(self, t):
        """Mean and variance of ``mu | tau', y'`` and ``log p(y' | tau')`` for an array of ``tau'``."""
        t = np.asarray(t, dtype=float)
        shape = t.shape
        t = t.ravel()
        k = self._ys.size
        m, var, ll = np.empty(t.size), np.empty(t.size), np.empty(t.size)
        step = max(1, 2_000_000 // k)
        normal = self._mode == "normal"
        with np.errstate(over="ignore", under="ignore"):
            for i in range(0, t.size, step):
                tv = self._vs + t[i:i + step, None] ** 2
                w = 1.0 / tv
                if self._mode == "point":
                    r = self._ys - self._m0
                    ll[i:i + step] = -0.5 * (np.log(tv).sum(-1) + k * _LOG_2PI + (r * r * w).sum(-1))
                    m[i:i + step], var[i:i + step] = self._m0, 0.0
                    continue
                prec = w.sum(-1)
                num = w @ self._ys
                if normal:
                    p0 = 1.0 / self._s0**2
                    prec = prec + p0
                    num = num + p0 * self._m0
                mm = num / prec
                resid = self._ys - mm[:, None]
                out = -0.5 * (np.log(tv).sum(-1) + k * _LOG_2PI) - 0.5 * (w * resid**2).sum(-1)
                if normal:
                    out = out - 0.5 * (mm - self._m0) ** 2 * p0 - 0.5 * np.log(prec / p0)
                else:
                    out = out + 0.5 * _LOG_2PI - 0.5 * np.log(prec)
                if self._mode == "grid":
                    # the flat-prior conditional is the likelihood of mu: integrate the prior against it
                    nodes, lw = self._grid.rule(mm, np.sqrt(1.0 / prec))
                    with np.errstate(divide="ignore", invalid="ignore"):
                        lc = special.logsumexp(lw, axis=1, keepdims=True)
                        pw = np.exp(lw - lc)
                    out = out + lc[:, 0]
                    mm = (pw * nodes).sum(1)
                    prec = 1.0 / np.maximum((pw * (nodes - mm[:, None]) ** 2).sum(1), 1e-300)
                m[i:i + step], var[i:i + step], ll[i:i + step] = mm, 1.0 / prec, out
        return m.reshape(shape), var.reshape(shape), ll.reshape(shape)

    def _conditional(self, tau):
        """Mean and variance of ``mu | tau, y`` (original scale) for an array of tau values."""
        m, var, _ = self._gauss_std(np.asarray(tau, dtype=float) / self._s)
        return self._c + self._s * m, self._s**2 * var

    def _log_u_density(self, u, with_mean: bool = False):
        """Unnormalised log posterior density of the standardised ``u = log(tau / s)``."""
        u = np.asarray(u, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            t = np.exp(u)
            m, var, ll = self._gauss_std(t)
            lp = np.asarray(self.prior_tau.logpdf(np.exp(u + self._log_s)), dtype=float) + u + ll
        lp = np.where(np.isfinite(lp), lp, -np.inf)
        return (lp, m, var) if with_mean else lp

    # ------------------------------------------------------------------
    # integration over u = log(tau / s)
    # ------------------------------------------------------------------
    def _limits(self):
        """Range of standardised u: the prior's support, tau and tau'^2 representable."""
        lo = max(-690.0 - self._log_s, -700.0)
        hi = min(690.0 - self._log_s, 350.0)
        lo_b, hi_b = self.prior_tau.bounds()
        lo_hard = hi_hard = False
        if lo_b > 0:
            lb = math.log(lo_b) - self._log_s
            lo_hard = lb >= lo
            lo = max(lo, lb)
        if math.isfinite(hi_b):
            hb = math.log(hi_b) - self._log_s
            hi_hard = hb <= hi
            hi = min(hi, hb)
        if not lo < hi:
            raise PriorError(f"the support of the prior {self.prior_tau} lies outside the range of tau the exact "
                             f"engine can represent for data of scale {self._s:.3g}; rescale the data or the prior")
        return lo, hi, lo_hard, hi_hard

    def _scan_points(self, lo, hi):
        """Initial scan: the likelihood's zone, the prior's quantiles, a uniform grid between."""
        st = self.settings
        sv = 0.5 * np.log(self._vs)
        spread = float(np.max(self._ys) - np.min(self._ys)) + math.sqrt(float(np.max(self._vs)))
        pts = [float(np.min(sv)) - 6.0, math.log(spread) + 6.0, float(np.median(sv))]
        prior_q = []
        ppf = getattr(self.prior_tau, "ppf", None)
        if ppf is not None:
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                q = np.asarray(ppf(np.array([1e-14, 1e-6, 1e-3, 0.1, 0.5, 0.9, 0.999, 1 - 1e-6, 1 - 1e-14])),
                               dtype=float)
                lq = np.log(q[(q > 0) & np.isfinite(q)]) - self._log_s
            prior_q = [float(x) for x in lq if np.isfinite(x)]
        a = min(pts + prior_q)
        b = max(pts + prior_q)
        a, b = max(a, lo), min(b, hi)
        if not a < b:
            a, b = (lo, min(lo + 2 * st.scan_step, hi)) if a >= hi else (max(hi - 2 * st.scan_step, lo), hi)
        n = max(9, math.ceil((b - a) / st.scan_step) + 1)
        grid = np.concatenate([np.linspace(a, b, n), [x for x in prior_q if a < x < b]])
        return np.unique(grid)

    def _integrate(self):
        lo, hi, lo_hard, hi_hard = self._limits()

        def lower_atom():
            # prior mass below the smallest representable tau: there the likelihood equals its value at
            # tau = 0 (to exp(-30)), so that mass is a component at tau = 0 weighted by the prior's CDF
            cdf = getattr(self.prior_tau, "cdf", None)
            if cdf is None or not lo < 0.5 * float(np.log(np.min(self._vs))) - 15.0:
                return -np.inf
            p = float(cdf(math.exp(lo + self._log_s)))
            if not p > 0:
                return -np.inf
            return math.log(p) + float(self._gauss_std(np.zeros(1))[2][0]) - self._log_s  # the nodes omit log s

        rule = integrate_log_scale(lambda u: self._log_u_density(u, with_mean=True), lo, hi, lo_hard, hi_hard,
                                   self._scan_points(lo, hi), self.settings, lower_atom=lower_atom,
                                   what=f"tau (prior {self.prior_tau})")
        self._atom = rule.atom
        self.edges = rule.edges
        self._gl = (rule.x, rule.w)
        self.u_nodes = rule.u
        with np.errstate(under="ignore"):
            self._t_nodes = np.exp(rule.u)
        self.log_weights = rule.log_weights
        self.weights = np.exp(self.log_weights)
        self._log_density_norm = rule.log_z
        self.log_evidence = rule.log_z + self._log_jac + self._log_s  # d tau = s tau' du

    # ------------------------------------------------------------------
    # tau
    # ------------------------------------------------------------------
    def tau_pdf(self, tau):
        """Posterior density of tau."""
        tau = np.asarray(tau, dtype=float)
        if self.fixed:
            raise ValueError("tau is fixed at 0 in a fixed-effect model")
        with np.errstate(divide="ignore"):
            u = np.log(tau) - self._log_s
        return np.exp(self._log_u_density(u) - self._log_density_norm) / tau

    @cached_property
    def _edge_cdf(self):
        """Posterior CDF of tau at the panel edges (exact sums of the quadrature weights)."""
        n_panels = len(self.edges) - 1
        lw = self.log_weights[1:] if self._atom > 0 else self.log_weights
        panel_mass = np.exp(special.logsumexp(lw.reshape(n_panels, -1), axis=1))
        return self._atom + np.concatenate([[0.0], np.cumsum(panel_mass)])

    def tau_cdf(self, tau):
        """Posterior CDF of tau (Gauss-Legendre on each panel)."""
        tau = np.atleast_1d(np.asarray(tau, dtype=float))
        if self.fixed:
            return (tau >= 0).astype(float)
        with np.errstate(divide="ignore"):
            u = np.log(tau) - self._log_s
        return self._cdf_u(u.ravel()).reshape(tau.shape)

    def _cdf_u(self, u):
        """Posterior CDF of the standardised ``u = log(tau / s)``."""
        edges = self.edges
        x, w = self._gl
        cum = self._edge_cdf
        out = np.where(u >= edges[-1], 1.0, np.where(u > -np.inf, self._atom, 0.0))
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
        return np.clip(out, 0.0, 1.0)

    def tau_ppf(self, q):
        """Posterior quantiles of tau (Brent's method in log tau within the panel holding each quantile)."""
        q = np.atleast_1d(np.asarray(q, dtype=float))
        if self.fixed:
            return np.zeros_like(q)
        edges, cum = self.edges, self._edge_cdf
        out = np.full(q.shape, np.nan)
        for idx in np.ndindex(q.shape):
            qq = q[idx]
            if not 0.0 <= qq <= 1.0:
                continue
            if qq <= self._atom:
                out[idx] = 0.0  # within the mass below the smallest representable tau
                continue
            p = int(np.clip(np.searchsorted(cum, qq) - 1, 0, len(edges) - 2))
            lo, hi = edges[p], edges[p + 1]

            def f(u, qq=qq):
                return float(self._cdf_u(np.array([u]))[0]) - qq

            if f(lo) >= 0.0:
                uq = lo
            elif f(hi) <= 0.0:
                uq = hi
            else:
                uq = optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-14)
            out[idx] = math.exp(uq + self._log_s)
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
        """Posterior of tau as a :class:`~ketabayes.marginals.Marginal` (exact)."""
        return _TauMarginal(self)

    # ------------------------------------------------------------------
    # marginals of mu, theta_new and theta_i
    # ------------------------------------------------------------------
    def _grid_marginal(self, alpha, beta, s) -> Marginal:
        """Posterior of ``alpha + beta mu + N(0, s^2)`` (standardised, per tau node) when mu is integrated on a grid."""
        t = self._t_nodes
        m, var, _ = self._flat_conditional(t)
        sd = np.sqrt(var)
        return GridTargetMarginal(self._grid, self.weights, m, sd, self._grid.log_c(m, sd), alpha, beta, s,
                                  loc=self._c, scale=self._s)

    def _flat_conditional(self, t):
        """Flat-prior conditional (the Gaussian likelihood of mu) given standardised tau."""
        w = 1.0 / (self._vs + t[:, None] ** 2)
        prec = w.sum(-1)
        return (w @ self._ys) / prec, 1.0 / prec, None

    @cached_property
    def mu(self) -> Marginal:
        """Posterior of the average effect."""
        if self._mode == "point":
            return PointMass(self.prior_mu.value)
        if self._mode == "grid":
            return self._grid_marginal(0.0, 1.0, 0.0)
        return MixtureMarginal(self.weights, self._cm, np.sqrt(self._cv), loc=self._c, scale=self._s)

    @cached_property
    def theta_new(self) -> Marginal:
        """Predictive distribution of the effect in a new study."""
        if self._mode == "grid":
            return self._grid_marginal(0.0, 1.0, self._t_nodes)
        return MixtureMarginal(self.weights, self._cm, np.maximum(np.sqrt(self._cv + self._t_nodes**2), 1e-150),
                               loc=self._c, scale=self._s)

    def theta(self, i: int) -> Marginal:
        """Posterior of study ``i``'s own (shrunken) effect."""
        t2 = self._t_nodes**2
        vi = self._vs[i]
        b = vi / (vi + t2)
        if self._mode == "grid":
            return self._grid_marginal((1.0 - b) * self._ys[i], b, np.sqrt((1.0 - b) * vi))
        mean = (1.0 - b) * self._ys[i] + b * self._cm
        var = (1.0 - b) * vi + b**2 * self._cv
        return MixtureMarginal(self.weights, mean, np.maximum(np.sqrt(var), 1e-150), loc=self._c, scale=self._s)

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
        cdf = self._cdf_u(grid_u)
        cdf[0], cdf[-1] = self._atom, 1.0
        keep = np.concatenate([[True], np.diff(cdf) > 0])
        r = rng.uniform(size=n)
        out = np.exp(np.interp(r, cdf[keep], grid_u[keep]) + self._log_s)
        return np.where(r < self._atom, 0.0, out)

    def _sample_mu_grid(self, t, rng):
        m, var, _ = self._flat_conditional(t)
        nodes, lw = self._grid.rule(m, np.sqrt(var))
        return _sample_rows(nodes, lw, rng)

    def sample(self, n: int, rng: np.random.Generator, *, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws of ``tau, mu, theta (n, k), theta_new`` (drawn on the standardised scale).

        ``studies=False`` leaves out the ``(n, k)`` study effects (and the memory they need: 8 bytes per
        draw and study); their exact marginals remain available through :meth:`theta`.
        """
        tau = self.sample_tau(n, rng)
        t = tau / self._s
        if self._mode == "grid":
            mu = self._sample_mu_grid(t, rng)
        else:
            m, var, _ = self._gauss_std(t)
            mu = rng.normal(m, np.sqrt(var))
        c, s = self._c, self._s
        out = {"tau": tau, "mu": c + s * mu}
        if studies:
            t2 = t[:, None] ** 2
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                prec = 1.0 / self._vs + np.where(t2 > 0, 1.0 / t2, np.inf)
                cmean = np.where(t2 > 0, (self._ys / self._vs + mu[:, None] / t2) / prec, mu[:, None])
                csd = np.where(t2 > 0, np.sqrt(1.0 / prec), 0.0)
            out["theta"] = c + s * (cmean + csd * rng.standard_normal((n, self.y.size)))
        out["theta_new"] = c + s * (mu + t * rng.standard_normal(n))
        return out


def _sample_rows(nodes, lw, rng):
    """One draw per row from the densities given on quadrature nodes (inverse of the interpolated CDF)."""
    p = np.exp(lw - special.logsumexp(lw, axis=1, keepdims=True))
    cum = np.cumsum(p, axis=1)
    r = rng.uniform(size=(nodes.shape[0], 1))
    j = np.minimum((cum < r).sum(1), nodes.shape[1] - 1)
    return nodes[np.arange(nodes.shape[0]), j]


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
    from ketabayes.inference._log_scale_quadrature import gauss_legendre

    x, w = gauss_legendre(16)
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
