"""The plots statisticians expect from a Bayesian meta-analysis.

* :func:`plot_forest` -- observed study estimates with their confidence
  intervals next to the shrunken posterior study effects, then the average
  effect and the effect in a new study;
* :func:`plot_decision` -- the posterior density of a target with the regions
  of benefit, practically no effect and harm shaded and labelled with their
  probabilities;
* :func:`plot_benefit_curve` -- the probability of a benefit at least as large
  as each threshold.

Every function takes any ketabayes result (the one result contract), draws on
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
from ketabayes.decision import RATIO_MEASURES, Thresholds, decision_probabilities
from ketabayes.errors import KetabayesError

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
    return bool(getattr(result, "ratio", result.measure in RATIO_MEASURES))


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


def _figure_class():
    """:class:`matplotlib.figure.Figure` that shows itself in Jupyter (class built once, on first use)."""
    global _FIGURE
    if _FIGURE is None:
        import io

        from matplotlib.figure import Figure

        class KetabayesFigure(Figure):
            """A matplotlib :class:`~matplotlib.figure.Figure` that Jupyter displays as a PNG.

            ketabayes' figures are made outside pyplot's state machine, so a notebook never shows one
            twice (once by pyplot's inline backend, once as the value of the cell). A bare ``Figure``
            is then rendered only where the inline backend happens to be active; ``_repr_png_`` makes
            the figure show wherever IPython displays a value, whatever the backend.
            """

            def _repr_png_(self):
                buf = io.BytesIO()
                self.savefig(buf, format="png", bbox_inches="tight")
                return buf.getvalue()

        _FIGURE = KetabayesFigure
    return _FIGURE


_FIGURE = None


def new_figure(figsize, **kwargs):
    """A figure outside pyplot's state machine, with one axes: ``(fig, ax)``.

    Jupyter shows it exactly once -- when it is the value of a cell (through its ``_repr_png_``) --
    with or without pyplot's inline backend. ``fig.savefig`` works as usual. ``kwargs`` go to the
    figure (default ``layout="constrained"``).
    """
    fig = _figure_class()(figsize=figsize, **{"layout": "constrained", **kwargs})
    return fig, fig.add_subplot()


def _new_axes(ax, figsize):
    if ax is None:
        return new_figure(figsize)
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
    if lo <= 1.0 <= hi and 1.0 not in ticks:
        ticks.append(1.0)  # no effect is always labelled
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
def _forest_rows(result, prob: float) -> list[dict]:
    """Rows of a forest plot, top to bottom, on the analysis scale.

    Each row: ``label``, ``kind`` (``study``, ``group``, ``cell``, ``mean``, ``predictive``),
    ``obs`` (observed ``(lo, y, hi)`` of a trial, or None), ``post`` (posterior ``(lo, median, hi)``,
    or None) and ``weight`` (a trial's share of the random-effects weights, or None).
    """
    rows = []
    study_targets = {t.name for t in result.targets if t.kind == "study"}
    observed = _observed_estimates(result)
    if observed is not None:
        yi, vi, _ = observed
        z = float(stats.norm.ppf(0.5 + prob / 2.0))
        tau2 = float(result.marginal("tau").ppf(np.array([0.5]))[0]) ** 2 if "tau" in result.scale_names else 0.0
        w = np.where(np.isfinite(vi), 1.0 / (vi + tau2), 0.0)
        w = w / w.sum()
        for i, s in enumerate(result.studies):
            post = tuple(_interval(result.marginal(s), prob)) if s in study_targets else None
            if np.isfinite(yi[i]):
                se = math.sqrt(vi[i])
                rows.append({"label": s, "kind": "study", "obs": (yi[i] - z * se, yi[i], yi[i] + z * se),
                             "post": post, "weight": w[i]})
            else:   # a double-zero trial: no observed log odds ratio, but a posterior effect
                rows.append({"label": f"{s} (not estimable)", "kind": "study", "obs": None, "post": post,
                             "weight": None})
    for t in result.targets:
        if t.kind in ("group", "cell"):
            label = t.name.replace("|", " x ") + ("" if t.observed else " (no trials)")
            rows.append({"label": label, "kind": t.kind, "obs": None,
                         "post": tuple(_interval(result.marginal(t.name), prob)), "weight": None})
    for name, label in (("mean", "Average effect"), ("predictive", "New trial (predictive)")):
        rows.append({"label": label, "kind": name, "obs": None, "post": tuple(_interval(result.marginal(name), prob)),
                     "weight": None})
    return rows


def _observed_estimates(result):
    """Each trial's observed estimate and sampling variance on the analysis scale, or ``None``.

    Estimate-level results store them (``y``, ``vi``); arm-level binomial results store the counts,
    from which the log odds ratios are computed as metafor's ``escalc`` does (0.5 added to every
    cell of a trial with a zero cell; a trial without events in either arm is not estimable: NaN).
    These are for display only: the binomial model itself uses the counts, with no correction.
    """
    tree = result.tree
    if "observed_data" not in tree.children or "constant_data" not in tree.children:
        return None
    obs, const = tree["observed_data"], tree["constant_data"]
    if "y" in obs.data_vars and "vi" in const.data_vars:
        return np.asarray(obs["y"].values, dtype=float), np.asarray(const["vi"].values, dtype=float), False
    if {"ai", "ci"} <= set(obs.data_vars) and {"n1i", "n2i"} <= set(const.data_vars):
        import warnings

        from ketabayes.data.effect_sizes import effect_sizes
        from ketabayes.errors import DataWarning

        with warnings.catch_warnings():   # a double-zero trial is shown as "not estimable" in the plot itself
            warnings.simplefilter("ignore", DataWarning)
            es = effect_sizes({"study": result.studies, "ai": obs["ai"].values, "n1i": const["n1i"].values,
                               "ci": obs["ci"].values, "n2i": const["n2i"].values}, "OR")
        zero = (obs["ai"].values == 0) | (obs["ci"].values == 0) | (obs["ai"].values == const["n1i"].values) | (
            obs["ci"].values == const["n2i"].values)
        return es["yi"].to_numpy(dtype=float), es["vi"].to_numpy(dtype=float), bool(np.any(zero))
    return None


def _has_observed(rows) -> bool:
    """Whether a forest has observed trial rows (then it prints two estimate columns)."""
    return any(r["obs"] is not None for r in rows)


def _default_favours(result, th) -> tuple[str, str]:
    labels = result.settings.get("group_labels")
    if labels and len(labels) == 2:
        return f"Favours {labels[0]}", f"Favours {labels[1]}"
    lower = th is None or th.benefit == "lower"
    return ("Favours treatment", "Favours control") if lower else ("Favours control", "Favours treatment")


def plot_forest(result, *, prob: float = 0.95, show_mcid: bool = True, favours=None, ax=None, figsize=None,
                xlabel: str | None = None, title: str | None = None):
    """Forest plot of any result: trials, groups and cells, the average and the predictive effect.

    Rows, top to bottom: each trial's observed estimate with its ``prob`` confidence interval
    (a square whose area is proportional to the trial's random-effects weight
    ``1 / (v_i + tau^2)`` at the posterior median of tau) and, when the result carries study
    effects, its shrunken posterior effect (circle with credible interval); for hierarchical
    results every group and cell (circles, cells without trials marked); then the average
    effect (filled diamond) and the effect in a new trial (open diamond, prediction interval).
    A column on the right prints "median [low, high]" of every row; "Favours ..." labels sit
    under the axis on each side of no effect (from the result's group labels, e.g. RevMan's,
    when present). Solid line: no effect; dashed lines: the MCID cut points.

    Parameters
    ----------
    result : ResultBase
        Any ketabayes result (random effects, hierarchical, binomial).
    prob : float
        Probability of every interval (default 95%).
    show_mcid : bool
        Draw the MCID lines when the result has thresholds.
    favours : tuple of str, optional
        ``(left, right)`` labels under the axis; default from the direction of benefit.
    ax : matplotlib.axes.Axes, optional
        Axes to draw on; a new figure when ``None``.
    figsize : tuple, optional
        Size of a new figure; by default it grows with the number of rows.
    xlabel, title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.font_manager import FontProperties
    from matplotlib.lines import Line2D
    from matplotlib.patches import Polygon
    from matplotlib.transforms import ScaledTranslation

    if not 0.0 < prob < 1.0:
        raise KetabayesError(f"prob must be between 0 and 1, got {prob!r}")
    rows = _forest_rows(result, prob)
    n = len(rows)
    ratio = result.ratio
    tr = np.exp if ratio else (lambda x: np.asarray(x, dtype=float))
    pct = f"{prob * 100:g}%"
    y = np.arange(n)[::-1].astype(float)

    def fmt(t):
        lo, mid, hi = (round(float(v), 2) + 0.0 for v in tr(np.array(t)))   # + 0.0: no "-0.00"
        return f"{mid:.2f} [{lo:.2f}, {hi:.2f}]"

    # the estimate columns live in a table axes right of the forest, sharing its rows: part of the layout
    # (and of a tight bounding box), sized from the longest entry of each column
    two_cols = _has_observed(rows)
    head_obs, head_post = f"Observed [{pct} CI]", f"Posterior [{pct} CrI]"
    char_in = 0.6 * FontProperties(size="small").get_size_in_points() / 72.0
    w_obs = (max(len(fmt(r["obs"])) for r in rows if r["obs"] is not None) if two_cols else 0)
    w_obs = (max(w_obs, len(head_obs)) + 2) * char_in if two_cols else 0.0
    w_post = (max([len(fmt(r["post"])) for r in rows if r["post"] is not None] + [len(head_post)]) + 1) * char_in
    table_in = w_obs + w_post
    if ax is None:
        width = figsize[0] if figsize else 7.5 + table_in
        fig = _figure_class()(figsize=(width, figsize[1] if figsize else 1.9 + 0.3 * n), layout="constrained")
        gs = fig.add_gridspec(1, 2, width_ratios=[max(width - table_in - 2.5, 2.0), table_in], wspace=0.0)
        ax = fig.add_subplot(gs[0])
        table = fig.add_subplot(gs[1], sharey=ax)
    else:
        fig = ax.figure
        ax_in = ax.get_position().width * fig.get_figwidth()
        table = ax.inset_axes([1.01, 0.0, table_in / max(ax_in, 1e-3), 1.0], sharey=ax)
    table.set_axis_off()
    table.set_xlim(0.0, table_in)
    x_obs, x_post = 0.05, (w_obs if two_cols else 0.05)
    extremes = []
    both = any(r["obs"] is not None and r["post"] is not None for r in rows)
    off = 0.17 if both else 0.0
    sq_x, sq_y, sq_s, ci_x, ci_y = [], [], [], [], []

    def fmt(t):
        lo, mid, hi = (float(v) for v in tr(np.array(t)))
        return f"{mid:.2f} [{lo:.2f}, {hi:.2f}]"

    for yy, r in zip(y, rows):
        if r["obs"] is not None:
            lo, mid, hi = (float(v) for v in tr(np.array(r["obs"])))
            ax.hlines(yy + off, lo, hi, color=_OBSERVED_COLOR, lw=1.1)
            sq_x.append(mid), sq_y.append(yy + off), sq_s.append(12.0 + 110.0 * r["weight"] / max(
                rr["weight"] for rr in rows if rr["weight"] is not None))
            extremes += [lo, hi]
            table.text(x_obs, yy, fmt(r["obs"]), va="center", fontsize="small", color=_OBSERVED_COLOR)
        if r["post"] is None:
            continue
        lo, mid, hi = (float(v) for v in tr(np.array(r["post"])))
        extremes += [lo, hi]
        if r["kind"] in ("mean", "predictive"):
            ax.add_patch(Polygon([(lo, yy), (mid, yy + 0.32), (hi, yy), (mid, yy - 0.32)], closed=True,
                                 facecolor=_POOLED_COLOR if r["kind"] == "mean" else "white",
                                 edgecolor=_POOLED_COLOR, lw=1.2))
        else:
            yp = yy - off if r["obs"] is not None else yy
            ax.hlines(yp, lo, hi, color=_POSTERIOR_COLOR, lw=1.5)
            ci_x.append(mid), ci_y.append(yp)
        table.text(x_post, yy, fmt(r["post"]), va="center", fontsize="small", color="black")
    if sq_x:
        ax.scatter(sq_x, sq_y, s=sq_s, marker="s", color=_OBSERVED_COLOR, zorder=3)
    if ci_x:
        ax.plot(ci_x, ci_y, "o", color=_POSTERIOR_COLOR, ms=4.5, zorder=3)
    if two_cols:
        table.text(x_obs, n - 0.35, head_obs, va="bottom", fontsize="small", fontweight="bold",
                   color=_OBSERVED_COLOR)
    table.text(x_post, n - 0.35, head_post, va="bottom", fontsize="small", fontweight="bold")
    labels = [r["label"] for r in rows]
    null = 1.0 if ratio else 0.0
    ax.axvline(null, color="black", lw=0.8)
    th = result.thresholds if show_mcid else None
    if th is not None:
        for cut in th.cuts():
            ax.axvline(float(tr(cut)), color="0.3", lw=0.8, ls="--")
            extremes.append(float(tr(cut)))
    n_pooled = 2
    ax.axhline(n_pooled - 0.5, color="0.8", lw=0.8)
    lo_x, hi_x = min(extremes + [null]), max(extremes + [null])
    if ratio:
        pad = (math.log(hi_x) - math.log(lo_x)) * 0.05
        ax.set_xlim(lo_x * math.exp(-pad), hi_x * math.exp(pad))
        _ratio_axis(ax, *ax.get_xlim(), extra=[math.exp(c) for c in th.cuts()] if th is not None else ())
    else:
        pad = (hi_x - lo_x) * 0.05
        ax.set_xlim(lo_x - pad, hi_x + pad)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(y, labels)
    ax.set_xlabel(xlabel or _measure_label(result))
    left, right = favours if favours is not None else _default_favours(result, result.thresholds)
    ax.xaxis.labelpad = 16  # room for the "Favours" labels between the tick labels and the axis label
    under = ax.transAxes + ScaledTranslation(0.0, -0.24, fig.dpi_scale_trans)
    null_ax = ax.transAxes.inverted().transform(ax.transData.transform((null, 0.0)))[0]
    ax.text(null_ax - 0.01, 0.0, f"\u2190 {left}", transform=under, ha="right", va="top", fontsize="small")
    ax.text(null_ax + 0.01, 0.0, f"{right} \u2192", transform=under, ha="left", va="top", fontsize="small")
    handles = []
    if sq_x:
        observed = _observed_estimates(result)
        cc = "; 0.5 added to zero cells" if observed is not None and observed[2] else ""
        handles.append(Line2D([], [], color=_OBSERVED_COLOR, marker="s", ms=5,
                              label=f"Observed, {pct} CI (area: weight{cc})"))
    if ci_x:
        handles.append(Line2D([], [], color=_POSTERIOR_COLOR, marker="o", ms=5, label=f"Posterior median, {pct} CrI"))
    handles += [Line2D([], [], color=_POOLED_COLOR, marker="D", ls="none", label=f"Average effect, {pct} CrI"),
                Line2D([], [], color=_POOLED_COLOR, marker="D", mfc="white", ls="none",
                       label=f"New trial, {pct} prediction interval")]
    if th is not None:
        handles.append(Line2D([], [], color="0.3", lw=0.8, ls="--", label=f"MCID ({th.mcid:g})"))
    if fig.get_layout_engine() is not None:
        fig.legend(handles=handles, loc="outside lower center", ncols=3, fontsize="small", frameon=False)
    else:
        ax.legend(handles=handles, loc="best", fontsize="small")
    what = {"random effects": "Random-effects meta-analysis", "fixed effect": "Fixed-effect meta-analysis",
            "hierarchical": "Hierarchical meta-analysis", "binomial": "Binomial-logit meta-analysis"}
    ax.set_title(title if title is not None else what.get(result.model_type, "Meta-analysis"))
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
                  harm: float | None = None, digits: int = 2, n_grid: int = 801, show_prior: bool = True, ax=None,
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
    show_prior : bool
        Overlay the prior of the average effect (dashed) when ``target`` is ``"mean"``; the prior
        is named in the title.
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
    prior_text = None
    entry = result.settings.get("prior_mu") if target in ("mean", dims.MU) else None
    if show_prior and entry:
        from ketabayes.model.priors import prior_from_dict

        prior = prior_from_dict({k: v for k, v in entry.items() if k != "text"})
        if prior.proper:
            with np.errstate(all="ignore"):
                pd_ = np.exp(np.asarray(prior.logpdf(grid), dtype=float))
            ax.plot(x, pd_, color="0.45", lw=1.1, ls="--", label="Prior")
        prior_text = str(prior)
    ax.set_ylim(bottom=0.0)
    ax.set_xlabel(xlabel or _measure_label(result))
    mcid_text = f"{th.mcid:g}" + (" (ratio)" if th.ratio else "")
    default = f"{_target_label(result, target)}: posterior, MCID {mcid_text}"
    if prior_text:
        default += f"\nprior for the average effect: {prior_text}"
    ax.set_title(title if title is not None else default, fontsize="medium")
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
