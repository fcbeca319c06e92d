"""How the verdict moves over time: P(benefit > MCID) and P(practically no effect) per time window."""

from __future__ import annotations

import numpy as np

from ketabayes.errors import KetabayesError
from ketabayes.reporting.plots import _new_axes

__all__ = ["plot_time_course", "time_course_table"]


def time_course_table(result, *, kind: str = "mean", mcid=None, benefit=None, harm=None):
    """Decision probabilities of every time window, in the windows' order.

    Parameters
    ----------
    result : MultivariateResult
        A fit of :meth:`~ketabayes.model.multivariate.MultivariateModel.from_time_points`.
    kind : {"mean", "predictive"}
    mcid, benefit, harm : optional
        Thresholds (default: those given at fit time).

    Returns
    -------
    pandas.DataFrame
        The decision table rows of ``<kind>|time=<t>``, with a ``time`` column.
    """
    if getattr(result, "factor", None) != "time":
        raise KetabayesError("plot_time_course needs a result of MultivariateModel.from_time_points "
                             "(targets 'mean|time=<window>')")
    if kind not in ("mean", "predictive"):
        raise KetabayesError(f"kind must be 'mean' or 'predictive', got {kind!r}")
    targets = [f"{kind}|time={t}" for t in result.coef_names]
    return result.decision_table(mcid=mcid, benefit=benefit, harm=harm, targets=targets)


def plot_time_course(result, *, kinds=("mean", "predictive"), mcid=None, benefit=None, harm=None, ax=None,
                     figsize=(6.5, 4.0), title: str | None = None):
    """P(benefit beyond the MCID) and P(practically no effect) at each time window.

    Parameters
    ----------
    result : MultivariateResult
        A fit of :meth:`~ketabayes.model.multivariate.MultivariateModel.from_time_points`.
    kinds : sequence of {"mean", "predictive"}
        The average effect (solid lines) and/or the effect in a new trial (dashed).
    mcid, benefit, harm : optional
        Thresholds (default: those given at fit time).
    ax : matplotlib.axes.Axes, optional
    figsize : tuple
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Created with :func:`ketabayes.reporting.plots.new_figure` (not registered with pyplot).

    Examples
    --------
    >>> import pandas as pd, ketabayes as kb
    >>> d = pd.DataFrame({"study": ["A", "A", "B", "B"], "time": ["short", "long"] * 2,
    ...                   "yi": [-1.0, -0.4, -1.4, -0.2], "vi": [0.2, 0.25, 0.3, 0.3]})  # SIMULATED
    >>> res = kb.MultivariateModel.from_time_points(d, rho_time=0.5, prior_tau="halfnormal(1)").fit(
    ...     mcid=0.5, seed=1, draws=10, chains=1)
    >>> fig = kb.plot_time_course(res)
    >>> [line.get_label() for line in fig.axes[0].get_lines()][:2]
    ['P(benefit > MCID), mean', 'P(practically no effect), mean']
    """
    fig, ax = _new_axes(ax, figsize)
    x = None
    for kind, style in zip(kinds, ("-", "--")):
        tab = time_course_table(result, kind=kind, mcid=mcid, benefit=benefit, harm=harm)
        x = np.arange(len(tab))
        ax.plot(x, tab["p_benefit"].to_numpy(float), style, marker="o", color="tab:green",
                label=f"P(benefit > MCID), {kind}")
        ax.plot(x, tab["p_trivial"].to_numpy(float), style, marker="s", color="tab:gray",
                label=f"P(practically no effect), {kind}")
    if x is None:
        raise KetabayesError("kinds must name at least one of 'mean', 'predictive'")
    ax.set_xticks(x, result.coef_names)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("time window")
    ax.set_ylabel("posterior probability")
    th = result._thresholds(mcid, benefit, harm)
    import textwrap

    ax.set_title(title or "Verdict over time\n" + textwrap.fill(th.describe(result.measure), 80), fontsize=9)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig
