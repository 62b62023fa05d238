"""Sphinx configuration of the bertadam-optax documentation.

Build it from the repository root with one command::

  python -m sphinx -W --keep-going -b html docs docs/_build/html

Everything generated is generated here, from the code: the API reference by
autodoc from each module's ``__all__`` and docstrings (the formulas live in the
docstrings only), the schedule plots by ``bertadam-optax plot`` and the
benchmark tables from ``benchmarks/results/*.json`` (both by the local
extension ``_ext/bertadam_docs.py``), and the notebooks, rendered with the
outputs they were committed with (they are executed by the tests, not here).
"""

from __future__ import annotations

import os
import pathlib
import sys

DOCS = pathlib.Path(__file__).resolve().parent
ROOT = DOCS.parent
# The checkout's package, not an installed copy, is the one documented.
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))
# The plots are drawn on the CPU, without a display.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import bertadam_optax  # noqa: E402

project = "bertadam-optax"
author = "The bertadam-optax authors"
copyright = "2026, The bertadam-optax authors"
release = bertadam_optax.__version__
version = release

extensions = [
  "myst_nb",
  "sphinx.ext.autodoc",
  "sphinx.ext.napoleon",
  "sphinx.ext.mathjax",
  "sphinx.ext.viewcode",
  "bertadam_docs",
]

source_suffix = {
  ".md": "myst-nb",
  ".ipynb": "myst-nb",
  ".rst": "restructuredtext",
}
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "README.md"]

# The notebooks are executed by tests/test_notebooks.py (small, in CI) and by
# notebooks/build_notebooks.py (full size, outputs committed); the site shows
# those outputs as they are.
nb_execution_mode = "off"
myst_enable_extensions = ["colon_fence", "dollarmath", "deflist"]
myst_heading_anchors = 3

# Google-style docstrings (Args:, Returns:, Examples:, References:).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_default_options = {
  "undoc-members": True,
  "show-inheritance": False,
  "no-value": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
# The extras (torch, flax, orbax, transformers, deepspeed) are imported lazily
# by the package, so nothing needs mocking; keep it that way.
autodoc_mock_imports: list[str] = []

html_theme = "sphinx_book_theme"
html_title = "bertadam-optax"
html_theme_options = {
  "show_toc_level": 2,
  "home_page_in_toc": True,
}
html_static_path: list[str] = []

# The API pages, most specific first: an object exported by several of them is
# documented on the first that exports it, and linked from the others.
bertadam_api_modules = [
  "bertadam_optax.transforms",
  "bertadam_optax.schedules",
  "bertadam_optax.interop",
  "bertadam_optax.checkpoint",
  "bertadam_optax.flatten",
  "bertadam_optax",
]

# NamedTuple fields are listed under "Attributes:" in the class docstring;
# render them as fields, not as a second description of each attribute.
napoleon_use_ivar = True

# Pages written with the code they describe, by whoever writes that code: the
# index lists them, and leaves each out until its file exists.
bertadam_optional_pages = ["architecture", "guides/megatron"]
