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


class BruteForceHierarchical:
    """Brute-force reference posterior of the hierarchical normal model (used by test_exact_hierarchical_robust.py).

    Model: ``y ~ N(X b + Z u, diag(v + tau^2))``, ``u_g ~ N(0, sigma_g^2)`` per random-effect term ``g``,
    ``b_j ~ N(m_j, s_j^2)`` or flat. Independent of :mod:`ketabayes.inference.exact_hierarchical`:

    * given the variance components ``phi = (tau, sigma_1, ...)`` everything is computed from the
      *marginal* covariance ``S = diag(v + tau^2) + sum_g sigma_g^2 Z_g Z_g'`` of ``y`` (k x k), with the
      normal priors of ``b`` appended as pseudo-observations and ``b`` then flat: generalised least
      squares for ``b``, the BLUP ``u = G Z' S^-1 (y - X b)`` and its error covariance for ``u``
      (Henderson 1975), the restricted likelihood ``|S|^-1/2 |X' S^-1 X|^-1/2 exp(-r' S^-1 r / 2)``
      (the engine uses the mixed-model equations in the non-centred coefficients and Woodbury);
    * the data are shifted by their *mean* and divided by their *standard deviation* plus the root
      mean of ``v`` (the engine: median and root median of ``v``);
    * the integral over ``phi`` uses Simpson's rule on a dense uniform product grid in ``log(phi)``,
      placed by a brute-force scan of a wide window (a coarse product grid, then a fine one on the box
      where the log density is within ``cutoff`` of its maximum); with ``gauss=(panels, nodes)``, equal
      Gauss-Legendre panels in ``log(phi)`` on that box instead (for three components, where a Simpson
      grid fine enough is too large).

    Targets are rows ``a`` of ``A`` over ``(b, u)`` plus independent normal terms with variance
    ``pred @ phi^2``. The k x k covariance becomes ill-conditioned for group scales far above the data's
    scale (``window`` caps them at ``e^15`` standardised units): use :class:`BruteForceGrouped` for
    extreme priors of one grouping.
    """

    def __init__(self, y, v, X, prior_fixed, Z, term_of_col, priors, A, pred, *, n_coarse=None, n_fine=None,
                 cutoff=40.0, window=(-40.0, 15.0), chunk=20000, gauss=None, extend=True):
        y = np.asarray(y, dtype=float)
        v = np.asarray(v, dtype=float)
        k = y.size
        X = np.asarray(X, dtype=float).reshape(k, -1)
        Z = np.asarray(Z, dtype=float).reshape(k, -1)
        self.C = len(priors)
        self.priors = list(priors)
        term = np.asarray(term_of_col, dtype=int)
        # own standardisation: centre at the mean, scale by sd(y) + sqrt(mean(v))
        self.c = float(np.mean(y))
        self.s = float(np.std(y) + np.sqrt(np.mean(v)))
        ys = (y - self.c * X[:, 0]) / self.s
        vs = v / self.s**2
        q = X.shape[1]
        pseudo_X, pseudo_y, pseudo_v = [], [], []
        for j, pr in enumerate(prior_fixed):
            if pr.kind != "flat":
                row = np.zeros(q)
                row[j] = 1.0
                pseudo_X.append(row)
                pseudo_y.append((pr.mu - (self.c if j == 0 else 0.0)) / self.s)
                pseudo_v.append((pr.sigma / self.s) ** 2)
        self.k, self.q, self.r = k, q, Z.shape[1]
        self.Xa = np.vstack([X, np.array(pseudo_X).reshape(-1, q)])
        self.ya = np.concatenate([ys, pseudo_y])
        self.va = np.concatenate([vs, pseudo_v])
        self.Za = np.vstack([Z, np.zeros((len(pseudo_y), self.r))])
        self.ZZ = [Z[:, term == g] @ Z[:, term == g].T for g in range(self.C - 1)]
        self.term = term
        self.A = np.asarray(A, dtype=float)
        self.pred = np.asarray(pred, dtype=float)
        self.chunk = chunk
        n_coarse = n_coarse or {1: 4001, 2: 211, 3: 53}[self.C]
        n_fine = n_fine or {1: 8001, 2: 401, 3: 101}[self.C]
        # window in log(phi') per component: wide, and wider where a prior needs it (unless not `extend`:
        # the k x k covariance cannot be factorised for group scales ~1e13 times the data's)
        axes = []
        for pr in self.priors:
            lo_b, hi_b = pr.bounds()
            lo, hi = window
            ppf = getattr(pr, "ppf", None)
            if ppf is not None and extend:
                qs = np.asarray(ppf(np.array([1e-12, 1 - 1e-12])), dtype=float) / self.s
                with np.errstate(divide="ignore"):
                    lq = np.log(qs)
                lo = min(lo, float(lq[0]) - 5.0) if np.isfinite(lq[0]) else lo
                hi = max(hi, float(lq[1]) + 5.0) if np.isfinite(lq[1]) else hi
            # a bound of the prior's support ends the grid just inside it (the density is finite there)
            if lo_b > 0:
                lo = max(lo, math.log(lo_b / self.s) + 1e-9)
            if math.isfinite(hi_b):
                hi = min(hi, math.log(hi_b / self.s) - 1e-9)
            axes.append((lo, hi))
        grids = [np.linspace(a, b, n_coarse) for a, b in axes]
        box = self._box(grids, cutoff)
        grids = [np.linspace(a, b, n_fine) for a, b in box]
        box = self._box(grids, cutoff)  # a second, finer pass
        if gauss is None:
            self.grids = [np.linspace(a, b, n_fine) for a, b in box]
            self.weights = [integrate.simpson(np.eye(n_fine), x=g, axis=1) for g in self.grids]
        else:  # composite Gauss-Legendre: `gauss` = (panels, nodes) equal panels in log(phi) on the box
            panels, npts = gauss
            x, w = np.polynomial.legendre.leggauss(npts)
            self.grids, self.weights = [], []
            for a, b in box:
                e = np.linspace(a, b, panels + 1)
                h, mid = 0.5 * np.diff(e), 0.5 * (e[1:] + e[:-1])
                self.grids.append((mid[:, None] + h[:, None] * x).ravel())
                self.weights.append((h[:, None] * w).ravel())
        mesh = np.meshgrid(*self.grids, indexing="ij")
        U = np.stack([m.ravel() for m in mesh], axis=1)
        lp, tm, tv = self._evaluate(U, targets=True)
        shape = tuple(g.size for g in self.grids)
        self.lp = lp.reshape(shape)
        dens = np.exp(self.lp - self.lp.max())
        self.tm = tm.reshape(*shape, -1)
        self.tv = tv.reshape(*shape, -1)
        self.dens = dens
        self.Z_norm = self._integrate(dens)

    # ------------------------------------------------------------------ the density in u = log(phi')
    def _evaluate(self, U, targets=False):
        n = U.shape[0]
        lp = np.full(n, -np.inf)
        T = self.A.shape[0]
        tm, tv = np.zeros((n, T)), np.ones((n, T))
        for i in range(0, n, self.chunk):
            sl = slice(i, i + self.chunk)
            out = self._chunk(U[sl], targets)
            lp[sl] = out[0]
            if targets:
                tm[sl], tv[sl] = out[1], out[2]
        return lp, tm, tv

    def _chunk(self, U, targets):
        phi = np.exp(U)
        n = phi.shape[0]
        ka = self.ya.size
        S = np.zeros((n, ka, ka))
        idx = np.arange(ka)
        S[:, idx, idx] = self.va[None, :]
        S[:, idx[:self.k], idx[:self.k]] += phi[:, :1] ** 2
        for g in range(self.C - 1):
            S[:, :self.k, :self.k] += phi[:, g + 1, None, None] ** 2 * self.ZZ[g][None]
        L = np.linalg.cholesky(S)
        logdet_S = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
        Si_X = np.linalg.solve(S, np.broadcast_to(self.Xa, (n, *self.Xa.shape)))
        Si_y = np.linalg.solve(S, np.broadcast_to(self.ya, (n, ka))[..., None])[..., 0]
        XtSiX = np.einsum("ia,nib->nab", self.Xa, Si_X)
        XtSiy = np.einsum("ia,ni->na", self.Xa, Si_y)
        b = np.linalg.solve(XtSiX, XtSiy[..., None])[..., 0]
        resid = self.ya[None, :] - b @ self.Xa.T
        Si_r = np.linalg.solve(S, resid[..., None])[..., 0]
        _, logdet_x = np.linalg.slogdet(XtSiX)
        ll = -0.5 * (logdet_S + logdet_x + (resid * Si_r).sum(1))
        lp = ll.copy()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for c, pr in enumerate(self.priors):
                lp += np.asarray(pr.logpdf(self.s * phi[:, c]), dtype=float) + U[:, c]
        lp = np.where(np.isfinite(lp), lp, -np.inf)
        if not targets:
            return (lp,)
        # BLUP of u and the joint posterior covariance of (b, u)
        gdiag = phi[:, 1:][:, self.term] ** 2 if self.r else np.zeros((n, 0))
        ZG = self.Za[None] * gdiag[:, None, :]                           # (n, ka, r) = Z G
        u = np.einsum("nir,ni->nr", ZG, Si_r)
        Vb = np.linalg.inv(XtSiX)
        Si_ZG = np.linalg.solve(S, ZG)                                    # S^-1 Z G
        XtSiZG = np.einsum("ia,nir->nar", self.Xa, Si_ZG)                 # X' S^-1 Z G
        Cbu = -Vb @ XtSiZG
        ZGtSiZG = np.einsum("nir,nis->nrs", ZG, Si_ZG)
        Cuu = (np.zeros((n, self.r, self.r)) + np.eye(self.r)[None] * gdiag[:, None, :]) - ZGtSiZG \
            + np.einsum("nar,nab,nbs->nrs", XtSiZG, Vb, XtSiZG)
        coef = np.concatenate([b, u], axis=1)
        Cov = np.block([[Vb, Cbu], [np.swapaxes(Cbu, 1, 2), Cuu]])
        tm = coef @ self.A.T
        tv = np.einsum("ta,nab,tb->nt", self.A, Cov, self.A) + phi**2 @ self.pred.T
        return lp, tm, tv

    def _box(self, grids, cutoff):
        mesh = np.meshgrid(*grids, indexing="ij")
        U = np.stack([m.ravel() for m in mesh], axis=1)
        lp = self._evaluate(U)[0].reshape(tuple(g.size for g in grids))
        top = np.max(lp)
        box = []
        for c, g in enumerate(grids):
            prof = np.max(lp, axis=tuple(a for a in range(self.C) if a != c)) if self.C > 1 else lp
            idx = np.flatnonzero(prof > top - cutoff)
            box.append((g[max(idx[0] - 1, 0)], g[min(idx[-1] + 1, g.size - 1)]))
        return box

    def _integrate(self, f):
        out = f
        for c in reversed(range(self.C)):
            out = np.tensordot(out, self.weights[c], axes=([c], [0]))
        return out

    # ------------------------------------------------------------------ summaries (original scale)
    def _target_scale(self, t):
        """Target ``t`` on the original scale is ``shift + s x`` (``x`` standardised)."""
        return self.c * self.A[t, 0], self.s

    def cdf(self, t, x):
        shift, s = self._target_scale(t)
        xs = (x - shift) / s
        p = special.ndtr((xs - self.tm[..., t]) / np.sqrt(self.tv[..., t]))
        return float(self._integrate(self.dens * p) / self.Z_norm)

    def cdf_many(self, t, xs):
        """P(target t <= x) for each x of ``xs``."""
        return np.array([self.cdf(t, float(x)) for x in np.atleast_1d(xs)])

    def mean(self, t):
        shift, s = self._target_scale(t)
        return shift + s * float(self._integrate(self.dens * self.tm[..., t]) / self.Z_norm)

    def sd(self, t):
        m = float(self._integrate(self.dens * self.tm[..., t]) / self.Z_norm)
        second = float(self._integrate(self.dens * (self.tv[..., t] + self.tm[..., t] ** 2)) / self.Z_norm)
        return self.s * math.sqrt(max(second - m * m, 0.0))

    def ppf(self, t, q):
        m, sd = self.mean(t), self.sd(t)
        f = lambda x: self.cdf(t, x) - q  # noqa: E731
        lo, hi, w = m - sd, m + sd, sd
        while f(lo) > 0:
            w *= 2
            lo = m - w
        while f(hi) < 0:
            w *= 2
            hi = m + w
        return optimize.brentq(f, lo, hi, xtol=1e-12 * sd, rtol=1e-15)

    def component_cdf(self, c, x):
        """P(phi_c <= x): the other components integrated out, then cumulative Simpson on c's grid."""
        g = self.grids[c]
        f = self.dens
        for a in reversed(range(self.C)):
            if a != c:
                f = integrate.simpson(f, x=self.grids[a], axis=a)
        ux = math.log(x / self.s)
        if ux <= g[0]:
            return 0.0
        if ux >= g[-1]:
            return 1.0
        cum = integrate.cumulative_simpson(f, x=g, initial=0.0)
        # the density between grid points by cubic interpolation of the log density
        from scipy import interpolate

        spline = interpolate.CubicSpline(g, cum)
        return float(spline(ux) / cum[-1])


class BruteForceGrouped(BruteForceHierarchical):
    """Reference for one grouping (``C = 2``: ``tau`` and the group SD ``sigma``) by the two-stage reduction.

    Given ``(tau, sigma)`` each group's trials reduce to their precision-weighted mean ``ybar_g`` with
    precision ``W_g`` (the within-group part of the likelihood is closed form), and the groups form a
    normal-normal model ``ybar_g ~ N(mu, 1/W_g + sigma^2)``: scalar formulas that stay accurate for group
    scales of any size (no k x k matrix). The integration over ``(log tau, log sigma)`` is the parent's
    dense Simpson product grid. Targets: ``"mean"`` (mu), ``"predictive"`` (mu + N(0, tau^2 + sigma^2)),
    ``"group:<g>"`` (mu + alpha_g) and ``"predictive:<g>"`` (mu + alpha_g + N(0, tau^2)).
    """

    def __init__(self, y, v, groups, prior_mu, prior_tau, prior_sd, targets, *, n_coarse=211, n_fine=401,
                 cutoff=40.0, window=(-45.0, 60.0), chunk=20000):
        y = np.asarray(y, dtype=float)
        v = np.asarray(v, dtype=float)
        self.C = 2
        self.priors = [prior_tau, prior_sd]
        self.c = float(np.mean(y))
        self.s = float(np.std(y) + np.sqrt(np.mean(v)))
        self.ys, self.vs = (y - self.c) / self.s, v / self.s**2
        self.levels = list(dict.fromkeys(groups))
        self.G = np.array([[g == lv for lv in self.levels] for g in groups], dtype=float)  # (k, G)
        self.flat = prior_mu.kind == "flat"
        if not self.flat:
            self.m0, self.s0 = (prior_mu.mu - self.c) / self.s, prior_mu.sigma / self.s
        self.targets = list(targets)
        self.A = np.array([[1.0]] * len(self.targets))  # every target has the mean's shift
        self.chunk = chunk
        axes = []
        for pr in self.priors:
            lo_b, hi_b = pr.bounds()
            lo, hi = window
            ppf = getattr(pr, "ppf", None)
            if ppf is not None:
                qs = np.asarray(ppf(np.array([1e-12, 1 - 1e-12])), dtype=float) / self.s
                with np.errstate(divide="ignore"):
                    lq = np.log(qs)
                lo = min(lo, float(lq[0]) - 5.0) if np.isfinite(lq[0]) else lo
                hi = max(hi, float(lq[1]) + 5.0) if np.isfinite(lq[1]) else hi
            # a bound of the prior's support ends the grid just inside it (the density is finite there)
            if lo_b > 0:
                lo = max(lo, math.log(lo_b / self.s) + 1e-9)
            if math.isfinite(hi_b):
                hi = min(hi, math.log(hi_b / self.s) - 1e-9)
            axes.append((lo, hi))
        grids = [np.linspace(a, b, n_coarse) for a, b in axes]
        box = self._box(grids, cutoff)
        grids = [np.linspace(a, b, n_fine) for a, b in box]
        box = self._box(grids, cutoff)
        self.grids = [np.linspace(a, b, n_fine) for a, b in box]
        self.weights = [integrate.simpson(np.eye(n_fine), x=g, axis=1) for g in self.grids]
        mesh = np.meshgrid(*self.grids, indexing="ij")
        U = np.stack([m.ravel() for m in mesh], axis=1)
        lp, tm, tv = self._evaluate(U, targets=True)
        shape = tuple(g.size for g in self.grids)
        self.lp = lp.reshape(shape)
        self.dens = np.exp(self.lp - self.lp.max())
        self.tm = tm.reshape(*shape, -1)
        self.tv = tv.reshape(*shape, -1)
        self.Z_norm = self._integrate(self.dens)

    def _evaluate(self, U, targets=False):
        n = U.shape[0]
        lp = np.full(n, -np.inf)
        T = len(self.targets)
        tm, tv = np.zeros((n, T)), np.ones((n, T))
        for i in range(0, n, self.chunk):
            sl = slice(i, i + self.chunk)
            out = self._chunk(U[sl], targets)
            lp[sl] = out[0]
            if targets:
                tm[sl], tv[sl] = out[1], out[2]
        return lp, tm, tv

    def _chunk(self, U, targets):
        with np.errstate(over="ignore", under="ignore"):
            tau2, sig2 = np.exp(2.0 * U[:, 0]), np.exp(2.0 * U[:, 1])
        sv = self.vs[None, :] + tau2[:, None]                      # (n, k)
        w = 1.0 / sv
        W = w @ self.G                                             # (n, G)
        ybar = ((w * self.ys) @ self.G) / W
        resid = self.ys[None, :] - ybar @ self.G.T
        ll = -0.5 * (np.log(sv).sum(1) + np.log(W).sum(1) + (w * resid**2).sum(1))
        V = 1.0 / W + sig2[:, None]                                 # group level
        p = 1.0 / V
        P = p.sum(1)
        num = (p * ybar).sum(1)
        if not self.flat:
            P = P + 1.0 / self.s0**2
            num = num + self.m0 / self.s0**2
        mu = num / P
        ll += -0.5 * (np.log(V).sum(1) + (p * (ybar - mu[:, None]) ** 2).sum(1) + np.log(P))
        if not self.flat:
            ll += -0.5 * ((mu - self.m0) ** 2 / self.s0**2 + 2.0 * math.log(self.s0))
        lp = ll.copy()
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for c, pr in enumerate(self.priors):
                lp += np.asarray(pr.logpdf(self.s * np.exp(U[:, c])), dtype=float) + U[:, c]
        lp = np.where(np.isfinite(lp), lp, -np.inf)
        if not targets:
            return (lp,)
        B = sig2[:, None] / V                                       # shrinkage of each group towards mu
        tm = np.empty((U.shape[0], len(self.targets)))
        tv = np.empty_like(tm)
        for j, name in enumerate(self.targets):
            if name in ("mean", "predictive"):
                tm[:, j] = mu
                tv[:, j] = 1.0 / P + (tau2 + sig2 if name == "predictive" else 0.0)
            else:
                kind, g = name.split(":")
                gi = self.levels.index(g)
                b = B[:, gi]
                tm[:, j] = (1.0 - b) * mu + b * ybar[:, gi]
                tv[:, j] = (1.0 - b) ** 2 / P + b / W[:, gi] + (tau2 if kind == "predictive" else 0.0)
        return lp, tm, tv
