"Opening a model file or checkpoint never runs code (weights_only=True), through the API and the command line."
import os

import numpy as np
import pytest
import torch

from latentgen.cli import main
from latentgen.fileio import UnsafeFileError, safe_torch_load
from latentgen.data import load_dataset
from latentgen.models import VAE, convert_file, load_model, save_model
from latentgen.train import Trainer


class RunsCode:
    "Unpickling this calls os.makedirs(path): the side effect a crafted file would have."
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.makedirs, (self.path,))


@pytest.fixture
def crafted(tmp_path):
    mark = tmp_path / "the-file-ran-code"
    torch.save({"name": "vae", "config": {}, "state_dict": {}, "extra": RunsCode(str(mark))}, tmp_path / "evil.pt")
    (tmp_path / "run").mkdir()
    torch.save({"model": RunsCode(str(mark)), "rng": {}}, tmp_path / "run" / "trainer.ckpt")
    return tmp_path, mark


def test_load_model_refuses_a_crafted_file(crafted):
    d, mark = crafted
    with pytest.raises(UnsafeFileError, match="refused to open"):
        load_model(d / "evil.pt")
    assert not mark.exists()


@pytest.mark.parametrize("argv", [["sample", "{d}/evil.pt", "--out", "{d}/s.png"],
                                  ["evaluate", "{d}/evil.pt", "--dataset", "digits", "--backend", "random"],
                                  ["train", "vae", "--dataset", "digits", "--steps", "2", "--out", "{d}/run", "--resume"]])
def test_cli_refuses_a_crafted_file_in_one_line(crafted, argv):
    d, mark = crafted
    with pytest.raises(SystemExit) as e:
        main([a.format(d=d) for a in argv])
    assert "refused to open" in str(e.value) and "\n" not in str(e.value).strip()
    assert not mark.exists()


def test_checkpoints_and_models_open_with_weights_only(tmp_path):
    ds = load_dataset("digits", "train", subset=256)
    t = Trainer(VAE(channels=1, image_size=8, latent_dim=2, width=4, hidden=8), seed=0, progress=False,
                ckpt_path=tmp_path / "trainer.ckpt")
    t.fit(ds, steps=3, batch_size=64)
    ck = torch.load(tmp_path / "trainer.ckpt", weights_only=True)      # plain: no allow-list needed
    assert ck["step"] == 3 and isinstance(ck["rng"]["numpy"]["keys"], torch.Tensor)
    path = save_model(t.model.cpu(), tmp_path / "model.pt", profile="quick")
    assert torch.load(path, weights_only=True)["name"] == "vae" and load_model(path).config["latent_dim"] == 2


def test_old_checkpoint_gets_a_message_then_converts(tmp_path):
    torch.save({"model": {}, "rng": {"numpy": np.random.get_state(), "torch": torch.get_rng_state()}}, tmp_path / "old.ckpt")
    with pytest.raises(UnsafeFileError, match="latentgen convert"):
        safe_torch_load(tmp_path / "old.ckpt")
    with pytest.raises(SystemExit, match="--i-trust-this-file"):
        main(["convert", str(tmp_path / "old.ckpt")])
    main(["convert", str(tmp_path / "old.ckpt"), "--i-trust-this-file"])
    assert safe_torch_load(tmp_path / "old.ckpt")["rng"]["numpy"]["name"] == "MT19937"
