"""The GPU run kit: what a GPU machine without internet lacks, to copy there with the checkout (`make gpu-kit`).

    python tools/gpu_kit.py build [--kit .gpu-kit] [--source ../shared/data] [--python-version 3.12]   # with internet
    python tools/gpu_kit.py install --kit .gpu-kit --target DIR          # there: the wheels, offline, into DIR
    python tools/gpu_kit.py prepare-data --kit .gpu-kit [--root data]    # there: data/ as `latentgen data prepare` makes it
    python tools/gpu_kit.py execute NB.ipynb --output OUT.ipynb --deadline-s N   # there: a notebook, saved cell by cell
    python tools/gpu_kit.py snapshot DIR --out F.json; ... pack --stage DIR --out DIR --name NAME ...   # there: the archive

The GPU machine is expected to have CPython 3.12 (`--python-version`) on Linux x86_64 with torch, torchvision, numpy,
scipy, scikit-learn, matplotlib, tqdm and pillow (`MACHINE_HAS`), and no network. The kit (`.gpu-kit/`, git-ignored:
copy it there with the checkout) holds

* `wheels/`: the other runtime and `[book]` requirements of `settings.ini` (normflows, torch-fidelity, fastcore,
  nbclient, nbformat, ipykernel) and their dependencies, one version each, at the versions installed here, as cp312 / py3 manylinux
  x86_64 wheels; nothing that the machine has (torch, numpy, ... and their dependencies);
* `data/MNIST/raw/`: the offline MNIST test split, the same IDX files as `../shared/data`;
* `data/cifar10-jpg.tar.gz`: all 60,000 JPEGs of the offline CIFAR-10 copy, byte for byte (the 62 MB zip stores
  them uncompressed; 70% of every 32x32 JPEG is the same header, which gzip removes: about 18 MiB). Nothing is
  subsampled: `prepare-data` unpacks it into `data/cifar10-jpg/{train,test}/<class>/*.jpg`, the layout `latentgen data
  prepare` extracts, and checks it against the digest recorded at build time, so the chapters run unchanged;
* `manifest.json`: the SHA-256 and size of every kit file, the pinned versions, the data's counts and digest.

`build` stops when checkout + kit exceed `TRAVEL_LIMIT` and `pack` when an archive exceeds `ARCHIVE_LIMIT`: defaults
that keep each copy one small transfer; change them if yours allows more. The book page `nbs/guide_gpu_offline.md`
describes the whole round trip.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIB = 2 ** 20
TRAVEL_LIMIT = 64 * MIB          # default ceiling for what is copied: tracked + untracked files + the kit
ARCHIVE_LIMIT = 16 * MIB         # default ceiling for one run's archive (what is copied back)
# what the GPU machine is expected to have installed (with their dependencies); the kit never ships these
MACHINE_HAS = ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "tqdm", "pillow")
NEVER = ("pip", "setuptools", "wheel")
# pip matches manylinux_2_N exactly: every N up to that of current torch wheels (manylinux_2_28, glibc 2.28)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_26_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_12_x86_64", "manylinux2010_x86_64",
             "manylinux_2_5_x86_64", "manylinux1_x86_64")
CIFAR_TAR = "cifar10-jpg.tar.gz"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------------------- wheels
def runtime_requirements() -> list[str]:
    """The `requirements` and `book_requirements` lines of settings.ini: the package's runtime requirements and the
    `[book]` extra, which executes the notebooks (nbclient, nbformat, ipykernel)."""
    import configparser
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return cfg["DEFAULT"]["requirements"].split() + cfg["DEFAULT"].get("book_requirements", "").split()


def target_env(python_version: str) -> dict:
    "Marker environment of the GPU machine: CPython `python_version` on Linux x86_64."
    return {"python_version": python_version, "python_full_version": f"{python_version}.0", "os_name": "posix",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "platform_python_implementation": "CPython", "implementation_name": "cpython",
            "implementation_version": f"{python_version}.0", "platform_release": "", "platform_version": "", "extra": ""}


def closure(names, env: dict, stop=()) -> tuple[dict, list]:
    """The dependency closure of `names` in this environment's installed metadata, for the marker environment `env`:
    {canonical name: [requirement strings that asked for it]}, and the names not installed here (not followed).
    The dependencies of the packages in `stop` are not followed."""
    import importlib.metadata as md
    from packaging.requirements import Requirement
    seen, todo, absent = {}, [(n, n) for n in names], []
    while todo:
        spec, asked_by = todo.pop()
        req = Requirement(spec)
        key = canon(req.name)
        first = key not in seen
        seen.setdefault(key, []).append(str(req.specifier))
        if not first or key in stop:
            continue
        try:
            requires = md.requires(req.name) or []
        except md.PackageNotFoundError:
            absent.append(key)
            continue
        for r in requires:
            rr = Requirement(r)
            if rr.marker is not None and not rr.marker.evaluate(env):
                continue
            todo.append((f"{rr.name}{rr.specifier}", key))
    return seen, absent


def wheel_plan(python_version: str) -> list[dict]:
    """The packages the GPU machine lacks: settings.ini's runtime requirements and their dependencies, less what the
    machine has and its dependencies; each pinned to the version installed here (what the tests ran with)."""
    import importlib.metadata as md
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    env = target_env(python_version)
    reqs = [Requirement(r) for r in runtime_requirements()]
    roots = [str(r) for r in reqs if canon(r.name) not in MACHINE_HAS]
    have, _ = closure(MACHINE_HAS, env)
    need, absent = closure(roots, env, stop=MACHINE_HAS)
    # small pure-Python packages that the machine has through torch or matplotlib but that the kit's packages need at
    # a minimum version (typing-extensions, packaging, python-dateutil, ...): shipped too, so that an older copy there
    # cannot break the kernel; they come first on PYTHONPATH
    shadow = {k for k in set(need) & set(have) - set(MACHINE_HAS) - set(NEVER) if _purelib(k)}
    plan = []
    for key in sorted(set(need) - set(have) - set(NEVER) | shadow):
        spec = SpecifierSet(",".join(s for s in need[key] if s))
        try:
            version = md.version(key)
        except md.PackageNotFoundError:
            version = None
        if version is not None and spec.contains(version, prereleases=True):
            plan.append({"name": key, "pin": f"{key}=={version}", "why": "version installed here"})
        else:
            plan.append({"name": key, "pin": f"{key}{spec}", "why": "not installed here: newest matching wheel"})
    missing_roots = [canon(Requirement(r).name) for r in roots if canon(Requirement(r).name) in absent]
    if missing_roots:
        raise SystemExit(f"gpu-kit: {', '.join(missing_roots)} not installed here: run `pip install -e \".[dev]\"` first "
                         "(the kit pins the versions the tests ran with)")
    return plan


def _purelib(name: str) -> bool:
    import importlib.metadata as md
    try:
        return "Root-Is-Purelib: true" in (md.distribution(name).read_text("WHEEL") or "")
    except md.PackageNotFoundError:
        return False


def wheel_tags(filename: str) -> tuple[str, str, str, str, str]:
    "(name, version, python tag, abi tag, platform tag) of a wheel file name."
    parts = filename[:-len(".whl")].split("-")
    if len(parts) == 6:                     # a build tag
        parts = parts[:2] + parts[3:]
    if len(parts) != 5:
        raise ValueError(f"{filename} is not a wheel file name")
    return tuple(parts)


def wheel_fits(filename: str, python_version: str) -> bool:
    "Whether a wheel installs on CPython `python_version` on Linux x86_64 (manylinux)."
    _, _, py, abi, plat = wheel_tags(filename)
    cp = "cp" + python_version.replace(".", "")
    minor = int(python_version.split(".")[1])
    py_ok = any(t in (cp, "py3", f"py3{minor}") or (abi == "abi3" and re.fullmatch(r"cp3(\d+)", t) and
                                                      int(t[3:]) <= minor) for t in py.split("."))
    abi_ok = any(a in ("none", "abi3", cp) for a in abi.split("."))
    plat_ok = any(p == "any" or (p.startswith("manylinux") and p.endswith("_x86_64")) for p in plat.split("."))
    return py_ok and abi_ok and plat_ok


def download_wheels(plan: list[dict], dest: Path, python_version: str) -> list[Path]:
    """pip download of every pinned wheel for CPython `python_version` on manylinux x86_64; a package published only as
    a source distribution (normflows) is built into a wheel here, which must then be pure Python (py3-none-any)."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    binary, source = [p["pin"] for p in plan], []
    base = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    for _ in range(8):
        cmd = [*base, "download", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
               "--implementation", "cp", "--abi", "cp" + python_version.replace(".", ""),
               *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(dest), *binary]
        print(f"gpu-kit: pip download --only-binary=:all: --python-version {python_version} ... {len(binary)} packages",
              flush=True)
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode == 0:
            break
        miss = re.search(r"No matching distribution found for (\S+)", r.stderr)
        if not miss or miss.group(1) not in binary:
            raise SystemExit(f"gpu-kit: pip download failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
        binary.remove(miss.group(1))         # no wheel on the index: build one from its source distribution
        source.append(miss.group(1))
    else:
        raise SystemExit("gpu-kit: pip download failed for too many packages")
    for pin in source:
        print(f"gpu-kit: {pin} has no wheel on the index: pip wheel --no-deps (must give a pure-Python wheel)", flush=True)
        with_tmp = dest / ".build"
        shutil.rmtree(with_tmp, ignore_errors=True)
        r = subprocess.run([*base, "wheel", "--no-deps", "-w", str(with_tmp), pin], capture_output=True, text=True)
        built = sorted(with_tmp.glob("*.whl")) if r.returncode == 0 else []
        if len(built) != 1 or wheel_tags(built[0].name)[3:] != ("none", "any") or "py3" not in wheel_tags(built[0].name)[2]:
            raise SystemExit(f"gpu-kit: {pin}: no pure-Python wheel could be built ({[b.name for b in built]}):\n"
                             f"{r.stderr[-2000:]}")
        shutil.move(str(built[0]), dest / built[0].name)
        shutil.rmtree(with_tmp, ignore_errors=True)
    wheels = sorted(dest.glob("*.whl"))
    names = [canon(wheel_tags(w.name)[0]) for w in wheels]
    dup = sorted({n for n in names if names.count(n) > 1})
    missing = sorted({p["name"] for p in plan} - set(names))
    bad = [w.name for w in wheels if not wheel_fits(w.name, python_version)]
    if dup or missing or bad:
        raise SystemExit(f"gpu-kit: wheels wrong: duplicated {dup}, missing {missing}, not for CPython "
                         f"{python_version} manylinux x86_64 {bad}")
    return wheels


# ------------------------------------------------------------------------------------------------------------ data
def cifar_sources(source: Path):
    "The JPEG members of the offline CIFAR-10 copy in `source` (a zip or a folder): sorted [(name, reader)]."
    z = source / "cifar10-jpg.zip"
    if z.is_file():
        zf = zipfile.ZipFile(z)
        members = sorted(i.filename for i in zf.infolist() if i.filename.lower().endswith(".jpg"))
        return members, zf.read, f"{z} ({z.stat().st_size:,} bytes)"
    d = source / "cifar10-jpg"
    if (d / "train").is_dir() and (d / "test").is_dir():
        members = sorted(str(p.relative_to(d)).replace(os.sep, "/") for p in d.glob("*/*/*.jpg"))
        return members, lambda n: (d / n).read_bytes(), str(d)
    raise SystemExit(f"gpu-kit: no offline CIFAR-10 in {source} (cifar10-jpg.zip or cifar10-jpg/{{train,test}}/)")


def members_digest(items) -> str:
    "One SHA-256 over the sorted (name, SHA-256 of the bytes) of a JPEG tree: equal trees, equal digests."
    h = hashlib.sha256()
    for name, digest in sorted(items):
        h.update(f"{name}\t{digest}\n".encode())
    return h.hexdigest()


def check_counts(counts: dict):
    for split in ("train", "test"):
        got = sorted(counts.get(split, {}))
        if got != sorted(CIFAR_CLASSES):
            raise SystemExit(f"gpu-kit: CIFAR-10 {split} has classes {got}, expected the ten of CIFAR-10")


def pack_cifar(source: Path, out: Path) -> dict:
    "All JPEGs of the offline CIFAR-10, byte for byte, in one deterministic tar.gz; returns counts and digest."
    members, read, where = cifar_sources(source)
    counts, items, nbytes = {}, [], 0
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tf:   # the same bytes every build
            for name in members:
                split, cls, _ = name.split("/")
                data = read(name)
                counts.setdefault(split, {}).setdefault(cls, 0)
                counts[split][cls] += 1
                items.append((name, hashlib.sha256(data).hexdigest()))
                nbytes += len(data)
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode = len(data), 0, 0o644
                tf.addfile(ti, io.BytesIO(data))
    os.replace(tmp, out)
    check_counts(counts)
    return {"file": f"data/{CIFAR_TAR}", "source": where, "n": {s: sum(c.values()) for s, c in counts.items()},
            "per_class": counts, "members_sha256": members_digest(items),
            "jpeg_bytes": nbytes, "tar_gz_bytes": out.stat().st_size}


def source_fingerprint(source: Path) -> list:
    source = source.resolve()
    files = [source / "cifar10-jpg.zip", *sorted((source / "MNIST" / "raw").glob("*-ubyte*"))]
    return [[str(f), f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.is_file()]


# --------------------------------------------------------------------------------------------------------- sizes
def travel_size() -> dict:
    "Bytes of what travels besides the kit: tracked files and untracked files that git does not ignore."
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return {"bytes": None, "files": None}
    files = [ROOT / f for f in out.split("\0") if f]
    sizes = [f.stat().st_size for f in files if f.is_file() and not f.is_symlink()]
    return {"bytes": sum(sizes), "files": len(sizes)}


def kit_files(kit: Path) -> list[Path]:
    return sorted(p for p in kit.rglob("*") if p.is_file() and p.name != "manifest.json" and not p.name.startswith("."))


# --------------------------------------------------------------------------------------------------------- build
def cmd_build(a):
    kit = Path(a.kit)
    kit.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    old = json.loads((kit / "manifest.json").read_text()) if (kit / "manifest.json").is_file() else {}
    manifest = {"kit": 1, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "python_version": a.python_version, "platforms": list(PLATFORMS), "machine_has": list(MACHINE_HAS),
                "git_commit": _git(["rev-parse", "HEAD"]), "built_with": sys.version.split()[0]}
    if not a.no_wheels:
        plan = wheel_plan(a.python_version)
        wheels = download_wheels(plan, kit / "wheels", a.python_version)
        manifest["wheels"] = [{"file": f"wheels/{w.name}", "name": canon(wheel_tags(w.name)[0]),
                               "version": wheel_tags(w.name)[1]} for w in wheels]
        manifest["requirements"] = [p["pin"] for p in plan]
    else:
        shutil.rmtree(kit / "wheels", ignore_errors=True)
    if not a.no_data:
        source = Path(a.source)
        raw = source / "MNIST" / "raw"
        mnist = sorted(raw.glob("*-ubyte*")) if raw.is_dir() else []
        if not mnist:
            raise SystemExit(f"gpu-kit: no MNIST IDX files in {raw}")
        shutil.rmtree(kit / "data" / "MNIST", ignore_errors=True)
        (kit / "data" / "MNIST" / "raw").mkdir(parents=True)
        for f in mnist:
            shutil.copyfile(f, kit / "data" / "MNIST" / "raw" / f.name)
        fp = source_fingerprint(source)
        tar = kit / "data" / CIFAR_TAR
        cifar = old.get("data", {}).get("cifar10")
        if not (cifar and old.get("data", {}).get("source_fingerprint") == fp and tar.is_file()
                and old.get("sha256", {}).get(f"data/{CIFAR_TAR}") == sha256(tar)):
            print(f"gpu-kit: packing CIFAR-10 from {source} ...", flush=True)
            cifar = pack_cifar(source, tar)
        else:
            print("gpu-kit: CIFAR-10 tar unchanged (same source files), kept", flush=True)
        manifest["data"] = {"mnist": [f"data/MNIST/raw/{f.name}" for f in mnist], "cifar10": cifar,
                            "source_fingerprint": fp, "subset": None,
                            "note": "the whole offline copy: MNIST t10k (10,000) and CIFAR-10 (50,000 train + 10,000 test "
                                    "JPEGs, q75 upstream), byte for byte; the gpu profile reads it as it reads data/"}
    else:
        shutil.rmtree(kit / "data", ignore_errors=True)
    files = kit_files(kit)
    manifest["sha256"] = {str(f.relative_to(kit)).replace(os.sep, "/"): sha256(f) for f in files}
    manifest["bytes"] = {str(f.relative_to(kit)).replace(os.sep, "/"): f.stat().st_size for f in files}
    atomic_write(kit / "manifest.json", json.dumps(manifest, indent=1).encode())
    report = size_report(kit, manifest)
    manifest["sizes"] = report
    atomic_write(kit / "manifest.json", json.dumps(manifest, indent=1).encode())
    print(f"gpu-kit: {kit} built in {time.perf_counter() - t0:.0f}s", flush=True)
    if report["total_bytes"] is not None and report["total_bytes"] > TRAVEL_LIMIT:
        raise SystemExit(f"gpu-kit: repository + kit = {report['total_bytes'] / MIB:.1f} MiB, "
                         f"over TRAVEL_LIMIT ({TRAVEL_LIMIT / MIB:.0f} MiB)")


def size_report(kit: Path, manifest: dict) -> dict:
    b = manifest["bytes"]
    wheels = sum(v for k, v in b.items() if k.startswith("wheels/"))
    mnist = sum(v for k, v in b.items() if k.startswith("data/MNIST/"))
    cifar = b.get(f"data/{CIFAR_TAR}", 0)
    man = (kit / "manifest.json").stat().st_size
    repo = travel_size()
    kit_total = wheels + mnist + cifar + man
    total = None if repo["bytes"] is None else repo["bytes"] + kit_total
    rows = [("repository (tracked + untracked, not ignored)", repo["bytes"], f"{repo['files']} files"),
            ("kit wheels", wheels, f"{sum(k.startswith('wheels/') for k in b)} wheels"),
            ("kit MNIST test split (IDX gz)", mnist, ""),
            ("kit CIFAR-10 60,000 JPEGs (tar.gz)", cifar, ""),
            ("kit manifest", man, ""),
            ("total that travels", total,
             f"limit {TRAVEL_LIMIT / MIB:.0f} MiB, margin {(TRAVEL_LIMIT - total) / MIB:.1f} MiB" if total else "")]
    print("gpu-kit sizes:")
    for what, n, note in rows:
        print(f"  {what:48s} {'?' if n is None else f'{n / MIB:6.2f} MiB'}  {note}")
    return {"repository_bytes": repo["bytes"], "wheels_bytes": wheels, "mnist_bytes": mnist, "cifar10_bytes": cifar,
            "kit_bytes": kit_total, "total_bytes": total, "limit_bytes": TRAVEL_LIMIT}


def _git(args) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


# ------------------------------------------------------------------------------------------------------- verify
def load_manifest(kit: Path, check=True) -> dict:
    "The kit's manifest; `check`: every file it lists is present with its recorded SHA-256."
    m = kit / "manifest.json"
    if not m.is_file():
        raise SystemExit(f"gpu-kit: no kit at {kit} (run `make gpu-kit` on a machine with internet and the offline data, "
                         "and copy .gpu-kit here with the checkout)")
    manifest = json.loads(m.read_text())
    if check:
        bad = [f for f, h in manifest["sha256"].items() if not (kit / f).is_file() or sha256(kit / f) != h]
        if bad:
            raise SystemExit(f"gpu-kit: {len(bad)} kit file(s) missing or changed since the build: {bad[:5]}")
    return manifest


# ------------------------------------------------------------------------------------------------------ install
def cmd_install(a):
    "Install the kit's wheels offline into `--target` (a folder for PYTHONPATH); pip when present, else unzip."
    kit, target = Path(a.kit), Path(a.target)
    manifest = load_manifest(kit)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if manifest.get("python_version") != here:
        raise SystemExit(f"gpu-kit: the kit's wheels are for Python {manifest.get('python_version')}, this is {here}: "
                         f"rebuild it with `python tools/gpu_kit.py build --python-version {here}`")
    wheels = [kit / w["file"] for w in manifest.get("wheels", [])]
    if not wheels:
        raise SystemExit(f"gpu-kit: {kit} has no wheels")
    stamp = target / ".kit-manifest-sha256"
    want = sha256(kit / "manifest.json")
    if stamp.is_file() and stamp.read_text().strip() == want:
        print(f"gpu-kit: {len(wheels)} wheels already installed in {target}")
        return
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    t0 = time.perf_counter()
    has_pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if has_pip:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-index",
                            "--no-deps", "--no-warn-script-location", "--no-compile", "--target", str(target),
                            *map(str, wheels)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"gpu-kit: pip install failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    else:                                        # no pip: a wheel is a zip of the installed tree
        for w in wheels:
            with zipfile.ZipFile(w) as z:
                z.extractall(target)
            for data in target.glob("*.data"):
                for sub in ("purelib", "platlib"):
                    if (data / sub).is_dir():
                        shutil.copytree(data / sub, target, dirs_exist_ok=True)
                shutil.rmtree(data)
    stamp.write_text(want)
    print(f"gpu-kit: {len(wheels)} wheels installed into {target} with {'pip' if has_pip else 'unzip'} "
          f"in {time.perf_counter() - t0:.0f}s (offline)")


# ------------------------------------------------------------------------------------------------- prepare-data
def jpeg_tree_digest(d: Path) -> tuple[str, dict]:
    items, counts = [], {}
    for p in d.glob("*/*/*.jpg"):
        split, cls, name = p.relative_to(d).parts
        counts.setdefault(split, {}).setdefault(cls, 0)
        counts[split][cls] += 1
        items.append((f"{split}/{cls}/{name}", hashlib.sha256(p.read_bytes()).hexdigest()))
    return members_digest(items), counts


def _data_root(root) -> Path:
    if root:
        return Path(root)
    return Path(os.environ["LATENTGEN_DATA"]) if os.environ.get("LATENTGEN_DATA") else ROOT / "data"


def cmd_prepare_data(a):
    """MNIST with latentgen's own `prepare_offline` (copied and verified), CIFAR-10 unpacked from the tar into
    `<root>/cifar10-jpg/`, the tree `latentgen data prepare` extracts from the zip; both checked against the manifest."""
    kit, root = Path(a.kit), _data_root(a.root)
    manifest = load_manifest(kit, check=False)
    data = manifest.get("data")
    if not data:
        raise SystemExit(f"gpu-kit: {kit} was built without data (--no-data)")
    for f in [*data["mnist"], data["cifar10"]["file"]]:
        if sha256(kit / f) != manifest["sha256"][f]:
            raise SystemExit(f"gpu-kit: {kit / f} differs from the manifest")
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from latentgen.offline import prepare_offline
    for line in prepare_offline(kit / "data", root)["actions"]:
        print(f"gpu-kit: {line}")
    want = data["cifar10"]["members_sha256"]
    dest = root / "cifar10-jpg"
    if dest.is_dir() and jpeg_tree_digest(dest)[0] == want:
        print(f"gpu-kit: CIFAR-10: {dest} already holds the kit's {sum(data['cifar10']['n'].values()):,} JPEGs "
              "(digest checked)")
    else:
        tmp = root / ".cifar10-jpg.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(kit / data["cifar10"]["file"]) as tf:
            for m in tf:
                if not m.isfile() or m.name.startswith("/") or ".." in m.name.split("/") or m.name.count("/") != 2:
                    raise SystemExit(f"gpu-kit: unexpected member {m.name!r} in the CIFAR-10 tar")
            tf.extractall(tmp, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        digest, counts = jpeg_tree_digest(tmp)
        if digest != want or counts != data["cifar10"]["per_class"]:
            raise SystemExit("gpu-kit: the unpacked CIFAR-10 does not match the manifest (disk full?)")
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        print(f"gpu-kit: CIFAR-10: unpacked {sum(data['cifar10']['n'].values()):,} JPEGs into {dest} (digest checked)")
    print(f"gpu-kit: data ready in {root} ({time.perf_counter() - t0:.0f}s)")


# ------------------------------------------------------------------------------------------------------ execute
def cmd_execute(a):
    """Execute a notebook like `jupyter execute --output`, stopping at a deadline. After every cell the notebook so far
    is saved as `<output stem>.partial.ipynb`; a complete run replaces it with `<output>`. Exit 0 complete, 3 deadline,
    4 a cell failed."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    src, out = Path(a.notebook), Path(a.output)
    partial = out.with_name(out.stem + ".partial.ipynb")
    deadline = time.monotonic() + a.deadline_s
    nb = nbformat.read(src, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    done, t0 = [], time.perf_counter()

    def save(path):
        atomic_write(path, nbformat.writes(nb).encode())

    def executed(cell=None, cell_index=None, execute_reply=None, **_):
        done.append(cell_index)
        save(partial)
        print(f"gpu-kit: {src.name}: code cell {len(done)}/{len(code)} done at {time.perf_counter() - t0:.0f}s", flush=True)

    client = NotebookClient(nb, timeout=None, kernel_name=a.kernel, allow_errors=False,
                            resources={"metadata": {"path": str(src.resolve().parent)}},
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            on_cell_executed=executed)
    status, error = "complete", None
    try:
        client.execute()
    except CellTimeoutError:
        status, error = "deadline", f"stopped at the deadline ({a.deadline_s:.0f}s) in cell {len(done) + 1} of {len(code)}"
    except (CellExecutionError, DeadKernelError) as e:
        lines = [l for l in str(e).strip().splitlines() if l.strip()]
        status, error = "error", lines[-1] if lines else type(e).__name__
    seconds = time.perf_counter() - t0
    if status == "complete":
        save(out)
        partial.unlink(missing_ok=True)
    else:
        note = nbformat.v4.new_markdown_cell(f"```{{warning}}\nThis run did not finish: {error}. The cells above ran; "
                                             "the rest did not.\n```")
        nb.cells.insert(0, note)
        save(partial)
    print(f"gpu-kit: {src.name}: {status} after {seconds:.0f}s ({len(done)} of {len(code)} code cells)"
          + (f": {error}" if error else "") + f"; wrote {out if status == 'complete' else partial}", flush=True)
    if a.status:
        atomic_write(Path(a.status), json.dumps({"notebook": str(src), "status": status, "error": error,
                                                 "seconds": round(seconds, 1), "cells_done": len(done),
                                                 "cells_total": len(code)}, indent=1).encode())
    return {"complete": 0, "deadline": 3, "error": 4}[status]


# ---------------------------------------------------------------------------------------------------------- pack
PRIORITY = [(r"(^|/)gpu-run[^/]*/", 0), (r"\.json$", 1), (r"\.ipynb$", 2), (r"\.(png|svg|pdf)$", 3), (r".", 4)]
LEFT_OUT = re.compile(r"\.(pt|ckpt|pth)$")      # model weights: large, not packed (the run records their SHA-256)


def priority(rel: str) -> int:
    return next(p for pat, p in PRIORITY if re.search(pat, rel))


def tree_state(d: Path) -> dict:
    "{relative path: [size, mtime_ns]} of the files under `d`."
    return {str(p.relative_to(d)).replace(os.sep, "/"): [p.stat().st_size, p.stat().st_mtime_ns]
            for p in d.rglob("*") if p.is_file() and not p.is_symlink()} if d.is_dir() else {}


def cmd_snapshot(a):
    "Record the files under a folder before a run, so that `pack --baseline` takes only what the run wrote."
    atomic_write(Path(a.out), json.dumps(tree_state(Path(a.folder))).encode())


def cmd_pack(a):
    """One tar.gz of a run: the files under `--stage` (paths relative to the repository: `results/...`,
    `benchmarks/results/...`) plus the files of `--collect SRC=PREFIX` that the run wrote (not in `--baseline` as they
    are), with `gpu-run.json`
    (what ran, status, times, SHA-256 of every member, what was left out and why) at its top."""
    stage, outdir = Path(a.stage), Path(a.out)
    before = json.loads(Path(a.baseline).read_text()) if a.baseline else {}
    files = {}
    for p in stage.rglob("*"):
        if p.is_file() and not p.is_symlink():
            files[str(p.relative_to(stage)).replace(os.sep, "/")] = p
    for spec in a.collect or []:
        src, prefix = spec.split("=", 1)
        for rel, state in tree_state(Path(src)).items():
            if before.get(rel) != state:              # written or changed by the run
                files[f"{prefix.rstrip('/')}/{rel}"] = Path(src) / rel
    bad = [r for r in files if not (r.startswith("results/") or r.startswith("benchmarks/results/"))]
    if bad:
        raise SystemExit(f"gpu-kit: pack: {bad[:3]} are not under results/ or benchmarks/results/")
    left = []
    for rel in sorted(files):
        if LEFT_OUT.search(rel):
            p = files.pop(rel)
            left.append({"path": rel, "bytes": p.stat().st_size, "sha256": sha256(p), "why": "model weights (not brought back)"})
    budget = a.limit_mib * MIB
    order = sorted(files, key=lambda r: (priority(r), files[r].stat().st_size))
    kept, total = [], 0
    for rel in order:
        n = files[rel].stat().st_size
        if total + n <= budget:
            kept.append(rel)
            total += n
        else:
            left.append({"path": rel, "bytes": n, "sha256": sha256(files[rel]), "why": f"over the {a.limit_mib} MiB archive budget"})
    info = json.loads(Path(a.info).read_text()) if a.info else {}
    manifest = {**info, "archive_format": 1, "packed_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "files": {r: {"sha256": sha256(files[r]), "bytes": files[r].stat().st_size} for r in sorted(kept)},
                "left_out": left}
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / f"{a.name}.tar.gz"
    tmp = outdir / f".{a.name}.tmp"
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        data = json.dumps(manifest, indent=1).encode()
        ti = tarfile.TarInfo("gpu-run.json"); ti.size, ti.mtime = len(data), int(time.time())
        tf.addfile(ti, io.BytesIO(data))
        for rel in sorted(kept):
            tf.add(files[rel], arcname=rel, recursive=False)
    os.replace(tmp, path)
    size = path.stat().st_size
    print(f"gpu-kit: archive {path} ({size / MIB:.2f} MiB, {len(kept)} files"
          + (f"; left out {len(left)}: {', '.join(l['path'].split('/')[-1] for l in left[:4])}" if left else "") + ")")
    if size > ARCHIVE_LIMIT:
        raise SystemExit(f"gpu-kit: {path} is over ARCHIVE_LIMIT ({ARCHIVE_LIMIT / MIB:.0f} MiB)")


# ---------------------------------------------------------------------------------------------------------- main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="wheels + data + manifest (needs internet and the offline data of --source)")
    b.add_argument("--kit", default=str(ROOT / ".gpu-kit"))
    b.add_argument("--source", default=str(ROOT.parent / "shared" / "data"), help="offline data: MNIST/raw, cifar10-jpg.zip")
    b.add_argument("--python-version", default="3.12", help="the GPU machine's Python (default 3.12)")
    b.add_argument("--no-wheels", action="store_true")
    b.add_argument("--no-data", action="store_true")
    b.set_defaults(func=cmd_build)
    i = sub.add_parser("install", help="the kit's wheels, offline, into a folder for PYTHONPATH")
    i.add_argument("--kit", default=str(ROOT / ".gpu-kit"))
    i.add_argument("--target", required=True)
    i.set_defaults(func=cmd_install)
    d = sub.add_parser("prepare-data", help="data/ from the kit, as `latentgen data prepare` makes it")
    d.add_argument("--kit", default=str(ROOT / ".gpu-kit"))
    d.add_argument("--root", default=None, help="default: $LATENTGEN_DATA, else data/ in the checkout")
    d.set_defaults(func=cmd_prepare_data)
    e = sub.add_parser("execute", help="execute a notebook with a deadline, saving it cell by cell")
    e.add_argument("notebook")
    e.add_argument("--output", required=True)
    e.add_argument("--deadline-s", type=float, required=True)
    e.add_argument("--kernel", default="python3")
    e.add_argument("--status", default=None, help="write the outcome as JSON here")
    e.set_defaults(func=cmd_execute)
    n = sub.add_parser("snapshot", help="record the files of a folder before a run (for pack --baseline)")
    n.add_argument("folder")
    n.add_argument("--out", required=True)
    n.set_defaults(func=cmd_snapshot)
    k = sub.add_parser("pack", help="one archive of a run")
    k.add_argument("--stage", required=True)
    k.add_argument("--collect", action="append", help="SRC=PREFIX: the files under SRC that differ from --baseline")
    k.add_argument("--baseline", default=None, help="a `snapshot` of SRC taken before the run")
    k.add_argument("--info", default=None, help="a JSON file whose keys go into gpu-run.json")
    k.add_argument("--out", required=True)
    k.add_argument("--name", required=True)
    k.add_argument("--limit-mib", type=float, default=15.5)
    k.set_defaults(func=cmd_pack)
    a = p.parse_args(argv)
    return a.func(a) or 0


if __name__ == "__main__":
    sys.exit(main())
