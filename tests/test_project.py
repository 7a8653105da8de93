"Project-level checks: nbdev export is in sync, the book extension maps directives, the book builds."
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))
from nbdev_directives import process_notebook  # noqa: E402


def _nb(*sources):
    return {"cells": [{"cell_type": "code", "metadata": {}, "source": s} for s in sources]}


def test_directives_become_tags_and_disappear():
    nb = process_notebook(_nb("#| default_exp data", "#| export\ndef f(): pass", "#| hide\nimport x",
                              "#|eval: false\ntrain()", "#| echo: false\nplot()", "x = 1  # ordinary comment #| not a directive"))
    cells = nb["cells"]
    assert not any(l.lstrip().startswith("#|") for c in cells for l in c["source"].splitlines())
    assert cells[0]["metadata"]["tags"] == ["remove-cell"]
    assert cells[1]["source"] == "def f(): pass" and "tags" not in cells[1]["metadata"]
    assert cells[2]["metadata"]["tags"] == ["remove-cell"] and cells[2]["source"] == "import x"
    assert cells[3]["metadata"]["tags"] == ["skip-execution"]
    assert cells[4]["metadata"]["tags"] == ["remove-input"]
    assert cells[5]["source"].startswith("x = 1")


def test_no_directive_survives_in_any_notebook():
    for p in sorted((ROOT / "nbs").glob("*.ipynb")):
        nb = process_notebook(json.loads(p.read_text()))
        for c in nb["cells"]:
            if c["cell_type"] == "code":
                assert not any(l.lstrip().startswith("#|") for l in c["source"].splitlines()), p.name


def test_nbdev_export_leaves_no_diff(tmp_path):
    for name in ("settings.ini", "nbs", "latentgen"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    subprocess.run(["nbdev_export"], cwd=tmp_path, check=True, capture_output=True)
    cmp = filecmp.dircmp(ROOT / "latentgen", tmp_path / "latentgen", ignore=["__pycache__"])
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only, \
        f"latentgen/ is out of sync with nbs/: run nbdev_export ({cmp.diff_files + cmp.left_only + cmp.right_only})"


@pytest.mark.book
def test_book_builds_without_warnings():
    """Executes every notebook in the active profile (quick on CPU) and renders _build/html; -W fails on any warning.
    Built with MPLBACKEND=Agg in the kernels' environment, as a user's shell may have it: the pages must show their
    figures all the same (tests/test_rendered_pages.py counts them)."""
    r = subprocess.run(["jupyter-book", "build", str(ROOT), "--all", "-W", "-n", "--keep-going"],
                       cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "LATENTGEN_PROGRESS": "0", "MPLBACKEND": "Agg"})
    assert r.returncode == 0, (r.stdout[-6000:] + r.stderr[-6000:])
    missing = [p.name for p in sorted((ROOT / "nbs").glob("*.ipynb"))
               if not (ROOT / "_build" / "html" / "nbs" / f"{p.stem}.html").exists()]
    assert not missing, f"notebooks not rendered (are they in _toc.yml?): {missing}"


def test_figures_inline_whatever_the_environment_says(tmp_path):
    """A notebook executed by a kernel whose environment says MPLBACKEND=Agg (a Makefile, a user's shell) still shows
    its figures: the setup cell selects the inline backend. 02_viz draws six figures; under Agg it showed none."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / "nbs" / "02_viz.ipynb", as_version=4)
    env = {**os.environ, "MPLBACKEND": "Agg", "LATENTGEN_RESULTS": str(tmp_path)}
    old = dict(os.environ)
    os.environ.update(env)                     # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "nbs")}}).execute()
    finally:
        os.environ.clear(); os.environ.update(old)
    images = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                 if "image/png" in o.get("data", {}))
    assert images >= 6, f"02_viz showed {images} figures under MPLBACKEND=Agg"


def test_setup_cell_and_repository_address_agree_everywhere():
    """Every notebook starts with the same setup cell (tools/setup_cell.py: inline figures, install from settings.ini's
    git_url where latentgen is missing); the launch buttons, the README and the front page name that address."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_cell.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    import configparser
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT / "settings.ini")
    url = cfg["DEFAULT"]["git_url"]
    assert f"url: {url}\n" in (ROOT / "_config.yml").read_text()
    for doc in ("README.md", "nbs/index.md"):
        text = (ROOT / doc).read_text()
        others = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text)) - {url}
        assert url in text and not others, f"{doc} names {others or 'no repository'}; settings.ini says {url}"


def _run_setup_cell(tmp_path, fake: str) -> subprocess.CompletedProcess:
    """Runs the generated setup cell's Python (without `%matplotlib`) in a fresh interpreter that ignores PYTHONPATH and
    the user's site, from a scratch folder, after `fake` (code that replaces find_spec, subprocess.run, ...)."""
    sys.path.insert(0, str(ROOT / "tools"))
    import setup_cell
    url, branch = setup_cell.git_url()
    cell = setup_cell.setup_source(url, branch)
    assert "%matplotlib inline\n" in cell
    code = "import sys; sys.path.insert(0, %r)\n" % str(tmp_path) + fake + "\n" + cell.replace("%matplotlib inline\n", "")
    (tmp_path / "cell.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, "-I", "cell.py"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120)


def test_setup_cell_says_why_each_install_failed(tmp_path):
    """latentgen missing and pip failing both ways (git, then the zip archive): the error names each attempt with its
    reason and the real repository address, and installs nothing from the package index."""
    fake = """import importlib.util, subprocess, types
importlib.util.find_spec = lambda name, *a, **k: None
CALLS = []
def run(cmd, **kw):
    CALLS.append(cmd[-1])
    return types.SimpleNamespace(returncode=1, stdout="", stderr=f"ERROR: reason number {len(CALLS)} for {cmd[-1]}")
subprocess.run = run
import atexit; atexit.register(lambda: print("CALLS", CALLS))"""
    r = _run_setup_cell(tmp_path, fake)
    assert r.returncode != 0 and "RuntimeError: could not install latentgen" in r.stderr, r.stdout + r.stderr
    from setup_cell import git_url
    url, branch = git_url()
    assert "ERROR: reason number 1 for latentgen @ git+" + url in r.stderr, r.stderr
    assert f"ERROR: reason number 2 for latentgen @ {url}/archive/refs/heads/{branch}.zip" in r.stderr, r.stderr
    assert f"pip install git+{url}`" in r.stderr and "REPO" not in r.stderr, r.stderr
    calls = eval(r.stdout.split("CALLS", 1)[1])
    assert len(calls) == 2 and all(c.startswith("latentgen @ ") and url in c for c in calls), calls


def test_setup_cell_refuses_an_unrelated_latentgen(tmp_path):
    """pip "succeeds" but the latentgen it leaves has no __version__ (someone else's package of that name): the cell
    says so and how to remove it, instead of failing later in the chapter."""
    (tmp_path / "latentgen").mkdir()
    (tmp_path / "latentgen" / "__init__.py").write_text('"Someone else\'s latentgen."\n')
    fake = """import importlib.util, subprocess, types
importlib.util.find_spec = lambda name, *a, **k: None
subprocess.run = lambda cmd, **kw: types.SimpleNamespace(returncode=0, stdout="", stderr="")"""
    r = _run_setup_cell(tmp_path, fake)
    assert r.returncode != 0 and "RuntimeError: an unrelated package named latentgen is installed" in r.stderr, r.stderr
    assert "__version__" in r.stderr and "pip uninstall -y latentgen" in r.stderr, r.stderr
    # this project's package (the real one, on the path) passes the same check
    (tmp_path / "ok").mkdir()
    env_ok = _run_setup_cell(tmp_path / "ok", "import sys; sys.path.insert(0, %r)" % str(ROOT))
    assert env_ok.returncode == 0, env_ok.stderr


def test_test_workflow_runs_the_unit_tests_on_every_push_and_pull_request():
    """.github/workflows/test.yml parses, triggers on push and pull_request, installs the dev extra, runs the unit
    tests (the Makefile's `unit` target or pytest on tests/ without the book) and executes a chapter."""
    import yaml
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "test.yml").read_text())
    on = wf.get("on", wf.get(True))             # YAML 1.1 reads the bare key `on` as true
    triggers = set(on) if isinstance(on, (dict, list)) else {on}
    assert {"push", "pull_request"} <= triggers, triggers
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    runs = "\n".join(s.get("run", "") for s in steps)
    assert '-e ".[dev]"' in runs, runs
    assert re.search(r"^\s*make unit\b|pytest tests\b.*not book", runs, re.M), runs
    if re.search(r"^\s*make unit\b", runs, re.M):
        assert re.search(r"^unit:", (ROOT / "Makefile").read_text(), re.M)
    assert re.search(r"(jupyter execute|latentgen notebook) nbs/ch\d\w*\.ipynb", runs), runs
    assert any(s.get("with", {}).get("cache") == "pip" for s in steps)


def test_merged_streams_leave_the_notebook_alone_and_show_each_line_once():
    "The book's stream merge (_ext/stream_merge.py) works on a copy: merging twice gives the same text, once."
    from nbformat import NotebookNode
    from stream_merge import merge_copy
    outs = [NotebookNode(output_type="stream", name="stdout", text=t) for t in ("run: 10 steps in 1.0s\n", "run: trained\n")]
    once, twice = merge_copy(outs), merge_copy(outs)
    assert once == twice and once[0]["text"] == "run: 10 steps in 1.0s\nrun: trained\n"
    assert [o["text"] for o in outs] == ["run: 10 steps in 1.0s\n", "run: trained\n"]


def test_nbval_skips_exactly_the_eval_false_cells():
    sys.path.insert(0, str(ROOT))
    from conftest import EVAL_FALSE
    for src in ("#| eval: false\nfit()", "#|eval:false\nfit()", "x = 1\n#| eval : false"):
        assert EVAL_FALSE.search(src), src
    for src in ("#| eval: true\nfit()", "# eval: false (a comment)", "#| export\nx = 1"):
        assert not EVAL_FALSE.search(src), src


# import name -> distribution, for the third-party modules the notebooks may import after a plain install
_DISTS = {"torch": "torch", "torchvision": "torchvision", "normflows": "normflows", "torch_fidelity": "torch-fidelity",
          "matplotlib": "matplotlib", "numpy": "numpy", "sklearn": "scikit-learn", "scipy": "scipy", "tqdm": "tqdm", "PIL": "pillow",
          "fastcore": "fastcore", "nbclient": "nbclient", "nbformat": "nbformat"}


def test_notebooks_import_only_runtime_requirements():
    """A reader who runs a chapter after `pip install latentgen` (Colab) has every module its cells import. The
    `[book]` extra's packages (nbclient, nbformat) may be imported only inside a function (indented: lazily, where the
    command that executes a notebook needs them)."""
    import configparser, re, sys
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT / "settings.ini")
    runtime = {re.split(r"[<>=!~ ]", r)[0] for r in cfg["DEFAULT"]["requirements"].split()}
    book = {re.split(r"[<>=!~ ]", r)[0] for r in cfg["DEFAULT"]["book_requirements"].split()}
    missing = set()
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            for m in re.finditer(r"^(\s*)(?:from|import)\s+([A-Za-z_][\w]*)", "".join(cell["source"]), re.M):
                indent, mod = m.groups()
                if mod in sys.stdlib_module_names or mod in ("latentgen", "IPython", "__future__"):
                    continue
                if indent and _DISTS.get(mod) in book:
                    continue
                if _DISTS.get(mod) not in runtime:
                    missing.add(f"{nb.name}: {mod}")
    assert not missing, f"imported by notebooks but not a runtime requirement: {sorted(missing)}"


def test_wheel_carries_license_and_weights(tmp_path):
    import subprocess, sys, zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True)
    names = zipfile.ZipFile(next(tmp_path.glob("latentgen-*.whl"))).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names
    assert "latentgen/weights/mnist-classifier.pt" in names and "latentgen/cli.py" in names


def test_every_budget_names_its_gpu_value():
    """`by_profile(quick, paper)` without `gpu=` raises under the gpu profile (the default on CUDA): every call in the
    notebooks and the package names one, so no chapter silently falls back to a paper budget on a GPU."""
    import ast
    root = Path(__file__).resolve().parents[1]
    sources = [(p.name, p.read_text()) for p in (root / "latentgen").glob("*.py")]
    for nb in sorted((root / "nbs").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        sources += [(f"{nb.name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    missing, seen = [], 0
    for where, src in sources:
        try:
            tree = ast.parse("\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!"))))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "by_profile":
                seen += 1
                literal = any(k.arg == "profile" and isinstance(k.value, ast.Constant) for k in node.keywords)
                if not literal and not any(k.arg == "gpu" for k in node.keywords):   # literal profiles: by_profile's own tests
                    missing.append(f"{where}: line {node.lineno}")
    assert seen > 30, seen
    assert not missing, "by_profile calls without gpu=: " + "; ".join(missing)


def test_dashboard_runs_after_the_chapters():
    """The book build executes pages in sorted order of their names, not in the table of contents' order; the dashboard
    reads the chapters' results files, so its name must sort after every chapter's (else a fresh build shows 'not run')."""
    nbs = Path(__file__).resolve().parents[1] / "nbs"
    chapters = sorted(p.stem for p in nbs.glob("ch*.ipynb"))
    assert chapters and all(c < "results_dashboard" for c in chapters), chapters
    assert (nbs / "results_dashboard.ipynb").is_file()


# --------------------------------------------------------------------------------------- the README and the book pages
def _settings():
    import configparser
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT / "settings.ini")
    return cfg["DEFAULT"]


BOOK_URL = _settings()["doc_host"].rstrip("/") + "/" + _settings()["doc_baseurl"].strip("/") + "/"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")          # [text](target)
AUTOLINK = re.compile(r"<([a-z]+:[^>\s]+)>")              # <https://...>


def _prose(text: str) -> str:
    "Markdown without its code blocks and code spans (where brackets are not links)."
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


def _toc_files() -> list[str]:
    "Every `file:` of _toc.yml (the root, parts, chapters and their sections), as written there."
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                files.append(e["file"])
            walk(e.get("sections"))
    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def test_readme_is_short_and_names_the_book_first():
    text = (ROOT / "README.md").read_text()
    assert len(text) < 9000, f"README.md has {len(text):,} characters: move sections into the book (limit 9,000)"
    assert BOOK_URL in text[:1500], f"the book's address {BOOK_URL} is not in the README's first 1,500 characters"


def test_readme_has_the_commands_ci_runs():
    "The README's two commands are the Makefile's targets, and its test command is the one `.ci/run` calls."
    readme = (ROOT / "README.md").read_text()
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip().startswith("make ")]
    assert ci == ["make test"], ci
    block = re.search(r"```bash\n(.*?)```", readme, re.S).group(1)
    commands = [l.split("#")[0].strip() for l in block.splitlines() if l.strip()]
    assert commands[:2] == ["make book", "make test"], commands
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for c in ("make book", "make test", "make unit"):
        assert c in readme and c.split()[1] in targets, c


def test_readme_links_resolve():
    """Relative links name files of the repository; links into the book name pages of _toc.yml."""
    text = _prose((ROOT / "README.md").read_text())
    pages = {f.split(".")[0] for f in _toc_files()}
    relative, book = [], []
    for target in LINK.findall(text) + AUTOLINK.findall(text):
        if target.startswith(BOOK_URL):
            page = target[len(BOOK_URL):].split("#")[0]
            if page:
                book.append(page)
        elif not re.match(r"[a-z]+:", target) and not target.startswith("#"):
            relative.append(target.split("#")[0])
    missing = [t for t in relative if not (ROOT / t).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"
    assert book, "the README links to no page of the book"
    unknown = [p for p in book if p.removesuffix(".html") not in pages]
    assert not unknown, f"README.md links to book pages that _toc.yml does not list: {unknown}"


def test_every_toc_page_exists_and_page_links_resolve():
    """Every page of _toc.yml exists (.md or .ipynb), and every relative link of the Markdown pages names one."""
    files = _toc_files()
    missing = [f for f in files if not any((ROOT / f"{f}{ext}").is_file() for ext in ("", ".md", ".ipynb"))]
    assert not missing, f"_toc.yml lists pages that do not exist: {missing}"
    names = {Path(f).name.split(".")[0] for f in files}
    broken = []
    for page in sorted((ROOT / "nbs").glob("*.md")):
        for target in LINK.findall(_prose(page.read_text())):
            if not re.match(r"[a-z]+:", target) and target.split("#")[0].removesuffix(".md").removesuffix(".ipynb") not in names:
                broken.append(f"{page.name}: {target}")
    assert not broken, f"links to pages that are not in the book: {broken}"
    assert {"guide_running", "guide_gpu_offline"} <= names


# the project is written for people who own their GPU machine: no text about borrowing one
LENDING = re.compile(r"\blent (?:gpu|machine)|\blending\b|\bleased?\b", re.I)


def test_lending_vocabulary_pattern_spares_ordinary_words():
    "The pattern does not fire on ordinary words that contain its letters, nor on the project's own phrasing."
    for s in ("released", "please", "excellent", "a GPU machine without internet", "timeout"):
        assert not LENDING.search(s), s


def test_no_file_describes_a_lending_arrangement():
    files = [ROOT / "README.md", ROOT / "Makefile", ROOT / "_toc.yml", ROOT / "_config.yml", ROOT / "settings.ini",
             ROOT / "data" / "README.md", *sorted((ROOT / "tools").glob("*")), *sorted((ROOT / "nbs").glob("*.md")),
             *sorted((ROOT / "nbs").glob("*.ipynb")), *sorted((ROOT / "benchmarks").glob("*.py")),
             *sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file())]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)!r}" for p in files if p.is_file()
             for m in LENDING.finditer(p.read_text(errors="replace"))]
    assert not found, f"text about one workplace's GPU lending: {found[:10]}"


def test_no_cell_shows_the_path_save_figure_returns():
    """A cell whose last statement is a bare `save_figure(...)` shows `PosixPath('...')` under its figure on the page;
    such cells end with `;` (or assign the path)."""
    import ast
    root = Path(__file__).resolve().parents[1]
    shown = []
    for nb in sorted((root / "nbs").glob("*.ipynb")):
        for i, c in enumerate(json.loads(nb.read_text())["cells"]):
            src = "".join(c["source"])
            if c["cell_type"] != "code" or "save_figure" not in src:
                continue
            code = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
            body = ast.parse(code).body
            last = body[-1] if body else None
            if (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                    and getattr(last.value.func, "id", None) == "save_figure" and not code.rstrip().endswith(";")):
                shown.append(f"{nb.name} cell {i}")
    assert not shown, "cells that show save_figure's path: " + ", ".join(shown)


def test_the_environment_variables_table_lists_what_the_package_reads():
    """The guide's table of environment variables names every `LATENTGEN_*` variable the package reads (grep of
    latentgen/) and nothing else, and `latentgen --help` lists the same (cli.ENVIRONMENT)."""
    import re
    from latentgen.cli import ENVIRONMENT
    root = Path(__file__).resolve().parents[1]
    read = set()
    for f in (root / "latentgen").glob("*.py"):
        read |= set(re.findall(r"LATENTGEN_[A-Z0-9_]+", f.read_text()))
    guide = set(re.findall(r"^\| `(LATENTGEN_[A-Z0-9_]+)` \|", (root / "nbs" / "guide_package.md").read_text(), re.M))
    assert guide == set(ENVIRONMENT) == read, (sorted(read ^ guide), sorted(read ^ set(ENVIRONMENT)))


def test_every_name_a_notebook_uses_is_defined_or_imported_in_it():
    """A notebook executes top to bottom in its own kernel: a name its cells read must be assigned, defined or
    imported in one of its cells (or be a builtin). Catches an import dropped from an export cell that a test cell
    still needs, which byte-compiling and the exported module's tests cannot see."""
    import ast, builtins
    root = Path(__file__).resolve().parents[1]
    missing = {}
    for nb in sorted((root / "nbs").glob("*.ipynb")):
        cells = ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
        code = "\n".join("\n".join(l for l in s.splitlines() if not l.lstrip().startswith(("%", "!"))) for s in cells)
        tree = ast.parse(code)
        known = set(dir(builtins)) | {"display", "get_ipython", "__file__"}
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                known.add(n.name)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
                known.add(n.id)
            elif isinstance(n, (ast.Import, ast.ImportFrom)):
                for a in n.names:
                    if a.name == "*":           # `from latentgen.features import *`: that module's public names
                        import importlib
                        mod = importlib.import_module(n.module)
                        known |= set(getattr(mod, "__all__", [k for k in dir(mod) if not k.startswith("_")]))
                    else:
                        known.add((a.asname or a.name).split(".")[0])
            elif isinstance(n, ast.arg):
                known.add(n.arg)
            elif isinstance(n, ast.ExceptHandler) and n.name:
                known.add(n.name)
            elif isinstance(n, (ast.Global, ast.Nonlocal)):
                known |= set(n.names)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        if used - known:
            missing[nb.name] = sorted(used - known)
    assert not missing, missing


def test_the_undefined_name_check_catches_a_dropped_import(tmp_path, monkeypatch):
    "The check above on a planted notebook whose test cell uses a name no cell imports."
    import types
    nb = {"cells": [{"cell_type": "code", "source": ["from math import pi\n"]},
                    {"cell_type": "code", "source": ["assert sqrt(pi) > 1\n"]}]}
    (tmp_path / "nbs").mkdir(); (tmp_path / "nbs" / "x.ipynb").write_text(json.dumps(nb))
    (tmp_path / "tests").mkdir()
    fn = test_every_name_a_notebook_uses_is_defined_or_imported_in_it
    planted = types.FunctionType(fn.__code__, {**fn.__globals__, "__file__": str(tmp_path / "tests" / "t.py")})
    import pytest
    with pytest.raises(AssertionError, match="sqrt"):
        planted()
