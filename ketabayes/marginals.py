"""One-dimensional posterior marginals, exact or from draws.

Every quantity ketabayes reports for a target (the average effect, a drug, a
new trial...) is computed from a :class:`Marginal`:

* :class:`MixtureMarginal` -- an exact posterior that is a finite mixture of
  normals. The exact engines produce these: given the variance components the
  target is Gaussian, and integrating the variance components by quadrature
  turns the posterior into a weighted sum of normals over the quadrature nodes.
* :class:`DrawsMarginal` -- posterior draws (NUTS), with empirical CDF and
  quantiles.
* :class:`WeightedDrawsMarginal` -- importance-weighted draws (power-scaling
  sensitivity of the sensitivity grid).
* :class:`PointMass` and :class:`MixedMarginal` -- a point mass (the average
  effect under the no-effect hypothesis of a Bayes factor) and weighted
  mixtures of marginals (model averages), whose CDF may jump.

Decision probabilities are then ``cdf`` differences, whichever engine ran.
``cdf(x)`` is ``P(X <= x)`` (right-continuous); :meth:`Marginal.prob_below`
is ``P(X < x)``, which differs from it only at an atom.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

__all__ = ["Marginal", "MixtureMarginal", "DrawsMarginal", "WeightedDrawsMarginal", "PointMass",
           "MixedMarginal"]


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

    def eti(self, prob: float = 0.95) -> tuple[float, float]:
        """Equal-tailed interval: the ``(1 - prob)/2`` and ``(1 + prob)/2`` quantiles."""
        a = (1.0 - prob) / 2.0
        lo, hi = np.asarray(self.ppf(np.array([a, 1.0 - a])), dtype=float)
        return float(lo), float(hi)

    def hpd(self, prob: float = 0.95) -> tuple[float, float]:
        """Shortest interval holding ``prob`` of the posterior (the HPD interval of a unimodal posterior).

        Minimises ``ppf(a + prob) - ppf(a)`` over the lower tail probability ``a`` in
        ``[0, 1 - prob]`` (:func:`scipy.optimize.minimize_scalar`, bounded Brent, on the
        exact quantiles when the marginal is exact). For a multimodal posterior the
        highest-density *region* may be a union of intervals; this is the shortest single one.

        Examples
        --------
        >>> from ketabayes.marginals import MixtureMarginal
        >>> m = MixtureMarginal([1.0], [0.0], [1.0])
        >>> [round(x, 4) for x in m.hpd(0.95)]  # a normal posterior: HPD == equal-tailed
        [-1.96, 1.96]
        """
        if not 0.0 < prob < 1.0:
            raise ValueError(f"prob must be between 0 and 1, got {prob!r}")

        def width(a):
            lo, hi = np.asarray(self.ppf(np.array([a, a + prob])), dtype=float)
            return hi - lo

        amax = 1.0 - prob
        eps = 1e-9 * amax
        res = optimize.minimize_scalar(width, bounds=(eps, amax - eps), method="bounded",
                                       options={"xatol": 1e-10 * amax})
        a = float(res.x)
        # the optimum may sit at an end (e.g. a posterior piled up at a boundary such as tau = 0)
        for cand in (eps, amax - eps):
            if width(cand) < width(a):
                a = cand
        lo, hi = np.asarray(self.ppf(np.array([a, a + prob])), dtype=float)
        return float(lo), float(hi)

    def prob_between(self, lo, hi):
        """P(lo < X <= hi)."""
        return self.cdf(hi) - self.cdf(lo)

    def prob_below(self, x):
        """``P(X < x)``, the left limit of the CDF.

        Equal to :meth:`cdf` for a continuous distribution (the default here);
        marginals with atoms (:class:`PointMass`, :class:`MixedMarginal`)
        override it. Empirical marginals of draws from a continuous posterior
        keep the default: a draw exactly at ``x`` has probability zero.
        """
        return self.cdf(x)


class MixtureMarginal(Marginal):
    """Finite mixture of normals ``sum_j w_j N(loc + scale m_j, (scale s_j)**2)``.

    Parameters
    ----------
    weights : array
        Non-negative weights; normalised here. Components with negligible weight
        (below 1e-14 of the total) are dropped, which changes no probability by
        more than 1e-13.
    means, sds : array
        Component means and standard deviations (``sds > 0``), in units of
        ``scale`` around ``loc``.
    loc, scale : float
        Location and scale of the standardised components (default 0 and 1). The
        exact engine passes standardised components here so that probabilities
        stay accurate for data far from zero or of extreme scale.

    Attributes
    ----------
    means, sds : ndarray
        The components on the original scale (``loc + scale * m``, ``scale * s``).
    """

    exact = True

    def __init__(self, weights, means, sds, *, loc: float = 0.0, scale: float = 1.0):
        w = np.asarray(weights, dtype=float)
        m = np.broadcast_to(np.asarray(means, dtype=float), w.shape)
        s = np.broadcast_to(np.asarray(sds, dtype=float), w.shape)
        keep = w > 1e-14 * w.sum()
        w = w[keep]
        self.weights = w / w.sum()
        self._m = np.ascontiguousarray(m[keep])
        self._s = np.ascontiguousarray(s[keep])
        self.loc, self.scale = float(loc), float(scale)

    @property
    def means(self) -> np.ndarray:
        return self.loc + self.scale * self._m

    @property
    def sds(self) -> np.ndarray:
        return self.scale * self._s

    def _std(self, x):
        return (np.asarray(x, dtype=float) - self.loc) / self.scale

    def cdf(self, x):
        z = (self._std(x)[..., None] - self._m) / self._s
        return special.ndtr(z) @ self.weights

    def pdf(self, x):
        z = (self._std(x)[..., None] - self._m) / self._s
        return (np.exp(-0.5 * z * z) / (np.sqrt(2 * np.pi) * self._s)) @ self.weights / self.scale

    @property
    def mean(self) -> float:
        return float(self.loc + self.scale * (self.weights @ self._m))

    def _sd_std(self) -> float:
        mean = float(self.weights @ self._m)
        second = self.weights @ (self._s**2 + (self._m - mean) ** 2)
        return float(np.sqrt(max(second, 0.0)))

    @property
    def sd(self) -> float:
        return self.scale * self._sd_std()

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
        xtol = 1e-13 * float(self.weights @ self._s)
        mean, sd = float(self.weights @ self._m), self._sd_std()
        for idx in np.ndindex(q.shape):
            if not 0.0 < q[idx] < 1.0:
                out[idx] = -np.inf if q[idx] == 0.0 else (np.inf if q[idx] == 1.0 else np.nan)
                continue
            comp = self._m + self._s * z[idx]
            lo, hi = float(comp.min()), float(comp.max())
            if hi - lo <= xtol:
                out[idx] = self.loc + self.scale * 0.5 * (lo + hi)
                continue
            x0 = mean + sd * z[idx]
            if lo < x0 < hi:
                if self._cdf1(x0) < q[idx]:
                    lo = x0
                else:
                    hi = x0
            x = optimize.brentq(lambda x, qq=q[idx]: self._cdf1(x) - qq, lo, hi, xtol=xtol, rtol=1e-15)
            out[idx] = self.loc + self.scale * x
        return out

    def _cdf1(self, x: float) -> float:
        """CDF at a standardised point."""
        return float(special.ndtr((x - self._m) / self._s) @ self.weights)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        idx = rng.choice(self.weights.size, size=n, p=self.weights)
        return self.loc + self.scale * rng.normal(self._m[idx], self._s[idx])


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


class WeightedDrawsMarginal(Marginal):
    """Marginal of importance-weighted draws (weighted ECDF and quantiles).

    ``cdf(x)`` is the total weight of the draws ``<= x``; ``ppf(q)`` the
    smallest draw whose cumulative weight reaches ``q``.
    """

    exact = False

    def __init__(self, draws, weights):
        x = np.asarray(draws, dtype=float).ravel()
        w = np.asarray(weights, dtype=float).ravel()
        o = np.argsort(x, kind="stable")
        self.draws, self.w = x[o], w[o] / w.sum()
        self.cw = np.cumsum(self.w)

    def cdf(self, x):
        idx = np.searchsorted(self.draws, np.asarray(x, dtype=float), side="right")
        return np.where(idx > 0, self.cw[np.maximum(idx - 1, 0)], 0.0)

    def ppf(self, q):
        return self.draws[np.minimum(np.searchsorted(self.cw, np.asarray(q, dtype=float)), self.draws.size - 1)]

    @property
    def mean(self) -> float:
        return float(self.w @ self.draws)

    @property
    def sd(self) -> float:
        return float(np.sqrt(max(self.w @ self.draws**2 - self.mean**2, 0.0)))


class PointMass(Marginal):
    """A degenerate distribution at ``value`` (e.g. the average effect under "no effect")."""

    exact = True

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def cdf(self, x):
        return (np.asarray(x, dtype=float) >= self.value).astype(float)

    def prob_below(self, x):
        return (np.asarray(x, dtype=float) > self.value).astype(float)

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, self.value)
        out[q == 0.0] = -np.inf  # inf{x: F(x) >= 0}
        out[np.isnan(q) | (q < 0.0) | (q > 1.0)] = np.nan
        return out

    @property
    def mean(self) -> float:
        return self.value

    @property
    def sd(self) -> float:
        return 0.0

    @property
    def atoms(self) -> np.ndarray:
        return np.array([self.value])


class MixedMarginal(Marginal):
    """Weighted mixture of marginals ``F = sum_j w_j F_j`` (e.g. a model average).

    Components may have atoms (:class:`PointMass`), so ``F`` may jump. The
    quantile is the generalised inverse ``inf{x: F(x) >= q}``: a ``q`` inside
    the jump at an atom ``a`` (``F(a-) < q <= F(a)``) gives exactly ``a``;
    otherwise the quantile lies between the smallest and the largest component
    quantile (every ``F_j`` is below ``q`` left of the former and reaches ``q``
    at the latter), where :func:`scipy.optimize.brentq` finds the root of the
    continuous ``F - q`` (to within ``1e-13 sd``; with a step component such
    as :class:`DrawsMarginal`, the point just right of the step, so that
    ``F(x) >= q`` holds).
    """

    def __init__(self, weights, components):
        w = np.asarray(weights, dtype=float)
        if w.ndim != 1 or w.size != len(components) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("weights must be non-negative, one per component, not all zero")
        self.weights = w / w.sum()
        self.components = list(components)
        self.exact = all(c.exact for c in self.components)

    def cdf(self, x):
        x = np.asarray(x, dtype=float)
        return sum(w * np.asarray(c.cdf(x), dtype=float) for w, c in zip(self.weights, self.components))

    def prob_below(self, x):
        x = np.asarray(x, dtype=float)
        return sum(w * np.asarray(c.prob_below(x), dtype=float) for w, c in zip(self.weights, self.components))

    @property
    def mean(self) -> float:
        return float(sum(w * c.mean for w, c in zip(self.weights, self.components)))

    @property
    def sd(self) -> float:
        second = sum(w * (c.sd**2 + c.mean**2) for w, c in zip(self.weights, self.components))
        return float(np.sqrt(max(second - self.mean**2, 0.0)))

    @property
    def atoms(self) -> np.ndarray:
        """Locations of the point masses of the components with positive weight."""
        pts = [getattr(c, "atoms", np.empty(0)) for w, c in zip(self.weights, self.components) if w > 0]
        return np.unique(np.concatenate(pts)) if pts else np.empty(0)

    def ppf(self, q):
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        atoms = self.atoms
        f_at, f_below = np.asarray(self.cdf(atoms), dtype=float), np.asarray(self.prob_below(atoms), dtype=float)
        scale = max(self.sd, float(np.max(np.abs(atoms))) if atoms.size else 0.0, 1e-300)
        xtol = 1e-13 * scale
        for idx in np.ndindex(q.shape):
            qq = float(q[idx])
            if not 0.0 < qq < 1.0:
                out[idx] = -np.inf if qq == 0.0 else (np.inf if qq == 1.0 else np.nan)
                continue
            jump = np.flatnonzero((f_below < qq) & (qq <= f_at))
            if jump.size:
                out[idx] = atoms[jump[0]]
                continue
            comp = np.array([float(np.asarray(c.ppf(np.array([qq])), dtype=float)[0])
                             for w, c in zip(self.weights, self.components) if w > 0])
            lo, hi = float(comp.min()), float(comp.max())
            if float(self.cdf(lo)) >= qq:
                out[idx] = lo
                continue
            step = max(hi - lo, scale)
            while float(self.cdf(hi)) < qq:  # only for components whose ppf is approximate (draws)
                hi += step
                step *= 2.0
            x = optimize.brentq(lambda x, qq=qq: float(self.cdf(x)) - qq, lo, hi, xtol=xtol)
            tol = xtol + 4.0 * np.finfo(float).eps * abs(x)
            while float(self.cdf(x)) < qq:  # a step component (draws): land on the right of its jump
                x += tol
                tol *= 2.0
            out[idx] = x
        return out
