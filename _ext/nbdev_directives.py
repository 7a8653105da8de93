"""Sphinx extension: render nbdev notebooks in Jupyter Book without directive noise.

nbdev marks cells with comment directives (``#| export``, ``#| hide``, ``#| eval: false`` ...). Before myst-nb
parses (and executes) a notebook, this extension removes those lines and maps them to the cell tags that
Jupyter Book understands:

=====================================  ==============================================
nbdev directive                        Jupyter Book behaviour
=====================================  ==============================================
``default_exp``, ``hide``,             ``remove-cell`` (runs, not shown)
``include: false``
``export``, ``exports``, ``exporti``   shown (the code being taught), directive removed
``eval: false``                        ``skip-execution`` (shown, not run)
``echo: false``                        ``remove-input``
``output: false``                      ``remove-output``
=====================================  ==============================================
"""
from __future__ import annotations

import json
import re

DIRECTIVE = re.compile(r"^\s*#\|\s*(.*?)\s*$")
TAGS = {"default_exp": "remove-cell", "hide": "remove-cell", "include: false": "remove-cell",
        "eval: false": "skip-execution", "echo: false": "remove-input", "output: false": "remove-output"}


def directive_tags(directive: str) -> list[str]:
    "Jupyter Book tags for one nbdev directive (without the leading '#|')."
    d = re.sub(r"\s*:\s*", ": ", directive.strip().lower())
    if d.startswith("default_exp"):
        return [TAGS["default_exp"]]
    return [TAGS[d]] if d in TAGS else []


def process_notebook(nb: dict) -> dict:
    "Strip nbdev directive lines from code cells and add the matching tags (in place; returns nb)."
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        src = cell.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        body, tags = [], list(cell.get("metadata", {}).get("tags", []))
        for line in src.splitlines():
            m = DIRECTIVE.match(line)
            if m:
                tags += [t for t in directive_tags(m.group(1)) if t not in tags]
            else:
                body.append(line)
        new = "\n".join(body).strip("\n")
        if not new.strip() and "remove-cell" not in tags:
            tags.append("remove-cell")
        cell["source"] = new
        if tags:
            cell.setdefault("metadata", {})["tags"] = tags
    return nb


def _on_source_read(app, docname, source):
    path = str(app.env.doc2path(docname))
    if path.endswith(".ipynb"):
        source[0] = json.dumps(process_notebook(json.loads(source[0])))


def setup(app):
    app.connect("source-read", _on_source_read)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
