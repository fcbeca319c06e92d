"""Exact posterior of the binomial-logit model with one grouping and one moderator by nested quadrature.

Model (:class:`~ketabayes.model.binomial.BinomialModel` with ``by="drug", moderators="dose"``; trial ``i``
in group ``g(i)``, ``x_i`` its moderator value centred at the mean over the trials)::

    ai ~ Bin(n1i, expit(b_i + theta_i / 2)),   ci ~ Bin(n2i, expit(b_i - theta_i / 2)),   b_i ~ N(m0, s0**2)
    theta_i ~ N(gamma_g(i) + beta x_i, tau**2),   gamma_g = mu + alpha_g ~ N(mu, sd**2)
    mu, beta ~ Normal or flat,   tau, sd ~ their priors

Given ``(tau, beta)`` the trials of a group enter only through the group's likelihood of its effect at the
mean moderator value, ``H_g(gamma; beta, tau) = prod_(i in g) h_i(gamma + beta x_i; tau)`` (``h_i`` the
trial likelihood of :mod:`ketabayes.inference.exact_binomial`: baseline and trial effect integrated out),
and ``(sd, mu)`` are integrated by the group-level engine of the one-grouping model
(:func:`~ketabayes.inference.exact_binomial_grouped.group_level`). So the posterior is a four-dimensional
integral of one-dimensional tables:

1. ``tau`` on the outer rule of the other binomial engines
   (:class:`~ketabayes.inference.exact_binomial_grouped.OuterTau`);
2. for each ``tau`` node every trial's ``log h_i(m; tau)`` is tabulated on a grid of ``m`` (step
   :data:`M_STEP`, cubic splines), and the slope ``beta`` is on a uniform grid (step :data:`SLOPE_STEP`
   posterior sds, +-:data:`SLOPE_HALF` sds; trapezoid rule, spectrally accurate for this smooth, rapidly
   decaying integrand), placed with the generalised least-squares fit of the trials' Laplace
   approximations and re-placed on the moments found while its ends carry mass;
3. for each slope node the group-level engine over ``(sd, mu)``, with the groups' curves ``log H_g``
   summed from the trials' tables.

Targets (normal mixtures, as in the other binomial engines): ``mean`` (``mu``, at the mean moderator
value) and ``predictive`` (``mu + N(0, sd**2 + tau**2)``) from the slices' ``mu`` kernels; each group's
``gamma_g`` (``drug=k``) and a new trial in it (``+ N(0, tau**2)``) from the slices' group mixtures;
``moderator=<name>`` (``beta``) from each ``tau`` node's slope kernels; each trial's own effect
``theta_i`` from its centre ``gamma_g(i) + beta x_i`` (the slices' group mixtures shifted by ``beta x_i``,
widened by the slope kernel) through
:func:`~ketabayes.inference.exact_binomial_kernels.unit_effect`.

**Joint draws**: ``tau`` by its node's weight, the slope by the node's slope kernels, ``(sd, mu)`` from
that slice's group-level engine, every group's effect from its exact conditional
``N(gamma; mu, sd**2) H_g(gamma; beta, tau)``, every trial's effect from
``N(theta; gamma_g + beta x_i, tau**2) f_i(theta)``.

Accuracy: against a dense four-dimensional reference (``tests/test_binomial_mixed.py``) the CDFs of ``mu``
and the slope, the groups' probabilities and the scale means agree to 4e-5; the trials' own effects, whose
centre moves with the slope, converge more slowly with the slope step (probabilities 4e-4 from a rule with
the step 0.25 instead of 0.4).

Cost: about ``n_tau x n_slope`` group-level engines (16 x 39 nodes), and each group's marginal a mixture over
all of them, so this form is exact and deterministic rather than fast: on the 16 magnesium trials by size and
year the fit and decision table take about 12 s, NUTS about 10 s (``benchmarks/binomial.py``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import interpolate, optimize

from ketabayes.errors import KetabayesError
from ketabayes.inference import exact_binomial as eb
from ketabayes.inference.exact_binomial_grouped import OuterTau, group_level
from ketabayes.inference.exact_binomial_kernels import compress, hermite, kernel, lse, unit_effect
from ketabayes.inference.exact_binomial_regression import replace_slope_grid
from ketabayes.inference.exact_hierarchical import GridSettings, target_draws
from ketabayes.marginals import MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior

__all__ = ["BINOMIAL_MIXED_GRID", "ExactBinomialMixed"]

#: outer rule over tau (entry 2 of ``nodes`` / ``coarse``); the group-level engines use entry 1
BINOMIAL_MIXED_GRID = GridSettings(nodes=((2, 8), (2, 8), (1, 12), (1, 12)), coarse=(11, 11, 7, 5),
                                   mass_cutoff=30.0, passes=4, chunk=256)
#: step of the grid of the linear predictor on which each trial's ``log h_i(m; tau)`` is tabulated
M_STEP = 0.1
#: step of the grid of the groups' effects (multiple of the trials' theta grid step)
GAMMA_STEP = 0.1
#: step and half-width of the slope grid given tau, in posterior sds of the slope
SLOPE_STEP, SLOPE_HALF = 0.4, 7.6
#: the slope's density is represented on a grid this many times finer than the slices (see ``_GivenTau._fine``)
FINE = 5
#: the same for the coarse passes that place the tau interval
_SLOPE_STEP_COARSE, _SLOPE_HALF_COARSE = 1.0, 7.0
#: the slope grid must end this far (log density) below its maximum
_EDGE = 25.0
#: slices (and fine slope nodes) this far (log weight) below the largest are left out of the mixtures
_LIVE = 40.0


class _GivenTau:
    """Given ``tau``: the slope grid and one group-level engine per slope node (see the module docstring)."""

    def __init__(self, owner: ExactBinomialMixed, tau: float, fine: bool):
        self.tau = tau
        tr, x = owner.trials, owner.x
        step, half = (SLOPE_STEP, SLOPE_HALF) if fine else (_SLOPE_STEP_COARSE, _SLOPE_HALF_COARSE)
        settings = owner._inner_settings if fine else owner._coarse_settings
        b, cov = owner._gls(tau)
        s_mean, s_sd = owner._slope_start(tau, fine, float(b[1]), math.sqrt(cov[1, 1]))
        # every trial's log h_i(m; tau) on a grid of m covering the groups' grid shifted by the slopes in reach
        w = owner._gamma
        reach = float(np.max(np.abs(x))) * (abs(s_mean) + 3.0 * half * s_sd) + 1.0
        lo, hi = w[0] - reach, w[-1] + reach
        m = np.linspace(lo, hi, max(int(math.ceil((hi - lo) / M_STEP)) + 1, 8))
        table = object.__new__(eb.ExactBinomial)
        table._set_table(m, tr._log_lik(m, np.full(m.size, tau), per_unit=True).T)
        j = np.arange(-half / step, half / step + 0.5) * step
        for _ in range(6):
            slopes = s_mean + s_sd * j
            engines = [group_level(w, (table._spline(w[:, None] + s * x[None, :]) @ owner._member).T,
                                   owner.prior_mu, owner.prior_sd, settings) for s in slopes]
            with np.errstate(divide="ignore"):
                lg = np.array([e.log_evidence for e in engines]) + owner.prior_slope.logpdf(slopes)
            placed, new_mean, new_sd = replace_slope_grid(lg, slopes, s_sd, _EDGE)
            if placed:
                break
            s_mean, s_sd = new_mean, new_sd
        ds = float(slopes[1] - slopes[0])
        self.moments = (new_mean, new_sd)
        self.log_evidence = float(lse(lg) + math.log(ds))
        self.slopes, self.engines = slopes, engines
        self.slice_log_weights = lg - lse(lg)                           # trapezoid weights of the slope
        self._groups: dict[tuple[int, int], tuple] = {}
        if fine:
            self._fine(ds)

    def _fine(self, ds: float):
        """The slope on a grid :data:`FINE` times finer (its log density, smooth, by a cubic spline through the
        slice nodes) as normal kernels; the first-order change of ``mu`` and of each group's effect with the slope
        (finite differences of the slices' means), so that a fine node's conditionals are the nearest slice's,
        shifted."""
        slopes = self.slopes
        fine = np.linspace(slopes[0], slopes[-1], FINE * (slopes.size - 1) + 1)
        lf = interpolate.CubicSpline(slopes, self.slice_log_weights)(fine)
        kw, h = kernel((lf - lse(lf))[None, :], fine[None, :], np.array([ds / FINE]))
        self.fine_slopes, self.slope_kernel_log_weights, self.slope_kernel_sd = fine, kw[0], float(h[0])
        self.nearest = np.rint((fine - slopes[0]) / ds).astype(int)
        # slices and fine nodes that carry weight (the others, far in the tails, are left out of the mixtures: their
        # group-level posteriors may be degenerate)
        live = np.flatnonzero(self.slice_log_weights > self.slice_log_weights.max() - _LIVE)
        self.live = np.arange(live[0], live[-1] + 1)
        self.fine_live = np.flatnonzero((kw[0] > kw[0].max() - _LIVE) & np.isin(self.nearest, self.live))
        self.d_mu = self._gradient([float(np.exp(e.kernel_log_weights).ravel() @ e.mu_nodes.ravel())
                                    for e in (self.engines[l_] for l_ in self.live)])
        self._d_group: dict[int, np.ndarray] = {}

    def _gradient(self, values) -> np.ndarray:
        """Finite-difference derivative with the slope of ``values`` given on the live slices (0 elsewhere)."""
        out = np.zeros(self.slopes.size)
        if self.live.size > 1:
            out[self.live] = np.gradient(np.asarray(values, dtype=float), self.slopes[self.live])
        return out

    def _slice_group(self, l_: int, g: int):
        """Group ``g``'s effect in slice ``l_`` (compressed mixture; cached)."""
        if (l_, g) not in self._groups:
            self._groups[l_, g] = compress(*self.engines[l_].unit_mixture(g))
        return self._groups[l_, g]

    def d_group(self, g: int) -> np.ndarray:
        """Change of group ``g``'s mean effect with the slope, per slice."""
        if not self._d_group:
            means = np.array([_unit_means(self.engines[l_]) for l_ in self.live])       # (live slices, G)
            self._d_group.update({h: self._gradient(means[:, h]) for h in range(means.shape[1])})
        return self._d_group[g]

    def group_mixture(self, g: int, shift: float = 0.0):
        """Group ``g``'s effect plus ``shift`` times the slope given tau: a normal mixture (weights, means, sds).

        Per slope node the group-level engine's mixture of the group's effect, shifted by ``shift * beta_l``; with
        a shift the slope kernels' weights and width (the kernel representation of the slope) are used.
        """
        ws, ms, ss = [], [], []
        g = int(g)
        if not shift:               # the trapezoid rule over the slices
            for l_ in self.live:
                w, m, s = self._slice_group(int(l_), g)
                ws.append(w / w.sum() * math.exp(self.slice_log_weights[l_]))
                ms.append(m)
                ss.append(s)
            return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)
        d = self.d_group(g)
        for f in self.fine_live:
            beta, l_ = self.fine_slopes[f], self.nearest[f]
            w, m, s = self._slice_group(int(l_), g)
            ws.append(w / w.sum() * math.exp(self.slope_kernel_log_weights[f]))
            ms.append(m + d[l_] * (beta - self.slopes[l_]) + shift * beta)
            ss.append(np.sqrt(s**2 + (shift * self.slope_kernel_sd) ** 2))
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)

    def mean_mixture(self, p_sd: bool):
        """``mu`` (plus ``N(0, sd**2)`` with ``p_sd``) given tau: the slices' ``mu`` kernels."""
        ws, ms, ss = [], [], []
        for l_ in self.live:
            e = self.engines[l_]
            ws.append(np.exp(e.kernel_log_weights + self.slice_log_weights[l_]).ravel())
            ms.append(e.mu_nodes.ravel())
            ss.append(np.sqrt(np.broadcast_to(e.kernel_sd[:, None] ** 2 + p_sd * e.tau_nodes[:, None] ** 2,
                                              e.mu_nodes.shape)).ravel())
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)


class ExactBinomialMixed(OuterTau):
    """Exact posterior of the binomial-logit model with one grouping and one moderator (module docstring).

    Parameters
    ----------
    a, n1, c, n2 : array_like of int
    group : array_like of int
        Group (0-based) of each trial.
    x : array_like, shape (k,)
        The moderator, centred.
    prior_mu, prior_slope : Normal or Flat
    prior_tau, prior_sd, prior_baseline : Prior
    A : array_like, shape (T, 2 + G)
        Targets as combinations of ``(mu, beta, alpha_1..alpha_G)``: ``mu``, ``mu + alpha_g`` or ``beta``.
    pred : array_like of bool, shape (T, 2)
        Prediction terms ``N(0, tau**2)`` and ``N(0, sd**2)`` of each target.
    settings : GridSettings, optional
    shrink : array_like of int, shape (T,), optional
        ``shrink[t] = i``: target ``t`` is trial ``i``'s own effect; -1 (default) otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial_mixed import ExactBinomialMixed
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> # four magnesium trials (Egger et al. 2001), two arbitrary groups and an arbitrary moderator
    >>> post = ExactBinomialMixed([1, 0, 9, 2], [40, 22, 135, 200], [2, 1, 23, 7], [36, 21, 135, 200],
    ...                           [0, 0, 1, 1], [-1.0, 0.5, -0.5, 1.0], Normal(0, 2), Normal(0, 1),
    ...                           HalfNormal(0.5), HalfNormal(0.5), Normal(0, 5),
    ...                           np.array([[1, 0, 0, 0], [0, 1, 0, 0]]), np.zeros((2, 2), bool))
    >>> bool(0.9 < post.marginal(0).cdf(0.0) < 1.0)
    True
    """

    def __init__(self, a, n1, c, n2, group, x, prior_mu: Prior, prior_slope: Prior, prior_tau: Prior,
                 prior_sd: Prior, prior_baseline: Prior, A, pred, *, settings: GridSettings | None = None,
                 shrink=None):
        for what, p in (("mu", prior_mu), ("the slope", prior_slope)):
            if not isinstance(p, (Normal, Flat)):
                raise KetabayesError(f"the exact binomial engine needs a normal or flat prior for {what}, got {p}")
        if not isinstance(prior_baseline, Normal):
            raise KetabayesError(f"the exact binomial engine needs a normal baseline prior, got {prior_baseline}")
        self.group = np.asarray(group, dtype=int).ravel()
        self.n_groups = int(self.group.max()) + 1
        self.x = np.asarray(x, dtype=float).ravel()
        self.A = np.asarray(A, dtype=float).reshape(-1, 2 + self.n_groups)
        self.pred = np.asarray(pred, dtype=bool).reshape(-1, 2)
        self.prior_mu, self.prior_slope, self.prior_tau, self.prior_sd = prior_mu, prior_slope, prior_tau, prior_sd
        self.shrink = eb._shrink(shrink, self.A.shape[0], self.group.size)
        self._kinds = [_kind(row) if i < 0 else ("study", -1) for row, i in zip(self.A, self.shrink)]
        self.n_comp = 2
        self.settings = settings or BINOMIAL_MIXED_GRID
        tr = eb.trial_curves(a, n1, c, n2, prior_baseline)
        tr.prior_mu, tr.prior_tau, tr.settings = prior_mu, prior_tau, self.settings   # to place the tau grid
        self.trials = tr
        self._gamma = tr._grid[::max(1, int(round(GAMMA_STEP / tr._h)))]
        self._member = np.zeros((tr.k, self.n_groups))
        self._member[np.arange(tr.k), self.group] = 1.0
        st = self.settings
        self._inner_settings = GridSettings(nodes=(st.nodes[0],) * 4, coarse=(st.coarse[0],) * 4,
                                            mass_cutoff=st.mass_cutoff, passes=st.passes, chunk=st.chunk)
        self._coarse_settings = GridSettings(nodes=((1, 10),) * 4, coarse=(11,) * 4, mass_cutoff=st.mass_cutoff,
                                             passes=st.passes, chunk=st.chunk)
        self._sd0 = float(prior_sd.ppf(0.5)) if hasattr(prior_sd, "ppf") else 0.0
        self._coarse_moments: dict[float, tuple[float, float]] = {}
        self._integrate()
        self._marginals, self._groups = {}, {}

    def _gls(self, tau: float):
        """``(mu, beta)``: mean and covariance under the trials' Laplace approximations, the groups at the prior
        median of their SD (only to place the slope grid)."""
        tr = self.trials
        X = np.column_stack([np.ones_like(self.x), self.x])
        V = np.diag(tr.v_hat + tau**2) + self._sd0**2 * (self._member @ self._member.T)
        VX = np.linalg.solve(V, X)
        P, r = X.T @ VX, VX.T @ tr.y_hat
        for j, p in enumerate((self.prior_mu, self.prior_slope)):
            if isinstance(p, Normal):
                P[j, j] += 1.0 / p.sigma**2
                r[j] += p.mu / p.sigma**2
        cov = np.linalg.inv(P)
        return cov @ r, cov

    def _inner(self, tau: float, final: bool = True) -> _GivenTau:
        e = _GivenTau(self, tau, final)
        if not final:
            self._coarse_moments[float(tau)] = e.moments
        return e

    def _slope_start(self, tau: float, fine: bool, mean: float, sd: float) -> tuple[float, float]:
        """Where the slope grid of a ``tau`` node starts: for the final rule the slope's moments found by the
        coarse passes (interpolated in ``tau``), else the least-squares fit ``(mean, sd)``."""
        if not (fine and self._coarse_moments):
            return mean, sd
        taus = np.array(sorted(self._coarse_moments))
        m, s = np.array([self._coarse_moments[t] for t in taus]).T
        return float(np.interp(tau, taus, m)), float(np.interp(tau, taus, s))

    # ------------------------------------------------------------------ results
    def _mixture(self, t: int):
        keep, lws = self._keep, self._kept_log_weights()
        if self.shrink[t] >= 0:
            i = int(self.shrink[t])
            centres = [compress(*self.inner[j].group_mixture(self.group[i], self.x[i])) for j in keep]
            return unit_effect(self.trials, i, self.tau_nodes[keep], lws, centres)
        kind, g = self._kinds[t]
        p_tau, p_sd = self.pred[t]
        ws, ms, ss = [], [], []
        for j, lw in zip(keep, lws):
            e, t2 = self.inner[j], self.tau_nodes[j] ** 2 * p_tau
            if kind == "slope":
                w, m = np.exp(e.slope_kernel_log_weights), e.fine_slopes
                s = np.full(m.size, e.slope_kernel_sd)
            elif kind == "group":
                w, m, s = self._group(j, g)
            else:
                w, m, s = e.mean_mixture(bool(p_sd))
            ws.append(w / w.sum() * math.exp(lw))
            ms.append(m)
            ss.append(np.sqrt(s**2 + t2))
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)

    def _group(self, j: int, g: int):
        """Group ``g``'s effect given the outer node ``j`` (compressed mixture, shared by its targets)."""
        key = (int(j), int(g))
        if key not in self._groups:
            self._groups[key] = compress(*self.inner[j].group_mixture(g))
        return self._groups[key]

    def marginal(self, t: int) -> MixtureMarginal:
        """Posterior of target ``t`` (row of ``A``), a normal mixture (merged by :func:`compress`)."""
        if t not in self._marginals:
            self._marginals[t] = MixtureMarginal(*compress(*self._mixture(t)))
        return self._marginals[t]

    def _sd_weights(self):
        """Weights of every (tau node, slope node) slice, with the slices' group-level engines."""
        wt = np.exp(self._kept_log_weights())
        for w, j in zip(wt, self._keep):
            inner = self.inner[j]
            for l_ in inner.live:
                yield w * math.exp(inner.slice_log_weights[l_]), inner.engines[l_]

    def component_cdf(self, c: int, x) -> np.ndarray:
        """Posterior CDF of ``tau`` (``c = 0``) or of the group SD (``c = 1``)."""
        x = np.asarray(x, dtype=float)
        if c == 0:
            fine, cdf = self._tau_table
            return np.interp(np.arcsinh(x / self._s), fine, cdf, left=0.0, right=1.0)
        return sum(w * e.tau_cdf(x) for w, e in self._sd_weights())

    def component_summary(self, c: int = 0, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd and quantiles of ``tau`` (``c = 0``) or the group SD (``c = 1``)."""
        if c == 0:
            return eb.ExactBinomial.component_summary(self, 0, qs)
        m1 = m2 = 0.0
        top = 0.0
        for w, e in self._sd_weights():
            p = np.exp(e.tau_log_weights)
            m1 += w * float(p @ e.tau_nodes)
            m2 += w * float(p @ e.tau_nodes**2)
            top = max(top, float(e.tau_nodes.max()))
        q = []
        for qq in qs:
            f = lambda v, qq=qq: float(self.component_cdf(1, np.array(v))) - qq  # noqa: E731
            q.append(optimize.brentq(f, 0.0, 2.0 * top, xtol=1e-10) if f(0.0) < 0.0 else 0.0)
        return {"mean": m1, "sd": math.sqrt(max(m2 - m1**2, 0.0)), "q025": q[0], "q50": q[1], "q975": q[2]}

    def sample(self, n: int, rng: np.random.Generator, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws (module docstring): ``phi (n, 2)`` (tau, group SD), ``b (n, 2)`` (mu, slope),
        ``u (n, G)`` (group effects ``alpha_g``), ``centre (n, k)`` (``gamma_g + beta x_i``), ``theta (n, k)``
        and ``targets (n, T)``."""
        wt = np.exp(self._kept_log_weights())
        jj = rng.choice(self._keep, size=n, p=wt / wt.sum())
        tau = eb.ExactBinomial._tau_in_cell(self, jj, rng)
        mu, sd, slope = np.empty(n), np.empty(n), np.empty(n)
        gamma = np.empty((n, self.n_groups))
        for j in np.unique(jj):
            sel, inner = np.flatnonzero(jj == j), self.inner[j]
            pk = np.exp(inner.slope_kernel_log_weights[inner.fine_live])
            fs = inner.fine_live[rng.choice(pk.size, size=sel.size, p=pk / pk.sum())]
            slope[sel] = inner.fine_slopes[fs] + inner.slope_kernel_sd * rng.standard_normal(sel.size)
            ls = inner.nearest[fs]
            for l_ in np.unique(ls):
                sub, e = sel[ls == l_], inner.engines[l_]
                p = np.exp(e.kernel_log_weights).ravel()
                idx = rng.choice(p.size, size=sub.size, p=p / p.sum())
                it, _ = np.unravel_index(idx, e.mu_nodes.shape)
                sd[sub] = eb.ExactBinomial._tau_in_cell(e, it, rng)
                mu[sub] = e.mu_nodes.ravel()[idx] + e.kernel_sd[it] * rng.standard_normal(sub.size)
                gamma[sub] = e.draw_units(np.repeat(mu[sub, None], self.n_groups, axis=1), sd[sub], rng)
                # the slice's conditionals moved to the drawn slope (first order, as in the marginals)
                delta = slope[sub] - inner.slopes[l_]
                mu[sub] += inner.d_mu[l_] * delta
                gamma[sub] += np.array([inner.d_group(g)[l_] for g in range(self.n_groups)])[None, :] * delta[:, None]
        phi = np.column_stack([tau, sd])
        u = gamma - mu[:, None]
        coef = np.column_stack([mu, slope])
        targets = target_draws(np.column_stack([coef, u]), phi, self.A, self.pred, rng)
        centre = gamma[:, self.group] + slope[:, None] * self.x[None, :]
        out = {"phi": phi, "b": coef, "u": u, "centre": centre}
        return eb.with_trial_effects(out, targets, self.trials, self.shrink, tau, rng, studies)


def _unit_means(e) -> np.ndarray:
    """Posterior mean of every unit's (group's) effect in a group-level engine: given each ``(sd, mu)`` node the
    conditional mean by the engine's adaptive Gauss-Hermite rule, averaged with the nodes' weights."""
    w = np.exp(e.node_log_weights).ravel()
    keep = w > 1e-12 * w.max()
    mu = e.mu_nodes.ravel()[keep]
    sd = np.broadcast_to(e.tau_nodes[:, None], e.mu_nodes.shape).ravel()[keep]
    x, lw = hermite(eb.N_THETA)
    cen, s, t2 = e._theta_given(mu, sd)                                            # (N, G)
    th = cen[..., None] + math.sqrt(2.0) * s[..., None] * x
    val = -0.5 * (th - mu[:, None, None]) ** 2 / t2[..., None] + e._spline_nodes(th) + (x**2 + lw)
    p = np.exp(val - val.max(-1, keepdims=True))
    return w[keep] @ ((p * th).sum(-1) / p.sum(-1)) / w[keep].sum()


def _kind(row) -> tuple[str, int]:
    """The form of a target row over ``(mu, beta, alpha_1..alpha_G)``: mean, group ``g`` or the slope."""
    mu, beta, alpha = row[0], row[1], row[2:]
    if mu == 1.0 and beta == 0.0 and np.all(alpha == 0.0):
        return "mean", -1
    if mu == 1.0 and beta == 0.0 and np.sum(alpha == 1.0) == 1 and np.sum(alpha != 0.0) == 1:
        return "group", int(np.flatnonzero(alpha)[0])
    if mu == 0.0 and beta == 1.0 and np.all(alpha == 0.0):
        return "slope", -1
    raise KetabayesError("the exact binomial engine with a grouping and a moderator reports mu, mu + one group "
                         "effect and the slope only")
