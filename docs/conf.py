"""Sphinx configuration for the anxcor documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` from the
repository root. The build needs no network access.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import anxcor  # noqa: E402

project = "anxcor"
author = "Kevin A Mendoza and the anxcor developers"
copyright = "2019 Kevin A Mendoza; 2026 the anxcor developers"
release = anxcor.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_parser",
]

# No intersphinx_mapping: the build machine has no internet, so nothing is fetched.
intersphinx_mapping: dict = {}

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# autodoc / numpydoc
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# MyST: ``{py:class}`` roles and fenced directives in Markdown pages, anchors for headings.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"anxcor {release}"
html_static_path: list = []
