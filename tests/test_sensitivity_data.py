"""Data factors of the sensitivity grid (r, multiarm, conversions, data), time windows, bias adjustment, BMA.

Every expected number is computed here from the trials' summaries with closed forms written
out in the test (mean differences, crossover and split-control variances, the pooled SD of
merged arms from an explicit sample, the fixed-effect and generalised-least-squares normal
posteriors), then fitted directly with the exact engines (``ExactNormalNormal``,
``ExactMultivariateNormal`` on a covariance matrix assembled here), or -- for the
risk-of-bias model -- by a dense-grid integration written in the test. All trial numbers are
CONSTRUCTED for the tests (not trial data).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import ketabayes as kb
from ketabayes.data.multiarm import multiarm_contrasts
from ketabayes.errors import KetabayesError
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.inference.exact_multivariate import ExactMultivariateNormal
from ketabayes.model.priors import HalfNormal, Normal
from ketabayes.sensitivity import FACTORS, normal_analysis, sensitivity_grid

PRIOR_MU, PRIOR_TAU = Normal(0.0, 10.0), HalfNormal(2.0)
MCID = 1.0  # lower is better
#: an unadjusted and a bias-adjusted level; the size of the bias is an explicit prior (MD data: no cited default)
ROB = {"none": None, "RoB": {"prior_rob": "halfnormal(0.5)"}}
NUM = ["mean", "sd", "ci_low", "median", "ci_high", "p_benefit", "p_trivial", "p_harm"]

# arm summaries: (mean, SD, n)
PARALLEL = {"P1": ((3.0, 2.0, 30), (4.1, 2.1, 30)), "P2": ((2.5, 2.2, 40), (3.3, 2.0, 38)),
            "P3": ((3.4, 1.9, 25), (4.0, 2.2, 27))}
X1 = (2.4, 2.1, 4.0, 2.3, 24)  # crossover, periods: m1, sd1, m2, sd2, n (r not reported)
X2 = (-1.1, 1.9, 18)  # crossover, mean and SD of the differences, n
T3 = {"low": (3.1, 2.0, 30), "high": (2.6, 2.1, 30), "placebo": (4.0, 2.2, 30)}


def parallel_es():
    rows = [{"study": s, "m1i": a[0], "sd1i": a[1], "n1i": a[2], "m2i": b[0], "sd2i": b[1], "n2i": b[2]}
            for s, (a, b) in PARALLEL.items()]
    return kb.effect_sizes(pd.DataFrame(rows).assign(rob=["high", "low", "low"]), "MD")


def crossover_es(r=0.5):
    cross = pd.DataFrame({"study": ["X1", "X2"], "m1i": [X1[0], None], "sd1i": [X1[1], None],
                          "m2i": [X1[2], None], "sd2i": [X1[3], None], "ni": [X1[4], X2[2]],
                          "mdi": [None, X2[0]], "sddi": [None, X2[1]], "rob": ["high", "low"]})
    return kb.crossover(cross, r=r)


def multiarm_es():
    arms = pd.DataFrame([{"study": "T3", "arm": a, "mi": m, "sdi": s, "ni": n, "rob": "low"}
                         for a, (m, s, n) in T3.items()])
    return multiarm_contrasts(arms, "MD", control="placebo").table


def md(a, b):
    return a[0] - b[0], a[1] ** 2 / a[2] + b[1] ** 2 / b[2]


def parallel_yv():
    return [md(a, b) for a, b in PARALLEL.values()]


def crossover_yv(r):
    m1, s1, m2, s2, n = X1
    return [(m1 - m2, (s1**2 + s2**2 - 2 * r * s1 * s2) / n), (X2[0], X2[1] ** 2 / X2[2])]


def row(t, target="mean", **levels):
    sel = t["target"] == target
    for k, v in levels.items():
        sel &= t[k] == v
    out = t[sel]
    assert len(out) == 1, levels
    return out.iloc[0]


def check_marginal(r, m, atol=1e-9):
    """A grid row against a marginal computed independently, at the MCID of the grid."""
    q = np.asarray(m.ppf(np.array([0.025, 0.5, 0.975])), dtype=float)
    expected = {"mean": m.mean, "sd": m.sd, "ci_low": q[0], "median": q[1], "ci_high": q[2],
                "p_benefit": float(m.cdf(-MCID)), "p_harm": 1.0 - float(m.cdf(MCID))}
    for k, v in expected.items():
        assert r[k] == pytest.approx(v, abs=atol, rel=1e-8), k
    assert r["error"] == ""


def fe_normal(y, v, prior=PRIOR_MU):
    """Fixed-effect posterior with a normal prior: closed form."""
    y, v = np.asarray(y, float), np.asarray(v, float)
    prec = np.sum(1 / v) + 1 / prior.sigma**2
    return stats.norm((np.sum(y / v) + prior.mu / prior.sigma**2) / prec, math.sqrt(1 / prec))


class _Normal:
    """A frozen scipy normal with the Marginal methods check_marginal uses."""

    def __init__(self, dist):
        self.d = dist
        self.mean, self.sd = float(dist.mean()), float(dist.std())

    def ppf(self, q):
        return self.d.ppf(q)

    def cdf(self, x):
        return self.d.cdf(x)


# --------------------------------------------------------------------------- r
def test_r_levels_equal_direct_fits_of_the_crossover_trial_rebuilt_by_hand():
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    res = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, r=[0.5, 0.2, 0.8], model=["random", "fixed"],
                           mcid=MCID, targets=("mean", "predictive", "X1"), progress=False)
    t = res.table
    assert t["r"].dtype == np.float64 and sorted(t["r"].unique()) == [0.2, 0.5, 0.8]
    assert t["fit_id"].nunique() == 6
    for r in (0.2, 0.5, 0.8):
        yv = parallel_yv() + crossover_yv(r)
        y, v = np.array([a for a, _ in yv]), np.array([b for _, b in yv])
        exact = ExactNormalNormal(y, v, PRIOR_MU, PRIOR_TAU)
        check_marginal(row(t, r=r, model="random"), exact.mu)
        check_marginal(row(t, "predictive", r=r, model="random"), exact.theta_new)
        check_marginal(row(t, "X1", r=r, model="random"), exact.theta(3))
        check_marginal(row(t, r=r, model="fixed"), _Normal(fe_normal(y, v)))
        assert f"r={r:g}" in row(t, r=r, model="random")["label"]
    assert res.table.attrs["grid"]["r"]["rederived"] == {"as given": ["X1"]}


def test_r_factor_leaves_trials_with_a_reported_correlation_alone():
    cross = crossover_es(0.5)
    reported = cross.assign(assumed_r=np.nan)  # as if X1 had reported its ri
    with pytest.raises(KetabayesError, match=r"r=\[0.2\]: no trial of the data needs an assumed within-patient "
                                             r"correlation \(column 'assumed_r'"):
        sensitivity_grid(pd.concat([parallel_es(), reported], ignore_index=True), r=0.2, prior_tau=PRIOR_TAU,
                         progress=False)


# --------------------------------------------------------------------------- multi-arm
def test_multiarm_levels_equal_direct_fits():
    es = pd.concat([parallel_es(), multiarm_es()], ignore_index=True)
    res = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, multiarm=["correlated", "combine", "split"],
                           model=["random", "fixed"], mcid=MCID, progress=False)
    t = res.table
    assert (t["error"] == "").all()
    yp = [y for y, _ in parallel_yv()]
    vp = [v for _, v in parallel_yv()]
    v0 = T3["placebo"][1] ** 2 / 30
    vl, vh = T3["low"][1] ** 2 / 30, T3["high"][1] ** 2 / 30
    ylo, yhi = T3["low"][0] - 4.0, T3["high"][0] - 4.0
    # correlated: the two contrasts share the placebo arm (covariance v0), random effects correlate 1/2
    y = np.array(yp + [ylo, yhi])
    S = np.diag(vp + [vl + v0, vh + v0])
    S[3, 4] = S[4, 3] = v0
    mv = ExactMultivariateNormal(y, S, [0, 1, 2, 3, 3], [0] * 5, PRIOR_MU, PRIOR_TAU, rho=0.5)
    check_marginal(row(t, multiarm="correlated", model="random"), mv.mu)
    check_marginal(row(t, "predictive", multiarm="correlated", model="random"), mv.theta_new)
    assert row(t, multiarm="correlated", model="random")["k"] == 4  # trials, not contrasts
    # fixed effect of correlated estimates: generalised least squares with the normal prior
    one = np.ones(5)
    Si = np.linalg.inv(S)
    prec = one @ Si @ one + 1 / PRIOR_MU.sigma**2
    gls = stats.norm((one @ Si @ y) / prec, math.sqrt(1 / prec))
    check_marginal(row(t, multiarm="correlated", model="fixed"), _Normal(gls))
    # combine: the two ketamine arms as one sample
    z = np.linspace(-1, 1, 30)
    z = (z - z.mean()) / z.std(ddof=1)
    pooled = np.concatenate([T3["low"][0] + T3["low"][1] * z, T3["high"][0] + T3["high"][1] * z])
    yc, vc = pooled.mean() - 4.0, pooled.std(ddof=1) ** 2 / 60 + v0
    check_marginal(row(t, multiarm="combine", model="random"),
                   ExactNormalNormal(np.array(yp + [yc]), np.array(vp + [vc]), PRIOR_MU, PRIOR_TAU).mu)
    # split: placebo n = 30 divided between the two comparisons
    vs = [vl + T3["placebo"][1] ** 2 / 15, vh + T3["placebo"][1] ** 2 / 15]
    split = ExactNormalNormal(np.array(yp + [ylo, yhi]), np.array(vp + vs), PRIOR_MU, PRIOR_TAU)
    check_marginal(row(t, multiarm="split", model="random"), split.mu)
    check_marginal(row(t, multiarm="split", model="fixed"), _Normal(fe_normal(yp + [ylo, yhi], vp + vs)))


def test_correlated_contrasts_without_the_factor_are_still_fitted_with_their_covariance():
    es = pd.concat([parallel_es(), multiarm_es()], ignore_index=True)
    t = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, mcid=MCID, progress=False,
                         targets=("mean", "T3|high", "P1")).table
    with_factor = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, mcid=MCID, progress=False,
                                   multiarm="correlated", targets=("mean", "T3|high", "P1")).table
    np.testing.assert_allclose(t[NUM].to_numpy(float), with_factor[NUM].to_numpy(float), rtol=1e-13)
    assert (t["multiarm"] == "as given").all() and (t["error"] == "").all()


# --------------------------------------------------------------------------- conversions and the data factor
def test_conversions_excluded_equals_a_fit_of_the_reported_trials():
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    es.loc[es["study"] == "P2", ["converted", "conversion"]] = [True, "SD from a 95% CI (SIMULATED flag)"]
    res = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, conversions=True, mcid=MCID, progress=False)
    t = res.table
    keep = [0, 2, 4]  # P1, P3 and X2: P2's SD and X1's crossover SE were derived
    yv = parallel_yv() + crossover_yv(0.5)
    exact = ExactNormalNormal(np.array([yv[i][0] for i in keep]), np.array([yv[i][1] for i in keep]),
                              PRIOR_MU, PRIOR_TAU)
    check_marginal(row(t, conversions="excluded"), exact.mu)
    assert row(t, conversions="excluded")["k"] == 3 and row(t, conversions="included")["k"] == 5
    assert res.table.attrs["grid"]["conversions"]["converted"] == {"as given": ["P2", "X1"]}


def test_data_levels_as_tables_and_callables():
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    res = sensitivity_grid({"all trials": es, "parallel only": lambda d: d[d["route"].isna()]}, prior_mu=PRIOR_MU,
                           prior_tau=PRIOR_TAU, mcid=MCID, progress=False)
    t = res.table
    yv = parallel_yv()
    only = ExactNormalNormal(np.array([y for y, _ in yv]), np.array([v for _, v in yv]), PRIOR_MU, PRIOR_TAU)
    check_marginal(row(t, data="parallel only"), only.mu)
    assert list(t["data"].unique()) == ["all trials", "parallel only"]


# --------------------------------------------------------------------------- time windows
def timed():
    return pd.DataFrame({"study": ["A", "A", "A", "B", "B", "C", "C"],
                         "time": ["short", "medium", "long", "short", "long", "short", "medium"],
                         "yi": [-1.6, -1.1, -0.4, -1.2, -0.2, -1.9, -0.9],
                         "vi": [0.20, 0.22, 0.25, 0.30, 0.35, 0.18, 0.2], "ni": [60, 60, 60, 40, 40, 80, 80]})


def test_rho_time_levels_equal_the_multivariate_model():
    res = sensitivity_grid(timed(), prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, rho_time=[0.5, 0.2, 0.8], mcid=MCID,
                           targets=("mean|time=short", "mean|time=long", "A|time=long"), progress=False)
    t = res.table
    assert t["rho_time"].dtype == np.float64 and (t["rho_between"] == 0.5).all()
    for rt in (0.2, 0.5, 0.8):
        m = kb.MultivariateModel.from_time_points(timed(), rho_time=rt, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU)
        dt = m.fit(mcid=MCID, seed=1, draws=10, chains=1, frequentist=False).decision_table(
            targets=["mean|time=short", "mean|time=long", "A|time=long"]).set_index("target")
        for target in dt.index:
            r = row(t, target, rho_time=rt)
            for c in ("mean", "sd", "ci_low", "ci_high", "p_benefit", "p_trivial", "p_harm"):
                assert r[c] == pytest.approx(dt.loc[target, c], rel=1e-10, abs=1e-12), (rt, target, c)


def test_time_windows_need_rho_time():
    with pytest.raises(KetabayesError, match=r"several time windows per study \(column 'time'\): give the assumed"):
        sensitivity_grid(timed(), prior_tau=PRIOR_TAU, progress=False)
    with pytest.raises(KetabayesError, match=r"rho_time=\[0.5\]: the data has no estimates at several time"):
        sensitivity_grid(parallel_es(), prior_tau=PRIOR_TAU, rho_time=0.5, progress=False)
    with pytest.raises(KetabayesError, match="rho_time level 1.2"):
        sensitivity_grid(timed(), prior_tau=PRIOR_TAU, rho_time=[0.5, 1.2], progress=False)


# --------------------------------------------------------------------------- bias adjustment
def _trapezoid_weights(x):
    w = np.zeros_like(x)
    h = np.diff(x)
    w[:-1] += h / 2
    w[1:] += h / 2
    return w


def _rob_brute_force(y, v, x, prior_mu, delta_sd, tau_sd=None, n=801):
    """E[mu] and P(mu < -MCID) in y_i ~ N(mu - |delta| x_i, v_i + tau^2) (benefit lower), by brute force.

    mu is integrated in closed form given (tau, |delta|); (tau, |delta|) on a uniform grid over 8 prior
    SDs with the trapezoid rule (tau = 0 for the fixed effect). Half-normal priors of |delta| and tau.
    """
    y, v, x = (np.asarray(a, float) for a in (y, v, x))
    d = np.linspace(0.0, 8 * delta_sd, n)
    t = np.zeros(1) if tau_sd is None else np.linspace(0.0, 8 * tau_sd, n)
    T, D = np.meshgrid(t, d, indexing="ij")
    w = 1.0 / (v + T[..., None] ** 2)
    r = y + D[..., None] * x
    m0, s0 = prior_mu.mu, prior_mu.sigma
    prec = w.sum(-1) + 1 / s0**2
    m = ((w * r).sum(-1) + m0 / s0**2) / prec
    logp = (0.5 * np.log(w).sum(-1) - 0.5 * np.log(s0**2 * prec)
            - 0.5 * ((w * r * r).sum(-1) + m0**2 / s0**2 - prec * m**2) - D**2 / (2 * delta_sd**2))
    quad = _trapezoid_weights(d)[None, :]
    if tau_sd is not None:
        logp -= T**2 / (2 * tau_sd**2)
        quad = quad * _trapezoid_weights(t)[:, None]
    post = np.exp(logp - logp.max()) * quad
    post /= post.sum()
    return float((post * m).sum()), float((post * special.ndtr((-MCID - m) * np.sqrt(prec))).sum())


def test_bias_adjustment_equals_a_dense_grid_integration():
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    res = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=HalfNormal(0.5), bias=ROB,
                           model=["random", "fixed"], mcid=MCID, progress=False)
    t = res.table
    assert (t["error"] == "").all() and list(t["bias"].unique()) == ["none", "RoB"]
    yv = parallel_yv() + crossover_yv(0.5)
    y, v = [a for a, _ in yv], [b for _, b in yv]
    x = [1, 0, 0, 1, 0]  # P1 and X1 at high risk of bias
    mean_fe, pb_fe = _rob_brute_force(y, v, x, PRIOR_MU, 0.5, n=20001)
    r = row(t, bias="RoB", model="fixed")
    assert r["mean"] == pytest.approx(mean_fe, abs=1e-6) and r["p_benefit"] == pytest.approx(pb_fe, abs=1e-6)
    mean_re, pb_re = _rob_brute_force(y, v, x, PRIOR_MU, 0.5, tau_sd=0.5, n=1201)
    r = row(t, bias="RoB", model="random")
    assert r["mean"] == pytest.approx(mean_re, abs=2e-5) and r["p_benefit"] == pytest.approx(pb_re, abs=2e-5)
    # unadjusted rows are the usual normal-normal posterior; the adjustment moves mu away from benefit
    check_marginal(row(t, bias="none", model="random"), ExactNormalNormal(np.array(y), np.array(v), PRIOR_MU,
                                                                          HalfNormal(0.5)).mu)
    assert row(t, bias="RoB", model="random")["mean"] > row(t, bias="none", model="random")["mean"]
    assert "RoB" in res.table.attrs["grid"]["bias"] and res.table.attrs["grid"]["bias"]["none"] is None


def test_bias_prior_level_equals_the_gaussian_closed_form():
    """A BiasPrior level (shared shift b ~ N(m, s^2) towards benefit, per-trial e_i ~ N(0, k^2)), fixed effect:
    y ~ N(mu 1 - m x, V + k^2 diag(x) + s^2 x x') with mu ~ N(0, 10^2) -- a normal-normal update in closed form."""
    from ketabayes.model.bias_priors import BiasPrior

    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    prior = BiasPrior(mean=0.6, sd=0.3, kappa=0.4, source="elicited for this test (analysis scale)")
    t = sensitivity_grid(es, prior_mu=PRIOR_MU, bias={"none": None, "elicited": {"prior_rob": prior}},
                         model="fixed", mcid=MCID, progress=False).table
    yv = parallel_yv() + crossover_yv(0.5)
    y, v = np.array([a for a, _ in yv]), np.array([b for _, b in yv])
    x = np.array([1.0, 0, 0, 1, 0])                       # P1 and X1 at high risk of bias
    cov = np.diag(v) + 0.4**2 * np.diag(x) + 0.3**2 * np.outer(x, x)
    w = np.linalg.solve(cov, np.ones(5))
    prec = w.sum() + 1 / PRIOR_MU.sigma**2
    mean = w @ (y + 0.6 * x) / prec                       # lower is better: the bias moved y down by 0.6
    r = row(t, bias="elicited", model="fixed")
    assert r["mean"] == pytest.approx(mean, abs=1e-8)
    assert r["sd"] == pytest.approx(1 / np.sqrt(prec), abs=1e-8)
    assert r["p_benefit"] == pytest.approx(special.ndtr((-MCID - mean) * np.sqrt(prec)), abs=1e-8)


def test_bma_model_level_equals_kb_bma():
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    t = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=HalfNormal(0.5), model=["random", "bma"],
                         bias=ROB, mcid=MCID, targets=("mean", "mean|effect"), progress=False).table
    for bias, kw in (("none", {}), ("RoB", dict(bias=["RoB"], rob="rob", prior_rob="halfnormal(0.5)"))):
        direct = kb.bma(es, prior_mu=PRIOR_MU, prior_tau=HalfNormal(0.5), mcid=MCID, seed=1, **kw)
        dt = direct.decision_table(targets=["mean", "mean|effect"]).set_index("target")
        for target in ("mean", "mean|effect"):
            r = row(t, target, bias=bias, model="bma")
            for c in ("mean", "p_benefit", "p_trivial", "p_harm", "p_any_benefit"):
                assert r[c] == pytest.approx(dt.loc[target, c], rel=1e-10, abs=1e-12), (bias, target, c)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    (dict(bias=ROB, prior_tau=PRIOR_TAU, model="hierarchical"), "applies to model 'random', 'fixed'"),
    (dict(bias={"none": None, "RoB": {"rob": "risk", "prior_rob": "halfnormal(0.5)"}}, prior_tau=PRIOR_TAU),
     "bias level 'RoB'.*column 'risk'"),
    (dict(bias=["none", "RoB"], prior_tau=PRIOR_TAU), "bias level 'RoB': the 'RoB' bias model needs prior_rob: a "
     "cited default exists only for odds-ratio analyses"),
    (dict(bias={"none": None, "some": {"rob_high": ["some concerns"], "prior_rob": "halfnormal(0.5)"}},
          prior_tau=PRIOR_TAU),
     r"bias level 'some': no trial is at high risk of bias \(column 'rob' never in \('some concerns',\)\)"),
    (dict(multiarm="combine", prior_tau=PRIOR_TAU), "no multi-arm trial"),
    (dict(conversions=True, prior_tau=PRIOR_TAU), r"conversions='excluded': no trial's values were converted"),
    (dict(multiarm="merge", prior_tau=PRIOR_TAU), "multiarm level 'merge' is not one of"),
    (dict(r=[0.5, 0.5], prior_tau=PRIOR_TAU), "r level 0.5 is given twice"),
])
def test_factors_that_cannot_apply_are_clear_errors(kwargs, pattern):
    with pytest.raises(KetabayesError, match=pattern):
        sensitivity_grid(parallel_es(), progress=False, **kwargs)


def test_bias_with_a_flat_prior_is_a_recorded_failure_naming_the_prior():
    t = sensitivity_grid(parallel_es(), prior_tau=PRIOR_TAU, bias=ROB, progress=False).table
    assert (t.loc[t["bias"] == "none", "error"] == "").all()
    assert t.loc[t["bias"] == "RoB", "error"].str.contains("needs a normal prior for mu").all()


# --------------------------------------------------------------------------- the grid machinery
def test_one_at_a_time_labels_and_tornado_name_the_new_factors(tmp_path):
    es = pd.concat([parallel_es(), crossover_es(0.5), multiarm_es()], ignore_index=True)
    res = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, r=[0.5, 0.2, 0.8],
                           multiarm=["combine", "split"], model=["random", "fixed"], mcid=MCID,
                           design="one-at-a-time", progress=False)
    t = res.table
    assert t["fit_id"].nunique() == 1 + 2 + 1 + 1
    labels = list(dict.fromkeys(t["label"]))
    assert labels == ["base", "model=fixed", "r=0.2", "r=0.8", "multiarm=split"]
    fig = res.plot("tornado", target="mean")
    ax = fig.axes[0]
    assert sorted(tl.get_text() for tl in ax.get_yticklabels()) == ["model", "multiarm", "r"]
    ends = {tx.get_text().strip() for tx in ax.texts}
    assert {"0.2", "0.8", "combine", "split"} <= ends
    fig.savefig(tmp_path / "tornado.png")
    fig = res.plot("heatmap")
    assert [tl.get_text() for tl in fig.axes[0].get_yticklabels()] == labels


def test_reporting_knows_every_factor():
    from ketabayes.reporting.robustness_plot import TABLE_FACTORS

    assert TABLE_FACTORS == FACTORS


FLAKY = {"on": False}
CALLS: list[str] = []


def flaky_analysis(data, variant, **kw):
    CALLS.append(variant.name)
    if FLAKY["on"] and variant.levels["r"] == 0.2:
        raise FloatingPointError("boom at r = 0.2")
    return normal_analysis(data, variant, **kw)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_checkpoint_resume_with_data_factors(tmp_path, suffix):
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    path = tmp_path / f"grid{suffix}"
    kw = dict(prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, r=[0.5, 0.2, 0.8], bias=ROB, mcid=MCID,
              model={"random": flaky_analysis}, progress=False, checkpoint=path)
    FLAKY["on"] = True
    try:
        first = sensitivity_grid(es, **kw)
    finally:
        FLAKY["on"] = False
    assert first.failed["fit_id"].nunique() == 2  # r = 0.2, with and without the bias adjustment
    CALLS.clear()
    second = sensitivity_grid(es, **kw)
    assert sorted(CALLS) == sorted(v for v in second.table["fit_id"].unique() if "r=0.2" in v)
    reference = sensitivity_grid(es, **{**kw, "checkpoint": None, "model": "random"}).table
    np.testing.assert_allclose(second.table[NUM].to_numpy(float), reference[NUM].to_numpy(float), rtol=1e-12)
    assert second.table["r"].dtype == np.float64
    # other r levels, other trial data behind an assumed r, or another bias definition: not reusable
    for changed in ({**kw, "r": [0.5, 0.2, 0.7]},
                    {**kw, "bias": ["none", {"rob_high": ["high", "low"], "prior_rob": "halfnormal(0.5)"}]}):
        with pytest.raises(KetabayesError, match="different configuration"):
            sensitivity_grid(es, **changed)
    other = es.copy()
    other.loc[other["study"] == "X1", "sd2i"] = 2.5  # changes X1's variance at every r
    with pytest.raises(KetabayesError, match="different configuration"):
        sensitivity_grid(other, **kw)


def test_settings_record_every_frame_and_level(tmp_path):
    es = pd.concat([parallel_es(), crossover_es(0.5)], ignore_index=True)
    grid = kb.Sensitivity(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, r=[0.5, 0.2], conversions=True, mcid=MCID)
    s = grid.settings(seed=1)
    assert len(s["frames"]["frames"]) == 4  # 2 r levels x 2 conversions levels
    assert s["frames"]["r"] == {"0.5": 0.5, "0.2": 0.2}
    frames = [grid.variant_data(v) for v in grid.variants]
    assert [len(f) for f in frames] == [5, 4, 5, 4]  # conversions excluded: X1 (its SE needed an assumed r)
    assert frames[2].loc[frames[2]["study"] == "X1", "assumed_r"].item() == 0.2
    res = grid.run(progress=False)
    json.loads(json.dumps(res.table.attrs["grid"], default=str))
    out = res.to_csv(tmp_path / "grid.csv")
    back = pd.read_csv(out)
    assert back["r"].dtype == np.float64


def test_models_that_assume_independent_rows_refuse_correlated_estimates():
    es = pd.concat([parallel_es(), multiarm_es()], ignore_index=True).assign(drug="ketamine")
    with pytest.raises(KetabayesError, match=r"model 'hierarchical' takes one independent estimate per trial.*"
                                             r"correlated estimates \(multiarm\).*multiarm='combine'"):
        sensitivity_grid(es, prior_tau=PRIOR_TAU, model=["random", "hierarchical"], progress=False,
                         fit_kwargs={"by": ["drug"]})
    with pytest.raises(KetabayesError, match="model 'bma' takes one independent estimate"):
        sensitivity_grid(es, prior_tau=PRIOR_TAU, model="bma", multiarm=["correlated", "split"], progress=False)
    # a level without correlated contrasts everywhere is fine
    t = sensitivity_grid(es, prior_mu=PRIOR_MU, prior_tau=PRIOR_TAU, model="bma", multiarm=["combine", "split"],
                         targets=("mean",), progress=False).table
    assert (t["error"] == "").all()
