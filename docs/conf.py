"""Sphinx configuration for the taskkit documentation."""

from __future__ import annotations

project = "taskkit"
author = "taskkit maintainers"
copyright = "2026, taskkit maintainers"

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
suppress_warnings = ["myst.xref_missing"]
