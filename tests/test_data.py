import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from latentgen.data import (DatasetNotFoundError, check_images, data_roots, load_celeba, load_cifar10, load_dataset,
                            load_mnist_like, make_celeba_fixture, read_idx, to_signed, to_unit)
from latentgen.offline import prepare_offline
from latentgen.data import CIFAR10_CLASSES, write_idx
from tests.helpers import SHARED_DATA


@pytest.mark.parametrize("bad, msg", [
    (torch.rand(3, 8, 8), "[batch, channels"),
    (torch.randint(0, 255, (1, 3, 8, 8)), "floating point"),
    (torch.rand(1, 1, 8, 8), "3 channel"),
    (torch.rand(1, 3, 9, 8), "8x8"),
    (torch.rand(1, 3, 8, 8) + 1.5, "must lie in [0, 1]"),
])
def test_check_images_errors(bad, msg):
    with pytest.raises(ValueError, match=msg.replace("[", r"\[").replace("]", r"\]")):
        check_images(bad, channels=3, size=8, value_range=(0, 1))


def test_signed_unit_roundtrip():
    x = torch.rand(2, 1, 4, 4)
    assert torch.allclose(to_unit(to_signed(x)), x) and to_signed(torch.zeros(1)).item() == -1


def test_explicit_root_is_the_only_place_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTGEN_DATA", "/elsewhere")
    assert data_roots(tmp_path) == [tmp_path]
    assert data_roots()[0].as_posix() == "/elsewhere"


def test_missing_dataset_error_names_dataset_paths_and_fix(tmp_path):
    with pytest.raises(DatasetNotFoundError) as e:
        load_mnist_like("mnist", "train", root=tmp_path, download=False)
    msg = str(e.value)
    assert "MNIST" in msg and str(tmp_path) in msg and "LATENTGEN_DATA" in msg and "train-images-idx3-ubyte" in msg


def test_unknown_dataset_and_split():
    with pytest.raises(ValueError, match="Unknown dataset 'svhn'"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("digits", "valid")


def test_idx_reader_plain_and_gzip(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (3, 5, 4))
    for name in ("a", "a.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a)
    (tmp_path / "trunc").write_bytes((tmp_path / "a").read_bytes()[:-3])
    with pytest.raises(ValueError, match="header says"):
        read_idx(tmp_path / "trunc")


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="offline MNIST copy not present")
def test_real_mnist_test_split_alone():
    ds = load_mnist_like("mnist", "test", root=SHARED_DATA, download=False)
    assert len(ds) == 10000 and ds.image_shape == (1, 28, 28)
    # class counts published with the offline copy (shared/data/README.md)
    assert ds.targets.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    x, y = ds[0]
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1 and x.max() > 0.9


def _jpeg(value):
    b = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, np.uint8)).save(b, format="JPEG", quality=95)
    return b.getvalue()


def test_cifar10_from_jpeg_folder_and_zip(tmp_path):
    z = tmp_path / "src" / "cifar10-jpg.zip"; z.parent.mkdir()
    with zipfile.ZipFile(z, "w") as f:
        for i, cls in enumerate(CIFAR10_CLASSES):
            for k in range(2):
                f.writestr(f"train/{cls}/{k:04d}.jpg", _jpeg(10 + 25 * i))
                f.writestr(f"test/{cls}/{k:04d}.jpg", _jpeg(10 + 25 * i))
    from_zip = load_cifar10("train", root=z.parent, download=False)
    assert from_zip.targets.tolist() == [i // 2 for i in range(20)]
    report = prepare_offline(z.parent, root=tmp_path / "data")
    assert report["actions"] == [f"CIFAR-10: extracted 40 JPEGs from {z}"]
    assert (tmp_path / "data" / "cifar10-jpg" / "test" / "truck").is_dir()
    ds = load_cifar10("test", root=tmp_path / "data", download=False)
    assert len(ds) == 20 and abs(ds[19][0].mean().item() - 235 / 255) < 0.02
    assert "JPEG" in ds.describe()["source"]
    # a class folder lost from the extracted copy is an error naming it, and `prepare` puts it back
    import shutil
    shutil.rmtree(tmp_path / "data" / "cifar10-jpg" / "test" / "cat")
    with pytest.raises(ValueError, match="no images of class.es. cat"):
        load_cifar10("test", root=tmp_path / "data", download=False)
    assert "extracted" in prepare_offline(z.parent, root=tmp_path / "data")["actions"][0]
    assert len(load_cifar10("test", root=tmp_path / "data", download=False)) == 20


def test_celeba_fixture_in_torchvision_format(tmp_path):
    make_celeba_fixture(tmp_path, n=9)
    splits = {s: len(load_celeba(s, root=tmp_path, download=False)) for s in ("train", "valid", "test", "all")}
    assert splits == {"train": 3, "valid": 3, "test": 3, "all": 9}
    ds = load_celeba("all", root=tmp_path, download=False)
    x, a = ds[4]
    assert x.shape == (3, 64, 64) and a.shape == (40,) and set(a.tolist()) <= {0.0, 1.0}
    # attribute row 5 of the file, +-1 mapped to {0, 1}
    row = (tmp_path / "celeba" / "list_attr_celeba.txt").read_text().splitlines()[2 + 4].split()[1:]
    assert a.tolist() == [(int(v) + 1) / 2 for v in row]
    assert ds.attr_names[20] == "Male"


def test_subset_is_seeded_and_recorded():
    a, b = load_dataset("digits", subset=50, seed=4), load_dataset("digits", subset=50, seed=5)
    assert a.describe()["subset"] == {"n": 50, "of": 1437, "seed": 4}
    assert not torch.equal(a.indices, b.indices)
    assert torch.equal(a.indices, load_dataset("digits", subset=50, seed=4).indices)


def _fixture_zip(tmp_path, extra=None):
    z = tmp_path / "src" / "cifar10-jpg.zip"; z.parent.mkdir(exist_ok=True)
    with zipfile.ZipFile(z, "w") as f:
        for i, cls in enumerate(CIFAR10_CLASSES):
            for split in ("train", "test"):
                f.writestr(f"{split}/{cls}/0000.jpg", _jpeg(10 + 25 * i))
        for name, data in (extra or {}).items():
            f.writestr(name, data)
    return z


def test_check_and_prepare_verify_content_not_sizes(tmp_path):
    "A JPEG changed in place (same size) is reported by `data check` and repaired by `data prepare` (issue 29)."
    from latentgen.offline import data_status
    z = _fixture_zip(tmp_path)
    prepare_offline(z.parent, root=tmp_path / "data")
    status = lambda: {r["split"]: r for r in data_status(tmp_path / "data") if r["dataset"] == "cifar10"}
    assert status()["test"]["status"] == "ok"
    img = tmp_path / "data" / "cifar10-jpg" / "test" / "cat" / "0000.jpg"
    b = bytearray(img.read_bytes()); b[len(b) // 2] ^= 64; img.write_bytes(bytes(b))
    assert status()["test"]["status"] == "corrupt" and "test/cat/0000.jpg" in status()["test"]["detail"]
    assert status()["train"]["status"] == "ok"
    assert "extracted" in prepare_offline(z.parent, root=tmp_path / "data")["actions"][0]   # repaired, not "already"
    assert status()["test"]["status"] == "ok"


def test_corrupted_decode_cache_is_rebuilt_and_stale_temporaries_removed(tmp_path, capsys):
    import subprocess, sys
    z = _fixture_zip(tmp_path)
    prepare_offline(z.parent, root=tmp_path / "data")
    first = load_cifar10("test", root=tmp_path / "data", download=False)
    caches = [p for p in (tmp_path / "data" / "cifar10-jpg").glob(".*.pt")]
    assert caches, "no decode cache written"
    cache = caches[0]
    b = bytearray(cache.read_bytes()); b[len(b) // 3] ^= 1; cache.write_bytes(bytes(b))
    dead = subprocess.Popen([sys.executable, "-c", "pass"]); dead.wait()
    stale = cache.with_name(f"{cache.name}.tmp{dead.pid}"); stale.write_bytes(b"partial")
    again = load_cifar10("test", root=tmp_path / "data", download=False)
    assert "was corrupted" in capsys.readouterr().err and not stale.exists()
    assert torch.equal(first.images, again.images)


def test_zip_path_traversal_is_refused(tmp_path):
    z = _fixture_zip(tmp_path, {"../evil.jpg": b"x"})
    with pytest.raises(ValueError, match="leads outside"):
        prepare_offline(z.parent, root=tmp_path / "data")
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path / "data" / "cifar10-jpg").exists()
