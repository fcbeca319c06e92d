"""Exact posterior of the binomial-logit model with one moderator (meta-regression) by nested quadrature.

Model (:class:`~ketabayes.model.binomial.BinomialModel` with ``moderators="dose"``; ``x_i`` the trial's
moderator value, centred at the mean over the trials)::

    ai ~ Bin(n1i, expit(b_i + theta_i / 2)),   ci ~ Bin(n2i, expit(b_i - theta_i / 2)),   b_i ~ N(m0, s0**2)
    theta_i ~ N(m_i, tau**2),   m_i = mu + gamma x_i,   mu, gamma ~ Normal or flat,   tau ~ p(tau)

Given ``tau`` a trial enters only through its likelihood of its linear predictor ``m_i``,
``h_i(m; tau) = int N(theta; m, tau**2) f_i(theta) dtheta`` (baseline and effect integrated out as in
:mod:`ketabayes.inference.exact_binomial`), a one-dimensional curve. For every node of the outer rule
over ``tau`` (:class:`~ketabayes.inference.exact_binomial_grouped.OuterTau`) the curves are tabulated on
a grid of ``m`` (step :data:`M_STEP`, cubic splines), and ``(gamma, mu)`` are integrated on a grid: the
slope on a uniform grid (step :data:`GAMMA_STEP` posterior sds of the slope given ``tau``, +-8 sds,
re-placed on the moments found), and for each slope a ``mu`` slice exactly as the ungrouped engine's
(the likelihood at Chebyshev points, interpolated; trapezoid rule). So the posterior is a
three-dimensional integral ``(tau, gamma, mu)`` of one-dimensional tables: about 24 x 161 x 25 x k spline
look-ups.

Targets (normal mixtures, normal kernels as in the other binomial engines):

* ``mean`` (``mu``: the effect at the trials' mean moderator value) and ``predictive``
  (``mu + N(0, tau**2)``): the ``mu`` kernels of every ``(tau, gamma)`` slice;
* ``moderator=<name>`` (``gamma``): each ``tau`` node's slope density (slices summed) as kernels;
* each trial's own effect ``theta_i``: its centre ``m_i = mu + gamma x_i`` given ``tau`` is the mixture of the
  slices' kernels, from which :func:`~ketabayes.inference.exact_binomial_kernels.unit_effect` proceeds.

Two or more moderators would add a dimension each (``tau`` plus ``p + 1`` coefficients, every point costing
``k`` look-ups): the model's ``fit("exact")`` refuses them and names ``method="nuts"``.

References
----------
Smith TC, Spiegelhalter DJ, Thomas A (1995). Stat Med 14(24):2685-2699. doi:10.1002/sim.4780142408
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes.errors import KetabayesError
from ketabayes.inference import exact_binomial as eb
from ketabayes.inference.exact_binomial_grouped import OuterTau
from ketabayes.inference.exact_binomial_kernels import compress, kernel, lse, unit_effect
from ketabayes.inference.exact_hierarchical import GridSettings, target_draws
from ketabayes.marginals import MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior

__all__ = ["BINOMIAL_REGRESSION_GRID", "ExactBinomialRegression", "replace_slope_grid"]

#: outer rule over tau: 2 Gauss-Legendre panels of 12 nodes (entry 2), interval from 11-point coarse passes
BINOMIAL_REGRESSION_GRID = GridSettings(nodes=((2, 12), (2, 12), (1, 12), (1, 12)), coarse=(21, 11, 7, 5),
                                        mass_cutoff=30.0, passes=4, chunk=256)
#: step of the grid of the linear predictor on which each trial's ``log h_i(m; tau)`` is tabulated
M_STEP = 0.1
#: step and half-width of the slope grid given tau, in posterior sds of the slope
GAMMA_STEP, GAMMA_HALF = 0.1, 8.0
#: the same for the coarse passes that place the tau interval
_GAMMA_STEP_COARSE, _GAMMA_HALF_COARSE = 0.5, 7.0
#: the slope grid must end this far (log density) below its maximum
_EDGE = 25.0


def replace_slope_grid(lg, slopes, sd: float, edge: float) -> tuple[bool, float, float]:
    """Check a slope grid of spread ``sd`` (log weights ``lg`` at ``slopes``): ``(True, mean, sd)`` of the slope if
    its ends are ``edge`` (log units) below the top and its sd is near ``sd``, else ``(False, mean, sd)`` for the
    next grid (the moments found, the spread widened by 1.5 when the ends still carry mass)."""
    top = float(lg.max())
    wg = np.exp(lg - top)
    wg /= wg.sum()
    mean = float(wg @ slopes)
    new_sd = math.sqrt(max(float(wg @ (slopes - mean) ** 2), 1e-300))
    edges_ok = lg[0] < top - edge and lg[-1] < top - edge
    if edges_ok and 0.6 * sd < new_sd < 1.6 * sd:
        return True, mean, new_sd
    return False, mean, (max(new_sd, sd) * 1.5 if not edges_ok else new_sd)


class _Slices(eb.ExactBinomial):
    """Given ``tau``: units = trials with curves ``log h_i(m; tau)``; slices of ``mu`` keyed by the slope."""

    def _log_lik(self, mu, gamma, per_unit: bool = False):
        lp = self._spline(mu[:, None] + gamma[:, None] * self.x[None, :]).sum(1)
        with np.errstate(divide="ignore"):
            return lp + self.prior_gamma.logpdf(gamma)


class _GivenTau:
    """The posterior of ``(gamma, mu)`` given ``tau`` on slope-by-mu slices (see the module docstring)."""

    def __init__(self, trials, x, prior_mu, prior_gamma, tau: float, fine: bool):
        self.tau = tau
        step, half = (GAMMA_STEP, GAMMA_HALF) if fine else (_GAMMA_STEP_COARSE, _GAMMA_HALF_COARSE)
        mu_args = (eb.MU_STEP, eb.MU_HALF, eb.N_CHEB) if fine else (eb._MU_STEP_COARSE, eb._MU_HALF_COARSE,
                                                                    eb._N_CHEB_COARSE)
        # normal approximation of (mu, gamma) from the trials' Laplace fits given tau
        X = np.column_stack([np.ones_like(x), x])
        w = 1.0 / (trials.v_hat + tau**2)
        P = (X.T * w) @ X
        r = (X.T * w) @ trials.y_hat
        for j, p in enumerate((prior_mu, prior_gamma)):
            if isinstance(p, Normal):
                P[j, j] += 1.0 / p.sigma**2
                r[j] += p.mu / p.sigma**2
        cov = np.linalg.inv(P)
        b = cov @ r
        # each trial's log h_i(m; tau) on a grid of m covering its linear predictor generously
        m_sd = np.sqrt(np.einsum("ij,jk,ik->i", X, cov, X))
        lo = float(np.min(X @ b - 12.0 * m_sd)) - 1.0 - 4.0 * tau
        hi = float(np.max(X @ b + 12.0 * m_sd)) + 1.0 + 4.0 * tau
        lo, hi = max(lo, trials._grid[0]), min(hi, trials._grid[-1])
        m = np.linspace(lo, hi, max(int(math.ceil((hi - lo) / M_STEP)) + 1, 8))
        curves = trials._log_lik(m, np.full(m.size, tau), per_unit=True).T          # (k, M)
        e = object.__new__(_Slices)
        e.prior_mu, e.prior_gamma, e.x = prior_mu, prior_gamma, x
        e._set_table(m, curves)
        self.curves = e
        # slope grid, re-placed on the slope's moments until its ends carry no mass
        g_mean, g_sd = b[1], math.sqrt(cov[1, 1])
        slope = cov[0, 1] / cov[1, 1]
        m_sd_given = math.sqrt(max(cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1], 1e-300))
        j = np.arange(-half / step, half / step + 0.5) * step
        for _ in range(6):
            gam = g_mean + g_sd * j
            mu, lp, dmu = e._slices(gam, *mu_args, b[0] + slope * (gam - b[1]), np.full(gam.size, m_sd_given))
            lg = lse(lp) + np.log(dmu)
            placed, g_mean, g_sd = replace_slope_grid(lg, gam, g_sd, _EDGE)
            if placed:
                break
        dg = float(gam[1] - gam[0])
        self.log_evidence = float(lse(lg) + math.log(dg))
        self.gamma_nodes, self.mu_nodes = gam, mu
        self.slice_log_weights = lg - lse(lg)                                # trapezoid weights in gamma
        cond = lp - lse(lp)[:, None]
        self._kc, self.kernel_sd = kernel(cond, mu, dmu)                      # mu | gamma, tau
        if fine:
            kg, hg = kernel(self.slice_log_weights[None, :], gam[None, :], np.array([dg]))
            self.gamma_kernel_log_weights, self.gamma_kernel_sd = kg[0], float(hg[0])

    def linear_mixture(self, a_mu: float, a_g: float):
        """``a_mu mu + a_g gamma`` given tau as a normal mixture (weights, means, sds).

        The joint density is represented by the slope's kernels times, per slope node, that slice's
        ``mu`` kernels: ``sum_l sum_n w_l w_ln N((gamma, mu); (gamma_l, mu_ln), diag(h_g**2, h_l**2))``
        (the slope kernels keep a combination with a large ``a_g`` free of ripple).
        """
        w = np.exp(self.gamma_kernel_log_weights[:, None] + self._kc).ravel()
        m = (a_mu * self.mu_nodes + a_g * self.gamma_nodes[:, None]).ravel()
        s = np.sqrt(np.broadcast_to((a_mu * self.kernel_sd[:, None]) ** 2 + (a_g * self.gamma_kernel_sd) ** 2,
                                    self.mu_nodes.shape)).ravel()
        return w, m, s


class ExactBinomialRegression(OuterTau):
    """Exact posterior of the binomial-logit model with one moderator (see the module docstring).

    Parameters
    ----------
    a, n1, c, n2 : array_like of int
        Events and group sizes (metafor's ``ai, n1i, ci, n2i``).
    x : array_like, shape (k,)
        The moderator, centred (``mu`` is then the effect at the trials' mean moderator value).
    prior_mu, prior_gamma : Normal or Flat
        Priors of ``mu`` and of the slope.
    prior_tau, prior_baseline : Prior
    A : array_like, shape (T, 2)
        Targets as combinations of ``(mu, gamma)``.
    pred : array_like of bool, shape (T, 1)
        Prediction term ``N(0, tau**2)`` of each target.
    settings : GridSettings, optional
    shrink : array_like of int, shape (T,), optional
        ``shrink[t] = i``: target ``t`` is trial ``i``'s own effect; -1 (default) otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial_regression import ExactBinomialRegression
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> # four magnesium trials (Egger et al. 2001) and an arbitrary moderator (illustration only)
    >>> x = np.array([-1.0, -0.5, 0.5, 1.0])
    >>> post = ExactBinomialRegression([1, 0, 9, 2], [40, 22, 135, 200], [2, 1, 23, 7], [36, 21, 135, 200], x,
    ...                                Normal(0, 2), Normal(0, 1), HalfNormal(0.5), Normal(0, 5),
    ...                                np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros((2, 1), bool))
    >>> bool(0.9 < post.marginal(0).cdf(0.0) < 1.0)
    True
    """

    def __init__(self, a, n1, c, n2, x, prior_mu: Prior, prior_gamma: Prior, prior_tau: Prior,
                 prior_baseline: Prior, A, pred, *, settings: GridSettings | None = None, shrink=None):
        for what, p in (("mu", prior_mu), ("the slope", prior_gamma)):
            if not isinstance(p, (Normal, Flat)):
                raise KetabayesError(f"the exact binomial engine needs a normal or flat prior for {what}, got {p}")
        if not isinstance(prior_baseline, Normal):
            raise KetabayesError(f"the exact binomial engine needs a normal baseline prior, got {prior_baseline}")
        self.x = np.asarray(x, dtype=float).ravel()
        self.A = np.asarray(A, dtype=float).reshape(-1, 2)
        self.pred = np.asarray(pred, dtype=bool).reshape(-1, 1)
        self.shrink = eb._shrink(shrink, self.A.shape[0], self.x.size)
        self.prior_mu, self.prior_gamma, self.prior_tau = prior_mu, prior_gamma, prior_tau
        self.n_comp = 1
        self.settings = settings or BINOMIAL_REGRESSION_GRID
        tr = eb.trial_curves(a, n1, c, n2, prior_baseline)
        tr.prior_mu, tr.prior_tau, tr.settings = prior_mu, prior_tau, self.settings   # to place the tau grid
        self.trials = tr
        self._integrate()          # coarse passes use coarse slope grids, the final rule the fine ones
        self._marginals = {}

    def _inner(self, tau: float, final: bool = True) -> _GivenTau:
        return _GivenTau(self.trials, self.x, self.prior_mu, self.prior_gamma, tau, final)

    # ------------------------------------------------------------------ results
    def _mixture(self, t: int):
        keep, lws = self._keep, self._kept_log_weights()
        if self.shrink[t] >= 0:
            i = int(self.shrink[t])
            return unit_effect(self.trials, i, self.tau_nodes[keep], lws,
                               [compress(*self.inner[j].linear_mixture(1.0, self.x[i])) for j in keep])
        (a_mu, a_g), p = self.A[t], bool(self.pred[t, 0])
        ws, ms, ss = [], [], []
        for j, lw in zip(keep, lws):
            e, t2 = self.inner[j], self.tau_nodes[j] ** 2 * p
            if a_mu != 0.0:
                w, m, sd = e.linear_mixture(a_mu, a_g)
                ws.append(np.exp(lw) * w)
                ms.append(m)
                ss.append(np.sqrt(sd**2 + t2))
            else:
                ws.append(np.exp(lw + e.gamma_kernel_log_weights))
                ms.append(a_g * e.gamma_nodes)
                ss.append(np.full(e.gamma_nodes.size, math.sqrt((a_g * e.gamma_kernel_sd) ** 2 + t2)))
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)

    def marginal(self, t: int) -> MixtureMarginal:
        """Posterior of target ``t`` (row of ``A``), a normal mixture (merged by :func:`compress`)."""
        if t not in self._marginals:
            self._marginals[t] = MixtureMarginal(*compress(*self._mixture(t)))
        return self._marginals[t]

    def component_summary(self, c: int = 0, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd and quantiles of ``tau`` (``c`` must be 0)."""
        if c != 0:
            raise KetabayesError("the exact binomial regression engine has one variance component (tau)")
        return eb.ExactBinomial.component_summary(self, 0, qs)

    def sample(self, n: int, rng: np.random.Generator, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws: ``phi`` (tau), ``b`` (mu, slope), ``centre`` (each trial's ``m_i``),
        ``theta`` (each trial's own effect) and ``targets``.

        ``tau`` by its node's weight (spread within the node's cell), the slope from that node's kernels
        of the slope, ``mu`` from the kernels of the slope's slice, every trial's effect from
        ``N(theta; mu + gamma x_i, tau**2) f_i(theta)`` (exact, by rejection).
        """
        wt = np.exp(self._kept_log_weights())
        jj = rng.choice(self._keep, size=n, p=wt / wt.sum())
        tau = eb.ExactBinomial._tau_in_cell(self, jj, rng)
        mu, gamma = np.empty(n), np.empty(n)
        for j in np.unique(jj):
            sel, e = np.flatnonzero(jj == j), self.inner[j]
            pg = np.exp(e.gamma_kernel_log_weights)
            ls = rng.choice(pg.size, size=sel.size, p=pg / pg.sum())
            gamma[sel] = e.gamma_nodes[ls] + e.gamma_kernel_sd * rng.standard_normal(sel.size)
            for l_ in np.unique(ls):
                sub = sel[ls == l_]
                pm = np.exp(e._kc[l_])
                nn = rng.choice(pm.size, size=sub.size, p=pm / pm.sum())
                mu[sub] = e.mu_nodes[l_, nn] + e.kernel_sd[l_] * rng.standard_normal(sub.size)
        coef = np.column_stack([mu, gamma])
        targets = target_draws(coef, tau[:, None], self.A, self.pred, rng)
        centre = mu[:, None] + gamma[:, None] * self.x[None, :]
        out = {"phi": tau[:, None], "b": coef, "u": np.zeros((n, 0)), "centre": centre}
        return eb.with_trial_effects(out, targets, self.trials, self.shrink, tau, rng, studies)
