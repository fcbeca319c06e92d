"""Plots of the joint benefit-harm question and of the next-trial question.

* :func:`plot_benefit_harm` -- the benefit-risk plane: the joint posterior of the average
  efficacy and harm effects (its 50%, 80% and 95% highest-density regions, from the exact
  mixture), the MCID and the harm threshold splitting the plane into four decision regions, each
  labelled with its probability.
* :func:`plot_next_trial` -- assurance and EVSI of a new trial against its size per arm, with the
  limit of an infinitely large trial.

Both return the :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import math

import numpy as np

from ketabayes.reporting.plots import REGION_COLORS, format_probability

__all__ = ["hdr_levels", "plot_benefit_harm", "plot_next_trial"]


#: the plotted density merges nodes of the between-trial correlation until at most this many components remain
MAX_PLOT_COMPONENTS = 40_000


def _plot_mixture(exact, target):
    """Weights, means and covariances of the joint posterior for plotting.

    The exact mixture has one component per node of the tensor quadrature over ``(t1, t2, rb)``
    (about 150,000 for a few trials). Above :data:`MAX_PLOT_COMPONENTS` components, runs of ``B``
    neighbouring ``rb`` nodes that share ``(t1, t2)`` are merged into one component by matching the
    first two moments, with the smallest ``B`` that meets the budget: the plotted density stays within
    1% of the exact mixture's maximum (``tests/test_benefit_harm_plot.py``: 0.06% for the mean, 0.4% for
    the predictive pair), and a plot takes seconds instead of minutes. The decision-region
    probabilities are always those of the exact mixture.
    """
    w, m, c = exact.components(target)
    keep = w > 1e-12 * w.max()
    w, m, c = w[keep] / w[keep].sum(), m[keep], c[keep]
    if w.size <= MAX_PLOT_COMPONENTS or not hasattr(exact, "rb"):
        return w, m, c
    block = -(-w.size // MAX_PLOT_COMPONENTS)
    _, rank = np.unique(np.asarray(exact.rb)[keep], return_inverse=True)
    keys = np.stack([np.asarray(exact.t1)[keep], np.asarray(exact.t2)[keep], rank.ravel() // block], 1)
    _, group = np.unique(keys, axis=0, return_inverse=True)
    group = group.ravel()
    n = int(group.max()) + 1
    wg = np.bincount(group, w, n)
    mg = np.stack([np.bincount(group, w * m[:, j], n) for j in range(2)], 1) / wg[:, None]
    d = m - mg[group]
    cg = np.empty((n, 2, 2))
    for i in range(2):
        for j in range(2):
            cg[:, i, j] = np.bincount(group, w * (c[:, i, j] + d[:, i] * d[:, j]), n) / wg
    return wg, mg, cg


def _grid_density(mixture, x, y, chunk: int = 4096):
    """Density of a bivariate normal mixture ``(w, m, c)`` on the grid ``x`` by ``y`` (shape ``(len(y), len(x))``).

    Each component's quadratic form is linear in the features ``(u^2, uv, v^2, u, v, 1)`` of the
    (standardised) grid coordinates, so all of them come from one matrix product per chunk of
    components; the exponentials are then summed with the weights by a second one.
    """
    w, m, c = mixture
    cx, sx = 0.5 * (x[0] + x[-1]), 0.5 * (x[-1] - x[0]) or 1.0
    cy, sy = 0.5 * (y[0] + y[-1]), 0.5 * (y[-1] - y[0]) or 1.0
    U, V = np.meshgrid((np.asarray(x) - cx) / sx, (np.asarray(y) - cy) / sy)
    u, v = U.ravel(), V.ravel()
    feats = np.stack([u * u, u * v, v * v, u, v, np.ones_like(u)], 1)
    mu, mv = (m[:, 0] - cx) / sx, (m[:, 1] - cy) / sy
    a, b, d = c[:, 0, 0] / sx**2, c[:, 0, 1] / (sx * sy), c[:, 1, 1] / sy**2
    det = a * d - b * b
    p11, p12, p22 = d / det, -b / det, a / det
    coefs = np.stack([p11, 2 * p12, p22, -2 * (p11 * mu + p12 * mv), -2 * (p12 * mu + p22 * mv),
                      p11 * mu**2 + 2 * p12 * mu * mv + p22 * mv**2], 1)
    scale = w / (2 * math.pi * np.sqrt(det) * sx * sy)
    out = np.zeros(u.size)
    for s in range(0, w.size, chunk):
        q = feats @ coefs[s:s + chunk].T
        np.multiply(q, -0.5, out=q)
        np.exp(q, out=q)
        out += q @ scale[s:s + chunk]
    return out.reshape(U.shape)


def hdr_levels(dens, x, y, probs=(0.5, 0.8, 0.95)) -> np.ndarray:
    """Density levels whose upper sets hold ``probs`` of a joint posterior (highest-density regions).

    The region ``{density >= level}`` with the smallest area holding probability ``p`` is bounded by the
    ``level`` below which a fraction ``1 - p`` of the mass lies. ``dens[j, i]`` is the (normalised)
    density at ``(x[i], y[j])``; cells are sorted by density and their mass (density x cell area, the
    cell widths from the grid spacing) accumulated. The mass outside the grid is counted as lying below
    every level, so the grid must hold more than ``max(probs)`` of the mass.

    Returns
    -------
    numpy.ndarray
        One level per entry of ``probs``, in the same order.
    """
    dens = np.asarray(dens, dtype=float)
    area = np.outer(np.gradient(np.asarray(y, dtype=float)), np.gradient(np.asarray(x, dtype=float)))
    flat = dens.ravel()
    order = np.argsort(flat)[::-1]
    cum = np.cumsum((flat * area.ravel())[order])
    if cum[-1] < max(probs):
        raise ValueError(f"the grid holds only {cum[-1]:.3f} of the mass, less than {max(probs)}")
    return np.array([flat[order][min(int(np.searchsorted(cum, p)), cum.size - 1)] for p in probs])


def plot_benefit_harm(result, target: str = "mean", *, mcid: float | None = None,
                      harm_threshold: float | None = None, ax=None, figsize=(6.5, 5.4)):
    """Benefit-risk plane of a :class:`~ketabayes.result.bivariate_result.BivariateResult`.

    The contours are the 50%, 80% and 95% highest-density regions of the joint posterior
    (:func:`hdr_levels` on the plotted grid); the shaded quadrants are the four decision regions, with their exact
    probabilities in the legend; the assumptions of the result (e.g. an assumed correlation) are
    stated under the title.

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
    mixture = _plot_mixture(e, target)
    n = 121 if mixture[0].size <= 5000 else 81       # resolution of the contours; cost ~ points x components
    x = np.linspace(*m1.ppf(np.array([0.002, 0.998])), n)
    y = np.linspace(*m2.ppf(np.array([0.002, 0.998])), n)
    ratio = result.measures[1] in ("RR", "OR", "HR")
    cut1 = float(jt["benefit_cut"])
    cut2 = math.log(jt["harm_cut"]) if ratio else float(jt["harm_cut"])
    x = np.union1d(x, [cut1]) if x[0] < cut1 < x[-1] else x
    dens = _grid_density(mixture, x, y)
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
    probs = (0.95, 0.8, 0.5)            # contour levels must increase: widest region first
    cs = ax.contour(x, yy, dens, levels=hdr_levels(dens, x, y, probs), colors="#0072B2", linewidths=1.0)
    ax.clabel(cs, fmt={lev: f"{p:.0%}" for lev, p in zip(cs.levels, probs)}, fontsize=7, inline=True)
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
    title = f"Benefit-risk plane: joint posterior of the {kind}\n(contours: 50%, 80%, 95% highest-density regions)"
    if result.assumptions:   # under the title, where it cannot collide with the legend below the axes
        title += "\nAssumption: " + "; ".join(result.assumptions)
    ax.set_title(title, fontsize=9)
    if fig.get_layout_engine() is not None:  # below the axes, clear of the contours
        fig.legend(loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    else:
        ax.legend(loc="best", fontsize=8, frameon=True)
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
