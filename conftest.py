"""pytest configuration shared by the unit tests (tests/) and the notebook tests (nbval on nbs/).

nbval runs every code cell of a notebook; it knows nothing of nbdev's directives, so cells marked
``#| eval: false`` (meant to be shown, not run: paper-profile commands, downloads) are skipped here,
as nbdev_test and the book build (``skip-execution`` tag, see _ext/nbdev_directives.py) skip them.
"""
import os
import re

import pytest

EVAL_FALSE = re.compile(r"^\s*#\|\s*eval\s*:\s*false\s*$", re.M)

os.environ.setdefault("LATENTGEN_PROGRESS", "0")   # no progress bars in test logs

# Agg for the test process only (figures drawn by unit tests go nowhere); not through MPLBACKEND, which every
# notebook kernel that nbval or the book build starts would inherit (their setup cell overrides it in any case)
import matplotlib  # noqa: E402

matplotlib.use("Agg")


def pytest_collection_modifyitems(config, items):
    for item in items:
        cell = getattr(item, "cell", None)
        if cell is not None and EVAL_FALSE.search(cell.get("source", "") if isinstance(cell, dict) else cell.source):
            item.add_marker(pytest.mark.skip(reason="nbdev '#| eval: false' cell"))
