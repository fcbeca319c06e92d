"""Empirical (data-based) prior distributions for the between-study variance tau^2.

Pure data tables with their provenance; :mod:`ketabayes.model.priors` wraps
them in prior objects. Two published sets of predictive distributions, both
derived from meta-analyses in the Cochrane Database of Systematic Reviews:

Turner et al. (2015), binary outcomes, log odds ratio scale
    ``log(tau^2) ~ Normal(mean, sd^2)`` (a log-normal prior for tau^2),
    by outcome type (16) and intervention comparison type (5).
    Table: :data:`TURNER_2015_LOGNORMAL`, metadata :data:`TURNER_2015_INFO`.

Rhodes et al. (2015), continuous outcomes, standardized mean difference scale
    ``log(tau^2) ~ location + scale * t_5`` (a log-t prior for tau^2, 5 d.f.),
    by outcome type (8), intervention comparison type (3) and medical area (3).
    Table: :data:`RHODES_2015_LOG_T`, metadata :data:`RHODES_2015_INFO`.

Both distributions are for tau^2. For tau = sqrt(tau^2) halve the location
and the scale (SD): ``log(tau) = log(tau^2) / 2``.

Provenance
----------
The numbers were transcribed from the R package bayesmeta (C. Roever;
``R/bayesmeta.R``, arrays ``TurnerEtAlParameters`` and ``RhodesEtAlParameters``,
whose comments cite Turner et al. Table IV and Rhodes et al. Tables 3, A.3.1,
A.3.2), and every entry was compared with a second, independent
transcription of the same tables in the R package rnmamod (L. M. Spineli;
``R/table.tau2.empirical.prior_function.R``). The Turner table agrees
entry for entry. For the Rhodes table see :data:`RHODES_2015_SUSPECT_ENTRIES`:
three entries break the additive structure of the fitted model (one of them
also differs in sign between the two packages). They are stored as bayesmeta
has them; the original paper was not available to settle them.

All mappings are read-only (:class:`types.MappingProxyType`).
"""

from __future__ import annotations

from types import MappingProxyType

from ketabayes.errors import PriorError

__all__ = [
    "INTERVENTION_TYPES",
    "TURNER_2015_INFO",
    "TURNER_2015_OUTCOME_TYPES",
    "TURNER_2015_COMPARISON_TYPES",
    "TURNER_2015_LOGNORMAL",
    "TURNER_2015_MARGINAL",
    "RHODES_2015_INFO",
    "RHODES_2015_DF",
    "RHODES_2015_OUTCOME_TYPES",
    "RHODES_2015_COMPARISON_TYPES",
    "RHODES_2015_MEDICAL_AREAS",
    "RHODES_2015_LOG_T",
    "RHODES_2015_MARGINAL",
    "RHODES_2015_SUSPECT_ENTRIES",
    "turner_comparison_type",
    "rhodes_comparison_type",
]

#: The three kinds of intervention a comparison is built from (both papers).
INTERVENTION_TYPES: tuple[str, ...] = ("pharmacological", "non-pharmacological", "placebo / control")

# ---------------------------------------------------------------------------
# Turner et al. (2015): log-normal priors for tau^2, log odds ratio scale

TURNER_2015_INFO = MappingProxyType(
    {
        "citation": (
            "Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT (2015). Predictive "
            "distributions for between-study heterogeneity and simple methods for their "
            "application in Bayesian meta-analysis. Statistics in Medicine 34(6):984-998."
        ),
        "doi": "10.1002/sim.6381",
        "data": "14,886 binary-outcome meta-analyses in the Cochrane Database of Systematic Reviews",
        "scale": "log odds ratio",
        "parameter": "tau^2 (between-study variance)",
        "distribution": "lognormal",
        "parametrisation": (
            "log(tau^2) ~ Normal(mean, sd^2); values are (mean, sd), sd being the standard "
            "deviation (not the variance) of log(tau^2); the paper writes LN(mean, sd^2)"
        ),
        "source_table": (
            "Table IV of the paper (16 outcome types x 5 comparison types); marginal "
            "('general') setting LN(-2.56, 1.74^2) from p. 993"
        ),
        "transcribed_from": (
            "bayesmeta R package, R/bayesmeta.R (TurnerEtAlParameters); all 80 entries and the "
            "marginal setting agree with rnmamod R/table.tau2.empirical.prior_function.R"
        ),
    }
)

TURNER_2015_OUTCOME_TYPES: tuple[str, ...] = (
    "all-cause mortality",
    "obstetric outcomes",
    "cause-specific mortality / major morbidity event / composite (mortality or morbidity)",
    "resource use / hospital stay / process",
    "surgical / device related success / failure",
    "withdrawals / drop-outs",
    "internal / structure-related outcomes",
    "general physical health indicators",
    "adverse events",
    "infection / onset of new disease",
    "signs / symptoms reflecting continuation / end of condition",
    "pain",
    "quality of life / functioning (dichotomized)",
    "mental health indicators",
    "biological markers (dichotomized)",
    "subjective outcomes (various)",
)

TURNER_2015_COMPARISON_TYPES: tuple[str, ...] = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological vs. placebo / control",
    "non-pharmacological vs. pharmacological",
    "non-pharmacological vs. non-pharmacological",
)

# Columns in the order of TURNER_2015_COMPARISON_TYPES; rows in the order of
# TURNER_2015_OUTCOME_TYPES.
_TURNER_MEAN = (
    (-3.95, -4.18, -4.17, -2.92, -3.50),
    (-3.52, -3.75, -3.74, -2.49, -3.08),
    (-3.71, -3.95, -3.93, -2.68, -3.27),
    (-2.34, -2.58, -2.56, -1.31, -1.90),
    (-2.14, -2.37, -2.36, -1.11, -1.69),
    (-2.99, -3.23, -3.21, -1.96, -2.55),
    (-2.71, -2.94, -2.93, -1.67, -2.26),
    (-2.29, -2.53, -2.51, -1.26, -1.85),
    (-1.87, -2.10, -2.10, -0.84, -1.43),
    (-2.49, -2.73, -2.71, -1.46, -2.05),
    (-2.06, -2.29, -2.28, -1.03, -1.61),
    (-1.83, -2.06, -2.05, -0.80, -1.38),
    (-2.54, -2.78, -2.77, -1.51, -2.10),
    (-2.12, -2.35, -2.34, -1.09, -1.67),
    (-1.77, -2.00, -1.99, -0.74, -1.33),
    (-2.70, -2.93, -2.92, -1.67, -2.26),
)
_TURNER_SD = (
    (1.34, 1.41, 1.55, 1.02, 1.26),
    (1.74, 1.79, 1.91, 1.50, 1.68),
    (1.74, 1.79, 1.91, 1.51, 1.68),
    (1.74, 1.79, 1.91, 1.50, 1.68),
    (1.74, 1.79, 1.91, 1.50, 1.68),
    (1.74, 1.79, 1.91, 1.51, 1.68),
    (1.74, 1.79, 1.92, 1.51, 1.68),
    (1.53, 1.58, 1.72, 1.25, 1.46),
    (1.52, 1.58, 1.71, 1.24, 1.45),
    (1.52, 1.58, 1.71, 1.24, 1.45),
    (1.51, 1.58, 1.71, 1.24, 1.45),
    (1.52, 1.58, 1.71, 1.25, 1.45),
    (1.54, 1.60, 1.73, 1.27, 1.47),
    (1.53, 1.60, 1.72, 1.27, 1.47),
    (1.52, 1.58, 1.71, 1.24, 1.45),
    (1.52, 1.58, 1.71, 1.25, 1.45),
)

#: (outcome type, comparison type) -> (mean, sd) of log(tau^2), log-OR scale.
TURNER_2015_LOGNORMAL = MappingProxyType(
    {
        (outcome, comparison): (_TURNER_MEAN[i][j], _TURNER_SD[i][j])
        for i, outcome in enumerate(TURNER_2015_OUTCOME_TYPES)
        for j, comparison in enumerate(TURNER_2015_COMPARISON_TYPES)
    }
)

#: (mean, sd) of log(tau^2) in the general setting (no outcome / comparison type).
TURNER_2015_MARGINAL: tuple[float, float] = (-2.56, 1.74)

# ---------------------------------------------------------------------------
# Rhodes et al. (2015): log-t(5) priors for tau^2, standardized mean difference scale

#: Degrees of freedom of the t distribution for log(tau^2).
RHODES_2015_DF = 5

RHODES_2015_INFO = MappingProxyType(
    {
        "citation": (
            "Rhodes KM, Turner RM, Higgins JPT (2015). Predictive distributions were "
            "developed for the extent of heterogeneity in meta-analyses of continuous "
            "outcome data. Journal of Clinical Epidemiology 68(1):52-60."
        ),
        "doi": "10.1016/j.jclinepi.2014.08.012",
        "data": "6,492 continuous-outcome meta-analyses in the Cochrane Database of Systematic Reviews",
        "scale": "standardized mean difference",
        "parameter": "tau^2 (between-study variance)",
        "distribution": "log-t",
        "parametrisation": (
            "log(tau^2) = location + scale * T with T ~ Student t, 5 degrees of freedom; "
            "values are (location, scale); the paper writes t(location, scale^2, 5)"
        ),
        "source_table": (
            "Table 3 of the paper (medical area 'other'), Appendix Tables A.3.1 "
            "('respiratory') and A.3.2 ('cancer'); marginal ('general') setting "
            "t(-3.44, 2.59^2, 5) from the beginning of Section 3.3"
        ),
        "transcribed_from": (
            "bayesmeta R package, R/bayesmeta.R (RhodesEtAlParameters); compared with rnmamod "
            "R/table.tau2.empirical.prior_function.R: all entries agree except the one noted "
            "in RHODES_2015_SUSPECT_ENTRIES"
        ),
    }
)

RHODES_2015_OUTCOME_TYPES: tuple[str, ...] = (
    "obstetric outcome",
    "resource use and hospital stay / process",
    "internal and external structure-related outcome",
    "general physical health and adverse event and pain and quality of life / functioning",
    "signs / symptoms reflecting continuation / end of condition and infection / onset of new acute / chronic disease",
    "mental health outcome",
    "biological marker",
    "various subjectively measured outcomes",
)

RHODES_2015_COMPARISON_TYPES: tuple[str, ...] = (
    "pharmacological vs. placebo / control",
    "pharmacological vs. pharmacological",
    "non-pharmacological (any)",
)

RHODES_2015_MEDICAL_AREAS: tuple[str, ...] = ("other", "respiratory", "cancer")

# area -> rows (outcome types) x columns (comparison types)
_RHODES_LOCATION = {
    "other": (  # Table 3
        (-4.13, -4.40, -3.99),
        (-2.55, -2.83, -2.41),
        (-2.43, -2.70, -2.29),
        (-3.16, -3.44, -3.02),
        (-3.00, -3.27, -2.86),
        (-2.99, -3.27, -3.85),  # see RHODES_2015_SUSPECT_ENTRIES
        (-3.41, -3.68, -3.27),
        (-2.76, -3.03, -2.62),
    ),
    "respiratory": (  # Table A.3.1
        (-6.03, -6.31, -5.89),
        (-4.46, -4.73, -4.32),
        (-4.33, -4.61, -4.19),
        (-5.07, -5.34, -4.93),
        (-4.90, -5.18, -4.76),
        (-4.90, -5.17, -4.76),
        (-5.31, -5.59, -5.17),
        (-4.66, -4.94, -4.52),
    ),
    "cancer": (  # Table A.3.2
        (-1.57, -1.85, -1.43),
        (0.01, -0.27, 0.15),  # see RHODES_2015_SUSPECT_ENTRIES
        (-0.13, -0.14, 0.27),  # see RHODES_2015_SUSPECT_ENTRIES
        (-0.60, -0.88, -0.46),
        (-0.44, -0.71, -0.30),
        (-0.43, -0.71, -0.29),
        (-0.85, -1.13, -0.71),
        (-0.20, -0.48, -0.06),
    ),
}
_RHODES_SCALE = {
    "other": (
        (2.34, 2.31, 2.11),
        (2.73, 2.70, 2.57),
        (2.50, 2.46, 2.32),
        (2.50, 2.44, 2.27),
        (2.50, 2.47, 2.33),
        (2.16, 2.14, 1.93),
        (2.83, 2.78, 2.66),
        (2.58, 2.59, 2.41),
    ),
    "respiratory": (
        (2.36, 2.31, 2.21),
        (2.74, 2.70, 2.57),
        (2.51, 2.46, 2.33),
        (2.51, 2.45, 2.28),
        (2.50, 2.47, 2.33),
        (2.17, 2.14, 1.94),
        (2.83, 2.78, 2.66),
        (2.59, 2.59, 2.41),
    ),
    "cancer": (
        (2.45, 2.41, 2.24),
        (2.83, 2.79, 2.68),
        (2.61, 2.56, 2.45),
        (2.61, 2.55, 2.40),
        (2.60, 2.57, 2.46),
        (2.28, 2.25, 2.08),
        (2.93, 2.87, 2.78),
        (2.68, 2.68, 2.53),
    ),
}

#: (outcome type, comparison type, medical area) -> (location, scale) of log(tau^2), SMD scale.
RHODES_2015_LOG_T = MappingProxyType(
    {
        (outcome, comparison, area): (_RHODES_LOCATION[area][i][j], _RHODES_SCALE[area][i][j])
        for area in RHODES_2015_MEDICAL_AREAS
        for i, outcome in enumerate(RHODES_2015_OUTCOME_TYPES)
        for j, comparison in enumerate(RHODES_2015_COMPARISON_TYPES)
    }
)

#: (location, scale) of log(tau^2) in the general setting.
RHODES_2015_MARGINAL: tuple[float, float] = (-3.44, 2.59)

_MH, _INT, _RES = RHODES_2015_OUTCOME_TYPES[5], RHODES_2015_OUTCOME_TYPES[2], RHODES_2015_OUTCOME_TYPES[1]
_PP, _NP = RHODES_2015_COMPARISON_TYPES[0], RHODES_2015_COMPARISON_TYPES[2]

#: Locations that do not fit the additive structure of the fitted model.
#:
#: In Rhodes et al.'s model the location is additive on the log scale: every
#: other entry satisfies ``pharm. vs pharm. = pharm. vs placebo - 0.27/0.28``,
#: ``non-pharm. = pharm. vs placebo + 0.14``, ``respiratory = other - 1.90/1.91``
#: and ``cancer = other + 2.56`` to within 0.01 (rounding). The entries below
#: break that pattern; the value expected from it is given. They are kept as
#: transcribed (bayesmeta) because the paper itself could not be checked.
RHODES_2015_SUSPECT_ENTRIES = MappingProxyType(
    {
        (_MH, _NP, "other"): MappingProxyType(
            {
                "stored": -3.85,
                "additive_model": -2.85,
                "note": "bayesmeta and rnmamod both give -3.85; 1.00 off the pattern (likely a typo).",
            }
        ),
        (_INT, _PP, "cancer"): MappingProxyType(
            {
                "stored": -0.13,
                "additive_model": 0.13,
                "note": "bayesmeta and rnmamod both give -0.13; the sign breaks the pattern.",
            }
        ),
        (_RES, _PP, "cancer"): MappingProxyType(
            {
                "stored": 0.01,
                "additive_model": 0.01,
                "note": "bayesmeta gives +0.01 (fits the pattern), rnmamod gives -0.01.",
            }
        ),
    }
)
del _MH, _INT, _RES, _PP, _NP


# ---------------------------------------------------------------------------
# comparison-type lookup (as in bayesmeta's TurnerEtAlPrior / RhodesEtAlPrior)


def _check_interventions(intervention1: str, intervention2: str) -> frozenset[str]:
    for x in (intervention1, intervention2):
        if x not in INTERVENTION_TYPES:
            raise PriorError(f"intervention type must be one of {INTERVENTION_TYPES}; got {x!r}")
    if intervention1 == intervention2 == "placebo / control":
        raise PriorError("a comparison of placebo / control with placebo / control has no empirical prior")
    return frozenset((intervention1, intervention2))


def turner_comparison_type(intervention1: str, intervention2: str) -> str:
    """Turner et al. (2015) comparison type of two intervention types (order-free).

    Parameters
    ----------
    intervention1, intervention2 : {"pharmacological", "non-pharmacological", "placebo / control"}
        The two arms' intervention types.

    Returns
    -------
    str
        One of :data:`TURNER_2015_COMPARISON_TYPES`.

    Examples
    --------
    >>> turner_comparison_type("placebo / control", "non-pharmacological")
    'non-pharmacological vs. placebo / control'
    """
    pair = _check_interventions(intervention1, intervention2)
    if pair == {"pharmacological", "placebo / control"}:
        return TURNER_2015_COMPARISON_TYPES[0]
    if pair == {"pharmacological"}:
        return TURNER_2015_COMPARISON_TYPES[1]
    if pair == {"non-pharmacological", "placebo / control"}:
        return TURNER_2015_COMPARISON_TYPES[2]
    if pair == {"non-pharmacological", "pharmacological"}:
        return TURNER_2015_COMPARISON_TYPES[3]
    return TURNER_2015_COMPARISON_TYPES[4]  # non-pharmacological vs non-pharmacological


def rhodes_comparison_type(intervention1: str, intervention2: str) -> str:
    """Rhodes et al. (2015) comparison type of two intervention types (order-free).

    Any comparison involving a non-pharmacological intervention is
    ``"non-pharmacological (any)"``.

    Examples
    --------
    >>> rhodes_comparison_type("pharmacological", "placebo / control")
    'pharmacological vs. placebo / control'
    """
    pair = _check_interventions(intervention1, intervention2)
    if "non-pharmacological" in pair:
        return RHODES_2015_COMPARISON_TYPES[2]
    if pair == {"pharmacological"}:
        return RHODES_2015_COMPARISON_TYPES[1]
    return RHODES_2015_COMPARISON_TYPES[0]
