"""Benchmark: hierarchical drug x condition model on a simulated 67-trial review.

Measures, in one run on this machine:

* the exact engine (quadrature over tau, sd_drug, sd_condition);
* NUTS with the default (marginal) parameterisation, including compilation;
* NUTS on the non-centred model of the issue (trial effects integrated out,
  non-centred drug / condition effects sampled);
* the baseline: the straightforward PyMC model with trial effects sampled
  (non-centred), as one would write it by hand.

Run: ``.venv/bin/python benchmarks/hierarchical.py``. SIMULATED data (not trial results).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ketabayes.data.simulate import REVIEW_DRUGS, simulate_review
from ketabayes.errors import ConvergenceWarning
from ketabayes.inference.diagnostics import check_convergence
from ketabayes.inference.nuts import sample_nuts
from ketabayes.model.hierarchical import HierarchicalModel

PRIORS = dict(prior_mu="normal(0, 50)", prior_tau="halfnormal(10)")


def data():
    # the per-drug counts sum to 69; 67 comparisons: 37 ketamine (see benchmarks/README.md)
    drugs = dict(REVIEW_DRUGS, ketamine=37)
    return simulate_review(seed=3, drugs=drugs)


def baseline_model(m):
    """Non-marginalised model: theta_i = mu + alpha + beta + tau * z_i sampled."""
    import pymc as pm

    d = m.design
    with pm.Model(coords=m._coords()) as model:
        mu = m.prior_mu.to_pymc("mu")
        eta = mu
        for t in d.terms:
            sd = m.prior_sd[t.name].to_pymc(f"sd_{t.dim}")
            z = pm.Normal(f"z_{t.dim}", 0, 1, dims=t.dim)
            eta = eta + (sd * z)[t.index]
        tau = m.prior_tau.to_pymc("tau")
        z_i = pm.Normal("z_trial", 0, 1, dims="study")
        pm.Normal("y", mu=eta + tau * z_i, sigma=np.sqrt(m.vi), observed=m.yi, dims="study")
    return model


def main():
    df = data()
    m = HierarchicalModel(df, by=["drug", "condition"], **PRIORS)
    print(f"{m.k} trials, {len(m.design.terms[0].levels)} drugs, {len(m.design.terms[1].levels)} conditions")
    m.fit("exact", seed=1)  # warm-up (imports)
    t0 = time.perf_counter()
    ex = m.fit("exact", seed=1)
    t_exact = time.perf_counter() - t0
    rows = {}
    import importlib.util

    runs = [("nuts (marginal, default)", {"nuts_sampler": "pymc"}),
            ("nuts (non-centred)", {"parameterization": "noncentred", "nuts_sampler": "pymc"})]
    if importlib.util.find_spec("nutpie"):
        runs.append(("nuts (marginal) with nutpie", {"nuts_sampler": "nutpie"}))
    for label, kw in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            r = m.fit("nuts", seed=1, **kw)
            rows[label] = (time.perf_counter() - t0, r.diagnostics)
    t0 = time.perf_counter()
    tree = sample_nuts(baseline_model(m), seed=1, draws=1000, tune=1000, chains=4, nuts_sampler="pymc")
    t_base = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        d_base = check_convergence(tree, ["mu", "tau", "sd_drug", "sd_condition"])
    rows["baseline (trial effects sampled)"] = (t_base, d_base)
    print(f"exact engine: {t_exact:.2f} s ({ex.exact.n_nodes_total} nodes)")
    for label, (t, d) in rows.items():
        print(f"{label}: {t:.1f} s (incl. compilation), {t / t_exact:.0f} x exact; {d}")
    nuts_t = rows["nuts (marginal, default)"][0]
    print(f"ratios: baseline / nuts = {t_base / nuts_t:.2f}; nuts / exact = {nuts_t / t_exact:.0f}")


if __name__ == "__main__":
    main()
