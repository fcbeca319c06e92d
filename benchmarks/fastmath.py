"""Cost of compiling without numba fast-math (``ketabayes._compat.ieee_pytensor``).

ketabayes compiles PyTensor code with ``numba__fastmath=False`` so that a seed fixes the NUTS draws
whether PyTensor's compile cache is cold or warm (``tests/test_determinism.py``). This measures what the
IEEE arithmetic costs: the same NUTS fit (SIMULATED 67-trial log-OR data of ``benchmarks/core.py``,
``fit("nuts", chains=4, draws=1000)``, 2 cores) in fresh processes, alternately with the library's
setting and with fast-math switched back on, after one warm-up run of each (so both find a warm cache).
Reports medians of wall and CPU time (user + system of the child, ``os.wait4``) and their ratios.

Run by hand: ``python benchmarks/fastmath.py [--reps 5]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

CHILD = r"""
import sys, warnings
warnings.simplefilter("ignore")
sys.path.insert(0, {bench!r})
import ketabayes._compat as compat
if sys.argv[1] == "fastmath":
    compat.ieee_pytensor = lambda: None            # keep PyTensor's default (fast-math on)
from core import simulated
import ketabayes as kb
import pytensor
res = kb.RandomEffectsModel(simulated(67), prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
    "nuts", seed=1, chains=4, draws=1000)
assert pytensor.config.numba__fastmath is (sys.argv[1] == "fastmath")
"""


def run(mode: str) -> tuple[float, float]:
    code = CHILD.format(bench=os.path.dirname(os.path.abspath(__file__)))
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", code, mode])
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"child ({mode}) failed with status {status}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    for mode in ("ieee", "fastmath"):   # warm-up: fill the compile cache of both variants
        run(mode)
    times = {"ieee": [], "fastmath": []}
    for _ in range(args.reps):
        for mode in ("ieee", "fastmath"):
            times[mode].append(run(mode))
    med = {m: np.median(np.array(v), axis=0) for m, v in times.items()}
    print(f"load average at the end: {os.getloadavg()[0]:.1f}; {args.reps} repetitions")
    print("| compile mode | wall (s) | CPU (s) |")
    print("|---|---:|---:|")
    for m, (w, c) in med.items():
        print(f"| {m} | {w:.2f} | {c:.2f} |")
    print(f"| ratio ieee / fastmath | {med['ieee'][0] / med['fastmath'][0]:.2f} | "
          f"{med['ieee'][1] / med['fastmath'][1]:.2f} |")


if __name__ == "__main__":
    main()
