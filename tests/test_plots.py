"""Plots: rendered with the Agg backend and checked for content, not pixels.

The expected numbers come from outside the plotting code: log odds ratios
typed from the 2x2 tables, probabilities from ``decision_table`` formatted
here, and region areas integrated from the drawn polygons.
"""

import io
import math

import matplotlib

matplotlib.use("Agg")  # no display in CI; set before pyplot is imported

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402

import ketabayes as kb  # noqa: E402
from ketabayes.reporting.plots import (  # noqa: E402
    REGION_COLORS,
    format_probability,
    plot_benefit_curve,
    plot_decision,
    plot_forest,
)
from ketabayes.result.result import MetaResult  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def magnesium():
    """Exact random-effects fit of the 16 magnesium trials (log OR), MCID 1.25."""
    df = kb.load_dataset("magnesium_mi")
    df["study"] = df["study"] + " " + df["year"].astype(str)
    es = kb.effect_sizes(df, "OR")
    return kb.RandomEffectsModel(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        method="exact", mcid=1.25, seed=11, draws=1000, chains=2)


@pytest.fixture(scope="module")
def ketamine():
    """A published pooled MD (-15.79, 95% CI -32.09 to 0.51) as one estimate, MCID 10 points."""
    sei = (0.51 - (-32.09)) / (2 * 1.959964)
    df = pd.DataFrame({"study": ["IV ketamine (pooled)"], "yi": [-15.79], "sei": [sei]})
    return kb.RandomEffectsModel(df, prior_mu="normal(0, 6.08)", fixed=True, measure="MD").fit(
        method="exact", mcid=10, seed=3)


@pytest.fixture(scope="module")
def magnesium_draws(magnesium):
    """The same posterior without the exact engine: every quantity comes from the draws."""
    return MetaResult(magnesium.tree, dict(magnesium.settings), exact=None)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def _legend_texts(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def _expected_label(name: str, p: float) -> str:
    # written independently of format_probability: two decimals, with < / > at the ends
    if p < 0.005:
        return f"P({name}) < 0.01"
    if p >= 0.995:
        return f"P({name}) > 0.99"
    return f"P({name}) = {p:.2f}"


# ---------------------------------------------------------------------------- forest
def test_forest_rows_and_labels(magnesium):
    fig = plot_forest(magnesium)
    _png(fig)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert len(labels) == len(magnesium.studies) + 2 == 18
    assert labels[:16] == magnesium.studies
    assert labels[-2:] == ["Average effect", "New trial (predictive)"]
    assert "Odds ratio" in ax.get_xlabel()
    # the estimate columns are a table axes of the layout (so a tight bounding box keeps them), sharing the rows
    table = fig.axes[1]
    assert table.get_shared_y_axes().joined(ax, table) and not table.axison
    assert table.get_tightbbox().x1 <= fig.bbox.x1 + 1      # not cut at the figure's edge
    texts = [t.get_text() for a in fig.axes for t in a.texts]
    assert "Observed [95% CI]" in texts and "Posterior [95% CrI]" in texts
    # the estimate column prints the exact posterior median and interval of the average effect, as ratios
    row = magnesium.decision_table(scale="ratio").set_index("target").loc["mean"]
    assert f"{row['median']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in texts
    assert any("Favours treatment" in t for t in texts) and any("Favours control" in t for t in texts)


def test_forest_ratio_scale_log_axis(magnesium):
    ax = plot_forest(magnesium).axes[0]
    assert ax.get_xscale() == "log"
    ticks = [float(t.get_text()) for t in ax.get_xticklabels() if t.get_text()]
    assert 1.0 in ticks and all(t > 0 for t in ticks)  # ratio labels, not log values
    # the no-effect line is at OR = 1 and the MCID lines at 0.8 and 1.25
    vlines = sorted(line.get_xdata()[0] for line in ax.get_lines() if len(set(line.get_xdata())) == 1
                    and line.get_linestyle() in ("-", "--") and np.ptp(line.get_ydata()) == 1)
    assert vlines == pytest.approx([0.8, 1.0, 1.25])


def test_forest_observed_points_are_the_data(magnesium):
    ax = plot_forest(magnesium).axes[0]
    squares = ax.collections[-1].get_offsets()   # the scatter of observed estimates (area: weight)
    sizes = ax.collections[-1].get_sizes()
    # Morton 1984: 1/40 deaths vs 2/36 (0.5 added to each cell, zero-free table: no correction)
    morton = math.exp(math.log((1 * 34) / (39 * 2)))
    # ISIS-4 1995: 2216/29011 vs 2103/29039
    isis = (2216 * (29039 - 2103)) / ((29011 - 2216) * 2103)
    assert squares[0, 0] == pytest.approx(morton, rel=1e-12)
    assert squares[-1, 0] == pytest.approx(isis, rel=1e-12)
    # square areas grow with the random-effects weight 1 / (v_i + tau^2): ISIS-4 has the largest, Morton not
    assert np.argmax(sizes) == len(sizes) - 1 and sizes[0] < sizes[-1]
    circles = next(line for line in ax.get_lines() if line.get_marker() == "o")
    medians = magnesium.summary().set_index("target").loc[magnesium.studies, "median"]
    assert np.log(circles.get_xdata()) == pytest.approx(medians.to_numpy(), abs=1e-9)


def test_forest_difference_scale_is_linear(ketamine):
    ax = plot_forest(ketamine).axes[0]
    assert ax.get_xscale() == "linear"
    assert [t.get_text() for t in ax.get_yticklabels()] == ["IV ketamine (pooled)", "Average effect",
                                                             "New trial (predictive)"]
    assert "Mean difference" in ax.get_xlabel()


def test_forest_draws_on_given_axes(ketamine):
    fig, (ax1, ax2) = plt.subplots(1, 2)
    out = plot_forest(ketamine, ax=ax2)
    assert out is fig
    assert not ax1.has_data() and ax2.has_data()
    # the estimate column is an inset of the given axes, to its right: inside any tight bounding box of ax2
    (table,) = ax2.child_axes
    assert "Posterior [95% CrI]" in [t.get_text() for t in table.texts]


# ---------------------------------------------------------------------------- decision
@pytest.mark.parametrize("target", ["mean", "predictive"])
def test_decision_legend_has_the_probabilities(magnesium, target):
    fig = plot_decision(magnesium, target)
    _png(fig)
    row = magnesium.decision_table(targets=[target]).iloc[0]
    expected = [_expected_label("benefit", row["p_benefit"]),
                _expected_label("practically no effect", row["p_trivial"]),
                _expected_label("harm", row["p_harm"])]
    # the prior of the average effect is overlaid (and named in the title) for the average effect only
    assert _legend_texts(fig.axes[0]) == expected + (["Prior"] if target == "mean" else [])
    assert ("normal(0, 2)" in fig.axes[0].get_title()) == (target == "mean")


def test_decision_predictive_values(magnesium):
    # a case away from the ends, so the plain "= 0.xx" format is exercised
    row = magnesium.decision_table(targets=["predictive"]).iloc[0]
    assert 0.01 < row["p_harm"] < 0.99 and 0.01 < row["p_trivial"] < 0.99
    texts = _legend_texts(plot_decision(magnesium, "predictive").axes[0])
    assert f"P(harm) = {row['p_harm']:.2f}" in texts


def test_decision_three_shaded_regions_match_probabilities(magnesium):
    ax = plot_decision(magnesium, "predictive").axes[0]
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 3
    colors = {tuple(np.round(p.get_facecolor()[0][:3], 3)) for p in polys}
    assert len(colors) == 3
    assert {matplotlib.colors.to_hex(p.get_facecolor()[0][:3]) for p in polys} == {
        c.lower() for c in REGION_COLORS.values()}
    # area of each polygon (density of log OR against log OR) ~ the exact probability
    row = magnesium.decision_table(targets=["predictive"]).iloc[0]
    areas = []
    for p in polys:
        xy = p.get_paths()[0].vertices
        x, y = np.log(xy[:, 0]), xy[:, 1]
        areas.append(0.5 * abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
    # regions are drawn benefit, trivial, harm (left to right when lower is better)
    assert areas == pytest.approx([row["p_benefit"], row["p_trivial"], row["p_harm"]], abs=2e-3)


def test_decision_axis_labels(magnesium, ketamine):
    ax = plot_decision(magnesium).axes[0]
    assert ax.get_xscale() == "log"
    assert "Odds ratio" in ax.get_xlabel() and "density" in ax.get_ylabel()
    ax = plot_decision(ketamine).axes[0]
    assert ax.get_xscale() == "linear"
    assert ax.get_xlabel() == "Mean difference (MD)"
    cuts = sorted(line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"
                  and len(set(line.get_xdata())) == 1)
    assert cuts == pytest.approx([-10.0, 10.0])
    # the prior curve is the prior's density: normal(0, 6.08) at its drawn points
    from scipy import stats

    prior = next(line for line in ax.get_lines() if line.get_label() == "Prior")
    x, y = prior.get_xdata(), prior.get_ydata()
    np.testing.assert_allclose(y, stats.norm.pdf(x, 0.0, 6.08), rtol=1e-10)


def test_decision_ratio_axis_always_labels_one(magnesium):
    ax = plot_decision(magnesium).axes[0]
    assert "1" in [t.get_text() for t in ax.get_xticklabels()]


def test_decision_from_draws_uses_kde(magnesium_draws):
    fig = plot_decision(magnesium_draws, "mean")
    _png(fig)
    ax = fig.axes[0]
    title = ax.get_title()
    assert "kernel" not in title and "NUTS" not in title and "exact" not in title  # no engine jargon
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 3
    row = magnesium_draws.decision_table(targets=["mean"]).iloc[0]
    assert not row["exact"]
    assert _legend_texts(ax)[0] == _expected_label("benefit", row["p_benefit"])


def test_decision_other_mcid(ketamine):
    row = ketamine.decision_table(mcid=5, targets=["mean"]).iloc[0]
    texts = _legend_texts(plot_decision(ketamine, mcid=5).axes[0])
    assert texts[0] == _expected_label("benefit", row["p_benefit"])


def test_decision_needs_an_mcid():
    df = pd.DataFrame({"study": ["A", "B"], "yi": [-1.0, -2.0], "sei": [1.0, 1.0]})
    result = kb.RandomEffectsModel(df, measure="MD", prior_tau="halfnormal(1)").fit(
        method="exact", seed=1, draws=200, chains=1)
    with pytest.raises(kb.KetabayesError, match="MCID"):
        plot_decision(result)


# ---------------------------------------------------------------------------- benefit curve
def test_benefit_curve_difference_scale(ketamine):
    fig = plot_benefit_curve(ketamine, targets=("mean", "predictive"))
    _png(fig)
    ax = fig.axes[0]
    curves = [line for line in ax.get_lines() if line.get_label().startswith(("Average", "Effect in"))]
    assert [c.get_label() for c in curves] == ["Average effect (mu)", "Effect in a new study (predictive)"]
    x, y = curves[0].get_xdata(), curves[0].get_ydata()
    assert x[0] == 0.0 and np.all(np.diff(y) <= 1e-12)
    # at the MCID the curve is P(benefit) of the decision table
    p = ketamine.decision_table(targets=["mean"]).iloc[0]["p_benefit"]
    assert np.interp(10.0, x, y) == pytest.approx(p, abs=2e-3)
    assert "P(benefit" in ax.get_ylabel()


def test_benefit_curve_ratio_scale(magnesium):
    ax = plot_benefit_curve(magnesium, thresholds=[1.0, 1.25, 1.5, 2.0], targets="mean").axes[0]
    assert ax.get_xscale() == "log"
    curve = next(line for line in ax.get_lines() if line.get_label() == "Average effect (mu)")
    # lower is better: thresholds r are drawn at 1/r, and P(OR < 0.8) is the decision table's P(benefit)
    assert curve.get_xdata() == pytest.approx([1.0, 0.8, 1 / 1.5, 0.5])
    p = magnesium.decision_table(targets=["mean"]).iloc[0]["p_benefit"]
    assert curve.get_ydata()[1] == pytest.approx(p, rel=1e-9)


# ---------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("p, text", [(0.4321, "0.43"), (0.0, "< 0.01"), (0.004, "< 0.01"), (0.005, "0.01"),
                                     (0.994, "0.99"), (0.995, "> 0.99"), (1.0, "> 0.99")])
def test_format_probability(p, text):
    assert format_probability(p) == text


def test_forest_from_draws(magnesium_draws):
    ax = plot_forest(magnesium_draws).axes[0]
    circles = next(line for line in ax.get_lines() if line.get_marker() == "o")
    theta = magnesium_draws.tree["posterior"]["theta"]
    expected = [float(np.median(theta.sel(study=s).values)) for s in magnesium_draws.studies]
    assert np.log(circles.get_xdata()) == pytest.approx(expected, abs=1e-12)


def test_forest_of_a_hierarchical_result_has_group_rows():
    from ketabayes.model.hierarchical import HierarchicalModel

    es = kb.effect_sizes(kb.load_dataset("parkinson_adjuvants", form="contrasts"), "MD")
    res = HierarchicalModel(es, by="drug_class", prior_mu="normal(0, 5)", prior_tau="halfnormal(1)").fit(
        "exact", mcid=0.5, seed=1)
    ax = plot_forest(res).axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    groups = [t for t in res.target_names if t.startswith("drug_class=") and "|" not in t]
    assert labels[:len(es)] == res.studies
    assert [g for g in labels if g.startswith("drug_class=")] == groups
    assert labels[-2:] == ["Average effect", "New trial (predictive)"]
    # circles: each trial's shrunken effect, then each group, at its exact posterior median
    circles = next(line for line in ax.get_lines() if line.get_marker() == "o")
    med = [float(res.marginal(g).ppf(np.array([0.5]))[0]) for g in [*res.studies, *groups]]
    np.testing.assert_allclose(circles.get_xdata(), med, atol=1e-9)


def test_figures_display_in_ipython_whatever_the_backend_and_stay_out_of_pyplot(magnesium):
    """A notebook shows a returned ketabayes figure as a PNG -- also without the inline backend, where a
    bare matplotlib Figure is shown as text ("<Figure size ...>") -- and never registers it with pyplot,
    so it is not shown a second time at the end of the cell. Checked through IPython's own formatter."""
    from IPython.core.interactiveshell import InteractiveShell

    from ketabayes.reporting.bma_plots import plot_bma_mean
    from ketabayes.reporting.robustness_plot import plot_tornado

    shell = InteractiveShell.instance()
    figs = [plot_decision(magnesium), plot_forest(magnesium), plot_benefit_curve(magnesium)]
    es = kb.effect_sizes(kb.load_dataset("magnesium_mi").assign(
        study=lambda d: d["study"] + " " + d["year"].astype(str)), "OR")
    figs.append(plot_bma_mean(kb.bma(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")))
    grid = kb.sensitivity_grid(es, prior_mu=["normal(0, 1)", "normal(0, 2)"], mcid=1.25, design="one-at-a-time",
                               progress=False)
    figs.append(plot_tornado(grid.table))
    assert plt.get_fignums() == []
    for fig in figs:
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n", type(fig)
