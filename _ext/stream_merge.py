"""Sphinx extension: merge a cell's stream outputs without changing the executed notebook.

myst-nb's `coalesce_streams` (used with `nb_merge_streams: true`) merges a cell's stdout pieces into the *first piece
itself*: the executed notebook under `_build/jupyter_execute/` (the page's download) then holds the merged text followed
by the pieces again, and every later call on the same outputs merges them a second time, so training logs appeared
twice. Here the merge works on a copy; the result on the page is the same, once.
"""
from __future__ import annotations

import copy


def merge_copy(outputs):
    "myst-nb's stream merge, applied to a copy of `outputs` (the notebook's own outputs are left as they are)."
    from myst_nb.core import utils
    return utils.coalesce_streams(copy.deepcopy(outputs))


def setup(app):
    from myst_nb.core import render
    render.coalesce_streams = merge_copy
    return {"parallel_read_safe": True, "parallel_write_safe": True}
