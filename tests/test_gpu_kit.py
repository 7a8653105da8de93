"""The GPU run kit on a CPU: `make gpu-kit` (tools/gpu_kit.py), `tools/gpu_run.sh` and the unpacking of its archive
(tools/unpack_gpu_run.py, `book_from_results.py --archive`).

The kit's wheels are downloaded from the package index; where that fails (no network) the tests that need them are
skipped, saying so. The end-to-end run executes a chapter notebook (minutes), so it carries the `book` mark: `make test`
runs it, `make unit` does not."""
import glob
import hashlib
import importlib.metadata as md
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tools"))
import gpu_kit                      # noqa: E402
import unpack_gpu_run               # noqa: E402
from book_from_results import executed_copy   # noqa: E402

MACHINE_HAS = {"torch", "torchvision", "numpy", "scipy", "scikit-learn", "matplotlib", "tqdm", "pillow"}


def text(outputs) -> str:
    "The stream text of a cell's outputs (nbformat stores it as a string or a list of lines)."
    t = [o.get("text", "") for o in outputs]
    return "".join("".join(x) if isinstance(x, list) else x for x in t)


def canon(n):
    return n.replace("_", "-").replace(".", "-").lower()


def build_kit(kit: Path, *args) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "tools/gpu_kit.py", "build", "--kit", str(kit), *args], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0 and "pip download failed" in r.stdout + r.stderr:
        pytest.skip(f"pip download failed (no package index here?): {(r.stdout + r.stderr)[-400:]}")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def kit312(tmp_path_factory):
    "The kit's wheels for the GPU machine (CPython 3.12, manylinux x86_64), as `make gpu-kit` downloads them."
    kit = tmp_path_factory.mktemp("kit312")
    r = build_kit(kit, "--no-data")
    return kit, json.loads((kit / "manifest.json").read_text()), r.stdout


def test_kit_wheels_are_cp312_manylinux_one_each_and_nothing_the_machine_has(kit312):
    kit, man, out = kit312
    wheels = sorted((kit / "wheels").glob("*.whl"))
    assert [w.name for w in wheels] == sorted(Path(w["file"]).name for w in man["wheels"])
    names = []
    for w in wheels:
        parts = w.name[:-4].split("-")
        name, version, py, abi, plat = parts[0], parts[1], parts[-3], parts[-2], parts[-1]
        names.append(canon(name))
        pys, abis, plats = py.split("."), abi.split("."), plat.split(".")
        assert "cp312" in pys or any(t.startswith("py3") for t in pys) or (abi == "abi3" and any(
            t.startswith("cp3") and int(t[3:]) <= 12 for t in pys)), w.name
        assert abi == "none" or "abi3" in abis or "cp312" in abis, w.name
        assert plat == "any" or all(p.startswith("manylinux") and p.endswith("_x86_64") for p in plats), w.name
        assert man["sha256"][f"wheels/{w.name}"] == hashlib.sha256(w.read_bytes()).hexdigest()
    assert len(names) == len(set(names)), "one version of each package"
    # what the machine lacks is there, at the versions the tests here ran with; what it has is not
    for need in ("normflows", "torch-fidelity", "fastcore", "nbclient", "nbformat", "ipykernel", "jupyter-client", "pyzmq"):
        assert need in names, need
        assert f"{need}=={md.version(need)}" in man["requirements"]
    shipped = set(names)
    assert not shipped & MACHINE_HAS
    assert not [n for n in shipped if n.startswith(("nvidia", "triton", "cuda"))]
    assert any("cp312" in w.name for w in wheels), "binary wheels (pyzmq, rpds-py) must be CPython 3.12 builds"
    assert sum(w.stat().st_size for w in wheels) < 30 * 2 ** 20
    assert "kit wheels" in out and "total that travels" in out


def python312():
    cands = [shutil.which("python3.12"), *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12"))),
             "/usr/bin/python3.12", "/usr/local/bin/python3.12"]
    for c in cands:
        if c and os.path.exists(c):
            r = subprocess.run([c, "-c", "import sys, venv; print(sys.version_info[:2] == (3, 12))"],
                               capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == "True":
                return c
    return None


def test_kit_installs_offline_on_python312_and_runs_a_kernel(kit312, tmp_path):
    "The GPU machine's step: pip install --no-index of the kit into Python 3.12; then a notebook executes there."
    py = python312()
    if py is None:
        pytest.skip("no Python 3.12 on this machine: the wheels' tags are checked by the test above instead")
    kit, man, _ = kit312
    subprocess.run([py, "-m", "venv", str(tmp_path / "v")], check=True)
    vpy = str(tmp_path / "v" / "bin" / "python")
    r = subprocess.run([vpy, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        *map(str, sorted((kit / "wheels").glob("*.whl")))], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    chk = subprocess.run([vpy, "-m", "pip", "check"], capture_output=True, text=True).stdout.splitlines()
    # the only unmet requirements are what the GPU machine has (torch, numpy, ...)
    unmet = [l for l in chk if "requires" in l and canon(l.split("requires ")[1].split(",")[0].split()[0]) not in MACHINE_HAS]
    assert not unmet, unmet
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "c1", "metadata": {}, "outputs": [],
                     "source": "import sys, zmq, rpds\nprint(6 * 7, sys.version_info[:2])"}],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "t.ipynb").write_text(json.dumps(nb))
    r = subprocess.run([vpy, str(ROOT / "tools" / "gpu_kit.py"), "execute", str(tmp_path / "t.ipynb"),
                        "--output", str(tmp_path / "o.ipynb"), "--deadline-s", "120"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = json.loads((tmp_path / "o.ipynb").read_text())["cells"][0]["outputs"]
    assert "42 (3, 12)" in text(out)


def test_execute_stops_at_its_deadline_and_keeps_the_finished_cells(tmp_path):
    cells = [("c1", "x = 6 * 7\nprint('first', x)"), ("c2", "import time\ntime.sleep(60)"), ("c3", "print('never')")]
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": i, "metadata": {}, "outputs": [], "source": s}
                    for i, s in cells],
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "t.ipynb").write_text(json.dumps(nb))
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_kit.py"), "execute", str(tmp_path / "t.ipynb"),
                        "--output", str(tmp_path / "o.ipynb"), "--deadline-s", "8", "--status", str(tmp_path / "s.json")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    assert not (tmp_path / "o.ipynb").exists(), "a cut run is never saved under the executed notebook's name"
    part = json.loads((tmp_path / "o.partial.ipynb").read_text())["cells"]
    assert "did not finish" in "".join(part[0]["source"])
    assert "first 42" in text(part[1]["outputs"])
    assert part[3]["outputs"] == []
    st = json.loads((tmp_path / "s.json").read_text())
    assert st["status"] == "deadline" and st["cells_done"] == 1 and st["seconds"] < 40


def make_archive(tmp_path, files: dict, meta="results/ch9/gpu/gpu-run", name="a", limit=15.5):
    stage = tmp_path / f"stage-{name}"
    for rel, b in files.items():
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        (stage / rel).write_bytes(b)
    (tmp_path / "info.json").write_text(json.dumps({"what": "ch9", "profile": "gpu", "status": "ok", "meta_dir": meta}))
    gpu_kit.main(["pack", "--stage", str(stage), "--out", str(tmp_path / f"out-{name}"), "--name", name,
                  "--info", str(tmp_path / "info.json"), "--limit-mib", str(limit)])
    return tmp_path / f"out-{name}" / f"{name}.tar.gz"


def test_pack_and_unpack_round_trip_leaving_out_weights(tmp_path):
    nb = json.dumps({"cells": [{"cell_type": "code", "outputs": [{"output_type": "stream", "text": "x"}], "source": ""}]})
    files = {"results/ch9/gpu/ch9.ipynb": nb.encode(), "results/ch9/gpu/mnist.json": b'{"fid": 1}',
             "results/ch9/gpu/figures/f.png": os.urandom(3000), "results/ch9/gpu/mnist-glf.pt": os.urandom(5000),
             "results/ch9/gpu/gpu-run/log.txt": b"log", "benchmarks/results/gpu_check_cuda.json": b"{}"}
    arc = make_archive(tmp_path, files)
    res, bench = tmp_path / "results", tmp_path / "bench"
    out = unpack_gpu_run.unpack(arc, res, bench)
    assert (res / "ch9/gpu/figures/f.png").read_bytes() == files["results/ch9/gpu/figures/f.png"]
    assert (bench / "gpu_check_cuda.json").read_bytes() == b"{}"
    assert not (res / "ch9/gpu/mnist-glf.pt").exists()                     # weights stay behind, recorded
    run = json.loads((res / "ch9/gpu/gpu-run/run.json").read_text())
    assert [x["path"] for x in run["left_out"]] == ["results/ch9/gpu/mnist-glf.pt"]
    assert run["left_out"][0]["sha256"] == hashlib.sha256(files["results/ch9/gpu/mnist-glf.pt"]).hexdigest()
    assert out["notebooks"]["complete"] == [res / "ch9/gpu/ch9.ipynb"]
    assert executed_copy(res, "ch9", "gpu", "ch9") == res / "ch9/gpu/ch9.ipynb"
    # over the size budget: the figure (lowest priority) is left out before the results and the notebook
    small = make_archive(tmp_path, {k: v for k, v in files.items() if not k.endswith(".pt")}, name="b", limit=0.002)
    kept = unpack_gpu_run.read_archive(small)[0]["files"]
    assert "results/ch9/gpu/mnist.json" in kept and "results/ch9/gpu/figures/f.png" not in kept


def retar(src: Path, dst: Path, change):
    "Copy the archive `src` to `dst`, passing each (TarInfo, bytes) through `change`, which may add or alter members."
    with tarfile.open(src) as a, tarfile.open(dst, "w:gz") as b:
        for m in a.getmembers():
            for ti, data in change(m, a.extractfile(m).read()):
                ti.size = len(data)
                b.addfile(ti, io.BytesIO(data))


@pytest.mark.parametrize("how", ["changed", "unlisted", "traversal", "link"])
def test_unpack_refuses_an_altered_archive_and_writes_nothing(tmp_path, how):
    arc = make_archive(tmp_path, {"results/ch9/gpu/ch9.json": b"{}", "results/ch9/gpu/gpu-run/log.txt": b"log"})
    bad = tmp_path / "bad.tar.gz"

    def change(m, data):
        if how == "changed" and m.name.endswith("ch9.json"):
            return [(m, b'{"fid": 0.1}')]
        if how in ("unlisted", "traversal", "link") and m.name == "gpu-run.json":
            extra = tarfile.TarInfo({"unlisted": "results/ch9/gpu/extra.json", "traversal": "results/../../evil.txt",
                                     "link": "results/ch9/gpu/l"}[how])
            rec = json.loads(data)
            if how != "unlisted":          # even when the record lists it
                rec["files"][extra.name] = {"sha256": hashlib.sha256(b"x").hexdigest(), "bytes": 1}
            if how == "link":
                extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
            return [(m, json.dumps(rec).encode()), (extra, b"" if how == "link" else b"x")]
        return [(m, data)]

    retar(arc, bad, change)
    with pytest.raises(unpack_gpu_run.BadArchive):
        unpack_gpu_run.unpack(bad, tmp_path / "r", tmp_path / "b")
    assert not (tmp_path / "r").exists() and not (tmp_path / "b").exists() and not (tmp_path.parent / "evil.txt").exists()


STAND_IN = [  # a chapter-shaped notebook that finishes in seconds: kit packages, kit data, results and a figure
    "import normflows, torch_fidelity, matplotlib.pyplot as plt\n"
    "from latentgen.config import get_profile\nfrom latentgen.results import save_results\n"
    "from latentgen.data import load_dataset, train_test_splits\n"
    "from latentgen.viz import save_figure",
    "train, held = train_test_splits('mnist', seed=0)\n"
    "cifar = load_dataset('cifar10', 'test')\n"
    "print('data', len(train), len(held), len(cifar), cifar.source)",
    "fig, ax = plt.subplots(figsize=(2, 2)); ax.imshow(train[0][0][0], cmap='gray')\n"
    "save_figure(fig, 'ch2', 'first-digit')\n"
    "print(save_results({'n_train': len(train)}, chapter='ch2', dataset='mnist', config={}, seed=0))",
    "print('profile', get_profile())"]


def notebook(sources) -> str:
    return json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {},
                                  "outputs": [], "source": src} for i, src in enumerate(sources)],
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5})


@pytest.mark.book
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-jpg.zip").is_file(), reason="no offline data at ../shared/data")
def test_gpu_run_end_to_end_on_the_cpu_into_archives_the_book_accepts(tmp_path):
    """`tools/gpu_run.sh ch2` on the CPU at the quick profile with a kit built for this Python, twice:
    1. a stand-in for the chapter notebook that finishes in seconds (GPU_RUN_NBS): offline install of the kit, data
       unpacked from the kit (byte-identical JPEGs, digest-checked), the notebook executed with the kit's packages,
       results and figure collected into one archive, which `book_from_results.py --archive --unpack-only` puts where
       the book takes an executed chapter from;
    2. the real chapter 2 with a deadline far shorter than it needs (a whole quick chapter takes minutes): the warm
       path (kit and data already in place), the stop before the deadline, the cells that ran coming back as a
       partial notebook that the book does not show."""
    try:
        _end_to_end(tmp_path)
    finally:                          # 60,000 extracted JPEGs and an installed kit: not left for pytest to sweep
        for d in ("data", "work", "kit"):
            shutil.rmtree(tmp_path / d, ignore_errors=True)


def _end_to_end(tmp_path):
    ver = f"{sys.version_info.major}.{sys.version_info.minor}"
    kit = tmp_path / "kit"
    out = build_kit(kit, "--python-version", ver).stdout
    assert "CIFAR-10 60,000 JPEGs" in out
    man = json.loads((kit / "manifest.json").read_text())
    assert man["data"]["cifar10"]["n"] == {"train": 50000, "test": 10000} and man["data"]["subset"] is None
    (tmp_path / "nbs").mkdir()
    (tmp_path / "nbs" / "ch2_cvae_nf.ipynb").write_text(notebook(STAND_IN))
    env = {**os.environ, "LATENTGEN_PROFILE": "quick", "LATENTGEN_RESULTS": str(tmp_path / "gpu-results"),
           "LATENTGEN_RUNS": str(tmp_path / "runs"), "LATENTGEN_DATA": str(tmp_path / "data"),
           "GPU_RUN_WORK": str(tmp_path / "work"), "PY": sys.executable}

    def gpu_run(out, deadline, **extra):
        r = subprocess.run(["bash", "tools/gpu_run.sh", "ch2", "--out", str(tmp_path / out), "--kit", str(kit),
                            "--deadline-s", str(deadline)], cwd=ROOT, env={**env, **extra}, capture_output=True,
                           text=True, timeout=deadline + 60)
        archives = list((tmp_path / out).iterdir())
        assert len(archives) == 1 and archives[0].name.startswith("latentgen-ch2-quick-"), r.stdout[-3000:]
        assert archives[0].name.endswith(".tar.gz") and archives[0].stat().st_size < 16 * 2 ** 20
        return r, archives[0]

    def unpack(archive, res):
        b = subprocess.run([sys.executable, "tools/book_from_results.py", "--profile", "quick", "--results", str(res),
                            "--archive", str(archive), "--unpack-only"], cwd=ROOT, capture_output=True, text=True)
        assert b.returncode == 0, b.stdout + b.stderr
        return b.stdout

    r, arc = gpu_run("out1", 300, GPU_RUN_NBS=str(tmp_path / "nbs"))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "wheels installed into" in r.stdout and "with pip" in r.stdout
    assert "unpacked 60,000 JPEGs" in r.stdout and "done in" in r.stdout
    import zipfile                    # the data the notebook read are the kit's: the shared zip's JPEG bytes
    with zipfile.ZipFile(SHARED_DATA / "cifar10-jpg.zip") as z:
        name = sorted(n for n in z.namelist() if n.endswith(".jpg"))[123]
        assert (tmp_path / "data" / "cifar10-jpg" / name).read_bytes() == z.read(name)
    res = tmp_path / "results"
    unpack(arc, res)
    nb = executed_copy(res, "ch2", "quick", "ch2_cvae_nf")
    assert nb is not None
    shown = "".join(text(c["outputs"]) for c in json.loads(nb.read_text())["cells"])
    assert f"data 9000 1000 10000 {tmp_path / 'data'}" in shown and "profile quick" in shown
    assert json.loads((res / "ch2/quick/mnist.json").read_text())["metrics"] == {"n_train": 9000}
    assert (res / "ch2/quick/figures/first-digit.png").stat().st_size > 0
    run = json.loads((res / "ch2/quick/gpu-run/run.json").read_text())
    assert run["status"] == "ok" and run["what"] == "ch2" and run["device"] == "cpu" and run["profile"] == "quick"
    assert "code cell 4/4 done" in (res / "ch2/quick/gpu-run/log.txt").read_text()
    assert "nvidia-smi" in (res / "ch2/quick/gpu-run/nvidia-smi.txt").read_text()

    r, arc = gpu_run("out2", 80, GPU_RUN_PACK_MARGIN="10")
    assert r.returncode == 3, r.stdout[-4000:] + r.stderr[-2000:]          # 3: stopped by its deadline
    assert "already installed" in r.stdout and "already holds the kit's 60,000 JPEGs" in r.stdout
    wall = int(r.stdout.rsplit("done in ", 1)[1].split("s", 1)[0])
    assert wall < 80
    res2 = tmp_path / "results2"
    assert "is a cut run" in unpack(arc, res2)
    assert executed_copy(res2, "ch2", "quick", "ch2_cvae_nf") is None      # the book shows it as not run
    part = json.loads((res2 / "ch2/quick/ch2_cvae_nf.partial.ipynb").read_text())["cells"]
    assert "did not finish" in "".join(part[0]["source"])
    assert json.loads((res2 / "ch2/quick/gpu-run/run.json").read_text())["status"] == "deadline"
