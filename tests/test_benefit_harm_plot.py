"""Benefit-risk plane and next-trial plots: rendered with Agg, checked for content (not pixels)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import ketabayes as kb  # noqa: E402
from ketabayes.reporting.benefit_harm_plot import plot_benefit_harm, plot_next_trial  # noqa: E402
from ketabayes.reporting.plots import format_probability  # noqa: E402


def test_benefit_harm_plane_labels_probabilities():
    res = kb.BivariateModel.from_published((-15.79, -32.09, 0.51, "MD"), (3.26, 1.05, 10.09, "RR"),
                                           rho=0.3).fit(mcid=10, harm_threshold=1.25, seed=1)
    fig = plot_benefit_harm(res)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    jt = res.joint_table().set_index("target").loc["mean"]
    assert any(f"benefit, acceptable harm: P = {format_probability(jt['p_benefit_acceptable_harm'])}" == s
               for s in labels)
    assert ax.get_yscale() == "log"
    assert "assumed 0.3" in ax.get_title()
    # the three contours are labelled as highest-density regions
    assert sorted(t.get_text() for t in ax.texts) == ["50%", "80%", "95%"]
    plt.close(fig)


def _mixture_pdf(pts, w, m, c):
    from scipy import stats

    return sum(wk * stats.multivariate_normal(mk, ck).pdf(pts) for wk, mk, ck in zip(w, m, c))


def test_hdr_levels_of_a_bivariate_normal_match_the_closed_form():
    """One bivariate normal: the p-HDR is the ellipse {chi^2_2 distance <= -2 log(1 - p)}, i.e. the density
    level (1 - p) / (2 pi sqrt(det C))."""
    from ketabayes.reporting.benefit_harm_plot import hdr_levels

    m, c = np.array([-15.0, 1.2]), np.array([[60.0, 2.0], [2.0, 0.35]])
    x = np.linspace(m[0] - 6 * np.sqrt(c[0, 0]), m[0] + 6 * np.sqrt(c[0, 0]), 301)
    y = np.linspace(m[1] - 6 * np.sqrt(c[1, 1]), m[1] + 6 * np.sqrt(c[1, 1]), 301)
    X, Y = np.meshgrid(x, y)
    dens = _mixture_pdf(np.dstack([X, Y]), [1.0], [m], [c])
    probs = np.array([0.5, 0.8, 0.95])
    expected = (1 - probs) / (2 * np.pi * np.sqrt(np.linalg.det(c)))
    assert np.allclose(hdr_levels(dens, x, y, probs), expected, rtol=0.01)


def test_hdr_levels_hold_their_probability_for_a_mixture():
    """P(density(X) >= level_p) = p for X drawn from a skewed three-component mixture (Monte Carlo,
    200,000 draws; the density at the draws from scipy)."""
    from ketabayes.reporting.benefit_harm_plot import hdr_levels

    w = np.array([0.6, 0.3, 0.1])
    m = np.array([[0.0, 0.0], [2.0, 1.0], [5.0, -1.0]])
    c = np.array([[[1.0, 0.3], [0.3, 1.0]], [[2.0, -0.5], [-0.5, 0.5]], [[4.0, 0.0], [0.0, 3.0]]])
    x, y = np.linspace(-6, 14, 401), np.linspace(-8, 7, 301)
    X, Y = np.meshgrid(x, y)
    probs = (0.5, 0.8, 0.95)
    levels = hdr_levels(_mixture_pdf(np.dstack([X, Y]), w, m, c), x, y, probs)
    rng = np.random.default_rng(7)
    n = 200_000
    comp = rng.choice(3, size=n, p=w)
    draws = m[comp] + np.einsum("nij,nj->ni", np.linalg.cholesky(c)[comp], rng.standard_normal((n, 2)))
    dens = _mixture_pdf(draws, w, m, c)
    for p, lev in zip(probs, levels):
        assert abs(np.mean(dens >= lev) - p) < 4 * np.sqrt(p * (1 - p) / n) + 0.002, p   # + grid resolution


def test_next_trial_plot():
    # SIMULATED toy data
    r = kb.RandomEffectsModel.from_arrays([-20.0, -10.0, -14.0], [64.0, 49.0, 81.0], measure="MD",
                                          prior_mu="normal(0, 50)", prior_tau="halfnormal(10)").fit(
        mcid=10, seed=1, frequentist=False)
    nt = kb.next_trial(r, [20, 100], sd=20)
    fig = plot_next_trial(nt)
    line = fig.axes[0].get_lines()[0]
    assert np.allclose(line.get_ydata(), nt.table["assurance_benefit"].iloc[:2])
    plt.close(fig)


def test_grid_density_equals_the_mixture_pdf():
    from ketabayes.reporting.benefit_harm_plot import _grid_density

    w = np.array([0.6, 0.3, 0.1])
    m = np.array([[0.0, 0.0], [2.0, 1.0], [5.0, -1.0]])
    c = np.array([[[1.0, 0.3], [0.3, 1.0]], [[2.0, -0.5], [-0.5, 0.5]], [[4.0, 0.0], [0.0, 3.0]]])
    x, y = np.linspace(-6, 14, 31), np.linspace(-8, 7, 23)
    X, Y = np.meshgrid(x, y)
    assert np.allclose(_grid_density((w, m, c), x, y, chunk=2), _mixture_pdf(np.dstack([X, Y]), w, m, c),
                       rtol=1e-10, atol=1e-14)


def test_plotted_density_of_a_trial_level_fit_is_within_one_percent_of_the_exact_mixture():
    """Trial-level fits have ~150,000 mixture components; the plot merges the nodes of the between-trial
    correlation (moment matching). Compared here with the exact mixture density written out directly."""
    from ketabayes.reporting.benefit_harm_plot import MAX_PLOT_COMPONENTS, _grid_density, _plot_mixture

    toy = pd.DataFrame({"study": list("ABCDEF"), "yi1": [-20, -10, -14, np.nan, -25, 2],   # SIMULATED
                        "vi1": [64, 49, 81, np.nan, 100, 90], "yi2": [0.9, np.nan, 1.5, 0.4, 1.2, 0.1],
                        "vi2": [0.3, np.nan, 0.5, 0.2, 0.6, 0.4]})
    res = kb.BivariateModel(toy, rho_within=0.2, prior_mu=("normal(0, 50)", "normal(0, 3)"),
                            prior_tau=("halfnormal(10)", "halfnormal(0.5)")).fit(mcid=10, harm_threshold=1.25,
                                                                                  seed=1)
    e = res.exact
    for target in ("mean", "predictive"):
        w, m, c = e.components(target)
        assert w.size > MAX_PLOT_COMPONENTS
        merged = _plot_mixture(e, target)
        assert merged[0].size < MAX_PLOT_COMPONENTS
        x = np.linspace(*e.marginal(target, 0).ppf(np.array([0.01, 0.99])), 13)
        y = np.linspace(*e.marginal(target, 1).ppf(np.array([0.01, 0.99])), 11)
        X, Y = np.meshgrid(x, y)
        w = w / w.sum()
        inv, det = np.linalg.inv(c), np.linalg.det(c)
        d = np.stack([X.ravel(), Y.ravel()], 1)[:, None, :] - m[None, :, :]        # (points, components, 2)
        q = np.einsum("pki,kij,pkj->pk", d, inv, d)
        exact = (np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(det))) @ w
        plotted = _grid_density(merged, x, y).ravel()
        assert np.max(np.abs(plotted - exact)) < 0.01 * exact.max(), target
    fig = plot_benefit_harm(res)
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["50%", "80%", "95%"]
