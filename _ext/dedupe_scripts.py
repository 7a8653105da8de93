"""Sphinx extension: drop repeated <script> entries from every page.

sphinx-thebe 0.3.1 adds its configuration script on `env-before-read-docs`, which Jupyter Book's build emits more
than once, so every page declared `const THEBE_JS_URL` twice and the browser threw "Identifier 'THEBE_JS_URL' has
already been declared" (found by tests/test_rendered_pages.py). The two copies differ only in a filename of None
against "" (inline scripts); keeping the first of scripts identical up to that fixes it.
"""


def _key(js):
    return (getattr(js, "filename", str(js)) or "", tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))


def dedupe(app, pagename, templatename, context, doctree):
    seen, kept = set(), []
    for js in context.get("script_files", []):
        k = _key(js)
        if k not in seen:
            seen.add(k)
            kept.append(js)
    context["script_files"] = kept


def setup(app):
    app.connect("html-page-context", dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
