"""The sample-metric yardstick: the shipped feature classifiers, their calibration, class fidelity, the Inception path."""
import json

import numpy as np
import pytest
import torch

from latentgen.cli import main
from latentgen.data import load_dataset, split_holdout
from latentgen.metrics import class_fidelity, degraded_copies, fidelity, ranks_as_expected
from latentgen.fileio import sha256_file
from latentgen.features import (EXTRACTOR_FAMILIES, INCEPTION_EXTRACTOR, classifier_accuracy, extractor_splits,
    find_extractor, load_extractor, metric_backend, write_seeded_inception_weights)

FLOOR = {"mnist": 0.97, "cifar10": 0.70}     # held-out accuracy below which a classifier is not a yardstick


@pytest.fixture
def offline(monkeypatch):
    "No InceptionV3 weights and no downloads: the classifier rule applies."
    monkeypatch.setenv("LATENTGEN_OFFLINE", "1")
    monkeypatch.delenv("LATENTGEN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("LATENTGEN_METRIC_BACKEND", raising=False)
    monkeypatch.setenv("TORCH_HOME", "/nonexistent-torch-home")


@pytest.mark.parametrize("family", ["mnist", "cifar10"])
def test_shipped_classifier_hash_and_held_out_accuracy(family):
    path = find_extractor(family)
    assert path is not None and "latentgen/weights" in str(path), "the classifier must ship inside the package"
    meta = json.loads(path.read_text())
    pt = path.with_suffix(".pt")
    assert sha256_file(pt) == meta["sha256"] and pt.stat().st_size < 4 * 2**20
    net, _ = load_extractor(family)
    train, held = extractor_splits(family)
    if family == "mnist":                      # the images the chapters hold out: data.split_holdout(test, 1000, seed=0)
        chapters_held = split_holdout(load_dataset("mnist", "test"), 1000, 0)[1]
        assert torch.equal(held.indices, chapters_held.indices) and meta["held_out"]["n"] == 1000
    else:
        assert meta["held_out"]["split"] == "test" and len(held) == 10_000 and meta["train"]["n"] == 50_000
    acc = classifier_accuracy(net, held)
    assert acc == pytest.approx(meta["held_out_accuracy"], abs=2e-3) and acc > FLOOR[family]


def _real_sets(family):
    if family == "mnist":
        held = split_holdout(load_dataset("mnist", "test"), 1000, 0)[1]
        x = torch.stack([held[i][0] for i in range(len(held))])
        return x[500:], x[:500]
    test = load_dataset("cifar10", "test")
    pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:2000].tolist()   # stored class by class
    return torch.stack([test[i][0] for i in pick[:1000]]), torch.stack([test[i][0] for i in pick[1000:]])


@pytest.mark.parametrize("family", ["mnist", "cifar10"])
def test_classifier_distance_ranks_the_degradation_ladder(family, offline):
    ref, real = _real_sets(family)
    fd = {k: fidelity(v, ref, dataset=family, prc=False, reference_cache=f"test-ladder-{family}")["fid"]
          for k, v in degraded_copies(real).items()}
    assert ranks_as_expected(fd), fd                                 # real < light < heavy blur < every structureless set
    assert list(fd.values())[0] < 0.1 * min(list(fd.values())[3:])   # real images are far closer than any of those


def test_ranks_as_expected_catches_a_wrong_order():
    names = list(degraded_copies(torch.rand(2, 1, 8, 8)))
    good = dict(zip(names, [0.1, 1, 2, 3, 10, 11, 12, 13]))
    assert ranks_as_expected(good) and ranks_as_expected(good, strict=True)
    for i, j in [(0, 1), (1, 2), (2, 3), (2, 6)]:
        v = list(good.values()); v[i], v[j] = v[j], v[i]
        assert not ranks_as_expected(dict(zip(names, v)))
    v = list(good.values()); v[3], v[5] = v[5], v[3]                 # shuffled after a constant image
    assert ranks_as_expected(dict(zip(names, v))) and not ranks_as_expected(dict(zip(names, v)), strict=True)


def test_class_fidelity_of_real_and_mislabelled_digits():
    held = split_holdout(load_dataset("mnist", "test"), 1000, 0)[1]
    x = torch.stack([held[i][0] for i in range(len(held))])
    right = class_fidelity(x, held.targets, dataset="mnist")
    wrong = class_fidelity(x, (held.targets + 3) % 10, dataset="mnist")
    assert right["accuracy"] > FLOOR["mnist"] and wrong["accuracy"] < 0.05
    assert 8 < right["is"] <= 10 and class_fidelity(x[:100] * 0, dataset="mnist")["is"] == pytest.approx(1, abs=1e-6)
    # a generator that draws only one class: perfect accuracy for that label, IS near 1
    ones = x[held.targets == 1][:100]
    one = class_fidelity(ones, torch.ones(len(ones), dtype=torch.long), dataset="mnist")
    assert one["accuracy"] > 0.95 and one["is"] < 1.5


def test_no_classifier_and_no_inception_is_a_clear_error(offline):
    digits = load_dataset("digits", "test")
    with pytest.raises(FileNotFoundError, match="no classifier family for 'digits'"):
        fidelity(torch.rand(20, 1, 8, 8), digits)
    with pytest.raises(ValueError, match="pass dataset="):
        fidelity(torch.rand(20, 1, 8, 8), torch.rand(20, 1, 8, 8))
    assert metric_backend(dataset="mnist")["label"] == "FD (latentgen MNIST classifier)"


def test_inception_path_end_to_end_without_network(tmp_path, monkeypatch):
    w = write_seeded_inception_weights(tmp_path / "weights-inception-seeded.pth", seed=1)
    monkeypatch.setenv("LATENTGEN_INCEPTION_WEIGHTS", str(w))
    monkeypatch.delenv("LATENTGEN_METRIC_BACKEND", raising=False)
    x = torch.stack([load_dataset("mnist", "test")[i][0] for i in range(40)])
    out = fidelity(x[:20], x[20:], dataset="mnist", batch_size=20)
    noise = fidelity(torch.rand(20, 1, 28, 28), x[20:], dataset="mnist", batch_size=20, prc=False)
    assert out["backend"] == INCEPTION_EXTRACTOR and not out["comparable_to_published"]
    assert all(np.isfinite(out[k]) for k in ("fid", "kid", "precision", "recall"))
    assert out["extractor_sha256"] == sha256_file(w) and 0 < out["fid"] < noise["fid"]


def test_cli_trains_an_extractor(tmp_path, capsys):
    main(["metrics", "train-extractor", "--dataset", "mnist", "--epochs", "3", "--subset", "3000", "--out", str(tmp_path)])
    meta = json.loads((tmp_path / "mnist-classifier.json").read_text())
    assert meta["command"].startswith("latentgen metrics train-extractor") and meta["train"]["n"] == 3000
    assert meta["held_out_accuracy"] > 0.6 and meta["config"] == {**EXTRACTOR_FAMILIES["mnist"], "widths": [32, 64],
                                                                  "classes": 10, "lr": 2e-3}
    main(["metrics", "list"])
    assert "held-out accuracy" in capsys.readouterr().out


def test_floor_is_the_lowest_structureless_row_and_both_at_floor_cannot_be_ranked():
    from latentgen.metrics import FLOOR_ROWS, QUALITY_MARKERS, STRUCTURELESS, at_floor, floor_level, rankable
    assert set(QUALITY_MARKERS) == {"blurred 1 px", "blurred 2 px"} and not set(QUALITY_MARKERS) & set(STRUCTURELESS)
    rows = dict(zip(FLOOR_ROWS, [{"fid": v} for v in (1.2, 35.0, 299.0, 2160.0, 900.0, 181.0, 6130.0)]))   # MNIST-like: black lowest
    assert floor_level(rows) == 181.0
    assert at_floor(181.0, rows) and at_floor(250.0, rows) and not at_floor(120.0, rows)
    assert rankable(120.0, 285.0, rows) and not rankable(198.0, 285.0, rows)
    rows["blurred 2 px"] = {"fid": 100.0}                      # CIFAR-like: the blur is closest, but it keeps the structure
    assert floor_level(rows) == 181.0 and rankable(137.8, 133.0, rows)
    rows["pixels shuffled"] = {"fid": 130.0}                   # a structureless row below both: neither is ranked
    assert floor_level(rows) == 130.0 and not rankable(137.8, 133.0, rows)
    del rows["black"]
    with pytest.raises(KeyError):
        floor_level(rows)
