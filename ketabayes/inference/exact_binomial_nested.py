"""Exact posterior of the binomial-logit model with two nested groupings (e.g. drugs within classes) by quadrature.

Model (:class:`~ketabayes.model.binomial.BinomialModel` with ``by="drug", nest={"drug": "klass"}``; trial ``i``
of drug ``d(i)``, drug ``d`` of class ``c(d)``)::

    ai ~ Bin(n1i, expit(b_i + theta_i / 2)),   ci ~ Bin(n2i, expit(b_i - theta_i / 2)),   b_i ~ N(m0, s0**2)
    theta_i ~ N(gamma_d(i), tau**2),   gamma_d ~ N(kappa_c(d), sd_drug**2),   kappa_c ~ N(mu, sd_klass**2)

The levels integrate out one after another, each a one-dimensional integral per unit:

1. given ``tau`` a drug's likelihood of its effect is ``H_d(gamma; tau) = prod_(i in d) h_i(gamma, tau)``
   (``h_i``: :mod:`ketabayes.inference.exact_binomial`), tabulated on a grid of ``gamma``;
2. given ``sd_drug`` a class's likelihood of its effect is
   ``K_c(kappa) = prod_(d in c) int N(gamma; kappa, sd_drug**2) H_d(gamma) dgamma`` (the drugs as the units of the
   ungrouped engine's adaptive Gauss-Hermite rule), tabulated on the same grid;
3. ``(sd_klass, mu)`` by the group-level engine of the one-grouping model with the classes as units
   (:func:`~ketabayes.inference.exact_binomial_grouped.group_level`).

``tau`` and, for each ``tau`` node, ``sd_drug`` are on the outer rule of the other binomial engines
(:class:`~ketabayes.inference.exact_binomial_grouped.OuterTau`: Gauss-Legendre panels in ``asinh``, the interval
from coarse passes). So the posterior is a four-dimensional integral ``(tau, sd_drug, sd_klass, mu)`` of
one-dimensional tables.

Targets (normal mixtures): ``mean`` and ``predictive`` from the group-level ``mu`` kernels; each class's effect
from the group-level engine; each drug's effect given ``tau`` by the cavity construction of
:func:`~ketabayes.inference.exact_binomial_kernels.unit_effect` with its class's effect as the centre and
``sd_drug`` in the place of ``tau``; each trial's own effect the same with its drug's effect as the centre.
**Joint draws**: ``tau``, ``sd_drug``, then ``(sd_klass, mu)``, every class's, drug's and trial's effect from its
exact conditional.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from ketabayes.errors import KetabayesError
from ketabayes.inference import exact_binomial as eb
from ketabayes.inference.exact_binomial_grouped import GAMMA_STEP, OuterTau, group_level
from ketabayes.inference.exact_binomial_kernels import compress, unit_effect
from ketabayes.inference.exact_hierarchical import GridSettings, target_draws
from ketabayes.marginals import MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior

__all__ = ["BINOMIAL_NESTED_GRID", "ExactBinomialNested"]

#: rules over tau and over sd_drug given tau (entry 2 of ``nodes`` / ``coarse``); the group-level engines use entry 1
BINOMIAL_NESTED_GRID = GridSettings(nodes=((2, 8), (2, 8), (1, 12), (1, 12)), coarse=(11, 11, 7, 5),
                                    mass_cutoff=30.0, passes=4, chunk=256)
_COARSE = GridSettings(nodes=((1, 10), (1, 10), (1, 10), (1, 10)), coarse=(9, 9, 9, 9), mass_cutoff=30.0, passes=4,
                       chunk=256)


class _GivenTau(OuterTau):
    """Given ``tau``: the drugs as units, ``sd_drug`` on an outer rule, the class level per ``sd_drug`` node."""

    def __init__(self, owner: ExactBinomialNested, tau: float, final: bool):
        g = owner._gamma
        per = owner.trials._log_lik(g, np.full(g.size, tau), per_unit=True)          # (T, k)
        drugs = object.__new__(eb.ExactBinomial)
        drugs._set_table(g, (per @ owner._member_child).T)                        # log H_d(gamma; tau)
        drugs.prior_mu, drugs.prior_tau = owner.prior_mu, owner.prior_sd_child
        self.settings = owner.settings if final else _COARSE
        drugs.settings = self.settings
        self.trials, self.prior_tau, self.owner, self.fine = drugs, owner.prior_sd_child, owner, final
        self._integrate()
        self._classes: dict[tuple[int, int], tuple] = {}

    def _inner(self, sd: float, final: bool = True):
        o = self.owner
        g = o._gamma
        per = self.trials._log_lik(g, np.full(g.size, sd), per_unit=True)           # (T, n_drugs)
        st = o._inner_settings if (final and self.fine) else _COARSE
        return group_level(g, (per @ o._member_parent).T, o.prior_mu, o.prior_sd_parent, st)

    def class_mixture(self, k: int, c: int):
        """Class ``c``'s effect given this ``tau`` and ``sd_drug`` node ``k`` (compressed; cached)."""
        if (k, c) not in self._classes:
            self._classes[k, c] = compress(*self.inner[k].unit_mixture(int(c)))
        return self._classes[k, c]

    def drug_mixture(self, d: int):
        """Drug ``d``'s effect given this ``tau``: its class's effect as the centre, ``sd_drug`` as the spread."""
        keep, lw = self._keep, self._kept_log_weights()
        c = self.owner.parent[d]
        return compress(*unit_effect(self.trials, int(d), self.tau_nodes[keep], lw,
                                     [self.class_mixture(int(k), c) for k in keep]))


class ExactBinomialNested(OuterTau):
    """Exact posterior of the binomial-logit model with a grouping nested in another (module docstring).

    Parameters
    ----------
    a, n1, c, n2 : array_like of int
    child : array_like of int
        Each trial's level (0-based) of the inner grouping (e.g. drug).
    parent : array_like of int
        Each inner level's level (0-based) of the outer grouping (e.g. class).
    prior_mu : Normal or Flat
    prior_tau, prior_sd_parent, prior_sd_child, prior_baseline : Prior
    A : array_like, shape (T, 1 + P + D)
        Targets over ``(mu, alpha_parent_1..P, alpha_child_1..D)``: ``mu``, a class ``mu + alpha_c`` or a drug
        ``mu + alpha_c(d) + alpha_d``.
    pred : array_like of bool, shape (T, 3)
        Prediction terms ``N(0, tau**2)``, ``N(0, sd_parent**2)``, ``N(0, sd_child**2)``.
    settings : GridSettings, optional
    shrink : array_like of int, shape (T,), optional
        ``shrink[t] = i``: target ``t`` is trial ``i``'s own effect; -1 (default) otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_binomial_nested import ExactBinomialNested
    >>> from ketabayes.model.priors import HalfNormal, Normal
    >>> # four magnesium trials (Egger et al. 2001) as three arbitrary "drugs" in two "classes"
    >>> post = ExactBinomialNested([1, 0, 9, 2], [40, 22, 135, 200], [2, 1, 23, 7], [36, 21, 135, 200],
    ...                            [0, 0, 1, 2], [0, 1, 1], Normal(0, 2), HalfNormal(0.5), HalfNormal(0.5),
    ...                            HalfNormal(0.5), Normal(0, 5), np.array([[1, 0, 0, 0, 0, 0]]),
    ...                            np.zeros((1, 3), bool))
    >>> bool(0.9 < post.marginal(0).cdf(0.0) < 1.0)
    True
    """

    def __init__(self, a, n1, c, n2, child, parent, prior_mu: Prior, prior_tau: Prior, prior_sd_parent: Prior,
                 prior_sd_child: Prior, prior_baseline: Prior, A, pred, *, settings: GridSettings | None = None,
                 shrink=None):
        if not isinstance(prior_mu, (Normal, Flat)):
            raise KetabayesError(f"the exact binomial engine needs a normal or flat prior for mu, got {prior_mu}")
        if not isinstance(prior_baseline, Normal):
            raise KetabayesError(f"the exact binomial engine needs a normal baseline prior, got {prior_baseline}")
        self.child = np.asarray(child, dtype=int).ravel()
        self.parent = np.asarray(parent, dtype=int).ravel()
        self.n_child, self.n_parent = self.parent.size, int(self.parent.max()) + 1
        self.A = np.asarray(A, dtype=float).reshape(-1, 1 + self.n_parent + self.n_child)
        self.pred = np.asarray(pred, dtype=bool).reshape(-1, 3)
        self.prior_mu, self.prior_tau = prior_mu, prior_tau
        self.prior_sd_parent, self.prior_sd_child = prior_sd_parent, prior_sd_child
        self.shrink = eb._shrink(shrink, self.A.shape[0], self.child.size)
        self._kinds = [self._kind(row) if i < 0 else ("study", -1) for row, i in zip(self.A, self.shrink)]
        self.n_comp = 3
        self.settings = settings or BINOMIAL_NESTED_GRID
        tr = eb.trial_curves(a, n1, c, n2, prior_baseline)
        tr.prior_mu, tr.prior_tau, tr.settings = prior_mu, prior_tau, self.settings   # to place the tau grid
        self.trials = tr
        self._gamma = tr._grid[::max(1, int(round(GAMMA_STEP / tr._h)))]
        self._member_child = np.zeros((tr.k, self.n_child))
        self._member_child[np.arange(tr.k), self.child] = 1.0
        self._member_parent = np.zeros((self.n_child, self.n_parent))
        self._member_parent[np.arange(self.n_child), self.parent] = 1.0
        st = self.settings
        self._inner_settings = GridSettings(nodes=(st.nodes[0],) * 4, coarse=(st.coarse[0],) * 4,
                                            mass_cutoff=st.mass_cutoff, passes=st.passes, chunk=st.chunk)
        self._integrate()
        self._marginals, self._drugs = {}, {}

    def _kind(self, row) -> tuple[str, int]:
        """The form of a target row: the mean, a class or a drug (its index)."""
        P = self.n_parent
        par, chi = row[1:1 + P], row[1 + P:]
        if row[0] == 1.0 and np.all(par == 0.0) and np.all(chi == 0.0):
            return "mean", -1
        one = (lambda v: np.sum(v == 1.0) == 1 and np.sum(v != 0.0) == 1)  # noqa: E731
        if row[0] == 1.0 and one(par) and np.all(chi == 0.0):
            return "class", int(np.flatnonzero(par)[0])
        if row[0] == 1.0 and one(par) and one(chi):
            d = int(np.flatnonzero(chi)[0])
            if int(np.flatnonzero(par)[0]) == self.parent[d]:
                return "drug", d
        raise KetabayesError("the exact nested binomial engine reports mu, a class effect or a drug effect only")

    def _inner(self, tau: float, final: bool = True) -> _GivenTau:
        return _GivenTau(self, tau, final)

    # ------------------------------------------------------------------ results
    def _drug(self, j: int, d: int):
        key = (int(j), int(d))
        if key not in self._drugs:
            self._drugs[key] = self.inner[j].drug_mixture(int(d))
        return self._drugs[key]

    def _mixture(self, t: int):
        keep, lws = self._keep, self._kept_log_weights()
        if self.shrink[t] >= 0:
            i = int(self.shrink[t])
            return unit_effect(self.trials, i, self.tau_nodes[keep], lws, [self._drug(j, self.child[i]) for j in keep])
        kind, idx = self._kinds[t]
        p_tau, p_par, p_chi = self.pred[t]
        ws, ms, ss = [], [], []
        for j, lw in zip(keep, lws):
            mid, t2 = self.inner[j], self.tau_nodes[j] ** 2 * p_tau
            if kind == "drug":
                w, m, s = self._drug(j, idx)
                ws.append(w / w.sum() * math.exp(lw))
                ms.append(m)
                ss.append(np.sqrt(s**2 + t2))
                continue
            for k, lwk in zip(mid._keep, mid._kept_log_weights()):
                e, v = mid.inner[k], t2 + mid.tau_nodes[k] ** 2 * p_chi
                if kind == "class":
                    w, m, s = mid.class_mixture(int(k), idx)
                    w = w / w.sum()
                    s = np.sqrt(s**2 + v)
                else:
                    w = np.exp(e.kernel_log_weights).ravel()
                    m = e.mu_nodes.ravel()
                    s = np.sqrt(np.broadcast_to(e.kernel_sd[:, None] ** 2 + p_par * e.tau_nodes[:, None] ** 2 + v,
                                                e.mu_nodes.shape)).ravel()
                ws.append(w * math.exp(lw + lwk))
                ms.append(m)
                ss.append(s)
        return np.concatenate(ws), np.concatenate(ms), np.concatenate(ss)

    def marginal(self, t: int) -> MixtureMarginal:
        """Posterior of target ``t`` (row of ``A``), a normal mixture (merged by :func:`compress`)."""
        if t not in self._marginals:
            self._marginals[t] = MixtureMarginal(*compress(*self._mixture(t)))
        return self._marginals[t]

    def _levels(self):
        """``(weight, mid engine, index of the sd_drug node, group-level engine)`` of every kept node pair."""
        for lw, j in zip(self._kept_log_weights(), self._keep):
            mid = self.inner[j]
            for lwk, k in zip(mid._kept_log_weights(), mid._keep):
                yield math.exp(lw + lwk), mid, k, mid.inner[k]

    def component_cdf(self, c: int, x) -> np.ndarray:
        """Posterior CDF of ``tau`` (``c = 0``), the outer grouping's SD (1) or the inner grouping's SD (2)."""
        x = np.asarray(x, dtype=float)
        if c == 0:
            fine, cdf = self._tau_table
            return np.interp(np.arcsinh(x / self._s), fine, cdf, left=0.0, right=1.0)
        if c == 1:
            return sum(w * e.tau_cdf(x) for w, _, _, e in self._levels())
        wt = np.exp(self._kept_log_weights())
        return sum(w * eb.ExactBinomial.tau_cdf(self.inner[j], x) for w, j in zip(wt, self._keep))

    def component_summary(self, c: int = 0, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd and quantiles of ``tau`` (``c = 0``), the outer (1) or the inner (2) grouping's SD."""
        if c == 0:
            return eb.ExactBinomial.component_summary(self, 0, qs)
        m1 = m2 = top = 0.0
        if c == 1:
            for w, _, _, e in self._levels():
                p = np.exp(e.tau_log_weights)
                m1, m2 = m1 + w * float(p @ e.tau_nodes), m2 + w * float(p @ e.tau_nodes**2)
                top = max(top, float(e.tau_nodes.max()))
        else:
            for w, mid, k, _ in self._levels():
                m1, m2 = m1 + w * mid.tau_nodes[k], m2 + w * mid.tau_nodes[k] ** 2
                top = max(top, float(mid.tau_nodes.max()))
        q = []
        for qq in qs:
            f = lambda v, qq=qq: float(self.component_cdf(c, np.array(v))) - qq  # noqa: E731
            q.append(optimize.brentq(f, 0.0, 2.0 * top, xtol=1e-10) if f(0.0) < 0.0 else 0.0)
        return {"mean": float(m1), "sd": math.sqrt(max(float(m2 - m1**2), 0.0)), "q025": q[0], "q50": q[1],
                "q975": q[2]}

    def sample(self, n: int, rng: np.random.Generator, studies: bool = True) -> dict[str, np.ndarray]:
        """Joint posterior draws (module docstring): ``phi (n, 3)`` (tau, outer SD, inner SD), ``b (n, 1)`` (mu),
        ``u (n, P + D)`` (class effects ``alpha_c``, then drug effects ``alpha_d`` about their class),
        ``centre (n, k)`` (each trial's drug effect), ``theta (n, k)`` and ``targets (n, T)``."""
        wt = np.exp(self._kept_log_weights())
        jj = rng.choice(self._keep, size=n, p=wt / wt.sum())
        tau = eb.ExactBinomial._tau_in_cell(self, jj, rng)
        mu, sd_p, sd_c = np.empty(n), np.empty(n), np.empty(n)
        kappa, gamma = np.empty((n, self.n_parent)), np.empty((n, self.n_child))
        for j in np.unique(jj):
            sel, mid = np.flatnonzero(jj == j), self.inner[j]
            wk = np.exp(mid._kept_log_weights())
            kk = rng.choice(mid._keep, size=sel.size, p=wk / wk.sum())
            sd_c[sel] = eb.ExactBinomial._tau_in_cell(mid, kk, rng)
            for k in np.unique(kk):
                sub, e = sel[kk == k], mid.inner[k]
                p = np.exp(e.kernel_log_weights).ravel()
                idx = rng.choice(p.size, size=sub.size, p=p / p.sum())
                it, _ = np.unravel_index(idx, e.mu_nodes.shape)
                sd_p[sub] = eb.ExactBinomial._tau_in_cell(e, it, rng)
                mu[sub] = e.mu_nodes.ravel()[idx] + e.kernel_sd[it] * rng.standard_normal(sub.size)
                kappa[sub] = e.draw_units(np.repeat(mu[sub, None], self.n_parent, axis=1), sd_p[sub], rng)
            gamma[sel] = mid.trials.draw_units(kappa[sel][:, self.parent], sd_c[sel], rng)
        phi = np.column_stack([tau, sd_p, sd_c])
        u = np.column_stack([kappa - mu[:, None], gamma - kappa[:, self.parent]])
        targets = target_draws(np.column_stack([mu, u]), phi, self.A, self.pred, rng)
        out = {"phi": phi, "b": mu[:, None], "u": u, "centre": gamma[:, self.child]}
        return eb.with_trial_effects(out, targets, self.trials, self.shrink, tau, rng, studies)
