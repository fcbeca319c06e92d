"""Integration over ``mu`` for priors of the mean that are not normal (Student-t, Cauchy, truncated).

Given ``tau``, the likelihood of ``mu`` is Gaussian, ``N(mu; m(tau), V(tau))`` (the
flat-prior conditional), so the conditional posterior of ``mu`` is ``prior(mu) N(mu; m, V) / c(tau)``
with ``c(tau) = int prior(mu) N(mu; m, V) dmu``. Each integral over ``mu`` uses composite
Gauss-Legendre on breakpoints placed per ``tau`` node: the likelihood's
``m + sd * (0, +/-1.5, 3, 5, 8, 12, 20, 38)``, the prior's ``loc + scale * (0, +/-4^j)``
(``j = 0..10``: heavy tails on geometrically growing panels), the truncation bounds, and --
for a CDF at ``x`` -- the points where the target's conditional normal CDF changes
(``x`` itself for ``mu``); everything is clipped to ``m +/- 38 sd`` and the prior's support.
All quantities are on the engine's standardised scale.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, special

from ketabayes.marginals import Marginal

_Z_LIK = np.array([-38.0, -20.0, -12.0, -8.0, -5.0, -3.0, -1.5, 0.0, 1.5, 3.0, 5.0, 8.0, 12.0, 20.0, 38.0])
_Z_PRIOR = np.concatenate([-(4.0 ** np.arange(10, -1, -1)), [0.0], 4.0 ** np.arange(0, 11)])
_Z_TARGET = np.array([-10.0, -6.0, -3.0, -1.5, 0.0, 1.5, 3.0, 6.0, 10.0])
_N_NODES = 12
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@functools.lru_cache(maxsize=2)
def _gl(n):
    x, w = special.roots_legendre(n)
    return x, w


class MuGrid:
    """Per-tau-node quadrature over ``mu`` for a prior with log density ``logpdf`` (standardised scale).

    Parameters
    ----------
    logpdf : callable
        Log prior density of the standardised ``mu``.
    loc, scale : float
        Where the prior's features are (standardised).
    lo, hi : float
        The prior's support (standardised; may be infinite).
    """

    def __init__(self, logpdf, loc: float, scale: float, lo: float, hi: float):
        self.logpdf, self.loc, self.scale, self.lo, self.hi = logpdf, loc, scale, lo, hi

    def rule(self, m, sd, extra=None, breakpoints: bool = False):
        """Nodes ``(J, N)`` and log weights (GL weight x prior x likelihood) for each of ``J`` tau nodes
        (and the breakpoints ``(J, P + 1)`` if asked)."""
        m = np.asarray(m, dtype=float)[:, None]
        sd = np.asarray(sd, dtype=float)[:, None]
        a = np.maximum(m - 38.0 * sd, self.lo)
        b = np.minimum(m + 38.0 * sd, self.hi)
        pts = [m + sd * _Z_LIK, np.broadcast_to(self.loc + self.scale * _Z_PRIOR, (m.shape[0], _Z_PRIOR.size))]
        if extra is not None:
            pts.append(extra)
        p = np.sort(np.clip(np.concatenate(pts, axis=1), a, b), axis=1)
        p = np.concatenate([a, p, b], axis=1)
        x, w = _gl(_N_NODES)
        half = 0.5 * np.diff(p, axis=1)
        mid = 0.5 * (p[:, 1:] + p[:, :-1])
        nodes = (mid[..., None] + half[..., None] * x).reshape(m.shape[0], -1)
        with np.errstate(divide="ignore"):
            lw = np.log(np.repeat(half, _N_NODES, axis=1) * np.tile(w, half.shape[1]))
        z = (nodes - m) / sd
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            lw = lw + np.asarray(self.logpdf(nodes), dtype=float) - 0.5 * z * z - _LOG_SQRT_2PI - np.log(sd)
        lw = np.where(np.isfinite(lw), lw, -np.inf)
        return (nodes, lw, p) if breakpoints else (nodes, lw)

    def log_integrand(self, mu, m, sd):
        """``log prior(mu) + log N(mu; m, sd^2)`` (rows of ``mu`` against ``m, sd`` per row)."""
        z = (mu - m[:, None]) / sd[:, None]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            out = np.asarray(self.logpdf(mu), dtype=float) - 0.5 * z * z - _LOG_SQRT_2PI - np.log(sd)[:, None]
        return np.where(np.isfinite(out), out, -np.inf)

    def log_c(self, m, sd):
        """``log int prior(mu) N(mu; m, sd^2) dmu`` for arrays ``m, sd``."""
        _, lw = self.rule(m, sd)
        with np.errstate(divide="ignore"):
            return special.logsumexp(lw, axis=1)

    def moments(self, m, sd):
        """Conditional mean and variance of ``mu`` for each tau node."""
        nodes, lw = self.rule(m, sd)
        p = np.exp(lw - special.logsumexp(lw, axis=1, keepdims=True))
        mean = (p * nodes).sum(1)
        var = (p * (nodes - mean[:, None]) ** 2).sum(1)
        return mean, var


class GridTargetMarginal(Marginal):
    """Posterior of ``alpha_j + beta_j mu + N(0, s_j^2)`` mixed over tau nodes ``j`` with weights ``W``,
    ``mu | tau_j`` from :class:`MuGrid`; reported as ``loc + scale * (standardised value)``."""

    exact = True

    def __init__(self, grid: MuGrid, W, m, sd, log_c, alpha, beta, s, *, loc=0.0, scale=1.0):
        keep = W > 1e-14 * W.sum()
        self.grid = grid
        self.W = W[keep] / W[keep].sum()
        self.m, self.lsd, self.log_c = m[keep], sd[keep], log_c[keep]
        n = m.size
        self.alpha = np.broadcast_to(alpha, (n,))[keep]
        self.beta = np.broadcast_to(beta, (n,))[keep]
        self.s = np.broadcast_to(s, (n,))[keep]
        self.loc, self.scale = float(loc), float(scale)
        nodes, lw, bp = grid.rule(self.m, self.lsd, breakpoints=True)
        pw = np.exp(lw - self.log_c[:, None])
        mm = (pw * nodes).sum(1)
        vv = (pw * (nodes - mm[:, None]) ** 2).sum(1)
        self._cmean = self.alpha + self.beta * mm
        self._cvar = self.beta**2 * vv + self.s**2
        self._nodes, self._pw, self._bp = nodes, pw, bp
        n_p = bp.shape[1] - 1
        self._cum = np.concatenate([np.zeros((bp.shape[0], 1)),
                                    np.cumsum(pw.reshape(bp.shape[0], n_p, -1).sum(2), axis=1)], axis=1)
        # rows whose conditional normal is wide against the mu panels use the base rule: a mixture of
        # normals over (tau node, mu node) pairs, negligible pairs dropped (below 1e-16 of the total)
        self._smooth = self.s / np.abs(self.beta) >= self.lsd
        wt = (self.W[:, None] * pw)[self._smooth]
        keep = wt > 1e-15
        self._mw = wt[keep]
        self._mm = (self.alpha[:, None] + self.beta[:, None] * nodes)[self._smooth][keep]
        self._ms = np.broadcast_to(self.s[:, None], nodes.shape)[self._smooth][keep]

    def _mu_cdf_rows(self, x, rows):
        """P(mu <= x_r | tau_r) for the rows ``rows`` (x: one value per row): whole panels below x plus
        Gauss-Legendre on the part of x's panel below x."""
        bp = self._bp[rows]
        x = np.asarray(x, dtype=float)
        k = np.clip((bp <= x[:, None]).sum(1) - 1, 0, bp.shape[1] - 2)
        r = np.arange(bp.shape[0])
        a = bp[r, k]
        b = np.clip(x, a, bp[r, k + 1])
        gx, gw = _gl(_N_NODES)
        half = 0.5 * (b - a)
        mu = (0.5 * (a + b))[:, None] + half[:, None] * gx
        li = self.grid.log_integrand(mu, self.m[rows], self.lsd[rows]) - self.log_c[rows, None]
        part = (np.exp(li) * gw).sum(1) * half
        return np.where(x >= bp[:, -1], self._cum[rows, -1], self._cum[rows, k] + part)

    def _cdf_std(self, x: float) -> float:
        total = float(special.ndtr((x - self._mm) / self._ms) @ self._mw) if self._mw.size else 0.0
        rough = np.flatnonzero(~self._smooth)
        if not rough.size:
            return total
        # rows with a narrow conditional normal (x' = (x - alpha) / beta, s' = s / beta):
        # E[Phi((x' - mu) / s')] = P(mu <= x') + int p(mu) (Phi((x' - mu) / s') - 1[mu <= x']) dmu,
        # the second term over x' +/- 10 s' on panels with a breakpoint at x'
        be = self.beta[rough]
        xr = (x - self.alpha[rough]) / be
        sr = self.s[rough] / np.abs(be)
        out = self._mu_cdf_rows(xr, rough)
        pos = sr > 0
        if pos.any():
            rr = rough[pos]
            gx, gw = _gl(_N_NODES)
            x0, s0 = xr[pos, None], sr[pos, None]
            with np.errstate(invalid="ignore", over="ignore"):  # the prior's support ends as breakpoints
                ends = np.clip(np.concatenate([(self.grid.lo - x0) / s0, (self.grid.hi - x0) / s0], axis=1),
                               _Z_TARGET[0], _Z_TARGET[-1])
            zb = np.sort(np.concatenate([np.broadcast_to(_Z_TARGET, (rr.size, _Z_TARGET.size)), ends], axis=1), axis=1)
            half = 0.5 * np.diff(zb, axis=1)
            z = ((0.5 * (zb[:, 1:] + zb[:, :-1]))[..., None] + half[..., None] * gx).reshape(rr.size, -1)
            wz = (half[..., None] * gw).reshape(rr.size, -1)
            mu = x0 + s0 * z
            li = self.grid.log_integrand(mu, self.m[rr], self.lsd[rr]) - self.log_c[rr, None]
            corr = special.ndtr(-z) - (z <= 0)
            out[pos] += (np.exp(li) * corr * wz).sum(1) * sr[pos]
        return total + float(self.W[rough] @ out)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        out = np.empty(x.shape)
        xs = (x - self.loc) / self.scale
        for idx in np.ndindex(x.shape):
            out[idx] = min(max(self._cdf_std(float(xs[idx])), 0.0), 1.0)
        return out

    @property
    def mean(self) -> float:
        return self.loc + self.scale * float(self.W @ self._cmean)

    @property
    def sd(self) -> float:
        mu = float(self.W @ self._cmean)
        return self.scale * math.sqrt(max(float(self.W @ (self._cvar + (self._cmean - mu) ** 2)), 0.0))

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        mu = float(self.W @ self._cmean)
        sd = max(self.sd / self.scale, 1e-300)
        tol = 1e-11 * float(self.W @ np.sqrt(self._cvar))
        for idx in np.ndindex(q.shape):
            qq = float(q[idx])
            if not 0.0 < qq < 1.0:
                out[idx] = -np.inf if qq == 0.0 else (np.inf if qq == 1.0 else np.nan)
                continue
            f = lambda x, qq=qq: self._cdf_std(x) - qq  # noqa: E731
            # bracket from the normal approximation, widened until it holds the quantile
            x0 = mu + sd * float(special.ndtri(qq))
            lo, hi, w = x0 - 0.25 * sd, x0 + 0.25 * sd, 0.25 * sd
            while f(lo) > 0:
                w *= 2.0
                lo = x0 - w
            while f(hi) < 0:
                w *= 2.0
                hi = x0 + w
            out[idx] = self.loc + self.scale * optimize.brentq(f, lo, hi, xtol=tol, rtol=1e-14)
        return out
