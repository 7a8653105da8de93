"""Put the archive of a GPU run (`tools/gpu_run.sh ... --out DIR`) in place in the checkout, to be committed.

    python tools/unpack_gpu_run.py DIR/latentgen-<what>-<profile>-<stamp>.tar.gz [more archives]
                                   [--results results] [--benchmarks benchmarks/results] [--dry-run]

(also `python tools/book_from_results.py --archive FILE --unpack-only`). Members under `results/` go to `--results`
(`results/<chapter>/<profile>/`: the executed notebook, results JSON, figures, and `gpu-run/` with the log, nvidia-smi's
output and `run.json`, the archive's own record), members under `benchmarks/results/` to `--benchmarks`. Nothing is
written unless every member is a plain file under those two folders, listed in the archive's `gpu-run.json` with the
SHA-256 it has. A chapter that the deadline cut arrives as `<notebook>.partial.ipynb`, which the book does not show.
"""
import argparse
import hashlib
import json
import os
import sys
import tarfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("results/", "benchmarks/results/")


class BadArchive(ValueError):
    "An archive that is not a GPU run's, or that changed since it was packed."


def _target(rel: str, results: Path, benchmarks: Path) -> Path:
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not rel.startswith(PREFIXES):
        raise BadArchive(f"member {rel!r} is not under {' or '.join(PREFIXES)}")
    if rel.startswith("benchmarks/results/"):
        return benchmarks.joinpath(*p.parts[2:])
    return results.joinpath(*p.parts[1:])


def read_archive(archive: str | Path) -> tuple[dict, dict]:
    "The archive's record (`gpu-run.json`) and {member: bytes}, every member checked against the record."
    try:
        tf = tarfile.open(archive, "r:gz")
    except (tarfile.TarError, OSError) as e:
        raise BadArchive(f"{archive} is not a readable tar.gz ({e})") from None
    with tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        if "gpu-run.json" not in names:
            raise BadArchive(f"{archive} has no gpu-run.json: not an archive of tools/gpu_run.sh")
        record = json.loads(tf.extractfile("gpu-run.json").read())
        listed = record.get("files", {})
        if len(names) != len(set(names)):
            raise BadArchive(f"{archive} holds a member twice")
        unlisted = sorted(set(names) - set(listed) - {"gpu-run.json"})
        absent = sorted(set(listed) - set(names))
        if unlisted or absent:
            raise BadArchive(f"{archive}: members not in its record {unlisted[:3]}, recorded but absent {absent[:3]}")
        data = {}
        for m in members:
            if m.name == "gpu-run.json":
                continue
            if not m.isfile():
                raise BadArchive(f"{archive}: {m.name} is not a plain file")
            b = tf.extractfile(m).read()
            if hashlib.sha256(b).hexdigest() != listed[m.name]["sha256"]:
                raise BadArchive(f"{archive}: {m.name} does not match the SHA-256 in its record")
            data[m.name] = b
    return record, data


def unpack(archive, results=None, benchmarks=None, dry_run: bool = False) -> dict:
    """Check `archive` whole, then write its members under `results` / `benchmarks` and its record as
    `<meta dir>/run.json`; returns {"record", "written": [paths], "notebooks": {complete, partial}}."""
    results = Path(results) if results is not None else ROOT / "results"
    benchmarks = Path(benchmarks) if benchmarks is not None else ROOT / "benchmarks" / "results"
    record, data = read_archive(archive)
    plan = {_target(rel, results, benchmarks): b for rel, b in data.items()}
    if record.get("meta_dir"):
        plan[_target(record["meta_dir"].rstrip("/") + "/run.json", results, benchmarks)] = \
            json.dumps(record, indent=1).encode()
    written = []
    for path, b in sorted(plan.items()):
        if not dry_run:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
            tmp.write_bytes(b)
            os.replace(tmp, path)
        written.append(path)
    nbs = [p for p in written if p.suffix == ".ipynb"]
    return {"record": record, "written": written,
            "notebooks": {"complete": [p for p in nbs if not p.name.endswith(".partial.ipynb")],
                          "partial": [p for p in nbs if p.name.endswith(".partial.ipynb")]}}


def describe(archive, out: dict) -> str:
    r = out["record"]
    s = r.get("seconds", {})
    lines = [f"{archive}: {r.get('what')} at the {r.get('profile')} profile on {r.get('device')}: {r.get('status')} "
             f"(install {s.get('install')}s, data {s.get('data')}s, run {s.get('main')}s; deadline {r.get('deadline_s')}s)"]
    lines += [f"  wrote {p}" for p in out["written"]]
    for p in out["notebooks"]["partial"]:
        lines.append(f"  note: {p.name} is a cut run (not shown by the book); its finished cells are kept")
    for x in r.get("left_out", []):
        lines.append(f"  left out on the GPU machine: {x['path']} ({x['bytes']:,} bytes, {x['why']})")
    return "\n".join(lines)


def main(argv=None):
    a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a.add_argument("archive", nargs="+")
    a.add_argument("--results", default=None, help="default: results/ in the checkout")
    a.add_argument("--benchmarks", default=None, help="default: benchmarks/results/ in the checkout")
    a.add_argument("--dry-run", action="store_true", help="check and list, write nothing")
    args = a.parse_args(argv)
    try:
        for arc in args.archive:
            print(describe(arc, unpack(arc, args.results, args.benchmarks, args.dry_run)))
    except BadArchive as e:
        print(f"unpack_gpu_run: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
