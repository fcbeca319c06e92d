r"""Priors for the bias of trials at high risk of bias: meta-epidemiological estimates or elicited per trial.

**The bias model** (Welton et al. 2009; Turner et al. 2009). A trial ``i`` at high risk of bias
(an indicator ``x_i``) estimates its true effect plus an additive bias, towards benefit::

    y_i ~ N(theta_i + x_i * s * (b + e_i), v_i),   theta_i ~ N(mu, tau^2),
    b ~ N(mean, sd^2)        (the mean bias in this meta-analysis, shared by its trials at high risk)
    e_i ~ N(0, kappa^2)      (trial-to-trial variation of the bias)

with ``s = -1`` when lower values are a benefit and ``+1`` otherwise, so ``mean > 0`` exaggerates
the benefit. ``mu`` is then the average effect of trials at low risk of bias.
:class:`BiasPrior` holds ``mean, sd, kappa``, the scale they are on and where they come from.

**Meta-epidemiological priors** (:func:`meta_epidemiological_prior`). Meta-epidemiological studies
report, per risk-of-bias domain and outcome type, the ratio of odds ratios (ROR) between trials at
high/unclear and at low risk of bias with its 95% credible interval, the SD ``kappa`` of the bias
between trials within a meta-analysis and the SD ``phi`` of the mean bias between meta-analyses. As
in Welton et al. (2009), the prior of the bias in a *new* meta-analysis is their predictive
distribution::

    mean  = -log(ROR)                                    (ROR < 1: effects exaggerated)
    sd    = sqrt(se^2 + phi^2),   se = (log(upper) - log(lower)) / (2 * 1.959964)
    kappa = kappa

``se`` is the normal approximation to the uncertainty of the average bias read from the published
95% credible interval (the papers report the interval, not a standard error). The numbers are on
the **log odds ratio scale** and are used only for analyses on that scale (measures OR and Peto
OR); for any other measure (RR, RD, MD, SMD, ...) they are refused: no published conversion of a
ratio of odds ratios to those scales is used. Give a :class:`BiasPrior` on the analysis scale
instead (e.g. elicited), or elicit per-trial biases (:func:`adjust_for_elicited_bias`).

Tables (every number as printed in the cited table; the tests check them):

* :data:`ROBES_2018` -- Savović et al. (2018), ROBES study, Table 5 (multivariable analyses,
  model B): 2,443 trials in 228 Cochrane meta-analyses, RoB 1 judgements "high or unclear" vs
  "low" for sequence generation, allocation concealment, blinding and incomplete outcome data;
  all outcomes, mortality, other objective, subjective outcomes.
* :data:`BRANDO_2012` -- Savović et al. (2012), BRANDO (combined data of seven meta-epidemiological
  studies, 1,973 trials in 234 meta-analyses), multivariable estimates for "inadequate or unclear"
  vs "adequate" sequence generation and allocation concealment, as tabulated by Page et al.
  (2016), Table 3.

**Elicited biases** (Turner et al. 2009): each trial's additive bias ``delta_i ~ N(m_i, s_i^2)``,
elicited on the analysis scale (signed: ``y_i = theta_i + delta_i + error``), enters as
``y_i - m_i`` with variance ``v_i + s_i^2`` (:func:`adjust_for_elicited_bias`), for any model.

References:

* Savović J, Turner RM, Mawdsley D, Jones HE, Beynon R, Higgins JPT, Sterne JAC (2018). Association
  between risk-of-bias assessments and results of randomized trials in Cochrane reviews: the ROBES
  meta-epidemiologic study. Am J Epidemiol 187(5):1113-1122. doi:10.1093/aje/kwx344
* Savović J, Jones HE, Altman DG, et al. (2012). Influence of reported study design characteristics
  on intervention effect estimates from randomized, controlled trials. Ann Intern Med
  157(6):429-438. doi:10.7326/0003-4819-157-6-201209180-00537
* Page MJ, Higgins JPT, Clayton G, Sterne JAC, Hróbjartsson A, Savović J (2016). Empirical evidence
  of study design biases in randomized trials: systematic review of meta-epidemiological studies.
  PLoS One 11(7):e0159267. doi:10.1371/journal.pone.0159267
* Welton NJ, Ades AE, Carlin JB, Altman DG, Sterne JAC (2009). Models for potentially biased
  evidence in meta-analysis using empirically based priors. J R Stat Soc A 172(1):119-136.
  doi:10.1111/j.1467-985X.2008.00548.x
* Turner RM, Spiegelhalter DJ, Smith GCS, Thompson SG (2009). Bias modelling in evidence synthesis.
  J R Stat Soc A 172(1):21-47. doi:10.1111/j.1467-985X.2008.00547.x
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from ketabayes.errors import PriorError

__all__ = ["BiasPrior", "ROBES_2018", "BRANDO_2012", "SOURCES", "meta_epidemiological_prior", "bias_prior_table",
           "adjust_for_elicited_bias", "LOG_OR_MEASURES"]

#: measures whose analysis scale is the log odds ratio (the scale of the meta-epidemiological RORs)
LOG_OR_MEASURES = ("OR", "PETO_OR")

_Z975 = 1.959963984540054


@dataclass(frozen=True)
class BiasPrior:
    """Prior of the additive bias of trials at high risk of bias (see the module docstring).

    Parameters
    ----------
    mean : float
        Expected exaggeration of the benefit in trials at high risk (analysis scale; > 0: towards
        benefit, whichever direction benefit is).
    sd : float
        SD of the mean bias shared by the meta-analysis' trials at high risk (>= 0).
    kappa : float, default 0
        SD of the bias between trials (>= 0), added to the variance of each trial at high risk.
    scale : str or None
        The scale of the numbers: ``"log OR"`` (usable only with OR / Peto OR analyses) or None
        (the analysis scale, e.g. elicited for this analysis).
    levels : tuple of str
        The judgements the estimate contrasts with "low" (e.g. ``("high", "unclear")``): the
        default ``rob_high`` of the bias-adjusted model.
    label, source, doi : str
        What the prior is and where its numbers come from.
    """

    mean: float
    sd: float
    kappa: float = 0.0
    scale: str | None = None
    levels: tuple = ("high",)
    label: str = "elicited"
    source: str = ""
    doi: str = ""

    def __post_init__(self):
        for name in ("mean", "sd", "kappa"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating)) or not math.isfinite(float(value)):
                raise PriorError(f"BiasPrior {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.sd < 0 or self.kappa < 0:
            raise PriorError(f"BiasPrior sd and kappa must be >= 0, got sd={self.sd}, kappa={self.kappa}")
        if self.scale not in (None, "log OR"):
            raise PriorError(f"BiasPrior scale must be 'log OR' or None (the analysis scale), got {self.scale!r}")
        object.__setattr__(self, "levels", tuple(str(v) for v in self.levels))

    def check_measure(self, measure: str | None) -> None:
        """Refuse a log-OR prior for an analysis on another scale (no conversion is invented)."""
        if self.scale == "log OR" and (measure or "").upper() not in LOG_OR_MEASURES:
            raise PriorError(
                f"the bias prior {self.label!r} is a ratio of odds ratios (log OR scale); the analysis is on the "
                f"{measure or 'unknown'} scale, for which no published conversion is used. Give a BiasPrior on "
                "the analysis scale (e.g. elicited: BiasPrior(mean, sd, kappa)) or per-trial elicited biases "
                "(adjust_for_elicited_bias)")

    def shift(self, benefit: str) -> float:
        """The mean shift of a trial at high risk on the analysis scale: ``-mean`` if lower is a benefit."""
        return -self.mean if benefit == "lower" else self.mean

    def to_dict(self) -> dict:
        return {**asdict(self), "levels": list(self.levels)}

    @classmethod
    def from_dict(cls, d: dict) -> BiasPrior:
        return cls(**{**d, "levels": tuple(d.get("levels", ("high",)))})

    def __str__(self) -> str:
        scale = f" on the {self.scale} scale" if self.scale else ""
        return (f"bias towards benefit ~ N({self.mean:.4g}, {self.sd:.4g}^2) shared, + N(0, {self.kappa:.4g}^2) per "
                f"trial{scale} ({self.label})")


# (ROR, CrI low, CrI high, kappa, kappa low, kappa high, phi, phi low, phi high, meta-analyses, trials)
#: Savović et al. (2018) ROBES, Table 5 (multivariable analyses, model B): high/unclear vs low risk of bias
ROBES_2018 = MappingProxyType({
    ("sequence_generation", "all"): (0.95, 0.88, 1.03, 0.08, 0.02, 0.18, 0.11, 0.03, 0.22, 189, 2158),
    ("sequence_generation", "mortality"): (0.92, 0.75, 1.18, 0.14, 0.02, 0.36, 0.14, 0.03, 0.42, 34, 363),
    ("sequence_generation", "objective"): (1.06, 0.90, 1.28, 0.14, 0.03, 0.33, 0.20, 0.04, 0.44, 47, 523),
    ("sequence_generation", "subjective"): (0.94, 0.84, 1.04, 0.08, 0.02, 0.18, 0.11, 0.02, 0.24, 108, 1272),
    ("allocation_concealment", "all"): (0.96, 0.88, 1.03, 0.06, 0.01, 0.15, 0.07, 0.02, 0.16, 188, 2121),
    ("allocation_concealment", "mortality"): (0.92, 0.74, 1.13, 0.11, 0.03, 0.29, 0.15, 0.03, 0.42, 35, 358),
    ("allocation_concealment", "objective"): (0.94, 0.81, 1.08, 0.07, 0.01, 0.18, 0.09, 0.02, 0.25, 49, 524),
    ("allocation_concealment", "subjective"): (0.95, 0.86, 1.07, 0.10, 0.02, 0.23, 0.08, 0.02, 0.20, 104, 1239),
    ("blinding", "all"): (0.88, 0.81, 0.94, 0.10, 0.02, 0.22, 0.12, 0.03, 0.23, 144, 1678),
    ("blinding", "mortality"): (0.87, 0.73, 1.03, 0.10, 0.02, 0.26, 0.10, 0.02, 0.28, 31, 327),
    ("blinding", "objective"): (0.95, 0.79, 1.12, 0.09, 0.02, 0.24, 0.10, 0.02, 0.34, 32, 334),
    ("blinding", "subjective"): (0.84, 0.75, 0.95, 0.17, 0.04, 0.33, 0.19, 0.05, 0.35, 81, 1017),
    ("incomplete_outcome_data", "all"): (1.01, 0.94, 1.09, 0.07, 0.01, 0.16, 0.07, 0.02, 0.16, 167, 1956),
    ("incomplete_outcome_data", "mortality"): (0.99, 0.82, 1.18, 0.11, 0.02, 0.31, 0.10, 0.02, 0.30, 29, 303),
})

# (ROR, CI low, CI high, kappa, kappa low, kappa high, phi, phi low, phi high)
#: Savović et al. (2012) BRANDO, multivariable estimates, as tabulated by Page et al. (2016) Table 3:
#: inadequate/unclear vs adequate
BRANDO_2012 = MappingProxyType({
    ("sequence_generation", "all"): (0.90, 0.82, 0.99, 0.06, 0.01, 0.20, 0.05, 0.01, 0.15),
    ("sequence_generation", "mortality"): (0.86, 0.69, 1.06, 0.08, 0.01, 0.31, 0.06, 0.01, 0.28),
    ("sequence_generation", "objective"): (1.00, 0.84, 1.20, 0.07, 0.01, 0.30, 0.07, 0.01, 0.27),
    ("sequence_generation", "subjective"): (0.88, 0.76, 1.00, 0.05, 0.01, 0.21, 0.06, 0.01, 0.24),
    ("allocation_concealment", "all"): (0.89, 0.81, 0.99, 0.06, 0.01, 0.19, 0.05, 0.01, 0.18),
    ("allocation_concealment", "mortality"): (1.03, 0.82, 1.31, 0.07, 0.01, 0.30, 0.07, 0.01, 0.33),
    ("allocation_concealment", "objective"): (0.92, 0.76, 1.12, 0.06, 0.01, 0.24, 0.06, 0.01, 0.29),
    ("allocation_concealment", "subjective"): (0.82, 0.70, 0.94, 0.08, 0.01, 0.27, 0.07, 0.01, 0.30),
})

#: the tables, their contrasts and citations
SOURCES = MappingProxyType({
    "ROBES 2018": {"table": ROBES_2018, "levels": ("high", "unclear"),
                   "contrast": "high or unclear vs low risk of bias (RoB 1 judgements in Cochrane reviews)",
                   "cite": "Savović et al. 2018, Am J Epidemiol 187:1113-1122, Table 5 (multivariable, model B)",
                   "doi": "10.1093/aje/kwx344"},
    "BRANDO 2012": {"table": BRANDO_2012, "levels": ("high", "unclear"),
                    "contrast": "inadequate or unclear vs adequate (reported trial characteristics)",
                    "cite": "Savović et al. 2012, Ann Intern Med 157:429-438 (multivariable), as tabulated in "
                            "Page et al. 2016, PLoS One 11:e0159267, Table 3",
                    "doi": "10.7326/0003-4819-157-6-201209180-00537; 10.1371/journal.pone.0159267"},
})

_OUTCOMES = ("all", "mortality", "objective", "subjective")


def _source(source: str) -> dict:
    key = {"robes": "ROBES 2018", "robes 2018": "ROBES 2018", "robes2018": "ROBES 2018", "brando": "BRANDO 2012",
           "brando 2012": "BRANDO 2012", "brando2012": "BRANDO 2012", "savovic2018": "ROBES 2018",
           "savovic2012": "BRANDO 2012"}.get(str(source).strip().lower())
    if key is None:
        raise PriorError(f"unknown source {source!r}; available: {', '.join(SOURCES)}")
    return {"name": key, **SOURCES[key]}


def meta_epidemiological_prior(domain: str, outcome: str = "all", *, source: str = "ROBES 2018") -> BiasPrior:
    """The empirically based prior of the bias for one risk-of-bias domain (log odds ratio scale).

    Parameters
    ----------
    domain : str
        ``"sequence_generation"``, ``"allocation_concealment"``, ``"blinding"`` or
        ``"incomplete_outcome_data"`` (ROBES 2018; BRANDO 2012 has the first two). A ``rob_`` prefix
        (the columns of :func:`~ketabayes.data.revman.read_revman`) is accepted.
    outcome : {"all", "mortality", "objective", "subjective"}
        Outcome type of the analysis ("objective": other objective or semi-objective outcomes).
    source : {"ROBES 2018", "BRANDO 2012"}

    Returns
    -------
    BiasPrior
        ``mean = -log(ROR)``, ``sd = sqrt(se^2 + phi^2)`` with ``se`` from the 95% interval,
        ``kappa`` as published; ``scale="log OR"``; ``levels=("high", "unclear")``.

    Raises
    ------
    PriorError
        For a domain x outcome the source does not report (listing what it reports).

    Examples
    --------
    >>> p = meta_epidemiological_prior("blinding", "subjective")
    >>> round(p.mean, 4), round(p.sd, 4), p.kappa
    (0.1744, 0.1993, 0.17)
    >>> p.levels
    ('high', 'unclear')
    """
    src = _source(source)
    dom = str(domain).strip().lower().removeprefix("rob_")
    if dom == "blinding_participants_personnel":
        dom = "blinding"
    key = (dom, str(outcome).strip().lower())
    if key not in src["table"]:
        have = ", ".join(f"{d}/{o}" for d, o in src["table"])
        raise PriorError(f"{src['name']} reports no estimate for domain {domain!r}, outcome {outcome!r}; it reports "
                         f"{have}")
    ror, lo, hi, kappa, *_, = src["table"][key]
    phi = src["table"][key][6]
    se = (math.log(hi) - math.log(lo)) / (2 * _Z975)
    return BiasPrior(mean=-math.log(ror), sd=math.sqrt(se**2 + phi**2), kappa=kappa, scale="log OR",
                     levels=src["levels"], label=f"{src['name']}: {key[0]}, {key[1]} outcomes",
                     source=f"{src['cite']}; ROR {ror:.2f} (95% CrI {lo:.2f} to {hi:.2f}), kappa {kappa:.2f}, "
                            f"phi {phi:.2f}; {src['contrast']}",
                     doi=src["doi"])


def bias_prior_table(source: str = "ROBES 2018") -> pd.DataFrame:
    """The published numbers of a source and the priors derived from them, one row per domain x outcome.

    Columns ``source, domain, outcome, ror, ror_low, ror_high, kappa, phi`` (as published) and
    ``mean, sd, kappa`` of the :class:`BiasPrior` (``prior_mean``, ``prior_sd``).
    """
    src = _source(source)
    rows = []
    for (dom, out), vals in src["table"].items():
        p = meta_epidemiological_prior(dom, out, source=src["name"])
        rows.append({"source": src["name"], "domain": dom, "outcome": out, "ror": vals[0], "ror_low": vals[1],
                     "ror_high": vals[2], "kappa": vals[3], "phi": vals[6], "prior_mean": p.mean, "prior_sd": p.sd})
    return pd.DataFrame(rows)


def adjust_for_elicited_bias(data, bias_mean: str = "bias_mean", bias_sd: str = "bias_sd", *, yi: str = "yi",
                             vi: str = "vi", sei: str = "sei", study: str = "study") -> pd.DataFrame:
    """Effect sizes adjusted for per-trial elicited additive biases (Turner et al. 2009).

    Each trial's bias ``delta_i ~ N(m_i, s_i^2)`` (signed, on the analysis scale: the trial estimates
    ``theta_i + delta_i``) gives ``yi - m_i`` with sampling variance ``vi + s_i^2``: the trial moves
    by the expected bias and is down-weighted by the uncertainty about it. Trials with ``m = s = 0``
    are unchanged.

    Parameters
    ----------
    data : pandas.DataFrame
        Effect sizes ``yi`` with ``vi`` (or ``sei``) and the two bias columns; not modified.
    bias_mean, bias_sd : str
        Columns of the elicited mean and SD of each trial's additive bias.

    Returns
    -------
    pandas.DataFrame
        A copy with ``yi``, ``vi`` (and ``sei``) adjusted, the originals in ``yi_unadjusted`` and
        ``vi_unadjusted``, and ``attrs["bias_adjustment"]`` naming the method.

    Raises
    ------
    DataError
        Naming the study and column of a missing, non-numeric or infinite value or a negative SD.

    References
    ----------
    Turner RM, Spiegelhalter DJ, Smith GCS, Thompson SG (2009). Bias modelling in evidence synthesis.
    J R Stat Soc A 172(1):21-47. doi:10.1111/j.1467-985X.2008.00547.x

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"study": ["A", "B"], "yi": [-0.5, -0.2], "vi": [0.04, 0.09],
    ...                    "bias_mean": [-0.2, 0.0], "bias_sd": [0.1, 0.0]})
    >>> adjust_for_elicited_bias(df)[["study", "yi", "vi"]].round(4)
      study   yi    vi
    0     A -0.3  0.05
    1     B -0.2  0.09
    """
    from ketabayes.data.validation import as_dataframe, numeric_column, study_labels, vi_from_sei
    from ketabayes.errors import DataError

    frame = as_dataframe(data)
    labels = study_labels(frame, study)
    y = numeric_column(frame, yi, labels, what="a finite effect size yi")
    if vi in frame.columns:
        v = numeric_column(frame, vi, labels, what="a finite sampling variance vi > 0")
    else:
        v = vi_from_sei(frame, sei, labels)
    m = numeric_column(frame, bias_mean, labels, what="the elicited mean of the trial's additive bias")
    s = numeric_column(frame, bias_sd, labels, what="the elicited SD of the trial's additive bias (>= 0)")
    neg = np.flatnonzero(s < 0)
    if neg.size:
        raise DataError(f"the elicited bias SD is {s[neg[0]]:g}; expected a number >= 0", study=labels[neg[0]],
                        column=bias_sd)
    out = frame.copy(deep=True)
    out["yi_unadjusted"], out["vi_unadjusted"] = y, v
    out[yi] = y - m
    out[vi] = v + s**2
    if sei in out.columns:
        out[sei] = np.sqrt(v + s**2)
    out.attrs["bias_adjustment"] = {"method": "elicited additive biases (Turner et al. 2009)", "bias_mean": bias_mean,
                                    "bias_sd": bias_sd}
    return out
