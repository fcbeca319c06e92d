"""Grid analyses of structured data: correlated estimates per trial, risk-of-bias adjustment, model averaging.

:func:`~ketabayes.sensitivity.analyses.normal_analysis` hands a variant over to
:func:`structured_analysis` when its rows are not one independent estimate per trial or when
the variant is bias-adjusted:

* **multi-arm trials** (several contrasts of one study against a shared control, with the
  control's variance ``vi_control``; :func:`~ketabayes.data.multiarm.multiarm_contrasts`):
  the contrasts keep their known within-trial covariance and the random effects of two
  contrasts of one trial correlate with ``rho = 1/2`` (the consistency model);
* **several time windows** (a ``time`` column and several rows per study): one average effect
  per window, the within-trial correlation of the estimates across time ``rho_time`` (a grid
  factor: it is an assumption) and of the true effects ``rho_between``;

  both fitted exactly by :class:`~ketabayes.inference.exact_multivariate.ExactMultivariateNormal`
  (random effects) or by the closed-form generalised-least-squares posterior (fixed effect);
* **risk-of-bias adjustment** (:class:`BiasAdjustment`): ``y_i ~ N(mu + delta_i x_i, v_i + tau^2)``
  with ``x_i = 1`` for trials at high risk of bias and the bias towards benefit, with kb.bma's
  priors (a cited or elicited :class:`~ketabayes.model.bias_priors.BiasPrior`, or a prior of
  ``|delta|``); ``mu`` is then the effect in trials at low risk of bias.

:func:`bma_analysis` is the ``model="bma"`` level: the averaged mean of :func:`ketabayes.bma`
(with the ``"RoB"`` bias models when the variant is bias-adjusted).

Sources: Higgins JPT, Whitehead A (1996). Borrowing strength from external trials in a meta-analysis.
Stat Med 15:2733-2749. doi:10.1002/(SICI)1097-0258(19961230)15:24<2733::AID-SIM562>3.0.CO;2-0.
Turner RM, Spiegelhalter DJ, Smith GCS, Thompson SG (2009). Bias modelling in evidence
synthesis. J R Stat Soc A 172(1):21-47. doi:10.1111/j.1467-985X.2008.00547.x
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError, PriorError
from ketabayes.marginals import Marginal, MixtureMarginal
from ketabayes.model.priors import Flat, HalfNormal, Normal, parse_prior

__all__ = ["BiasAdjustment", "structure_of", "structured_analysis", "bma_analysis"]

#: correlation of the random effects of two contrasts sharing a control (consistency model)
MULTIARM_RHO = 0.5


@dataclass(frozen=True)
class BiasAdjustment:
    """A level of the grid's ``bias`` factor: an additive bias for the trials at high risk of bias.

    The ``"RoB"`` bias model of :func:`ketabayes.bma`, with the same priors: a trial whose column
    ``rob`` is one of ``high`` estimates its effect plus a bias towards benefit; ``mu`` is then the
    effect in the other trials. The bias is

    * a :class:`~ketabayes.model.bias_priors.BiasPrior` -- a shared shift ``b ~ N(mean, sd^2)`` plus
      ``e_i ~ N(0, kappa^2)`` per trial (Welton et al. 2009), meta-epidemiological (e.g.
      ``"ROBES 2018:blinding:subjective"``) or elicited on the analysis scale; integrated in closed
      form (:func:`~ketabayes.inference.bias_adjusted.fit_bias_shift`); or
    * a prior of its size ``|delta|`` on ``(0, inf)`` (e.g. ``"halfnormal(0.5)"``, an assumption the
      analyst states), by quadrature.

    Like ``kb.bma``, there is no uncited default: without ``prior`` the grid uses the ROBES 2018 prior
    of the domain that ``rob`` names for odds-ratio analyses, and refuses otherwise
    (:meth:`resolved`).

    Parameters
    ----------
    rob : str
        Column with each trial's risk of bias (e.g. RoB 2's ``"low"``, ``"some concerns"``,
        ``"high"``); every trial needs a value.
    high : tuple of str, optional
        Values that count as high risk, e.g. ``("high", "some concerns")``. Default: those of the
        ``BiasPrior`` (its source's contrast, e.g. high or unclear for ROBES), else ``("high",)``.
    prior : BiasPrior, Prior or str, optional
        The bias prior, as ``prior_rob`` of :func:`ketabayes.bma`.

    Examples
    --------
    >>> BiasAdjustment("rob_overall", high=("high", "some concerns"), prior="halfnormal(0.5)").describe()
    "shift of trials with rob_overall in ('high', 'some concerns'), |delta| ~ halfnormal(0.5)"
    """

    rob: str = "rob"
    high: tuple | None = None
    prior: object = None
    direction: str = field(default="lower", compare=True)

    def __post_init__(self):
        from ketabayes.model.bias_priors import BiasPrior

        if self.high is not None:
            object.__setattr__(self, "high", tuple(str(h) for h in (
                (self.high,) if isinstance(self.high, str) else self.high)))
        p = self.prior
        if p is None or isinstance(p, BiasPrior) or (isinstance(p, str) and ":" in p):
            return   # resolved against the measure by resolved()
        p = parse_prior(p)
        if p.support != "positive" or not p.proper:
            raise PriorError(f"the prior of |delta| (bias adjustment) must be a proper prior on (0, inf), got {p}")
        object.__setattr__(self, "prior", p)

    def resolved(self, measure: str) -> BiasAdjustment:
        """This level with its prior and high-risk values settled for ``measure`` as :func:`ketabayes.bma` does.

        Raises :class:`~ketabayes.errors.PriorError` when there is no prior and no cited default.
        """
        from dataclasses import replace

        from ketabayes.model.bias_priors import BiasPrior
        from ketabayes.model.bma import _bias_prior

        prior = _bias_prior(self.prior, self.rob, measure, True)
        high = self.high if self.high is not None else (prior.levels if isinstance(prior, BiasPrior) else ("high",))
        return replace(self, prior=prior, high=tuple(high))

    @property
    def prior_delta(self):
        if self.prior is None or isinstance(self.prior, str):
            raise PriorError("this bias level has no resolved prior: call resolved(measure) (the grid does)")
        return self.prior

    def describe(self) -> str:
        from ketabayes.model.bias_priors import BiasPrior

        what = f"bias ~ {self.prior}" if isinstance(self.prior, BiasPrior) else f"|delta| ~ {self.prior}"
        return f"shift of trials with {self.rob} in {self.high}, {what}"

    def to_dict(self) -> dict:
        from ketabayes.model.bias_priors import BiasPrior

        prior = self.prior.to_dict() if isinstance(self.prior, BiasPrior) else str(self.prior)
        return {"rob": self.rob, "high": None if self.high is None else list(self.high), "prior": prior,
                "direction": self.direction}

    def indicator(self, data: pd.DataFrame, study: str) -> np.ndarray:
        """1.0 for the trials at high risk of bias, 0.0 otherwise (as :func:`ketabayes.bma` reads ``rob``)."""
        from types import SimpleNamespace

        from ketabayes.model.bma import _rob_indicator

        labels = data[study].astype(str).tolist() if study in data.columns else [f"row {i + 1}" for i in range(len(data))]
        return _rob_indicator(SimpleNamespace(data=data, studies=labels), self.rob, self.high)


# ---------------------------------------------------------------------------------------- structure
def structure_of(data: pd.DataFrame, study: str) -> str | None:
    """``"multiarm"``, ``"time"`` or ``None`` (one independent estimate per trial).

    Multi-arm: a study with several rows carrying ``control`` and ``vi_control``. Time: a
    ``time`` column and a study with several rows. Both in one table is a KetabayesError.
    """
    from ketabayes.data.multiarm import multiarm_trials

    multi = multiarm_trials(data, study=study)
    timed = "time" in data.columns and study in data.columns and data[study].astype(str).duplicated().any()
    if multi and timed:
        raise KetabayesError(f"the data has multi-arm trials ({multi[0]!r}, ...) and several time windows (column "
                             "'time') at once; analyse one time window at a time (a subset) or one arm at a time")
    return "multiarm" if multi else ("time" if timed else None)


def _multivariate_model(data: pd.DataFrame, variant, kind: str, measure: str, study: str):
    """The :class:`~ketabayes.model.multivariate.MultivariateModel` of a variant's rows."""
    from ketabayes.model.multivariate import MultivariateModel

    # a fixed-effect variant has no tau prior; the model needs one to be built, and the fixed path never uses it
    prior_tau = HalfNormal(1.0) if variant.fixed else variant.prior_tau
    if kind == "time":
        if variant.rho_time is None:
            lab = data[study].astype(str)
            first = lab[lab.duplicated()].iloc[0]
            raise KetabayesError(f"study {first!r} has estimates at several time windows (column 'time'): give the "
                                 "grid the assumed within-trial correlation across time, rho_time=... (a factor)")
        rb = 0.5 if variant.rho_between is None else variant.rho_between
        return MultivariateModel.from_time_points(data, rho_time=variant.rho_time, rho_between=rb, study=study,
                                                  prior_mu=variant.prior_mu, prior_tau=prior_tau, measure=measure)
    return MultivariateModel.from_effect_sizes(data, prior_mu=variant.prior_mu, prior_tau=prior_tau,
                                               rho=MULTIARM_RHO, study=study, measure=measure)


class _CorrelatedFit:
    """Marginals of a multivariate variant by target name (as :class:`MultivariateResult` names them)."""

    correlated = True  # several estimates per trial: no univariate Bayes factor

    def __init__(self, model, beta, predictive, theta):
        self.model = model
        self.studies = list(dict.fromkeys(model.trials))
        self._beta, self._pred, self._theta = beta, predictive, theta

    def marginal(self, target: str) -> Marginal:
        m = self.model
        key = target.removeprefix("study=")
        for j, c in enumerate(m.coef_names):
            suffix = "" if m.factor is None else f"|{m.factor}={c}"
            if key in (f"mean{suffix}", f"mu{suffix}"):
                return self._beta(j)
            if key in (f"predictive{suffix}", f"theta_new{suffix}"):
                return self._pred(j)
        if key in m.labels:
            return self._theta(m.labels.index(key))
        if key in m.trials and m.trials.count(key) == 1:  # a trial with one estimate: its plain label
            return self._theta(m.trials.index(key))
        names = [f"mean|{m.factor}={c}" for c in m.coef_names] if m.factor else ["mean", "predictive"]
        raise KetabayesError(f"unknown target {target!r} for correlated estimates: use {', '.join(names[:4])}, or "
                             f"an estimate such as {m.labels[0]!r}")


def _fixed_correlated(model) -> _CorrelatedFit:
    """Fixed effect (tau = 0): beta | y ~ N(b, P^-1), P = X' S^-1 X + P0 (closed form)."""
    X = np.eye(len(model.coef_names))[model.coef]
    Si = np.linalg.inv(model.S)
    P = X.T @ Si @ X
    num = X.T @ Si @ model.yi
    pm = model.prior_mu
    if isinstance(pm, Normal):
        P = P + np.eye(P.shape[0]) / pm.sigma**2
        num = num + pm.mu / pm.sigma**2
    elif not isinstance(pm, Flat):
        raise PriorError(f"the fixed-effect model of correlated estimates takes a normal or flat prior, got {pm}")
    cov = np.linalg.inv(P)
    b = cov @ num

    def beta(j):
        return MixtureMarginal([1.0], [b[j]], [np.sqrt(cov[j, j])])

    return _CorrelatedFit(model, beta, beta, lambda i: beta(int(model.coef[i])))


def _correlated_analysis(data, variant, kind, *, measure, study, keep_result, thresholds, seed):
    if variant.method != "exact":
        raise KetabayesError(f"correlated estimates ({'multi-arm contrasts' if kind == 'multiarm' else 'time windows'}"
                             ") are fitted by the exact engine only; use method='exact'")
    model = _multivariate_model(data, variant, kind, measure, study)
    if variant.fixed:
        return _fixed_correlated(model)
    if keep_result:
        mcid = dict(mcid=thresholds.mcid, benefit=thresholds.benefit, harm=thresholds.harm) if thresholds else {}
        res = model.fit(seed=seed, frequentist=False, **mcid)
        fit = _CorrelatedFit(model, res.exact.beta, res.exact.predictive, res.exact.theta)
        fit.result = res
        return fit
    e = model.engine()
    return _CorrelatedFit(model, e.beta, e.predictive, e.theta)


# ---------------------------------------------------------------------------------------- bias adjustment
class _BiasAdjustedFit:
    def __init__(self, q, studies):
        self.q = q
        self.studies = list(studies)

    def marginal(self, target: str) -> Marginal:
        key = target.removeprefix("study=")
        if key in ("mean", "mu"):
            return self.q.mu
        if key in ("predictive", "theta_new") and self.q.theta_new is not None:
            return self.q.theta_new
        raise KetabayesError(f"target {target!r} is not defined by the bias-adjusted model (targets: 'mean', the "
                             "effect in trials at low risk of bias, and 'predictive', a new such trial)")


def _bias_adjusted_analysis(data, variant, *, measure, study):
    from ketabayes.inference.bma_quadrature import fit_quadrature
    from ketabayes.model.priors_extra import resolve_prior

    if variant.method != "exact":
        raise KetabayesError("the bias-adjusted model is fitted by quadrature only; use method='exact'")
    pm = variant.prior_mu
    if not isinstance(pm, Normal) or pm.truncated:
        raise PriorError(f"the bias-adjusted model needs a normal prior for mu (it uses kb.bma's quadrature), got "
                         f"{pm}; give prior_mu=... e.g. 'normal(0, 10)'")
    from ketabayes.inference.bias_adjusted import fit_bias_shift
    from ketabayes.model.bias_priors import BiasPrior

    spec: BiasAdjustment = variant.bias
    y = data["yi"].to_numpy(float)
    v = data["vi"].to_numpy(float)
    x = spec.indicator(data, study)
    prior_tau = None if variant.fixed else resolve_prior(variant.prior_tau, v)
    prior = spec.prior_delta
    if isinstance(prior, BiasPrior):   # shared normal shift + per-trial kappa, in closed form (as kb.bma)
        q = fit_bias_shift(y, v, x, shift_mean=prior.shift(spec.direction), shift_sd=prior.sd, kappa=prior.kappa,
                           prior_mu=pm, prior_tau=prior_tau)
    else:
        q = fit_quadrature(y, v, prior_mu=pm, prior_tau=prior_tau, x=x, prior_beta=prior,
                           beta_sign=1 if spec.direction == "higher" else -1)
    return _BiasAdjustedFit(q, data[study].astype(str))


# ---------------------------------------------------------------------------------------- entry points
def structured_analysis(data: pd.DataFrame, variant, *, seed: int, measure: str, keep_result: bool = False,
                        thresholds=None, study: str = "study"):
    """The fit of a variant with correlated estimates or a bias adjustment, else ``None``.

    ``data`` holds the variant's estimable rows. Returns an object with ``marginal(target)``.
    """
    kind = structure_of(data, study)
    if variant.bias is not None:
        if kind is not None:
            raise KetabayesError(f"bias adjustment of correlated estimates ({kind}) is not available; combine the "
                                 "arms (multiarm='combine') or analyse one time window")
        return _bias_adjusted_analysis(data, variant, measure=measure, study=study)
    if kind is None:
        return None
    return _correlated_analysis(data, variant, kind, measure=measure, study=study, keep_result=keep_result,
                                thresholds=thresholds, seed=seed)


def bma_analysis(data: pd.DataFrame, variant, *, seed: int, measure: str, keep_result: bool = False,
                 thresholds=None, study: str = "study", by=(), **fit_kwargs):
    """Analysis factory of ``model="bma"``: :func:`ketabayes.bma` over fixed/random x effect/no effect.

    Targets as :class:`~ketabayes.result.bma_result.BMAResult` names them: ``"mean"`` (averaged
    over all models, a point mass at 0 from the no-effect models), ``"mean|effect"``,
    ``"mean|model=<label>"``. A bias-adjusted variant adds the ``"RoB"`` models
    (:class:`BiasAdjustment`). Needs proper priors (``prior_mu``, ``prior_tau``).
    """
    from ketabayes.model.bma import bma
    from ketabayes.sensitivity.analyses import _estimable_rows

    data = _estimable_rows(data, study)
    kind = structure_of(data, study)
    if kind is not None:
        raise KetabayesError(f"model='bma' needs one independent estimate per trial; the data has correlated "
                             f"estimates ({kind})")
    kw = {}
    benefit = thresholds.benefit if thresholds is not None else "lower"
    if variant.bias is not None:
        kw = dict(bias=["RoB"], rob=variant.bias.rob, rob_high=variant.bias.high, prior_rob=variant.bias.prior_delta)
        benefit = variant.bias.direction
    mcid = dict(mcid=thresholds.mcid, harm=thresholds.harm) if thresholds is not None else {}
    return bma(data, prior_mu=variant.prior_mu, prior_tau=variant.prior_tau, measure=measure, seed=seed,
               study=study, benefit=benefit, **mcid, **kw)
