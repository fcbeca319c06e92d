"""Write ``notebooks/*.ipynb`` from the executed tutorials in ``docs/tutorials/*.md`` (one source of truth).

The tutorials are MyST markdown notebooks, executed at every docs build; the notebooks in
``notebooks/`` are the same workflows for Jupyter users, generated from them with myst-nb's own reader
(:func:`myst_nb.core.read.read_myst_markdown_notebook`). Each notebook's first code cell turns
warnings into errors (CI runs them with ``pytest --nbmake``, like the test suite), MyST roles such as
``{func}`ketabayes.effect_sizes``` become plain code spans, and outputs are empty.
``tests/test_notebooks.py`` fails when a notebook is out of date.

Usage (from the repository root): ``python scripts/notebooks.py`` (write), ``--check`` (exit 1 if stale).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: notebook file (without .ipynb) -> tutorial (without .md); the order is the reading order
NOTEBOOKS = {
    "01_published_summary": "published_summary",
    "02_random_effects": "random_effects",
    "03_hierarchical": "hierarchical",
    "04_sensitivity": "sensitivity",
    "05_revman_import": "revman_import",
    "06_trial_designs": "trial_designs",
    "07_benefit_harm": "benefit_harm",
    "08_bias": "bias",
}

WARNINGS_CELL = ('# CI runs this notebook (pytest --nbmake): as in the test suite, any warning is an error.\n'
                 'import warnings\n\nwarnings.simplefilter("error")')

_ROLE = re.compile(r"\{[a-z]+(?::[a-z]+)?\}`(?:[^`<]*<)?~?([^`>]+)>?`")


def notebook_text(tutorial: Path) -> str:
    """The ``.ipynb`` JSON text generated from one MyST tutorial."""
    import nbformat
    from myst_nb.core.read import read_myst_markdown_notebook

    nb = read_myst_markdown_notebook(tutorial.read_text(encoding="utf-8"))
    # static files of the docs are referenced relative to docs/tutorials/; notebooks/ is a sibling of docs/
    for cell in nb.cells:
        cell.metadata = {}
        cell.source = cell.source.replace("../_static/", "../docs/_static/")
        if cell.cell_type == "markdown":
            cell.source = _ROLE.sub(r"`\1`", cell.source)
        else:
            cell.outputs, cell.execution_count = [], None
    title = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0    # after the title, as a reader expects
    nb.cells.insert(title, nbformat.v4.new_code_cell(WARNINGS_CELL))
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):   # stable cell ids: the same tutorial always gives the same file
        cell.id = f"cell-{i:03d}"
    return nbformat.writes(nb, version=4) + "\n"


def stale(root: Path = ROOT) -> list[str]:
    """Notebooks whose committed text differs from what their tutorial generates."""
    out = []
    for name, tut in NOTEBOOKS.items():
        path = root / "notebooks" / f"{name}.ipynb"
        if not path.exists() or path.read_text(encoding="utf-8") != notebook_text(root / "docs" / "tutorials" / f"{tut}.md"):
            out.append(path.name)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report stale notebooks (exit 1 if any)")
    args = ap.parse_args(argv)
    if args.check:
        bad = stale()
        for b in bad:
            print(f"stale: notebooks/{b}")
        return 1 if bad else 0
    for name, tut in NOTEBOOKS.items():
        (ROOT / "notebooks" / f"{name}.ipynb").write_text(
            notebook_text(ROOT / "docs" / "tutorials" / f"{tut}.md"), encoding="utf-8")
    known = {f"{n}.ipynb" for n in NOTEBOOKS}
    for extra in sorted((ROOT / "notebooks").glob("*.ipynb")):
        if extra.name not in known:
            print(f"not generated from a tutorial (remove it or add it to NOTEBOOKS): notebooks/{extra.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
