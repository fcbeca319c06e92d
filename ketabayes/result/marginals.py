"""One-dimensional posterior marginals, exact or from draws.

Every quantity ketabayes reports for a target (the average effect, a drug, a
new trial...) is computed from a :class:`Marginal`:

* :class:`MixtureMarginal` -- an exact posterior that is a finite mixture of
  normals. The exact engines produce these: given the variance components the
  target is Gaussian, and integrating the variance components by quadrature
  turns the posterior into a weighted sum of normals over the quadrature nodes.
* :class:`DrawsMarginal` -- posterior draws (NUTS), with empirical CDF and
  quantiles.

Decision probabilities are then ``cdf`` differences, whichever engine ran.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

__all__ = ["Marginal", "MixtureMarginal", "DrawsMarginal"]


class Marginal:
    """Interface: ``cdf``, ``ppf``, ``mean``, ``sd`` of one scalar quantity."""

    exact: bool = False

    def cdf(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def ppf(self, q):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def mean(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def sd(self) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def prob_between(self, lo, hi):
        """P(lo < X <= hi)."""
        return self.cdf(hi) - self.cdf(lo)


class MixtureMarginal(Marginal):
    """Finite mixture of normals ``sum_j w_j N(m_j, s_j**2)``.

    Parameters
    ----------
    weights : array
        Non-negative weights; normalised here. Components with negligible weight
        (below 1e-14 of the total) are dropped, which changes no probability by
        more than 1e-13.
    means, sds : array
        Component means and standard deviations (``sds > 0``).
    """

    exact = True

    def __init__(self, weights, means, sds):
        w = np.asarray(weights, dtype=float)
        m = np.broadcast_to(np.asarray(means, dtype=float), w.shape)
        s = np.broadcast_to(np.asarray(sds, dtype=float), w.shape)
        keep = w > 1e-14 * w.sum()
        w = w[keep]
        self.weights = w / w.sum()
        self.means = np.ascontiguousarray(m[keep])
        self.sds = np.ascontiguousarray(s[keep])

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        z = (x[..., None] - self.means) / self.sds
        return special.ndtr(z) @ self.weights

    def pdf(self, x):
        x = np.asarray(x, dtype=float)
        z = (x[..., None] - self.means) / self.sds
        return (np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * self.sds)) @ self.weights

    @property
    def mean(self) -> float:
        return float(self.weights @ self.means)

    @property
    def sd(self) -> float:
        second = self.weights @ (self.sds**2 + self.means**2)
        return float(np.sqrt(max(second - self.mean**2, 0.0)))

    def ppf(self, q):
        """Quantiles by Brent's method (:func:`scipy.optimize.brentq`) on the exact CDF.

        Every component's CDF at ``x`` is at most ``q`` below the smallest
        component quantile and at least ``q`` above the largest, so these two
        points bracket the mixture quantile; the normal approximation
        ``mean + sd * z_q`` (when inside) then narrows the bracket to one side.
        """
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        z = special.ndtri(q)
        xtol = 1e-13 * float(self.weights @ self.sds)
        for idx in np.ndindex(q.shape):
            if not 0.0 < q[idx] < 1.0:
                out[idx] = -np.inf if q[idx] == 0.0 else (np.inf if q[idx] == 1.0 else np.nan)
                continue
            comp = self.means + self.sds * z[idx]
            lo, hi = float(comp.min()), float(comp.max())
            if hi - lo <= xtol:
                out[idx] = 0.5 * (lo + hi)
                continue
            x0 = self.mean + self.sd * z[idx]
            if lo < x0 < hi:
                if self._cdf1(x0) < q[idx]:
                    lo = x0
                else:
                    hi = x0
            out[idx] = optimize.brentq(lambda x, qq=q[idx]: self._cdf1(x) - qq, lo, hi, xtol=xtol, rtol=1e-15)
        return out

    def _cdf1(self, x: float) -> float:
        return float(special.ndtr((x - self.means) / self.sds) @ self.weights)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.choice(self.weights.size, size=n, p=self.weights)
        return rng.normal(self.means[idx], self.sds[idx])


class DrawsMarginal(Marginal):
    """Empirical marginal from posterior draws (any shape; flattened)."""

    exact = False

    def __init__(self, draws):
        self.draws = np.sort(np.asarray(draws, dtype=float).ravel())

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.searchsorted(self.draws, x, side="right") / self.draws.size

    def ppf(self, q):
        return np.quantile(self.draws, q)

    @property
    def mean(self) -> float:
        return float(self.draws.mean())

    @property
    def sd(self) -> float:
        return float(self.draws.std(ddof=1))
