"""Exact posterior of the arm-level binomial-logit random-effects model by quadrature.

Model (trial ``i``; metafor's names; :class:`~ketabayes.model.binomial.BinomialModel`)::

    ai ~ Bin(n1i, expit(b_i + theta_i / 2)),   ci ~ Bin(n2i, expit(b_i - theta_i / 2))
    b_i ~ N(m0, s0**2)   (study-specific baselines),   theta_i ~ N(mu, tau**2)
    mu ~ Normal or flat,   tau ~ p(tau)

No continuity correction: zero-event arms and double-zero trials enter the
likelihood as they are. The posterior is computed by nested quadrature:

1. **Trial likelihood of the log OR.** Given ``theta`` the baseline is
   integrated out, ``f_i(theta) = int Bin(ai) Bin(ci) N(b; m0, s0**2) db``, by
   adaptive Gauss-Hermite quadrature (:data:`N_BASE` nodes, :data:`N_BASE_ZERO` for trials with a
   zero cell; centred at the mode of
   the integrand in ``b``, found by Newton's method, and scaled by its curvature)
   on a uniform grid of ``theta`` (step :data:`THETA_STEP`); ``log f_i`` is then a
   cubic spline (:class:`scipy.interpolate.CubicSpline`). ``f_i`` does not depend
   on ``(mu, tau)``, so this is done once per data set. (This is the two-dimensional
   integral over ``(b_i, theta_i)`` of each trial, done as an inner integral over
   ``b_i`` and an outer one over ``theta_i``.)
2. **Given (mu, tau)** each trial's likelihood ``h_i(mu, tau) = int N(theta; mu,
   tau**2) f_i(theta) dtheta`` is an adaptive Gauss-Hermite integral
   (:data:`N_THETA` nodes) centred at the mode of the integrand (the product of
   ``N(mu, tau**2)`` with the Laplace approximation of ``f_i``, refined by a Newton
   step on the spline) and scaled by its curvature.
3. **Outer grid over (tau, mu).** ``tau`` on composite Gauss-Legendre panels in
   ``w = asinh(tau / s)`` (as :mod:`ketabayes.inference.exact_hierarchical`, whose
   :class:`~ketabayes.inference.exact_hierarchical.GridSettings` it takes, with the
   interval found by coarse passes); for every ``tau`` node, ``mu`` on a uniform grid
   of step :data:`MU_STEP` conditional sds over +-:data:`MU_HALF` sds around the
   conditional mean (the trapezoid rule, spectrally accurate for such smooth,
   rapidly decaying integrands). The likelihood is evaluated at :data:`N_CHEB`
   Chebyshev-Lobatto points of that interval and interpolated onto the grid
   (barycentric formula; the log density is analytic, so this converges
   spectrally). The grid is placed with the normal-normal approximation of the
   trials (or with the moments found by the coarse passes) and re-placed where
   its ends still carry mass.

**Targets as normal mixtures.** The average effect's posterior is the mixture over
the ``(tau, mu)`` nodes of narrow normals ``N(mu_j, h**2)`` with ``h`` the node
spacing (so the mixture is smooth: with kernels as wide as the spacing the ripple is
``exp(-2 pi**2)``); the weights of each ``tau`` slice are multiplied by
``N(mu; m, s**2 - h**2) / N(mu; m, s**2)`` (the slice's moments ``m, s``), which undoes
the kernel's variance exactly for a normal slice and to second order otherwise, and a
final exponential tilt makes the mixture's mean and variance exactly the slice's
(:func:`~ketabayes.inference.exact_binomial_kernels.kernel`). A new trial's effect is
then ``N(mu_j, h**2 + tau**2)`` per node, and a trial's own effect ``theta_i``
(:meth:`ExactBinomial.theta`; a target named by the study label) is built per ``tau``
node from ``mu``'s slice with the trial's data removed (the *cavity*), convolved with
``N(0, tau**2)`` and multiplied by ``f_i``
(:func:`~ketabayes.inference.exact_binomial_kernels.unit_effect`): no ripple as
``tau -> 0``. Probabilities agree with brute-force nested trapezoid integration to
better than 1e-4 (``tests/test_exact_binomial.py``, ``tests/test_binomial_effects.py``).

**Draws** (:meth:`ExactBinomial.sample`) are joint: ``(tau, mu)`` from the nodes and
kernels, then every trial's own effect from its exact conditional
``N(theta; mu, tau**2) f_i(theta) / h_i(mu, tau)`` (:meth:`ExactBinomial.draw_units`).
Each trial's log-likelihood given a draw, ``log h_i(mu, tau)``, is
:func:`pointwise_log_lik`.

References
----------
Smith TC, Spiegelhalter DJ, Thomas A (1995). Stat Med 14(24):2685-2699. doi:10.1002/sim.4780142408
Liu Q, Pierce DA (1994). A note on Gauss-Hermite quadrature. Biometrika 81(3):624-629. doi:10.1093/biomet/81.3.624
"""

from __future__ import annotations

import collections
import functools
import math

import numpy as np
from scipy import interpolate, special

from ketabayes.errors import KetabayesError
from ketabayes.inference.exact_binomial_kernels import compress, draw_log_concave, hermite, kernel, lse, unit_effect
from ketabayes.inference.exact_hierarchical import GridSettings
from ketabayes.marginals import MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior

__all__ = ["BINOMIAL_GRID", "ExactBinomial", "pointwise_log_lik", "trial_curves", "with_trial_effects"]

#: Gauss-Hermite nodes of the integral over each trial's baseline ``b_i`` given ``theta_i``; trials with a
#: zero cell (no events, or only events, in an arm) get :data:`N_BASE_ZERO`: their integrand in ``b_i`` is the
#: prior's normal tail on one side and a steep cut-off on the other, far from a normal (24 nodes: log f_i
#: off by 1e-5 for a zero-event arm and 2e-4 for a double-zero trial; 64 nodes: < 1e-6 against a dense
#: trapezoid rule)
N_BASE = 24
N_BASE_ZERO = 64
#: Gauss-Hermite nodes of the integral over ``theta_i`` given ``(mu, tau)``
N_THETA = 12
#: step of the ``theta`` grid on which ``log f_i`` is tabulated (log-OR units)
THETA_STEP = 0.05
#: step of the ``mu`` grid of each ``tau`` slice, in units of the slice's conditional sd
MU_STEP = 0.1
#: half-width of the ``mu`` grid of each ``tau`` slice, in conditional sds
MU_HALF = 8.0
#: Chebyshev-Lobatto points per ``mu`` slice at which the likelihood is evaluated (the log density is
#: then interpolated onto the uniform grid: it is analytic, so the interpolation converges spectrally)
N_CHEB = 25
#: the same for the coarse passes that find the ``tau`` interval
_MU_STEP_COARSE, _MU_HALF_COARSE, _N_CHEB_COARSE = 0.5, 7.0, 13
#: trials' tabulated ``log f_i`` kept between fits (leave-one-out and prior grids reuse them)
_CACHE_SIZE = 4096
_TABLE_CACHE: collections.OrderedDict = collections.OrderedDict()
_TAU_FLOOR = 1e-8
#: a mu slice must end this far (log density) below its maximum
_EDGE = 25.0
_LOG_2PI = math.log(2.0 * math.pi)

#: outer (tau) grid: 2 Gauss-Legendre panels of 12 nodes, interval from 21-point coarse passes
BINOMIAL_GRID = GridSettings(nodes=((2, 12), (2, 12), (1, 12), (1, 12)), coarse=(21, 11, 7, 5), mass_cutoff=30.0,
                             passes=4, chunk=256)


_hermite, _lse, _kernel = hermite, lse, kernel


def _log_expit(x):
    return -np.logaddexp(0.0, -x)


class ExactBinomial:
    """Exact posterior of the binomial-logit random-effects model (no groupings, no moderators).

    Construction does the integration; target marginals are then
    :class:`~ketabayes.marginals.MixtureMarginal` objects, in the same
    form as :class:`~ketabayes.inference.exact_hierarchical.ExactHierarchical`
    (``marginal(t)``, ``component_summary(0)``, ``sample``), so that
    :class:`~ketabayes.result.hierarchical_result.HierarchicalResult` uses either.

    Parameters
    ----------
    a, n1, c, n2 : array_like of int
        Events and group sizes on treatment and control (metafor's ``ai, n1i, ci, n2i``).
    prior_mu : Normal or Flat
    prior_tau : Prior
        Prior of the between-trial SD of the log odds ratio.
    prior_baseline : Normal
        Prior of each trial's baseline (average of the two arms' log odds).
    A : array_like, shape (T, 1)
        Targets as multiples of ``mu``.
    pred : array_like of bool, shape (T, 1)
        ``pred[t, 0]``: target ``t`` adds ``N(0, tau**2)`` (a new trial).
    settings : GridSettings, optional
        Outer grid over ``tau`` (default :data:`BINOMIAL_GRID`).

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial import ExactBinomial
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> # three magnesium trials (Morton 1984, Bertschat 1989 with no death on magnesium, Rasmussen 1986)
    >>> post = ExactBinomial([1, 0, 9], [40, 22, 135], [2, 1, 23], [36, 21, 135], Normal(0, 2), HalfNormal(0.5),
    ...                      Normal(0, 5), np.ones((2, 1)), np.array([[False], [True]]))
    >>> round(float(post.marginal(0).cdf(0.0)), 3)  # P(log OR <= 0)
    0.979
    """

    def __init__(self, a, n1, c, n2, prior_mu: Prior, prior_tau: Prior, prior_baseline: Prior, A, pred, *,
                 settings: GridSettings | None = None, shrink=None):
        self.a, self.n1, self.c, self.n2 = (np.asarray(x, dtype=float).ravel() for x in (a, n1, c, n2))
        self.k = self.a.size
        if not isinstance(prior_mu, (Normal, Flat)):
            raise KetabayesError(f"the exact binomial engine needs a normal or flat prior for mu, got {prior_mu}")
        if not isinstance(prior_baseline, Normal):
            raise KetabayesError(f"the exact binomial engine needs a normal baseline prior, got {prior_baseline}")
        self.prior_mu, self.prior_tau, self.prior_baseline = prior_mu, prior_tau, prior_baseline
        self.A = np.asarray(A, dtype=float).reshape(-1, 1)
        self.pred = np.asarray(pred, dtype=bool).reshape(-1, 1)
        self.shrink = _shrink(shrink, self.A.shape[0], self.k)
        self.n_comp = 1
        self.settings = settings or BINOMIAL_GRID
        self._tabulate()
        self._integrate()

    # ------------------------------------------------------------------ step 1: f_i(theta)
    def _log_f(self, theta):
        """``log f_i(theta)`` for ``theta (k, T)``: the baseline integrated out by adaptive Gauss-Hermite."""
        zero = (self.a == 0) | (self.c == 0) | (self.a == self.n1) | (self.c == self.n2)
        out = np.empty(theta.shape)
        for rows, n in ((np.flatnonzero(~zero), N_BASE), (np.flatnonzero(zero), N_BASE_ZERO)):
            if rows.size:
                out[rows] = self._log_f_rule(theta[rows], rows, n)
        return out

    def _log_f_rule(self, theta, rows, n_nodes: int):
        """:meth:`_log_f` of the trials ``rows`` with an ``n_nodes``-point rule."""
        a, n1, c, n2 = (x[rows, None] for x in (self.a, self.n1, self.c, self.n2))
        m0, s0 = self.prior_baseline.mu, self.prior_baseline.sigma
        p_pool = (a + c + 0.5) / (n1 + n2 + 1.0)
        b = np.broadcast_to(np.log(p_pool / (1.0 - p_pool)), theta.shape).copy()
        for _ in range(100):
            p1, p2 = special.expit(b + 0.5 * theta), special.expit(b - 0.5 * theta)
            g1 = a - n1 * p1 + c - n2 * p2 - (b - m0) / s0**2
            g2 = -(n1 * p1 * (1.0 - p1) + n2 * p2 * (1.0 - p2)) - 1.0 / s0**2
            step = np.clip(-g1 / g2, -2.0, 2.0)
            b = b + step
            if np.max(np.abs(step)) < 1e-10:
                break
        p1, p2 = special.expit(b + 0.5 * theta), special.expit(b - 0.5 * theta)
        sd = 1.0 / np.sqrt(n1 * p1 * (1.0 - p1) + n2 * p2 * (1.0 - p2) + 1.0 / s0**2)
        x, lw = _hermite(n_nodes)
        bb = b[..., None] + math.sqrt(2.0) * sd[..., None] * x
        th = theta[..., None]
        a3, n13, c3, n23 = (v[..., None] for v in (a, n1, c, n2))
        g = (a3 * _log_expit(bb + 0.5 * th) + (n13 - a3) * _log_expit(-bb - 0.5 * th)
             + c3 * _log_expit(bb - 0.5 * th) + (n23 - c3) * _log_expit(-bb + 0.5 * th)
             - 0.5 * ((bb - m0) / s0) ** 2 - math.log(s0) - 0.5 * _LOG_2PI)
        lbin = (special.gammaln(n1 + 1) - special.gammaln(a + 1) - special.gammaln(n1 - a + 1)
                + special.gammaln(n2 + 1) - special.gammaln(c + 1) - special.gammaln(n2 - c + 1))
        return _lse(g + x**2 + lw) + np.log(math.sqrt(2.0) * sd) + lbin

    def _cached_log_f(self, grid):
        """``log f_i`` on ``grid`` for every trial, computed once per (trial counts, baseline prior, grid)."""
        keys = [(a, n1, c, n2, self.prior_baseline.mu, self.prior_baseline.sigma, grid[0], grid[-1], grid.size, N_BASE, N_BASE_ZERO)
                for a, n1, c, n2 in zip(self.a, self.n1, self.c, self.n2)]
        missing = [i for i, key in enumerate(keys) if key not in _TABLE_CACHE]
        if missing:
            sub = ExactBinomial.__new__(ExactBinomial)
            sub.a, sub.n1, sub.c, sub.n2 = (x[missing] for x in (self.a, self.n1, self.c, self.n2))
            sub.prior_baseline = self.prior_baseline
            vals = sub._log_f(np.broadcast_to(grid, (len(missing), grid.size)))
            for i, row in zip(missing, vals):
                row.flags.writeable = False
                _TABLE_CACHE[keys[i]] = row
        out = np.empty((self.k, grid.size))
        for i, key in enumerate(keys):
            out[i] = _TABLE_CACHE[key]
            _TABLE_CACHE.move_to_end(key)
        while len(_TABLE_CACHE) > _CACHE_SIZE:
            _TABLE_CACHE.popitem(last=False)
        return out

    def _tabulate(self):
        """``log f_i`` on a uniform grid and its cubic spline; the Laplace approximation of each ``f_i``."""
        a, n1, c, n2 = self.a, self.n1, self.c, self.n2
        y_cc = np.log((a + 0.5) / (n1 - a + 0.5)) - np.log((c + 0.5) / (n2 - c + 0.5))
        lo, hi = math.floor(float(y_cc.min()) - 10.0), math.ceil(float(y_cc.max()) + 10.0)
        grid = np.linspace(lo, hi, int(round((hi - lo) / THETA_STEP)) + 1)
        logf = self._cached_log_f(grid)
        if not np.all(np.isfinite(logf)):
            raise FloatingPointError("the binomial likelihood of a trial could not be evaluated")
        self._set_table(grid, logf)

    def _set_table(self, grid, logf):
        """Cubic splines of the log likelihood curves ``logf (k, T)`` on the uniform ``grid``; their Laplace fits."""
        self.k = logf.shape[0]
        spline = interpolate.CubicSpline(grid, logf.T, axis=0)
        self._grid, self._lo, self._h = grid, float(grid[0]), float(grid[1] - grid[0])
        self._coef = np.ascontiguousarray(spline.c.reshape(4, -1).T)  # ((T - 1) * k, 4): interval-major rows
        # Laplace approximation of each trial's likelihood of theta: mode and curvature (two Newton steps)
        y = grid[np.argmax(logf, axis=1)]
        for _ in range(3):
            _, d1, d2 = self._spline(y[None, :], derivs=True)
            y = np.clip(y - d1[0] / np.minimum(d2[0], -1e-8), grid[0], grid[-1])
        _, _, d2 = self._spline(y[None, :], derivs=True)
        self.y_hat = y
        self.v_hat = 1.0 / np.maximum(-d2[0], 1e-8)
        self.log_f_max = self._spline(y[None, :])[0]

    def _spline(self, x, derivs: bool = False, unit: int | None = None):
        """``log f_i`` (and its first two derivatives) at ``x (..., k)`` (trial = last axis).

        With ``unit``, the curve of that one trial at ``x`` of any shape.

        Outside the tabulated range the log likelihood is continued by its end point's
        slope and a concave quadratic (only ever reached with negligible weight).
        """
        xc = np.clip(x, self._grid[0], self._grid[-1])
        idx = np.minimum(((xc - self._lo) / self._h).astype(np.intp), self._grid.size - 2)
        t = xc - self._grid[idx]
        flat = idx * self.k + (np.arange(self.k) if unit is None else unit)
        cf = np.take(self._coef, flat, axis=0)
        c0, c1, c2, c3 = cf[..., 0], cf[..., 1], cf[..., 2], cf[..., 3]
        val = ((c0 * t + c1) * t + c2) * t + c3
        out = x - xc
        outside = bool(np.any(out != 0.0))
        if not (derivs or outside):
            return val
        d1 = (3.0 * c0 * t + 2.0 * c1) * t + c2
        d2 = 6.0 * c0 * t + 2.0 * c1
        if outside:
            v_hat = getattr(self, "v_hat", np.ones(self.k))
            curv = np.minimum(d2, -1.0 / np.maximum(v_hat if unit is None else v_hat[unit], 1e-8))
            val = val + d1 * out + 0.5 * curv * out**2
            d1 = d1 + curv * out
            d2 = np.where(out != 0.0, curv, d2)
        return (val, d1, d2) if derivs else val

    # ------------------------------------------------------------------ step 2: h_i(mu, tau)
    def _theta_given(self, mu, tau, unit: int | None = None):
        """Centre and sd of ``N(theta; m, tau**2) f_i(theta)`` (Laplace, one Newton step on the spline).

        ``mu (N,)`` (every trial's centre) or ``(N, k)`` (one centre per trial), ``tau (N,)``: arrays
        ``(N, k)``; with ``unit``, ``mu`` and ``tau`` of one shape for that unit alone.
        """
        t2 = np.maximum(tau, _TAU_FLOOR) ** 2
        if unit is None:
            t2 = t2[:, None]
            m = mu if mu.ndim == 2 else mu[:, None]
            y_hat, v_hat = self.y_hat, self.v_hat
        else:
            m, y_hat, v_hat = mu, self.y_hat[unit], self.v_hat[unit]
        prec = 1.0 / t2 + 1.0 / v_hat
        cen = (m / t2 + y_hat / v_hat) / prec
        _, d1, d2 = self._spline(cen, derivs=True, unit=unit)
        l2 = -1.0 / t2 + np.minimum(d2, 0.0)
        cen = cen - (-(cen - m) / t2 + d1) / l2
        _, _, d2 = self._spline(cen, derivs=True, unit=unit)
        return cen, 1.0 / np.sqrt(1.0 / t2 - np.minimum(d2, 0.0)), t2

    def _log_lik(self, mu, tau, per_unit: bool = False):
        """``sum_i log h_i(mu, tau)`` for ``mu, tau (N,)`` (adaptive Gauss-Hermite over each theta_i).

        ``mu`` may also be ``(N, k)``: trial ``i``'s centre in column ``i`` (moderators, groups).
        With ``per_unit``, the ``(N, k)`` terms ``log h_i`` instead of their sum. Evaluated
        in chunks small enough to stay in the processor's cache.
        """
        x, lw = _hermite(N_THETA)
        out = np.empty((mu.shape[0], self.k) if per_unit else mu.shape[0])
        ch = max(1, 16384 // (self.k * N_THETA))
        for i in range(0, mu.shape[0], ch):
            m, t = mu[i:i + ch], tau[i:i + ch]
            cen, sd, t2 = self._theta_given(m, t)
            mm = m if m.ndim == 2 else m[:, None]
            th = cen[..., None] + math.sqrt(2.0) * sd[..., None] * x
            val = (-0.5 * (th - mm[..., None]) ** 2 / t2[..., None] + self._spline_nodes(th) + (x**2 + lw))
            terms = _lse(val) + np.log(math.sqrt(2.0) * sd) - 0.5 * np.log(2.0 * math.pi * t2)
            out[i:i + ch] = terms if per_unit else terms.sum(1)
        return out

    def _unit_log_h(self, i: int, m, tau):
        """``log h_i(m, tau)`` of unit ``i`` alone, for ``m, tau`` of one shape."""
        x, lw = _hermite(N_THETA)
        m, tau = np.asarray(m, dtype=float), np.asarray(tau, dtype=float)
        cen, sd, t2 = self._theta_given(m, tau, unit=i)
        th = cen[..., None] + math.sqrt(2.0) * sd[..., None] * x
        val = -0.5 * (th - m[..., None]) ** 2 / t2[..., None] + self._spline(th, unit=i) + (x**2 + lw)
        return _lse(val) + np.log(math.sqrt(2.0) * sd) - 0.5 * np.log(2.0 * math.pi * t2)

    def draw_units(self, centre, tau, rng: np.random.Generator) -> np.ndarray:
        """Draw every unit's own effect given its centre: ``theta_i ~ N(theta; m_i, tau**2) f_i(theta) / h_i``.

        ``centre (N, k)``, ``tau (N,)``; returns ``(N, k)``: exact draws by rejection from the hull of
        tangents of the (concave) log density
        (:func:`~ketabayes.inference.exact_binomial_kernels.draw_log_concave`).
        """
        centre = np.asarray(centre, dtype=float)
        cen, sd, t2 = self._theta_given(centre, tau)
        m, t2 = centre.ravel(), np.broadcast_to(t2, centre.shape).ravel()
        unit = np.broadcast_to(np.arange(self.k), centre.shape).ravel()

        def logdens(x, idx):
            val, d1, _ = self._spline(x, derivs=True, unit=unit[idx, None])
            dev = (x - m[idx, None]) / t2[idx, None]
            return val - 0.5 * dev * (x - m[idx, None]), d1 - dev

        return draw_log_concave(logdens, cen, sd, rng)

    def _spline_nodes(self, th):
        """:meth:`_spline` at ``th (N, k, n)`` (trial = middle axis)."""
        return np.moveaxis(self._spline(np.moveaxis(th, 1, -1)), -1, 1)

    # ------------------------------------------------------------------ step 3: mu | tau, then tau
    def _normal_approx(self, tau):
        """Mean and sd of ``mu | tau`` under the normal approximation of each trial (``y_hat, v_hat``)."""
        w = 1.0 / (self.v_hat + tau[:, None] ** 2)
        prec, num = w.sum(1), w @ self.y_hat
        if isinstance(self.prior_mu, Normal):
            prec, num = prec + 1.0 / self.prior_mu.sigma**2, num + self.prior_mu.mu / self.prior_mu.sigma**2
        return num / prec, 1.0 / np.sqrt(prec)

    def _slices(self, tau, step, half, n_cheb, m=None, s=None):
        """``mu`` grid of each ``tau``: nodes ``(N, J)``, log posterior ``(N, J)`` (with mu's prior), spacing ``(N,)``.

        The grid is ``m + s * step * j`` over ``+-half`` sds (default ``m, s``: the normal
        approximation). The likelihood is evaluated at ``n_cheb`` Chebyshev-Lobatto points of
        the same interval and interpolated (barycentric formula). A slice whose log density at
        the ends is not ``_EDGE`` below its maximum, or whose sd differs much from ``s``, is
        re-placed on the moments found.
        """
        if m is None:
            m, s = self._normal_approx(tau)
        m, s = np.array(m, dtype=float), np.array(s, dtype=float)
        j = np.arange(-half / step, half / step + 0.5) * step
        zc = half * np.cos(np.pi * np.arange(n_cheb) / (n_cheb - 1))
        # barycentric weights of Chebyshev-Lobatto points in closed form, (-1)^k halved at both ends (Berrut &
        # Trefethen 2004): scipy computes them with its points in a random order, which changed the last bits of
        # every result from one process to the next
        wi = (-1.0) ** np.arange(n_cheb)
        wi[[0, -1]] *= 0.5
        to_grid = interpolate.BarycentricInterpolator(zc, np.eye(n_cheb), wi=wi)(j)   # (J, n_cheb)
        mu = np.empty((tau.size, j.size))
        lp = np.empty((tau.size, j.size))
        todo = np.arange(tau.size)
        for _ in range(6):
            mc = m[todo, None] + s[todo, None] * zc[None, :]
            lc = self._log_lik(mc.ravel(), np.repeat(tau[todo], n_cheb)).reshape(-1, n_cheb)
            with np.errstate(divide="ignore"):
                lc = lc + self.prior_mu.logpdf(mc)
            mu[todo] = m[todo, None] + s[todo, None] * j[None, :]
            lp[todo] = lc @ to_grid.T
            wt = np.exp(lp[todo] - lp[todo].max(1, keepdims=True))
            wt /= wt.sum(1, keepdims=True)
            m_new = (wt * mu[todo]).sum(1)
            s_new = np.sqrt(np.maximum((wt * (mu[todo] - m_new[:, None]) ** 2).sum(1), 1e-300))
            edge = np.maximum(lc[:, 0], lc[:, -1]) - lc.max(1)
            bad = (edge > -_EDGE) | (s_new < 0.6 * s[todo]) | (s_new > 1.6 * s[todo])
            m[todo], s[todo] = m_new, np.where(edge > -_EDGE, np.maximum(s_new, s[todo]), s_new)
            todo = todo[bad]
            if todo.size == 0:
                break
        return mu, lp, mu[:, 1] - mu[:, 0]

    def _log_tau_density(self, w, s, step, half, n_cheb, m=None, sd=None):
        """Log posterior density of ``w = asinh(tau / s)`` (mu integrated out) and the slices."""
        tau = s * np.sinh(w)
        with np.errstate(divide="ignore", invalid="ignore"):
            lprior = self.prior_tau.logpdf(tau) + np.log(s * np.cosh(w))
        mu, lp, dmu = self._slices(tau, step, half, n_cheb, m, sd)
        ld = lprior + special.logsumexp(lp, axis=1) + np.log(dmu)
        return np.where(np.isfinite(ld), ld, -np.inf), mu, lp, dmu

    def _approx_log_tau_density(self, tau):
        """Log density of ``tau`` under the normal approximation of every trial (closed form; only to place the grid)."""
        tv = self.v_hat + tau[:, None] ** 2
        m, sd = self._normal_approx(tau)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (self.prior_tau.logpdf(tau) - 0.5 * np.log(tv).sum(1)
                   - 0.5 * ((self.y_hat - m[:, None]) ** 2 / tv).sum(1) + np.log(sd))
        return np.where(np.isfinite(out), out, -np.inf)

    def _integrate(self):
        st = self.settings
        lo_b, hi_b = self.prior_tau.bounds()
        lo, hi = max(lo_b, 0.0), min(hi_b, 20.0 + 2.0 * float(np.std(self.y_hat)))
        # 1. the box from the normal approximation (generous cut-off), on a fine grid in asinh(tau / s)
        s = max(hi / 1000.0, 1e-12)
        tt = s * np.sinh(np.linspace(math.asinh(lo / s), math.asinh(hi / s), 401))
        la = self._approx_log_tau_density(tt) + np.log(np.sqrt(tt**2 + s**2))
        idx = np.flatnonzero(la > np.max(la) - st.mass_cutoff - 15.0)
        lo, hi = float(tt[max(idx[0] - 1, 0)]), float(tt[min(idx[-1] + 1, tt.size - 1)])
        # 2. exact coarse passes: widen the box while its ends carry mass, then cut it to mass_cutoff
        n0 = st.coarse[0]
        for _ in range(st.passes + 4):
            s = max(hi / 100.0, 1e-12)
            ws = np.linspace(math.asinh(lo / s), math.asinh(hi / s), n0)
            ld, mu_c, lp_c, _ = self._log_tau_density(ws, s, _MU_STEP_COARSE, _MU_HALF_COARSE, _N_CHEB_COARSE)
            top = float(np.max(ld))
            if not np.isfinite(top):
                raise FloatingPointError("the posterior of tau could not be evaluated")
            grow = False
            if ld[-1] > top - st.mass_cutoff and hi < hi_b:
                hi, grow = min(2.0 * hi, hi_b), True
            if ld[0] > top - st.mass_cutoff and lo > lo_b:
                lo, grow = max(lo_b, 0.25 * lo if lo > 4.0 * s else 0.0), True
            if not grow:
                break
        idx = np.flatnonzero(ld > top - st.mass_cutoff)
        lo, hi = s * math.sinh(ws[max(idx[0] - 1, 0)]), s * math.sinh(ws[min(idx[-1] + 1, n0 - 1)])
        wc = np.exp(lp_c - lp_c.max(1, keepdims=True))
        wc /= wc.sum(1, keepdims=True)
        m_c = (wc * mu_c).sum(1)
        s_c = np.sqrt((wc * (mu_c - m_c[:, None]) ** 2).sum(1))
        tau_c = s * np.sinh(ws)
        # 3. the final rule: composite Gauss-Legendre in w, fine mu slices placed on the coarse moments
        panels, npp = st.nodes[0]
        s = max(hi / 50.0, 1e-12)
        wlo, whi = math.asinh(lo / s), math.asinh(hi / s)
        x, wt = special.roots_legendre(npp)
        edges = np.linspace(wlo, whi, panels + 1)
        half = 0.5 * np.diff(edges)
        mid = 0.5 * (edges[1:] + edges[:-1])
        w = (mid[:, None] + half[:, None] * x[None, :]).ravel()
        lgl = np.log((half[:, None] * wt[None, :]).ravel())
        tau = s * np.sinh(w)
        ld, mu, lp, dmu = self._log_tau_density(w, s, MU_STEP, MU_HALF, N_CHEB, np.interp(tau, tau_c, m_c),
                                                np.interp(tau, tau_c, s_c))
        logw = ld + lgl
        self.log_evidence = float(special.logsumexp(logw))
        self._s, self._edges, self._npp = s, edges, npp
        self.box = (lo, hi)
        self.w_nodes, self.tau_nodes = w, tau
        self.tau_log_weights = logw - self.log_evidence
        self._log_tau_dens = ld
        # joint (tau, mu) nodes with their quadrature weights
        cond = lp - special.logsumexp(lp, axis=1, keepdims=True)
        self.mu_nodes = mu
        self.node_log_weights = self.tau_log_weights[:, None] + cond
        # kernel representation of mu | tau (see the module docstring)
        self._kc, self.kernel_sd = _kernel(cond, mu, dmu)
        self.kernel_log_weights = self.tau_log_weights[:, None] + self._kc

    # ------------------------------------------------------------------ results
    def marginal(self, t: int) -> MixtureMarginal:
        """Posterior of target ``t``: ``A[t] mu`` (plus ``N(0, tau**2)`` if ``pred[t]``), a normal mixture;
        trial ``shrink[t]``'s own effect if ``shrink[t] >= 0`` (:meth:`theta`)."""
        if self.shrink[t] >= 0:
            return self.theta(int(self.shrink[t]))
        a, p = float(self.A[t, 0]), bool(self.pred[t, 0])
        sd = np.broadcast_to((a * self.kernel_sd)[:, None] ** 2 + (self.tau_nodes**2 * p)[:, None],
                             self.mu_nodes.shape)
        return MixtureMarginal(np.exp(self.kernel_log_weights).ravel(), (a * self.mu_nodes).ravel(),
                               np.sqrt(np.maximum(sd, 1e-300)).ravel())

    @functools.cached_property
    def marginals(self) -> list[MixtureMarginal]:
        return [self.marginal(t) for t in range(self.A.shape[0])]

    def theta(self, i: int) -> MixtureMarginal:
        """Posterior of trial ``i``'s own log odds ratio ``theta_i``: a normal mixture
        (:func:`~ketabayes.inference.exact_binomial_kernels.unit_effect`, merged by
        :func:`~ketabayes.inference.exact_binomial_kernels.compress`)."""
        if i not in self._theta_cache:
            self._theta_cache[i] = MixtureMarginal(*compress(*self.unit_mixture(i)))
        return self._theta_cache[i]

    @functools.cached_property
    def _theta_cache(self) -> dict:
        return {}

    def unit_mixture(self, i: int, cutoff: float = 40.0):
        """Weights, means and sds of unit ``i``'s own effect (tau nodes ``cutoff`` log units below the top dropped)."""
        keep = np.flatnonzero(self.tau_log_weights > self.tau_log_weights.max() - cutoff)
        lw = self.tau_log_weights[keep] - special.logsumexp(self.tau_log_weights[keep])
        cond = self.node_log_weights[keep] - self.tau_log_weights[keep, None]   # mu | tau on its own grid
        return unit_effect(self, i, self.tau_nodes[keep], lw, (cond, self.mu_nodes[keep]), on_grid=True)

    def tau_cdf(self, tau) -> np.ndarray:
        """Posterior CDF of ``tau``: the log density in ``w`` (known at the nodes) as a cubic spline, integrated."""
        fine, cdf = self._tau_table
        w = np.arcsinh(np.asarray(tau, dtype=float) / self._s)
        return np.interp(w, fine, cdf, left=0.0, right=1.0)

    @functools.cached_property
    def _tau_table(self):
        spline = interpolate.CubicSpline(self.w_nodes, self._log_tau_dens - self._log_tau_dens.max())
        fine = np.linspace(self._edges[0], self._edges[-1], 4001)
        dens = np.exp(np.minimum(spline(fine), 0.5))
        cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(fine))])
        return fine, cdf / cdf[-1]

    def component_summary(self, c: int = 0, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd (quadrature) and quantiles of ``tau`` (``c`` must be 0)."""
        if c != 0:
            raise KetabayesError("the exact binomial engine has one variance component (tau)")
        wt = np.exp(self.tau_log_weights)
        mean = float(wt @ self.tau_nodes)
        sd = float(np.sqrt(max(wt @ self.tau_nodes**2 - mean**2, 0.0)))
        fine, cdf = self._tau_table
        q = self._s * np.sinh(np.interp(np.asarray(qs, dtype=float), cdf, fine))
        return {"mean": mean, "sd": sd, "q025": float(q[0]), "q50": float(q[1]), "q975": float(q[2])}

    def sample(self, n: int, rng: np.random.Generator, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws: ``phi`` (tau), ``b`` (mu), each trial's ``centre`` and effect ``theta``, targets.

        A node is drawn by its weight (kernel representation), ``tau`` uniformly within
        its Gauss-Legendre cell in ``w``, ``mu`` from the node's kernel, every trial's own
        effect from its exact conditional given ``(mu, tau)`` (:meth:`draw_units`; not drawn
        with ``studies=False``), and the prediction terms ``N(0, tau**2)`` of the targets
        independently. Study targets (``shrink``) are the trials' effects.
        """
        p = np.exp(self.kernel_log_weights).ravel()
        idx = rng.choice(p.size, size=n, p=p / p.sum())
        it, _ = np.unravel_index(idx, self.mu_nodes.shape)
        tau = self._tau_in_cell(it, rng)
        mu = self.mu_nodes.ravel()[idx] + self.kernel_sd[it] * rng.standard_normal(n)
        targets = mu[:, None] * self.A[:, 0] + np.sqrt(self.pred[:, 0] * tau[:, None] ** 2) * rng.standard_normal(
            (n, self.A.shape[0]))
        centre = np.broadcast_to(mu[:, None], (n, self.k))
        out = {"phi": tau[:, None], "b": mu[:, None], "u": np.zeros((n, 0)), "centre": centre}
        return with_trial_effects(out, targets, self, self.shrink, tau, rng, studies)

    def _tau_in_cell(self, it, rng: np.random.Generator) -> np.ndarray:
        """``tau`` drawn uniformly (in ``w = asinh(tau / s)``) within the Gauss-Legendre cells of nodes ``it``."""
        cells = np.concatenate([[self._edges[0]], 0.5 * (self.w_nodes[1:] + self.w_nodes[:-1]), [self._edges[-1]]])
        w = cells[it] + (cells[it + 1] - cells[it]) * rng.uniform(size=np.shape(it))
        return self._s * np.sinh(w)


def _shrink(shrink, n_targets: int, k: int) -> np.ndarray:
    """Per target, the trial whose own effect it is (-1: none); checked against the number of trials."""
    out = np.full(n_targets, -1, dtype=int) if shrink is None else np.asarray(shrink, dtype=int).reshape(n_targets)
    if np.any(out >= k):
        raise KetabayesError(f"a study target refers to trial {int(out.max())}, but there are {k} trials")
    return out


def trial_curves(a, n1, c, n2, prior_baseline: Prior) -> ExactBinomial:
    """The trials' likelihood curves ``log f_i(theta)`` alone (step 1 of the module docstring; no integration).

    Gives ``_log_lik(centre, tau, per_unit=True)`` (each trial's ``log h_i``) and
    :meth:`ExactBinomial.draw_units` for draws that come from elsewhere (NUTS).
    """
    tr = object.__new__(ExactBinomial)
    tr.a, tr.n1, tr.c, tr.n2 = (np.asarray(x, dtype=float).ravel() for x in (a, n1, c, n2))
    tr.k = tr.a.size
    tr.prior_baseline = prior_baseline
    tr._tabulate()
    return tr


def pointwise_log_lik(curves: ExactBinomial, centre, tau) -> np.ndarray:
    """Each trial's log likelihood given a draw of its centre and of tau, baseline and own effect integrated out.

    ``log h_i(m_i, tau) = log int int Bin(ai | n1i, expit(b + theta / 2)) Bin(ci | n2i, expit(b - theta / 2))
    N(b; m0, s0**2) N(theta; m_i, tau**2) db dtheta`` for ``centre (..., k)`` (``m_i``: ``mu``, the trial's group
    effect or ``mu + x_i' gamma``) and ``tau (...)``; returns ``(..., k)``.

    This is the ``log_likelihood`` group of binomial results: leave-one-out cross-validation with it
    (``az.loo``) predicts a left-out trial's counts from the population-level parameters. It equals
    the LOO target of the likelihood given the trial's own baseline and effect (left out, those follow
    their prior given the population-level parameters), but its importance weights are stable: the
    trial's own parameters, which only its data inform, are integrated out instead of reweighted.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial import pointwise_log_lik, trial_curves
    >>> from ketabayes.model.priors import Normal
    >>> curves = trial_curves([1, 0], [40, 22], [2, 1], [36, 21], Normal(0, 5))   # Morton 1984, Bertschat 1989
    >>> np.round(pointwise_log_lik(curves, np.array([[-0.5, -0.5]]), np.array([0.3])), 3)
    array([[-4.673, -3.379]])
    """
    centre = np.asarray(centre, dtype=float)
    shape = centre.shape
    flat = curves._log_lik(centre.reshape(-1, shape[-1]), np.asarray(tau, dtype=float).reshape(-1), per_unit=True)
    return flat.reshape(shape)


def with_trial_effects(out: dict, targets, trials, shrink, tau, rng: np.random.Generator, studies: bool) -> dict:
    """Finish the joint draws of a binomial engine: with ``studies``, every trial's own effect ``theta`` from its
    exact conditional given ``out["centre"]`` and ``tau`` (``trials.draw_units``), copied into the study targets
    (``shrink[t] = i >= 0``); ``out["targets"] = targets``."""
    if studies:
        out["theta"] = trials.draw_units(out["centre"], tau, rng)
        rows = np.flatnonzero(shrink >= 0)
        targets[:, rows] = out["theta"][:, shrink[rows]]
    out["targets"] = targets
    return out
