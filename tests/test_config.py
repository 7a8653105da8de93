import json

import pytest
import torch

from latentgen.config import by_profile, get_profile, seed_everything
from latentgen.results import load_results, save_results


def test_profile_from_environment(monkeypatch):
    monkeypatch.setenv("LATENTGEN_PROFILE", "paper")
    assert get_profile() == "paper" and by_profile(quick=1, paper=2) == 2
    monkeypatch.setenv("LATENTGEN_PROFILE", "quick")
    assert by_profile(quick=1, paper=2) == 1


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("LATENTGEN_PROFILE", "huge")
    with pytest.raises(ValueError, match="LATENTGEN_PROFILE must be one of"):
        get_profile()


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("LATENTGEN_PROFILE", raising=False)
    assert get_profile() == ("paper" if torch.cuda.is_available() else "quick")


def test_results_file_has_provenance(tmp_path):
    p = save_results({"fid": 1.5}, chapter="ch0", dataset="digits", config={"lr": 0.1}, seed=3, profile="quick",
                     metric_backend="latentgen-randconv64", wall_time_s=2.0, command="latentgen x", root=tmp_path)
    assert p == tmp_path / "ch0" / "quick" / "digits.json"
    r = load_results(p)
    for key in ("metrics", "config", "seed", "git_commit", "device", "torch", "metric_backend", "wall_time_s", "command"):
        assert key in r, key
    assert r["command"] == "latentgen x" and r["profile"] == "quick"
    assert not list(tmp_path.rglob(".*tmp*")), "atomic write left a temporary file"
    json.loads(p.read_text())


def test_seed_everything_repeats():
    seed_everything(7); a = torch.randn(4)
    seed_everything(7); assert torch.equal(a, torch.randn(4))
