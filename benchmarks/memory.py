"""Memory of a very large exact fit (issue #15 item 6), measured in fresh subprocesses.

Each case runs in its own Python process and reports its peak resident set size (``ru_maxrss``);
the baseline is a process that only imports ketabayes and builds the SIMULATED data, so the difference
is what the fit itself needs. Cases: an exact random-effects fit of k = 100,000 SIMULATED estimates
with the default settings (study-level draws not stored), and the same fit forced to store them
(``study_draws=True``, what every exact fit did before) for k = 20,000, scaled to k = 100,000.

Run: ``python benchmarks/memory.py`` (add ``--k 100000``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, pandas as pd
    import ketabayes as kb
    k, mode = int(sys.argv[1]), sys.argv[2]
    rng = np.random.default_rng(7)                      # SIMULATED estimates
    v = rng.uniform(0.02, 0.2, k)
    df = pd.DataFrame({"study": [f"SIMULATED {i}" for i in range(k)], "yi": rng.normal(0.1, np.sqrt(v + 0.01)),
                       "vi": v})
    t = time.perf_counter()
    if mode != "baseline":
        res = kb.RandomEffectsModel(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)").fit(
            "exact", mcid=0.1, seed=1, frequentist=False, study_draws=(mode == "with_draws"))
        res.decision_table()
    print(json.dumps({"peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "seconds": time.perf_counter() - t}))
""")


def run(k: int, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(k), mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=100_000)
    args = ap.parse_args()
    small = 20_000
    rows = [("baseline (import + data)", args.k, run(args.k, "baseline")),
            ("exact fit, default (no study draws)", args.k, run(args.k, "default")),
            ("baseline (import + data)", small, run(small, "baseline")),
            ("exact fit, study_draws=True", small, run(small, "with_draws"))]
    print(f"{'case':40s} {'k':>8s} {'peak RSS (MB)':>14s} {'fit (s)':>8s}")
    for name, k, r in rows:
        print(f"{name:40s} {k:8d} {r['peak_mb']:14.0f} {r['seconds']:8.2f}")
    extra = (rows[3][2]["peak_mb"] - rows[2][2]["peak_mb"]) * args.k / small
    print(f"\nfit with study draws, scaled to k = {args.k}: ~{extra:.0f} MB above baseline; "
          f"default: {rows[1][2]['peak_mb'] - rows[0][2]['peak_mb']:.0f} MB above baseline")


if __name__ == "__main__":
    main()
