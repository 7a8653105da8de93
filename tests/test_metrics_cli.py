import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

from latentgen.cli import main
from latentgen.data import load_dataset
from latentgen.metrics import OFFLINE_EXTRACTOR, RandConvFeatures, fidelity, iwae_nll, metric_backend


def test_offline_extractor_is_deterministic_and_checks_input():
    x = torch.randint(0, 256, (4, 3, 20, 20), dtype=torch.uint8)
    a, b = RandConvFeatures(OFFLINE_EXTRACTOR, ["512"]), RandConvFeatures(OFFLINE_EXTRACTOR, ["512"])
    fa, fb = a(x)[0], b(x)[0]
    assert fa.shape == (4, 512) and torch.equal(fa, fb)
    with pytest.raises(ValueError, match="uint8"):
        a(x.float())


def test_backend_choice(monkeypatch, tmp_path):
    monkeypatch.setenv("LATENTGEN_METRIC_BACKEND", "offline")
    assert metric_backend()["comparable_to_published"] is False
    monkeypatch.delenv("LATENTGEN_METRIC_BACKEND")
    w = tmp_path / "inception.pth"; w.write_bytes(b"x")
    monkeypatch.setenv("LATENTGEN_INCEPTION_WEIGHTS", str(w))
    be = metric_backend("auto")
    assert be["name"] == "inception-v3-compat" and be["weights"] == str(w) and be["comparable_to_published"]


def test_fidelity_ranks_degradations():
    imgs = torch.stack([x for x, _ in load_dataset("digits", "train")])
    ref = imgs[:600]
    near = fidelity(imgs[600:1200], ref, backend="offline", prc=False)["fid"]
    blurred = fidelity(F.avg_pool2d(imgs[600:1200], 3, 1, 1), ref, backend="offline", prc=False)["fid"]
    noise = fidelity(torch.rand(600, 1, 8, 8), ref, backend="offline")
    assert near < blurred < noise["fid"]
    assert noise["recall"] < 0.2 and noise["backend"] == OFFLINE_EXTRACTOR


def test_iwae_nll_checks_shape():
    ds = load_dataset("digits", "test")
    with pytest.raises(ValueError, match=r"\[k=3"):
        iwae_nll(lambda x, k: torch.zeros(len(x), k), ds, k=3)


def test_cli_help_lists_subcommands():
    out = subprocess.run(["latentgen", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("data", "models", "train", "sample", "evaluate"):
        assert cmd in out


def test_cli_train_sample_evaluate(tmp_path, capsys):
    main(["train", "vae", "--dataset", "digits", "--steps", "5", "--batch-size", "32", "--out", str(tmp_path / "r"),
          "--set", "latent_dim=2", "width=4", "hidden=8"])
    main(["sample", str(tmp_path / "r" / "model.pt"), "--n", "9", "--out", str(tmp_path / "s.png")])
    main(["evaluate", str(tmp_path / "r" / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "offline",
          "--results", str(tmp_path / "res"), "--iwae-k", "2"])
    r = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert r["metric_backend"] == OFFLINE_EXTRACTOR and r["data"]["subset"]["n"] == 100
    assert {"fid", "kid", "precision", "recall", "reconstruction", "iwae"} <= set(r["metrics"])
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_fidelity_accepts_a_generator_and_draws_in_batches():
    calls = []
    def gen(k):
        calls.append(k); return torch.rand(k, 1, 8, 8)
    ref = load_dataset("digits", "test")
    out = fidelity(gen, ref, n_samples=250, batch_size=100, backend="offline", prc=False)
    assert out["n_samples"] == 250 and calls == [100, 100, 50]
