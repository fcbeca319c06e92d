"""Brute-force reference posterior of the normal-normal model (used by test_exact_robust.py).

Independent of :mod:`ketabayes.inference.exact`: the marginal likelihood given tau
is written from the sums ``a = sum w``, ``b = sum w y``, ``c = sum w y^2`` (not from
residuals), the data are shifted by their median and divided by their own scale
(the model is exactly equivariant under this), and the integrals over
``u = log(tau)`` use Simpson's rule on a dense uniform grid placed by a brute-force
scan of a very wide window (not the engine's panels). Probabilities of ``mu`` are
``E[Phi((x - m(tau)) / s(tau))]`` on the same grid; quantiles by ``brentq``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, optimize, special


class BruteForce:
    def __init__(self, y, v, prior_mu, prior_tau, n=20001, chunk=2_000_000, cutoff=60.0, n_scan=14001, n_mid=20001):
        y = np.asarray(y, dtype=float)
        v = np.asarray(v, dtype=float)
        self.c = float(np.median(y))
        self.s = float(np.sqrt(np.median(v)))
        self.y = (y - self.c) / self.s
        self.v = v / self.s**2
        self.flat = prior_mu.kind == "flat"
        if not self.flat:
            self.m0 = (prior_mu.mu - self.c) / self.s
            self.s0 = prior_mu.sigma / self.s
        self.prior_tau = prior_tau
        self.chunk = chunk
        lo_b, hi_b = prior_tau.bounds()
        # tau between 1e-300 and 1e300 on the original scale, and within the prior's support
        lo = math.log(lo_b / self.s) if lo_b > 0 else -690.0 - math.log(self.s)
        hi = math.log(hi_b / self.s) if math.isfinite(hi_b) else 690.0 - math.log(self.s)
        lo, hi = max(lo, -690.0), min(hi, 690.0)
        # brute-force scan of the whole window, then a dense grid where the log density is within `cutoff`
        grid = np.linspace(lo, hi, n_scan)
        lg = self.logdens(grid)
        top = np.max(lg)
        idx = np.flatnonzero(lg > top - cutoff)
        a, b = grid[max(idx[0] - 1, 0)], grid[min(idx[-1] + 1, grid.size - 1)]
        # a second, finer pass
        grid = np.linspace(a, b, n_mid)
        lg = self.logdens(grid)
        top = np.max(lg)
        idx = np.flatnonzero(lg > top - cutoff)
        a, b = grid[max(idx[0] - 1, 0)], grid[min(idx[-1] + 1, grid.size - 1)]
        self.u = np.linspace(a, b, n)
        lg = self.logdens(self.u)
        self.lgmax = lg.max()
        self.dens = np.exp(lg - self.lgmax)
        self.Z = integrate.simpson(self.dens, x=self.u)
        # prior mass below the smallest tau (1e-300) when the grid reaches it: the likelihood there is its
        # value at tau = 0, so that mass sits at tau = 0 (on this scale, log density = log prior + u + ll)
        self.atom = 0.0
        if a == lo and lo_b == 0 and self.dens[0] > 1e-30:
            ll0 = self.logdens_at_zero()
            self.atom = float(prior_tau.cdf(self.s * math.exp(lo))) * math.exp(ll0 - math.log(self.s) - self.lgmax)
        self.m0c, self.v0c = (x[0] for x in self._cond(np.zeros(1)))
        self.Zt = self.Z + self.atom
        self.m, self.var = self._cond(np.exp(self.u))

    def _sums(self, t):
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            return self._sums_raw(t)

    def _sums_raw(self, t):
        a = np.empty(t.size)
        b = np.empty(t.size)
        c = np.empty(t.size)
        logdet = np.empty(t.size)
        step = max(1, self.chunk // self.y.size)
        for i in range(0, t.size, step):
            tt = t[i:i + step, None] ** 2
            w = 1.0 / (self.v + tt)
            a[i:i + step] = w.sum(1)
            b[i:i + step] = w @ self.y
            c[i:i + step] = w @ (self.y**2)
            logdet[i:i + step] = np.log(self.v + tt).sum(1)
        return a, b, c, logdet

    def _cond(self, t):
        a, b, _, _ = self._sums(t)
        if not self.flat:
            a = a + 1 / self.s0**2
            b = b + self.m0 / self.s0**2
        return b / a, 1.0 / a

    def logdens_at_zero(self):
        a, b, c, logdet = self._sums(np.zeros(1))
        return float(self._ll(a, b, c, logdet)[0])

    def logdens(self, u):
        with np.errstate(over="ignore", under="ignore"):
            t = np.exp(u)
        a, b, c, logdet = self._sums(t)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            ll = self._ll(a, b, c, logdet)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lp = np.asarray(self.prior_tau.logpdf(self.s * t), dtype=float) + u + ll
        return np.where(np.isfinite(lp), lp, -np.inf)

    def _ll(self, a, b, c, logdet):
        if self.flat:
            ll = -0.5 * logdet - 0.5 * np.log(a) - 0.5 * (c - b * b / a)
        else:
            p0 = 1 / self.s0**2
            a2, b2, c2 = a + p0, b + self.m0 * p0, c + self.m0**2 * p0
            ll = -0.5 * logdet - 0.5 * np.log(a2 * self.s0**2) - 0.5 * (c2 - b2 * b2 / a2)
        return ll

    # -- summaries, on the original scale ------------------------------------------
    def E(self, g, g0=0.0):
        """Posterior mean of g(tau) given on the grid (g0: its value at tau = 0, for the mass there)."""
        return (integrate.simpson(self.dens * g, x=self.u) + self.atom * g0) / self.Zt

    def cdf_mu(self, x):
        xs = (x - self.c) / self.s
        return self.E(special.ndtr((xs - self.m) / np.sqrt(self.var)), special.ndtr((xs - self.m0c) / math.sqrt(self.v0c)))

    def cdf_new(self, x):
        xs = (x - self.c) / self.s
        z = (xs - self.m) / np.sqrt(self.var + np.exp(2 * self.u))
        return self.E(special.ndtr(z), special.ndtr((xs - self.m0c) / math.sqrt(self.v0c)))

    def mean_mu(self):
        return self.c + self.s * self.E(self.m, self.m0c)

    def cdf_tau(self, x):
        """P(tau <= x) by Simpson on the grid truncated at log(x / s) (grid point inserted)."""
        ux = math.log(x / self.s)
        if ux <= self.u[0]:
            return self.atom / self.Zt
        if ux >= self.u[-1]:
            return 1.0
        keep = self.u < ux
        uu = np.append(self.u[keep], ux)
        lg = self.logdens(uu)
        d = np.exp(lg - self.lgmax)
        return float((integrate.simpson(d, x=uu) + self.atom) / self.Zt)

    def sd_mu(self):
        mean = self.E(self.m, self.m0c)
        second = self.E(self.var + (self.m - mean) ** 2, self.v0c + (self.m0c - mean) ** 2)
        return self.s * math.sqrt(max(second, 0.0))

    def ppf_mu(self, q):
        # standardised bracket around the median of the conditional means, widened until it holds q
        f = lambda z: self.cdf_mu(self.c + self.s * z) - q  # noqa: E731
        sd = float(np.sqrt(np.min(self.var)))
        mid = float(np.median(self.m))
        lo, hi, w = mid - sd, mid + sd, sd
        while f(lo) > 0:
            w *= 2
            lo = mid - w
        while f(hi) < 0:
            w *= 2
            hi = mid + w
        z = optimize.brentq(f, lo, hi, xtol=1e-13 * sd, rtol=1e-15)
        return self.c + self.s * z
