"""Speed of Bayesian model averaging (issue #14 item 8).

Run ``python benchmarks/bma.py``. Times, in one run on this machine:

* the 4-model normal ensemble (FE/RE x effect/no effect) by quadrature (milliseconds), against a
  reference of the same 4 marginal likelihoods by scipy's adaptive ``dblquad`` (ratio);
* the PET-PEESE ensemble (12 models, 2-D quadrature);
* RoBMA-PSMA's 36-model ensemble (12 models by quadrature, 24 selection models by importance sampling on
  randomised quasi-Monte Carlo points, the default); target < 2 min on the 2-core machine;
* the same ensemble with every selection model by PyMC's SMC (``--smc``; the engine before).

Data: magnesium in myocardial infarction (16 trials, log OR; real data, ``magnesium_mi``). Every time is also
given as a ratio to the 4-model ensemble measured in the same run.
"""

from __future__ import annotations

import math
import os
import sys
import time

import numpy as np
from scipy import integrate, stats

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ketabayes as kb  # noqa: E402
from ketabayes.inference.bma import fit_ensemble  # noqa: E402


def data():
    d = kb.load_dataset("magnesium_mi")
    d["study"] = d["study"] + " " + d["year"].astype(str)
    es = kb.effect_sizes(d, measure="OR")
    return es["yi"].to_numpy(float), es["vi"].to_numpy(float)


def dblquad_reference(y, v):
    """The 4 marginal likelihoods by scipy's adaptive quadrature (mu, tau numerically)."""
    se = np.sqrt(v)
    out = [stats.norm.logpdf(y, 0, se).sum()]
    mhat = float(np.sum(y / v) / np.sum(1 / v))  # the likelihood of mu is sharp (ISIS-4): tell quad where
    out.append(math.log(integrate.quad(lambda m: math.exp(stats.norm.logpdf(y, m, se).sum()
                                                          + stats.norm.logpdf(m, 0, 1)), mhat - 1, mhat + 1,
                                       points=[mhat], epsabs=0.0, epsrel=1e-10, limit=200)[0]))
    out.append(math.log(integrate.quad(lambda t: math.exp(stats.norm.logpdf(y, 0, np.sqrt(v + t * t)).sum()
                                                          + stats.halfnorm.logpdf(t, scale=0.5)), 0, 5)[0]))
    out.append(math.log(integrate.dblquad(
        lambda m, t: math.exp(stats.norm.logpdf(y, m, np.sqrt(v + t * t)).sum() + stats.norm.logpdf(m, 0, 1)
                              + stats.halfnorm.logpdf(t, scale=0.5)), 0, 5, -5, 5)[0]))
    return np.array(out)


def main():
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smc", action="store_true", help="also time the 36 models with every selection model by SMC")
    args = ap.parse_args()
    y, v = data()
    kw = dict(prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", benefit="lower")
    fit_ensemble(y, v, **kw)  # warm-up (imports)
    t = time.perf_counter()
    n = 20
    for _ in range(n):
        ens = fit_ensemble(y, v, **kw)
    t4 = (time.perf_counter() - t) / n
    t = time.perf_counter()
    ref = dblquad_reference(y, v)
    tref = time.perf_counter() - t
    ours = np.array([f.log_ml for f in ens.fits])
    print(f"4-model normal ensemble, quadrature: {1e3 * t4:.1f} ms; scipy dblquad reference {tref:.2f} s "
          f"(ratio {tref / t4:.0f}x); max |log_ml difference| {np.max(np.abs(ours - ref)):.1e}")
    t = time.perf_counter()
    fit_ensemble(y, v, bias="pet-peese", **kw)
    tpp = time.perf_counter() - t
    print(f"12-model PET-PEESE ensemble, quadrature: {tpp:.2f} s")
    t = time.perf_counter()
    ens = fit_ensemble(y, v, bias="robma", seed=1, **kw)
    trob = time.perf_counter() - t
    report("36-model RoBMA-PSMA ensemble (selection models by importance sampling)", ens, trob, t4)
    if args.smc:
        t = time.perf_counter()
        ens_smc = fit_ensemble(y, v, bias="robma", seed=1, selection="smc", **kw)
        tsmc = time.perf_counter() - t
        report("36-model RoBMA-PSMA ensemble (selection models by SMC, 500 particles x 4 runs)", ens_smc, tsmc, t4)
        sel = [f.spec.label for f in ens.fits if f.method == "importance"]
        d = np.array([ens.fit(lab).log_ml - ens_smc.fit(lab).log_ml for lab in sel])
        se = np.array([np.hypot(ens.fit(lab).log_ml_se, ens_smc.fit(lab).log_ml_se) for lab in sel])
        print(f"  importance sampling vs SMC, 24 selection models: max |log_ml difference| {np.max(np.abs(d)):.3f}, "
              f"max |difference| / combined MC error {np.max(np.abs(d) / se):.1f}; time ratio SMC / IS "
              f"{tsmc / trob:.1f}x")


def report(title, ens, seconds, t4):
    sel = [f for f in ens.fits if f.method in ("importance", "smc")]
    print(f"{title}: {seconds:.1f} s (target < 120 s: {'met' if seconds < 120 else 'NOT met'}); ratio to the 4-model "
          f"ensemble {seconds / t4:.0f}x; {len(sel)} selection models, {np.mean([f.seconds for f in sel]):.2f} s each "
          f"on average; largest MC error of a log_ml {max(f.log_ml_se for f in sel):.4f}")
    for c in ("effect", "heterogeneity", "bias"):
        b = ens.inclusion_bf(c)
        print(f"  BF_incl({c}) = {b['bf']:.4g} (log BF {b['log_bf']:.4f} +/- {b['log_bf_se']:.4f} MC error)")


if __name__ == "__main__":
    main()
