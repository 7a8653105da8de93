"""Build the book from chapter runs already made, for example on a GPU: `make book-from-results PROFILE=gpu`.

    python tools/book_from_results.py [--profile gpu] [--results results] [--out _build/gpu] [--archive FILE [--unpack-only]]

A chapter run under a profile leaves its executed notebook beside its results file (the command in
`nbs/guide_running.md`: `jupyter execute --output ../results/<chapter>/<profile>/<notebook>.ipynb`). This script
assembles a book in `<out>/src` from the toolbox pages (executed here, as in every build; they are cheap) and, for
every chapter, the executed copy under `results/<chapter>/<profile>/` (not executed again); a chapter without one
keeps its source with a note on top that it has not been run under this profile. `--profile best` takes, per
chapter, the best committed profile (`gpu`, then `cpu`) and executes a chapter that has neither under `quick` in
the build, as the Pages workflow does. The dashboard is always executed in the build: it reads every results file
under `results/`, the committed profiles' included, and writes their verdicts (its one-budget table trains its own
small models; no chapter is trained unless `best` finds no copy of it). Every chapter page shown from a copy gets a
note at its top saying which profile and commit its numbers come from; a copy whose code has changed since (the
`code` digest of its results files, `latentgen.results.stale_report`) says so there, with the files that changed.
The book is rendered into `<out>/_build/html` with the same warnings-as-errors settings as `make book`. `--archive`
first puts an archive of `tools/gpu_run.sh` (a run on a GPU machine without internet) in place
(`tools/unpack_gpu_run.py`: checked member by member).
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


BEST = ("gpu", "cpu")     # --profile best: the first of these a chapter has a committed copy of


def short(commit: str | None) -> str:
    "A commit as a page shows it: 10 hex digits, and `+dirty` where the tree had uncommitted changes (the code digest says which)."
    c = commit or "?"
    return c[:10] + ("+dirty" if c.endswith("+dirty") else "")


def provenance_note(results: Path, chapter: str, profile: str) -> tuple[str, bool]:
    """The note on top of a page shown from `results/<chapter>/<profile>/` (markdown), and whether its numbers are
    stale: which commit and machine made them and in how long, and, where the code has changed since, which files."""
    from latentgen.results import load_results, stale_report
    recs = [(f, load_results(f)) for f in sorted((results / chapter / profile).glob("*.json"))]   # seals checked
    if not recs:
        return (f"```{{note}}\nThese outputs come from the `{profile}` profile; no results file lies beside them.\n```", False)
    made = "; ".join(f"`{f.name}`: commit {short(r.get('git_commit'))} on {r.get('device', '?')}"
                     + (f", {r['wall_time_s'] / 60:.0f} min" if r.get("wall_time_s") else "") for f, r in recs)
    stale = [(f, rep) for f, r in recs if (rep := stale_report(r)) is not None]
    if not stale:
        return (f"```{{note}}\nThe numbers on this page come from the `{profile}` profile, run before this build and "
                f"committed under `results/{chapter}/{profile}/` ({made}). The code they come from has not changed since.\n```", False)
    lines = []
    for f, rep in stale:
        what = ("it stored no code digest" if rep["changed"] is None else
                "changed since: " + ", ".join(f"`{c}`" for c in rep["changed"]))
        lines.append(f"`{f.name}` (commit {short(rep['commit'])}): {what}")
    return (f"```{{warning}}\n**Stale numbers.** This page shows the `{profile}` profile's committed run ({made}), and the "
            f"code has changed since it was made. " + "; ".join(lines) + ". Run the chapter again under this profile "
            "to bring the page up to date.\n```", True)


def note_cell(text: str, cid: str) -> dict:
    return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": [text]}


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("--profile", default="gpu", help="gpu, cpu, paper, or best (gpu, then cpu, else quick in the build)")
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
    best, used, missing, executed, stale = args.profile == "best", [], [], [], []
    for name, chapter in CHAPTERS.items():
        tries = () if chapter == "dashboard" else BEST if best else (args.profile,)   # the dashboard reads what is committed
        prof, done = next(((p, d) for p in tries if (d := executed_copy(results, chapter, p, name)) is not None), (None, None))
        if done is not None:
            nb = json.loads(done.read_text())
            text, old = provenance_note(results, chapter, prof)
            nb["cells"].insert(1, note_cell(text, "provnote"))
            (src / "nbs" / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
            used.append(f"{done.relative_to(results.parent) if results.parent in done.parents else done}" + (" (stale)" if old else ""))
            stale += [name] if old else []
        elif best or chapter == "dashboard":
            executed.append(name)      # run in this build under the quick profile, like `make book`
        else:
            nb = json.loads((src / "nbs" / f"{name}.ipynb").read_text())
            nb["cells"].insert(1, note_cell(f"```{{note}}\nThis page has not been run under the `{args.profile}` profile: no executed copy "
                                            f"at `results/{chapter}/{args.profile}/{name}.ipynb`. Its code is shown without outputs.\n```", "notrun00"))
            (src / "nbs" / f"{name}.ipynb").write_text(json.dumps(nb, indent=1))
            missing.append(name)
    cfg = (ROOT / "_config.yml").read_text()
    skip = "[" + ", ".join(f'"nbs/{n}.ipynb"' for n in CHAPTERS if n not in executed) + "]"
    cfg = cfg.replace("  exclude_patterns: []", f"  exclude_patterns: {skip}   # executed elsewhere (or not at all): shown as they are")
    if not best:
        cfg = cfg.replace(f'title: "latentgen', f'title: "[{args.profile} profile] latentgen', 1)
    assert "exclude_patterns: [" in cfg, "the execute section of _config.yml changed: update tools/book_from_results.py"
    (src / "_config.yml").write_text(cfg)
    print(f"{args.profile} book: executed copies {used or 'none'}; not run: {missing or 'none'}"
          + f"; executed here under quick: {executed or 'none'}" + (f"; STALE: {stale}" if stale else ""), flush=True)
    r = subprocess.run(["jupyter-book", "build", str(src), "--all", "-W", "-n", "--keep-going", "--path-output", str(out)],
                       env={"LATENTGEN_DATA": str(ROOT / "data"), **os.environ,   # the pages run from <out>/src/nbs
                            "LATENTGEN_PROFILE": "quick"})                          # the toolbox pages run on a CPU
    if r.returncode == 0:
        print(f"the {args.profile}-profile book: {out / '_build' / 'html' / 'index.html'}")
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
