"""Sphinx configuration of grasp_autolabel's documentation (built as rosdoc2 builds a package).

Markdown pages through MyST, API pages from the docstrings (autodoc with NumPy-style sections).
``make test`` builds it with warnings as errors (test_docs.py).
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), '..', 'grasp_autolabel')))

project = 'grasp_autolabel'
author = 'grasp_autolabel developers'
release = '0.1.0'
extensions = ['myst_parser', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon']
source_suffix = {'.md': 'markdown'}
master_doc = 'index'
exclude_patterns = ['_build']
myst_heading_anchors = 3
autodoc_member_order = 'bysource'
autodoc_typehints = 'none'  # the signatures say it; NumPy sections describe
napoleon_google_docstring = False
napoleon_numpy_docstring = True
html_theme = 'alabaster'
suppress_warnings = []
