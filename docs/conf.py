"""Sphinx configuration of the ketabayes documentation.

Build (from the repository root; ``-W`` turns every warning into an error)::

    cd docs && ../.venv/bin/python -m sphinx -W --keep-going -b html . _build/html

The tutorials are MyST markdown notebooks executed at every build: every number
and figure on those pages is computed when the docs are built.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# the package is installed (editable) in the build environment; this makes a plain checkout work too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# the notebook kernels inherit this environment: make them draw figures inline even when
# the caller set another backend (e.g. MPLBACKEND=Agg in CI), or the pages get no figures
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ["KETABAYES_PROGRESS"] = "0"  # executed pages show results, not progress bars

import ketabayes  # noqa: E402

project = "ketabayes"
author = "ketabayes developers"
copyright = "2025, ketabayes developers"
version = release = ketabayes.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

exclude_patterns = ["_build", "jupyter_execute", "README.md", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# -- API pages --------------------------------------------------------------
autosummary_generate = False  # the API page lists its objects explicitly
# no default autodoc options: a `{"members": False}` default would override every `:members:` list of api.md
autodoc_default_options: dict[str, object] = {}
autodoc_typehints = "none"  # numpydoc docstrings carry the types
numpydoc_show_class_members = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()



# -- notebooks: executed at every build, errors and stderr output fail the build
nb_execution_mode = "force"
nb_execution_raise_on_error = True
nb_execution_timeout = 300
nb_execution_show_tb = True
nb_output_stderr = "warn"  # a Python warning printed in a cell becomes a Sphinx warning (-W: an error)
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# -- HTML -------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"ketabayes {release}"
html_static_path = ["_static"]
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    # the pages are wide (tables, code): the top bar navigates, the right column holds "On this page"
    "navbar_align": "left",
    "header_links_before_dropdown": 3,
    "secondary_sidebar_items": ["page-toc"],
}
# no left "Section navigation" column: it is empty for these single-level pages and took a third of the width
html_sidebars = {"**": []}
html_css_files = ["wide.css"]
# no network at build time: no intersphinx inventories, no external images
