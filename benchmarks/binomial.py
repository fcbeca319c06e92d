"""Benchmark of the exact binomial-logit engine (``ExactBinomial``) against the model's own NUTS fit.

Data:

* ``magnesium_mi``: 16 real trials (Egger et al. 2001), one with no death on magnesium;
* a SIMULATED 69-trial responder review (``simulate_review(seed=3, binary={"baseline_risk": 0.05})``:
  not trial results; many zero-event arms).

Measured in one run, for each data set (``BinomialModel(df, prior_mu="normal(0, 2)")``, default tau prior
halfnormal(0.5), baseline prior normal(0, 5)):

1. one exact fit: ``fit("exact")`` + ``decision_table()`` (median of 7), and the engine alone;
2. one NUTS fit of the same model: ``fit("nuts")`` with its defaults (4 chains x 1000 draws, tune 1000,
   target_accept 0.95, 2 cores), first fit of the process for that data set (incl. compilation), and the
   ratio NUTS / exact;
3. the exact leave-one-out grid, two ways: ``sensitivity_grid(likelihood="binomial", leave_one_out=True)``
   (k + 1 variants: marginals of the targets straight from the engine) and a loop of full
   ``fit("exact")`` + decision table per left-out trial (results with joint draws, the trials' own
   effects, the log-likelihood and prior groups);
4. agreement of exact and NUTS on the decision table (mean and predictive rows), with the Monte-Carlo
   error of NUTS (sd / sqrt(bulk ESS)); and the time of every trial's own effect (a shrinkage forest);
5. the model with one grouping (``by="drug"``, SIMULATED review): exact vs NUTS;
6. the model with one moderator (``moderators="year"``, magnesium_mi): exact vs NUTS; and with one grouping
   as well (``by="size"``: fewer or at least 200 participants);
7. a NUTS grid on magnesium_mi (``--nuts-grid N`` variants: N/2 tau priors and N/2 leave-one-out
   variants): today's cost, a fresh ``fit("nuts")`` (build + compile + sample) per variant, timed on two
   variants, against one ``CompiledModelCache`` (one compilation; leave-one-out by zero counts, see
   :mod:`ketabayes.inference.compiled_cache`). ``benchmarks/nuts_grid.py`` does the same for the normal
   and hierarchical models.

Targets (issue #12): an exact binomial fit of 16-70 trials well under a second and >= 10x faster than
NUTS; a 70-variant binomial leave-one-out grid in seconds.

Run by hand (not in CI): ``python benchmarks/binomial.py [--no-nuts]``; prints Markdown tables.
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings

import numpy as np

import ketabayes as kb
from ketabayes.data.simulate import simulate_review
from ketabayes.errors import DataWarning
from ketabayes.model.binomial import BinomialModel
from ketabayes.sensitivity import sensitivity_grid

PRIORS = {"prior_mu": "normal(0, 2)"}
FIT = {"mcid": 1.25, "benefit": "lower", "seed": 1}


def datasets():
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))[["study", "ai", "n1i", "ci", "n2i"]]
    sim = simulate_review(seed=3, binary={"baseline_risk": 0.05})[["study", "ai", "n1i", "ci", "n2i"]]
    return {"magnesium_mi (real, k = 16)": mg, f"SIMULATED responders (k = {len(sim)})": sim}


def load() -> str:
    try:
        return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on Unix
        return "load average unknown"


def median_time(f, n: int) -> float:
    f()  # warm-up
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def exact_table(df):
    return BinomialModel(df, **PRIORS).fit("exact", **FIT).decision_table()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-nuts", action="store_true", help="skip the NUTS fits")
    ap.add_argument("--nuts-grid", type=int, default=10, help="variants of the NUTS grid (0 to skip)")
    args = ap.parse_args(argv)
    print(f"{os.cpu_count()} CPUs; at start: {load()}\n")
    rows, agree = [], []
    for name, df in datasets().items():
        k = len(df)
        zeros = int((df.ai == 0).sum() + (df.ci == 0).sum())
        t_fit = median_time(lambda df=df: exact_table(df), 7)
        model = BinomialModel(df, **PRIORS)
        t_engine = median_time(lambda model=model: model._exact(), 7)
        t0 = time.perf_counter()
        for i in range(k):
            exact_table(df.drop(index=df.index[i]))
        t_loo = time.perf_counter() - t0
        with warnings.catch_warnings():   # the grid validates log ORs too (double-zero trials: not estimable)
            warnings.simplefilter("ignore", DataWarning)
            es = kb.effect_sizes(df, "OR")
            t0 = time.perf_counter()
            grid = sensitivity_grid(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", likelihood="binomial",
                                    leave_one_out=True, mcid=1.25, seed=1, progress=False)
            t_grid = time.perf_counter() - t0
        assert (grid.table["error"] == "").all() and grid.table["fit_id"].nunique() == k + 1
        res = model.fit("exact", **FIT)
        t0 = time.perf_counter()
        res.decision_table(targets=res.studies)
        t_studies = time.perf_counter() - t0
        t_nuts = float("nan")
        if not args.no_nuts:
            t0 = time.perf_counter()
            nuts = model.fit("nuts", cores=2, **FIT)
            t_nuts = time.perf_counter() - t0
            ex = model.fit("exact", **FIT)
            te, tn = ex.decision_table().set_index("target"), nuts.decision_table().set_index("target")
            summ = nuts.summary().set_index("target")
            for target in ("mean", "predictive"):
                ess = float(summ.loc[target, "ess_bulk"])
                mcse = te.loc[target, "sd"] / math.sqrt(ess)
                agree.append((name, target, te.loc[target, "mean"], tn.loc[target, "mean"], mcse,
                              te.loc[target, "p_benefit"], tn.loc[target, "p_benefit"], ess,
                              nuts.diagnostics.divergences))
        rows.append((name, k, zeros, t_engine, t_fit, t_nuts, t_grid, t_loo, t_studies))

    print("| data | k | zero-event arms | exact engine (s) | exact fit + table (s) | NUTS fit incl. compilation (s) "
          "| NUTS / exact | leave-one-out grid, k + 1 variants (s) | k full exact fits (s) "
          "| all k trials' own effects (s) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, k, zeros, te, tf, tn, tg, tl, ts in rows:
        print(f"| {name} | {k} | {zeros} | {te:.3f} | {tf:.3f} | {tn:.1f} | {tn / tf:.0f}x | {tg:.2f} | {tl:.2f} "
              f"| {ts:.2f} |")
    if agree:
        print("\n| data | target | exact mean | NUTS mean | NUTS MCSE | exact P(benefit) | NUTS P(benefit) "
              "| NUTS bulk ESS | divergences |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for name, target, me, mn, mcse, pe, pn, ess, div in agree:
            print(f"| {name} | {target} | {me:.4f} | {mn:.4f} | {mcse:.4f} | {pe:.4f} | {pn:.4f} | {ess:.0f} | "
                  f"{div} |")
    grouped(args.no_nuts)
    moderator(args.no_nuts)
    mixed(args.no_nuts)
    if args.nuts_grid and not args.no_nuts:
        nuts_grid(args.nuts_grid)
    print(f"\nat end: {load()}")


def grouped(no_nuts: bool):
    """Section 5: the model with one grouping (by drug), exact vs NUTS, SIMULATED 69-trial review."""
    df = simulate_review(seed=3, binary={"baseline_risk": 0.05})[["study", "drug", "ai", "n1i", "ci", "n2i"]]
    model = BinomialModel(df, by="drug", **PRIORS)
    t_exact = median_time(lambda: model.fit("exact", **FIT).decision_table(), 3)
    t_nuts = float("nan")
    if not no_nuts:
        t0 = time.perf_counter()
        model.fit("nuts", cores=2, **FIT).decision_table()
        t_nuts = time.perf_counter() - t0
    print(f"\n| SIMULATED responders by drug (k = {len(df)}, {df.drug.nunique()} drugs) | time (s) |")
    print("|---|---:|")
    print(f"| exact fit + decision table (median of 3) | {t_exact:.2f} |")
    print(f"| NUTS fit incl. compilation + decision table | {t_nuts:.1f} |")
    print(f"| NUTS / exact | {t_nuts / t_exact:.0f}x |")


def moderator(no_nuts: bool):
    """Section 6: the model with one moderator (publication year, magnesium_mi), exact vs NUTS."""
    df = next(iter(datasets().values())).assign(year=kb.load_dataset("magnesium_mi")["year"].to_numpy())
    model = BinomialModel(df, moderators="year", prior_gamma="normal(0, 1)", **PRIORS)
    t_exact = median_time(lambda: model.fit("exact", **FIT).decision_table(), 3)
    t_nuts = float("nan")
    agree = ""
    if not no_nuts:
        t0 = time.perf_counter()
        nuts = model.fit("nuts", cores=2, **FIT)
        nuts.decision_table()
        t_nuts = time.perf_counter() - t0
        ex = model.fit("exact", **FIT)
        summ = nuts.summary(targets=["moderator=year"]).set_index("target")
        m = ex.marginal("moderator=year")
        dr = nuts.tree["posterior"]["effect"].sel(target="moderator=year").values
        ess = float(summ.loc["moderator=year", "ess_bulk"])
        agree = (f"slope per year: exact {m.mean:.4f} (sd {m.sd:.4f}), NUTS {dr.mean():.4f} "
                 f"(MCSE {m.sd / math.sqrt(ess):.4f}, bulk ESS {ess:.0f}, {nuts.diagnostics.divergences} divergences)")
    print("\n| magnesium_mi by publication year (k = 16, one moderator) | time (s) |")
    print("|---|---:|")
    print(f"| exact fit + decision table (median of 3) | {t_exact:.2f} |")
    print(f"| NUTS fit incl. compilation + decision table | {t_nuts:.1f} |")
    print(f"| NUTS / exact | {t_nuts / t_exact:.0f}x |")
    if agree:
        print(f"\n{agree}")


def mixed(no_nuts: bool):
    """Section 6b: one grouping and one moderator (magnesium_mi by size, < 200 or >= 200 participants, and
    publication year), exact vs NUTS."""
    df = next(iter(datasets().values())).assign(year=kb.load_dataset("magnesium_mi")["year"].to_numpy())
    df = df.assign(size=np.where(df.n1i + df.n2i >= 200, "large", "small"))
    model = BinomialModel(df, by="size", moderators="year", prior_gamma="normal(0, 1)", **PRIORS)
    t_exact = median_time(lambda: model.fit("exact", **FIT).decision_table(), 3)
    t_nuts = float("nan")
    if not no_nuts:
        t0 = time.perf_counter()
        model.fit("nuts", cores=2, **FIT).decision_table()
        t_nuts = time.perf_counter() - t0
    print("\n| magnesium_mi by size and publication year (k = 16, one grouping and one moderator) | time (s) |")
    print("|---|---:|")
    print(f"| exact fit + decision table (median of 3) | {t_exact:.2f} |")
    print(f"| NUTS fit incl. compilation + decision table | {t_nuts:.1f} |")
    print(f"| NUTS / exact | {t_nuts / t_exact:.1f}x |")


def nuts_grid(n: int):
    """Section 7: a NUTS grid with and without the cache of compiled models."""
    from ketabayes.inference import nuts_hierarchical as nh
    from ketabayes.inference.compiled_cache import CompiledModelCache

    df = next(iter(datasets().values()))
    scales = np.geomspace(0.2, 1.0, max(1, n // 2))
    fit = {**FIT, "draws": 1000, "tune": 1000, "chains": 4}
    nuts = {"target_accept": 0.95}
    fresh = []
    for s in scales[:2]:   # today's cost per variant: the model is built and compiled for every fit
        t0 = time.perf_counter()
        BinomialModel(df, **PRIORS, prior_tau=f"halfnormal({s:.3g})").fit("nuts", cores=2, **fit)
        fresh.append(time.perf_counter() - t0)
    cache = CompiledModelCache()
    full = BinomialModel(df, **PRIORS)
    t0 = time.perf_counter()
    times = []
    for s in scales:
        t1 = time.perf_counter()
        BinomialModel(df, **PRIORS, prior_tau=f"halfnormal({s:.3g})").fit("nuts", cache=cache, cores=2, **fit)
        times.append(time.perf_counter() - t1)
    for i in range(n - scales.size):   # leave-one-out variants of the same compiled model
        t1 = time.perf_counter()
        cache.sample(nh.binomial_key(full), lambda: nh.build_binomial(full), nh.binomial_data(full, leave_out=[i]),
                     seed=1, draws=fit["draws"], tune=fit["tune"], chains=fit["chains"], cores=2, nuts=nuts)
        times.append(time.perf_counter() - t1)
    total = time.perf_counter() - t0
    per_fresh = float(np.mean(fresh))
    print(f"\n| NUTS grid on magnesium_mi, {n} variants (4 x 1000 draws) | time (s) |")
    print("|---|---:|")
    print(f"| today: fresh fit('nuts') per variant (mean of {len(fresh)}) | {per_fresh:.1f} |")
    print(f"| today, extrapolated to {n} variants | {per_fresh * n:.0f} |")
    print(f"| CompiledModelCache: first variant (compilation + sampling) | {times[0]:.1f} |")
    print(f"| CompiledModelCache: later variants, median | {float(np.median(times[1:])):.2f} |")
    print(f"| CompiledModelCache: whole grid ({cache.compilations} compilation) | {total:.1f} |")


if __name__ == "__main__":
    main()
