"""Every page of the built book, opened in a real headless browser (Chromium from the system packages, driven by
Playwright): after MathJax has typeset the page no raw TeX and no unparsed Markdown table is visible, every image has loaded,
no script threw, and every figure the page's source draws is on the page (not only in a PNG file under results/):
each code cell that draws shows at least one image (as many as it calls `save_figure`), no image is one flat colour,
and every chapter shows images. A full-page screenshot of each page, and one of each figure at the size the page
shows it, are saved under `_build/screenshots/` for people to look at.

The book is built by tests/test_project.py::test_book_builds_without_warnings, which runs first (file order);
`LATENTGEN_BOOK_HTML` points the test at another build. MathJax is served from the book itself
(sphinx-mathjax-offline), so the pages must render on a machine without internet, as this one is.
"""
import json
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "_ext"))
from nbdev_directives import process_notebook  # noqa: E402

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


# a code cell that draws: the toolbox's figure functions, save_figure, or matplotlib's own figure calls
DRAWS = re.compile(r"\b(?:show_images|show_rows|show_reconstructions|plot_history|save_figure)\("
                   r"|\bplt\.(?:subplots|figure|show|imshow|hist|scatter|plot)\(")
EXPORTED = re.compile(r"^\s*#\|\s*export[si]?\b", re.M)
SCREENSHOTS = HTML.parent / "screenshots"
CELLS = """() => Array.from(document.querySelectorAll('div.cell')).map(c => Array.from(
  c.querySelectorAll('.cell_output img')).map(i => i.getAttribute('src')))"""


def figures_drawn(nb: dict) -> list[int | None]:
    """For each code cell the page shows (in page order): the least number of images it must show, or None for a
    cell that is shown without outputs. A cell that draws must show one image, or one per line that calls
    `save_figure` (those with `show=False` or inside a lambda excepted)."""
    exported = [bool(EXPORTED.search("".join(c["source"]))) for c in nb["cells"] if c["cell_type"] == "code"]
    cells = [c for c in process_notebook(nb)["cells"] if c["cell_type"] == "code"]
    out = []
    for c, export in zip(cells, exported):
        tags = c.get("metadata", {}).get("tags", [])
        if "remove-cell" in tags:
            continue
        if export or "remove-output" in tags or "skip-execution" in tags:
            out.append(None)
        else:
            src = c["source"]
            saves = sum(1 for line in src.splitlines()       # save_figure shows what it saves, unless told not to
                        if "save_figure(" in line and "show=False" not in line and "lambda" not in line)
            out.append(max(saves, 1) if DRAWS.search(src) else 0)
    return out


def is_blank(path: Path) -> bool:
    "True for an image of one flat colour (every channel's minimum equals its maximum)."
    from PIL import Image, ImageStat
    with Image.open(path) as im:
        return all(lo == hi for lo, hi in ImageStat.Stat(im.convert("RGB")).extrema)


def test_figure_accounting_counts_what_a_page_must_show(tmp_path):
    nb = {"cells": [{"cell_type": "markdown", "source": "# t", "metadata": {}}] + [
        {"cell_type": "code", "metadata": {}, "source": s} for s in (
            "#| hide\nplt.subplots()",                      # removed from the page: not counted
            "#| export\ndef f():\n    fig, ax = plt.subplots()",  # a definition: draws nothing when run
            "x = 1",
            "fig = show_rows(rows)",
            "for k in ks:\n    save_figure(a, 'c', k)\nsave_figure(b, 'c', 'z')\nsave_figure(b, 'c', 'q', show=False)",
            "#| eval: false\nplt.show()")]}
    assert figures_drawn(nb) == [None, 0, 1, 2, None]
    from PIL import Image
    Image.new("RGB", (4, 4), (200, 10, 10)).save(tmp_path / "flat.png")
    im = Image.new("RGB", (4, 4), (200, 10, 10)); im.putpixel((1, 1), (0, 0, 0)); im.save(tmp_path / "dot.png")
    assert is_blank(tmp_path / "flat.png") and not is_blank(tmp_path / "dot.png")


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
    problems, math_pages, tally = [], 0, []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
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
                problems += check_figures(page, path, tally)
                page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    table = "\n".join(f"  {n:24s} drawn >= {d:3d}  shown {r:3d}" for n, d, r in tally)
    print(f"figures per page (screenshots in {SCREENSHOTS}):\n{table}")
    assert not problems, "\n".join(problems) + f"\nfigures per page:\n{table}"
    assert math_pages >= 5, f"MathJax typeset formulas on only {math_pages} pages"


def check_figures(page, path: Path, tally: list) -> list[str]:
    """Compare the figures the page's source draws with the images its HTML shows (see `figures_drawn`); save one
    screenshot per figure, as the page shows it, under `_build/screenshots/<page>/`."""
    problems, name = [], path.name
    src = ROOT / "nbs" / f"{path.stem}.ipynb"
    shown = page.evaluate(CELLS)
    images = [path.parent / s for cell in shown for s in cell]
    if src.is_file():
        drawn = figures_drawn(json.loads(src.read_text(encoding="utf-8")))
        if len(drawn) != len(shown):
            problems.append(f"{name}: {len(shown)} code cells on the page, {len(drawn)} in its source: cannot match them")
        else:
            for k, (need, imgs) in enumerate(zip(drawn, shown)):
                if need and len(imgs) < need:
                    problems.append(f"{name}: code cell {k + 1} on the page draws {need} figure(s) and shows {len(imgs)}")
        tally.append((name, sum(d or 0 for d in drawn), len(images)))
        if path.stem.startswith("ch") and not images:
            problems.append(f"{name}: a chapter with no image at all")
    problems += [f"{name}: blank (one-colour) image {p.name}" for p in images if p.is_file() and is_blank(p)]
    if images:
        folder = SCREENSHOTS / path.stem
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i, img in enumerate(page.locator(".cell_output img").all()):
            img.scroll_into_view_if_needed()
            img.screenshot(path=str(folder / f"fig-{i + 1:02d}.png"))
    return problems


def merged_twice(outputs: list[dict]) -> list[str]:
    """Stream names whose first output already holds the text of the later ones: what myst-nb's in-place stream merge
    left in the executed notebook (the merged text, then the pieces again). Separate prints of the same line are fine."""
    out = []
    for name in ("stdout", "stderr"):
        texts = ["".join(o["text"]) for o in outputs if o.get("output_type") == "stream" and o.get("name") == name]
        rest = "".join(t.rstrip() + "\n" for t in texts[1:]).rstrip()
        first = texts[0].rstrip() if texts else ""
        if rest and len(first) > len(rest) and first.endswith(rest):
            out.append(name)
    return out


def test_merged_twice_tells_the_merge_bug_from_repeated_prints():
    s = lambda t: {"output_type": "stream", "name": "stdout", "text": t}
    assert merged_twice([s("a: 10 steps\nb: trained\n"), s("b: trained\n")]) == ["stdout"]
    assert merged_twice([s("b: trained\n"), s("b: trained\n")]) == []          # the same line printed twice, on purpose
    assert merged_twice([s("a\n"), s("b\n")]) == [] and merged_twice([s("a\n")]) == []


def test_no_log_line_is_printed_twice():
    "In every executed page, no cell's printed output holds its later pieces twice (myst-nb's stream merge once did)."
    executed = sorted((HTML.parent / "jupyter_execute" / "nbs").glob("*.ipynb"))
    if not executed:
        pytest.fail(f"no executed notebooks beside {HTML}: build the book first")
    twice = [f"{p.name} cell {i}: {names}" for p in executed
             for i, cell in enumerate(json.loads(p.read_text(encoding="utf-8"))["cells"])
             for names in [merged_twice(cell.get("outputs", []))] if names]
    assert not twice, "\n".join(twice[:10])
