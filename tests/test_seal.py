"""Issue 38: a seal whose absence can be told from its damage, and bounds before work. Files latentgen writes say at
their start that they are sealed, so a cut, extended or unsealed copy is refused rather than read unchecked; sizes are
checked before anything is read or inflated; model sizes are checked; the run lock follows no symlink."""
import gzip
import io
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from latentgen.cli import main
from latentgen.fileio import (SEAL_FORMAT, CorruptFileError, UncheckedFileWarning, UnreadableFileError, check_seal,
    load_checked_json, safe_torch_load, save_torch, seal_version, sealed_json_bytes, sealed_torch_bytes)
from latentgen.models import VAE, load_model, save_model
from latentgen.results import load_results, save_results

ROOT = Path(__file__).resolve().parents[1]


def fails(argv) -> str:
    "Run the command line, which must fail with one line; returns the message."
    with pytest.raises(SystemExit) as e:
        main(argv)
    msg = str(e.value)
    assert msg.startswith("latentgen: error:") and "\n" not in msg.strip(), msg
    return msg


@pytest.fixture
def model_pt(tmp_path):
    "A sealed model file, as `latentgen train` writes it."
    return save_model(VAE(channels=1, image_size=8, latent_dim=2, width=4, hidden=8), tmp_path / "model.pt")


def _sample(path, tmp_path):
    return fails(["sample", str(path), "--n", "4", "--out", str(tmp_path / "s.png")])


# ----- torch files -----

def test_files_latentgen_writes_announce_their_seal(model_pt):
    data = model_pt.read_bytes()
    assert seal_version(data) == SEAL_FORMAT == 2 and data[30:49] == b"latentgen-sealed-v2"
    assert check_seal(data, model_pt) is True
    assert torch.load(model_pt, weights_only=True)["name"] == "vae"        # still a plain torch file for torch


@pytest.mark.parametrize("cut", [1, 10])
def test_a_sealed_file_cut_by_one_byte_is_refused(model_pt, tmp_path, cut):
    model_pt.write_bytes(model_pt.read_bytes()[:-cut])
    assert "model.pt is corrupted" in _sample(model_pt, tmp_path) and not (tmp_path / "s.png").exists()
    with pytest.raises(CorruptFileError, match="cut, extended"):
        load_model(model_pt)


def test_a_sealed_file_with_bytes_appended_is_refused(model_pt, tmp_path):
    model_pt.write_bytes(model_pt.read_bytes() + b"1234567")
    assert "model.pt is corrupted" in _sample(model_pt, tmp_path)


def test_a_cut_file_with_a_bit_flip_in_its_weights_is_refused(model_pt, tmp_path):
    b = bytearray(model_pt.read_bytes()[:-1]); b[len(b) // 2] ^= 4
    model_pt.write_bytes(bytes(b))
    assert "model.pt is corrupted" in _sample(model_pt, tmp_path)


def test_any_single_bit_flip_in_a_sealed_file_is_caught():
    good = sealed_torch_bytes({"w": torch.arange(20.0), "name": "x"})
    missed = []
    for i in range(len(good)):
        b = bytearray(good); b[i] ^= 1 << (i % 8)
        try:
            check_seal(bytes(b), "f")
            missed.append(i)
        except (CorruptFileError, UnreadableFileError):
            pass
    assert not missed, f"flips at {missed[:10]} were not detected"


def test_a_plain_torch_file_with_trailing_bytes_is_refused(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "p.pt")
    (tmp_path / "p.pt").write_bytes((tmp_path / "p.pt").read_bytes() + b"\x00" * 7)
    with pytest.raises(CorruptFileError, match="7 bytes that are no latentgen seal"):
        safe_torch_load(tmp_path / "p.pt")


def test_a_plain_torch_file_is_read_with_a_warning(tmp_path):
    torch.save({"w": torch.ones(3)}, tmp_path / "p.pt")
    with pytest.warns(UncheckedFileWarning, match="carries no checksum"):
        assert safe_torch_load(tmp_path / "p.pt")["w"].sum() == 3


def _first_format(tmp_path):
    "A file as latentgen wrote it before the marker: torch.save output (archive folder 'archive'), the tail seal."
    from latentgen.fileio import seal_torch_bytes
    buf = io.BytesIO(); torch.save({"w": torch.arange(30.0)}, buf)
    (tmp_path / "old.pt").write_bytes(seal_torch_bytes(buf.getvalue()))
    return tmp_path / "old.pt"


@pytest.mark.parametrize("path", ["tests/fixtures/trainer-34b43ec.ckpt", "old.pt"])
def test_files_of_the_first_seal_format_still_load_and_are_checked(tmp_path, path):
    path = ROOT / path if path.startswith("tests/") else _first_format(tmp_path)
    data = path.read_bytes()
    assert seal_version(data) is None and check_seal(data, path) is True      # intact: checked, used
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                       # and no warning
        safe_torch_load(path)
    for bad in (data[:-1], data[:-10], data + b"1234567"):
        (tmp_path / "f.pt").write_bytes(bad)
        with pytest.raises(CorruptFileError):
            safe_torch_load(tmp_path / "f.pt")
    b = bytearray(data); b[len(b) // 3] ^= 1
    (tmp_path / "f.pt").write_bytes(bytes(b))
    with pytest.raises(CorruptFileError, match="no longer match"):
        safe_torch_load(tmp_path / "f.pt")


# ----- JSON -----

def test_results_json_without_its_checksum_is_refused(tmp_path):
    p = save_results({"fd": 12.5}, chapter="ch0", dataset="digits", config={}, seed=0, profile="quick", root=tmp_path)
    d = json.loads(p.read_text())
    assert d["latentgen_seal"] == 2 and load_results(p)["metrics"]["fd"] == 12.5
    d.pop("checksum"); p.write_text(json.dumps(d))
    with pytest.raises(CorruptFileError, match='"checksum" entry is gone'):
        load_results(p)


@pytest.mark.parametrize("marker", ["2", None, 0, True])
def test_results_json_with_a_damaged_marker_is_refused(tmp_path, marker):
    p = tmp_path / "r.json"
    d = json.loads(sealed_json_bytes({"fd": 1.0})); d["latentgen_seal"] = marker
    p.write_text(json.dumps(d))
    with pytest.raises(CorruptFileError):
        load_checked_json(p)


def test_results_json_without_its_marker_is_refused(tmp_path):
    p = tmp_path / "r.json"
    d = json.loads(sealed_json_bytes({"fd": 1.0})); d.pop("latentgen_seal")      # read as format 1: the sum covers it
    p.write_text(json.dumps(d))
    with pytest.raises(CorruptFileError, match="no longer matches"):
        load_checked_json(p)


def test_json_of_the_first_seal_format_still_loads(tmp_path):
    import hashlib
    from latentgen.fileio import _canonical_json
    rec = {"dataset": "mnist", "fd": 3.5}                       # a `checksum`, no marker: as latentgen wrote it before
    p = tmp_path / "old.json"
    p.write_text(json.dumps({**rec, "checksum": "sha256:" + hashlib.sha256(_canonical_json(rec)).hexdigest()}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_checked_json(p)["fd"] == 3.5
    p.write_text(p.read_text().replace("3.5", "2.5"))
    with pytest.raises(CorruptFileError, match="no longer matches"):
        load_checked_json(p)


def test_the_packaged_classifier_descriptions_are_sealed():
    for n in ("mnist", "cifar10"):
        p = ROOT / f"latentgen/weights/{n}-classifier.json"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert load_checked_json(p)["latentgen_seal"] == 2


# ----- caches -----

def _cifar(root):
    from latentgen.data import load_cifar10, make_cifar10_fixture
    make_cifar10_fixture(root / "cifar10-jpg.zip", k=2)
    return load_cifar10


def test_cache_with_zeroed_bytes_is_refused(tmp_path, capsys):
    load_cifar10 = _cifar(tmp_path)
    first = load_cifar10("test", root=tmp_path).images.clone()
    cache = tmp_path / "cifar10-jpg" / ".test-uint8.pt"
    assert seal_version(cache.read_bytes()) == SEAL_FORMAT
    b = bytearray(cache.read_bytes()); b[2000:-2000] = bytes(len(b) - 4000)   # zeroed, then its last byte cut
    cache.write_bytes(bytes(b[:-1]))
    again = load_cifar10("test", root=tmp_path).images
    assert "was corrupted" in capsys.readouterr().err and torch.equal(again, first) and first.float().mean() > 20
    assert check_seal(cache.read_bytes(), cache) is True                     # rebuilt


def test_a_cache_without_a_seal_is_not_trusted(tmp_path):
    load_cifar10 = _cifar(tmp_path)
    first = load_cifar10("test", root=tmp_path).images.clone()
    cache = tmp_path / "cifar10-jpg" / ".test-uint8.pt"
    c = torch.load(cache, weights_only=True)
    torch.save({**c, "images": torch.zeros_like(c["images"])}, cache)       # its key, black images, no seal
    assert torch.equal(load_cifar10("test", root=tmp_path).images, first)
    assert seal_version(cache.read_bytes()) == SEAL_FORMAT


# ----- the run lock -----

TINY = ["--dataset", "digits", "--batch-size", "32", "--set", "latent_dim=2", "width=4", "hidden=8"]


def test_lock_refuses_a_symlink(tmp_path):
    victim = tmp_path / "precious.txt"; victim.write_text("keep me")
    out = tmp_path / "run"; out.mkdir()
    (out / ".latentgen.lock").symlink_to(victim)
    msg = fails(["train", "vae", *TINY, "--steps", "2", "--out", str(out)])
    assert "is a symbolic link" in msg and "delete the link" in msg
    assert victim.read_text() == "keep me" and (out / ".latentgen.lock").is_symlink()
    assert not (out / "model.pt").exists()


def test_lock_refuses_a_dangling_symlink_without_creating_its_target(tmp_path):
    out = tmp_path / "run"; out.mkdir()
    (out / ".latentgen.lock").symlink_to(tmp_path / "created-by-the-lock")
    assert "is a symbolic link" in fails(["train", "vae", *TINY, "--steps", "2", "--out", str(out)])
    assert not (tmp_path / "created-by-the-lock").exists()


def test_lock_refuses_a_fifo(tmp_path):
    import os
    out = tmp_path / "run"; out.mkdir()
    os.mkfifo(out / ".latentgen.lock")
    assert "not a regular file" in fails(["train", "vae", *TINY, "--steps", "2", "--out", str(out)])


# ----- sizes -----

def test_latent_dim_zero_is_refused(tmp_path):
    msg = fails(["train", "vae", "--dataset", "digits", "--steps", "2", "--set", "latent_dim=0", "--out", str(tmp_path / "x")])
    assert "vae: latent_dim must be a whole number of at least 1" in msg
    assert not (tmp_path / "x" / "model.pt").exists()
    with pytest.raises(ValueError, match="vae: latent_dim must be"):
        VAE(latent_dim=0)


@pytest.mark.parametrize("model, key, value", [("vae", "width", 0), ("vae", "hidden", -3), ("cvae", "flow_hidden", 0),
                                               ("rivera-vae", "widths", [16, 0]), ("hvae", "z_channels", 0),
                                               ("glf", "gmm_components", 0)])
def test_sizes_must_be_at_least_one(model, key, value):
    from latentgen.cli import main as _load_all                    # the command line registers the chapters' models
    from latentgen.models import build_model
    import latentgen.ch1_vae, latentgen.ch2_cvae_nf, latentgen.ch3_glf, latentgen.ch4_hvae   # noqa: F401
    with pytest.raises(ValueError, match=f"{model}: {key} must be"):
        build_model(model, **{key: value})


def test_training_steps_and_batch_size_must_be_positive():
    from latentgen.data import load_dataset
    from latentgen.train import Trainer
    t = Trainer(VAE(channels=1, image_size=8, latent_dim=2, width=4, hidden=8), seed=0, progress=False)
    ds = load_dataset("digits", "train", subset=64)
    for kw in ({"steps": 0}, {"steps": 2, "batch_size": 0}, {"epochs": -1}):
        with pytest.raises(ValueError, match="Trainer.fit: .* must be a whole number of at least 1"):
            t.fit(ds, **kw)


# ----- bounds before reading -----

def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    big = tmp_path / "big.pt"
    with open(big, "wb") as f:                              # 1.5 GB, sparse: nothing of it is on disk
        f.truncate(3 << 29)
    def no_read(*a, **k):
        raise AssertionError("the file was read")
    monkeypatch.setattr(Path, "read_bytes", no_read)
    with pytest.raises(UnreadableFileError, match=r"big.pt \(model file\) is 1,536 MiB, over the 1,024 MiB .*MAX_TORCH_FILE_BYTES"):
        safe_torch_load(big, what="model file")


def _crafted_zip(declare: int | None = None) -> bytes:
    "A torch file whose one data member is 32 MiB of zeros deflated to a few KiB (declaring `declare` bytes if given)."
    import struct
    import zipfile
    buf = io.BytesIO(); torch.save({"w": torch.zeros(2)}, buf)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as src, zipfile.ZipFile(out, "w") as z:
        for i in src.infolist():
            z.writestr(i.filename, src.read(i.filename))
        z.writestr("archive/data/1", b"\x00" * (32 << 20), compress_type=zipfile.ZIP_DEFLATED)
    data = bytearray(out.getvalue())
    if declare is not None:                                 # lie in the central directory: the size torch allocates
        p = data.rfind(b"PK\x01\x02")
        data[p + 24:p + 28] = struct.pack("<I", declare)
    return bytes(data)


def test_zip_member_over_the_limit_is_refused_before_inflating(tmp_path, monkeypatch):
    from latentgen import fileio
    (tmp_path / "bomb.pt").write_bytes(_crafted_zip(declare=3_000_000_000))   # 3 GB declared: refused by the default
    assert (tmp_path / "bomb.pt").stat().st_size < 1 << 20
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncheckedFileWarning)
        with pytest.raises(UnreadableFileError, match="MAX_TORCH_INFLATED_BYTES"):
            safe_torch_load(tmp_path / "bomb.pt")
        (tmp_path / "bomb.pt").write_bytes(_crafted_zip())                    # honest sizes, but over a lower limit
        monkeypatch.setattr(fileio, "MAX_TORCH_INFLATED_BYTES", 16 << 20)
        with pytest.raises(UnreadableFileError, match=r"more than 16 MiB \(MAX_TORCH_INFLATED_BYTES"):
            safe_torch_load(tmp_path / "bomb.pt")
    assert not loads                                                          # torch never unpacked it


def test_a_stored_member_that_declares_more_than_it_stores_is_refused(tmp_path):
    import struct
    buf = io.BytesIO(); torch.save({"w": torch.zeros(2)}, buf)
    data = bytearray(buf.getvalue())
    p = data.rfind(b"PK\x01\x02")
    data[p + 24:p + 28] = struct.pack("<I", 2_000_000)
    (tmp_path / "lie.pt").write_bytes(bytes(data))
    with pytest.warns(UncheckedFileWarning), pytest.raises(UnreadableFileError, match="declares 2,000,000 bytes"):
        safe_torch_load(tmp_path / "lie.pt")


def _gz_idx(path, header_dims, payload: int):
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, len(header_dims)]) + np.array(header_dims, dtype=">i4").tobytes())
        for _ in range(payload >> 20):
            f.write(bytes(1 << 20))


def test_mnist_gz_header_over_the_limit_is_refused_before_inflating(tmp_path):
    from latentgen.data import read_idx
    _gz_idx(tmp_path / "huge.gz", (60000, 28000, 28), 1 << 20)         # asks for 47 GB
    with pytest.raises(ValueError, match="over MAX_IDX_BYTES"):
        read_idx(tmp_path / "huge.gz")


def test_mnist_gz_that_inflates_past_its_header_is_refused(tmp_path, monkeypatch):
    from latentgen.data import read_idx
    _gz_idx(tmp_path / "bomb.gz", (10, 28, 28), 64 << 20)              # header: 7,840 bytes; the stream: 64 MiB
    reads = []
    real = gzip.GzipFile.read
    monkeypatch.setattr(gzip.GzipFile, "read", lambda self, n=-1: reads.append(n) or real(self, n))
    with pytest.raises(ValueError, match=r"header says \(10, 28, 28\) but the file has more data"):
        read_idx(tmp_path / "bomb.gz")
    assert all(0 <= n <= 7841 for n in reads), reads                  # never read whole
