"""Benchmark: NUTS sensitivity grids with one compilation per model structure (issue #12 item 3).

For the normal random-effects model (``magnesium_mi``: 16 real trials, log OR) and the hierarchical drug x
condition model (a SIMULATED 67-trial review, ``simulate_review(seed=3)``; marginal parameterisation), a
grid of N NUTS variants that differ only in the prior of tau (one structure) is timed two ways in one run:

* per-variant compilation (what grids did before): a fresh ``fit("nuts")`` per variant -- the PyMC model
  is built and compiled by ``pymc.sample`` each time; timed on two variants, extrapolated to N;
* ``sensitivity_grid(..., method="nuts")``: every variant goes through the process's
  ``CompiledModelCache`` (one compilation, then ``with_data`` per variant).

Both use 4 chains x 1000 draws, the models' default tuning and one core per variant (the grid's default).
The draws of a cached variant equal those of the fresh fit with the same seed
(``tests/test_compiled_cache.py``, slow tier), so the speed-up costs nothing.

Run by hand (not in CI): ``python benchmarks/nuts_grid.py [--variants N]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

import ketabayes as kb
from ketabayes.errors import ConvergenceWarning
from ketabayes.sensitivity import analyses, sensitivity_grid

FIT = {"draws": 1000, "chains": 4}


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Unix
        return "load average unknown"


def cases():
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))
    es = kb.effect_sizes(mg, "OR")
    sim = kb.simulate_review(seed=3)   # SIMULATED
    return [
        ("random effects, magnesium_mi (k = 16)", es, {"prior_mu": "normal(0, 2)"}, {},
         lambda prior_tau, seed: kb.RandomEffectsModel(es, prior_mu="normal(0, 2)", prior_tau=prior_tau).fit(
             "nuts", seed=seed, cores=1, frequentist=False, **FIT),
         [f"halfnormal({s:.3g})" for s in np.geomspace(0.2, 1.0, 10)]),
        (f"hierarchical drug x condition, SIMULATED (k = {len(sim)})", sim,
         {"prior_mu": "normal(0, 50)", "measure": "GEN"}, {"by": ["drug", "condition"]},
         lambda prior_tau, seed: kb.HierarchicalModel(sim, by=["drug", "condition"], prior_mu="normal(0, 50)",
                                                      prior_tau=prior_tau, measure="GEN").fit(
             "nuts", seed=seed, cores=1, **FIT),
         [f"halfnormal({s:.3g})" for s in np.geomspace(5.0, 20.0, 10)]),
    ]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", type=int, default=10, help="variants per grid (tau priors)")
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; at start: {load()}\n")
    rows = []
    for name, data, grid_kw, fit_kw, fresh_fit, taus in cases():
        taus = taus[:args.variants]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # diagnostics are not what is timed here
            fresh = []
            for i, tau in enumerate(taus[:2]):
                t0 = time.perf_counter()
                fresh_fit(tau, 100 + i)
                fresh.append(time.perf_counter() - t0)
            analyses._NUTS_CACHE = None        # a fresh process-wide cache: the first variant compiles
            t0 = time.perf_counter()
            grid = sensitivity_grid(data, prior_tau=taus, method="nuts", seed=1, progress=False,
                                    fit_kwargs={**fit_kw, **FIT}, **grid_kw)
            t_grid = time.perf_counter() - t0
        assert (grid.table["error"] == "").all(), grid.table["error"].unique()
        secs = grid.table.drop_duplicates("fit_id")["seconds"].to_numpy()
        rows.append((name, len(taus), float(np.mean(fresh)), float(np.mean(fresh)) * len(taus), float(secs.max()),
                     float(np.median(np.sort(secs)[:-1])), t_grid, analyses._nuts_cache().compilations))
    print("| model | variants | fresh fit per variant (s, mean of 2) | per-variant compilation, extrapolated (s) "
          "| cached grid: first variant (s) | cached grid: later variants, median (s) | cached grid, total (s) "
          "| compilations | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, per, total_fresh, first, later, t_grid, comp in rows:
        print(f"| {name} | {n} | {per:.1f} | {total_fresh:.0f} | {first:.1f} | {later:.2f} | {t_grid:.1f} | {comp} "
              f"| {total_fresh / t_grid:.1f}x |")
    print(f"\nat end: {load()}")


if __name__ == "__main__":
    main()
