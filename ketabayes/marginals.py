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
           "MixedMarginal", "CdfMarginal"]


def _identity(x):
    return x


def _transform(name):
    """The monotone increasing map of :meth:`Marginal.hpd`'s ``transform`` (``None`` or ``"exp"``)."""
    if name is None or name == "identity":
        return _identity
    if name == "exp":
        return np.exp
    raise ValueError(f"transform must be None or 'exp', got {name!r}")


def _check_prob(prob) -> None:
    if not 0.0 < prob < 1.0:
        raise ValueError(f"prob must be between 0 and 1, got {prob!r}")


def _shortest_by_cdf(m, prob: float, g, lo: float, hi: float, n: int = 401, levels: int = 7):
    """Shortest closed interval holding ``prob`` of ``m`` (of ``g(X)``), from its vectorised CDF alone.

    For marginals whose quantiles are costly but whose CDF is cheap on many points (mixtures of
    models with atoms). Every grid point is tried as the lower end ``l``; the upper end is the
    generalised inverse of ``F`` at ``P(X < l) + prob``, linear between grid points (exactly an
    atom when the target falls in its jump). The best pair is then refined on finer grids around
    both ends (``levels`` times, each 300 times finer), so the ends are accurate far below the
    first grid's spacing (each level ~16 times finer). Atoms are always grid points.
    """
    atoms = np.asarray(getattr(m, "atoms", np.empty(0)), dtype=float)

    def grid(a, b, k):
        a, b = max(a, lo), min(b, hi)  # refinements stay on the support (e.g. tau >= 0)
        pts = np.linspace(a, b, k)
        inside = atoms[(atoms >= a) & (atoms <= b)]
        if inside.size:  # no grid point a rounding error away from an atom
            near = np.min(np.abs(pts[:, None] - inside[None, :]), axis=1) <= 1e-9 * (b - a)
            pts = pts[~near]
        return np.unique(np.concatenate([pts, inside]))

    def uppers(targets, U):
        FU = np.asarray(m.cdf(U), dtype=float)
        FbU = np.asarray(m.prob_below(U), dtype=float) if atoms.size else FU
        j = np.searchsorted(FU, targets * (1.0 - 1e-15), side="left")
        out = np.full(targets.shape, np.nan)
        ok = (j < U.size) & (j > 0)
        jj = j[ok]
        t = targets[ok]
        jump = FbU[jj] < t  # the target mass is reached inside the atom's jump: the atom itself
        prev = FU[jj - 1]
        frac = np.where(FbU[jj] > prev, (t - prev) / np.where(FbU[jj] > prev, FbU[jj] - prev, 1.0), 1.0)
        out[ok] = np.where(jump, U[jj], U[jj - 1] + np.clip(frac, 0.0, 1.0) * (U[jj] - U[jj - 1]))
        first = j == 0
        out[first] = U[0]
        return out

    def search(L, U):
        base = np.asarray(m.prob_below(L), dtype=float) if atoms.size else np.asarray(m.cdf(L), dtype=float)
        up = uppers(base + prob, U)
        with np.errstate(invalid="ignore", over="ignore"):
            w = g(up) - g(L)
        w = np.where(np.isfinite(w), w, np.inf)
        k = int(np.argmin(w))
        return float(L[k]), float(up[k]), w

    x = grid(lo, hi, n)
    best_l, best_u, _ = search(x, x)
    hl = hu = (hi - lo) / (n - 1)
    for _ in range(levels):
        L = grid(best_l - 3.0 * hl, best_l + 3.0 * hl, 101)
        U = np.union1d(grid(best_u - 6.0 * hu, best_u + 6.0 * hu, 201), [best_u])
        l2, u2, _ = search(np.union1d(L, [best_l]), U)
        best_l, best_u = l2, u2
        hl, hu = 6.0 * hl / 100, 12.0 * hu / 200
    # a step in the CDF (draws) between grid points: interpolating across it falls short of prob
    base = float(m.prob_below(np.array(best_l))) if atoms.size else float(m.cdf(np.array(best_l)))
    if float(m.cdf(np.array(best_u))) < base + prob:
        FU = np.asarray(m.cdf(U), dtype=float)
        j = int(np.searchsorted(FU, base + prob, side="left"))
        best_u = float(U[min(j, U.size - 1)])
    return float(g(best_l)), float(g(best_u))


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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """Shortest interval holding ``prob`` of the posterior (the HPD interval of a unimodal posterior).

        Parameters
        ----------
        prob : float
            Probability the interval holds.
        transform : {None, "exp"}
            ``"exp"``: the shortest interval of ``exp(X)`` (e.g. an odds ratio when ``X`` is a log
            odds ratio). HPD intervals are not invariant under transformation: this is *not*
            ``exp`` of the shortest interval of ``X``.

        Returns
        -------
        (float, float)
            The interval, on the scale of ``X`` or of ``exp(X)``.

        Notes
        -----
        An interval ``[l, u]`` holds at least ``prob`` when ``F(u) - P(X < l) >= prob``. The default
        implementation (``_shortest_by_cdf``) tries every point of a grid over the support as the
        lower end, takes the upper end from the CDF (its generalised inverse, linear between grid
        points), and refines the best pair on finer grids around both ends, using only vectorised
        CDF evaluations; subclasses replace it where a better route exists (the density for normal
        mixtures, ArviZ's ``hdi`` for draws). For a multimodal posterior the highest-density
        *region* may be a union of intervals; this is the shortest single interval.

        Examples
        --------
        >>> from ketabayes.marginals import MixtureMarginal
        >>> m = MixtureMarginal([1.0], [0.0], [1.0])
        >>> [round(x, 4) for x in m.hpd(0.95)]  # a normal posterior: HPD == equal-tailed
        [-1.96, 1.96]
        >>> [round(x, 4) for x in m.hpd(0.95, transform="exp")]  # lognormal: not exp(-1.96), exp(1.96)
        [0.0261, 5.1869]
        """
        g = _transform(transform)
        _check_prob(prob)
        return self._shortest(prob, g)

    def _shortest(self, prob: float, g) -> tuple[float, float]:
        """``_shortest_by_cdf`` over the support: from its lower end (``ppf(0)``, e.g. 0 for a standard
        deviation) or the 1e-10 quantile, to the 1 - 1e-10 quantile."""
        q = np.asarray(self.ppf(np.array([0.0, 1e-10, 1.0 - 1e-10])), dtype=float)
        lo = q[0] if np.isfinite(q[0]) else q[1]
        return _shortest_by_cdf(self, prob, g, float(lo), float(q[2]))

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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """Shortest interval of ``X`` (or of ``exp(X)``), from the density of the mixture.

        The shortest interval ``[l, u]`` of a unimodal density holds ``prob`` and has equal
        density at both ends: ``F(u) - F(l) = prob`` and ``f_Y(l) = f_Y(u)``, where
        ``f_Y = f`` (or ``f_Y(y) = f(log y) / y`` for ``exp(X)``, i.e. ``log f(x) - x`` equal at
        both ends on the log scale). These two equations are solved by damped Newton steps
        from the equal-tailed interval, with the exact CDF, log density and its slope of the
        mixture. The answer is checked: the density must not dip below the end-point density
        inside the interval (unimodality) and the interval must not be longer than the
        equal-tailed one; otherwise the general CDF search of :meth:`Marginal.hpd` runs.
        See :meth:`Marginal.hpd` for the parameters.
        """
        g = _transform(transform)
        _check_prob(prob)
        c = self.scale if transform == "exp" else 0.0
        out = self._hpd_newton(prob, c)
        if out is None:
            return self._shortest(prob, g)
        lo, hi = (self.loc + self.scale * z for z in out)
        return float(g(lo)), float(g(hi))

    def _log_density_slope(self, z):
        """``log f`` and ``d log f / dz`` of the standardised mixture at points ``z`` (stable in the tails)."""
        if "_lw0" not in self.__dict__:
            self._lw0 = np.log(self.weights) - np.log(self._s)
            self._inv_s = 1.0 / self._s
        t = (np.asarray(z, dtype=float)[..., None] - self._m) * self._inv_s
        lw = self._lw0 - 0.5 * t * t
        top = lw.max(-1, keepdims=True)
        e = np.exp(lw - top)
        tot = e.sum(-1)
        logf = np.log(tot) + top[..., 0] - 0.5 * np.log(2.0 * np.pi)
        slope = -(e * t) @ self._inv_s / tot
        return logf, slope

    def _hpd_newton(self, prob: float, c: float):
        """Standardised end points ``(l, u)`` of the shortest interval, or ``None`` if the check fails."""
        a = 0.5 * (1.0 - prob)
        l, u = self._std(self.ppf(np.array([a, 1.0 - a])))
        eti_width = (np.exp(self.scale * u) - np.exp(self.scale * l)) if c else u - l

        def resid(l, u):
            lf, sl = self._log_density_slope(np.array([l, u]))
            e1 = self._cdf1(u) - self._cdf1(l) - prob
            e2 = (lf[0] - c * l) - (lf[1] - c * u)
            return np.array([e1, e2]), lf, sl

        r, lf, sl = resid(l, u)
        for _ in range(100):
            if abs(r[0]) < 1e-14 and abs(r[1]) < 1e-11:
                break
            fl, fu = np.exp(lf)
            jac = np.array([[-fl, fu], [sl[0] - c, -(sl[1] - c)]])
            try:
                step = np.linalg.solve(jac, -r)
            except np.linalg.LinAlgError:
                return None
            norm = abs(r[0]) / prob + abs(r[1])
            t = 1.0
            for _ in range(60):
                nl, nu = l + t * step[0], u + t * step[1]
                if nl < nu:
                    nr, nlf, nsl = resid(nl, nu)
                    if np.all(np.isfinite(nr)) and abs(nr[0]) / prob + abs(nr[1]) < norm:
                        break
                t *= 0.5
            else:
                return None
            l, u, r, lf, sl = nl, nu, nr, nlf, nsl
        else:
            return None
        if not (abs(r[0]) < 1e-10 and abs(r[1]) < 1e-7):
            return None
        width = (np.exp(self.scale * u) - np.exp(self.scale * l)) if c else u - l
        if width > eti_width * (1.0 + 1e-12):
            return None
        pts = np.linspace(l, u, 11)[1:-1]
        inside = self._log_density_slope(pts)[0] - c * pts
        if np.any(inside < lf[0] - c * l - 1e-9):
            return None  # not unimodal: the density dips inside the interval
        return float(l), float(u)

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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """Shortest interval of the draws (of ``exp`` of the draws): ArviZ's ``hdi`` (method ``"nearest"``).

        See :meth:`Marginal.hpd`; :func:`arviz_stats.hdi` takes the narrowest span of the sorted
        draws that holds ``floor(prob * n) + 1`` of them.
        """
        from arviz_stats.base import array_stats

        g = _transform(transform)
        _check_prob(prob)
        lo, hi = np.asarray(array_stats.hdi(g(self.draws), prob, axis=-1, method="nearest"), dtype=float)
        return float(lo), float(hi)

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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """Shortest span of the sorted draws whose weights sum to at least ``prob`` (see :meth:`Marginal.hpd`).

        For each draw as the lower end, the upper end is the first draw at which the
        cumulative weight reaches ``prob`` more (a search over the cumulative weights); the
        narrowest of these spans (on the scale of ``exp`` with ``transform="exp"``) is returned.
        """
        g = _transform(transform)
        _check_prob(prob)
        before = np.concatenate([[0.0], self.cw[:-1]])
        j = np.searchsorted(self.cw, before + prob * (1.0 - 1e-12), side="left")
        ok = j < self.draws.size
        i = np.flatnonzero(ok)
        x = g(self.draws)
        k = i[int(np.argmin(x[j[ok]] - x[i]))]
        return float(x[k]), float(x[j[k]])

    @property
    def mean(self) -> float:
        return float(self.w @ self.draws)

    @property
    def sd(self) -> float:
        return float(np.sqrt(max(self.w @ self.draws**2 - self.mean**2, 0.0)))


class CdfMarginal(Marginal):
    """A continuous marginal given by an exact CDF function of an engine (e.g. of a variance component).

    Parameters
    ----------
    cdf : callable
        Vectorised CDF.
    mean, sd : float
        Posterior mean and SD (e.g. quadrature sums of the engine).
    lower : float
        Lower end of the support (``0`` for a standard deviation).
    ppf : callable, optional
        The engine's quantile function; default Brent's method on ``cdf``.
    """

    exact = True

    def __init__(self, cdf, mean: float, sd: float, *, lower: float = -np.inf, ppf=None):
        self._cdf, self._mean, self._sd, self._lower = cdf, float(mean), float(sd), float(lower)
        self._ppf = ppf

    def cdf(self, x):
        return np.asarray(self._cdf(np.asarray(x, dtype=float)), dtype=float)

    def ppf(self, q):
        if self._ppf is not None:
            return np.asarray(self._ppf(np.asarray(q, dtype=float)), dtype=float)
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        step = max(self._sd, 1e-12 * max(abs(self._mean), 1.0))
        for idx in np.ndindex(q.shape):
            qq = float(q[idx])
            if not 0.0 < qq < 1.0:
                out[idx] = (self._lower if qq == 0.0 else np.inf) if qq in (0.0, 1.0) else np.nan
                continue

            def f(x, qq=qq):
                return float(self._cdf(np.array(x))) - qq

            lo, width = self._mean - step, step
            while lo > self._lower and f(lo) > 0.0:
                width *= 2.0
                lo = self._mean - width
            lo = max(lo, self._lower)
            hi, width = self._mean + step, step
            while f(hi) < 0.0:
                width *= 2.0
                hi = self._mean + width
            out[idx] = lo if f(lo) >= 0.0 else optimize.brentq(f, lo, hi, xtol=1e-13 * step, rtol=1e-14)
        return out

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def sd(self) -> float:
        return self._sd


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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """The point itself (every interval around it holds all the mass)."""
        g = _transform(transform)
        _check_prob(prob)
        return float(g(self.value)), float(g(self.value))


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

    def hpd(self, prob: float = 0.95, *, transform: str | None = None) -> tuple[float, float]:
        """Shortest interval of the model average (see :meth:`Marginal.hpd`).

        With an atom (e.g. at 0 from the no-effect models) the interval may be the atom alone (if it
        holds ``prob``), end at an atom, or hold it inside. When every component is a normal mixture
        or a point mass, each case is solved exactly: an atom as an end by the generalised inverse of
        the CDF; no atom or one atom inside by the equal-density conditions of
        :meth:`MixtureMarginal.hpd` on the continuous part with the probability the atom does not
        supply; the shortest feasible interval wins. Otherwise (draws, truncated or grid
        components) the CDF is searched on refined grids spanning every component's bulk and the atoms.
        """
        g = _transform(transform)
        _check_prob(prob)
        out = self._hpd_atoms_and_normals(prob, g, transform)
        if out is not None:
            return out
        los, his = [], []
        for w, c in zip(self.weights, self.components):
            if w <= 0:
                continue
            if isinstance(c, MixtureMarginal):
                los.append(float(np.min(c.means - 12.0 * c.sds)))
                his.append(float(np.max(c.means + 12.0 * c.sds)))
            elif isinstance(c, PointMass):
                los.append(c.value)
                his.append(c.value)
            else:
                q = np.asarray(c.ppf(np.array([1e-10, 1.0 - 1e-10])), dtype=float)
                los.append(float(q[0]))
                his.append(float(q[1]))
        lo, hi = min(los), max(his)
        if hi <= lo:  # atoms at one point only
            return float(g(lo)), float(g(lo))
        return _shortest_by_cdf(self, prob, g, lo, hi)

    @property
    def _flat(self):
        """``(C, atom positions, atom masses, continuous mass)`` when every component is a normal mixture or a
        point mass (``C``: the normal mixture of all continuous parts, or ``None``); else ``None``."""
        if "_flat_cache" in self.__dict__:
            return self._flat_cache
        atoms: dict[float, float] = {}
        ws, ms, ss = [], [], []
        out = None
        for w, c in zip(self.weights, self.components):
            if w <= 0:
                continue
            if isinstance(c, PointMass):
                atoms[c.value] = atoms.get(c.value, 0.0) + float(w)
            elif isinstance(c, MixtureMarginal):
                ws.append(w * c.weights)
                ms.append(c.means)
                ss.append(c.sds)
            else:
                break
        else:
            a_pos = np.array(sorted(atoms))
            a_mass = np.array([atoms[a] for a in a_pos])
            pc = max(1.0 - float(a_mass.sum()), 0.0)
            C = MixtureMarginal(np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)) if ws and pc > 1e-14 \
                else None
            out = (C, a_pos, a_mass, pc)
        self._flat_cache = out
        return out

    def _hpd_atoms_and_normals(self, prob: float, g, transform):
        """The exact route of :meth:`hpd` for point masses and normal mixtures; ``None`` for other components."""
        if self._flat is None:
            return None
        C, a_pos, a_mass, pc = self._flat
        cands = [(float(a), float(a)) for a, p in zip(a_pos, a_mass) if p >= prob]
        if C is not None:

            def f_tot(x):
                return pc * float(C.cdf(np.array(x))) + float(a_mass[a_pos <= x].sum())

            def fb_tot(x):
                return pc * float(C.cdf(np.array(x))) + float(a_mass[a_pos < x].sum())

            c_exp = 1.0 if transform == "exp" else 0.0
            lo_all, hi_all = float(np.min(C.means - 40 * C.sds)), float(np.max(C.means + 40 * C.sds))
            # no atom inside, or one atom inside: equal densities at both ends of the continuous part
            for inside in [None, *range(a_pos.size)]:
                p_in = 0.0 if inside is None else float(a_mass[inside])
                target = (prob - p_in) / pc
                if not 0.0 < target < 1.0:
                    continue
                r = C._hpd_newton(target, c_exp)
                if r is None:
                    continue
                l, u = r
                held = a_pos[(a_pos > l) & (a_pos < u)]
                if (inside is None and held.size == 0) or (inside is not None and held.size == 1
                                                           and held[0] == a_pos[inside]):
                    cands.append((l, u))
            # an atom as the lower or the upper end
            for a in a_pos:
                t = fb_tot(a) + prob
                if f_tot(a) < t < 1.0 and f_tot(hi_all) >= t:
                    u = optimize.brentq(lambda x, t=t: f_tot(x) - t, a, hi_all, xtol=1e-14 * (hi_all - lo_all))
                    while f_tot(u) < t:
                        u = np.nextafter(u, np.inf)
                    cands.append((float(a), float(u)))
                t = f_tot(a) - prob
                if 0.0 < t and fb_tot(a) > t and fb_tot(lo_all) <= t:
                    l = optimize.brentq(lambda x, t=t: fb_tot(x) - t, lo_all, a, xtol=1e-14 * (hi_all - lo_all))
                    while fb_tot(l) > t:
                        l = np.nextafter(l, -np.inf)
                    cands.append((float(l), float(a)))
        if not cands:
            return None
        with np.errstate(over="ignore"):
            best = min(cands, key=lambda lu: float(g(lu[1]) - g(lu[0])))
        return float(g(best[0])), float(g(best[1]))

    def _ppf_flat(self, q):
        """Generalised inverse for normal mixtures and atoms: between atoms, a quantile of the continuous part."""
        C, a_pos, a_mass, pc = self._flat
        q = np.asarray(q, dtype=float)
        out = np.full(q.shape, np.nan)
        cum = np.concatenate([[0.0], np.cumsum(a_mass)])  # atom mass below the k-th gap
        for idx in np.ndindex(q.shape):
            qq = float(q[idx])
            if not 0.0 < qq < 1.0:
                out[idx] = -np.inf if qq == 0.0 else (np.inf if qq == 1.0 else np.nan)
                continue
            below = [pc * float(C.cdf(np.array(a))) if C is not None else 0.0 for a in a_pos]
            # q in [F(a-), F(a)]: the atom (at F(a-) too, F rising up to the atom)
            hit = [k for k in range(a_pos.size) if below[k] + cum[k] - 1e-15 <= qq <= below[k] + cum[k + 1]]
            if hit:
                out[idx] = a_pos[hit[0]]
                continue
            for k in range(a_pos.size + 1):  # the gap between atoms k-1 and k holding the quantile
                t = (qq - cum[k]) / pc
                if not 0.0 < t < 1.0:
                    continue
                x = float(C.ppf(np.array([t]))[0])
                if (k == 0 or x >= a_pos[k - 1]) and (k == a_pos.size or x < a_pos[k]):
                    out[idx] = x
                    break
            else:  # pragma: no cover - rounding at an atom's edge: the atom
                out[idx] = a_pos[int(np.argmin(np.abs(np.array(below) + cum[:-1] - qq)))]
        return out

    def ppf(self, q):
        if self._flat is not None and self._flat[0] is not None:
            return self._ppf_flat(q)
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
