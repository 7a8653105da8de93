"""Committed results (`results/<chapter>/<profile>/`, every profile but the git-ignored `quick`): each folder loads,
passes its seals, holds an executed notebook, and its page is flagged as stale exactly when the code that made its
numbers differs from the code here (`latentgen.results.stale_report`, the note `tools/book_from_results.py` puts on
top of the page). Planted cases check that a changed digest is flagged with the file that changed, an unchanged one
is not, and a hand-edited results file is refused."""
import json
import shutil
import sys
from pathlib import Path

import pytest

from latentgen.fileio import CorruptFileError, load_checked_json, sealed_json_bytes
from latentgen.results import code_provenance, load_results, stale_report

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from book_from_results import CHAPTERS, executed_copy, provenance_note   # noqa: E402

NOTEBOOK = {chapter: name for name, chapter in CHAPTERS.items()}
COMMITTED = sorted(d for d in (ROOT / "results").glob("*/*") if d.is_dir() and d.name != "quick")


def test_the_committed_folders_are_the_ones_expected():
    "Every committed folder is a chapter's (or the dashboard's) under a known profile."
    from latentgen.config import PROFILES
    for d in COMMITTED:
        assert d.parent.name in NOTEBOOK and d.name in PROFILES, d


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_a_committed_folder_loads_and_is_flagged_exactly_when_its_code_changed(folder):
    chapter, profile = folder.parent.name, folder.name
    records = [load_results(f) for f in sorted(folder.glob("*.json")) if f.name != "verdicts.json"]   # seals checked
    if chapter == "dashboard":
        from latentgen.dashboard import VERDICTS, load_verdicts
        entries = load_verdicts(folder / "verdicts.json")
        assert entries and all(e["verdict"] in VERDICTS for e in entries)
        return
    assert records, f"{folder} has no results file"
    nb = executed_copy(folder.parent.parent, chapter, profile, NOTEBOOK[chapter])
    assert nb is not None, f"{folder} has no executed {NOTEBOOK[chapter]}.ipynb"
    for r in records:
        assert r["profile"] == profile and r["chapter"] == chapter and r.get("wall_time_s"), r.get("_file")
        assert r.get("git_commit") and r.get("device")
        for fig in folder.glob("figures/*.png"):
            assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", fig
    differs = any((r.get("code") or {}).get("digest") != code_provenance(chapter)["digest"] for r in records)
    _, flagged = provenance_note(folder.parent.parent, chapter, profile)
    assert flagged == differs


def _plant(tmp_path, code):
    folder = tmp_path / "results" / "ch1" / "cpu"
    folder.mkdir(parents=True)
    rec = {"chapter": "ch1", "profile": "cpu", "git_commit": "0123456789abcdef", "device": "cpu", "wall_time_s": 60.0,
           "metrics": {}, "code": code}
    (folder / "mnist.json").write_bytes(sealed_json_bytes(rec))
    return folder


def test_a_planted_folder_is_flagged_when_and_only_when_its_code_changed(tmp_path):
    now = code_provenance("ch1")
    folder = _plant(tmp_path, now)
    text, flagged = provenance_note(tmp_path / "results", "ch1", "cpu")
    assert not flagged and "has not changed" in text and "0123456789" in text
    shutil.rmtree(tmp_path / "results")
    edited = {"digest": "f" * 16, "files": {**now["files"], "latentgen/ch1_vae.py": "0" * 64}}
    folder = _plant(tmp_path, edited)
    text, flagged = provenance_note(tmp_path / "results", "ch1", "cpu")
    assert flagged and "Stale numbers" in text and "`latentgen/ch1_vae.py`" in text and "latentgen/train.py" not in text
    assert stale_report(load_results(folder / "mnist.json"))["changed"] == ["latentgen/ch1_vae.py"]
    f = folder / "mnist.json"                       # a hand-edited digest (to hide a change) is refused by the seal
    f.write_text(f.read_text().replace("f" * 16, now["digest"]))
    with pytest.raises(CorruptFileError):
        load_checked_json(f, "results file")
