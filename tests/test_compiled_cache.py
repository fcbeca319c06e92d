"""NUTS models with data and prior parameters in pm.Data containers, and the cache of compiled models.

Expected values: scipy's densities (independent of PyMC) and a freshly built and compiled model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

import ketabayes as kb
from ketabayes.inference import nuts_hierarchical as nh
from ketabayes.inference.compiled_cache import CompiledModelCache, prior_data, prior_rv
from ketabayes.model import priors as P
from ketabayes.model.binomial import BinomialModel


def test_prior_parameters_change_without_rebuilding():
    import pymc as pm

    with pm.Model() as model:
        prior_rv(P.HalfNormal(0.5), "tau")
        prior_rv(P.Normal(0.0, 2.0), "mu")
    logp = model.compile_logp(jacobian=False)
    point = {"tau_log__": np.log(0.3), "mu": -0.4}
    expect = stats.halfnorm.logpdf(0.3, scale=0.5) + stats.norm.logpdf(-0.4, 0.0, 2.0)
    assert float(logp(point)) == pytest.approx(expect, rel=1e-10)
    with model:
        pm.set_data({**prior_data(P.HalfNormal(0.2), "tau"), **prior_data(P.Normal(1.0, 0.5), "mu")})
    expect = stats.halfnorm.logpdf(0.3, scale=0.2) + stats.norm.logpdf(-0.4, 1.0, 0.5)
    assert float(logp(point)) == pytest.approx(expect, rel=1e-10)   # same compiled function, new values


def _data():
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))
    return mg[mg.study.isin(["Morton 1984", "Bertschat 1989", "Rasmussen 1986", "Smith 1986"])].reset_index(drop=True)


def test_binomial_data_leave_one_out_zeroes_the_trial():
    m = BinomialModel(_data(), prior_mu="normal(0, 2)")
    d = nh.binomial_data(m, leave_out=[1])
    assert d["ai"][1] == d["ci"][1] == d["n1i"][1] == d["n2i"][1] == 0
    assert d["n1i"][0] == m.n1[0] and d["mu__sigma"] == 2.0 and d["tau__sigma"] == 0.5
    # Bin(0, p) has probability 1 at 0: the left-out trial adds nothing to the log likelihood
    assert stats.binom.logpmf(0, 0, 0.3) == 0.0


# short chains: this test checks that the draws are identical, not that they converged.
# Slow tier: three nutpie compilations (~5 s each on the development machine)
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ketabayes.errors.ConvergenceWarning")
def test_second_variant_does_not_recompile_and_matches_a_fresh_build():
    df = _data()
    kw = dict(mcid=1.25, seed=11, draws=200, tune=200, chains=2)
    cache = CompiledModelCache()
    BinomialModel(df, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit("nuts", cache=cache, **kw)
    assert cache.compilations == 1
    variant = BinomialModel(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.25)")
    res = variant.fit("nuts", cache=cache, **kw)
    assert cache.compilations == 1 and len(cache) == 1       # same structure: no new compilation
    fresh = CompiledModelCache()
    ref = variant.fit("nuts", cache=fresh, **kw)
    assert fresh.compilations == 1
    np.testing.assert_array_equal(res.tree["posterior"]["mu"].values, ref.tree["posterior"]["mu"].values)
    np.testing.assert_array_equal(res.tree["posterior"]["effect"].values, ref.tree["posterior"]["effect"].values)
    assert res.settings["prior_tau"]["sigma"] == 0.25 and res.engine == "nuts"
    # a different prior family is a different structure
    BinomialModel(df, prior_mu="flat()").fit("nuts", cache=cache, **kw)
    assert cache.compilations == 2


def test_normal_normal_model_takes_a_new_variant_without_rebuilding():
    import pymc as pm

    from ketabayes.inference.nuts import build_normal_normal, normal_normal_data, normal_normal_key

    y, v = np.array([0.1, -0.3, 0.2]), np.array([0.04, 0.09, 0.05])
    model = build_normal_normal(y, v, ["a", "b", "c"], P.Normal(0.0, 1.0), P.HalfNormal(0.5))
    logp = model.compile_logp(jacobian=False)
    point = {"mu": 0.05, "tau_log__": np.log(0.2), "z": np.zeros(3), "z_new": 0.0}

    def expect(y, v, m0, s0, st):
        return (stats.norm.logpdf(y, 0.05, np.sqrt(v + 0.04)).sum() + stats.norm.logpdf(0.05, m0, s0)
                + stats.halfnorm.logpdf(0.2, scale=st) + 4 * stats.norm.logpdf(0.0))

    assert float(logp(point)) == pytest.approx(expect(y, v, 0.0, 1.0, 0.5), rel=1e-10)
    y2, v2 = np.array([0.5, 0.0, -0.1]), np.array([0.1, 0.02, 0.03])
    with model:
        pm.set_data(normal_normal_data(y2, v2, P.Normal(0.2, 2.0), P.HalfNormal(0.3)))
    assert float(logp(point)) == pytest.approx(expect(y2, v2, 0.2, 2.0, 0.3), rel=1e-10)
    assert normal_normal_key(3, P.Normal(0, 1), P.HalfNormal(0.5)) == normal_normal_key(3, P.Normal(1, 2),
                                                                                       P.HalfNormal(9.0))


# Slow tier: each uncached fit compiles its own model (5-15 s each). Short chains: the point is that the
# draws are identical, not that they converged.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::ketabayes.errors.ConvergenceWarning")
@pytest.mark.parametrize("model", ["random", "hierarchical"])
def test_nuts_grid_compiles_once_per_structure_and_equals_uncached_fits(model, monkeypatch, bcg):
    from ketabayes.sensitivity import analyses, sensitivity_grid

    monkeypatch.setattr(analyses, "_NUTS_CACHE", None)   # a fresh process-wide cache, counted below
    fit = {"draws": 200, "tune": 200, "chains": 2}
    if model == "random":
        data, kw, taus = bcg, {"measure": "RR"}, ["halfnormal(0.25)", "halfnormal(0.5)", "halfnormal(1)"]
    else:
        data = kb.simulate_review(seed=2)   # SIMULATED drug x condition review
        kw, taus = {"measure": "GEN", "fit_kwargs": {"by": ["drug", "condition"], **fit}}, ["halfnormal(5)",
                                                                                          "halfnormal(10)"]
    grid = sensitivity_grid(data, prior_mu="normal(0, 50)" if model == "hierarchical" else "normal(0, 1)",
                            prior_tau=taus, model=model, method="nuts", seed=3, progress=False, keep_results=True,
                            **({"fit_kwargs": fit} if model == "random" else {}), **kw)
    t = grid.table
    assert (t["error"] == "").all(), t["error"].tolist()
    assert analyses._nuts_cache().compilations == 1      # len(taus) variants, one structure
    for name, res in grid.results.items():
        row = t[t["variant"] == name].iloc[0]
        if model == "random":
            direct = kb.RandomEffectsModel(data, prior_mu="normal(0, 1)", prior_tau=row["prior_tau_spec"],
                                           measure="RR").fit("nuts", seed=int(row["seed"]), cores=1,
                                                             frequentist=False, **fit)
            names = ["mu", "tau", "theta"]
        else:
            direct = kb.HierarchicalModel(data, by=["drug", "condition"], prior_mu="normal(0, 50)",
                                          prior_tau=row["prior_tau_spec"], measure="GEN").fit(
                "nuts", seed=int(row["seed"]), cores=1, **fit)
            names = ["mu", "tau", "sd_drug", "effect"]
        assert direct.settings["engine_settings"]["sampler"].startswith("nutpie")   # the same sampler ran
        for v in names:
            np.testing.assert_array_equal(res.tree["posterior"][v].values, direct.tree["posterior"][v].values)
