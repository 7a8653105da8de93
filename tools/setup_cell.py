"""The first code cell of every notebook: figures inline, and latentgen installed where it is missing (Colab).

    python tools/setup_cell.py          # write the cell into every notebook of nbs/
    python tools/setup_cell.py --check  # exit 1 if a notebook's setup cell differs (tests/test_project.py runs this)

One text for all notebooks, with the repository address taken from `settings.ini`'s `git_url`, so the install cell,
the launch buttons (`_config.yml`), the README and the front page cannot disagree (the test checks those too).

Why `%matplotlib inline` here: a kernel started with `MPLBACKEND=Agg` in its environment (a Makefile, a user's shell)
keeps matplotlib on Agg, and a notebook executed that way displays no figure at all; the magic selects the inline
backend whatever the environment says, in Jupyter, in the book build, under nbval and in Colab.
"""
import argparse
import json
import sys
from configparser import ConfigParser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "# Setup (every notebook):"


def git_url(root: Path = ROOT) -> tuple[str, str]:
    "settings.ini's repository address and branch."
    cfg = ConfigParser(delimiters=["="])
    cfg.read(root / "settings.ini", encoding="utf-8")
    return cfg["DEFAULT"]["git_url"], cfg["DEFAULT"].get("branch", "main")


def setup_source(url: str, branch: str = "main") -> str:
    """The cell. latentgen is installed from its repository (it is not on the package index yet, and a package of the
    same name published there by someone else must never be installed by this cell): with git, else the branch's zip
    archive (a runtime without git). Each attempt's reason is shown when both fail. Afterwards (and when latentgen was
    already there) the cell checks that the package it imports is this project's."""
    return f'''{MARK} figures inline whatever MPLBACKEND says; latentgen from its repository where missing (Colab)
%matplotlib inline
import importlib, importlib.util, subprocess, sys
REPO = "{url}"   # settings.ini: git_url
if importlib.util.find_spec("latentgen") is None:
    why = []
    for target in (f"git+{{REPO}}", f"{{REPO}}/archive/refs/heads/{branch}.zip"):   # with git, else the zip archive
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"latentgen @ {{target}}"], capture_output=True, text=True)
        if r.returncode == 0:
            break
        why.append(f"pip install latentgen @ {{target}}: " + (r.stderr or r.stdout).strip()[-800:])
    else:
        raise RuntimeError("could not install latentgen from its repository.\\n" + "\\n".join(why) + "\\nWhat to do: check "
                           f"that this runtime reaches the internet and run this cell again, or run `pip install git+{{REPO}}`.")
    importlib.invalidate_caches()
try:   # the package imported must be this project's, not an unrelated one of the same name
    import latentgen; latentgen.__version__; from latentgen.train import Trainer
except (AttributeError, ImportError) as e:
    if isinstance(e, ImportError) and not (e.name or "").startswith("latentgen"): raise
    raise RuntimeError(f"an unrelated package named latentgen is installed ({{e}}): remove it with "
                       f"`pip uninstall -y latentgen`, then run this cell again to install {{REPO}}.") from None'''


def setup_index(nb: dict) -> int | None:
    "Index of the notebook's setup cell (the old install cell counts), or None."
    for i, c in enumerate(nb["cells"]):
        src = "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        if c["cell_type"] == "code" and (src.startswith(MARK) or 'find_spec("latentgen")' in src):
            return i
    return None


def main(argv=None) -> int:
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--check", action="store_true", help="report notebooks whose setup cell differs; change nothing")
    args = a.parse_args(argv)
    want = setup_source(*git_url())
    bad = []
    for path in sorted((ROOT / "nbs").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        i = setup_index(nb)
        have = None if i is None else "".join(nb["cells"][i]["source"])
        if have == want:
            continue
        bad.append(path.name)
        if not args.check:
            if i is None:
                raise SystemExit(f"{path}: no setup cell to replace; add one after the title")
            nb["cells"][i]["source"] = want.splitlines(keepends=True)
            path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if args.check and bad:
        print("setup cell differs from tools/setup_cell.py in: " + ", ".join(bad) + " (run: python tools/setup_cell.py)")
        return 1
    print(("rewrote " if bad else "all setup cells current") + (", ".join(bad) if bad else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
