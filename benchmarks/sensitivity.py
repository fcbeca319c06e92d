"""Benchmark of the sensitivity grid against the naive loop of independent fits.

Data: a SIMULATED 67-trial meta-analysis of log odds ratios (numpy, fixed seed;
not real data). Reference: the naive loop ``RandomEffectsModel(...).fit("exact")``
+ ``decision_table`` per variant, timed in the same run on a subsample of the
variants and expressed per variant.

Targets (issue): 1,000 exact variants <= 10 s; exact leave-one-out over 67
trials <= 2 s.

Run: ``python benchmarks/sensitivity.py`` (prints a Markdown table);
``python benchmarks/sensitivity.py --loo-memory`` measures the peak memory of a 4,000-trial
exact leave-one-out grid (slow).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ketabayes.model.random_effects import RandomEffectsModel
from ketabayes.sensitivity import sensitivity_grid


def simulated_review(k: int = 67, seed: int = 2026) -> pd.DataFrame:
    """SIMULATED: k trials, true log OR -0.2, tau 0.15, within-trial variances 0.01-0.5."""
    rng = np.random.default_rng(seed)
    vi = np.exp(rng.uniform(np.log(0.01), np.log(0.5), k))
    theta = rng.normal(-0.2, 0.15, k)
    yi = rng.normal(theta, np.sqrt(vi))
    df = pd.DataFrame({"study": [f"SIM-{i + 1:02d}" for i in range(k)], "yi": yi, "vi": vi})
    df.attrs["measure"] = "OR"
    return df


def naive_per_variant(data, variants, mcid=1.25):
    t0 = time.perf_counter()
    for mu, tau in variants:
        RandomEffectsModel(data, prior_mu=mu, prior_tau=tau).fit("exact", mcid=mcid, seed=1).decision_table()
    return (time.perf_counter() - t0) / len(variants)


def main():
    data = simulated_review()
    mu_priors = {f"N(0,{s:.3g})": f"normal(0, {s})" for s in np.geomspace(0.1, 5.0, 20)}
    tau_priors = {f"HN({s:.3g})": f"halfnormal({s})" for s in np.geomspace(0.05, 2.0, 50)}
    sensitivity_grid(data, prior_mu="normal(0, 1)", mcid=1.25, progress=False)  # warm-up (imports)

    pairs = [(m, t) for m in list(mu_priors.values())[::4] for t in list(tau_priors.values())[::10]][:25]
    naive = naive_per_variant(data, pairs)

    rows = []
    t0 = time.perf_counter()
    res = sensitivity_grid(data, prior_mu=mu_priors, prior_tau=tau_priors, mcid=1.25, progress=False)
    t = time.perf_counter() - t0
    n = res.table["fit_id"].nunique()
    rows.append(("1,000 exact variants = 1,000 distinct fits (20 mu x 50 tau priors), 2 targets", n, t,
                 naive * n, 10.0))

    import concurrent.futures as cf
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("forkserver")) as ex:
        list(ex.map(abs, range(4)))  # start the workers
        t0 = time.perf_counter()
        res = sensitivity_grid(data, prior_mu=mu_priors, prior_tau=tau_priors, mcid=1.25, progress=False, executor=ex)
        t = time.perf_counter() - t0
    rows.append(("same 1,000 distinct fits, ProcessPoolExecutor(2) (2-core machine)", res.table["fit_id"].nunique(),
                 t, naive * 1000, 10.0))

    t0 = time.perf_counter()
    res = sensitivity_grid(data, prior_mu=dict(list(mu_priors.items())[:5]),
                           prior_tau=dict(list(tau_priors.items())[:50]), mcid=[1.1, 1.25, 1.5, 2.0], progress=False)
    t = time.perf_counter() - t0
    n = res.table["variant"].nunique()
    rows.append(("1,000 exact variants = 250 fits x 4 MCIDs (no refit per MCID)", n, t, naive * n, 10.0))

    t0 = time.perf_counter()
    res = sensitivity_grid(data, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25,
                           leave_one_out=True, progress=False)
    t = time.perf_counter() - t0
    n = res.table["fit_id"].nunique()
    rows.append(("exact leave-one-out, 67 trials (+ all-studies fit)", n, t, naive * n, 2.0))

    t0 = time.perf_counter()
    res = sensitivity_grid(data, prior_mu={k: v for k, v in list(mu_priors.items())[:10]},
                           prior_tau=dict(list(tau_priors.items())[:10]), mcid=1.25, bayes_factor=True,
                           progress=False)
    t = time.perf_counter() - t0
    n = res.table["fit_id"].nunique()
    rows.append(("100 exact variants with Bayes factor + model averaging", n, t, naive * n, float("nan")))

    print(f"naive loop: {naive * 1e3:.1f} ms per variant (RandomEffectsModel.fit('exact') + decision_table, "
          f"mean of {len(pairs)} fits)\n")
    print("| grid | variants | grid time (s) | naive loop (s, est.) | speed-up | target (s) | met |")
    print("|---|---:|---:|---:|---:|---:|:-:|")
    for name, n, t, tn, target in rows:
        met = "" if not np.isfinite(target) else ("yes" if t <= target else "NO")
        tgt = "" if not np.isfinite(target) else f"{target:g}"
        print(f"| {name} | {n} | {t:.2f} | {tn:.1f} | {tn / t:.0f}x | {tgt} | {met} |")


def loo_memory(k: int = 4000) -> tuple[int, float, float]:
    """Peak traced memory (tracemalloc, MB) of an exact leave-one-out grid over ``k`` SIMULATED trials.

    The issue's limit: a few hundred MB (before streaming, the cached subsets alone took
    877 MB at k = 4000, growing as k^2).
    """
    import tracemalloc

    data = simulated_review(k)
    sensitivity_grid(simulated_review(5), prior_mu="normal(0, 1)", mcid=1.25, progress=False)  # imports
    tracemalloc.start()
    t0 = time.perf_counter()
    res = sensitivity_grid(data, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", mcid=1.25,
                           leave_one_out=True, progress=False)
    t = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return res.table["fit_id"].nunique(), t, peak


if __name__ == "__main__":
    import sys

    if "--loo-memory" in sys.argv:  # slow (minutes): 4,001 exact fits of ~4,000 trials each
        n, t, peak = loo_memory()
        print(f"| exact leave-one-out, 4,000 SIMULATED trials | {n} fits | {t:.0f} s | peak {peak:.0f} MB |")
    else:
        main()
