"""Cold start (issue #13 item 9): the exact path loads no sampler, no plotting, no ArviZ umbrella, no xarray.

The timing itself is measured by ``benchmarks/cold_start.py``; these tests check the structure that makes
it fast, in a fresh interpreter, so that a module-level ``import arviz`` / ``import pymc`` / ``import
matplotlib`` / ``import xarray`` slipped in anywhere on the exact path fails here. An exact fit builds its
DataTree only when ``result.tree`` is asked for (xarray, and with it dask, cost ~0.2-0.4 s of a cold start).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# arviz is the umbrella (it imports arviz_plots, which imports matplotlib); arviz_base / arviz_stats are fine.
# xarray (and dask, which xarray imports on the first DataArray when it is installed) only with result.tree.
FORBIDDEN = ("pymc", "pytensor", "matplotlib", "arviz", "arviz_plots", "tqdm", "xarray", "dask", "distributed")

LIBRARY = """
import json, sys
import pandas as pd
import ketabayes as kb
d = pd.DataFrame({"study": ["a", "b", "c", "d"], "ai": [3, 5, 2, 8], "n1i": [40, 50, 30, 60],
                  "ci": [6, 9, 4, 10], "n2i": [40, 52, 31, 59]})  # SIMULATED counts
es = kb.effect_sizes(d, "OR")
res = kb.RandomEffectsModel(es, prior_tau="halfnormal(0.5)", measure="OR").fit("exact", mcid=1.25)
print(res.decision_table().to_string(), file=sys.stderr)
res.summary()
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""

CLI = """
import json, sys
from click.testing import CliRunner
from ketabayes.cli import main
r = CliRunner().invoke(main, ["analyse", sys.argv[1], "--measure", "OR", "--mcid", "1.25", "--method", "exact"])
assert r.exit_code == 0, r.output
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def _modules(code: str, *args: str) -> set[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONHASHSEED": "0"}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_exact_fit_imports_no_sampler_plots_or_arviz_umbrella():
    mods = _modules(LIBRARY)
    assert "ketabayes" in mods and "scipy" in mods  # the check itself ran
    assert not mods & set(FORBIDDEN), sorted(mods & set(FORBIDDEN))


def test_cli_exact_imports_no_sampler_plots_or_arviz_umbrella(tmp_path):
    csv = tmp_path / "trials.csv"  # SIMULATED counts
    csv.write_text("study,ai,n1i,ci,n2i\na,3,40,6,40\nb,5,50,9,52\nc,2,30,4,31\nd,8,60,10,59\n")
    mods = _modules(CLI, str(csv))
    assert "click" in mods and "ketabayes" in mods
    assert not mods & set(FORBIDDEN), sorted(mods & set(FORBIDDEN))


def test_draws_tree_has_the_layout_arviz_base_builds():
    """The exact engine's tree, built with xarray alone, equals arviz_base.from_dict's (values, dims, coords)."""
    import numpy as np
    import xarray as xr
    from arviz_base import from_dict

    from ketabayes.model._fit_common import draws_tree

    rng = np.random.default_rng(7)
    groups = {"posterior": {"mu": rng.normal(size=(2, 5)), "theta": rng.normal(size=(2, 5, 3)),
                            "effect": rng.normal(size=(2, 5, 2)), "extra": rng.normal(size=(2, 5, 4))},
              "observed_data": {"y": rng.normal(size=3)}, "constant_data": {"vi": rng.uniform(size=3)}}
    var_dims = {"theta": ["study"], "effect": ["target"], "y": ["study"], "vi": ["study"]}
    coords = {"study": ["A", "B", "C"], "target": ["mean", "predictive"], "unused": [1, 2]}
    ours, theirs = draws_tree(groups, var_dims, coords), from_dict(groups, dims=var_dims, coords=coords)
    assert set(ours.children) == set(theirs.children) == set(groups)
    for g in groups:
        xr.testing.assert_equal(ours[g].to_dataset(), theirs[g].to_dataset())
        assert list(ours[g].to_dataset().dims) == list(theirs[g].to_dataset().dims)


def test_tree_built_on_first_access_is_the_tree_of_the_fit():
    """The lazily built tree holds the same seeded draws and the settings, whenever it is built."""
    import numpy as np
    import pandas as pd

    import ketabayes as kb
    from ketabayes.result.base import SETTINGS_ATTR

    d = pd.DataFrame({"study": ["a", "b", "c", "d"], "yi": [0.1, -0.3, 0.2, -0.5],
                      "vi": [0.04, 0.05, 0.09, 0.02]})  # SIMULATED
    model = kb.RandomEffectsModel(d, prior_tau="halfnormal(0.5)")
    early = model.fit("exact", seed=5, mcid=0.2)
    late = model.fit("exact", seed=5, mcid=0.2)
    assert late._tree is None  # not built by the fit
    table = late.decision_table()
    assert late.studies == ["a", "b", "c", "d"] and late._tree is None  # nor by the tables
    assert early.tree is early.tree  # built once
    for group in ("posterior", "observed_data", "constant_data", "log_likelihood", "prior"):
        a, b = early.tree[group].to_dataset(), late.tree[group].to_dataset()
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values)
    assert SETTINGS_ATTR in late.tree.attrs and late.tree.attrs[SETTINGS_ATTR] == early.tree.attrs[SETTINGS_ATTR]
    pd.testing.assert_frame_equal(table, early.decision_table())
