"""Parameter recovery and simulation-based calibration of the crossed drug x condition model (slow tier).

Truths are drawn from the priors of the fitted model, so Bayesian intervals must
cover at their nominal rate on average over replicates, and the rank of each
truth among posterior draws must be uniform (Talts et al. 2018,
arXiv:1804.06788). Trial estimates are drawn from the model's own sampling
distribution, ``yi ~ N(theta_i, vi)`` with the simulated ``vi`` treated as known.
Run with ``pytest -m slow tests/test_recovery.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ketabayes.data.simulate import simulate_review
from ketabayes.model.hierarchical import HierarchicalModel

pytestmark = pytest.mark.slow

DRUGS = {"ketamine": 9, "memantine": 5, "dextromethorphan": 5, "magnesium": 4}
CONDS = {"CRPS": 0.3, "fibromyalgia": 0.3, "diabetic neuropathy": 0.2, "phantom-limb pain": 0.2}
PRIOR = dict(mu=20.0, tau=6.0, drug=6.0, condition=4.0)
N_REP = 200
N_RANK = 99


def replicate(seed):
    rng = np.random.default_rng([seed, 99])
    mu = rng.normal(0, PRIOR["mu"])
    tau, sd_d, sd_c = (abs(rng.normal(0, PRIOR[k])) for k in ("tau", "drug", "condition"))
    d_eff = {d: rng.normal(0, sd_d) for d in DRUGS}
    c_eff = {c: rng.normal(0, sd_c) for c in CONDS}
    df = simulate_review(mu, tau=tau, drug_effects=d_eff, condition_effects=c_eff, drugs=DRUGS, conditions=CONDS,
                         seed=seed)
    df["yi"] = df.theta_true + np.sqrt(df.vi) * rng.standard_normal(len(df))
    truth = {"mean": mu, "tau": tau, "sd_drug": sd_d, "sd_condition": sd_c,
             **{f"drug={d}": mu + e for d, e in d_eff.items()}}
    model = HierarchicalModel(df, by=["drug", "condition"], prior_mu=f"normal(0, {PRIOR['mu']})",
                              prior_tau=f"halfnormal({PRIOR['tau']})",
                              prior_sd={"drug": f"halfnormal({PRIOR['drug']})",
                                        "condition": f"halfnormal({PRIOR['condition']})"})
    return model, truth


@pytest.fixture(scope="module")
def runs():
    out = []
    for seed in range(N_REP):
        model, truth = replicate(seed)
        res = model.fit("exact", seed=seed, chains=1, draws=N_RANK)
        scales = res.scale_summary(prob=0.90).set_index("target")
        post = res.tree["posterior"]
        cover, ranks = {}, {}
        for name, val in truth.items():
            if name in scales.index:
                lo, hi = scales.loc[name, "ci_low"], scales.loc[name, "ci_high"]
                draws = post[name].values.ravel()
            else:
                lo, hi = res.marginal(name).ppf(np.array([0.05, 0.95]))
                draws = post["effect"].sel(target=name).values.ravel()
            cover[name] = lo <= val <= hi
            ranks[name] = int(np.sum(draws < val))
        out.append((cover, ranks))
    return out


def test_coverage_of_90_percent_intervals(runs):
    names = runs[0][0].keys()
    lo, hi = stats.binom.ppf([0.0005, 0.9995], N_REP, 0.90)
    rates = {}
    for n in names:
        hits = sum(c[n] for c, _ in runs)
        rates[n] = hits / N_REP
        assert lo <= hits <= hi, f"{n}: {hits}/{N_REP} 90% intervals cover the truth"
    print("coverage:", {k: round(v, 3) for k, v in rates.items()})


def test_sbc_rank_uniformity(runs):
    names = runs[0][1].keys()
    bins = 10
    pvals = {}
    for n in names:
        r = np.array([rk[n] for _, rk in runs])
        counts = np.bincount(r * bins // (N_RANK + 1), minlength=bins)
        pvals[n] = stats.chisquare(counts).pvalue
    print("SBC chi-square p-values:", {k: round(v, 4) for k, v in pvals.items()})
    # Bonferroni over the quantities tested
    assert min(pvals.values()) > 0.001 / len(pvals)
