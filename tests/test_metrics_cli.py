import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

from latentgen.cli import main
from latentgen.data import load_dataset
from latentgen.metrics import RANDOM_EXTRACTOR, RandConvFeatures, fidelity, iwae_nll, metric_backend


def test_random_extractor_is_deterministic_and_checks_input():
    x = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    a, b = RandConvFeatures(RANDOM_EXTRACTOR, ["512"]), RandConvFeatures(RANDOM_EXTRACTOR, ["512"])
    fa, fb = a(x)[0], b(x)[0]
    assert fa.shape == (4, 512) and torch.equal(fa, fb)
    with pytest.raises(ValueError, match="uint8"):
        a(x.float())


def test_backend_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTGEN_METRIC_BACKEND", "random")
    assert metric_backend()["name"] == RANDOM_EXTRACTOR and metric_backend()["comparable_to_published"] is False
    monkeypatch.setenv("LATENTGEN_METRIC_BACKEND", "offline")           # the old name of the random extractor
    with pytest.raises(ValueError, match="retired"):
        metric_backend()
    monkeypatch.delenv("LATENTGEN_METRIC_BACKEND")
    w = tmp_path / "inception.pth"; w.write_bytes(b"x")
    monkeypatch.setenv("LATENTGEN_INCEPTION_WEIGHTS", str(w))
    be = metric_backend("auto", "mnist")          # Inception first when its weights are present, whatever the dataset
    assert be["name"] == "inception-v3-compat" and be["weights"] == str(w)
    assert not be["comparable_to_published"] and "unrecognised" in be["label"]   # not the release's hash


def test_iwae_nll_checks_shape():
    ds = load_dataset("digits", "test")
    with pytest.raises(ValueError, match=r"\[k=3"):
        iwae_nll(lambda x, k: torch.zeros(len(x), k), ds, k=3)


def test_cli_help_lists_subcommands():
    out = subprocess.run(["latentgen", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("data", "models", "train", "sample", "evaluate", "metrics"):
        assert cmd in out


def test_cli_train_sample_evaluate(tmp_path, capsys):
    main(["train", "vae", "--dataset", "digits", "--steps", "5", "--batch-size", "32", "--out", str(tmp_path / "r"),
          "--set", "latent_dim=2", "width=4", "hidden=8"])
    main(["sample", str(tmp_path / "r" / "model.pt"), "--n", "9", "--out", str(tmp_path / "s.png")])
    main(["evaluate", str(tmp_path / "r" / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
          "--results", str(tmp_path / "res"), "--iwae-k", "2"])
    r = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert r["metric_backend"] == RANDOM_EXTRACTOR and r["data"]["subset"]["n"] == 100
    assert r["metrics"]["metric"] == "FD (random conv features, uncalibrated)"
    assert {"fid", "kid", "precision", "recall", "reconstruction", "iwae"} <= set(r["metrics"])
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_fidelity_accepts_a_generator_and_draws_in_batches():
    calls = []
    def gen(k):
        calls.append(k); return torch.rand(k, 1, 8, 8)
    ref = load_dataset("digits", "test")
    out = fidelity(gen, ref, n_samples=250, batch_size=100, backend="random", prc=False)
    assert out["n_samples"] == 250 and calls == [100, 100, 50]
