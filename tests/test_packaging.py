"""Packaging: the sdist carries what setup.py reads, the wheel built from it installs a working `latentgen` command and
`python -m latentgen`, and the notebook-execution packages are an extra, not a runtime requirement."""
import configparser
import os
import shutil
import subprocess
import sys
import zipfile
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _cfg():
    cfg = configparser.ConfigParser(delimiters=["="])
    cfg.read(ROOT / "settings.ini")
    return cfg["DEFAULT"]


def _clean_tree(dest: Path) -> Path:
    "The checkout's files as a fresh clone plus uncommitted work would have them: tracked and untracked, not ignored."
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout: the clean tree to build from is the list of files git knows")
    for name in filter(None, r.stdout.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{cmd} -> {r.returncode}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def test_sdist_and_wheel_from_it_install_a_working_command(tmp_path):
    """`python -m build` builds the sdist, then the wheel from the unpacked sdist (it failed with KeyError 'lib_name'
    while the sdist lacked settings.ini); installed into a fresh venv, `latentgen --version` and `python -m latentgen
    --version` run from an empty folder with the venv's copy of the package."""
    pytest.importorskip("build", reason="the `build` package (a dev requirement: pip install build) is not installed")
    src = _clean_tree(tmp_path / "src")
    dist = tmp_path / "dist"
    # no isolation: the build requirements (setuptools, wheel) are those installed here, so this runs offline
    r = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)])
    out = r.stdout + r.stderr
    assert "not listed" not in out.lower() and "license classifiers are deprecated" not in out.lower(), out[-3000:]
    version = _cfg()["version"]
    sdist, = dist.glob("latentgen-*.tar.gz")
    wheel, = dist.glob("latentgen-*.whl")
    assert sdist.name == f"latentgen-{version}.tar.gz"
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    assert {"settings.ini", "README.md", "LICENSE", "latentgen/weights/mnist-classifier.pt",
            "latentgen/weights/cifar10-classifier.json"} <= names, sorted(names)
    wnames = zipfile.ZipFile(wheel).namelist()
    assert {"latentgen/__main__.py", "latentgen/cli.py", "latentgen/weights/mnist-classifier.pt"} <= set(wnames)

    venv = tmp_path / "venv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    _run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], env=env)
    py, exe = venv / "bin" / "python", venv / "bin" / "latentgen"
    # --force-reinstall: the same version may be installed where the venv sees it (system site-packages, editable)
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--force-reinstall", str(wheel)], env=env)
    empty = tmp_path / "empty"
    empty.mkdir()
    for cmd in ([str(exe), "--version"], [str(py), "-m", "latentgen", "--version"]):
        r = _run(cmd, cwd=empty, env=env)
        assert r.stdout.strip() == f"latentgen {version}", (cmd, r.stdout, r.stderr)
    r = _run([str(py), "-c", "import latentgen; print(latentgen.__file__)"], cwd=empty, env=env)
    assert Path(r.stdout.strip()).resolve().is_relative_to(venv.resolve()), r.stdout


def test_notebook_execution_packages_are_the_book_extra_not_runtime_requirements():
    "nbclient, nbformat and ipykernel only run notebooks (`latentgen notebook`, the book): the [book] extra, in [dev]."
    cfg = _cfg()
    runtime = {r.split(">")[0].split("=")[0] for r in cfg["requirements"].split()}
    book = {r.split(">")[0].split("=")[0] for r in cfg["book_requirements"].split()}
    assert book == {"nbclient", "nbformat", "ipykernel"} and not (book & runtime)
    assert "build" in {r.split(">")[0] for r in cfg["dev_requirements"].split()}
    # no module of the package imports them when imported (a plain `pip install latentgen` has none of them)
    code = ("import sys, importlib, pkgutil, latentgen\n"
            "for m in pkgutil.iter_modules(latentgen.__path__):\n"
            "    if m.name != '__main__': importlib.import_module('latentgen.' + m.name)\n"
            "print(sorted(n for n in ('nbclient', 'nbformat', 'ipykernel') if n in sys.modules))")
    r = _run([sys.executable, "-c", code], cwd=ROOT)
    assert r.stdout.strip().splitlines()[-1] == "[]", r.stdout


def test_notebook_command_without_the_book_extra_names_it(tmp_path):
    "`latentgen notebook` where nbclient is missing: one line naming `pip install 'latentgen[book]'`."
    block = tmp_path / "block"
    block.mkdir()
    (block / "nbclient.py").write_text("raise ImportError('nbclient is not installed')\n")
    nb = tmp_path / "x.ipynb"
    nb.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(block), str(ROOT)])}
    r = subprocess.run([sys.executable, "-m", "latentgen", "notebook", str(nb)], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "pip install 'latentgen[book]'" in r.stderr, (r.returncode, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
