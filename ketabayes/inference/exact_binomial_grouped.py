"""Exact posterior of the binomial-logit model with one grouping (e.g. by drug) by nested quadrature.

Model (:class:`~ketabayes.model.binomial.BinomialModel` with ``by="drug"``; trial ``i`` in group ``g(i)``)::

    ai ~ Bin(n1i, expit(b_i + theta_i / 2)),   ci ~ Bin(n2i, expit(b_i - theta_i / 2)),   b_i ~ N(m0, s0**2)
    theta_i ~ N(gamma_g(i), tau**2),   gamma_g = mu + alpha_g ~ N(mu, sd**2),   mu ~ Normal or flat

Given ``tau`` the trials of a group enter only through the group's likelihood of its
mean effect ``gamma``, ``H_g(gamma; tau) = prod_(i in g) h_i(gamma, tau)`` with ``h_i`` the
trial likelihood of :mod:`ketabayes.inference.exact_binomial` (baseline and trial effect
integrated by adaptive Gauss-Hermite rules). With the groups as units, ``sd`` as their
between-unit SD and ``H_g`` tabulated on a grid of ``gamma`` (cubic spline), the rest is the
ungrouped engine, :class:`~ketabayes.inference.exact_binomial.ExactBinomial`, one per node
of a Gauss-Legendre rule over ``tau`` (in ``asinh(tau / s)``, interval from coarse passes);
the outer weights are ``p(tau) p(y | tau)``.

Targets: ``mean`` (``mu``), ``predictive`` (``mu + N(0, sd**2 + tau**2)``), each group's
``gamma_g`` (``drug=k``) and a new trial in it (``predictive|drug=k``: ``gamma_g + N(0, tau**2)``),
and each trial's own effect ``theta_i``, all normal mixtures as in the ungrouped engine: a
group's effect given ``tau`` is the group-level engine's unit effect, a trial's effect the
trials' unit effect with that group mixture as its centre
(:func:`~ketabayes.inference.exact_binomial_kernels.unit_effect`).

**Joint draws** (:meth:`ExactBinomialGrouped.sample`): ``tau`` by its node's weight (spread within
the node's cell), ``(sd, mu)`` from that node's group-level engine, every group's effect from its
exact conditional ``N(gamma; mu, sd**2) H_g(gamma; tau)``, every trial's effect from
``N(theta; gamma_g, tau**2) f_i(theta)``: one draw of all parameters at a time, so functions of
several targets (e.g. the difference of two groups) have the right posterior.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import optimize, special

from ketabayes.errors import KetabayesError
from ketabayes.inference import exact_binomial as eb
from ketabayes.inference.exact_binomial_kernels import compress, unit_effect
from ketabayes.inference.exact_hierarchical import GridSettings, target_draws
from ketabayes.marginals import MixtureMarginal
from ketabayes.model.priors import Prior

__all__ = ["BINOMIAL_GROUPED_GRID", "ExactBinomialGrouped", "OuterTau", "compress", "group_level"]

#: outer rule over tau (entry 2 of ``nodes`` / ``coarse``: two variance components); inner rules as
#: :data:`~ketabayes.inference.exact_binomial.BINOMIAL_GRID`
BINOMIAL_GROUPED_GRID = GridSettings(nodes=((2, 12), (2, 8), (1, 12), (1, 12)), coarse=(21, 11, 7, 5),
                                     mass_cutoff=30.0, passes=4, chunk=256)
#: step of the gamma grid on which each group's log likelihood is tabulated
GAMMA_STEP = 0.1


def group_level(grid, logH, prior_mu: Prior, prior_sd: Prior, settings: GridSettings) -> eb.ExactBinomial:
    """The group-level engine: units = groups with log likelihood curves ``logH (G, T)`` of their mean effect
    on the uniform ``grid``; ``(sd, mu)`` integrated by the ungrouped engine (``sd`` in the place of ``tau``)."""
    e = object.__new__(eb.ExactBinomial)
    e.prior_mu, e.prior_tau = prior_mu, prior_sd
    e.A, e.pred = np.ones((1, 1)), np.zeros((1, 1), bool)
    e.n_comp, e.settings = 1, settings
    e._set_table(grid, logH)
    e._integrate()
    return e


class OuterTau:
    """The outer rule over ``tau`` shared by the engines that integrate an inner engine per ``tau`` node.

    A subclass sets ``settings``, ``prior_tau``, ``trials`` (the trials' likelihood curves, to place the
    grid) and implements ``_inner(tau, final)`` (an object with ``log_evidence``, the log marginal likelihood
    given ``tau``; ``final=False`` in the coarse passes, which may use coarser inner rules); :meth:`_integrate` then sets ``tau_nodes``, ``tau_log_weights``, ``inner`` (one inner
    engine per node) and ``_keep`` (the nodes that carry weight). ``tau`` is on composite Gauss-Legendre
    panels in ``w = asinh(tau / s)``, the interval found by coarse passes (entry 2 of the settings'
    ``nodes`` / ``coarse``).
    """

    def _log_tau_density(self, w, s, final: bool = False):
        out, inner = np.full(w.size, -np.inf), []
        for j, wj in enumerate(w):
            tau = s * math.sinh(wj)
            with np.errstate(divide="ignore"):
                lp = float(self.prior_tau.logpdf(np.array([tau]))[0]) + math.log(s * math.cosh(wj))
            if not np.isfinite(lp):
                inner.append(None)
                continue
            e = self._inner(tau, final)
            inner.append(e)
            out[j] = lp + e.log_evidence
        return out, inner

    def _integrate(self):
        st = self.settings
        lo_b, hi_b = self.prior_tau.bounds()
        tr = self.trials
        lo, hi = max(lo_b, 0.0), min(hi_b, 20.0 + 2.0 * float(np.std(tr.y_hat)))
        s = max(hi / 1000.0, 1e-12)
        tt = s * np.sinh(np.linspace(math.asinh(lo / s), math.asinh(hi / s), 401))
        la = tr._approx_log_tau_density(tt) + np.log(np.sqrt(tt**2 + s**2))
        idx = np.flatnonzero(la > np.max(la) - st.mass_cutoff - 15.0)
        lo, hi = max(lo_b, 0.0), float(tt[min(idx[-1] + 1, tt.size - 1)])
        n0 = st.coarse[1]
        for _ in range(st.passes + 4):
            s = max(hi / 100.0, 1e-12)
            ws = np.linspace(math.asinh(lo / s), math.asinh(hi / s), n0)
            ld, _ = self._log_tau_density(ws, s)
            top = float(np.max(ld))
            if not np.isfinite(top):
                raise FloatingPointError("the posterior of tau could not be evaluated")
            if ld[-1] > top - st.mass_cutoff and hi < hi_b:
                hi = min(2.0 * hi, hi_b)
                continue
            break
        idx = np.flatnonzero(ld > top - st.mass_cutoff)
        lo, hi = s * math.sinh(ws[max(idx[0] - 1, 0)]), s * math.sinh(ws[min(idx[-1] + 1, n0 - 1)])
        panels, npp = st.nodes[1]
        s = max(hi / 50.0, 1e-12)
        x, wt = special.roots_legendre(npp)
        edges = np.linspace(math.asinh(lo / s), math.asinh(hi / s), panels + 1)
        half = 0.5 * np.diff(edges)
        w = (0.5 * (edges[1:] + edges[:-1])[:, None] + half[:, None] * x[None, :]).ravel()
        ld, inner = self._log_tau_density(w, s, final=True)
        logw = ld + np.log((half[:, None] * wt[None, :]).ravel())
        keep = np.flatnonzero(logw > np.max(logw) - 40.0)
        self.log_evidence = float(special.logsumexp(logw))
        self._s, self._edges = s, edges
        self.w_nodes, self.tau_nodes = w, s * np.sinh(w)
        self._log_tau_dens = ld
        self.tau_log_weights = logw - self.log_evidence
        self._keep = keep
        self.inner = inner

    def _kept_log_weights(self) -> np.ndarray:
        lw = self.tau_log_weights[self._keep]
        return lw - special.logsumexp(lw)

    @functools.cached_property
    def _tau_table(self):
        return eb.ExactBinomial._tau_table.func(self)


class ExactBinomialGrouped(OuterTau):
    """Exact posterior of the binomial-logit model with one grouping (see the module docstring).

    Parameters
    ----------
    a, n1, c, n2 : array_like of int
    group : array_like of int
        Group (0-based) of each trial.
    prior_mu, prior_tau, prior_sd, prior_baseline : Prior
    A : array_like, shape (T, 1 + G)
        Targets as combinations of ``(mu, alpha_1..alpha_G)``: ``mu`` or ``mu + alpha_g``.
    pred : array_like of bool, shape (T, 2)
        Prediction terms ``N(0, tau**2)`` and ``N(0, sd**2)`` of each target.
    settings : GridSettings, optional
    shrink : array_like of int, shape (T,), optional
        ``shrink[t] = i``: target ``t`` is trial ``i``'s own effect (its row of ``A`` is the trial's
        linear predictor ``mu + alpha_g``); -1 (default) for every other target.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial_grouped import ExactBinomialGrouped
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> # four magnesium trials (Egger et al. 2001) in two arbitrary groups
    >>> post = ExactBinomialGrouped([1, 0, 9, 2], [40, 22, 135, 200], [2, 1, 23, 7], [36, 21, 135, 200],
    ...                             [0, 0, 1, 1], Normal(0, 2), HalfNormal(0.5), HalfNormal(0.5), Normal(0, 5),
    ...                             np.array([[1, 0, 0], [1, 1, 0]]), np.zeros((2, 2), bool))
    >>> bool(0.9 < post.marginal(0).cdf(0.0) < 1.0)
    True
    """

    def __init__(self, a, n1, c, n2, group, prior_mu: Prior, prior_tau: Prior, prior_sd: Prior,
                 prior_baseline: Prior, A, pred, *, settings: GridSettings | None = None, shrink=None):
        self.group = np.asarray(group, dtype=int).ravel()
        self.n_groups = int(self.group.max()) + 1
        self.A = np.asarray(A, dtype=float).reshape(-1, 1 + self.n_groups)
        self.pred = np.asarray(pred, dtype=bool).reshape(-1, 2)
        for row in self.A:
            if row[0] != 1.0 or not (np.all(row[1:] == 0.0) or (np.sum(row[1:] == 1.0) == 1
                                                                  and np.sum(row[1:] != 0.0) == 1)):
                raise KetabayesError("the exact grouped binomial engine reports mu and mu + one group effect only")
        self.prior_mu, self.prior_tau, self.prior_sd = prior_mu, prior_tau, prior_sd
        self.shrink = eb._shrink(shrink, self.A.shape[0], self.group.size)
        self.n_comp = 2
        self.settings = settings or BINOMIAL_GROUPED_GRID
        # the trials' likelihood curves (no integration: that is done per group, given tau)
        tr = eb.trial_curves(a, n1, c, n2, prior_baseline)
        tr.prior_mu, tr.prior_tau, tr.settings = prior_mu, prior_tau, self.settings   # to place the tau grid
        self.trials = tr
        step = max(1, int(round(GAMMA_STEP / tr._h)))
        self._gamma = tr._grid[::step]
        self._member = np.zeros((tr.k, self.n_groups))
        self._member[np.arange(tr.k), self.group] = 1.0
        self._inner_settings = GridSettings(nodes=(self.settings.nodes[0],) * 4, coarse=(self.settings.coarse[0],) * 4,
                                            mass_cutoff=self.settings.mass_cutoff, passes=self.settings.passes,
                                            chunk=self.settings.chunk)
        self._integrate()
        self._marginals, self._group_cache = {}, {}

    # ------------------------------------------------------------------ given tau
    def _inner(self, tau: float, final: bool = True) -> eb.ExactBinomial:
        """The group-level engine given ``tau``: units = groups with likelihood curves ``log H_g(gamma; tau)``."""
        g = self._gamma
        per = self.trials._log_lik(g, np.full(g.size, tau), per_unit=True)       # (T, k)
        return group_level(g, (per @ self._member).T, self.prior_mu, self.prior_sd, self._inner_settings)

    # ------------------------------------------------------------------ results
    def _group(self, j: int, g: int):
        """Group ``g``'s effect given the outer node ``j``: a (compressed) normal mixture, shared by its targets."""
        key = (int(j), int(g))
        if key not in self._group_cache:
            self._group_cache[key] = compress(*self.inner[j].unit_mixture(int(g)))
        return self._group_cache[key]

    def _mixture(self, t: int):
        a, (p_tau, p_sd) = self.A[t], self.pred[t]
        if self.shrink[t] >= 0:
            i = int(self.shrink[t])
            return unit_effect(self.trials, i, self.tau_nodes[self._keep], self._kept_log_weights(),
                               [self._group(j, self.group[i]) for j in self._keep])
        grp = np.flatnonzero(a[1:])
        ws, ms, ss = [], [], []
        for j, lw in zip(self._keep, self._kept_log_weights()):
            e, tau = self.inner[j], self.tau_nodes[j]
            if grp.size:
                w, m, sd = self._group(j, grp[0])
                var = sd**2
            else:
                w = np.exp(e.kernel_log_weights).ravel()
                m = e.mu_nodes.ravel()
                var = np.broadcast_to((e.kernel_sd[:, None] ** 2 + p_sd * e.tau_nodes[:, None] ** 2),
                                      e.mu_nodes.shape).ravel()
            ws.append(w / w.sum() * math.exp(lw))
            ms.append(m)
            ss.append(np.sqrt(var + p_tau * tau**2))
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)

    def marginal(self, t: int) -> MixtureMarginal:
        """Posterior of target ``t`` (row of ``A``), a normal mixture (moment-matched merging, :func:`compress`)."""
        if t not in self._marginals:
            self._marginals[t] = MixtureMarginal(*compress(*self._mixture(t)))
        return self._marginals[t]

    def component_cdf(self, c: int, x) -> np.ndarray:
        """Posterior CDF of ``tau`` (``c = 0``) or of the group SD (``c = 1``)."""
        x = np.asarray(x, dtype=float)
        if c == 0:
            fine, cdf = self._tau_table
            return np.interp(np.arcsinh(x / self._s), fine, cdf, left=0.0, right=1.0)
        wt = np.exp(self.tau_log_weights[self._keep])
        return sum(w * self.inner[j].tau_cdf(x) for w, j in zip(wt / wt.sum(), self._keep))

    def component_summary(self, c: int = 0, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd and quantiles of ``tau`` (``c = 0``) or the group SD (``c = 1``)."""
        wt = np.exp(self.tau_log_weights[self._keep])
        wt = wt / wt.sum()
        if c == 0:
            vals = [(self.tau_nodes[j], self.tau_nodes[j] ** 2) for j in self._keep]
        else:
            vals = []
            for j in self._keep:
                e = self.inner[j]
                p = np.exp(e.tau_log_weights)
                vals.append((float(p @ e.tau_nodes), float(p @ e.tau_nodes**2)))
        m1 = float(sum(w * v[0] for w, v in zip(wt, vals)))
        m2 = float(sum(w * v[1] for w, v in zip(wt, vals)))
        top = self.tau_nodes.max() if c == 0 else max(self.inner[j].tau_nodes.max() for j in self._keep)
        q = []
        for qq in qs:
            f = lambda x, qq=qq: float(self.component_cdf(c, np.array(x))) - qq  # noqa: E731
            hi = 2.0 * top
            q.append(optimize.brentq(f, 0.0, hi, xtol=1e-10) if f(0.0) < 0.0 else 0.0)
        return {"mean": m1, "sd": math.sqrt(max(m2 - m1**2, 0.0)), "q025": q[0], "q50": q[1], "q975": q[2]}

    def sample(self, n: int, rng: np.random.Generator, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws (see the module docstring).

        Returns ``phi (n, 2)`` (tau, group SD), ``b (n, 1)`` (mu), ``u (n, G)`` (group effects
        ``alpha_g = gamma_g - mu``), ``centre (n, k)`` (each trial's ``gamma_g``), ``theta (n, k)``
        (each trial's own effect; not drawn with ``studies=False``) and ``targets (n, T)``.
        """
        wt = np.exp(self._kept_log_weights())
        jj = rng.choice(self._keep, size=n, p=wt / wt.sum())
        tau = eb.ExactBinomial._tau_in_cell(self, jj, rng)
        mu, sd, gamma = np.empty(n), np.empty(n), np.empty((n, self.n_groups))
        for j in np.unique(jj):
            sel, e = np.flatnonzero(jj == j), self.inner[j]
            p = np.exp(e.kernel_log_weights).ravel()
            idx = rng.choice(p.size, size=sel.size, p=p / p.sum())
            it, _ = np.unravel_index(idx, e.mu_nodes.shape)
            sd[sel] = eb.ExactBinomial._tau_in_cell(e, it, rng)
            mu[sel] = e.mu_nodes.ravel()[idx] + e.kernel_sd[it] * rng.standard_normal(sel.size)
            gamma[sel] = e.draw_units(np.repeat(mu[sel, None], self.n_groups, axis=1), sd[sel], rng)
        phi = np.column_stack([tau, sd])
        u = gamma - mu[:, None]
        targets = target_draws(np.column_stack([mu, u]), phi, self.A, self.pred, rng)
        centre = gamma[:, self.group]
        out = {"phi": phi, "b": mu[:, None], "u": u, "centre": centre}
        return eb.with_trial_effects(out, targets, self.trials, self.shrink, tau, rng, studies)
