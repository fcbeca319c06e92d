"""RandomEffectsModel end to end: exact engine vs NUTS, reproducibility, provenance, saving.

Expected values come from a different algorithm (NUTS vs exact integration, within
Monte-Carlo error estimated by ArviZ) or from closed forms written out here (the
conjugate normal posterior of the fixed-effect model). NUTS runs are few and small:
one 2 x 1000 fit shared by several tests, five 2 x 30 runs and one fixed-effect fit
(plus one slow-marked fit).
"""

from __future__ import annotations

import copy
import json
import math
import re
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ketabayes as kb
from ketabayes.errors import ConvergenceError, ConvergenceWarning, DataWarning
from ketabayes.model.random_effects import RandomEffectsModel
from ketabayes.result.result import load_result

PRIORS = {"prior_mu": "normal(0, 2)", "prior_tau": "halfnormal(0.5)"}
TARGET_COLUMNS = ["target", "kind", "mean", "sd", "median", "ci_low", "ci_high", "hpd_low", "hpd_high", "p_benefit",
                  "p_trivial", "p_harm", "p_any_benefit", "exact", "ci_prob", "scale", "benefit_direction", "mcid",
                  "benefit_cut", "harm_cut"]
Z975 = 1.959963984540054


@pytest.fixture(scope="module")
def model(magnesium_or):
    return RandomEffectsModel(magnesium_or, **PRIORS)


@pytest.fixture(scope="module")
def exact(model):
    return model.fit("exact", mcid=1.25, seed=1, chains=2, draws=1000)


@pytest.fixture(scope="module")
def nuts(model, fit_nuts):
    return fit_nuts(model, mcid=1.25, seed=1, chains=2, draws=1000, tune=1000)


def _short_nuts(model, seed, **kwargs):
    """A deliberately too-short NUTS run (2 x 30 draws after 30 tuning steps)."""
    return model.fit("nuts", mcid=1.25, seed=seed, chains=2, draws=30, tune=30, **kwargs)


# ---------------------------------------------------------------------------
# (a) exact vs NUTS
# ---------------------------------------------------------------------------
def test_nuts_tree_has_the_arviz_groups(nuts, magnesium_or):
    """log_likelihood N(y_i | mu, v_i + tau^2) at the NUTS draws; prior draws of every posterior variable (the
    non-centred raw effects z, z_new standard normal); log_prior of mu and tau; psense and the plot run."""
    import matplotlib.pyplot as plt
    from scipy import stats

    tree = nuts.tree
    post = tree["posterior"]
    assert set(tree["prior"].data_vars) == set(post.data_vars)
    c, d, i = 1, 123, 5
    mu, tau = float(post["mu"].values[c, d]), float(post["tau"].values[c, d])
    y, v = magnesium_or["yi"].to_numpy()[i], magnesium_or["vi"].to_numpy()[i]
    assert float(tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(
        stats.norm.logpdf(y, mu, math.sqrt(v + tau**2)), rel=1e-12)
    assert float(tree["log_prior"]["tau"].values[c, d]) == pytest.approx(stats.halfnorm(scale=0.5).logpdf(tau))
    assert stats.kstest(tree["prior"]["z"].values.ravel(), "norm").pvalue > 1e-3
    sens = az.psense(tree, group="prior")
    assert set(sens.data_vars) == set(post.data_vars)
    az.plot_prior_posterior(tree)
    plt.close("all")


def test_exact_and_nuts_agree_within_monte_carlo_error(exact, nuts):
    post = nuts.posterior
    mcse = az.mcse(nuts.tree, var_names=["mu", "tau", "theta_new"])
    exact_means = {"mu": exact.marginal("mean").mean, "tau": exact.summary().set_index("target").loc["tau", "mean"],
                   "theta_new": exact.marginal("predictive").mean}
    for v, want in exact_means.items():
        got = float(post[v].values.mean())
        se = float(mcse[v].values)
        assert 0 < se < 0.05, v
        assert abs(got - want) < 4 * se, f"{v}: NUTS {got:.4f} vs exact {want:.4f} (MCSE {se:.4f})"
    # the exact tau mean also agrees with the exact engine's own independent draws (same target)
    assert float(exact.posterior["tau"].values.mean()) == pytest.approx(exact_means["tau"], abs=0.02)


def test_exact_and_nuts_decision_probabilities_agree(exact, nuts):
    te, tn = exact.decision_table().set_index("target"), nuts.decision_table().set_index("target")
    for col in ("p_benefit", "p_trivial", "p_harm", "p_any_benefit"):
        np.testing.assert_allclose(tn[col].to_numpy(), te[col].to_numpy(), atol=0.03, err_msg=col)
    assert te["exact"].all() and not tn["exact"].any()


def test_nuts_has_no_divergences_and_passes_diagnostics(nuts):
    d = nuts.diagnostics
    assert d.divergences == 0
    assert d.ok, str(d)
    assert d.max_rhat <= 1.01
    assert d.n_draws == 2000
    # independent count straight from the sampler statistics
    assert int(np.asarray(nuts.tree["sample_stats"]["diverging"].values).sum()) == 0


# ---------------------------------------------------------------------------
# (b) reproducibility
# ---------------------------------------------------------------------------
def _posterior_arrays(res):
    post = res.posterior
    return {v: post[v].values for v in post.data_vars}


def _assert_same_draws(a, b):
    pa, pb = _posterior_arrays(a), _posterior_arrays(b)
    assert sorted(pa) == sorted(pb)
    for v in pa:
        np.testing.assert_array_equal(pa[v], pb[v], err_msg=v)


def test_exact_same_seed_same_draws_different_seed_different(model):
    a = model.fit("exact", mcid=1.25, seed=3, chains=2, draws=300)
    b = model.fit("exact", mcid=1.25, seed=3, chains=2, draws=300)
    c = model.fit("exact", mcid=1.25, seed=4, chains=2, draws=300)
    _assert_same_draws(a, b)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    assert a.posterior["mu"].shape == (2, 300)
    # exact summaries do not depend on the seed at all
    pd.testing.assert_frame_equal(a.summary(), c.summary())
    pd.testing.assert_frame_equal(a.decision_table(), c.decision_table())


def test_nuts_same_seed_same_draws_different_seed_different(model):
    # too short to converge on purpose (only bitwise reproducibility is checked here)
    with pytest.warns(ConvergenceWarning):
        a = _short_nuts(model, seed=5)
    with pytest.warns(ConvergenceWarning):
        b = _short_nuts(model, seed=5)
    with pytest.warns(ConvergenceWarning):
        c = _short_nuts(model, seed=6)
    _assert_same_draws(a, b)
    assert not np.array_equal(a.posterior["mu"].values, c.posterior["mu"].values)
    assert a.settings["seed"] == 5 and c.settings["seed"] == 6


def test_seed_is_drawn_and_recorded_when_not_given(model):
    a = model.fit("exact", chains=1, draws=50)
    assert isinstance(a.settings["seed"], int)
    b = model.fit("exact", chains=1, draws=50, seed=a.settings["seed"])
    _assert_same_draws(a, b)


# ---------------------------------------------------------------------------
# (c) provenance
# ---------------------------------------------------------------------------
def test_settings_carry_priors_thresholds_seed_versions_and_hash(exact, nuts):
    import pymc

    for res, engine in ((exact, "exact"), (nuts, "nuts")):
        s = res.settings
        assert s["engine"] == engine
        assert s["prior_mu"] == {"kind": "normal", "mu": 0.0, "sigma": 2.0, "label": "", "text": "normal(0, 2)"}
        assert s["prior_tau"] == {"kind": "halfnormal", "sigma": 0.5, "text": "halfnormal(0.5)"}
        assert s["thresholds"] == {"mcid": 1.25, "benefit": "lower", "harm": None, "ratio": True}
        assert s["seed"] == 1
        assert s["versions"]["pymc"] == pymc.__version__
        assert s["versions"]["arviz"] == az.__version__
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", s["data_hash"])
        assert s["measure"] == "OR"
        # settings also travel in the tree's attributes as JSON
        assert json.loads(res.tree.attrs["ketabayes"])["data_hash"] == s["data_hash"]
    assert exact.settings["data_hash"] == nuts.settings["data_hash"]
    assert nuts.settings["engine_settings"]["tune"] == 1000


def test_data_hash_changes_with_the_data_and_only_with_it(magnesium_or):
    base = RandomEffectsModel(magnesium_or, **PRIORS).data_hash()
    # equal data, built separately (fresh copy, different index, other priors) -> equal hash
    other = magnesium_or.copy().set_index(pd.RangeIndex(100, 100 + len(magnesium_or)))
    assert RandomEffectsModel(other, prior_mu="flat()", prior_tau="halfcauchy(1)").data_hash() == base
    # one yi changed in the 15th significant digit -> different hash
    changed = magnesium_or.copy()
    changed.loc[3, "yi"] = np.nextafter(changed.loc[3, "yi"], 1.0)
    assert RandomEffectsModel(changed, **PRIORS).data_hash() != base
    changed = magnesium_or.copy()
    changed.loc[0, "vi"] *= 1.01
    assert RandomEffectsModel(changed, **PRIORS).data_hash() != base
    relabelled = magnesium_or.copy()
    relabelled.loc[0, "study"] = "Someone else 1984"
    assert RandomEffectsModel(relabelled, **PRIORS).data_hash() != base


# ---------------------------------------------------------------------------
# (d) netCDF round trip
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["exact", "nuts"])
def test_netcdf_round_trip(which, exact, nuts, tmp_path):
    res = {"exact": exact, "nuts": nuts}[which]
    path = res.to_netcdf(tmp_path / f"{which}.nc")
    back = load_result(path)
    assert back.engine == which
    assert back.settings == res.settings
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    pd.testing.assert_frame_equal(back.summary(), res.summary())
    # (NaN entries come back as None: see test_netcdf_round_trip_keeps_nan_in_frequentist_results)
    def _num(d):
        return {k: (math.nan if v is None else v) for k, v in d.items()}

    for method in ("FE", "DL", "REML"):
        got, want = _num(back.frequentist[method].to_dict()), _num(res.frequentist[method].to_dict())
        assert got.keys() == want.keys()
        for k in got:
            assert got[k] == want[k] or (got[k] != got[k] and want[k] != want[k]), (method, k)
    assert back.studies == res.studies
    _assert_same_draws(back, res)
    if which == "nuts":
        assert back.diagnostics.to_dict() == res.diagnostics.to_dict()
        assert back.diagnostics.ok
    else:
        assert back.diagnostics is None
        assert back.to_dict()["diagnostics"] == res.to_dict()["diagnostics"]


def test_netcdf_round_trip_keeps_nan_in_frequentist_results(exact, tmp_path):
    assert math.isnan(exact.frequentist["FE"].tau2_se)  # undefined for FE: documented as nan
    back = load_result(exact.to_netcdf(tmp_path / "fe_nan.nc"))
    assert isinstance(back.frequentist["FE"].tau2_se, float) and math.isnan(back.frequentist["FE"].tau2_se)
    assert isinstance(back.frequentist["FE"].pi_low, float)
    pd.testing.assert_frame_equal(back.frequentist_table(), exact.frequentist_table())


def test_netcdf_round_trip_fixed_effect_and_non_ascii_labels(tmp_path):
    df = pd.DataFrame({"study": ["Núñez 2012", "O'Brien 2016", "Lee & Park 2019"],
                       "yi": [-0.3, -0.1, 0.05], "vi": [0.04, 0.09, 0.02]})
    for fixed in (False, True):
        res = RandomEffectsModel(df, measure="MD", prior_mu="normal(0, 1)",
                                 prior_tau=None if fixed else "halfnormal(0.2)", fixed=fixed).fit(
            "exact", mcid=0.2, seed=2, chains=1, draws=100)
        back = load_result(res.to_netcdf(tmp_path / f"fixed{fixed}.nc"))
        assert back.studies == ["Núñez 2012", "O'Brien 2016", "Lee & Park 2019"]
        assert back.settings == res.settings
        pd.testing.assert_frame_equal(back.decision_table(targets=("mean", "Núñez 2012")),
                                      res.decision_table(targets=("mean", "Núñez 2012")))


# ---------------------------------------------------------------------------
# (e) the user's data are not modified
# ---------------------------------------------------------------------------
def test_users_dataframe_is_not_mutated(magnesium_or):
    df = magnesium_or.copy(deep=True)
    df.attrs["note"] = {"nested": [1, 2]}
    before = copy.deepcopy(df)
    m = RandomEffectsModel(df, **PRIORS)
    m.fit("exact", mcid=1.25, seed=1, chains=1, draws=50)
    pd.testing.assert_frame_equal(df, before)
    assert df.attrs == before.attrs
    # sei-only input: the model adds vi to its own copy, not to the user's table
    df2 = magnesium_or[["study", "yi", "sei"]].copy()
    before2 = copy.deepcopy(df2)
    RandomEffectsModel(df2, measure="OR", **PRIORS).fit("exact", seed=1, chains=1, draws=50)
    pd.testing.assert_frame_equal(df2, before2)
    assert "vi" not in df2.columns
    # a table without a study column gets labels in the model, not in the user's table
    df3 = magnesium_or[["yi", "vi"]].copy()
    RandomEffectsModel(df3, measure="OR", **PRIORS)
    assert list(df3.columns) == ["yi", "vi"]


# ---------------------------------------------------------------------------
# (f) non-estimable studies
# ---------------------------------------------------------------------------
def test_double_zero_study_is_left_out_with_a_warning_naming_it():
    arms = pd.DataFrame({"study": ["Alpha 2001", "Zero-Zero 2002", "Gamma 2003", "Delta 2004"],
                         "ai": [3, 0, 8, 12], "n1i": [50, 40, 120, 200],
                         "ci": [7, 0, 11, 15], "n2i": [50, 41, 118, 205]})
    with pytest.warns(DataWarning, match="Zero-Zero 2002"):
        es = kb.effect_sizes(arms, "OR")
    assert not bool(es.loc[1, "estimable"])
    with pytest.warns(DataWarning, match=r"1 study\(ies\) left out.*Zero-Zero 2002"):
        m = RandomEffectsModel(es, **PRIORS)
    assert m.k == 3 and m.excluded == ["Zero-Zero 2002"]
    assert "Zero-Zero 2002" not in m.studies
    res = m.fit("exact", mcid=1.25, seed=1, chains=1, draws=100)
    assert res.settings["excluded_studies"] == ["Zero-Zero 2002"]
    assert res.studies == ["Alpha 2001", "Gamma 2003", "Delta 2004"]
    # same posterior as the fit without that row
    kept = es[es["estimable"]].reset_index(drop=True)
    ref = RandomEffectsModel(kept, **PRIORS).fit("exact", mcid=1.25, seed=1, chains=1, draws=100)
    pd.testing.assert_frame_equal(res.summary(), ref.summary())


# ---------------------------------------------------------------------------
# (g) convergence checks
# ---------------------------------------------------------------------------
def test_strict_raises_on_a_too_short_run(model):
    with pytest.raises(ConvergenceError, match="NUTS diagnostics failed"):
        _short_nuts(model, seed=7, strict=True)


def test_too_short_run_warns_and_reports_problems(model):
    with pytest.warns(ConvergenceWarning, match=r"NUTS diagnostics failed: .*ESS"):
        res = _short_nuts(model, seed=7)
    assert not res.diagnostics.ok
    assert res.diagnostics.problems
    assert res.diagnostics.min_ess_bulk < 400
    assert res.to_dict()["diagnostics"]["ok"] is False


# ---------------------------------------------------------------------------
# (h) fixed-effect model against the conjugate normal posterior
# ---------------------------------------------------------------------------
def _conjugate(y, v, m0=None, s0=None):
    w = 1.0 / v
    prec = w.sum() + (0.0 if s0 is None else 1.0 / s0**2)
    num = (w * y).sum() + (0.0 if s0 is None else m0 / s0**2)
    return num / prec, math.sqrt(1.0 / prec)


@pytest.mark.parametrize(("prior_mu", "m0", "s0"), [("normal(0, 2)", 0.0, 2.0), ("normal(-1, 0.05)", -1.0, 0.05),
                                                    ("flat()", None, None)])
def test_fixed_effect_exact_equals_conjugate_closed_form(magnesium_or, prior_mu, m0, s0):
    y, v = magnesium_or["yi"].to_numpy(), magnesium_or["vi"].to_numpy()
    mean, sd = _conjugate(y, v, m0, s0)
    res = RandomEffectsModel(magnesium_or, prior_mu=prior_mu, fixed=True).fit("exact", mcid=1.25, seed=1,
                                                                              chains=1, draws=100)
    s = res.summary().set_index("target")
    assert s.loc["mean", "mean"] == pytest.approx(mean, abs=1e-10)
    assert s.loc["mean", "sd"] == pytest.approx(sd, abs=1e-10)
    assert s.loc["mean", "ci_low"] == pytest.approx(mean - Z975 * sd, abs=1e-8)
    assert s.loc["mean", "ci_high"] == pytest.approx(mean + Z975 * sd, abs=1e-8)
    assert "tau" not in s.index  # a fixed-effect model has no tau
    d = res.decision_table().set_index("target")
    d_ = math.log(1.25)
    for t in ("mean", "predictive"):  # with tau = 0 a new study's effect is mu
        assert d.loc[t, "mean"] == pytest.approx(mean, abs=1e-10)
        assert d.loc[t, "p_benefit"] == pytest.approx(stats.norm.cdf(-d_, mean, sd), abs=1e-10)
        assert d.loc[t, "p_harm"] == pytest.approx(stats.norm.sf(d_, mean, sd), abs=1e-10)
        assert d.loc[t, "p_any_benefit"] == pytest.approx(stats.norm.cdf(0.0, mean, sd), abs=1e-10)
    if prior_mu == "flat()":
        # the flat-prior posterior is the inverse-variance fixed-effect estimate
        assert res.frequentist["FE"].estimate == pytest.approx(mean, abs=1e-12)
        assert res.frequentist["FE"].se == pytest.approx(sd, abs=1e-12)


def test_fixed_effect_nuts_matches_conjugate_within_mc_error(magnesium_or, fit_nuts):
    y, v = magnesium_or["yi"].to_numpy(), magnesium_or["vi"].to_numpy()
    mean, sd = _conjugate(y, v, 0.0, 2.0)
    res = fit_nuts(RandomEffectsModel(magnesium_or, prior_mu="normal(0, 2)", fixed=True),
                   mcid=1.25, seed=2, chains=2, draws=1000, tune=500)
    mu = res.posterior["mu"].values
    se = float(az.mcse(res.tree, var_names=["mu"])["mu"].values)
    assert abs(mu.mean() - mean) < 4 * se
    assert mu.std(ddof=1) == pytest.approx(sd, rel=0.08)
    np.testing.assert_array_equal(res.posterior["tau"].values, 0.0)
    np.testing.assert_array_equal(res.posterior["theta_new"].values, mu)


# ---------------------------------------------------------------------------
# (i) tables and machine-readable output
# ---------------------------------------------------------------------------
def test_decision_table_columns_and_attrs(exact):
    t = exact.decision_table()
    assert list(t.columns) == TARGET_COLUMNS
    assert list(t["target"]) == ["mean", "predictive"]
    assert t.attrs["thresholds"] == {"mcid": 1.25, "benefit": "lower", "harm": None, "ratio": True}
    assert t.attrs["measure"] == "OR" and t.attrs["engine"] == "exact"
    s = t[["p_benefit", "p_trivial", "p_harm"]].sum(axis=1).to_numpy()
    np.testing.assert_allclose(s, 1.0, atol=1e-12)
    # another interval probability keeps the column names and says so in ci_prob
    t90 = exact.decision_table(prob=0.9)
    assert list(t90.columns) == TARGET_COLUMNS and (t90["ci_prob"] == 0.9).all()
    m = exact.marginal("mean")
    assert t90["ci_low"].iloc[0] == pytest.approx(float(m.ppf(np.array([0.05]))[0]), abs=1e-12)
    # the thresholds that define the probabilities are columns, on the table's scale
    assert (t["mcid"] == 1.25).all() and (t["benefit_direction"] == "lower").all()
    assert t["benefit_cut"].iloc[0] == pytest.approx(-math.log(1.25)) and t["harm_cut"].iloc[0] == pytest.approx(
        math.log(1.25))
    # a study label is a target too (its shrunken effect)
    ts = exact.decision_table(targets=("ISIS-4 1995",))
    assert ts["target"].tolist() == ["ISIS-4 1995"]


@pytest.mark.parametrize("which", ["exact", "nuts"])
def test_to_dict_is_strict_json_with_all_fields(which, exact, nuts):
    res = {"exact": exact, "nuts": nuts}[which]
    d = res.to_dict()
    text = json.dumps(d, allow_nan=False)  # raises on NaN / inf
    assert json.loads(text) == d
    est = d["estimates"]
    assert [e["target"] for e in est] == ["mean", "predictive"]
    for e in est:
        for k in ("mean", "sd", "ci_low", "median", "ci_high", "p_benefit", "p_trivial", "p_harm", "p_any_benefit"):
            assert isinstance(e[k], float), k
        assert e["ci_low"] < e["median"] < e["ci_high"]
    assert set(d["tau"]) == {"mean", "ci_low", "median", "ci_high", "hpd_low", "hpd_high"}
    assert 0 < d["tau"]["ci_low"] < d["tau"]["median"] < d["tau"]["ci_high"]
    assert set(d["frequentist"]) == {"FE", "DL", "REML", "REML-HKSJ"}
    for method, f in d["frequentist"].items():
        for k in ("estimate", "se", "ci_low", "ci_high", "tau2", "pi_low", "pi_high"):
            assert k in f, (method, k)
        assert f["ci_low"] < f["estimate"] < f["ci_high"]
    assert d["frequentist"]["DL"]["pi_low"] < d["frequentist"]["DL"]["pi_high"]
    assert d["diagnostics"]
    for k in ("prior_mu", "prior_tau", "thresholds", "seed", "versions", "data_hash", "engine"):
        assert k in d["settings"], k
    assert d["settings"]["engine"] == which
    assert d["measure"] == "OR" and d["scale"] == "log"


def test_to_dict_without_mcid_has_estimates_but_no_probabilities(model):
    res = model.fit("exact", seed=1, chains=1, draws=50)
    d = res.to_dict()
    json.dumps(d, allow_nan=False)
    assert [e["target"] for e in d["estimates"]] == ["mean", "predictive"]
    assert "p_benefit" not in d["estimates"][0]
    d2 = res.to_dict(mcid=1.25)
    assert d2["estimates"][0]["p_benefit"] == pytest.approx(
        res.decision_table(mcid=1.25)["p_benefit"].iloc[0], abs=0)
    assert d2["settings"]["thresholds"]["mcid"] == 1.25


def test_unknown_method_and_target_errors(model, exact):
    with pytest.raises(kb.errors.KetabayesError, match="unknown method 'nut'.*did you mean 'nuts'"):
        model.fit("nut")
    with pytest.raises(kb.errors.KetabayesError, match="unknown target 'Nobody'"):
        exact.marginal("Nobody")


def test_no_nuts_warnings_leak(nuts):
    # the shared NUTS fixture ran under pytest's warnings-as-errors; re-check nothing is pending
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nuts.decision_table()
        nuts.summary()


@pytest.mark.slow
def test_nuts_default_settings_give_no_divergences_on_magnesium(model):
    res = model.fit("nuts", mcid=1.25, seed=11, chains=2, draws=1000, tune=1000, strict=True)
    assert res.diagnostics.divergences == 0
