"""The CDF of a one-dimensional marginal of a tensor Gauss-Legendre quadrature, between its nodes.

A tensor rule over several parameters (the variance components of the hierarchical engine;
``log tau1, log tau2, atanh rho`` of the bivariate one) gives each parameter's marginal density
exactly -- to the accuracy of the rule -- at its own Gauss-Legendre nodes: the node's mass (the
other parameters summed over with their weights) divided by the node's weight. The CDF at the
panel edges is the cumulative sum of the panel masses. Within a panel the log density is the
polynomial of degree ``nodes_per_panel - 1`` through the nodes (log densities are close to
quadratic, so this is accurate to far below the quadrature error); its exponential is integrated
by a 32-point Gauss-Legendre rule and scaled so that each panel integrates to its mass. Panels
whose log density cannot be represented this way (non-finite values, or an interpolant
overshooting the node values -- only in negligible tails) use linear interpolation of the log
density instead. Quantiles solve ``CDF = q`` by Brent's method within the panel holding ``q``.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import optimize, special

__all__ = ["PanelCDF"]

#: Gauss-Legendre nodes of the within-panel partial integrals of a marginal density
_N_PARTIAL = 32


@functools.lru_cache(maxsize=1)
def _partial_rule():
    x, w = special.roots_legendre(_N_PARTIAL)
    x.flags.writeable = w.flags.writeable = False
    return x, w


class PanelCDF:
    """CDF and quantiles of one coordinate ``w`` of a composite tensor Gauss-Legendre rule.

    Parameters
    ----------
    edges : array, shape (panels + 1,)
        Panel edges in ``w``.
    log_node_mass : array, shape (panels * npp,)
        Log posterior mass of each node of this coordinate (the other coordinates summed over;
        ``-inf`` allowed), panel by panel.
    log_node_weight : array, shape (panels * npp,)
        Log quadrature weight of each node (``half-width * Gauss-Legendre weight``).
    npp : int
        Nodes per panel.
    """

    def __init__(self, edges, log_node_mass, log_node_weight, npp: int):
        x, _ = special.roots_legendre(npp)
        check = np.linspace(-1.0, 1.0, 65)
        self.edges = np.asarray(edges, dtype=float)
        panels = self.edges.size - 1
        lm = np.asarray(log_node_mass, dtype=float)
        top = float(np.max(lm[np.isfinite(lm)]))
        pm = np.exp(special.logsumexp(lm.reshape(panels, -1), axis=1) - top)
        cum = np.concatenate([[0.0], np.cumsum(pm)])
        self.cum = cum / cum[-1]
        with np.errstate(invalid="ignore"):
            logf = (lm - np.asarray(log_node_weight, dtype=float)).reshape(panels, -1)
        logf = logf - np.max(logf[np.isfinite(logf)])
        self.coefs = np.zeros((panels, npp))
        self.poly = np.zeros(panels, dtype=bool)
        for p in range(panels):
            row = logf[p]
            if np.all(row > -600.0):
                cf = np.polynomial.legendre.legfit(x, row, npp - 1)
                if np.max(np.polynomial.legendre.legval(check, cf)) <= np.max(row) + 1.0:
                    self.coefs[p], self.poly[p] = cf, True
        self.x = x
        self.logf = np.maximum(np.nan_to_num(logf, nan=-np.inf), -745.0)
        self.panel_int = self._partial(np.arange(panels), np.ones(panels))

    def _partial(self, p, t):
        """Integral of the (unnormalised) density over ``[-1, t]`` in panel ``p``'s coordinates."""
        xq, wq = _partial_rule()
        h = 0.5 * (t + 1.0)
        nodes = -1.0 + h[:, None] * (xq[None, :] + 1.0)
        vals = np.empty_like(nodes)
        poly = self.poly[p]
        if poly.any():
            vals[poly] = np.polynomial.legendre.legval(nodes[poly].T, self.coefs[p[poly]].T, tensor=False).T
        for i in np.flatnonzero(~poly):
            vals[i] = np.interp(nodes[i], self.x, self.logf[p[i]])
        return h * (np.exp(vals) * wq[None, :]).sum(1)

    def cdf(self, w) -> np.ndarray:
        """CDF at points ``w`` of the coordinate."""
        w = np.asarray(w, dtype=float)
        flat = w.ravel()
        edges, cum = self.edges, self.cum
        out = np.where(flat >= edges[-1], 1.0, 0.0)
        inside = np.flatnonzero((flat > edges[0]) & (flat < edges[-1]))
        if inside.size:
            p = np.clip(np.searchsorted(edges, flat[inside], side="right") - 1, 0, edges.size - 2)
            t = 2.0 * (flat[inside] - edges[p]) / (edges[p + 1] - edges[p]) - 1.0
            frac = self._partial(p, t) / self.panel_int[p]
            out[inside] = cum[p] + (cum[p + 1] - cum[p]) * frac
        return np.clip(out, 0.0, 1.0).reshape(w.shape)

    def ppf(self, q) -> np.ndarray:
        """Quantiles in the coordinate (Brent's method on :meth:`cdf` within the panel holding ``q``)."""
        edges, cum = self.edges, self.cum
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        for idx in np.ndindex(q.shape):
            qq = float(q[idx])
            if not 0.0 <= qq <= 1.0:
                continue
            p = int(np.clip(np.searchsorted(cum, qq) - 1, 0, edges.size - 2))

            def f(w, qq=qq):
                return float(self.cdf(np.array(w))) - qq

            lo, hi = edges[p], edges[p + 1]
            if f(lo) >= 0.0:
                out[idx] = lo
            elif f(hi) <= 0.0:
                out[idx] = hi
            else:
                out[idx] = optimize.brentq(f, lo, hi, xtol=1e-13, rtol=1e-14)
        return out
