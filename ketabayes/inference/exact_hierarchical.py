"""Exact posterior of the hierarchical (crossed / nested) normal model by quadrature.

Model (``k`` trials, ``y`` and ``v`` known)::

    y = X b + Z u + e,      e ~ N(0, diag(v + tau**2))         (trial effects integrated out)
    u_g ~ N(0, sigma_g**2 I)   for each random-effect term g    (drug, condition, ...)
    b ~ N(b0, B0) or flat      (mu and the moderator slopes gamma)

Given the variance components ``phi = (tau, sigma_1, ..., sigma_G)`` every
coefficient is jointly Gaussian. With the non-centred coefficients ``z_g =
u_g / sigma_g`` (prior precision 1, so the computation stays well conditioned as
``sigma_g -> 0``), ``c = (b, z)``, ``W = [X, Z S]`` and ``D = diag(1/(v + tau**2))``:

* ``c | phi, y ~ N(m, P^-1)`` with ``P = Q0 + W' D W`` and
  ``m = c0 + P^-1 W' D (y - W c0)`` (the mixed-model equations);
* ``log p(y | phi) = -1/2 [k log 2 pi + sum log(v + tau**2) + log|P| - log|Q0|
  + d' D d - r' P^-1 r]`` with ``d = y - W c0`` and ``r = W' D d``
  (Woodbury identity and the matrix determinant lemma); flat components of
  ``b`` contribute nothing to ``Q0`` and the constant they would add is dropped.

Every reported target is a linear combination ``a' (b, u)`` plus, for
predictions, independent normal terms with variances from ``phi`` (a new
trial's ``e_new``, a new drug's ``alpha_new``...). Its posterior is therefore a
mixture of normals over a quadrature rule on ``phi``, computed as follows.

1. **Standardised scale.** The estimates are centred at their median ``c``
   (through the intercept column) and divided by ``s = sqrt(median(v))``; the
   priors of the coefficients and of the variance components are transformed
   accordingly and every result is transformed back (targets as mixtures with
   location and scale, so probabilities stay accurate for data of any size or
   offset, e.g. scales ``1e-150 .. 1e150``).
2. **Checked quadrature** over ``phi`` (:mod:`ketabayes.inference._tensor_quadrature`):
   the range from the priors and the likelihood (no fixed window), a tensor
   product of composite Gauss-Legendre rules in ``w = asinh(phi / a)``, and
   per-axis checks of the mass and the targets' first moments against a rule of
   half the order, with automatic refinement; one component uses the normal-normal
   engine's checked
   rule (:mod:`ketabayes.inference._log_scale_quadrature`). When the checks
   cannot be met, :class:`~ketabayes.errors.ExactIntegrationError` suggests
   NUTS; priors far outside the data's scale raise
   :class:`~ketabayes.errors.PriorError`.

Accuracy
--------
Measured against independent brute-force integrations (``tests/test_exact_hierarchical_robust.py``:
data scaled by ``1e+-100`` and ``1e+-150``, an offset of ``1e6``, an outlier, narrow and nearly flat priors
on a group SD, a group with one trial, 30 groups):

* one or two variance components: posterior probabilities of the targets within ``1e-8`` (measured
  ``<= 1e-10``), also at the engine's quantiles; means within ``1e-6`` posterior sd; sds of the mean and
  group targets within ``1e-6`` (the sd of a *predictive* target under a nearly flat group-SD prior
  depends on the far tail of that SD and is within ``~1e-4``); CDFs of the variance components within
  ``1e-6``;
* three components: probabilities within ``1e-6`` (measured ``<= 2.4e-7`` against a rule with 18 times
  more nodes, which agrees with the brute force to ``2e-8``);
* four components: not brute-forced (a product grid fine enough is out of reach); a rule with 24 nodes
  per component moves the probabilities by ``4e-5`` on a 16-trial design, and the checks there only
  guard against gross failures (unresolved peaks, mass outside the range).

References
----------
Henderson CR (1975). Best linear unbiased estimation and prediction under a
selection model. Biometrics 31(2):423-447. doi:10.2307/2529430
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R
package. J Stat Softw 93(6). doi:10.18637/jss.v093.i06
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import special

from ketabayes.errors import DataError, KetabayesError, PriorError
from ketabayes.inference._mixed_model import MixedModel
from ketabayes.inference._panel_cdf import PanelCDF
from ketabayes.inference._tensor_quadrature import U_MAX, U_MIN, integrate_components
from ketabayes.marginals import CdfMarginal, Marginal, MixtureMarginal
from ketabayes.model.priors import Flat, Normal, Prior

__all__ = ["MAX_COMPONENTS", "ExactHierarchical", "GridSettings", "target_draws"]

#: largest number of variance components (tau + group scales) the tensor grid handles
MAX_COMPONENTS = 4

def target_draws(coef, phi, A, pred, rng: np.random.Generator, shrink=None) -> np.ndarray:
    """Draws of the targets ``A (b, u) + N(0, pred @ phi**2)`` from coefficient draws ``coef (n, p)``.

    ``shrink = (study, y, v)``: for targets with ``study[t] = i >= 0`` (a trial's shrunken effect, whose
    row of ``A`` is the trial's linear predictor ``eta_i``) the draw is then
    ``(1 - c) eta_i + c y_i + sqrt(c v_i) z`` with ``c = tau^2 / (tau^2 + v_i)``, the exact conditional of
    ``theta_i`` given the coefficients, ``tau`` and the trial's estimate.
    """
    phi = np.asarray(phi, dtype=float)
    noise_var = (phi**2) @ np.asarray(pred, dtype=float).T
    out = coef @ np.asarray(A, dtype=float).T + np.sqrt(noise_var) * rng.standard_normal((coef.shape[0], A.shape[0]))
    if shrink is not None:
        study, y, v = (np.asarray(x) for x in shrink)
        rows = np.flatnonzero(study >= 0)
        if rows.size:
            i = study[rows]
            c = phi[:, :1] ** 2 / (phi[:, :1] ** 2 + v[i][None, :])
            out[:, rows] = ((1.0 - c) * out[:, rows] + c * y[i][None, :]
                            + np.sqrt(c * v[i][None, :]) * rng.standard_normal((out.shape[0], rows.size)))
    return out


@dataclass(frozen=True)
class GridSettings:
    """Quadrature settings of :class:`ExactHierarchical` (and the outer grids of the binomial engines).

    Attributes
    ----------
    nodes : tuple of (panels, nodes_per_panel), indexed by number of components - 1
        Starting composite Gauss-Legendre rule per component (refined where the checks ask
        for it); the default starts with 48, 24 and 24 nodes per component for 2, 3 and 4
        variance components (with four, a 12^4 start was ~2e-3 off in decision probabilities on the
        67-trial benchmark design with an interaction; 24^4 is ~1e-4 off, within the null rule's
        check). One component uses the normal-normal engine's checked rule.
    coarse : tuple of int
        Points per component of the coarse passes that place the range, by number of components - 1.
    mass_cutoff : float
        A component's range ends where its profile log density is this far below the maximum.
    passes : int
        Maximum number of coarse passes.
    chunk : int
        Nodes processed at once (memory bound).
    check_tol : tuple of float
        Largest estimated relative error of the checked integrals (mass and targets' first
        moments, per axis and panel), by number of components - 1.
    checked_components : int
        Up to this many components the check uses a second Gauss-Legendre rule (new
        evaluations: ``C / 2`` grids); above it, a null rule on the same nodes (no new
        evaluations, a coarser estimate).
    max_refinements : int
        Rounds of refinement before :class:`~ketabayes.errors.ExactIntegrationError`.
    max_nodes : int
        Largest tensor grid; a posterior needing more raises :class:`~ketabayes.errors.ExactIntegrationError`.
    """

    nodes: tuple = ((16, 16), (4, 12), (2, 12), (2, 12))
    coarse: tuple = (801, 61, 17, 9)
    mass_cutoff: float = 30.0
    passes: int = 12
    chunk: int = 2048
    check_tol: tuple = (1e-9, 1e-9, 1e-5, 1e-3)
    checked_components: int = 3
    max_refinements: int = 6
    max_nodes: int = 400_000

    def to_dict(self):
        return {"nodes": [list(x) for x in self.nodes], "coarse": list(self.coarse),
                "mass_cutoff": self.mass_cutoff, "passes": self.passes, "chunk": self.chunk,
                "check_tol": list(self.check_tol), "checked_components": self.checked_components,
                "max_refinements": self.max_refinements,
                "max_nodes": self.max_nodes}

    @classmethod
    def from_dict(cls, d):
        """Settings from a dict; keys of other versions of the engine are ignored (missing ones: defaults)."""
        d = {k: v for k, v in dict(d).items() if k in cls.__dataclass_fields__}
        d["nodes"] = tuple(tuple(x) for x in d["nodes"])
        for k in ("coarse", "check_tol"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


class ExactHierarchical:
    """Exact posterior of a linear Gaussian model with up to four variance components.

    Construction does the integration; marginals of the targets are then
    :class:`~ketabayes.marginals.MixtureMarginal` objects.

    Parameters
    ----------
    y, v : array_like, shape (k,)
        Estimates and known sampling variances.
    X : array_like, shape (k, q)
        Fixed-effect design (first column the intercept ``mu``).
    prior_fixed : sequence of Normal or Flat, length q
        Priors of the fixed coefficients.
    Z : array_like, shape (k, r)
        Random-effect design (indicator columns of all levels of all terms).
    term_of_col : array_like of int, shape (r,)
        Term (0-based) of each column of ``Z``.
    prior_tau : Prior
        Prior of the residual between-trial SD ``tau``.
    prior_sd : sequence of Prior
        Prior of each term's SD.
    A : array_like, shape (T, q + r)
        Targets as linear combinations of ``(b, u)``.
    pred : array_like of bool, shape (T, 1 + G)
        ``pred[t, c]``: target ``t`` adds an independent ``N(0, phi_c**2)`` term
        (component 0 is ``tau``; a new trial, a new drug...).
    settings : GridSettings, optional
    shrink : array_like of int, shape (T,), optional
        ``shrink[t] = i`` makes target ``t`` trial ``i``'s shrunken effect ``theta_i`` (its row of ``A`` is
        the trial's linear predictor); -1 (the default for every target) leaves a target as it is.
    integrate : bool
        If false, skip the quadrature: only :meth:`draw_given` (the Gaussian
        conditionals given the variance components) is available. Used to
        complete NUTS draws of the variance components.

    Raises
    ------
    DataError
        Non-finite estimates or variances, or variances that are not positive.
    PriorError
        A prior whose scale differs from the data's by more than the engine can represent
        (about ``1e150`` for the coefficients, ``1e300`` for the variance components).
    ExactIntegrationError
        The quadrature could not reach its documented accuracy (or the posterior is improper);
        use NUTS.

    Examples
    --------
    >>> import numpy as np
    >>> from ketabayes.inference.exact_hierarchical import ExactHierarchical
    >>> from ketabayes.model.priors import Flat, HalfNormal
    >>> y, v = np.array([0.1, 0.3, -0.2]), np.array([0.04, 0.09, 0.05])
    >>> post = ExactHierarchical(y, v, np.ones((3, 1)), [Flat()], np.zeros((3, 0)), [], HalfNormal(0.5), [],
    ...                          np.ones((1, 1)), np.zeros((1, 1), bool))
    >>> round(float(post.marginal(0).mean), 3)  # no groups: ExactNormalNormal's posterior mean of mu
    0.045
    """

    def __init__(self, y, v, X, prior_fixed, Z, term_of_col, prior_tau: Prior, prior_sd, A, pred, *,
                 settings: GridSettings | None = None, integrate: bool = True, shrink=None):
        self.y = np.asarray(y, dtype=float).ravel()
        self.v = np.asarray(v, dtype=float).ravel()
        k = self.y.size
        if k == 0 or self.v.shape != self.y.shape:
            raise DataError("y and v must be non-empty and of equal length")
        bad = np.flatnonzero(~np.isfinite(self.y))
        if bad.size:
            raise DataError(f"non-finite effect estimate at position {int(bad[0])}", column="yi")
        bad = np.flatnonzero(~(np.isfinite(self.v) & (self.v > 0)))
        if bad.size:
            raise DataError(f"sampling variance must be positive and finite, got {self.v[bad[0]]!r} "
                            f"at position {int(bad[0])}", column="vi")
        self.X = np.asarray(X, dtype=float).reshape(k, -1)
        self.Z = np.asarray(Z, dtype=float).reshape(k, -1)
        self.term_of_col = np.asarray(term_of_col, dtype=int).ravel()
        self.priors = [prior_tau, *prior_sd]
        self.n_comp = len(self.priors)
        if integrate and self.n_comp > MAX_COMPONENTS:
            raise KetabayesError(
                f"the exact engine integrates over at most {MAX_COMPONENTS} variance components "
                f"(tau and {MAX_COMPONENTS - 1} group scales); this model has {self.n_comp}: use method='nuts'")
        for p in prior_fixed:
            if not isinstance(p, (Normal, Flat)):
                raise KetabayesError(f"the exact engine needs normal or flat priors for mu and the "
                                     f"moderator slopes, got {p}")
        self.q = self.X.shape[1]
        self.W = np.concatenate([self.X, self.Z], axis=1)
        self.p = self.W.shape[1]
        self.A = np.asarray(A, dtype=float).reshape(-1, self.p)
        self.pred = np.asarray(pred, dtype=bool).reshape(self.A.shape[0], self.n_comp)
        self.shrink = (np.full(self.A.shape[0], -1, dtype=int) if shrink is None
                       else np.asarray(shrink, dtype=int).reshape(self.A.shape[0]))
        self.settings = settings or GridSettings()
        # prior of c = (b, z) on the original scale (what the NUTS builder reads): mean c0, diagonal precision q0
        self.c0 = np.zeros(self.p)
        self.q0 = np.ones(self.p)
        for j, pr in enumerate(prior_fixed):
            if isinstance(pr, Normal):
                self.c0[j], self.q0[j] = pr.mu, 1.0 / pr.sigma**2
            else:
                self.q0[j] = 0.0
        self._resid = self.y - self.W @ self.c0
        self._comp_of_col = np.concatenate([np.full(self.q, -1), self.term_of_col + 1])
        self._standardise(prior_fixed)
        self._mm = MixedModel(self.W, self._comp_of_col, self._resid_s, self._vs, self._c0s, self._q0s,
                              self._logdet_q0s, self.A, self.pred)
        if integrate:
            self._integrate()

    # ------------------------------------------------------------------ standardised scale
    def _standardise(self, prior_fixed):
        """``y = c x0 + s y'``, ``v = s^2 v'``, ``b = c e0 + s b'``, ``u = s u'``, ``phi = s phi'``."""
        k = self.y.size
        self._c = c = float(np.median(self.y))
        self._scale = s = float(np.sqrt(np.median(self.v)))
        self._log_scale = math.log(s)
        self._x0 = self.X[:, 0] if self.q else np.zeros(k)
        self._ys = (self.y - c * self._x0) / s
        self._vs = self.v / s**2
        self._c0s = np.zeros(self.p)
        self._q0s = np.ones(self.p)
        log_q0 = []
        n_flat = 0
        for j, pr in enumerate(prior_fixed):
            if isinstance(pr, Normal):
                ratio = pr.sigma / s
                loc = (pr.mu - (c if j == 0 else 0.0)) / s
                if not 1e-150 < ratio < 1e150 or not abs(loc) < 1e150:
                    raise PriorError(f"the prior {pr} of coefficient {j} (0: mu) differs in scale from the data "
                                     f"(scale {s:.3g}) by more than 1e150: the exact engine cannot represent it; "
                                     "rescale the data or the prior")
                self._c0s[j], self._q0s[j] = loc, 1.0 / ratio**2
                log_q0.append(-2.0 * math.log(ratio))
            else:
                self._q0s[j] = 0.0
                n_flat += 1
        self._logdet_q0s = float(sum(log_q0))
        self._resid_s = self._ys - self.W @ self._c0s
        self._log_jac = (n_flat - k) * self._log_scale  # log p(y) = log p(y') + this
        self._bounds = []
        for c_, pr in enumerate(self.priors):
            lo, hi = pr.bounds()
            with np.errstate(divide="ignore"):
                lb = math.log(lo / s) if lo > 0 else -math.inf
                ub = math.log(hi / s) if math.isfinite(hi) else math.inf
            self._bounds.append((lb, ub))
            ppf = getattr(pr, "ppf", None)
            lq = np.array([lb, ub])
            if ppf is not None:  # the prior's central mass, in log(phi') (logs first: no underflow)
                with np.errstate(all="ignore"):
                    lq = np.log(np.asarray(ppf(np.array([1e-10, 1 - 1e-10])), dtype=float)) - self._log_scale
            if lq[1] < U_MIN or lq[0] > U_MAX or lb > U_MAX or ub < U_MIN:
                    raise PriorError(f"the prior {pr} of variance component {c_} (0: tau) lies outside the "
                                     f"range of scales the exact engine can represent for data of scale {s:.3g}; "
                                     "rescale the data or the prior")

    # ------------------------------------------------------------------ Gaussian pass
    def _gauss(self, phi, targets: bool = False, factor: bool = False):
        """Log marginal likelihood and (optionally) target moments at *standardised* components ``phi (N, C)``
        (:class:`~ketabayes.inference._mixed_model.MixedModel`; ``factor``: also the Cholesky factor of the
        coefficients' precision, for exact draws)."""
        if factor:
            return self._mm.dense(phi, targets, factor=True)
        return self._mm.evaluate(phi, targets)

    def _evaluate(self, phi, targets):
        """Log posterior density (prior x likelihood) of the standardised components ``phi (N, C)``.

        With ``targets`` also the targets' conditional means and variances (``"mean"``: means only;
        ``"coef"``: the coefficients' conditional means instead, whose map ``@ A'`` gives the targets' means;
        ``"compact"``: the moments of the distinct rows of ``A``, see :class:`MixedModel`).
        """
        phi = np.asarray(phi, dtype=float)
        n = phi.shape[0]
        lp = np.zeros(n)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            for c, pr in enumerate(self.priors):
                lp = lp + np.asarray(pr.logpdf(self._scale * phi[:, c]), dtype=float) + self._log_scale
        good = np.isfinite(lp) & np.all(np.isfinite(phi), axis=1)
        out = np.full(n, -np.inf)
        keys, widths = {"coef": (("coef", None), (self.p, 0)),
                        "compact": (("qmean", "qvar"), (self._mm.n_rows,) * 2)}.get(
            targets, (("tmean", "tvar" if targets is True else None), (self.A.shape[0],) * 2))
        tm = np.zeros((n, widths[0])) if targets else None
        tv = np.ones((n, widths[1])) if targets and keys[1] else None
        if targets == "compact":  # rows x nodes (see MixedModel.evaluate): filled through transposed views
            tm, tv = np.zeros((widths[0], n)).T, np.ones((widths[1], n)).T
        idx = np.flatnonzero(good)
        ch = self.settings.chunk
        with np.errstate(over="ignore", under="ignore"):
            for i in range(0, idx.size, ch):
                j = idx[i:i + ch]
                try:
                    o = self._gauss(phi[j], targets=targets)
                except np.linalg.LinAlgError:  # some node of the chunk is numerically singular: one at a time
                    for jj in j:
                        try:
                            o = self._gauss(phi[jj:jj + 1], targets=targets)
                        except np.linalg.LinAlgError:  # left out (-inf); the checks see any mass it had
                            continue
                        out[jj] = lp[jj] + o["loglik"][0]
                        if tm is not None:
                            tm[jj] = o[keys[0]].T[0] if targets == "compact" else o[keys[0]][0]
                        if tv is not None:
                            tv[jj] = o[keys[1]].T[0] if targets == "compact" else o[keys[1]][0]
                    continue
                out[j] = lp[j] + o["loglik"]
                if tm is not None:
                    tm[j] = o[keys[0]].T if targets == "compact" else o[keys[0]]
                if tv is not None:
                    tv[j] = o[keys[1]].T if targets == "compact" else o[keys[1]]
        out = np.where(np.isfinite(out), out, -np.inf)
        return out, tm, tv

    # ------------------------------------------------------------------ integration
    def _integrate(self):
        st = self.settings
        C = self.n_comp
        sd = 0.5 * np.log(self._vs)
        spread = float(np.max(self._ys) - np.min(self._ys)) + math.sqrt(float(np.max(self._vs)))
        zone = (float(np.min(sd)) - 6.0, math.log(spread) + 6.0)
        ppfs = []
        for pr in self.priors:
            ppf = getattr(pr, "ppf", None)
            ppfs.append(None if ppf is None else (lambda q, f=ppf: np.asarray(f(q), dtype=float) / self._scale))
        rule = integrate_components(self._evaluate, ppfs, [zone] * C, C, st, what="the variance components",
                                    lo_hard=[b[0] for b in self._bounds], hi_hard=[b[1] for b in self._bounds],
                                    mean_map=self.A.T, moments=self._compact_moments)
        axes = rule.nodes
        lw = functools.reduce(np.add.outer, rule.log_w).ravel() if C > 1 else rule.log_w[0]
        logw = rule.ld + lw
        log_z = special.logsumexp(logw)
        keep = rule.keep  # the nodes whose normalised log weight exceeds KEEP_LOG
        self.rule = rule
        self._a = rule.a
        self._s = self._scale * rule.a  # per component: phi = _s * sinh(w) on the original scale
        self.box = tuple(self._s * np.sinh(np.array([e[0] for e in rule.edges]))), \
            tuple(self._s * np.sinh(np.array([e[-1] for e in rule.edges])))
        self._axes = axes
        self._cells = [np.concatenate([[e[0]], 0.5 * (n[1:] + n[:-1]), [e[-1]]]) for e, n in zip(rule.edges, axes)]
        self._node_index = np.stack(np.unravel_index(keep, tuple(a.size for a in axes)), axis=1)
        self.w_nodes = np.stack([a[i] for a, i in zip(axes, self._node_index.T)], axis=1)
        self._phi_std = rule.a * np.sinh(self.w_nodes)
        self.phi_nodes = self._scale * self._phi_std
        self.log_weights = logw[keep] - special.logsumexp(logw[keep])
        self.weights = np.exp(self.log_weights)
        self.log_evidence = float(log_z) + self._log_jac
        self.n_nodes_total = int(logw.size)
        self.quadrature_error = float(rule.error)
        self._qm, self._qv = rule.tm, rule.tv  # distinct rows of A x kept nodes (see _target_std)
        self._logw_axes = rule.log_w
        self._panel_edges = rule.edges
        self._npp = rule.npp
        # log posterior mass of each node of each component's axis (the others summed over, full grid)
        full = (logw - log_z).reshape(tuple(a.size for a in axes))
        self._log_node_mass = [special.logsumexp(full, axis=tuple(a for a in range(C) if a != c)) if C > 1
                               else full for c in range(C)]

    def _compact_moments(self, phi):
        """What the rule stores at its nodes: the means and variances of the distinct rows of ``A`` (rows x
        nodes)."""
        _, m, v = self._evaluate(phi, "compact")
        return m.T, v.T

    def _target_std(self, t):
        """Conditional mean and variance of target ``t`` at the kept nodes (standardised scale)."""
        r = self._mm.row_of_target[t]
        m = self._qm[r]
        v = np.maximum(self._qv[r] + (self._phi_std**2) @ self.pred[t], 1e-300)
        i = self.shrink[t]
        if i >= 0:  # a trial's shrunken effect: add its own estimate given tau (see shrink)
            tau2 = self._phi_std[:, 0] ** 2
            cc = tau2 / (tau2 + self._vs[i])
            m = (1.0 - cc) * m + cc * self._ys[i]
            v = (1.0 - cc) ** 2 * v + cc * self._vs[i]
        return m, v

    @property
    def target_means(self) -> np.ndarray:
        """Conditional means of the targets at the kept nodes (original scale)."""
        tm = np.stack([self._target_std(t)[0] for t in range(self.A.shape[0])], axis=1)
        return self._c * self.A[:, 0][None, :] + self._scale * tm

    @property
    def target_vars(self) -> np.ndarray:
        """Conditional variances of the targets at the kept nodes (original scale)."""
        return self._scale**2 * np.stack([self._target_std(t)[1] for t in range(self.A.shape[0])], axis=1)

    # ------------------------------------------------------------------ results
    def marginal(self, t: int) -> MixtureMarginal:
        """Exact posterior of target ``t`` (row of ``A``): standardised components with location and scale."""
        m, v = self._target_std(t)
        return MixtureMarginal(self.weights, m, np.sqrt(v), loc=self._c * float(self.A[t, 0]), scale=self._scale)

    @cached_property
    def marginals(self) -> list[MixtureMarginal]:
        return [self.marginal(t) for t in range(self.A.shape[0])]

    @cached_property
    def _component_cdfs(self) -> list[PanelCDF]:
        """Per component: the CDF in ``w`` from its nodes' masses (the other components summed over), the
        log density interpolated within each panel (:class:`~ketabayes.inference._panel_cdf.PanelCDF`)."""
        return [PanelCDF(self._panel_edges[c], self._log_node_mass[c], self._logw_axes[c], self._npp)
                for c in range(self.n_comp)]

    def component_cdf(self, c: int, phi) -> np.ndarray:
        """Posterior CDF of variance component ``c`` (0 = tau) at ``phi``.

        Exact panel masses plus within-panel integrals of the interpolated marginal density
        (:class:`~ketabayes.inference._panel_cdf.PanelCDF`, in ``w = asinh(phi / a_c)``); the accuracy
        is that of the checked quadrature rule (module docstring, *Accuracy*).
        """
        phi = np.asarray(phi, dtype=float)
        return self._component_cdfs[c].cdf(np.arcsinh(phi / self._s[c]))

    def component_ppf(self, c: int, q) -> np.ndarray:
        """Posterior quantiles of variance component ``c`` (Brent's method on its CDF in ``w``)."""
        return self._s[c] * np.sinh(self._component_cdfs[c].ppf(q))

    def component_marginal(self, c: int) -> Marginal:
        """Exact posterior of variance component ``c`` (0 = tau) as a :class:`~ketabayes.marginals.Marginal`."""
        vals = self.phi_nodes[:, c]
        mean = float(self.weights @ vals)
        sd = float(np.sqrt(max(self.weights @ vals**2 - mean**2, 0.0)))
        return CdfMarginal(lambda x: self.component_cdf(c, x), mean, sd, lower=0.0,
                           ppf=lambda q: self.component_ppf(c, q))

    def component_summary(self, c: int, qs=(0.025, 0.5, 0.975)) -> dict:
        """Posterior mean, sd (quadrature) and quantiles (:meth:`component_ppf`) of component ``c``."""
        vals = self.phi_nodes[:, c]
        mean = float(self.weights @ vals)
        sd = float(np.sqrt(max(self.weights @ vals**2 - mean**2, 0.0)))
        q = self.component_ppf(c, np.asarray(qs, dtype=float))
        return {"mean": mean, "sd": sd, "q025": float(q[0]), "q50": float(q[1]), "q975": float(q[2])}

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Joint posterior draws: ``phi (n, C)``, coefficients ``b (n, q)`` and ``u (n, r)``, targets ``(n, T)``.

        ``phi`` is drawn from the quadrature distribution smoothed uniformly within
        each node's cell (in ``w``); the coefficients and targets are then drawn
        exactly from their Gaussian conditionals given ``phi``.
        """
        idx = rng.choice(self.weights.size, size=n, p=self.weights)
        w = np.empty((n, self.n_comp))
        for c in range(self.n_comp):
            j = self._node_index[idx, c]
            a, b = self._cells[c][j], self._cells[c][j + 1]
            w[:, c] = a + (b - a) * rng.uniform(size=n)
        return self._draw_std(self._a * np.sinh(w), rng)

    def draw_given(self, phi, rng: np.random.Generator, *, targets: bool = True) -> dict[str, np.ndarray]:
        """Exact draws of the coefficients (and, if ``targets``, the targets) given variance components ``phi (n, C)``.

        The targets are ``A (b, u)`` plus independent normal terms with variances
        ``pred @ phi**2``, drawn after the coefficients from the same generator.
        """
        return self._draw_std(np.asarray(phi, dtype=float) / self._scale, rng, targets=targets)

    def _draw_std(self, phi, rng: np.random.Generator, *, targets: bool = True) -> dict[str, np.ndarray]:
        """:meth:`draw_given` at standardised components (drawn on the standardised scale, then transformed)."""
        n = phi.shape[0]
        ch = self.settings.chunk
        coef = np.empty((n, self.p))
        for i in range(0, n, ch):
            o = self._gauss(phi[i:i + ch], factor=True)
            eps = rng.standard_normal((o["mean_z"].shape[0], self.p, 1))
            z = o["mean_z"] + np.linalg.solve(np.swapaxes(o["chol"], 1, 2), eps)[:, :, 0]
            coef[i:i + ch] = z * o["sv"]
        s, c = self._scale, self._c
        out = {"phi": s * phi, "b": s * coef[:, :self.q], "u": s * coef[:, self.q:]}
        if self.q:
            out["b"][:, 0] += c
        if targets:
            t = target_draws(coef, phi, self.A, self.pred, rng, shrink=(self.shrink, self._ys, self._vs))
            out["targets"] = c * self.A[:, 0][None, :] + s * t
        return out
