"""Sensitivity grid: table, verdicts, subsets, failures, seeds, executors, checkpoints, plots.

Expected numbers come from closed forms (the fixed-effect normal posterior), the
exact engine with explicitly power-scaled priors (for NUTS + importance
weighting), or :func:`bayes_factor` (for the grid's BF column); nothing is
pasted output.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import ketabayes as kb
from ketabayes.decision import Thresholds
from ketabayes.errors import KetabayesError, PriorError
from ketabayes.inference.bayes_factor import bayes_factor
from ketabayes.model.priors import HalfNormal, Normal
from ketabayes.reporting.robustness_plot import plot_robustness_heatmap
from ketabayes.sensitivity import (
    TABLE_COLUMNS,
    AnalysisNotAvailableError,
    Sensitivity,
    VerdictRule,
    normal_analysis,
    sensitivity_grid,
    variant_seed,
    verdict,
)


@pytest.fixture(scope="module")
def es():
    raw = kb.load_dataset("magnesium_mi")
    raw["study"] = raw["study"] + " " + raw["year"].astype(str)  # "Shechter" appears three times
    out = kb.effect_sizes(raw, "OR")
    out["large"] = out["n1i"] + out["n2i"] >= 1000
    return out


def _fe_posterior(y, v, m0, s0):
    prec = np.sum(1 / v) + 1 / s0**2
    return (np.sum(y / v) + m0 / s0**2) / prec, math.sqrt(1 / prec)


# --------------------------------------------------------------------------- table
def test_grid_table_and_fixed_effect_closed_form(es):
    res = sensitivity_grid(es, prior_mu={"sd1": Normal(0, 1), "sd0.5": Normal(-0.1, 0.5)},
                           prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=[1.1, 1.25],
                           model=["random", "fixed"], progress=False)
    t = res.table
    assert list(t.columns[:len(TABLE_COLUMNS)]) == TABLE_COLUMNS
    # 2 mu priors x (2 tau priors random + 1 fixed) fits x 2 MCIDs x 2 targets
    assert t["fit_id"].nunique() == 6
    assert len(t) == 6 * 2 * 2
    assert (t["error"] == "").all()
    probs = t[["p_benefit", "p_trivial", "p_harm"]].sum(axis=1)
    np.testing.assert_allclose(probs, 1.0, atol=1e-10)
    y, v = es["yi"].to_numpy(), es["vi"].to_numpy()
    for (label, (m0, s0)) in {"sd1": (0, 1), "sd0.5": (-0.1, 0.5)}.items():
        mean, sd = _fe_posterior(y, v, m0, s0)
        for mcid in (1.1, 1.25):
            lo, hi = -math.log(mcid), math.log(mcid)
            row = t[(t["model"] == "fixed") & (t["prior_mu"] == label) & (t["mcid"] == mcid)
                    & (t["target"] == "mean")].iloc[0]
            assert row["mean"] == pytest.approx(mean, abs=1e-10)
            assert row["sd"] == pytest.approx(sd, rel=1e-10)
            assert row["ci_low"] == pytest.approx(stats.norm.ppf(0.025, mean, sd), abs=1e-8)
            # a normal posterior: the shortest interval is the equal-tailed one
            assert row["hpd_low"] == pytest.approx(stats.norm.ppf(0.025, mean, sd), abs=1e-8)
            assert row["hpd_high"] == pytest.approx(stats.norm.ppf(0.975, mean, sd), abs=1e-8)
            assert row["p_benefit"] == pytest.approx(stats.norm.cdf(lo, mean, sd), abs=1e-10)
            assert row["p_harm"] == pytest.approx(stats.norm.sf(hi, mean, sd), abs=1e-10)
            assert row["verdict"] == VerdictRule()(row["p_benefit"], row["p_trivial"], row["p_harm"])
    # skewed posteriors (random effects, predictive): never longer than the equal-tailed interval
    assert ((t["hpd_high"] - t["hpd_low"]) <= (t["ci_high"] - t["ci_low"]) + 1e-12).all()


def test_exact_quantiles_match_metaresult(es):
    # the grid's fast path (engine only) and the full MetaResult path agree
    kw = dict(prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25, progress=False)
    light = sensitivity_grid(es, **kw).table
    full = sensitivity_grid(es, keep_results=True, **kw)
    assert len(full.results) == 1
    res = next(iter(full.results.values()))
    dt = res.decision_table(1.25, "lower")
    for col in ("mean", "sd", "ci_low", "median", "ci_high", "hpd_low", "hpd_high", "p_benefit", "p_trivial",
                "p_harm", "p_any_benefit"):
        np.testing.assert_allclose(light[col].to_numpy(), dt[col].to_numpy(), rtol=1e-8, atol=1e-9)


def test_prior_panel_and_describe(es):
    grid = Sensitivity(es, prior_mu="panel", mcid=1.25)
    assert [v.levels["prior_mu"] for v in grid.variants] == ["sceptical", "neutral", "enthusiastic"]
    assert grid.variants[0].prior_mu.sigma == pytest.approx(math.log(1.25) / 1.6448536269514722, rel=1e-4)
    assert "3 fits" in grid.describe()
    with pytest.raises(KetabayesError, match="needs an MCID"):
        Sensitivity(es, prior_mu="panel")


# --------------------------------------------------------------------------- MCIDs: no refit
CALLS: list[str] = []


def counting_analysis(data, variant, **kw):
    CALLS.append(variant.name)
    return normal_analysis(data, variant, **kw)


def test_mcid_variants_need_no_refit(es):
    CALLS.clear()
    res = sensitivity_grid(es, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=[1.05, 1.1, 1.25, 1.5],
                           model={"random": counting_analysis}, progress=False)
    assert len(CALLS) == 1
    assert len(res.table) == 4 * 2
    p = res.table[res.table["target"] == "mean"]["p_benefit"].to_numpy()
    assert np.all(np.diff(p) < 0)  # a larger MCID is harder to beat
    assert res.table["variant"].nunique() == 4


# --------------------------------------------------------------------------- subsets
def test_leave_one_out_and_subsets(es):
    y, v = es["yi"].to_numpy(), es["vi"].to_numpy()
    res = sensitivity_grid(
        es, prior_mu="normal(0, 2)", model="fixed", mcid=1.25, leave_one_out=True, progress=False,
        subsets={"large trials": "large", "small trials": ~es["large"].to_numpy(),
                 "after 1990": lambda d: d["year"] > 1990},
        targets=("mean",))
    t = res.table
    assert t["subset"].tolist()[:4] == ["all", "large trials", "small trials", "after 1990"]
    assert len(t) == 4 + len(es)
    for i, s in enumerate(es["study"]):
        keep = np.arange(len(es)) != i
        mean, sd = _fe_posterior(y[keep], v[keep], 0, 2)
        row = t[t["subset"] == f"without {s}"].iloc[0]
        assert row["k"] == len(es) - 1
        assert row["mean"] == pytest.approx(mean, abs=1e-10)
    keep = (es["year"] > 1990).to_numpy()
    row = t[t["subset"] == "after 1990"].iloc[0]
    assert row["k"] == keep.sum()
    assert row["mean"] == pytest.approx(_fe_posterior(y[keep], v[keep], 0, 2)[0], abs=1e-10)
    assert t[t["subset"] == "large trials"]["k"].iloc[0] == es["large"].sum()
    with pytest.raises(KetabayesError, match="keeps no"):
        Sensitivity(es, subsets={"none": "yi > 100"})
    with pytest.raises(KetabayesError, match="could not select"):
        Sensitivity(es, subsets={"bad": "no_such_column == 1"})


# --------------------------------------------------------------------------- failures and hooks
def flaky_analysis(data, variant, **kw):
    if variant.levels["prior_tau"] == "halfnormal(1)":
        raise FloatingPointError("boom in this variant")
    return normal_analysis(data, variant, **kw)


def test_failing_variant_is_recorded_and_others_survive(es):
    res = sensitivity_grid(es, prior_mu="normal(0, 1)", prior_tau=["halfnormal(0.5)", "halfnormal(1)",
                                                                   "halfnormal(2)"],
                           model={"random": flaky_analysis}, mcid=1.25, progress=False)
    t = res.table
    bad = t[t["prior_tau"] == "halfnormal(1)"]
    assert len(bad) == 2 and bad["error"].str.contains("FloatingPointError: boom").all()
    assert bad["p_benefit"].isna().all()
    good = t[t["prior_tau"] != "halfnormal(1)"]
    assert (good["error"] == "").all() and good["p_benefit"].notna().all()
    assert res.failed["fit_id"].nunique() == 1
    rob = res.robustness()
    assert set(rob["n_variants"]) == {2}


def test_unavailable_analyses_fail_early_with_a_clear_error(es):
    with pytest.raises(AnalysisNotAvailableError, match="poisson") as info:
        Sensitivity(es, likelihood=["normal", "poisson"])
    assert isinstance(info.value, NotImplementedError) and isinstance(info.value, KetabayesError)
    with pytest.raises(AnalysisNotAvailableError, match="network"):
        Sensitivity(es, model="network")


def test_registered_analysis_plugs_in(es):
    from ketabayes.sensitivity import analyses as sens

    def fake_poisson(data, variant, **kw):
        return normal_analysis(data, variant, **kw)

    sens.register_analysis("random", "poisson", fake_poisson)
    try:
        res = sensitivity_grid(es, likelihood=["normal", "poisson"], prior_mu="normal(0, 1)", mcid=1.25,
                               progress=False)
        assert res.table["likelihood"].tolist() == ["normal", "normal", "poisson", "poisson"]
        with pytest.raises(KetabayesError, match="already registered"):
            sens.register_analysis("random", "poisson", normal_analysis)
    finally:
        sens._ANALYSES.pop(("random", "poisson"))


def test_unknown_target_is_an_error_row_not_a_crash(es):
    res = sensitivity_grid(es, prior_mu="normal(0, 1)", mcid=1.25, targets=("mean", "ISIS-4 1995"),
                           subsets={"no ISIS": "study != 'ISIS-4 1995'"}, progress=False)
    t = res.table
    assert t[(t["subset"] == "no ISIS") & (t["target"] == "ISIS-4 1995")]["error"].str.contains("unknown").all()
    assert (t[t["target"] == "mean"]["error"] == "").all()


# --------------------------------------------------------------------------- verdicts
def test_verdict_rule():
    rule = VerdictRule(benefit=0.9, harm=0.8, trivial=0.7)
    assert rule(0.9, 0.1, 0.0) == "probable benefit"
    assert rule(0.89, 0.11, 0.0) == "uncertain"
    assert rule(0.0, 0.2, 0.8) == "probable harm"
    assert rule(0.1, 0.7, 0.2) == "practically no effect"
    assert list(verdict([0.95, 0.1], [0.05, 0.85], [0.0, 0.05])) == ["probable benefit", "practically no effect"]
    with pytest.raises(KetabayesError, match="cut-off"):
        VerdictRule(benefit=0.5)


# --------------------------------------------------------------------------- Bayes factors in the grid
def test_grid_bayes_factor_columns(es):
    res = sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=1.25,
                           bayes_factor=True, progress=False)
    t = res.table
    panel = kb.priors.prior_panel(math.log(1.25), "lower")
    for _, row in t[t["target"] == "mean"].iterrows():
        bf = bayes_factor(es["yi"], es["vi"], panel[row["prior_mu"]], row["prior_tau"])
        assert row["bf10"] == pytest.approx(bf.bf10, rel=1e-10)
        assert row["post_prob_h1"] == pytest.approx(bf.post_prob_h1, rel=1e-10)
        avg = bf.decision_probabilities(Thresholds(1.25, "lower", ratio=True), "mean")
        assert row["p_trivial_avg"] == pytest.approx(avg["p_trivial"], abs=1e-12)
    # the sceptical prior is the most favourable to H0 among the three centred... check BF varies with the prior
    assert t["bf10"].nunique() == 6
    with pytest.raises(PriorError, match="proper priors"):
        Sensitivity(es, bayes_factor=True)


# --------------------------------------------------------------------------- seeds and executors
def test_seeds_do_not_depend_on_order_and_threads_match_serial(es):
    kw = dict(prior_mu=["normal(0, 1)", "normal(0, 2)"], prior_tau=["halfnormal(0.5)", "halfnormal(1)"],
              mcid=1.25, progress=False, keep_results=True)
    a = sensitivity_grid(es, seed=7, **kw)
    b = sensitivity_grid(es, seed=7, **{**kw, "prior_mu": ["normal(0, 2)", "normal(0, 1)"]})
    sa = dict(zip(a.table["fit_id"], a.table["seed"]))
    sb = dict(zip(b.table["fit_id"], b.table["seed"]))
    assert sa == sb
    assert sa[a.table["fit_id"].iloc[0]] == variant_seed(7, a.table["fit_id"].iloc[0])
    with cf.ThreadPoolExecutor(2) as ex:
        c = sensitivity_grid(es, seed=7, executor=ex, batch_size=1, **kw)
    cols = [c_ for c_ in a.table.columns if c_ != "seconds"]
    pd.testing.assert_frame_equal(a.table[cols], c.table[cols])
    # draws of the kept results are identical too (same seeds)
    for k, r in a.results.items():
        np.testing.assert_array_equal(r.posterior["mu"].values, c.results[k].posterior["mu"].values)


def test_dask_local_cluster_matches_serial(es):
    distributed = pytest.importorskip("distributed")
    kw = dict(prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=[1.1, 1.25],
              model=["random", "fixed"], leave_one_out=True, progress=False, seed=3, bayes_factor=True)
    serial = sensitivity_grid(es, **kw)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as client:
        par = sensitivity_grid(es, executor=client.get_executor(), batch_size=10, **kw)
    cols = [c for c in serial.table.columns if c != "seconds"]
    pd.testing.assert_frame_equal(serial.table[cols], par.table[cols])
    assert par.table["fit_id"].nunique() == (3 * 2 + 3) * (1 + len(es))


# --------------------------------------------------------------------------- checkpoints
FLAKY = {"on": True}


def flaky_then_fixed_analysis(data, variant, **kw):
    """One factory (the checkpoint is tied to it) that fails once, as if a bug was then fixed."""
    CALLS.append(variant.name)
    if FLAKY["on"] and variant.levels["prior_tau"] == "halfnormal(1)":
        raise FloatingPointError("boom in this variant")
    return normal_analysis(data, variant, **kw)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_checkpoint_resume_skips_completed_variants(es, tmp_path, suffix):
    path = tmp_path / f"grid{suffix}"
    kw = dict(prior_mu="normal(0, 1)", prior_tau=["halfnormal(0.5)", "halfnormal(1)", "halfnormal(2)"],
              mcid=[1.1, 1.25], progress=False, checkpoint=path, model={"random": flaky_then_fixed_analysis})
    FLAKY["on"] = True
    try:
        first = sensitivity_grid(es, **kw)
    finally:
        FLAKY["on"] = False
    assert first.failed["fit_id"].nunique() == 1
    if suffix == ".jsonl":
        lines = [json.loads(s) for s in path.read_text().splitlines()]
        assert len(lines) == 3 and sum(not rec["ok"] for rec in lines) == 1
    CALLS.clear()
    second = sensitivity_grid(es, **kw)
    assert CALLS == [v for v in second.table["fit_id"].unique() if "halfnormal(1)" in v]  # only the failed one
    assert (second.table["error"] == "").all()
    reference = sensitivity_grid(es, prior_mu="normal(0, 1)", prior_tau=["halfnormal(0.5)", "halfnormal(1)",
                                                                         "halfnormal(2)"],
                                 mcid=[1.1, 1.25], progress=False)
    num = ["mean", "sd", "ci_low", "median", "ci_high", "p_benefit", "p_trivial", "p_harm", "p_any_benefit"]
    np.testing.assert_allclose(second.table[num].to_numpy(float), reference.table[num].to_numpy(float),
                               rtol=1e-12, atol=1e-15)
    assert second.table["verdict"].tolist() == reference.table["verdict"].tolist()
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, prior_mu="normal(0, 1)", mcid=[1.5], progress=False, checkpoint=path)
    # a different factory under the same label is a different analysis
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, **{**kw, "model": {"random": counting_analysis}})


def test_checkpoint_refuses_redefined_priors_subsets_and_columns(es, tmp_path):
    # labels can be redefined: the checkpoint must notice the definition, not just the label
    path = tmp_path / "grid.jsonl"
    base = dict(mcid=1.25, model="fixed", progress=False, checkpoint=path, targets=("mean",))
    first = sensitivity_grid(es, prior_mu={"mine": "normal(0, 10)"}, **base).table
    y, v = es["yi"].to_numpy(), es["vi"].to_numpy()
    assert first["mean"].iloc[0] == pytest.approx(_fe_posterior(y, v, 0, 10)[0], abs=1e-10)
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, prior_mu={"mine": "normal(-3, 0.1)"}, **base)
    # the same definitions resume from the checkpoint
    again = sensitivity_grid(es, prior_mu={"mine": "normal(0, 10)"}, **base).table
    assert again["mean"].iloc[0] == first["mean"].iloc[0]

    path2 = tmp_path / "subsets.csv"
    kw = dict(prior_mu="normal(0, 2)", model="fixed", mcid=1.25, progress=False, checkpoint=path2,
              targets=("mean",))
    sensitivity_grid(es, subsets={"recent": "year > 1990"}, **kw)
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, subsets={"recent": "year > 1985"}, **kw)
    with pytest.raises(KetabayesError, match="different configuration"):  # a callable: the mask counts
        sensitivity_grid(es, subsets={"recent": lambda d: d["year"] > 1985}, **kw)
    sensitivity_grid(es, subsets={"recent": lambda d: d["year"] > 1990}, **kw)  # same rows: resumes

    # any column counts (e.g. a `by` grouping or a column a subset may use), and the design and targets
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es.assign(large=~es["large"]), subsets={"recent": "year > 1990"}, **kw)
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, subsets={"recent": "year > 1990"}, **{**kw, "targets": ("mean", "predictive")})
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, subsets={"recent": "year > 1990"}, design="one-at-a-time", **kw)
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(es, subsets={"recent": "year > 1990"}, **{**kw, "model": "random"})


# --------------------------------------------------------------------------- reproducibility of the table
def test_table_records_prior_specs_versions_and_hashes(es, tmp_path):
    from ketabayes.provenance import package_versions

    res = sensitivity_grid(es, prior_mu="panel", prior_tau={"mine": "halfnormal(0.5)"}, mcid=1.25,
                           model=["random", "fixed"], progress=False, seed=5)
    t = res.table
    # sceptical prior: N(0, s^2) with P(mu < -log 1.25) = 5%, i.e. s = log(1.25) / z_0.95
    s_sc = math.log(1.25) / stats.norm.ppf(0.95)
    sc = t[(t["prior_mu"] == "sceptical") & (t["model"] == "random")]
    assert (sc["prior_mu_spec"] == f"normal(0, {s_sc:.6g})").all()
    assert (sc["prior_tau"] == "mine").all() and (sc["prior_tau_spec"] == "halfnormal(0.5)").all()
    assert (t.loc[t["model"] == "fixed", "prior_tau_spec"] == "-").all()
    a = t.attrs
    assert a["seed"] == 5
    assert a["versions"] == package_versions() and {"ketabayes", "pymc"} <= set(a["versions"])
    assert a["data_hash"].startswith("sha256:")
    assert a["config_hash"] == res.grid.config_hash(5)
    assert a["grid"]["prior_mu"]["sceptical"]["sigma"] == pytest.approx(s_sc, rel=1e-4)
    assert a["grid"]["subset"] == {"all": {"n": len(es), "left_out": []}}
    # the data hash covers every column, not only yi and vi
    other = Sensitivity(es.assign(large=~es["large"]), prior_mu="panel", mcid=1.25)
    same = Sensitivity(es.copy(), prior_mu="panel", mcid=1.25)
    assert same.data_hash() == a["data_hash"] != other.data_hash()

    out = res.to_csv(tmp_path / "grid.csv")
    assert out == tmp_path / "grid.csv"
    back = pd.read_csv(out)
    assert back["prior_mu_spec"].tolist() == t["prior_mu_spec"].tolist()
    settings_file = tmp_path / "grid.settings.json"

    def _no_nan(name):
        raise AssertionError(f"not strict JSON: {name}")

    settings = json.loads(settings_file.read_text(), parse_constant=_no_nan)
    for key in ("versions", "data_hash", "seed", "config_hash", "grid", "thresholds", "rule"):
        assert settings[key] == json.loads(json.dumps(a[key]))
    assert settings["grid"]["prior_tau"]["mine"]["prior"] == "halfnormal(0.5)"


# --------------------------------------------------------------------------- target names
def test_target_names_are_read_as_metaresult_reads_them(es):
    # the fast exact path resolves 'study=<label>', a bare label, 'mu' and 'theta_new' as MetaResult.marginal
    from ketabayes.sensitivity.power_scaling import _target_var

    label = es["study"].iloc[2]
    targets = ("mu", "theta_new", label, f"study={label}")
    kw = dict(prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25, progress=False, targets=targets)
    light = sensitivity_grid(es, **kw).table
    full = sensitivity_grid(es, keep_results=True, **kw)
    res = next(iter(full.results.values()))
    for t in targets:
        row = light[light["target"] == t].iloc[0]
        m = res.marginal(t)
        assert row["mean"] == pytest.approx(m.mean, abs=1e-12)
        assert row["ci_high"] == pytest.approx(float(m.ppf(np.array([0.975]))[0]), abs=1e-9)
    assert _target_var(f"study={label}", res) == ("theta", {"study": label})
    assert _target_var("predictive", res) == ("theta_new", None)
    assert _target_var("nope", res) == (None, None)


# --------------------------------------------------------------------------- non-estimable (double-zero) trials
@pytest.fixture(scope="module")
def with_double_zero():
    df = pd.DataFrame({"study": ["A", "B", "Zero", "D", "E"], "ai": [3, 5, 0, 2, 7], "n1i": [20, 30, 20, 25, 40],
                       "ci": [6, 9, 0, 4, 10], "n2i": [20, 30, 20, 25, 40]})
    with pytest.warns(kb.errors.DataWarning, match="Zero"):
        return kb.effect_sizes(df, "OR")


def test_double_zero_trial_kept_by_binomial_left_out_by_normal(with_double_zero):
    es0 = with_double_zero
    assert es0["estimable"].tolist() == [True, True, False, True, True]
    with pytest.warns(kb.errors.DataWarning, match="Zero"):
        res = sensitivity_grid(es0, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", mcid=1.25, seed=2,
                               likelihood=["normal", "binomial"], method="nuts", progress=False,
                               targets=("mean",), fit_kwargs={"draws": 300, "tune": 300, "chains": 2})
    t = res.table
    assert (t["error"] == "").all(), t["error"].tolist()
    normal = t[t["likelihood"] == "normal"].iloc[0]
    binom = t[t["likelihood"] == "binomial"].iloc[0]
    assert binom["k"] == 5
    assert normal["k"] == 4
    assert "not estimable" in normal["warning"] and "Zero" in normal["warning"]
    assert "Zero" not in binom["warning"]

    # the exact path: k = 4, the study is named, and the numbers are the closed form on the 4 estimable trials
    ok = es0["estimable"].to_numpy()
    with pytest.warns(kb.errors.DataWarning, match="Zero"):
        ex = sensitivity_grid(es0, prior_mu="normal(0, 2)", model="fixed", mcid=1.25, progress=False,
                              targets=("mean",), leave_one_out=True).table
    row = ex[ex["subset"] == "all"].iloc[0]
    assert row["k"] == 4 and "Zero" in row["warning"]
    mean, sd = _fe_posterior(es0["yi"].to_numpy()[ok], es0["vi"].to_numpy()[ok], 0, 2)
    assert row["mean"] == pytest.approx(mean, abs=1e-10) and row["sd"] == pytest.approx(sd, rel=1e-10)
    # leave-one-out runs over every trial; leaving out the double-zero one changes nothing for a normal model
    assert set(ex["subset"]) == {"all"} | {f"without {s}" for s in es0["study"]}
    wz = ex[ex["subset"] == "without Zero"].iloc[0]
    assert wz["k"] == 4 and wz["warning"] == "" and wz["mean"] == pytest.approx(mean, abs=1e-10)


# --------------------------------------------------------------------------- plots
def test_heatmap_and_tornado(es, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=1.25,
                           model=["random", "fixed"], progress=False)
    fig = res.plot("heatmap")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "target" and ax.get_ylabel() == "variant"
    labels = [tl.get_text() for tl in ax.get_yticklabels()]
    assert labels == list(dict.fromkeys(res.table["label"]))  # only the factors that vary
    assert len(labels) == 9 and not any("mcid" in lab for lab in labels)
    img = np.asarray(ax.get_images()[0].get_array())
    assert img.shape == (9, 2)
    from ketabayes.reporting.robustness_plot import VERDICT_COLOURS

    order = ["probable benefit", "practically no effect", "uncertain", "probable harm"]
    verdicts = res.table[res.table["target"] == "mean"]["verdict"].tolist()
    np.testing.assert_array_equal(img[:, 0], [order.index(v) for v in verdicts])  # colour follows the verdict
    cmap = ax.get_images()[0].get_cmap()
    assert [matplotlib.colors.to_hex(cmap(i)) for i in range(4)] == [VERDICT_COLOURS[v].lower() for v in order]
    assert VERDICT_COLOURS["practically no effect"] != VERDICT_COLOURS["probable harm"]
    legend = [tx.get_text() for tx in ax.get_legend().get_texts()]
    assert legend == ["B = probable benefit", "0 = practically no effect", "? = uncertain", "H = probable harm"]
    assert len(ax.texts) == 18
    p = res.table[res.table["target"] == "mean"]["p_benefit"].iloc[0]
    assert ax.texts[0].get_text().endswith(f"{p:.2f}")
    out = tmp_path / "heat.png"
    fig.savefig(out)
    assert out.stat().st_size > 1000
    assert plt.get_fignums() == []  # returned, not left open: Jupyter shows it once

    oat = sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=1.25,
                           model=["random", "fixed"], design="one-at-a-time", leave_one_out=True, progress=False)
    assert oat.table["fit_id"].nunique() == 1 + 2 + 1 + 1 + len(es)
    fig = oat.plot("tornado")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "factor"
    assert sorted(tl.get_text() for tl in ax.get_yticklabels()) == ["model", "prior_mu", "prior_tau", "subset"]
    ends = {tx.get_text().strip() for tx in ax.texts}
    assert {"fixed", "random", "sceptical", "neutral", "halfnormal(0.5)", "halfnormal(1)"} <= ends
    assert plt.get_fignums() == []
    # a large grid (here 9 x 14 leave-one-out variants) is summarised, not refused
    big = sensitivity_grid(es, prior_mu="panel", prior_tau=["halfnormal(0.5)", "halfnormal(1)"], mcid=1.25,
                           model=["random", "fixed"], leave_one_out=True, progress=False).table
    fig = plot_robustness_heatmap(big, max_rows=40)
    ax = fig.axes[0]
    assert "summarised" in ax.get_title()
    widths = [p_.get_width() for p_ in ax.patches]
    share = (big[big["target"] == "mean"]["verdict"] == "probable benefit").mean()
    assert widths[0] == pytest.approx(share)
    fig.savefig(tmp_path / "tornado.png")


# --------------------------------------------------------------------------- NUTS + power-scaling
def test_nuts_power_scaling_matches_exact_with_scaled_priors(es):
    # prior^alpha of N(m, s^2) x HalfNormal(sigma) is N(m, s^2/alpha) x HalfNormal(sigma/sqrt(alpha)):
    # importance-reweighted NUTS draws must match the exact posterior under those priors
    from ketabayes.decision import decision_probabilities
    from ketabayes.inference.exact import ExactNormalNormal

    res = sensitivity_grid(es, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25, method="nuts",
                           power_scaling=(0.5, 2.0), progress=False, seed=11,
                           fit_kwargs=dict(draws=2000, tune=500, chains=2))
    t = res.table
    assert (t["error"] == "").all(), t["error"].unique()
    base = t[(t["power_scaling"] == "none") & (t["target"] == "mean")].iloc[0]
    assert 0 <= base["psense_prior"] and 0 <= base["psense_likelihood"]
    th = Thresholds(1.25, "lower", ratio=True)
    for a in (0.5, 2.0):
        row = t[(t["power_scaling"] == f"prior^{a:g}") & (t["target"] == "mean")].iloc[0]
        ex = ExactNormalNormal(es["yi"], es["vi"], Normal(0, 1 / math.sqrt(a)), HalfNormal(0.5 / math.sqrt(a)))
        assert row["is_ess"] > 1000
        assert np.isfinite(row["pareto_k"]) and row["pareto_k"] < 0.7  # reliable, as the match below shows
        assert "Pareto" not in row["warning"]
        assert row["mean"] == pytest.approx(ex.mu.mean, abs=0.03)
        assert row["sd"] == pytest.approx(ex.mu.sd, rel=0.1)
        assert row["p_benefit"] == pytest.approx(decision_probabilities(ex.mu, th)["p_benefit"], abs=0.02)
    assert set(t["power_scaling"]) == {"none", "prior^0.5", "prior^2", "likelihood^0.5", "likelihood^2"}
    assert t.loc[t["power_scaling"] == "none", "pareto_k"].isna().all()


def test_power_scaling_pareto_khat_matches_gaussian_closed_form():
    # draws x ~ N(0, 1), component log density lp = -x^2/2: power-scaling by alpha gives weights
    # w = exp((1 - alpha) x^2 / 2), whose tail P(w > t) ~ t^(-1/(1 - alpha)) has Pareto shape k = 1 - alpha
    import xarray as xr

    from ketabayes.sensitivity.power_scaling import PARETO_K_THRESHOLD, _power_weights

    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5000))
    lp = xr.DataArray(-0.5 * x**2, dims=("chain", "draw"))
    out = _power_weights(lp, (0.2, 0.8, 1.25), ["chain", "draw"])
    assert out[0.2][2] == pytest.approx(0.8, abs=0.1) and out[0.2][2] > PARETO_K_THRESHOLD
    assert out[0.8][2] == pytest.approx(0.2, abs=0.1)
    assert out[1.25][2] < 0.2  # alpha > 1: bounded weights (k <= 0)
    for w, ess, _ in out.values():
        assert w.sum() == pytest.approx(1.0) and ess == pytest.approx(1 / np.sum(w * w))
