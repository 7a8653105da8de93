"""Packaging for latentgen: everything is read from settings.ini (nbdev 2 convention)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).parent / "settings.ini", encoding="utf-8")
cfg = cfg["DEFAULT"]

requirements = cfg.get("requirements", "").split()
dev_requirements = cfg.get("dev_requirements", "").split()
book_requirements = cfg.get("book_requirements", "").split()   # `latentgen notebook` (executes a notebook)
scripts = [s.strip() for s in cfg.get("console_scripts", "").split("\n") if s.strip()]

setuptools.setup(
    name=cfg["lib_name"],
    version=cfg["version"],
    description=cfg["description"],
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=[
        "Development Status :: 3 - Alpha", "Intended Audience :: Developers", "Intended Audience :: Science/Research",
        "Natural Language :: English",
        "Programming Language :: Python :: 3", "Programming Language :: Python :: 3 :: Only",
        "Topic :: Scientific/Engineering :: Artificial Intelligence"],
    url=cfg["git_url"],
    keywords=cfg["keywords"].split(),
    python_requires=">=" + cfg["min_python"],
    # latentgen.weights holds data files only (no __init__.py): listed as a package so setuptools ships it as one
    packages=setuptools.find_packages(include=["latentgen", "latentgen.*"]) + ["latentgen.weights"],
    install_requires=requirements,
    extras_require={"book": book_requirements, "dev": book_requirements + dev_requirements},
    entry_points={"console_scripts": scripts, "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    include_package_data=True,
    package_data={"latentgen.weights": ["*.pt", "*.json"]},   # the sample-metric classifiers
    zip_safe=False,
)
