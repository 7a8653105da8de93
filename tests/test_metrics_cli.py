import json
import subprocess

import pytest
import torch
import torch.nn.functional as F

from latentgen.cli import main
from latentgen.data import load_dataset
from latentgen.metrics import fidelity, iwae_nll
from latentgen.features import RANDOM_EXTRACTOR, RandConvFeatures, metric_backend


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
    assert {"fd", "kid", "precision", "recall", "reconstruction", "iwae"} <= set(r["metrics"])
    assert "fid" not in r["metrics"]          # only InceptionV3 distances are called FID
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_fidelity_accepts_a_generator_and_draws_in_batches():
    calls = []
    def gen(k):
        calls.append(k); return torch.rand(k, 1, 8, 8)
    ref = load_dataset("digits", "test")
    out = fidelity(gen, ref, n_samples=250, batch_size=100, backend="random", prc=False)
    assert out["n_samples"] == 250 and calls == [100, 100, 50]


def test_cli_without_a_command_prints_its_help():
    r = subprocess.run(["latentgen"], capture_output=True, text=True)
    assert r.returncode == 2 and "data" in r.stdout and "evaluate" in r.stdout and "required" not in r.stderr


def test_data_check_says_where_it_looked_and_what_to_do(tmp_path):
    r = subprocess.run(["latentgen", "data", "check", "--root", str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert r.returncode == 1 and "is not a folder" in r.stderr, r.stderr
    r = subprocess.run(["latentgen", "data", "check", "--root", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and f"searched: {tmp_path.resolve()}" in r.stdout, (r.stdout, r.stderr)
    assert "data prepare" in r.stderr and "no dataset found" in r.stderr


def test_every_option_has_help():
    from latentgen.cli import build_parser
    import argparse
    missing = []
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in sub.choices.items():
        missing += [f"{name} {a.dest}" for a in parser._actions if not a.help and a.dest not in ("help",)]
    assert not missing, f"options without help text: {missing}"
