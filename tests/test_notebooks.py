"""The notebooks in notebooks/ are generated from the executed tutorials (scripts/notebooks.py): never stale."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("ketabayes_notebooks_script", ROOT / "scripts" / "notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_notebook_is_generated_from_its_tutorial():
    script = _script()
    stale = script.stale()
    assert stale == [], f"out of date: {stale}; run `python scripts/notebooks.py`"
    assert sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")) == sorted(
        f"{n}.ipynb" for n in script.NOTEBOOKS)


def test_generated_notebook_has_the_tutorials_code_and_no_myst_syntax(tmp_path):
    tut = tmp_path / "t.md"
    tut.write_text("---\nfile_format: mystnb\nkernelspec:\n  name: python3\n  display_name: Python 3\n---\n\n"
                   "# Title\n\nSee {func}`ketabayes.effect_sizes` and {class}`~ketabayes.RandomEffectsModel`.\n\n"
                   "```{code-cell} ipython3\nx = kb.read_revman('../_static/a.rm5')\n```\n", encoding="utf-8")
    nb = json.loads(_script().notebook_text(tut))
    sources = ["".join(c["source"]) for c in nb["cells"]]
    assert sources[0].startswith("# Title")
    assert "See `ketabayes.effect_sizes` and `ketabayes.RandomEffectsModel`." in sources[0]
    assert 'warnings.simplefilter("error")' in sources[1]
    assert sources[2] == "x = kb.read_revman('../docs/_static/a.rm5')"
    assert all(c.get("outputs", []) == [] for c in nb["cells"])
