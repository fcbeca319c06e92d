"""The one result contract (issue #13): every model's result has the same methods, names and columns;
the ratio reporting scale; one loader for every file, which checks the file before trusting it;
ArviZ groups (log_likelihood, prior) on the tree.

Expected values come from closed forms (conjugate normal posteriors, lognormal moments) or from the
marginals' own definitions checked elsewhere against independent quadrature.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ketabayes as kb
from ketabayes.errors import KetabayesError, ResultFileError
from ketabayes.model.hierarchical import HierarchicalModel

CONTRACT = ("summary", "decision_table", "benefit_curve", "marginal", "to_netcdf", "to_dict", "_repr_html_")
Z975 = stats.norm.ppf(0.975)


@pytest.fixture(scope="module")
def magnesium():
    mg = kb.load_dataset("magnesium_mi")
    return kb.effect_sizes(mg.assign(study=mg["study"] + " " + mg["year"].astype(str)), "OR")


@pytest.fixture(scope="module")
def re_result(magnesium):
    return kb.RandomEffectsModel(magnesium, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=1)


@pytest.fixture(scope="module")
def fixed_result(magnesium):
    return kb.RandomEffectsModel(magnesium, prior_mu="normal(0, 2)", fixed=True).fit("exact", mcid=1.25, seed=1)


@pytest.fixture(scope="module")
def hier_result():
    df = kb.simulate_review(seed=3, drugs={"ketamine": 5, "memantine": 4}, conditions={"CRPS": 0.5, "PHN": 0.5})
    return HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)",
                             prior_tau="halfnormal(10)").fit("exact", mcid=10, seed=1)


@pytest.fixture(scope="module")
def binom_result():
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))
    return kb.BinomialModel(mg, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=1)


def test_every_result_has_the_same_methods_and_columns(re_result, hier_result, binom_result):
    for res in (re_result, hier_result, binom_result):
        for name in CONTRACT:
            assert callable(getattr(res, name))
        t = res.decision_table()
        for col in ("target", "kind", "mean", "sd", "median", "ci_low", "ci_high", "p_benefit", "p_trivial",
                    "p_harm", "p_any_benefit", "exact", "ci_prob", "scale", "benefit_direction", "mcid",
                    "benefit_cut", "harm_cut"):
            assert col in t.columns, (type(res).__name__, col)
        assert {"mean", "predictive"} <= set(t["target"])
        s = res.summary()
        assert s.index.equals(pd.RangeIndex(len(s))) and "target" in s.columns
        assert s.loc[s["target"] == "tau", "kind"].tolist() == ["scale"]
        assert {"mean", "predictive"} <= set(s["target"])
        c = res.benefit_curve()
        assert list(c.columns[:3]) == ["target", "threshold", "p_benefit"]
        # thresholds are numbers: selecting on them works
        assert len(t[t.mcid == float(t.mcid.iloc[0])]) == len(t)


def test_hierarchical_targets_use_the_common_naming(hier_result):
    names = hier_result.target_names
    assert "drug=ketamine" in names and "drug=ketamine|condition=CRPS" in names
    row = hier_result.decision_table().set_index("target").loc["drug=ketamine|condition=CRPS"]
    assert row["kind"] == "cell" and row["drug"] == "ketamine" and row["condition"] == "CRPS"


def test_ratio_scale_exponentiates_locations_and_bounds(re_result):
    log = re_result.decision_table().set_index("target")
    rat = re_result.decision_table(scale="ratio").set_index("target")
    for t in ("mean", "predictive"):
        for c in ("median", "ci_low", "ci_high"):
            assert rat.loc[t, c] == pytest.approx(math.exp(log.loc[t, c]), rel=1e-12)
        assert rat.loc[t, "sd_log"] == log.loc[t, "sd"]
        for c in ("p_benefit", "p_trivial", "p_harm"):
            assert rat.loc[t, c] == log.loc[t, c]
        # E[exp(X)] of the exact normal mixture: sum_j w_j exp(m_j + s_j^2 / 2) (lognormal mean)
        m = re_result.marginal(t)
        assert rat.loc[t, "mean"] == pytest.approx(float(np.sum(m.weights * np.exp(m.means + m.sds**2 / 2))))
    assert (rat["scale"] == "ratio").all() and (log["scale"] == "log").all()
    assert rat.loc["mean", "benefit_cut"] == pytest.approx(0.8) and rat.loc["mean", "harm_cut"] == pytest.approx(1.25)


def test_ratio_scale_on_an_additive_measure_is_a_clear_error(hier_result):
    with pytest.raises(KetabayesError, match="ratio measure"):
        hier_result.decision_table(scale="ratio")
    with pytest.raises(KetabayesError, match="scale must be one of"):
        hier_result.summary(scale="odds")


def test_fixed_effect_summary_equals_the_conjugate_posterior(magnesium, fixed_result):
    y, v = magnesium["yi"].to_numpy(), magnesium["vi"].to_numpy()
    prec = 1 / 2.0**2 + np.sum(1 / v)
    mean, sd = np.sum(y / v) / prec, math.sqrt(1 / prec)
    s = fixed_result.summary(scale="ratio").set_index("target")
    assert s.loc["mean", "median"] == pytest.approx(math.exp(mean), rel=1e-9)
    assert s.loc["mean", "ci_low"] == pytest.approx(math.exp(mean - Z975 * sd), rel=1e-8)
    assert s.loc["mean", "mean"] == pytest.approx(math.exp(mean + sd**2 / 2), rel=1e-9)
    assert "tau" not in set(s.index)


@pytest.mark.parametrize("which", ["re", "hier", "binom"])
def test_one_loader_reads_every_result_without_a_model(which, re_result, hier_result, binom_result, tmp_path):
    res = {"re": re_result, "hier": hier_result, "binom": binom_result}[which]
    back = kb.load_result(res.to_netcdf(tmp_path / f"{which}.nc"))
    assert type(back) is type(res)
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    pd.testing.assert_frame_equal(back.summary(), res.summary())


def test_loader_refuses_damaged_foreign_and_edited_files(re_result, tmp_path):
    good = re_result.to_netcdf(tmp_path / "good.nc")
    with pytest.raises(ResultFileError, match="no such file"):
        kb.load_result(tmp_path / "missing.nc")
    empty = tmp_path / "empty.nc"
    empty.write_bytes(b"")
    with pytest.raises(ResultFileError, match="empty"):
        kb.load_result(empty)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ResultFileError, match="not a netCDF"):
        kb.load_result(junk)
    cut = tmp_path / "cut.nc"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ResultFileError, match="truncated|damaged|cannot be read"):
        kb.load_result(cut)
    import xarray as xr

    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_netcdf(foreign, engine="netcdf4")
    with pytest.raises(ResultFileError, match="not a ketabayes result"):
        kb.load_result(foreign)
    # an edited observed value: refused, not silently re-analysed under the old hash
    tree = xr.open_datatree(good, engine="netcdf4").load()
    y = tree["observed_data"]["y"].values.copy()
    y[0] += 0.5
    tree["observed_data"] = xr.DataTree(tree["observed_data"].to_dataset().assign(y=(("study",), y)))
    edited = tmp_path / "edited.nc"
    tree.to_netcdf(edited, engine="netcdf4")
    with pytest.raises(ResultFileError, match="do not match the hash"):
        kb.load_result(edited)


def test_arviz_groups_make_loo_and_prior_posterior_work(re_result, magnesium):
    import arviz as az

    tree = re_result.tree
    assert {"log_likelihood", "prior"} <= set(tree.children)
    ll = tree["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "study")
    # pointwise: log N(y_i | mu, v_i + tau^2) at the stored draws
    post = tree["posterior"]
    c, d, i = 1, 17, 3
    mu, tau = float(post["mu"].values[c, d]), float(post["tau"].values[c, d])
    y, v = magnesium["yi"].to_numpy()[i], magnesium["vi"].to_numpy()[i]
    assert float(ll.values[c, d, i]) == pytest.approx(stats.norm.logpdf(y, mu, math.sqrt(v + tau**2)), rel=1e-12)
    # prior draws follow the priors (KS test against the closed-form CDFs; fixed seed)
    assert stats.kstest(tree["prior"]["mu"].values.ravel(), stats.norm(0, 2).cdf).pvalue > 1e-3
    assert stats.kstest(tree["prior"]["tau"].values.ravel(), stats.halfnorm(scale=0.5).cdf).pvalue > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes when a Pareto k is high; not the point here
        loo = az.loo(tree)
    assert np.isfinite(float(loo.elpd))


def test_repr_html_is_a_compact_table(re_result, hier_result):
    for res in (re_result, hier_result):
        text = res._repr_html_()
        assert "<table" in text and "p_benefit" in text and "prior mu" in text


def test_figures_are_not_left_in_pyplot_so_jupyter_shows_them_once(re_result, hier_result):
    import matplotlib.pyplot as plt

    plt.close("all")
    figs = [kb.plot_forest(re_result), kb.plot_decision(re_result), kb.plot_benefit_curve(re_result),
            kb.plot_forest(hier_result)]
    assert plt.get_fignums() == []          # nothing for the inline backend to show a second time
    assert all(hasattr(f, "savefig") for f in figs)


def test_models_and_bayes_factors_have_notebook_reprs(magnesium):
    model = kb.RandomEffectsModel(magnesium, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    text = model._repr_html_()
    assert text.startswith("<pre") and "prior tau" in text and "16 studies" in text
    bf = kb.bayes_factor(model)
    assert repr(bf).startswith("<BayesFactor: BF10 = ") and "BF10" in bf._repr_html_()


@pytest.mark.parametrize("value, expected", [("0", False), ("1", True), ("off", False)])
def test_progress_default_follows_the_environment(monkeypatch, value, expected):
    from ketabayes._compat import progress_default

    monkeypatch.setenv("KETABAYES_PROGRESS", value)
    assert progress_default() is expected


def test_progress_default_is_off_when_not_a_terminal(monkeypatch):
    import io
    import sys

    from ketabayes._compat import progress_default

    monkeypatch.delenv("KETABAYES_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    if "ipykernel" not in sys.modules:
        assert progress_default() is False


def test_frequentist_table_on_the_ratio_scale(re_result):
    log = re_result.frequentist_table()
    rat = re_result.frequentist_table(scale="ratio")
    for c in ("estimate", "ci_low", "ci_high"):
        np.testing.assert_allclose(rat[c].to_numpy(float), np.exp(log[c].to_numpy(float)), rtol=1e-14)
    assert "se_log" in rat and (rat["scale"] == "ratio").all()


def test_html_of_a_ratio_result_is_on_the_ratio_scale(re_result):
    row = re_result.decision_table(scale="ratio").set_index("target").loc["mean"]
    assert f"{row['median']:.3g}" in re_result._repr_html_()


def test_large_exact_fit_does_not_store_study_draws_and_stays_small():
    """k = 20,000 (SIMULATED estimates): 4 x 1,000 draws of every study effect would take 640 MB per group."""
    import tracemalloc

    rng = np.random.default_rng(7)  # SIMULATED data, only for the memory check
    k = 20_000
    v = rng.uniform(0.02, 0.2, k)
    df = pd.DataFrame({"study": [f"SIMULATED {i}" for i in range(k)], "yi": rng.normal(0.1, np.sqrt(v + 0.01)),
                       "vi": v})
    tracemalloc.start()
    res = kb.RandomEffectsModel(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=0.1, seed=1, frequentist=False)
    table = res.decision_table()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 250e6, f"peak {peak / 1e6:.0f} MB"
    assert "theta" not in res.tree["posterior"].data_vars and "log_likelihood" not in res.tree.children
    assert res.settings["study_draws"] is False and "not stored" in repr(res)
    assert table["exact"].all()
    # the exact marginal of a study effect is still available; a small fit stores the draws as before
    m = res.marginal("SIMULATED 5")
    assert np.isfinite(m.mean) and m.sd > 0
    small = kb.RandomEffectsModel(df.iloc[:50], prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
        "exact", seed=1, frequentist=False)
    assert small.settings["study_draws"] is True and "theta" in small.tree["posterior"].data_vars


def test_hierarchical_tree_has_log_likelihood_and_prior_groups(hier_result):
    import arviz as az

    tree = hier_result.tree
    assert {"log_likelihood", "prior"} <= set(tree.children)
    ll = tree["log_likelihood"]["y"]
    study = hier_result.studies[2]
    c, d = 1, 11
    theta = float(tree["posterior"]["effect"].sel(target=study).values[c, d])
    y = float(tree["observed_data"]["y"].sel(study=study))
    v = float(tree["constant_data"]["vi"].sel(study=study))
    assert float(ll.sel(study=study).values[c, d]) == pytest.approx(stats.norm.logpdf(y, theta, math.sqrt(v)),
                                                                    rel=1e-12)
    assert {"mu", "tau", "sd_drug", "sd_condition"} <= set(tree["prior"].data_vars)
    assert stats.kstest(tree["prior"]["mu"].values.ravel(), stats.norm(0, 50).cdf).pvalue > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes high Pareto k; the point is that it runs
        assert np.isfinite(float(az.loo(tree).elpd))


def test_peto_or_results_read_thresholds_as_ratios():
    df = pd.DataFrame({"study": ["A", "B", "C"], "yi": [-0.3, -0.1, -0.5], "vi": [0.04, 0.09, 0.05]})
    res = kb.RandomEffectsModel(df, measure="PETO_OR", prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=1)
    t = res.decision_table(scale="ratio").iloc[0]
    assert t["benefit_cut"] == pytest.approx(0.8) and t["harm_cut"] == pytest.approx(1.25)
