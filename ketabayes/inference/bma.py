"""Bayesian model averaging over effect x heterogeneity (x publication bias) meta-analysis models.

The ensemble crosses

* **effect**: ``mu = 0`` (H0) or ``mu ~ prior_mu`` (H1, optionally truncated to one side of 0);
* **heterogeneity**: ``tau = 0`` (fixed effect) or ``tau ~ prior_tau`` (random effects);
* **bias** (optional): none, PET (``y_i ~ N(mu + beta se_i, v_i + tau**2)``), PEESE (``beta v_i``),
  both with ``|beta|`` restricted to the direction of small-study effects (RoBMA's
  ``Cauchy(0, 1)`` / ``Cauchy(0, 5)`` truncated to one side), and selection models with RoBMA's
  six step weight functions (:mod:`ketabayes.inference.bma_selection`).

Marginal likelihoods: normal, PET and PEESE models by quadrature with ``mu`` integrated in closed
form (:mod:`ketabayes.inference.bma_quadrature`; without slope and truncation this equals
:attr:`ExactNormalNormal.log_evidence <ketabayes.inference.exact.ExactNormalNormal>`, tested),
selection models by importance sampling on randomised quasi-Monte Carlo points
(:mod:`ketabayes.inference.bma_selection_is`) or PyMC's sequential Monte Carlo, each with the
Monte-Carlo error of its estimate.
Posterior model probabilities are ``p(M_k | y) ∝ p(y | M_k) P(M_k)``; inclusion Bayes factors
compare the summed posterior to prior odds of the models with and without a component (Hinne et
al. 2020); the model-averaged posterior of the average effect is the probability-weighted mixture
of the models' posteriors, with a point mass at 0 from the no-effect models.

References
----------
Gronau QF, van Erp S, Heck DW, Cesario J, Jonas KJ, Wagenmakers EJ (2017). A Bayesian
model-averaged meta-analysis of the power pose effect with informed and default priors: the case
of felt power. Compr Results Soc Psychol 2(1):123-138. doi:10.1080/23743603.2017.1326760
Bartoš F, Maier M, Wagenmakers EJ, Doucouliagos H, Stanley TD (2023). Robust Bayesian
meta-analysis: model-averaging across complementary publication bias adjustment methods. Res
Synth Methods 14(1):99-116. doi:10.1002/jrsm.1594
Hinne M, Gronau QF, van den Bergh D, Wagenmakers EJ (2020). A conceptual introduction to
Bayesian model averaging. Adv Methods Pract Psychol Sci 3(2):200-215. doi:10.1177/2515245919898657
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ketabayes.errors import PriorError
from ketabayes.inference.bias_adjusted import fit_bias_shift
from ketabayes.inference.bma_quadrature import QuadratureFit, fit_quadrature
from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS, Cutoffs, SMCFit, fit_smc
from ketabayes.inference.bma_selection_is import fit_selection_is
from ketabayes.marginals import DrawsMarginal, Marginal, MixedMarginal, PointMass, WeightedDrawsMarginal
from ketabayes.model.bias_priors import BiasPrior
from ketabayes.model.priors import HalfCauchy, Normal, Prior, parse_prior

__all__ = ["ModelSpec", "ModelFit", "Ensemble", "fit_ensemble", "ensemble_specs", "BIAS_SETS"]

#: RoBMA's within-bias prior weights (Bartoš et al. 2023): each weight function 1/12, PET 1/4, PEESE 1/4
_ROBMA_BIAS_WEIGHTS = {**{k: 1.0 / 12.0 for k in WEIGHT_FUNCTIONS}, "PET": 0.25, "PEESE": 0.25}

#: named sets of bias models accepted by ``bias=``
#: every bias model and its within-bias prior weight; "RoB": a shift of the trials at high risk of bias
_BIAS_WEIGHTS = {**_ROBMA_BIAS_WEIGHTS, "RoB": 0.25}

BIAS_SETS = {"robma": tuple(_ROBMA_BIAS_WEIGHTS), "pet-peese": ("PET", "PEESE"),
             "selection": tuple(WEIGHT_FUNCTIONS)}


@dataclass(frozen=True)
class ModelSpec:
    """One model of the ensemble and its prior probability."""

    effect: bool
    heterogeneity: bool
    bias: str = "none"
    prior_prob: float = 0.25

    @property
    def label(self) -> str:
        s = f"{'RE' if self.heterogeneity else 'FE'}-{'H1' if self.effect else 'H0'}"
        return s if self.bias == "none" else f"{s}-{self.bias}"

    @property
    def method(self) -> str:
        return "smc" if self.bias in WEIGHT_FUNCTIONS else "quadrature"


@dataclass
class ModelFit:
    """Fitted model: log marginal likelihood (with Monte-Carlo error for SMC) and posteriors."""

    spec: ModelSpec
    log_ml: float
    log_ml_se: float
    mu: Marginal
    tau: Marginal
    beta: Marginal | None = None
    omega: np.ndarray | None = None
    seconds: float = 0.0
    smc: SMCFit | None = field(default=None, repr=False)
    engine: str | None = None
    #: posterior predictive of a new, unbiased trial's true effect ``mu + tau z`` (see :func:`fit_ensemble`)
    predictive: Marginal | None = None
    quad: QuadratureFit | None = field(default=None, repr=False)
    #: joint posterior draws ``{"mu", "tau", "omega"}`` of an importance-sampled model (resampled by weight)
    points: dict | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        """``"quadrature"``, ``"importance"`` (randomised QMC) or ``"smc"``: how ``log_ml`` was computed."""
        return self.engine or self.spec.method


def _resolve_bias(bias) -> tuple:
    if bias is None or bias is False:
        return ()
    if bias is True:
        bias = "robma"
    if isinstance(bias, str):
        key = bias.lower()
        if key in BIAS_SETS:
            return BIAS_SETS[key]
        bias = [bias]
    out = []
    for b in bias:
        name = {"pet": "PET", "peese": "PEESE", "rob": "RoB"}.get(str(b).lower(), str(b))
        if name not in _BIAS_WEIGHTS:
            raise PriorError(f"unknown bias model {b!r}: use 'PET', 'PEESE', 'RoB', one of the weight functions "
                             f"{', '.join(WEIGHT_FUNCTIONS)} or a set: {', '.join(BIAS_SETS)}")
        out.append(name)
    return tuple(dict.fromkeys(out))


def ensemble_specs(bias=None, prior_probs=None) -> list[ModelSpec]:
    """The models of the ensemble with their prior probabilities.

    ``prior_probs``: ``None`` (effect, heterogeneity and -- with ``bias`` -- bias each present
    with probability 1/2; within bias RoBMA's weights: 1/12 per weight function, 1/4 for PET
    and PEESE, renormalised over the bias models chosen), a dict with keys ``"effect"``,
    ``"heterogeneity"``, ``"bias"`` (prior inclusion probabilities), or one number per model
    (in the order of the returned list; normalised).
    """
    biases = _resolve_bias(bias)
    p = {"effect": 0.5, "heterogeneity": 0.5, "bias": 0.5 if biases else 0.0}
    per_model = None
    if isinstance(prior_probs, dict):
        unknown = set(prior_probs) - set(p)
        if unknown:
            raise PriorError(f"prior_probs keys must be 'effect', 'heterogeneity', 'bias'; got {sorted(unknown)}")
        p.update({k: float(v) for k, v in prior_probs.items()})
        for k, v in p.items():
            if not 0.0 <= v <= 1.0:
                raise PriorError(f"prior_probs[{k!r}] must be a probability in [0, 1], got {v!r}")
    elif prior_probs is not None:
        per_model = np.asarray(prior_probs, dtype=float)
    wsum = sum(_BIAS_WEIGHTS[b] for b in biases)
    specs = []
    for het in (False, True):
        for eff in (False, True):
            base = (p["effect"] if eff else 1 - p["effect"]) * (p["heterogeneity"] if het else 1 - p["heterogeneity"])
            specs.append(ModelSpec(eff, het, "none", base * (1 - p["bias"])))
            for b in biases:
                specs.append(ModelSpec(eff, het, b, base * p["bias"] * _BIAS_WEIGHTS[b] / wsum))
    if per_model is not None:
        if per_model.shape != (len(specs),) or np.any(per_model < 0) or per_model.sum() <= 0:
            raise PriorError(f"prior_probs needs {len(specs)} non-negative numbers (one per model: "
                             f"{', '.join(s.label for s in specs)}), got {prior_probs!r}")
        per_model = per_model / per_model.sum()
        specs = [ModelSpec(s.effect, s.heterogeneity, s.bias, float(q)) for s, q in zip(specs, per_model)]
    return specs


class Ensemble:
    """Fitted ensemble: posterior model probabilities, inclusion Bayes factors, averaged posteriors.

    ``data`` holds what the models were fitted to (``y``, ``v``, ``sign``, ``rob``) and ``priors``
    their priors (``mu``, ``tau``, ``mu_sign``, ``PET``, ``PEESE``, ``RoB``), for the joint draws of
    :mod:`ketabayes.inference.bma_draws`.
    """

    def __init__(self, fits: list[ModelFit], data: dict | None = None, priors: dict | None = None):
        self.fits = fits
        self.data = data or {}
        self.priors = priors or {}
        prior = np.array([f.spec.prior_prob for f in fits])
        lml = np.array([f.log_ml for f in fits])
        with np.errstate(divide="ignore"):
            lp = np.log(prior) + lml
        lp = np.where(prior > 0, lp, -np.inf)
        self.post_probs = np.exp(lp - np.logaddexp.reduce(lp))

    @property
    def labels(self) -> list[str]:
        return [f.spec.label for f in self.fits]

    def fit(self, label: str) -> ModelFit:
        for f in self.fits:
            if f.spec.label == label:
                return f
        raise KeyError(label)

    def models(self) -> pd.DataFrame:
        """One row per model: ``model, effect, heterogeneity, bias, prior_prob, log_ml, log_ml_se, post_prob, method``."""
        rows = [{"model": f.spec.label, "effect": f.spec.effect, "heterogeneity": f.spec.heterogeneity,
                 "bias": f.spec.bias, "prior_prob": f.spec.prior_prob, "log_ml": f.log_ml, "log_ml_se": f.log_ml_se,
                 "post_prob": float(q), "method": f.method} for f, q in zip(self.fits, self.post_probs)]
        return pd.DataFrame(rows)

    def _has(self, component: str) -> np.ndarray:
        if component == "effect":
            return np.array([f.spec.effect for f in self.fits])
        if component == "heterogeneity":
            return np.array([f.spec.heterogeneity for f in self.fits])
        if component == "bias":
            return np.array([f.spec.bias != "none" for f in self.fits])
        if component == "no bias":
            return np.array([f.spec.bias == "none" for f in self.fits])
        if component in ("PET", "PEESE", "RoB", *WEIGHT_FUNCTIONS):
            return np.array([f.spec.bias == component for f in self.fits])
        if component == "selection":
            return np.array([f.spec.bias in WEIGHT_FUNCTIONS for f in self.fits])
        raise PriorError(f"component must be 'effect', 'heterogeneity', 'bias', 'PET', 'PEESE', 'selection' or a "
                         f"weight function, got {component!r}")

    def inclusion_bf(self, component: str) -> dict:
        """Inclusion Bayes factor of a component: posterior odds over prior odds of the models that have it.

        Returns ``{"bf": ..., "log_bf": ..., "log_bf_se": ..., "prior_prob": ..., "post_prob": ...}``;
        ``log_bf_se`` propagates the Monte-Carlo errors of SMC marginal likelihoods (delta method,
        independent errors; 0 when every marginal likelihood is by quadrature).
        """
        has = self._has(component)
        prior = np.array([f.spec.prior_prob for f in self.fits])
        pi1, q1 = prior[has].sum(), self.post_probs[has].sum()
        if pi1 in (0.0, 1.0) or not has.any() or has.all():
            raise PriorError(f"the ensemble has no models without/with {component!r}: no inclusion Bayes factor")
        with np.errstate(divide="ignore"):
            log_bf = (math.log(q1) - math.log1p(-q1) if 0 < q1 < 1 else (math.inf if q1 == 1 else -math.inf)) \
                - (math.log(pi1) - math.log1p(-pi1))
        # d log BF / d log ml_k = q_k / q1 for models with the component, -q_k / q0 without
        q0 = 1.0 - q1
        grad = np.where(has, self.post_probs / max(q1, 1e-300), -self.post_probs / max(q0, 1e-300))
        se = np.array([f.log_ml_se if np.isfinite(f.log_ml_se) else 0.0 for f in self.fits])
        log_bf_se = float(np.sqrt(np.sum((grad * se) ** 2)))
        return {"component": component, "bf": float(np.exp(log_bf)), "log_bf": float(log_bf),
                "log_bf_se": log_bf_se, "prior_prob": float(pi1), "post_prob": float(q1)}

    @property
    def has_predictive(self) -> bool:
        """Whether every model with posterior probability has a predictive of a new trial."""
        return all(f.predictive is not None for f, q in zip(self.fits, self.post_probs) if q > 0)

    def averaged(self, what: str = "mu", condition: str | None = None) -> Marginal:
        """Model-averaged posterior of ``"mu"``, ``"tau"`` or ``"predictive"`` (a new trial's true effect),
        optionally only over models with ``condition``."""
        keep = np.ones(len(self.fits), bool) if condition is None else self._has(condition)
        w = self.post_probs * keep
        if w.sum() <= 0:
            raise PriorError(f"no posterior probability on models with {condition!r}")
        comps = [getattr(f, what) for f in self.fits]
        idx = np.flatnonzero(w > 0)
        return MixedMarginal(w[idx], [comps[i] for i in idx])


def _tau_marginal(fit_q) -> Marginal:
    if fit_q.tau_nodes is None:
        return PointMass(0.0)
    return WeightedDrawsMarginal(fit_q.tau_nodes, fit_q.tau_weights)


def _is_fit(spec: ModelSpec, f, seconds: float, rng: np.random.Generator) -> ModelFit:
    """A :class:`ModelFit` from importance-sampling output: weighted points for the marginals; a systematic
    resample of the points (jointly: mu, tau, omega) for plots, joint draws and the predictive of a new trial."""
    mu = WeightedDrawsMarginal(f.mu, f.weights) if f.mu is not None else PointMass(0.0)
    tau = WeightedDrawsMarginal(f.tau, f.weights) if f.tau is not None else PointMass(0.0)
    idx = f.resample()
    n = idx.size
    pts = {"mu": f.mu[idx] if f.mu is not None else np.zeros(n), "tau": f.tau[idx] if f.tau is not None
           else np.zeros(n), "omega": f.omega[idx]}
    predictive = DrawsMarginal(pts["mu"] + pts["tau"] * rng.standard_normal(n)) if f.tau is not None else mu
    return ModelFit(spec, f.log_ml, f.log_ml_se, mu, tau, omega=pts["omega"], seconds=seconds, engine="importance",
                    predictive=predictive, points=pts)


def fit_ensemble(yi, vi, *, prior_mu, prior_tau, bias=None, prior_probs=None, benefit: str = "higher",
                 mu_truncation: str | None = None, prior_pet: Prior | None = None, prior_peese: Prior | None = None,
                 smc_draws: int = 500, smc_chains: int = 4, seed: int = 0, smc_cache: dict | None = None,
                 rob=None, prior_rob: Prior | None = None, selection: str = "auto",
                 selection_points: int = 2**13, selection_cutoffs: Cutoffs | None = None,
                 selection_max_se: float = 0.05) -> Ensemble:
    """Fit every model of the ensemble.

    Parameters
    ----------
    yi, vi : array_like
        Effect estimates and sampling variances.
    prior_mu : Prior or str
        Proper prior of the average effect under H1 (normal: closed form in mu; any other
        proper prior with ``logpdf``, e.g. Student-t: Gauss-Hermite over mu).
    prior_tau : Prior or str
        Proper prior of tau under random effects.
    bias : None, True, str or list of str
        Bias models: ``None`` (none), ``True``/``"robma"`` (6 weight functions, PET, PEESE),
        ``"pet-peese"``, ``"selection"``, or names (``"PET"``, ``"PEESE"``, ``"2s.05"``, ...).
    prior_probs : None, dict or sequence
        See :func:`ensemble_specs`.
    benefit : {"higher", "lower"}
        Direction of benefit: small-study effects and publication selection favour this side
        (``beta`` has its sign, p-values are one-sided towards it).
    mu_truncation : {None, "positive", "negative"}
        Directional prior of ``mu`` (its normal prior truncated to one side of 0).
    prior_pet, prior_peese : Prior, optional
        Priors of ``|beta|`` (default RoBMA's ``HalfCauchy(1)`` and ``HalfCauchy(5)``).
    smc_draws, smc_chains, seed
        SMC settings of the selection models.
    smc_cache : dict, optional
        ``label -> SMCFit`` of selection models already fitted (used when a saved result is loaded).
    selection : {"auto", "importance", "smc"}
        Marginal likelihoods of the selection models: ``"importance"`` (importance sampling on
        randomised quasi-Monte Carlo points, :func:`~ketabayes.inference.bma_selection_is.fit_selection_is`),
        ``"smc"`` (PyMC's sequential Monte Carlo) or ``"auto"`` (importance sampling, SMC where its
        Monte-Carlo error exceeds ``selection_max_se``; ``"importance"`` raises there).
    selection_points : int
        Points per randomised QMC replicate (a power of 2; 8 replicates).
    selection_cutoffs : Cutoffs, optional
        How each study's p-value maps to its estimate (default: the z-test of ``y / se``;
        ``Cutoffs.correlation(n)`` for Fisher's z of correlations tested by t with ``n - 2`` df, as RoBMA).
    rob : array_like of bool, optional
        Trials at high risk of bias, for the ``"RoB"`` bias model: ``y_i ~ N(mu + delta rob_i, v_i +
        tau**2)``, the trials at high risk shifted by ``delta``; ``mu`` is then the effect in trials at
        low risk of bias.
    prior_rob : BiasPrior or Prior
        Required with ``"RoB"`` (no default). A :class:`~ketabayes.model.bias_priors.BiasPrior`:
        ``delta = b + e_i`` with ``b ~ N(shift, sd^2)`` shared and ``e_i ~ N(0, kappa^2)`` per trial,
        integrated in closed form (:func:`~ketabayes.inference.bias_adjusted.fit_bias_shift`); or a
        prior of ``|delta|`` on ``(0, inf)`` (e.g. ``HalfNormal(0.4)``), the shift then fixed towards
        benefit and integrated by quadrature.

    Returns
    -------
    Ensemble
        Each model's fit carries the posteriors of ``mu`` and ``tau`` and the posterior predictive
        of a new trial's true effect, ``theta_new = mu + tau z`` with ``z ~ N(0, 1)``: ``N(mu,
        tau^2)`` under random effects, ``mu`` under a fixed effect, 0 or ``N(0, tau^2)`` without an
        effect. Under a bias model it is the same bias-free quantity: the effect of a new trial
        free of small-study effects (PET/PEESE: at standard error 0), of publication selection
        (selection models: ``mu`` is the effect before selection) and at low risk of bias
        (``"RoB"``) -- the bias-corrected predictive, not the prediction of a new biased estimate.

    Examples
    --------
    >>> from ketabayes.inference.bma import fit_ensemble
    >>> ens = fit_ensemble([0.3, 0.1, 0.5], [0.04, 0.09, 0.05], prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)")
    >>> ens.labels
    ['FE-H0', 'FE-H1', 'RE-H0', 'RE-H1']
    >>> round(float(ens.post_probs.sum()), 12)
    1.0
    """
    prior_mu = parse_prior(prior_mu) if prior_mu is not None else None
    if prior_mu is None or not prior_mu.proper or prior_mu.support != "real":
        raise PriorError(f"model averaging needs a proper prior for mu under H1, got {prior_mu}: with a flat "
                         "prior the marginal likelihoods are not defined. Give e.g. prior_mu='normal(0, 1)'")
    if mu_truncation is not None and not isinstance(prior_mu, Normal):
        raise PriorError(f"mu_truncation needs a normal prior of mu, got {prior_mu}")
    prior_tau = parse_prior(prior_tau) if prior_tau is not None else None
    if prior_tau is None or not prior_tau.proper:
        raise PriorError(f"model averaging needs a proper prior for tau, got {prior_tau}; e.g. 'halfnormal(0.5)'")
    if benefit not in ("higher", "lower"):
        raise PriorError(f"benefit must be 'higher' or 'lower', got {benefit!r}")
    if selection not in ("auto", "importance", "smc"):
        raise PriorError(f"selection must be 'auto', 'importance' or 'smc', got {selection!r}")
    if mu_truncation not in (None, "positive", "negative"):
        raise PriorError(f"mu_truncation must be None, 'positive' or 'negative', got {mu_truncation!r}")
    sign = 1 if benefit == "higher" else -1
    mu_sign = {None: 0, "positive": 1, "negative": -1}[mu_truncation]
    prior_pet = prior_pet or HalfCauchy(1.0)
    prior_peese = prior_peese or HalfCauchy(5.0)
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    se = np.sqrt(v)
    smc_cache = smc_cache or {}
    fits = []
    for k, spec in enumerate(ensemble_specs(bias, prior_probs)):
        t0 = time.perf_counter()
        pm_ = prior_mu if spec.effect else None
        pt_ = prior_tau if spec.heterogeneity else None
        if spec.bias in WEIGHT_FUNCTIONS:
            wf = WEIGHT_FUNCTIONS[spec.bias]
            s = smc_cache.get(spec.label)
            if s is None and selection != "smc":
                f_is = fit_selection_is(y, v, prior_mu=pm_, prior_tau=pt_, wf=wf, sign=sign, mu_sign=mu_sign,
                                        cutoffs=selection_cutoffs, points=selection_points, seed=seed + 7919 * k)
                if f_is.log_ml_se <= selection_max_se:
                    fits.append(_is_fit(spec, f_is, time.perf_counter() - t0, np.random.default_rng([int(seed), k, 5])))
                    continue
                if selection == "importance":
                    raise PriorError(f"{spec.label}: importance sampling did not converge (Monte-Carlo error of "
                                     f"log_ml {f_is.log_ml_se:.3g} > {selection_max_se}); use selection='smc' or 'auto'")
            if s is None:
                s = fit_smc(y, v, prior_mu=pm_, prior_tau=pt_, wf=wf, sign=sign, mu_sign=mu_sign, draws=smc_draws,
                            chains=smc_chains, seed=seed + 7919 * k, cutoffs=selection_cutoffs)
            mu = DrawsMarginal(s.mu) if s.mu is not None else PointMass(0.0)
            tau = DrawsMarginal(s.tau) if s.tau is not None else PointMass(0.0)
            fits.append(ModelFit(spec, s.log_ml, s.log_ml_se, mu, tau, omega=s.omega,
                                 seconds=time.perf_counter() - t0, smc=s, engine="smc",
                                 predictive=_smc_predictive(s, np.random.default_rng([int(seed), k, 5]))))
            continue
        x = prior_b = None
        if spec.bias == "PET":
            x, prior_b = se, prior_pet
        elif spec.bias == "PEESE":
            x, prior_b = v, prior_peese
        elif spec.bias == "RoB":
            if rob is None:
                raise PriorError("the 'RoB' bias model needs the trials at high risk of bias (rob=...)")
            if prior_rob is None:
                raise PriorError("the 'RoB' bias model needs a prior for the bias (prior_rob=...): a BiasPrior "
                                 "(e.g. ketabayes.meta_epidemiological_prior('blinding')) or a prior of its size")
            if isinstance(prior_rob, BiasPrior):
                q = fit_bias_shift(y, v, np.asarray(rob, dtype=float), shift_mean=prior_rob.shift(benefit),
                                   shift_sd=prior_rob.sd, kappa=prior_rob.kappa, prior_mu=pm_, prior_tau=pt_,
                                   mu_sign=mu_sign)
                # the shared shift couples the trials: no per-trial likelihood, so no joint draws (quad=None)
                fits.append(ModelFit(spec, q.log_ml, 0.0, q.mu, _tau_marginal(q), seconds=time.perf_counter() - t0,
                                     predictive=q.predictive()))
                continue
            x, prior_b = np.asarray(rob, dtype=float), prior_rob
        q = fit_quadrature(y, v, prior_mu=pm_, prior_tau=pt_, x=x, prior_beta=prior_b, beta_sign=sign,
                           mu_sign=mu_sign)
        beta = WeightedDrawsMarginal(q.beta_nodes, q.beta_weights) if q.beta_nodes is not None else None
        fits.append(ModelFit(spec, q.log_ml, 0.0, q.mu, _tau_marginal(q), beta=beta,
                             seconds=time.perf_counter() - t0, predictive=q.predictive(), quad=q))
    return Ensemble(fits, data={"y": y, "v": v, "sign": sign, "rob": None if rob is None else np.asarray(rob, float),
                                 "cutoffs": selection_cutoffs},
                    priors={"mu": prior_mu, "tau": prior_tau, "mu_sign": mu_sign, "PET": prior_pet,
                            "PEESE": prior_peese, "RoB": None if isinstance(prior_rob, BiasPrior) else prior_rob})


def _smc_predictive(s: SMCFit, rng: np.random.Generator) -> Marginal:
    """``mu + tau z`` over the SMC draws of a selection model (``z`` drawn once, with a fixed seed)."""
    if s.tau is None:
        return DrawsMarginal(s.mu) if s.mu is not None else PointMass(0.0)
    mu = s.mu if s.mu is not None else np.zeros_like(s.tau)
    return DrawsMarginal(mu + s.tau * rng.standard_normal(s.tau.size))
