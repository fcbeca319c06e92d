"""Time-course plot (ketabayes.reporting.time_plot): checked by content, not pixels.

Data: dat.ishak2007 (REAL; metadat) from tests/data/metafor_multiarm.json, four time windows, the
within-study correlation across time ASSUMED 0.5. Expected probabilities are computed here from
the exact marginals' CDFs at the thresholds (P(beta < -MCID), P(-MCID < beta < MCID)).
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import ketabayes as kb  # noqa: E402
from ketabayes.errors import KetabayesError  # noqa: E402
from ketabayes.reporting.time_plot import plot_time_course, time_course_table  # noqa: E402

TIMES = ["immediate", "short", "medium", "long"]


@pytest.fixture(scope="module")
def result():
    d = json.loads((Path(__file__).parent / "data" / "metafor_multiarm.json").read_text())["ishak2007"]
    data = pd.DataFrame(d["long"]).assign(time=lambda x: x["time"].map(dict(enumerate(TIMES, 1))))
    m = kb.MultivariateModel.from_time_points(data, rho_time=0.5, rho_between=0.7, prior_tau="halfnormal(10)")
    return m.fit(mcid=25.0, seed=1, draws=10, chains=1, frequentist=False)


def test_lines_are_the_decision_probabilities(result):
    fig = plot_time_course(result)
    assert isinstance(fig, Figure) and plt.get_fignums() == []
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    assert [t.get_text() for t in ax.get_xticklabels()] == TIMES
    for kind in ("mean", "predictive"):
        cdf = [result.marginal(f"{kind}|time={t}").cdf(np.array([-25.0, 25.0])) for t in TIMES]
        p_benefit = [float(c[0]) for c in cdf]
        p_trivial = [float(c[1] - c[0]) for c in cdf]
        np.testing.assert_allclose(lines[f"P(benefit > MCID), {kind}"].get_ydata(), p_benefit, atol=1e-12)
        np.testing.assert_allclose(lines[f"P(practically no effect), {kind}"].get_ydata(), p_trivial, atol=1e-12)
    # with the MCID at 25 UPDRS points the verdict changes over time (the data decide, not the plot)
    pb = lines["P(benefit > MCID), mean"].get_ydata()
    assert pb.max() - pb.min() > 0.2


def test_other_mcid_and_one_kind(result):
    fig = plot_time_course(result, kinds=("predictive",), mcid=20.0, title="x")
    assert len(fig.axes[0].get_lines()) == 2 and fig.axes[0].get_title() == "x"
    tab = time_course_table(result, kind="predictive", mcid=20.0)
    assert list(tab["time"]) == TIMES
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), tab["p_benefit"], atol=0)


def test_refuses_results_without_time_windows():
    arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["a", "b", "placebo"], "mi": [-3.0, -4.0, -1.0],
                         "sdi": [4.0, 4.0, 4.5], "ni": [30, 30, 30]})  # SIMULATED
    res = kb.MultivariateModel.from_contrasts(kb.multiarm_contrasts(arms, "MD", control="placebo"),
                                              prior_tau="halfnormal(2)").fit(mcid=1.0, seed=1, draws=5, chains=1)
    with pytest.raises(KetabayesError, match="from_time_points"):
        plot_time_course(res)
