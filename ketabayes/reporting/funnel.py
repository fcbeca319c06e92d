"""Contour-enhanced funnel plot (Peters et al. 2008), as metafor's ``funnel(..., level=c(90, 95, 99),
shade=..., refline=0)``.

Each study is a point at its effect size ``yi`` (x) and standard error ``sqrt(vi)`` (y, inverted so
the most precise studies are at the top). Shaded regions mark where a single study's two-sided z-test
of "no effect" would have p-value in (0.10, 0.05), (0.05, 0.01) and below 0.01 (for the default
``contours``): a region of significance ``L`` is bounded by the lines ``y = +/- z_{(1+L)/2} * se``.
If missing studies fall in the non-significant (white) area, asymmetry is more plausibly caused by
publication bias; if they fall in the shaded areas, by other small-study effects. The pooled estimate
and its pseudo-confidence funnel ``estimate +/- z_{0.975} * se`` are drawn as lines; studies filled in
by trim-and-fill can be shown as open circles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from ketabayes.errors import KetabayesError
from ketabayes.inference.frequentist import _core
from ketabayes.inference.frequentist.uni import rma

__all__ = ["plot_funnel", "CONTOUR_COLORS"]

#: fill colours from the innermost (least significant) shaded band outwards
CONTOUR_COLORS = ("0.80", "0.65", "0.50")
_RATIO = {"OR": "log odds ratio", "RR": "log risk ratio", "HR": "log hazard ratio"}


def plot_funnel(yi: Any, vi: Any, *, method: str = "REML", contours: Sequence[float] = (0.90, 0.95, 0.99),
                measure: str = "GEN", filled: Any = None, study: Sequence[Any] | None = None, ax=None):
    """Draw a contour-enhanced funnel plot and return the figure.

    Parameters
    ----------
    yi, vi : array-like of float
        Effect sizes and sampling variances (e.g. from :func:`~ketabayes.data.effect_sizes.effect_sizes`
        or :class:`~ketabayes.inference.frequentist.TrimfillResult` ``.yi`` / ``.vi``).
    method : str, default "REML"
        Estimator of the pooled estimate drawn as the reference line (see :func:`rma`).
    contours : sequence of float, default (0.90, 0.95, 0.99)
        Significance levels of the contours, increasing, each in (0, 1).
    measure : str, default "GEN"
        Used for the axis label (ratios are on the log scale).
    filled : array-like of bool, optional
        Marks studies filled in by trim-and-fill (drawn as open circles).
    study : sequence, optional
        Study labels for error messages.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.

    Returns
    -------
    matplotlib.figure.Figure
        The shaded regions are ``PolyCollection`` artists labelled ``"0.10 > p > 0.05"``, ... and the
        studies ``PathCollection`` artists labelled ``"studies"`` (and ``"filled studies"``).

    References
    ----------
    .. [1] Peters JL, Sutton AJ, Jones DR, Abrams KR, Rushton L (2008). Contour-enhanced meta-analysis
       funnel plots help distinguish publication bias from other causes of asymmetry. J Clin Epidemiol
       61:991-996. doi:10.1016/j.jclinepi.2007.11.010

    Examples
    --------
    >>> from ketabayes.reporting.funnel import plot_funnel
    >>> fig = plot_funnel([-0.9, -1.6, -0.2, 0.0, 0.3], [0.33, 0.19, 0.05, 0.004, 0.1], measure="OR")
    >>> fig.axes[0].get_xlabel()
    'log odds ratio'
    """

    y, v, labs = _core.validate(yi, vi, study)
    levels = [float(c) for c in contours]
    if not levels or any(not 0 < c < 1 for c in levels) or any(b <= a for a, b in zip(levels, levels[1:])):
        raise KetabayesError(f"contours must be increasing levels in (0, 1), e.g. (0.90, 0.95, 0.99); got {contours!r}")
    if filled is None:
        fill = np.zeros(y.size, bool)
    else:
        fill = np.asarray(filled, dtype=bool).reshape(-1)
        if fill.size != y.size:
            raise KetabayesError(f"filled has {fill.size} entries for {y.size} studies")
    se = np.sqrt(v)
    fit = rma(y, v, method=method)  # with filled studies: the estimate after filling, as metafor's funnel
    if ax is None:
        from ketabayes.reporting.plots import new_figure

        fig, ax = new_figure((6, 5))
    else:
        fig = ax.figure
    top = 1.05 * se.max()
    grid = np.array([0.0, top])
    z = [float(stats.norm.isf((1 - c) / 2)) for c in levels]
    edges = [*z, None]
    colors = list(CONTOUR_COLORS) + ["0.4"] * max(0, len(levels) - len(CONTOUR_COLORS))
    xmax = max(float(np.abs(y).max()), abs(fit.estimate) + 2.5 * top, z[-1] * top) * 1.1
    for j, lo in enumerate(z):
        hi = edges[j + 1]
        p_hi, p_lo = 1 - levels[j], (1 - levels[j + 1]) if j + 1 < len(levels) else None
        label = f"{p_hi:.2f} > p > {p_lo:.2f}" if p_lo is not None else f"p < {p_hi:.2f}"
        for sgn in (1, -1):
            inner = sgn * lo * grid
            outer = sgn * (hi * grid if hi is not None else np.full(2, xmax))
            ax.fill_betweenx(grid, inner, outer, color=colors[j], linewidth=0, label=label if sgn == 1 else None,
                             zorder=0)
    crit = float(stats.norm.isf(0.025))
    ax.plot([fit.estimate - crit * top, fit.estimate, fit.estimate + crit * top], [top, 0, top], color="black",
            linestyle="--", linewidth=0.8, label="pseudo 95% CI")
    ax.axvline(fit.estimate, color="black", linewidth=0.8)
    ax.scatter(y[~fill], se[~fill], color="black", s=20, zorder=3, label="studies")
    if fill.any():
        ax.scatter(y[fill], se[fill], facecolors="white", edgecolors="black", s=20, zorder=3, label="filled studies")
    ax.set_ylim(top, 0)
    ax.set_xlim(-xmax, xmax)
    ax.set_ylabel("Standard error")
    ax.set_xlabel(_RATIO.get(str(measure).upper(), "Effect size"))
    ax.legend(loc="lower right", fontsize="small", frameon=False)
    return fig
