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
        for col in ("target", "kind", "mean", "sd", "median", "ci_low", "ci_high", "hpd_low", "hpd_high", "p_benefit",
                    "p_trivial", "p_harm", "p_any_benefit", "exact", "ci_prob", "scale", "benefit_direction", "mcid",
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


def test_every_model_class_shows_its_description_in_a_notebook(magnesium):
    """repr and the notebook form of every model class are its describe() text (one mixin)."""
    from ketabayes.data.simulate import simulate_review

    df = simulate_review(seed=1, binary={})  # SIMULATED
    models = [kb.RandomEffectsModel(magnesium, prior_tau="halfnormal(0.5)"),
              kb.HierarchicalModel(magnesium.assign(drug="Mg"), by=[], prior_tau="halfnormal(0.5)"),
              kb.BinomialModel(df, by="drug"),
              kb.BivariateModel(pd.DataFrame({"study": ["A", "B", "C"], "yi1": [-10.0, -5.0, 2.0],
                                              "vi1": [20.0, 25.0, 30.0], "yi2": [0.2, 0.1, 0.4],
                                              "vi2": [0.1, 0.2, 0.15]}), rho_within=0.0,
                                prior_tau=("halfnormal(10)", "halfnormal(0.5)"))]
    for m in models:
        text = m.describe()
        assert repr(m) == text and m._repr_html_().startswith("<pre") and text.splitlines()[0] in m._repr_html_()


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


def test_hierarchical_log_likelihood_is_marginal_over_the_trial_effect(hier_result):
    """log N(y_i | mu + drug effect + condition effect, v_i + tau^2) at the draws (the trial's own effect integrated
    out, as in the random-effects model): not the conditional N(y_i | theta_i, v_i)."""
    tree = hier_result.tree
    ll = tree["log_likelihood"]["y"]
    post = tree["posterior"]
    df = hier_result.model.data
    for i in (0, 2, 7):
        study = hier_result.studies[i]
        drug, cond = df["drug"].iloc[i], df["condition"].iloc[i]
        c, d = 1, 11 + i
        eta = float(post["mu"].values[c, d] + post["drug_effect"].sel(drug=drug).values[c, d]
                    + post["condition_effect"].sel(condition=cond).values[c, d])
        tau = float(post["tau"].values[c, d])
        y = float(tree["observed_data"]["y"].sel(study=study))
        v = float(tree["constant_data"]["vi"].sel(study=study))
        assert float(ll.sel(study=study).values[c, d]) == pytest.approx(
            stats.norm.logpdf(y, eta, math.sqrt(v + tau**2)), rel=1e-12)
    assert {"mu", "tau", "sd_drug", "sd_condition", "drug_effect", "effect"} <= set(tree["prior"].data_vars)
    assert stats.kstest(tree["prior"]["mu"].values.ravel(), stats.norm(0, 50).cdf).pvalue > 1e-3
    # a group effect's prior: N(0, sd^2) with sd ~ halfnormal(10), i.e. |u| / sd ~ |N(0, 1)| given sd
    u = tree["prior"]["drug_effect"].values[..., 0].ravel() / tree["prior"]["sd_drug"].values.ravel()
    assert stats.kstest(u, stats.norm.cdf).pvalue > 1e-3


def test_peto_or_results_read_thresholds_as_ratios():
    df = pd.DataFrame({"study": ["A", "B", "C"], "yi": [-0.3, -0.1, -0.5], "vi": [0.04, 0.09, 0.05]})
    res = kb.RandomEffectsModel(df, measure="PETO_OR", prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=1)
    t = res.decision_table(scale="ratio").iloc[0]
    assert t["benefit_cut"] == pytest.approx(0.8) and t["harm_cut"] == pytest.approx(1.25)


# ---------------------------------------------------------------------------------------------------------------
# every model: HPD columns and ArviZ groups (bivariate, multivariate and model-averaged results as well)
# ---------------------------------------------------------------------------------------------------------------
# SIMULATED toy data (trial B reports efficacy only, D harm only)
BIV = pd.DataFrame({"study": list("ABCDE"), "yi1": [-20, -10, -14, np.nan, -25], "vi1": [64, 49, 81, np.nan, 100],
                    "yi2": [0.9, np.nan, 1.5, 0.4, 1.2], "vi2": [0.3, np.nan, 0.5, 0.2, 0.6]})
# SIMULATED arms: T1 is a three-arm trial (two contrasts sharing the placebo arm)
ARMS = pd.DataFrame({"study": ["T1"] * 3 + ["T2"] * 2 + ["T3"] * 2,
                     "arm": ["low", "high", "placebo", "high", "placebo", "low", "placebo"],
                     "mi": [-3.0, -4.0, -1.0, -2.5, -1.5, -2.0, -0.5], "sdi": [4.0, 4.0, 4.5, 4.0, 4.0, 4.0, 4.0],
                     "ni": [30, 30, 30, 25, 25, 40, 40]})


@pytest.fixture(scope="module")
def biv_result():
    return kb.BivariateModel(BIV, rho_within=0.2, prior_mu=("normal(0, 50)", "normal(0, 3)"),
                             prior_tau=("halfnormal(10)", "halfnormal(0.5)")).fit(mcid=10, harm_threshold=1.25, seed=1)


@pytest.fixture(scope="module")
def mv_result():
    c = kb.multiarm_contrasts(ARMS, "MD", control="placebo")
    return kb.MultivariateModel.from_contrasts(c, prior_mu="normal(0, 10)", prior_tau="halfnormal(2)").fit(
        seed=1, mcid=1.0)


@pytest.fixture(scope="module")
def bma_result(magnesium):
    return kb.bma(magnesium, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25, seed=1)


@pytest.fixture(scope="module")
def results(re_result, hier_result, binom_result, biv_result, mv_result, bma_result):
    return {"re": re_result, "hier": hier_result, "binom": binom_result, "biv": biv_result, "mv": mv_result,
            "bma": bma_result}


@pytest.mark.parametrize("which", ["re", "hier", "binom", "biv", "mv", "bma"])
def test_every_table_reports_the_shortest_interval_beside_the_equal_tailed_one(which, results):
    res = results[which]
    for tab in (res.summary(), res.decision_table()):
        cols = list(tab.columns)
        assert cols.index("hpd_low") == cols.index("ci_high") + 1 and cols.index("hpd_high") == cols.index("hpd_low") + 1
        assert (tab["hpd_low"] <= tab["hpd_high"]).all()
        # the shortest interval is never longer than the equal-tailed one (which also holds ci_prob)
        assert ((tab["hpd_high"] - tab["hpd_low"]) <= (tab["ci_high"] - tab["ci_low"]) * (1 + 1e-9) + 1e-12).all()
        for row in tab.itertuples():
            m = res.marginal(row.target)
            held = float(m.cdf(np.array(row.hpd_high))) - float(m.prob_below(np.array(row.hpd_low)))
            # exact marginals: at least ci_prob; discrete ones (the BMA tau: weighted quadrature nodes) within a node
            assert held >= row.ci_prob - (1e-6 if m.exact else 2e-3), (row.target, held)


def test_hpd_on_the_ratio_scale_is_the_shortest_interval_of_the_ratio(re_result):
    """Against a brute-force highest-density region of exp(X) on a dense grid (X the exact normal mixture)."""
    tab = re_result.decision_table(scale="ratio").set_index("target")
    log = re_result.decision_table().set_index("target")
    for t in ("mean", "predictive"):
        m = re_result.marginal(t)
        lo, hi = np.exp(m.ppf(np.array([1e-6, 1 - 1e-6])))
        r = np.linspace(lo, hi, 400_001)
        dens = sum(w * stats.norm.pdf(np.log(r), mu, s) for w, mu, s in zip(m.weights, m.means, m.sds)) / r
        dr = r[1] - r[0]
        lo_c, hi_c = 0.0, float(dens.max())
        for _ in range(200):
            c = 0.5 * (lo_c + hi_c)
            lo_c, hi_c = (c, hi_c) if dens[dens > c].sum() * dr > 0.95 else (lo_c, c)
        region = r[dens > lo_c]
        assert tab.loc[t, "hpd_low"] == pytest.approx(region[0], abs=3 * dr)
        assert tab.loc[t, "hpd_high"] == pytest.approx(region[-1], abs=3 * dr)
        # not exp of the log-scale HPD
        assert abs(tab.loc[t, "hpd_low"] - math.exp(log.loc[t, "hpd_low"])) > 100 * dr


ARVIZ = ["re", "hier", "biv", "mv", "bma"]


@pytest.mark.parametrize("which", ARVIZ)
def test_arviz_loo_psense_and_prior_posterior_plot_run_on_every_tree(which, results):
    import arviz as az
    import matplotlib.pyplot as plt

    tree = results[which].tree
    assert {"log_likelihood", "prior", "log_prior"} <= set(tree.children)
    loo = az.loo(tree)  # warnings are errors: no Pareto-k warning either (marginal likelihoods)
    assert np.isfinite(float(loo.elpd)) and float(np.max(loo.pareto_k.values)) < 0.7
    assert loo.pareto_k.sizes["study"] == len(results[which].studies)
    for group in ("prior", "likelihood"):
        sens = az.psense(tree, group=group)
        assert set(sens.data_vars) == set(tree["posterior"].data_vars)
        assert all(np.all(np.isfinite(sens[v].values)) for v in sens.data_vars)
    pc = az.plot_prior_posterior(tree)
    lines = pc.viz["dist"]
    assert set(lines.data_vars) == set(tree["posterior"].data_vars) == set(tree["prior"].data_vars)
    assert list(lines["group"].values) == ["prior", "posterior"]
    plt.close("all")


@pytest.mark.parametrize("which", ["biv", "mv", "bma"])
def test_arviz_groups_survive_the_netcdf_round_trip(which, results, tmp_path):
    res = results[which]
    back = kb.load_result(res.to_netcdf(tmp_path / f"{which}.nc"))
    for g in ("log_likelihood", "prior", "log_prior", "posterior"):
        xr_eq = back.tree[g].to_dataset().equals(res.tree[g].to_dataset())
        assert xr_eq, g
    pd.testing.assert_frame_equal(back.summary(), res.summary())


def test_bivariate_pointwise_likelihood_is_the_pair_of_estimates(biv_result):
    """log N2(y_i | mu, Sigma + S_i) over the reported outcomes (scipy), at one draw."""
    tree = biv_result.tree
    post = tree["posterior"]
    c, d = 2, 40
    mu = post["mu"].values[c, d]
    t1, t2 = post["tau"].values[c, d]
    rb = float(post["rho_between"].values[c, d])
    ll = tree["log_likelihood"]["y"].values[c, d]
    y1, v1, y2, v2 = (BIV[k].to_numpy(float) for k in ("yi1", "vi1", "yi2", "vi2"))
    for i in range(len(BIV)):
        if np.isfinite(y1[i]) and np.isfinite(y2[i]):
            cov = [[t1**2 + v1[i], rb * t1 * t2 + 0.2 * math.sqrt(v1[i] * v2[i])],
                   [rb * t1 * t2 + 0.2 * math.sqrt(v1[i] * v2[i]), t2**2 + v2[i]]]
            ref = stats.multivariate_normal(mu, cov).logpdf([y1[i], y2[i]])
        elif np.isfinite(y1[i]):
            ref = stats.norm.logpdf(y1[i], mu[0], math.sqrt(t1**2 + v1[i]))
        else:
            ref = stats.norm.logpdf(y2[i], mu[1], math.sqrt(t2**2 + v2[i]))
        assert ll[i] == pytest.approx(ref, rel=1e-12), BIV["study"][i]
    # log prior: normal and half-normal priors, LKJ(1) = uniform on (-1, 1)
    lp = tree["log_prior"]
    assert float(lp["mu"].values[c, d, 1]) == pytest.approx(stats.norm(0, 3).logpdf(mu[1]), rel=1e-12)
    assert float(lp["tau"].values[c, d, 0]) == pytest.approx(stats.halfnorm(scale=10).logpdf(t1), rel=1e-12)
    assert float(lp["rho_between"].values[c, d]) == pytest.approx(math.log(0.5), rel=1e-12)
    # prior draws: (rho + 1) / 2 ~ Beta(1, 1), tau ~ half-normal
    assert stats.kstest((tree["prior"]["rho_between"].values.ravel() + 1) / 2, "uniform").pvalue > 1e-3
    assert stats.kstest(tree["prior"]["tau"].values[..., 1].ravel(), stats.halfnorm(scale=0.5).cdf).pvalue > 1e-3


def test_multivariate_pointwise_likelihood_is_the_trials_vector(mv_result):
    """log N(y_i | beta 1, S_i + tau^2 K_i) of each trial's whole vector (scipy), K_i with rho = 1/2."""
    tree = mv_result.tree
    post = tree["posterior"]
    c, d = 3, 99
    beta, tau = float(post["beta"].values[c, d, 0]), float(post["tau"].values[c, d])
    S = tree["constant_data"]["S"].values
    y = tree["observed_data"]["y"].values
    trial = tree["constant_data"]["trial"].values
    ll = tree["log_likelihood"]["y"]
    assert list(ll["study"].values) == ["T1", "T2", "T3"]
    for t in ("T1", "T2", "T3"):
        idx = np.flatnonzero(trial == t)
        K = 0.5 * np.eye(idx.size) + 0.5
        ref = stats.multivariate_normal(np.full(idx.size, beta), S[np.ix_(idx, idx)] + tau**2 * K).logpdf(y[idx])
        assert float(ll.sel(study=t).values[c, d]) == pytest.approx(float(ref), rel=1e-12), t
    assert len(np.flatnonzero(trial == "T1")) == 2  # the three-arm trial's two contrasts are one unit
    lp = tree["log_prior"]
    assert float(lp["beta"].values[c, d, 0]) == pytest.approx(stats.norm(0, 10).logpdf(beta), rel=1e-12)
    assert float(lp["tau"].values[c, d]) == pytest.approx(stats.halfnorm(scale=2).logpdf(tau), rel=1e-12)
    assert stats.kstest(tree["prior"]["tau"].values.ravel(), stats.halfnorm(scale=2).cdf).pvalue > 1e-3


def test_bma_tree_holds_joint_draws_of_the_averaged_posterior(bma_result, magnesium):
    """Draws: the model by its posterior probability; likelihood and log prior under the drawn model."""
    tree = bma_result.tree
    post = tree["posterior"]
    labels = list(tree["constant_data"]["model"].values)
    model = post["model"].values.ravel()
    n = model.size
    probs = bma_result.models.set_index("model")["post_prob"]
    for k, lab in enumerate(labels):  # multinomial counts within 5 binomial SDs
        p = probs[lab]
        assert abs(np.mean(model == k) - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12, lab
    y, v = magnesium["yi"].to_numpy(), magnesium["vi"].to_numpy()
    mu, tau = post["mu"].values.ravel(), post["tau"].values.ravel()
    ll = tree["log_likelihood"]["y"].values.reshape(n, -1)
    lp = {k: tree["log_prior"][k].values.ravel() for k in ("model", "mu", "tau")}
    for k, lab in enumerate(labels):
        rows = np.flatnonzero(model == k)[:3]
        for r in rows:
            assert ll[r] == pytest.approx(stats.norm.logpdf(y, mu[r], np.sqrt(v + tau[r] ** 2)), rel=1e-12)
            assert lp["model"][r] == pytest.approx(math.log(0.25))
            assert lp["mu"][r] == (pytest.approx(stats.norm(0, 1).logpdf(mu[r])) if "H1" in lab else 0.0)
            assert lp["tau"][r] == (pytest.approx(stats.halfnorm(scale=0.5).logpdf(tau[r])) if "RE" in lab else 0.0)
            if "H0" in lab:
                assert mu[r] == 0.0
            if "FE" in lab:
                assert tau[r] == 0.0
    # the prior group: models by their prior probabilities, mu = 0 exactly under no effect
    pm = tree["prior"]["model"].values.ravel()
    for k in range(4):
        assert abs(np.mean(pm == k) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / n)
    pmu = tree["prior"]["mu"].values.ravel()
    h1 = np.isin(pm, [k for k, lab in enumerate(labels) if "H1" in lab])
    assert np.all(pmu[~h1] == 0.0) and stats.kstest(pmu[h1], stats.norm(0, 1).cdf).pvalue > 1e-3
