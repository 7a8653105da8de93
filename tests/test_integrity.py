"""Issue 29: files latentgen wrote and later trusts carry a SHA-256 that is checked on every read; runs cannot collide or
be destroyed by a mistyped --force; a finite divergence is not saved; small inputs are range-checked."""
import io
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from latentgen.cli import RunLock, main
from latentgen.fileio import (CorruptFileError, UncheckedFileWarning, atomic_write_bytes, check_seal, save_torch,
    seal_torch_bytes)
from latentgen.results import load_results, save_results
from latentgen.models import VAE, load_model, save_model

TINY = ["--dataset", "digits", "--batch-size", "32", "--set", "latent_dim=2", "width=4", "hidden=8"]


def flip(path, at=1 / 3, mask=64):
    "Flip one bit of `path` in place (the issue's reproduction): the size stays, the content changes."
    b = bytearray(open(path, "rb").read())
    i = int(len(b) * at) if isinstance(at, float) else at
    b[i] ^= mask
    open(path, "wb").write(bytes(b))


def fails(argv) -> str:
    "Run the command line, which must fail with one line; returns the message."
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value)
    assert msg.startswith("latentgen: error:") and "\n" not in msg.strip(), msg
    return msg


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    "A finished tiny run: model.pt, trainer.ckpt, history.json (trained once for the module)."
    out = tmp_path_factory.mktemp("ref") / "ref"
    main(["train", "vae", *TINY, "--steps", "5", "--out", str(out)])
    return out


@pytest.fixture
def run(ref, tmp_path):
    "A copy of the finished run to damage."
    shutil.copytree(ref, tmp_path / "run")
    return tmp_path / "run"


def digests(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----- checksums -----

def test_every_written_file_is_sealed(ref):
    for name in ("model.pt", "trainer.ckpt"):
        assert check_seal((ref / name).read_bytes(), ref / name) is True
    assert "checksum" in json.loads((ref / "history.json").read_text())
    assert sorted(p.name for p in ref.iterdir()) == ["history.json", "model.pt", "trainer.ckpt"]   # no lock left


def test_bitflip_in_checkpoint_refuses_resume_and_keeps_the_model(run):
    before = digests(run)
    flip(run / "trainer.ckpt")
    msg = fails(["train", "vae", *TINY, "--steps", "10", "--out", str(run), "--resume"])
    assert "trainer.ckpt is corrupted" in msg and "--force" in msg
    assert (run / "model.pt").read_bytes() == before["model.pt"]          # the last good model is untouched
    assert (run / "history.json").read_bytes() == before["history.json"]


@pytest.mark.parametrize("at", [1 / 3, 0.99, -40, -75])   # data, the central directory, the digest, the seal's tag
def test_bitflip_in_model_file_refused_by_sample_and_evaluate(run, tmp_path, at):
    flip(run / "model.pt", at if isinstance(at, float) else len((run / "model.pt").read_bytes()) + at)
    msg = fails(["sample", str(run / "model.pt"), "--n", "4", "--out", str(tmp_path / "s.png")])
    assert "model.pt is corrupted" in msg and "restore a good copy" in msg
    assert not (tmp_path / "s.png").exists()
    msg = fails(["evaluate", str(run / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
                 "--results", str(tmp_path / "res")])
    assert "model.pt is corrupted" in msg
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").rglob("*.json"))


def test_any_single_bit_flip_is_caught():
    buf = io.BytesIO(); torch.save({"w": torch.arange(50.0), "name": "x"}, buf)
    good = seal_torch_bytes(buf.getvalue())
    assert check_seal(good, "f") is True
    missed = []
    for i in range(len(good)):
        b = bytearray(good); b[i] ^= 1 << (i % 8)
        try:
            check_seal(bytes(b), "f")
            missed.append(i)
        except CorruptFileError:
            pass
    assert not missed, f"flips at {missed[:10]} were not detected"


def test_files_without_a_checksum_still_load_with_a_warning(tmp_path):
    m = VAE(channels=1, image_size=8, latent_dim=2, width=4, hidden=8)
    torch.save({"name": "vae", "config": m.config, "state_dict": m.state_dict(), "extra": {}}, tmp_path / "old.pt")
    with pytest.warns(UncheckedFileWarning, match="carries no checksum"):
        assert load_model(tmp_path / "old.pt").config["hidden"] == 8


def test_results_files_are_checked(tmp_path):
    p = save_results({"fd": 12.5}, chapter="ch0", dataset="digits", config={}, seed=0, profile="quick", root=tmp_path)
    assert load_results(p)["metrics"]["fd"] == 12.5
    p.write_text(p.read_text().replace("12.5", "11.5"))
    with pytest.raises(CorruptFileError, match="checksum"):
        load_results(p)
    d = json.loads(p.read_text()); d.pop("checksum"); d.pop("latentgen_seal")   # edited on purpose: both entries deleted
    p.write_text(json.dumps(d))
    with pytest.warns(UncheckedFileWarning, match="carries no checksum"):         # accepted, with a warning
        assert load_results(p)["metrics"]["fd"] == 11.5


def test_shape_check_before_the_model_is_built(run, tmp_path):
    ck = torch.load(run / "model.pt", weights_only=True)
    ck["config"]["hidden"] = 10 ** 9                     # would need terabytes if it were built
    save_torch(ck, tmp_path / "huge.pt")
    with pytest.raises(ValueError, match="do not fit its vae config.*not built"):
        load_model(tmp_path / "huge.pt")


def _fake_extractor(folder, payload=None):
    "An MNIST classifier description and weights in `folder`, as train-extractor writes them."
    from latentgen.fileio import sealed_json_bytes
    from latentgen.features import EXTRACTOR_FAMILIES, ClassifierNet
    net = ClassifierNet(**EXTRACTOR_FAMILIES["mnist"])
    buf = io.BytesIO(); torch.save(payload if payload is not None else net.state_dict(), buf)
    data = seal_torch_bytes(buf.getvalue())
    atomic_write_bytes(folder / "mnist-classifier.pt", data)
    import hashlib
    meta = {"dataset": "mnist", "config": net.config, "held_out_accuracy": 0.5, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_bytes(folder / "mnist-classifier.json", sealed_json_bytes(meta))


class _RunsCode:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


def test_extractor_files_are_checked_and_loaded_safely(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LATENTGEN_EXTRACTORS", str(tmp_path))
    _fake_extractor(tmp_path)
    main(["metrics", "list"])
    assert str(tmp_path / "mnist-classifier.json") in capsys.readouterr().out
    flip(tmp_path / "mnist-classifier.pt")
    assert "mnist-classifier.pt" in fails(["metrics", "list"])
    mark = tmp_path / "ran"
    _fake_extractor(tmp_path, payload={"x": _RunsCode(str(mark))})   # a crafted file whose description matches it
    assert "refused to open" in fails(["metrics", "list"]) and not mark.exists()


def test_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match=r"No space left on device \(writing .*x\.bin\)"):
        atomic_write_bytes(tmp_path / "x.bin", b"data")
    assert not list(tmp_path.iterdir())


# ----- run folders -----

def test_force_checks_everything_before_replacing_the_old_run(run):
    before = digests(run)
    msg = fails(["train", "vae", *TINY, "--steps", "5", "--out", str(run), "--force", "--split", "nope"])
    assert "split" in msg
    assert digests(run) == before                         # the old run is whole


def test_a_folder_holding_only_history_is_not_overwritten(tmp_path):
    (tmp_path / "h").mkdir(); (tmp_path / "h" / "history.json").write_text("{}")
    assert "already holds a run (history.json)" in fails(["train", "vae", *TINY, "--steps", "2", "--out", str(tmp_path / "h")])
    assert (tmp_path / "h" / "history.json").read_text() == "{}"


def test_a_run_folder_is_locked_and_stale_locks_are_taken_over(tmp_path):
    out = tmp_path / "r"; out.mkdir()
    with RunLock(out, "latentgen train (the first run)"):
        msg = fails(["train", "vae", *TINY, "--steps", "2", "--out", str(out)])
        assert "in use by another latentgen run" in msg and f"pid {os.getpid()}" in msg and "the first run" in msg
    assert not (out / RunLock.NAME).exists()
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()   # a killed run's lock file: nobody holds it
    (out / RunLock.NAME).write_text(json.dumps({"pid": dead.pid, "host": "here", "since": "then", "command": "x"}))
    main(["train", "vae", *TINY, "--steps", "2", "--out", str(out)])
    assert (out / "model.pt").is_file() and not (out / RunLock.NAME).exists()


def test_finite_divergence_is_not_saved(tmp_path):
    msg = fails(["train", "vae", *TINY, "--steps", "8", "--lr", "1e3", "--on-nan", "skip", "--out", str(tmp_path / "d")])
    assert "diverged" in msg and "model.pt was not written" in msg
    assert not (tmp_path / "d" / "model.pt").exists()


def test_evaluate_refuses_a_model_without_provenance(tmp_path):
    save_model(VAE(channels=1, image_size=8, latent_dim=2, width=4, hidden=8), tmp_path / "m.pt")
    msg = fails(["evaluate", str(tmp_path / "m.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
                 "--results", str(tmp_path / "res")])
    assert "does not record which data trained it" in msg and "--allow-train-images" in msg


# ----- sampling and small inputs -----

def test_sample_writes_bounded_grids_and_refuses_nan_models(run, tmp_path, capsys):
    main(["sample", str(run / "model.pt"), "--n", "10", "--per-image", "4", "--out", str(tmp_path / "s.png")])
    assert sorted(p.name for p in tmp_path.glob("s-*.png")) == ["s-000.png", "s-001.png", "s-002.png"]
    ck = torch.load(run / "model.pt", weights_only=True)
    next(v for k, v in ck["state_dict"].items() if v.is_floating_point()).fill_(float("nan"))
    save_torch(ck, tmp_path / "nan.pt")
    assert "NaN or infinite" in fails(["sample", str(tmp_path / "nan.pt"), "--out", str(tmp_path / "n.png")])
    assert not (tmp_path / "n.png").exists()


@pytest.mark.parametrize("extra, says", [
    (["--set", "lr=0"], "greater than 0"), (["--set", "beta=-1"], "at least 0"),
    (["--set", "latent_dim=foo"], "is a number"), (["--set", "lr=Infinity"], "finite")])
def test_config_values_are_range_checked(tmp_path, extra, says):
    assert says in fails(["train", "vae", "--dataset", "digits", "--steps", "2", *extra, "--out", str(tmp_path / "x")])


def test_rec_weight_must_be_a_number(tmp_path):
    assert "is a number" in fails(["train", "rivera-vae", "--dataset", "digits", "--steps", "2", "--set", "rec_weight=foo",
                                   "--out", str(tmp_path / "x")])


@pytest.mark.parametrize("opt", [["--seed", str(10 ** 23)], ["--seed", "-1"], ["--lr", "inf"]])
def test_option_ranges(tmp_path, opt, capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "vae", "--dataset", "digits", "--steps", "2", *opt, "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and opt[0] in capsys.readouterr().err


def test_dangling_out_symlink(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    assert "does not exist" in fails(["train", "vae", *TINY, "--steps", "2", "--out", str(tmp_path / "link")])
