"""Plots of the joint benefit-harm question and of the next-trial question.

* :func:`plot_benefit_harm` -- the benefit-risk plane: the joint posterior of the average
  efficacy and harm effects (density contours of the exact mixture), the MCID and the harm
  threshold splitting the plane into four decision regions, each labelled with its probability.
* :func:`plot_next_trial` -- assurance and EVSI of a new trial against its size per arm, with the
  limit of an infinitely large trial.

Both return the :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes.reporting.plots import REGION_COLORS, format_probability

__all__ = ["plot_benefit_harm", "plot_next_trial"]


def _grid_density(exact, target, x, y):
    """Density of the mean / predictive pair on the grid ``x`` (efficacy) by ``y`` (harm, analysis scale)."""
    w, m, c = exact.components(target)
    keep = w > 1e-8 * w.max()
    w, m, c = w[keep] / w[keep].sum(), m[keep], c[keep]
    X, Y = np.meshgrid(x, y)
    pts = np.stack([X.ravel(), Y.ravel()], -1)
    det = c[:, 0, 0] * c[:, 1, 1] - c[:, 0, 1] ** 2
    dens = np.zeros(pts.shape[0])
    for s in range(0, w.size, 2000):
        sl = slice(s, s + 2000)
        d0 = pts[:, None, 0] - m[None, sl, 0]
        d1 = pts[:, None, 1] - m[None, sl, 1]
        q = (c[sl, 1, 1] * d0**2 - 2 * c[sl, 0, 1] * d0 * d1 + c[sl, 0, 0] * d1**2) / det[sl]
        dens += (np.exp(-0.5 * q) / (2 * math.pi * np.sqrt(det[sl]))) @ w[sl]
    return dens.reshape(X.shape)


def plot_benefit_harm(result, target: str = "mean", *, mcid: float | None = None,
                      harm_threshold: float | None = None, ax=None, figsize=(6.5, 5.0)):
    """Benefit-risk plane of a :class:`~ketabayes.result.bivariate_result.BivariateResult`.

    Parameters
    ----------
    result : BivariateResult
    target : {"mean", "predictive"}
    mcid, harm_threshold : float, optional
        Override the thresholds stored with the result.

    Returns
    -------
    matplotlib.figure.Figure
    """

    jt = result.joint_table(mcid, harm_threshold).set_index("target").loc[target]
    e = result.exact
    m1, m2 = e.marginal(target, 0), e.marginal(target, 1)
    x = np.linspace(*m1.ppf(np.array([0.002, 0.998])), 121)
    y = np.linspace(*m2.ppf(np.array([0.002, 0.998])), 121)
    ratio = result.measures[1] in ("RR", "OR", "HR")
    cut1 = float(jt["benefit_cut"])
    cut2 = math.log(jt["harm_cut"]) if ratio else float(jt["harm_cut"])
    x = np.union1d(x, [cut1]) if x[0] < cut1 < x[-1] else x
    dens = _grid_density(e, target, x, y)
    if ax is None:
        from ketabayes.reporting.plots import new_figure

        fig, ax = new_figure(figsize)  # outside pyplot: Jupyter shows it once
    else:
        fig = ax.figure
    yy = np.exp(y) if ratio else y
    lo_x, hi_x, lo_y, hi_y = x[0], x[-1], yy[0], yy[-1]
    c2 = math.exp(cut2) if ratio else cut2
    b_left = jt["benefit_direction"] == "lower"
    a_low = jt["harm_direction"] == "lower"
    regions = {  # (x range, y range) of each quadrant
        "p_benefit_acceptable_harm": ((lo_x, cut1) if b_left else (cut1, hi_x), (lo_y, c2) if a_low else (c2, hi_y)),
        "p_benefit_unacceptable_harm": ((lo_x, cut1) if b_left else (cut1, hi_x), (c2, hi_y) if a_low else (lo_y, c2)),
        "p_no_benefit_acceptable_harm": ((cut1, hi_x) if b_left else (lo_x, cut1), (lo_y, c2) if a_low else (c2, hi_y)),
        "p_no_benefit_unacceptable_harm": ((cut1, hi_x) if b_left else (lo_x, cut1),
                                           (c2, hi_y) if a_low else (lo_y, c2)),
    }
    colors = {"p_benefit_acceptable_harm": REGION_COLORS["benefit"], "p_benefit_unacceptable_harm": "#E69F00",
              "p_no_benefit_acceptable_harm": REGION_COLORS["trivial"],
              "p_no_benefit_unacceptable_harm": REGION_COLORS["harm"]}
    labels = {"p_benefit_acceptable_harm": "benefit, acceptable harm",
              "p_benefit_unacceptable_harm": "benefit, unacceptable harm",
              "p_no_benefit_acceptable_harm": "no benefit, acceptable harm",
              "p_no_benefit_unacceptable_harm": "no benefit, unacceptable harm"}
    for key, ((x0, x1), (y0, y1)) in regions.items():
        x0, x1 = max(x0, lo_x), min(x1, hi_x)
        y0, y1 = max(y0, lo_y), min(y1, hi_y)
        if x1 > x0 and y1 > y0:
            ax.fill_between([x0, x1], y0, y1, color=colors[key], alpha=0.18, lw=0,
                            label=f"{labels[key]}: P = {format_probability(float(jt[key]))}")
    ax.contour(x, yy, dens, levels=6, colors="#0072B2", linewidths=1.0)
    ax.axvline(cut1, color="black", ls="--", lw=1)
    ax.axhline(c2, color="black", ls="--", lw=1)
    if ratio:
        from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

        from ketabayes.reporting.plots import _ratio_ticks

        ax.set_yscale("log")
        ticks = sorted(set(_ratio_ticks(lo_y, hi_y)) | ({1.0} if lo_y <= 1.0 <= hi_y else set()))
        ax.yaxis.set_major_locator(FixedLocator(ticks))
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:g}"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_minor_formatter(NullFormatter())
    kind = "average effects" if target == "mean" else "effects in a new trial"
    ax.set_xlabel(f"{result.outcomes[0]} ({result.measures[0]}); MCID cut {cut1:g}")
    ax.set_ylabel(f"{result.outcomes[1]} ({result.measures[1]}); threshold {jt['harm_cut']:g}")
    ax.set_title(f"Benefit-risk plane: joint posterior of the {kind}")
    if fig.get_layout_engine() is not None:  # below the axes, clear of the contours
        fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    else:
        ax.legend(loc="best", fontsize=8, frameon=True)
    if result.assumptions:
        fig.text(0.01, 0.005, "Assumption: " + "; ".join(result.assumptions), fontsize=7, wrap=True)
    return fig


def plot_next_trial(nt, *, ax=None, figsize=(6.5, 4.5)):
    """Assurance of each region and EVSI against the new trial's size per arm (log axis).

    Parameters
    ----------
    nt : NextTrial
        From :func:`~ketabayes.result.next_trial.next_trial`.

    Returns
    -------
    matplotlib.figure.Figure
    """

    t = nt.table
    fin = t[np.isfinite(t["n_per_arm"])]
    lim = t[~np.isfinite(t["n_per_arm"])].iloc[0]
    if ax is None:
        from ketabayes.reporting.plots import new_figure

        fig, ax = new_figure(figsize)  # outside pyplot: Jupyter shows it once
    else:
        fig = ax.figure
    names = {"benefit": "benefit beyond MCID", "trivial": "practically no effect", "harm": "harm"}
    for r, col in (("benefit", REGION_COLORS["benefit"]), ("trivial", "0.45"), ("harm", REGION_COLORS["harm"])):
        ax.plot(fin["n_per_arm"], fin[f"assurance_{r}"], "o-", color=col,
                label=f"P(updated P({names[r]}) >= {nt.threshold:g})", lw=2 if r == nt.which else 1)
        ax.axhline(lim[f"assurance_{r}"], color=col, ls=":", lw=1)
    ax.axhline(nt.assurance_target, color="black", ls="--", lw=0.8, label=f"assurance target {nt.assurance_target:g}")
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, StrMethodFormatter

    ax.xaxis.set_major_locator(FixedLocator(sorted(set(float(n) for n in fin["n_per_arm"]))))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:g}"))  # the sizes themselves, not powers of ten
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1)
    ax.set_xlabel("new trial: patients per arm (dotted: infinitely large trial)")
    ax.set_ylabel("assurance")
    ax2 = ax.twinx()
    ax2.plot(fin["n_per_arm"], fin["evsi"], "s--", color="#0072B2", ms=4, label="EVSI (right axis)")
    ax2.set_ylabel("EVSI (outcome units per patient)")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper left")
    ax.set_title("What would the next trial settle?")
    return fig
