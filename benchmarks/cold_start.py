"""Cold start: a fresh process that fits the exact model, against importing numpy, scipy.stats and pandas.

Issue #13 item 9: a fresh Python process that imports ketabayes, computes effect sizes, fits the exact
random-effects model with an MCID and prints the decision table must take at most 1.5x the time of
``import numpy, scipy.stats, pandas`` measured in the same run; so must ``ketabayes analyse --method exact``.

Each repetition runs the three commands in fresh subprocesses, one after the other (so a burst of load from
other jobs hits all three), and reports the median wall time of each over the repetitions and the median of
the per-repetition ratios; the same for CPU time (user + system of the child, from ``os.wait4``), which
other jobs on a shared machine disturb less than wall time.

All three commands read compiled bytecode, as in an installed package: the children get a bytecode cache of
their own (``PYTHONPYCACHEPREFIX`` in the temporary folder, filled by one warm-up run of each command) and
``PYTHONDONTWRITEBYTECODE`` is removed from their environment. Without this, a checkout run with
``PYTHONDONTWRITEBYTECODE=1`` (as on the development machine) compiles every ketabayes module from source at
each start (~0.1 s) while numpy, scipy and pandas read the ``.pyc`` files written when they were installed. Data: the bundled magnesium trials (Teo 1991 / ISIS-4, ``magnesium_mi``), written
to a temporary CSV with metafor's column names before the timings start.

Run ``python benchmarks/cold_start.py [--reps 9]``; the ketabayes measured is the one the child processes
import (set ``PYTHONPATH`` to measure another checkout).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.5

BASELINE = "import numpy, scipy.stats, pandas"

LIBRARY = """
import pandas as pd
import ketabayes as kb
es = kb.effect_sizes(pd.read_csv({csv!r}), "OR")
res = kb.RandomEffectsModel(es, prior_tau="halfnormal(0.5)", measure="OR").fit("exact", mcid=1.25)
print(res.decision_table())
"""


def _time(cmd: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall time and CPU time (user + system, from ``os.wait4``) of one fresh subprocess."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return wall, usage.ru_utime + usage.ru_stime


def measure(reps: int = 9) -> dict[str, float]:
    """Median wall times (s) of the three commands and the median per-repetition ratios."""
    import ketabayes as kb

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        csv = str(Path(tmp) / "magnesium.csv")
        mg = kb.load_dataset("magnesium_mi")
        mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))[["study", "ai", "n1i", "ci", "n2i"]]
        mg.to_csv(csv, index=False)
        commands = {
            "baseline": [sys.executable, "-c", BASELINE],
            "library": [sys.executable, "-c", LIBRARY.format(csv=csv)],
            "cli": [sys.executable, "-m", "ketabayes.cli", "analyse", csv, "--measure", "OR", "--mcid", "1.25",
                    "--prior-tau", "halfnormal(0.5)", "--method", "exact"],
        }
        # run in the temporary folder: `python -c` / `-m` put the working directory first on sys.path, so a
        # checkout in the working directory would shadow the ketabayes chosen by PYTHONPATH
        for cmd in commands.values():  # warm the file-system cache and fill the bytecode cache once
            _time(cmd, env, tmp)
        times: dict[str, list[float]] = {k: [] for k in commands}
        cpu: dict[str, list[float]] = {k: [] for k in commands}
        for _ in range(reps):
            for k, cmd in commands.items():
                w, c = _time(cmd, env, tmp)
                times[k].append(w)
                cpu[k].append(c)
    out = {f"{k}_s": statistics.median(v) for k, v in times.items()}
    out.update({f"{k}_cpu_s": statistics.median(v) for k, v in cpu.items()})
    for k in ("library", "cli"):
        out[f"{k}_ratio"] = statistics.median(a / b for a, b in zip(times[k], times["baseline"]))
        out[f"{k}_cpu_ratio"] = statistics.median(a / b for a, b in zip(cpu[k], cpu["baseline"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    args = parser.parse_args()
    r = measure(args.reps)
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    print(f"baseline  `{BASELINE}`: wall {r['baseline_s']:.3f} s, CPU {r['baseline_cpu_s']:.3f} s "
          f"(medians of {args.reps})")
    for k, name in (("library", "import ketabayes + effect_sizes + fit('exact') + decision table"),
                    ("cli", "ketabayes analyse --method exact")):
        ok = "met" if r[f"{k}_ratio"] <= TARGET else "NOT met"
        print(f"{name}: wall {r[f'{k}_s']:.3f} s, ratio {r[f'{k}_ratio']:.2f} (target <= {TARGET}: {ok}); "
              f"CPU {r[f'{k}_cpu_s']:.3f} s, ratio {r[f'{k}_cpu_ratio']:.2f}")


if __name__ == "__main__":
    main()
