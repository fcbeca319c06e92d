"""Bayes factors for "an effect" against "no effect" and model-averaged decisions.

Two models of the same data (normal-normal, ``v_i`` known):

* **H1** (effect free): ``mu ~ Normal(m0, s0**2)`` (or any proper prior on the real line, e.g.
  ``cauchy(0, 0.707)``, ``studentt(...)``, truncated ones), ``tau ~ p(tau)``;
  ``y_i ~ N(mu, v_i + tau**2)``. Its marginal likelihood ``p(y | H1)`` is
  :attr:`ExactNormalNormal.log_evidence <ketabayes.inference.exact.ExactNormalNormal>`.
* **H0** (no effect): ``mu = mu0`` (default 0), ``tau ~ p(tau)`` -- the *same*
  prior for ``tau`` -- so ``p(y | H0) = int p(tau) prod_i N(y_i; mu0, v_i + tau**2) dtau``.
  :class:`ExactPointNull` computes it with the same composite Gauss-Legendre
  quadrature over ``u = log(tau)`` as the exact engine; for a fixed-effect
  model it is the closed form ``prod_i N(y_i; mu0, v_i)``.

``BF10 = p(y | H1) / p(y | H0)``; with prior model probabilities
``P(H1) = pi1`` the posterior probability of H1 is
``pi1 BF10 / (pi1 BF10 + 1 - pi1)``. Model-averaged decision probabilities
mix the two posteriors with these weights: under H0 the average effect is a
point mass at ``mu0`` (which lies in the "practically no effect" region when
``mu0 = 0``), while the effect in a new study is ``N(mu0, tau**2)`` with
``tau`` from its H0 posterior.

Bayes factors need proper priors: a flat prior for ``mu`` makes ``p(y | H1)``
arbitrary, so :func:`bayes_factor` refuses it with a
:class:`~ketabayes.errors.PriorError`. Because Bayes factors depend on the
width of the prior of ``mu`` much more than posteriors do, report them across
a prior grid (:func:`ketabayes.sensitivity.sensitivity_grid` with
``bayes_factor=True``).

References
----------
Kass RE, Raftery AE (1995). Bayes factors. J Am Stat Assoc 90(430):773-795.
doi:10.1080/01621459.1995.10476572
Gronau QF, Heck DW, Berkhout SW, Haaf JM, Wagenmakers EJ (2021). A primer on
Bayesian model-averaged meta-analysis. Adv Methods Pract Psychol Sci 4(3).
doi:10.1177/25152459211031256
Röver C (2020). Bayesian random-effects meta-analysis using the bayesmeta R
package. J Stat Softw 93(6). doi:10.18637/jss.v093.i06
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd

from ketabayes.decision import Thresholds, decision_probabilities
from ketabayes.errors import PriorError
from ketabayes.inference.exact import ExactNormalNormal, QuadratureSettings
from ketabayes.marginals import Marginal, MixedMarginal, MixtureMarginal, PointMass
from ketabayes.model.priors import Normal, Prior, parse_prior

__all__ = [
    "ExactPointNull",
    "BayesFactor",
    "bayes_factor",
    "evidence_category",
    "decision_probabilities_mixed",
]

_LOG_2PI = math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------
# decision probabilities of marginals with a point mass
# ---------------------------------------------------------------------------
def decision_probabilities_mixed(marginal: Marginal, thresholds: Thresholds) -> dict[str, float]:
    """Decision probabilities of a marginal that may have atoms (a point mass, a model average).

    Same regions as :func:`~ketabayes.decision.decision_probabilities`
    -- benefit ``X <= lo`` (lower is better) or ``X > hi`` (higher is better),
    practically no effect ``lo < X <= hi``, harm the rest -- computed from the
    right-continuous CDF, so an atom at ``mu0 = 0`` counts as "practically no
    effect". "Any benefit" is the *strict* event ``X < 0`` (or ``X > 0``): for
    lower-is-better it is ``P(X < 0) =`` :meth:`~ketabayes.marginals.Marginal.prob_below`
    ``(0)``, not ``cdf(0) = P(X <= 0)``, which would count the atom at 0 as a
    benefit. For a continuous marginal the result equals
    :func:`~ketabayes.decision.decision_probabilities`.

    Examples
    --------
    >>> from ketabayes.inference.bayes_factor import decision_probabilities_mixed
    >>> from ketabayes.decision import Thresholds
    >>> from ketabayes.marginals import PointMass
    >>> decision_probabilities_mixed(PointMass(0.0), Thresholds(10, "lower"))
    {'p_benefit': 0.0, 'p_trivial': 1.0, 'p_harm': 0.0, 'p_any_benefit': 0.0}
    """
    d = decision_probabilities(marginal, thresholds)
    if thresholds.benefit == "lower":
        d["p_any_benefit"] = float(np.asarray(marginal.prob_below(np.array(0.0)), dtype=float))
    return d


# ---------------------------------------------------------------------------
# the point-null model
# ---------------------------------------------------------------------------
class ExactPointNull(ExactNormalNormal):
    """Exact posterior and marginal likelihood of the model with ``mu`` fixed at ``mu0``.

    ``y_i ~ N(mu0, v_i + tau**2)``, ``tau ~ prior_tau`` (``tau = 0`` if
    ``fixed``). The integration over ``u = log(tau)`` is the exact engine's
    (:class:`~ketabayes.inference.exact.ExactNormalNormal`), with the
    likelihood given ``tau`` replaced by the point-null one, so
    :attr:`log_evidence` is ``log p(y | H0)``.

    Parameters
    ----------
    yi, vi : array_like
        Effect estimates and sampling variances.
    prior_tau : Prior or str
        Prior of ``tau`` (ignored if ``fixed``); must be proper.
    fixed : bool
        Fixed-effect model: ``log_evidence`` is ``sum_i log N(y_i; mu0, v_i)``.
    mu0 : float
        Value of the average effect under the null hypothesis.
    settings : QuadratureSettings, optional

    Examples
    --------
    >>> from ketabayes.inference.bayes_factor import ExactPointNull
    >>> from scipy import stats
    >>> h0 = ExactPointNull([0.1, -0.3], [0.04, 0.09], None, fixed=True)
    >>> bool(abs(h0.log_evidence - stats.norm.logpdf([0.1, -0.3], 0, [0.2, 0.3]).sum()) < 1e-12)
    True
    """

    def __init__(self, yi, vi, prior_tau: Prior | str | None, *, fixed: bool = False, mu0: float = 0.0,
                 settings: QuadratureSettings | None = None):
        self.mu0 = float(mu0)
        if prior_tau is not None and not fixed:
            prior_tau = parse_prior(prior_tau)
            if not prior_tau.proper:
                raise PriorError(f"the Bayes factor needs a proper prior for tau, got {prior_tau}")
        # the prior of mu is not used: _conditional and _loglik below pin mu at mu0
        super().__init__(yi, vi, Normal(self.mu0, 1.0), prior_tau, fixed=fixed, settings=settings)
        self.prior_mu = None

    def _gauss_std(self, t):
        """``mu' = mu0'`` (variance 0) and ``log p(y' | tau', mu' = mu0')`` on the engine's standardised scale."""
        t = np.asarray(t, dtype=float)
        mu0 = (self.mu0 - self._c) / self._s
        with np.errstate(over="ignore", under="ignore"):
            tv = self._vs + t[..., None] ** 2
            r = self._ys - mu0
            ll = -0.5 * (np.log(tv).sum(-1) + self._ys.size * _LOG_2PI + (r * r / tv).sum(-1))
        return np.full(t.shape, mu0), np.zeros(t.shape), ll

    @cached_property
    def mu(self) -> PointMass:
        """The average effect: a point mass at ``mu0``."""
        return PointMass(self.mu0)

    @cached_property
    def theta_new(self) -> Marginal:
        """Effect in a new study: ``N(mu0, tau**2)`` mixed over the H0 posterior of tau."""
        if self.fixed:
            return PointMass(self.mu0)
        # (tau = 0 appears as a node when prior mass lies below the smallest representable tau)
        return MixtureMarginal(self.weights, np.full(self.weights.shape, self.mu0),
                               np.maximum(self.tau_nodes, 1e-300))

    def theta(self, i: int) -> Marginal:
        """Shrunken effect of study ``i`` under H0."""
        if self.fixed:
            return PointMass(self.mu0)
        t2 = self.tau_nodes**2
        b = self.v[i] / (self.v[i] + t2)
        return MixtureMarginal(self.weights, (1.0 - b) * self.y[i] + b * self.mu0,
                               np.maximum(np.sqrt((1.0 - b) * self.v[i]), 1e-300))


# ---------------------------------------------------------------------------
# Bayes factor and model averaging
# ---------------------------------------------------------------------------
#: (upper bound of max(BF10, BF01), label): Lee & Wagenmakers (2013) adaptation of Jeffreys (1961)
_CATEGORIES = ((3.0, "anecdotal"), (10.0, "moderate"), (30.0, "strong"), (100.0, "very strong"),
               (math.inf, "extreme"))


def evidence_category(bf10: float) -> str:
    """Verbal label of a Bayes factor (Jeffreys 1961 as adapted by Lee & Wagenmakers 2013).

    The label is read off ``b = max(BF10, BF01) = max(bf10, 1 / bf10)``, so a
    Bayes factor and its reciprocal get the same strength, for H1 when
    ``bf10 > 1`` and for H0 when ``bf10 < 1``: ``1 < b < 3`` anecdotal,
    ``3 <= b < 10`` moderate, ``10 <= b < 30`` strong, ``30 <= b < 100`` very
    strong, ``b >= 100`` extreme (``bf10 = 0`` or ``inf``, e.g. after
    under/overflow, is extreme). ``bf10 = 1`` is "no evidence either way";
    NaN or a negative value is "undefined".

    Examples
    --------
    >>> from ketabayes.inference.bayes_factor import evidence_category
    >>> evidence_category(12.0)
    'strong evidence for an effect (H1)'
    >>> evidence_category(0.2)
    'moderate evidence for no effect (H0)'
    >>> evidence_category(1.0)
    'no evidence either way'
    """
    bf10 = float(bf10)
    if not bf10 >= 0.0:
        return "undefined"
    if bf10 == 1.0:
        return "no evidence either way"
    b = bf10 if bf10 > 1.0 else (math.inf if bf10 == 0.0 else 1.0 / bf10)
    label = next(lab for cut, lab in _CATEGORIES if b < cut or cut == math.inf)
    side = "for an effect (H1)" if bf10 > 1.0 else "for no effect (H0)"
    return f"{label} evidence {side}"


@dataclass(frozen=True)
class BayesFactor:
    """Bayes factor of an effect (H1) against no effect (H0) and the model average.

    Build with :func:`bayes_factor`.

    Attributes
    ----------
    log_evidence_h0, log_evidence_h1 : float
        Log marginal likelihoods ``log p(y | H0)`` and ``log p(y | H1)``.
    prior_prob_h1 : float
        Prior probability of H1.
    h0 : ExactPointNull
        Exact posterior under H0.
    h1 : ExactNormalNormal
        Exact posterior under H1.
    """

    log_evidence_h0: float
    log_evidence_h1: float
    prior_prob_h1: float
    h0: ExactPointNull = field(repr=False)
    h1: ExactNormalNormal = field(repr=False)

    @property
    def log_bf10(self) -> float:
        return self.log_evidence_h1 - self.log_evidence_h0

    @property
    def bf10(self) -> float:
        return float(np.exp(self.log_bf10))

    @property
    def bf01(self) -> float:
        return float(np.exp(-self.log_bf10))

    @property
    def post_prob_h1(self) -> float:
        """Posterior probability of H1, ``pi1 BF10 / (pi1 BF10 + 1 - pi1)`` (computed on the log scale)."""
        p = self.prior_prob_h1
        if p in (0.0, 1.0):
            return p
        a = math.log(p) + self.log_bf10
        b = math.log1p(-p)
        return float(np.exp(a - np.logaddexp(a, b)))

    @property
    def post_prob_h0(self) -> float:
        return 1.0 - self.post_prob_h1

    def marginal(self, target: str = "mean", hypothesis: str = "averaged") -> Marginal:
        """Posterior of ``"mean"``, ``"predictive"`` or a study index under H0, H1 or the average."""
        def pick(model):
            if target == "mean":
                return model.mu
            if target == "predictive":
                return model.theta_new
            if isinstance(target, (int, np.integer)):
                return model.theta(int(target))
            raise PriorError(f"unknown target {target!r}: use 'mean', 'predictive' or a study index")

        if hypothesis == "h0":
            return pick(self.h0)
        if hypothesis == "h1":
            return pick(self.h1)
        if hypothesis != "averaged":
            raise PriorError(f"hypothesis must be 'h0', 'h1' or 'averaged', got {hypothesis!r}")
        return MixedMarginal([self.post_prob_h0, self.post_prob_h1], [pick(self.h0), pick(self.h1)])

    def decision_probabilities(self, thresholds: Thresholds, target: str = "mean") -> dict[str, float]:
        """Model-averaged P(benefit), P(practically no effect), P(harm), P(any benefit).

        ``P_avg = P(H0 | y) P(. | y, H0) + P(H1 | y) P(. | y, H1)``; under H0 the
        average effect is exactly ``mu0``, which counts as "practically no effect"
        and not as "any benefit".
        """
        d0 = decision_probabilities_mixed(self.marginal(target, "h0"), thresholds)
        d1 = decision_probabilities_mixed(self.marginal(target, "h1"), thresholds)
        w1 = self.post_prob_h1
        return {k: (1.0 - w1) * d0[k] + w1 * d1[k] for k in d1}

    def decision_table(self, mcid: float, benefit: str = "lower", harm: float | None = None, *,
                       measure: str | None = None, targets=("mean", "predictive")) -> pd.DataFrame:
        """Bayes factor, posterior model probability and model-averaged decision probabilities.

        Returns
        -------
        pandas.DataFrame
            One row per target: ``target, bf10, log_bf10, post_prob_h1, p_benefit,
            p_trivial, p_harm, p_any_benefit`` (model-averaged) and the same four
            probabilities under H1 alone with suffix ``_h1``.
        """
        th = Thresholds.for_measure(mcid, measure, benefit, harm)
        rows = []
        for t in targets:
            avg = self.decision_probabilities(th, t)
            h1 = decision_probabilities_mixed(self.marginal(t, "h1"), th)
            rows.append({"target": t, "bf10": self.bf10, "log_bf10": self.log_bf10,
                         "post_prob_h1": self.post_prob_h1, **avg,
                         **{f"{k}_h1": v for k, v in h1.items()}})
        df = pd.DataFrame(rows)
        df.attrs.update(thresholds=th.to_dict(), prior_prob_h1=self.prior_prob_h1,
                        evidence=evidence_category(self.bf10))
        return df

    def describe(self) -> str:
        return (f"BF10 = {self.bf10:.4g} ({evidence_category(self.bf10)}); "
                f"P(H1 | y) = {self.post_prob_h1:.3f} with P(H1) = {self.prior_prob_h1:g}")

    def __repr__(self) -> str:
        return f"<BayesFactor: {self.describe()}>"

    def _repr_html_(self) -> str:
        import html

        return f"<p><b>BayesFactor</b>: {html.escape(self.describe())}</p>"


def bayes_factor(yi, vi=None, prior_mu: Prior | str | None = None, prior_tau: Prior | str | None = None, *,
                 fixed: bool = False, mu0: float = 0.0, prior_prob_h1: float = 0.5,
                 settings: QuadratureSettings | None = None) -> BayesFactor:
    """Bayes factor BF10 for an effect (``mu`` free) against no effect (``mu = mu0``).

    Parameters
    ----------
    yi : array_like or RandomEffectsModel
        Effect estimates; or a :class:`~ketabayes.model.random_effects.RandomEffectsModel`,
        whose data, priors and ``fixed`` flag are used (the other arguments then
        override nothing but ``mu0``, ``prior_prob_h1`` and ``settings``).
    vi : array_like
        Sampling variances.
    prior_mu : Prior or str
        A proper prior for mu under H1 (normal, studentt, cauchy, possibly truncated).
    prior_tau : Prior or str
        Prior of ``tau``, shared by H0 and H1 (ignored if ``fixed``).
    fixed : bool
        Fixed-effect models (``tau = 0``) under both hypotheses.
    mu0 : float
        Value of ``mu`` under H0 (0 = no effect on the analysis scale).
    prior_prob_h1 : float
        Prior probability of H1, in [0, 1] (default 0.5).

    Returns
    -------
    BayesFactor

    Raises
    ------
    PriorError
        For a flat (improper) prior of ``mu``.

    Examples
    --------
    >>> from ketabayes.inference.bayes_factor import bayes_factor
    >>> bf = bayes_factor([-0.4, -0.2, -0.5], [0.04, 0.09, 0.05], "normal(0, 1)", "halfnormal(0.5)")
    >>> bool(bf.bf10 > 1), round(bf.post_prob_h1 + bf.post_prob_h0, 12)
    (True, 1.0)
    """
    from ketabayes.model.random_effects import RandomEffectsModel

    if isinstance(yi, RandomEffectsModel):
        m = yi
        yi, vi, prior_mu, prior_tau, fixed = m.yi, m.vi, m.prior_mu, m.prior_tau, m.fixed
    if vi is None:
        raise PriorError("give the sampling variances vi (or a RandomEffectsModel)")
    if prior_mu is None:
        raise PriorError("a Bayes factor needs a proper prior for mu under H1, e.g. prior_mu='normal(0, 1)'")
    prior_mu = parse_prior(prior_mu)
    if not prior_mu.proper or prior_mu.support != "real" or prior_mu.kind == "point":
        raise PriorError(
            f"the Bayes factor needs a proper prior for mu under H1 (normal, studentt, cauchy, possibly "
            f"truncated), got {prior_mu}: with a flat prior the marginal likelihood p(y | H1) is not defined "
            "(its scale is arbitrary), so BF10 would be meaningless. Give e.g. prior_mu='normal(0, 1)' or "
            "use prior_panel(...)")
    if not fixed:
        if prior_tau is None:
            raise PriorError("a random-effects Bayes factor needs a proper prior for tau, e.g. 'halfnormal(0.5)'")
        prior_tau = parse_prior(prior_tau)
        if not prior_tau.proper:
            raise PriorError(f"the Bayes factor needs a proper prior for tau, got {prior_tau}")
    if not (0.0 <= float(prior_prob_h1) <= 1.0):
        raise PriorError(f"prior_prob_h1 must be a probability in [0, 1], got {prior_prob_h1!r}")
    h1 = ExactNormalNormal(yi, vi, prior_mu, None if fixed else prior_tau, fixed=fixed, settings=settings)
    h0 = ExactPointNull(yi, vi, None if fixed else prior_tau, fixed=fixed, mu0=mu0, settings=settings)
    return BayesFactor(float(h0.log_evidence), float(h1.log_evidence), float(prior_prob_h1), h0, h1)

