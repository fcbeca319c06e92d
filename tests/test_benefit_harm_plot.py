"""Benefit-risk plane and next-trial plots: rendered with Agg, checked for content (not pixels)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

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
    assert any("assumed 0.3" in t.get_text() for t in fig.texts)
    plt.close(fig)


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
