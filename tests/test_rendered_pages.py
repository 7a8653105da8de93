"""Every page of the built book, opened in a real headless browser (Chromium from the system packages, driven by
Playwright): after MathJax has typeset the page no raw TeX and no unparsed Markdown table is visible, every image has loaded,
and no script threw.

The book is built by tests/test_project.py::test_book_builds_without_warnings, which runs first (file order);
`LATENTGEN_BOOK_HTML` points the test at another build. MathJax is served from the book itself
(sphinx-mathjax-offline), so the pages must render on a machine without internet, as this one is.
"""
import os
import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("LATENTGEN_BOOK_HTML", ROOT / "_build" / "html"))
pytestmark = pytest.mark.book

# TeX that MathJax should have replaced; checked in the page's prose and rendered outputs, not in code
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\(?:mathcal|frac|sigma|mathbb|sum|log|mid|operatorname)\b")

# a Markdown table that was not parsed shows its rows as text lines between pipes
RAW_TABLE = re.compile(r"^[ \t]*\|.*\|[ \t]*$", re.M)

VISIBLE_TEXT = """() => {
  const root = (document.querySelector('main') || document.body).cloneNode(true);
  root.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, mjx-assistive-mml').forEach(e => e.remove());
  return root.innerText;
}"""
BROKEN_IMAGES = """() => Array.from(document.images)
  .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))"""
TYPESET = """async () => {
  if (!window.MathJax) return 'none';
  if (window.MathJax.startup && window.MathJax.startup.promise) { await window.MathJax.startup.promise; }
  if (window.MathJax.typesetPromise) { await window.MathJax.typesetPromise(); }
  return 'typeset';
}"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_raw_tex_pattern_catches_unrendered_math():
    assert RAW_TEX.search(r"the prior \(\mathcal N(0, I)\)") and RAW_TEX.search("$$x^2$$")
    assert not RAW_TEX.search("a price of $5 and a path $LATENTGEN_DATA")
    assert RAW_TABLE.search("text\n| a | b |\n| --- | --- |\n") and not RAW_TABLE.search("a | b in prose")


def test_every_page_renders_math_and_images_without_errors():
    exe = chromium()
    if exe is None:
        pytest.skip("no Chromium here: `apt-get install chromium` (make test installs it where it can)")
    index = HTML / "nbs" / "index.html"
    if not index.is_file():
        pytest.fail(f"no built book at {HTML}: build it first (jupyter-book build . ; tests/test_project.py does)")
    from playwright.sync_api import sync_playwright

    pages = sorted(HTML.glob("nbs/*.html"))
    assert len(pages) >= 10, pages
    problems, math_pages = [], 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            for path in pages:
                page = browser.new_page()
                errors = []
                page.on("pageerror", lambda e, errors=errors: errors.append(f"pageerror: {e}"))
                page.on("console", lambda m, errors=errors: errors.append(f"console: {m.text}") if m.type == "error" else None)
                page.goto(path.as_uri(), wait_until="load")
                state = page.evaluate(TYPESET)
                math_pages += state == "typeset" and page.locator("mjx-container").count() > 0
                text = page.evaluate(VISIBLE_TEXT)
                raw = sorted({m.group(0) for m in RAW_TEX.finditer(text)})
                tables = RAW_TABLE.findall(text)
                broken = page.evaluate(BROKEN_IMAGES)
                name = path.name
                if raw:
                    problems.append(f"{name}: raw TeX visible {raw[:5]}")
                if tables:
                    problems.append(f"{name}: {len(tables)} Markdown table rows shown as text, e.g. {tables[0].strip()[:80]!r}")
                if broken:
                    problems.append(f"{name}: broken images {broken[:5]}")
                if errors:
                    problems.append(f"{name}: script errors {errors[:3]}")
                page.close()
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
    assert math_pages >= 5, f"MathJax typeset formulas on only {math_pages} pages"
