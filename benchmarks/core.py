"""Benchmark of the exact normal-normal engine (``ExactNormalNormal``) against NUTS and the naive loop.

Data: SIMULATED meta-analyses of log odds ratios (numpy, fixed seeds; not real data) with
k = 10, 67 and 100 trials: true log OR -0.2, tau 0.15, within-trial variances 0.01-0.5.

Measured in one run:

1. one exact fit (median of 50 repetitions) for k = 10, 67, 100 under four tau priors: construction,
   mean / sd / 2.5%, 50%, 97.5% quantiles of mu and theta_new, and the decision probabilities
   (CDF at the three cut points -log 1.25, 0, log 1.25) of both;
2. 1,000 exact fits of the 67-trial data set under different priors (40 half-normal scales for tau x
   25 normal sds for mu), each with the summaries of (1); and the sensitivity engine's 1,000 distinct
   exact variants (``sensitivity_grid``, 20 mu x 50 tau priors, the grid of ``benchmarks/sensitivity.py``);
3. one NUTS fit including compilation, ``RandomEffectsModel(...).fit("nuts", chains=4, draws=1000)``
   on 2 cores (k = 67), and its ratio to one exact fit;
4. the baseline of (2): the naive loop of full ``RandomEffectsModel(...).fit("exact", frequentist=False)``
   + summaries per variant, timed on a subsample of the variants and extrapolated to 1,000.

Targets (issue): one exact fit <= 20 ms for up to 100 studies; 1,000 exact fits <= 5 s; the
sensitivity engine's 1,000 exact variants <= 10 s; NUTS incl. compilation <= 10 s.

Run by hand (not in CI): ``python benchmarks/core.py [--no-nuts] [--naive N]``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from ketabayes.decision import Thresholds, decision_probabilities
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.model import priors as P
from ketabayes.model.random_effects import RandomEffectsModel

QS = np.array([0.025, 0.5, 0.975])
THRESHOLDS = Thresholds.for_measure(1.25, "OR")
TAU_PRIORS = {
    "halfnormal(0.5)": P.HalfNormal(0.5),
    "halfcauchy(0.5)": P.HalfCauchy(0.5),
    "lognormaltau2 (Turner)": P.LogNormalTau2(-2.56, 1.74),
    "uniform(0, 2)": P.Uniform(0.0, 2.0),
}


def simulated(k: int, seed: int = 2026) -> pd.DataFrame:
    """SIMULATED: k trials, true log OR -0.2, tau 0.15, within-trial variances 0.01-0.5."""
    rng = np.random.default_rng(seed)
    vi = np.exp(rng.uniform(np.log(0.01), np.log(0.5), k))
    yi = rng.normal(rng.normal(-0.2, 0.15, k), np.sqrt(vi))
    df = pd.DataFrame({"study": [f"SIM-{i + 1:03d}" for i in range(k)], "yi": yi, "vi": vi})
    df.attrs["measure"] = "OR"
    return df


def summaries(marginals) -> list[float]:
    """What one exact fit reports: mean, sd, three quantiles, decision probabilities."""
    out = []
    for m in marginals:
        out += [m.mean, m.sd, *m.ppf(QS), *decision_probabilities(m, THRESHOLDS).values()]
    return out


def exact_fit(y, v, prior_mu, prior_tau) -> list[float]:
    e = ExactNormalNormal(y, v, prior_mu, prior_tau)
    return summaries((e.mu, e.theta_new))


def median_time(f, n: int) -> float:
    f()  # warm-up
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Unix
        return "load average unknown"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-nuts", action="store_true", help="skip the NUTS fit")
    ap.add_argument("--naive", type=int, default=50, help="variants timed for the naive loop (default 50)")
    args = ap.parse_args(argv)
    print(f"SIMULATED data; {os.cpu_count()} CPUs; at start: {load()}\n")

    # (1) one exact fit
    print("| k | tau prior | one exact fit, median of 50 (ms) | target (ms) |")
    print("|---:|---|---:|---:|")
    single = {}
    for k in (10, 67, 100):
        d = simulated(k)
        y, v = d.yi.to_numpy(), d.vi.to_numpy()
        for name, pt in TAU_PRIORS.items():
            t = median_time(lambda y=y, v=v, pt=pt: exact_fit(y, v, P.Normal(0.0, 1.0), pt), 50)
            single[k, name] = t
            print(f"| {k} | {name} | {t * 1e3:.2f} | 20 |")

    # (2) 1,000 exact fits of one data set under different priors
    d67 = simulated(67)
    y, v = d67.yi.to_numpy(), d67.vi.to_numpy()
    variants = [(P.Normal(0.0, float(s0)), P.HalfNormal(float(st)))
                for s0 in np.geomspace(0.1, 5.0, 25) for st in np.geomspace(0.05, 2.0, 40)]
    t0 = time.perf_counter()
    for pm, pt in variants:
        exact_fit(y, v, pm, pt)
    t_grid = time.perf_counter() - t0

    from ketabayes.sensitivity import sensitivity_grid

    mu_priors = {f"N(0,{s:.3g})": f"normal(0, {s})" for s in np.geomspace(0.1, 5.0, 20)}
    tau_priors = {f"HN({s:.3g})": f"halfnormal({s})" for s in np.geomspace(0.05, 2.0, 50)}
    sensitivity_grid(d67, prior_mu="normal(0, 1)", mcid=1.25, progress=False)  # warm-up
    t0 = time.perf_counter()
    res = sensitivity_grid(d67, prior_mu=mu_priors, prior_tau=tau_priors, mcid=1.25, progress=False)
    t_sens = time.perf_counter() - t0
    n_sens = res.table["fit_id"].nunique()

    # (4) naive loop, on a subsample of the same variants
    sub = variants[:: max(1, len(variants) // args.naive)][: args.naive]
    RandomEffectsModel(d67, prior_mu=sub[0][0], prior_tau=sub[0][1]).fit("exact", frequentist=False, seed=1)
    t0 = time.perf_counter()
    for pm, pt in sub:
        r = RandomEffectsModel(d67, prior_mu=pm, prior_tau=pt).fit("exact", frequentist=False, seed=1)
        summaries((r.exact.mu, r.exact.theta_new))
    t_naive = (time.perf_counter() - t0) / len(sub)

    # (3) NUTS including compilation (first NUTS fit of the process)
    t_nuts = t_nuts2 = float("nan")
    nuts_times = {}
    if not args.no_nuts:
        import importlib.util

        samplers = ["pymc"] + (["nutpie"] if importlib.util.find_spec("nutpie") else [])
        for sampler in samplers:
            times = []
            for seed in (1, 2):  # the first fit of the process compiles; the second reuses the cache
                t0 = time.perf_counter()
                RandomEffectsModel(d67, prior_mu=P.Normal(0.0, 1.0), prior_tau=P.HalfNormal(0.5)).fit(
                    "nuts", chains=4, draws=1000, cores=2, seed=seed, frequentist=False, nuts_sampler=sampler)
                times.append(time.perf_counter() - t0)
            nuts_times[sampler] = times
        t_nuts, t_nuts2 = nuts_times["pymc"]

    one67 = single[67, "halfnormal(0.5)"]
    print(f"\nnaive loop: {t_naive * 1e3:.1f} ms per variant (mean of {len(sub)}; "
          "RandomEffectsModel.fit('exact', frequentist=False) incl. 4,000 exact draws, + summaries)\n")
    print("| task (k = 67) | variants | time (s) | naive loop (s, extrapolated) | speed-up | target (s) | met |")
    print("|---|---:|---:|---:|---:|---:|:-:|")
    for name, n, t, target in (
            ("1,000 exact fits: 25 normal sds x 40 half-normal scales, mu + theta_new summaries", len(variants),
             t_grid, 5.0),
            ("sensitivity_grid: 1,000 distinct exact variants (20 mu x 50 tau priors)", n_sens, t_sens, 10.0)):
        print(f"| {name} | {n} | {t:.2f} | {t_naive * n:.1f} | {t_naive * n / t:.0f}x | {target:g} | "
              f"{'yes' if t <= target else 'NO'} |")
    print("\n| engine (k = 67, halfnormal(0.5)) | wall time (s) | ratio to one exact fit | target (s) | met |")
    print("|---|---:|---:|---:|:-:|")
    print(f"| exact, one fit (median of 50) | {one67:.4f} | 1 | 0.02 | {'yes' if one67 <= 0.02 else 'NO'} |")
    print(f"| naive exact fit (RandomEffectsModel, draws) | {t_naive:.4f} | {t_naive / one67:.0f} | | |")
    if np.isfinite(t_nuts):
        print(f"| NUTS incl. compilation, 4 chains x 1000 draws, 2 cores | {t_nuts:.1f} | {t_nuts / one67:.0f} | 10 | "
              f"{'yes' if t_nuts <= 10 else 'NO'} |")
        print(f"| NUTS, second fit in the same process | {t_nuts2:.1f} | {t_nuts2 / one67:.0f} | | |")
        if "nutpie" in nuts_times:
            t1, t2 = nuts_times["nutpie"]
            print(f"| NUTS with nutpie incl. compilation | {t1:.1f} | {t1 / one67:.0f} | 10 | "
                  f"{'yes' if t1 <= 10 else 'NO'} |")
            print(f"| NUTS with nutpie, second fit | {t2:.1f} | {t2 / one67:.0f} | | |")
    print(f"\nat end: {load()}")


if __name__ == "__main__":
    main()
