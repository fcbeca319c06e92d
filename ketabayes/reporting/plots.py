"""The plots statisticians expect from a Bayesian meta-analysis.

* :func:`plot_forest` -- observed study estimates with their confidence
  intervals next to the shrunken posterior study effects, then the average
  effect and the effect in a new study;
* :func:`plot_decision` -- the posterior density of a target with the regions
  of benefit, practically no effect and harm shaded and labelled with their
  probabilities;
* :func:`plot_benefit_curve` -- the probability of a benefit at least as large
  as each threshold.

Every function takes a :class:`~ketabayes.result.result.MetaResult`, draws on
``ax`` (a new figure when ``ax`` is ``None``) and returns the
:class:`matplotlib.figure.Figure`. Numbers come from
:meth:`MetaResult.marginal <ketabayes.result.result.MetaResult.marginal>`, so
they are exact when the exact engine ran and computed from the draws
otherwise. OR and RR are drawn on the ratio scale with a logarithmic axis.
(ArviZ's own plots, e.g. ``arviz.plot_forest(result.tree)``, work on
``result.tree`` too; these add the decision regions and the observed data.)
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from ketabayes import dims
from ketabayes.errors import KetabayesError
from ketabayes.result.decision import RATIO_MEASURES, Thresholds, decision_probabilities

__all__ = ["plot_forest", "plot_decision", "plot_benefit_curve", "format_probability", "REGION_COLORS"]

#: fill colours of the decision regions (colour-blind safe, from the Okabe-Ito palette)
REGION_COLORS = {"benefit": "#009E73", "trivial": "#BBBBBB", "harm": "#D55E00"}
_REGION_TEXT = {"benefit": "benefit", "trivial": "practically no effect", "harm": "harm"}

_MEASURE_NAMES = {
    "MD": "Mean difference",
    "SMD": "Standardised mean difference",
    "OR": "Odds ratio",
    "RR": "Risk ratio",
    "RD": "Risk difference",
    "GEN": "Effect",
}
_TARGET_NAMES = {
    "mean": "Average effect (mu)",
    dims.MU: "Average effect (mu)",
    "predictive": "Effect in a new study (predictive)",
    dims.THETA_NEW: "Effect in a new study (predictive)",
}
_OBSERVED_COLOR = "0.35"
_POSTERIOR_COLOR = "#0072B2"
_POOLED_COLOR = "black"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def format_probability(p: float, digits: int = 2) -> str:
    """Format a probability for a plot label: ``0.43``, ``< 0.01``, ``> 0.99``.

    Parameters
    ----------
    p : float
        Probability in [0, 1].
    digits : int
        Decimal places.

    Examples
    --------
    >>> format_probability(0.4321)
    '0.43'
    >>> format_probability(0.0004), format_probability(0.99991)
    ('< 0.01', '> 0.99')
    """
    tiny = 10.0 ** -digits
    if p < tiny / 2:
        return f"< {tiny:.{digits}f}"
    if p >= 1.0 - tiny / 2:
        return f"> {1.0 - tiny:.{digits}f}"
    return f"{p:.{digits}f}"


def _is_ratio(result) -> bool:
    return result.measure in RATIO_MEASURES


def _measure_label(result) -> str:
    """Axis label naming the measure and its scale."""
    name = _MEASURE_NAMES.get(result.measure, result.measure)
    if _is_ratio(result):
        return f"{name} ({result.measure}, ratio scale, log axis)"
    if result.measure == "GEN":
        return "Effect (generic inverse-variance scale)"
    return f"{name} ({result.measure})"


def _target_label(result, target: str) -> str:
    key = target[len("study="):] if target.startswith("study=") else target
    if key in _TARGET_NAMES:
        return _TARGET_NAMES[key]
    if key in result.studies:
        return f"Study effect: {key} (shrunken)"
    return key


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax.figure, ax


def _ratio_ticks(lo: float, hi: float, max_ticks: int = 7) -> list[float]:
    """Readable ratio ticks in [lo, hi]: decades, else 1-2-5, else finer, else linear."""
    from matplotlib.ticker import MaxNLocator

    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    best: list[float] = []
    for mantissas in ((1,), (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 8)):
        ticks = sorted(float(f"{m * 10.0**e:.6g}") for e in decades for m in mantissas
                       if lo <= m * 10.0**e <= hi)
        if len(ticks) > max_ticks:
            break
        best = ticks
        if len(ticks) >= 4:
            break
    if len(best) >= 3:
        return best
    return [float(f"{t:.6g}") for t in MaxNLocator(nbins=5).tick_values(lo, hi) if lo <= t <= hi]


def _ratio_axis(ax, lo: float, hi: float, extra=()) -> None:
    """Log x-axis with ratio tick labels (0.5, 1, 2, ...) covering [lo, hi], plus ``extra`` ticks."""
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

    lo, hi = min(lo, hi), max(lo, hi)
    ax.set_xscale("log")
    ticks = _ratio_ticks(lo, hi)
    # an extra tick (e.g. the MCID) is added only where it does not crowd the others
    gap = max(0.08, 0.06 * math.log(hi / lo))
    for e in sorted(float(f"{e:.3g}") for e in extra if lo <= e <= hi):
        if all(abs(math.log(t / e)) >= gap for t in ticks):
            ticks.append(e)
    ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())


def _prob_label(region: str, p: float, digits: int) -> str:
    """``P(benefit) = 0.43``, ``P(harm) < 0.01``."""
    text = format_probability(p, digits)
    return f"P({_REGION_TEXT[region]}) {text}" if text[0] in "<>" else f"P({_REGION_TEXT[region]}) = {text}"


def _thresholds(result, mcid, benefit, harm, required: bool) -> Thresholds | None:
    """The result's stored thresholds, overridden by the arguments."""
    return Thresholds.resolve(result.thresholds, mcid, benefit, harm, result.measure, required=required)


def _interval(marginal, prob: float) -> np.ndarray:
    a = (1.0 - prob) / 2.0
    return np.asarray(marginal.ppf(np.array([a, 0.5, 1.0 - a])), dtype=float)


# ---------------------------------------------------------------------------
# forest plot
# ---------------------------------------------------------------------------
def plot_forest(result, *, prob: float = 0.95, show_mcid: bool = True, ax=None, figsize=None,
                xlabel: str | None = None, title: str | None = None):
    """Forest plot: observed and shrunken study effects, average and predictive effect.

    One row per study shows the observed estimate with its ``prob`` confidence
    interval (``yi +/- z * sei``, grey square) and, just below it, the posterior
    median of the study's effect ``theta_i`` with its equal-tailed ``prob``
    credible interval (blue circle), which is shrunk towards the average. Two
    rows at the bottom show the average effect ``mu`` (diamond spanning its
    interval) and the effect in a new study ``theta_new`` (open diamond). A
    solid line marks no effect and dashed lines the MCID cut points, if the
    result carries thresholds.

    Parameters
    ----------
    result : MetaResult
    prob : float
        Probability of every interval (default 95%).
    show_mcid : bool
        Draw the MCID lines when the result has thresholds.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    figsize : tuple, optional
        Size of a new figure; by default it grows with the number of studies.
    xlabel, title : str, optional
        Override the axis label (default: the measure and its scale) and title.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import ketabayes as kb                                   # doctest: +SKIP
    >>> from ketabayes.reporting.plots import plot_forest       # doctest: +SKIP
    >>> fig = plot_forest(result)                                # doctest: +SKIP
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon
    from matplotlib.transforms import ScaledTranslation

    if not 0.0 < prob < 1.0:
        raise KetabayesError(f"prob must be between 0 and 1, got {prob!r}")
    studies = result.studies
    k = len(studies)
    fig, ax = _new_axes(ax, figsize or (7.0, 1.6 + 0.38 * (k + 2)))
    ratio = _is_ratio(result)
    tr = np.exp if ratio else (lambda x: np.asarray(x, dtype=float))
    z = float(stats.norm.ppf(0.5 + prob / 2.0))

    yi = np.asarray(result.tree["observed_data"]["y"].values, dtype=float)
    sei = np.sqrt(np.asarray(result.tree["constant_data"]["vi"].values, dtype=float))
    rows = np.arange(k + 2)[::-1].astype(float)  # first study at the top
    pct = f"{prob * 100:g}%"

    lo_obs, hi_obs = tr(yi - z * sei), tr(yi + z * sei)
    ax.hlines(rows[:k] + 0.15, lo_obs, hi_obs, color=_OBSERVED_COLOR, lw=1.2)
    ax.plot(tr(yi), rows[:k] + 0.15, "s", color=_OBSERVED_COLOR, ms=5)

    post = np.array([_interval(result.marginal(f"study={s}"), prob) for s in studies]).reshape(k, 3)
    ax.hlines(rows[:k] - 0.15, tr(post[:, 0]), tr(post[:, 2]), color=_POSTERIOR_COLOR, lw=1.6)
    ax.plot(tr(post[:, 1]), rows[:k] - 0.15, "o", color=_POSTERIOR_COLOR, ms=5)

    extremes = [lo_obs.min(), hi_obs.max(), tr(post[:, 0]).min(), tr(post[:, 2]).max()]
    for row, target, filled in ((rows[k], "mean", True), (rows[k + 1], "predictive", False)):
        lo, med, hi = tr(_interval(result.marginal(target), prob))
        diamond = Polygon([(lo, row), (med, row + 0.3), (hi, row), (med, row - 0.3)], closed=True,
                          facecolor=_POOLED_COLOR if filled else "white", edgecolor=_POOLED_COLOR, lw=1.2)
        ax.add_patch(diamond)
        extremes += [lo, hi]

    null = 1.0 if ratio else 0.0
    ax.axvline(null, color="black", lw=0.8)
    th = result.thresholds if show_mcid else None
    if th is not None:
        for cut in th.cuts():
            ax.axvline(float(tr(cut)), color="0.3", lw=0.8, ls="--")
            extremes.append(float(tr(cut)))
    ax.axhline(rows[k] + 0.5, color="0.8", lw=0.8)

    lo_x, hi_x = min(extremes + [null]), max(extremes + [null])
    if ratio:
        pad = (math.log(hi_x) - math.log(lo_x)) * 0.05
        ax.set_xlim(lo_x * math.exp(-pad), hi_x * math.exp(pad))
        _ratio_axis(ax, *ax.get_xlim(), extra=[math.exp(c) for c in th.cuts()] if th is not None else ())
    else:
        pad = (hi_x - lo_x) * 0.05
        ax.set_xlim(lo_x - pad, hi_x + pad)
    ax.set_ylim(-0.7, k + 1.6)
    ax.set_yticks(rows, [*studies, "Average effect (mu)", "New study (predictive)"])
    ax.set_xlabel(xlabel or _measure_label(result))
    handles = [
        Line2D([], [], color=_OBSERVED_COLOR, marker="s", ms=5, label=f"Observed estimate, {pct} CI"),
        Line2D([], [], color=_POSTERIOR_COLOR, marker="o", ms=5, label=f"Posterior median, {pct} CrI"),
        Line2D([], [], color=_POOLED_COLOR, marker="D", ls="none", label=f"Average effect, {pct} CrI"),
        Line2D([], [], color=_POOLED_COLOR, marker="D", mfc="white", ls="none",
               label=f"New study (predictive), {pct} PI"),
    ]
    if th is not None:
        handles.append(Line2D([], [], color="0.3", lw=0.8, ls="--", label="MCID"))
    # below the x-axis label: 0.5 inch under the bottom of the axes, whatever the figure height
    below = ax.transAxes + ScaledTranslation(0.0, -0.5, fig.dpi_scale_trans)
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, ncols=2,
              fontsize="small", frameon=False)
    engine = "exact posterior" if result.exact is not None else f"{result.engine.upper()} draws"
    ax.set_title(title if title is not None else f"Random-effects meta-analysis ({engine})")
    return fig


# ---------------------------------------------------------------------------
# decision plot
# ---------------------------------------------------------------------------
def _density(marginal, grid: np.ndarray) -> np.ndarray:
    if hasattr(marginal, "pdf"):
        return np.asarray(marginal.pdf(grid), dtype=float)
    draws = np.asarray(marginal.draws, dtype=float)
    if np.ptp(draws) == 0.0:
        raise KetabayesError("cannot draw a density: all posterior draws of this target are equal")
    return stats.gaussian_kde(draws)(grid)


def plot_decision(result, target: str = "mean", *, mcid: float | None = None, benefit: str | None = None,
                  harm: float | None = None, digits: int = 2, n_grid: int = 801, ax=None,
                  figsize=(7.0, 4.0), xlabel: str | None = None, title: str | None = None):
    """Posterior density with the benefit, practically-no-effect and harm regions shaded.

    The density is exact (the mixture-of-normals posterior) when the exact
    engine ran, and a Gaussian kernel density estimate of the draws otherwise.
    Each region is labelled in the legend with its posterior probability, e.g.
    ``P(benefit) = 0.43``, computed from the marginal CDF (as
    :meth:`MetaResult.decision_table <ketabayes.result.result.MetaResult.decision_table>`
    does), not from the drawn curve. For OR/RR the density of the log ratio is
    drawn against a logarithmic ratio axis, so areas still read as probabilities.

    Parameters
    ----------
    result : MetaResult
    target : str
        ``"mean"``, ``"predictive"`` or a study label (see :meth:`MetaResult.marginal`).
    mcid, benefit, harm : optional
        Decision thresholds; default to those given at fit time.
    digits : int
        Decimal places of the probabilities (see :func:`format_probability`).
    n_grid : int
        Number of grid points of the density curve.
    ax : matplotlib.axes.Axes, optional
    figsize : tuple
    xlabel, title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    KetabayesError
        If no MCID is given and none was set at fit time.
    """
    th = _thresholds(result, mcid, benefit, harm, required=True)
    marginal = result.marginal(target)
    probs = decision_probabilities(marginal, th)
    lo_cut, hi_cut = th.cuts()
    q_lo, q_hi = (float(v) for v in marginal.ppf(np.array([0.0005, 0.9995])))
    width = max(q_hi - q_lo, hi_cut - lo_cut)
    # the grid always reaches beyond both cuts, so that all three regions are drawn
    a = min(q_lo, lo_cut - 0.1 * width)
    b = max(q_hi, hi_cut + 0.1 * width)
    grid = np.union1d(np.linspace(a, b, n_grid), [lo_cut, hi_cut])
    dens = _density(marginal, grid)

    fig, ax = _new_axes(ax, figsize)
    ratio = _is_ratio(result)
    x = np.exp(grid) if ratio else grid
    ax.plot(x, dens, color="black", lw=1.3)
    if th.benefit == "lower":
        regions = (("benefit", grid <= lo_cut), ("trivial", (grid >= lo_cut) & (grid <= hi_cut)),
                   ("harm", grid >= hi_cut))
    else:
        regions = (("harm", grid <= lo_cut), ("trivial", (grid >= lo_cut) & (grid <= hi_cut)),
                   ("benefit", grid >= hi_cut))
    key = {"benefit": "p_benefit", "trivial": "p_trivial", "harm": "p_harm"}
    for name, mask in regions:
        ax.fill_between(x[mask], dens[mask], color=REGION_COLORS[name], alpha=0.6, lw=0,
                        label=_prob_label(name, probs[key[name]], digits))
    for cut in (lo_cut, hi_cut):
        ax.axvline(math.exp(cut) if ratio else cut, color="0.3", lw=0.9, ls="--")
    ax.axvline(1.0 if ratio else 0.0, color="black", lw=0.6, ls=":")
    if ratio:
        ax.set_xlim(float(x[0]), float(x[-1]))
        _ratio_axis(ax, float(x[0]), float(x[-1]), extra=(math.exp(lo_cut), math.exp(hi_cut)))
        ax.set_ylabel("Posterior density (per unit of log ratio)")
    else:
        ax.set_xlim(float(x[0]), float(x[-1]))
        ax.set_ylabel("Posterior density")
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(xlabel or _measure_label(result))
    how = "exact" if hasattr(marginal, "pdf") else "kernel density of draws"
    mcid_text = f"{th.mcid:g}" + (" (ratio)" if th.ratio else "")
    ax.set_title(title if title is not None else f"{_target_label(result, target)}, MCID {mcid_text} ({how})")
    ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return fig


# ---------------------------------------------------------------------------
# benefit curve
# ---------------------------------------------------------------------------
def plot_benefit_curve(result, targets=("mean", "predictive"), thresholds=None, *, show_mcid: bool = True,
                       ax=None, figsize=(6.5, 4.0), xlabel: str | None = None, title: str | None = None):
    """Probability of a benefit at least as large as each threshold.

    For differences the x-axis is the size ``t >= 0`` of the benefit (the
    curve is ``P(effect < -t)`` when lower is better, ``P(effect > t)``
    otherwise). For OR/RR it is the ratio on the benefit side of 1 (log axis;
    ``P(OR < r)`` for ``r <= 1`` when lower is better), oriented so that larger
    benefits are to the right in both cases.

    Parameters
    ----------
    result : MetaResult
    targets : str or sequence of str
        ``"mean"``, ``"predictive"`` and/or study labels; one curve each.
    thresholds : array_like, optional
        Benefit sizes as in :meth:`MetaResult.benefit_curve` (ratios ``>= 1``
        for OR/RR, read as ``r`` or ``1/r`` whichever is the benefit side).
        By default a common grid wide enough for every target.
    show_mcid : bool
        Mark the MCID with a dashed line when the result has thresholds.
    ax : matplotlib.axes.Axes, optional
    figsize : tuple
    xlabel, title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if isinstance(targets, str):
        targets = (targets,)
    ratio = _is_ratio(result)
    th = result.thresholds
    lower = th is None or th.benefit == "lower"
    if thresholds is None:
        reach = 0.0
        for t in targets:
            m = result.marginal(t)
            q = np.asarray(m.ppf(np.array([0.001, 0.999])), dtype=float)
            reach = max(reach, float(np.max(np.abs(q))))
        if th is not None:
            reach = max(reach, 1.5 * th.delta_benefit)
        reach = reach if reach > 0 else 1.0
        thresholds = np.exp(np.linspace(0.0, reach, 201)) if ratio else np.linspace(0.0, reach, 201)
    thresholds = np.asarray(thresholds, dtype=float)

    fig, ax = _new_axes(ax, figsize)
    styles = ("-", "--", "-.", ":")
    for i, t in enumerate(targets):
        curve = result.benefit_curve(thresholds, target=t)
        x = curve["threshold"].to_numpy()
        if ratio:
            d = np.abs(np.log(x))
            x = np.exp(-d) if lower else np.exp(d)
        ax.plot(x, curve["p_benefit"].to_numpy(), ls=styles[i % len(styles)], lw=1.6,
                label=_target_label(result, t))
    name = result.measure
    if ratio:
        xs = np.exp(-np.abs(np.log(thresholds))) if lower else np.exp(np.abs(np.log(thresholds)))
        lo, hi = float(xs.min()), float(xs.max())
        _ratio_axis(ax, lo, hi)
        ax.set_xlim(hi, lo) if lower else ax.set_xlim(lo, hi)
        default_x = f"Threshold ratio r: P({name} {'<' if lower else '>'} r) (log axis)"
    else:
        ax.set_xlim(float(thresholds.min()), float(thresholds.max()))
        default_x = f"Size of benefit t: P({name} {'< -t' if lower else '> t'})"
    if show_mcid and th is not None:
        xm = (math.exp(-th.delta_benefit) if lower else math.exp(th.delta_benefit)) if ratio else th.delta_benefit
        ax.axvline(xm, color="0.3", lw=0.9, ls="--", label=f"MCID ({th.mcid:g})")
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel(xlabel or default_x)
    ax.set_ylabel("P(benefit at least as large)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small", frameon=False)
    ax.set_title(title if title is not None else "Probability of a benefit at least as large as each threshold")
    return fig
