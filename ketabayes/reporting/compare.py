"""Decision probabilities of several analyses of one question, side by side (e.g. unadjusted vs bias-adjusted).

:func:`compare_decisions` puts the decision tables of fitted results (any model: the one result contract) into
one tidy table with an ``analysis`` column and the verdict of a :class:`~ketabayes.decision.VerdictRule`.
"""

from __future__ import annotations

import pandas as pd

from ketabayes.decision import VerdictRule

__all__ = ["compare_decisions"]


def compare_decisions(results: dict, *, target: str = "mean", mcid: float | None = None, benefit: str | None = None,
                      harm: float | None = None, prob: float = 0.95, scale: str | None = None,
                      rule: VerdictRule | None = None) -> pd.DataFrame:
    """One row per analysis: the decision table of ``target`` and the verdict.

    Parameters
    ----------
    results : dict of str to result
        Fitted results by name, e.g. ``{"unadjusted": r1, "bias-adjusted": r2}`` (their thresholds must
        agree, or be given here).
    target : str
        The target of every result (default the average effect).
    mcid, benefit, harm, prob, scale
        As :meth:`~ketabayes.result.base.ResultBase.decision_table`.
    rule : VerdictRule, optional
        Default :class:`~ketabayes.decision.VerdictRule` (80%).

    Returns
    -------
    pandas.DataFrame
        ``analysis`` and the columns of the decision tables, then ``verdict``.

    Examples
    --------
    >>> import pandas as pd, ketabayes as kb
    >>> df = pd.DataFrame({"yi": [-0.5, -0.3, -0.6], "vi": [0.04, 0.05, 0.09],
    ...                    "bias_mean": [-0.2, 0.0, -0.2], "bias_sd": [0.1, 0.0, 0.1]})
    >>> fits = {name: kb.RandomEffectsModel(d, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
    ...             mcid=0.1, benefit="lower")
    ...         for name, d in {"unadjusted": df, "adjusted": kb.adjust_for_elicited_bias(df)}.items()}
    >>> kb.compare_decisions(fits)["analysis"].tolist()
    ['unadjusted', 'adjusted']
    """
    rule = rule or VerdictRule()
    rows = []
    for name, res in results.items():
        row = res.decision_table(mcid, benefit, harm, targets=[target], prob=prob, scale=scale)
        row.insert(0, "analysis", str(name))
        rows.append(row)
    out = pd.concat(rows, ignore_index=True)
    out["verdict"] = [rule(b, t, h) for b, t, h in zip(out["p_benefit"], out["p_trivial"], out["p_harm"])]
    return out
