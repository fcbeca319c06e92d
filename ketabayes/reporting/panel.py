"""The same analysis under the sceptical, neutral and enthusiastic priors.

:func:`prior_panel_analysis` fits one data set under each prior of
:func:`~ketabayes.model.priors.prior_panel` and returns one tidy decision
table; :func:`reanalyse_published` does it for a published pooled estimate
and CI (how the ``ferraro2025_published`` rows are re-analysed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ketabayes.data.published import from_published
from ketabayes.decision import Thresholds, VerdictRule
from ketabayes.model.priors import PriorPanel, prior_panel

__all__ = ["PanelAnalysis", "prior_panel_analysis", "reanalyse_published"]


@dataclass
class PanelAnalysis:
    """Decision tables of one analysis under each prior of a prior panel.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per prior x target: ``prior, prior_mu`` and the columns of
        :meth:`~ketabayes.result.base.ResultBase.decision_table` (``target, mean, sd, median,
        ci_low, ci_high, p_benefit, ...``), then ``verdict``.
    results : dict[str, MetaResult]
        The fitted results, by prior name.
    panel : PriorPanel
    thresholds : Thresholds
    measure : str
    """

    table: pd.DataFrame
    results: dict
    panel: PriorPanel
    thresholds: Thresholds
    measure: str
    notes: list = field(default_factory=list)

    def definitions(self) -> str:
        """The prior definitions, to be printed with every table that uses them."""
        return self.panel.describe()


def prior_panel_analysis(data: pd.DataFrame, mcid: float, benefit: str = "lower", harm: float | None = None, *,
                         measure: str | None = None, prior_tau=None, fixed: bool = False, method: str = "exact",
                         seed: int = 20251, targets=("mean", "predictive"), neutral_sd_factor: float = 5.0,
                         verdict_cutoff: float = 0.8, **fit_kwargs) -> PanelAnalysis:
    """Fit ``data`` under each prior of the MCID-based prior panel.

    Parameters
    ----------
    data : pandas.DataFrame
        Effect sizes (``yi``, ``vi`` or ``sei``, ``study``).
    mcid, benefit, harm
        Decision thresholds (MCID as a ratio for OR/RR).
    measure : str, optional
    prior_tau : Prior or str, optional
        Prior for tau (random effects only).
    fixed : bool
        Fixed-effect model (also used for a single published pooled estimate).
    method : {"exact", "nuts"}
    seed : int
    targets : sequence of str
    neutral_sd_factor : float
        Width of the neutral prior in MCIDs.
    verdict_cutoff : float
        Probability cut-off of the conclusion categories (:class:`~ketabayes.decision.VerdictRule`).

    Returns
    -------
    PanelAnalysis
    """
    from ketabayes.model.random_effects import RandomEffectsModel

    measure = (measure or data.attrs.get("measure") or "GEN").upper()
    th = Thresholds.for_measure(mcid, measure, benefit, harm)
    panel = prior_panel(th.delta_benefit, benefit, neutral_sd_factor=neutral_sd_factor)
    rows, results = [], {}
    for name, prior in panel:
        model = RandomEffectsModel(data, prior_mu=prior, prior_tau=prior_tau, fixed=fixed, measure=measure)
        res = model.fit(method, mcid=mcid, benefit=benefit, harm=harm, seed=seed, **fit_kwargs)
        results[name] = res
        table = res.decision_table(targets=targets)
        table.insert(0, "prior_mu", str(prior))
        table.insert(0, "prior", name)
        rows.append(table)
    out = pd.concat(rows, ignore_index=True)
    rule = VerdictRule(verdict_cutoff, verdict_cutoff, verdict_cutoff)
    out["verdict"] = [rule(r.p_benefit, r.p_trivial, r.p_harm) for r in out.itertuples()]
    out.attrs.update(thresholds=th.to_dict(), thresholds_text=th.describe(measure), measure=measure,
                     prior_definitions=panel.definitions, verdict_cutoff=verdict_cutoff)
    return PanelAnalysis(table=out, results=results, panel=panel, thresholds=th, measure=measure)


def reanalyse_published(estimate: float, ci_low: float, ci_high: float, measure: str, mcid: float,
                        benefit: str = "lower", harm: float | None = None, *, level: float = 0.95,
                        label: str = "published pooled estimate", df: float | None = None,
                        **kwargs) -> PanelAnalysis:
    """Bayesian re-analysis of a published pooled estimate under the prior panel.

    The published estimate and CI give a normal likelihood for the average
    effect ``mu`` (:func:`~ketabayes.data.published.from_published`); with a
    normal prior the posterior is normal and exact. A pooled estimate says
    nothing about between-study spread by itself, so only the average effect
    (target ``"mean"``) is reported: the effect in a new trial needs the
    trial-level data or an external estimate of tau. ``df``: the degrees of freedom of a
    t-based published interval (e.g. HKSJ with k trials: ``df = k - 1``), passed to
    :func:`~ketabayes.data.published.from_published`.

    Examples
    --------
    >>> from ketabayes.reporting.panel import reanalyse_published
    >>> pa = reanalyse_published(-15.79, -32.09, 0.51, "MD", mcid=10)
    >>> list(pa.table["prior"])
    ['sceptical', 'neutral', 'enthusiastic']
    """
    data = from_published(estimate, ci_low, ci_high, measure, level=level, label=label, df=df)
    return prior_panel_analysis(data, mcid, benefit, harm, measure=measure, fixed=True, targets=("mean",),
                                **kwargs)
