"""Build the book from chapter runs already made, for example on a GPU: `make book-from-results PROFILE=gpu`.

    python tools/book_from_results.py [--profile gpu] [--results results] [--out _build/gpu] [--archive FILE [--unpack-only]]

A chapter run under a profile leaves its executed notebook beside its results file (the command in
`nbs/guide_running.md`: `jupyter execute --output ../results/<chapter>/<profile>/<notebook>.ipynb`). This script
assembles a book in `<out>/src` from the toolbox pages (executed here, as in every build; they are cheap) and, for
every chapter and the dashboard, the executed copy under `results/<chapter>/<profile>/` (not executed again); a
chapter without one keeps its source with a note on top that it has not been run under this profile. It then renders
`<out>/html` with the same warnings-as-errors settings as `make book`. No model is trained. `--archive` first puts an
archive of `tools/gpu_run.sh` (a run on a GPU machine without internet) in place (`tools/unpack_gpu_run.py`: checked
member by member).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = {"ch1_vae": "ch1", "ch2_cvae_nf": "ch2", "ch3_glf": "ch3", "ch4_hvae": "ch4", "results_dashboard": "dashboard"}


def executed_copy(results: Path, chapter: str, profile: str, name: str) -> Path | None:
    p = results / chapter / profile / f"{name}.ipynb"
    if not p.is_file():
        return None
    nb = json.loads(p.read_text())
    if not any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code"):
        raise SystemExit(f"{p} has no outputs: it is not an executed notebook")
    return p


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--profile", default="gpu")
    a.add_argument("--results", default=str(ROOT / "results"))
    a.add_argument("--out", default=None, help="default: _build/<profile>")
    a.add_argument("--archive", action="append", default=[],
                   help="first unpack this archive of tools/gpu_run.sh into --results (and benchmarks/results); repeatable")
    a.add_argument("--unpack-only", action="store_true", help="with --archive: unpack, do not build the book")
    args = a.parse_args(argv)
    if args.archive:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from unpack_gpu_run import BadArchive, describe, unpack
        try:
            for arc in args.archive:
                print(describe(arc, unpack(arc, args.results)), flush=True)
        except BadArchive as e:
            raise SystemExit(f"book_from_results: {e}")
        if args.unpack_only:
            return 0
    results, out = Path(args.results), Path(args.out or ROOT / "_build" / args.profile)
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    for item in ("_toc.yml", "_ext", "_static", "nbs"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, src / item)
    used, missing = [], []
    for name, chapter in CHAPTERS.items():
        done = executed_copy(results, chapter, args.profile, name)
        if done is not None:
            shutil.copy(done, src / "nbs" / f"{name}.ipynb")
            used.append(str(done.relative_to(results.parent) if results.parent in done.parents else done))
        else:
            nb = json.loads((src / "nbs" / f"{name}.ipynb").read_text())
            note = {"cell_type": "markdown", "id": "notrun00", "metadata": {},
                    "source": [f"```{{note}}\nThis page has not been run under the `{args.profile}` profile: no executed copy "
                               f"at `results/{chapter}/{args.profile}/{name}.ipynb`. Its code is shown without outputs.\n```"]}
            nb["cells"].insert(1, note)
            (src / "nbs" / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
            missing.append(name)
    cfg = (ROOT / "_config.yml").read_text()
    skip = "[" + ", ".join(f'"nbs/{n}.ipynb"' for n in CHAPTERS) + "]"
    cfg = cfg.replace("  exclude_patterns: []", f"  exclude_patterns: {skip}   # executed elsewhere (or not at all): shown as they are")
    cfg = cfg.replace(f'title: "latentgen', f'title: "[{args.profile} profile] latentgen', 1)
    assert "exclude_patterns: [" in cfg, "the execute section of _config.yml changed: update tools/book_from_results.py"
    (src / "_config.yml").write_text(cfg)
    print(f"{args.profile} book: executed copies {used or 'none'}; not run: {missing or 'none'}", flush=True)
    r = subprocess.run(["jupyter-book", "build", str(src), "--all", "-W", "-n", "--keep-going", "--path-output", str(out)],
                       env={"LATENTGEN_DATA": str(ROOT / "data"), **os.environ,   # the pages run from <out>/src/nbs
                            "LATENTGEN_PROFILE": "quick"})                          # the toolbox pages run on a CPU
    if r.returncode == 0:
        print(f"the {args.profile}-profile book: {out / '_build' / 'html' / 'index.html'}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
