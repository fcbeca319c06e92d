"""Empirical priors for ``tau``: Turner et al. (2015) for log odds ratios, Rhodes et al. (2015) for SMDs.

Built from the tables in :mod:`ketabayes.model._empirical_priors`; re-exported by
:mod:`ketabayes.model.priors` (``"turner(...)"`` and ``"rhodes(...)"`` in the string form).
"""

from __future__ import annotations

from ketabayes.errors import PriorError
from ketabayes.model.priors import LogNormalTau2, LogStudentTTau2

__all__ = ["turner_prior", "rhodes_prior"]


def _match(value: str, options, what: str) -> str:
    """Case-insensitive unique-prefix match of ``value`` among ``options``."""
    v = value.strip().lower()
    exact = [o for o in options if o.lower() == v]
    if exact:
        return exact[0]
    hits = [o for o in options if o.lower().startswith(v)] or [o for o in options if v in o.lower()]
    if len(hits) == 1:
        return hits[0]
    listing = "; ".join(repr(o) for o in options)
    raise PriorError(f"{what} {value!r} is {'ambiguous' if hits else 'unknown'}; choose one of: {listing}")


def turner_prior(outcome: str = "general", comparison: str = "pharmacological vs. placebo / control") -> LogNormalTau2:
    """Empirical log-normal prior for ``tau**2`` on the log-OR scale (Turner et al. 2015).

    ``log(tau**2) ~ N(mean, sd**2)`` predicted for a new meta-analysis of the given
    outcome type and intervention comparison type (Table IV of the paper), or the
    marginal ("general") prediction ``LN(-2.56, 1.74**2)``.

    Parameters
    ----------
    outcome : str
        ``"general"`` or an outcome type (unique prefix, case-insensitive), e.g.
        ``"all-cause mortality"``, ``"subjective"``; see
        ``ketabayes.model._empirical_priors.TURNER_2015_OUTCOME_TYPES``.
    comparison : str
        Comparison type (unique prefix), e.g. ``"pharmacological vs. placebo"``.

    Returns
    -------
    LogNormalTau2

    References
    ----------
    Turner RM, Jackson D, Wei Y, Thompson SG, Higgins JPT (2015). Predictive
    distributions for between-study heterogeneity and simple methods for their
    application in Bayesian meta-analysis. Stat Med 34(6):984-998.
    doi:10.1002/sim.6381

    Examples
    --------
    >>> from ketabayes.model.priors import turner_prior
    >>> turner_prior("general")
    LogNormalTau2(mu=-2.56, sigma=1.74, citation='Turner et al. 2015 (doi:10.1002/sim.6381), general')
    """
    from ketabayes.model import _empirical_priors as ep

    if outcome.strip().lower() == "general":
        mean, sd = ep.TURNER_2015_MARGINAL
        return LogNormalTau2(mu=mean, sigma=sd, citation="Turner et al. 2015 (doi:10.1002/sim.6381), general")
    o = _match(outcome, ep.TURNER_2015_OUTCOME_TYPES, "Turner outcome type")
    c = _match(comparison, ep.TURNER_2015_COMPARISON_TYPES, "Turner comparison type")
    mean, sd = ep.TURNER_2015_LOGNORMAL[(o, c)]
    return LogNormalTau2(mu=mean, sigma=sd, citation=f"Turner et al. 2015 (doi:10.1002/sim.6381), {o}; {c}")


def rhodes_prior(outcome: str = "general", comparison: str = "pharmacological vs. placebo / control",
                 area: str = "other") -> LogStudentTTau2:
    """Empirical log-t(5) prior for ``tau**2`` on the SMD scale (Rhodes et al. 2015).

    ``log(tau**2) = location + scale * T``, ``T ~ t_5``, by outcome type, comparison
    type and medical area (Table 3 and Appendix A.3 of the paper), or the marginal
    ("general") prediction ``t(-3.44, 2.59**2, 5)``.

    Notes
    -----
    Three table entries look like transcription errors in the secondary sources
    (see ``ketabayes.model._empirical_priors.RHODES_2015_SUSPECT_ENTRIES``); they are
    kept as published in bayesmeta and flagged in the citation text when used.

    References
    ----------
    Rhodes KM, Turner RM, Higgins JPT (2015). Predictive distributions were
    developed for the extent of heterogeneity in meta-analyses of continuous
    outcome data. J Clin Epidemiol 68(1):52-60. doi:10.1016/j.jclinepi.2014.08.012
    """
    from ketabayes.model import _empirical_priors as ep

    cite = "Rhodes et al. 2015 (doi:10.1016/j.jclinepi.2014.08.012)"
    if outcome.strip().lower() == "general":
        loc, scale = ep.RHODES_2015_MARGINAL
        return LogStudentTTau2(mu=loc, sigma=scale, nu=float(ep.RHODES_2015_DF), citation=f"{cite}, general")
    o = _match(outcome, ep.RHODES_2015_OUTCOME_TYPES, "Rhodes outcome type")
    c = _match(comparison, ep.RHODES_2015_COMPARISON_TYPES, "Rhodes comparison type")
    a = _match(area, ep.RHODES_2015_MEDICAL_AREAS, "Rhodes medical area")
    loc, scale = ep.RHODES_2015_LOG_T[(o, c, a)]
    flag = " [entry flagged as a possible transcription error]" if (o, c, a) in ep.RHODES_2015_SUSPECT_ENTRIES else ""
    return LogStudentTTau2(mu=loc, sigma=scale, nu=float(ep.RHODES_2015_DF), citation=f"{cite}, {o}; {c}; {a}{flag}")
