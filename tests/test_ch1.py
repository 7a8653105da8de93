"Chapter 1 (Rivera): the exported objective through the package and the command line (the notebook has the derivation tests)."
import json

import torch
from torch.distributions import Normal, kl_divergence

from latentgen.ch1_vae import RiveraVAE, aggregate_posterior_kl, variance_regularizer
from latentgen.cli import main
from latentgen.models import load_model
from latentgen.train import Trainer


def test_aggregate_kl_is_the_kl_of_the_fitted_gaussian():
    torch.manual_seed(0)
    mu = torch.randn(500, 3) * torch.tensor([0.2, 1.0, 3.0]) + torch.tensor([1.0, 0.0, -1.0])
    ref = kl_divergence(Normal(mu.mean(0), mu.std(0, unbiased=False)), Normal(0.0, 1.0)).sum()
    assert torch.allclose(aggregate_posterior_kl(mu), ref, atol=1e-4)
    # the per-image KL would pull means to 0 even when they are spread like the prior; the aggregate KL does not
    z = torch.randn(4096, 3)
    assert aggregate_posterior_kl(z) < 0.01


def test_variance_regularizer_is_minimal_at_unit_variance():
    lv = torch.linspace(-4, 4, 81).view(-1, 1)
    r = variance_regularizer(lv)
    assert r.argmin().item() == 40 and r[40].item() == 0.0 and (r >= 0).all()


def test_rivera_trains_through_the_fit_loop_and_lowers_the_aggregate_kl():
    torch.manual_seed(0)
    model = RiveraVAE(channels=1, image_size=8, latent_dim=4, widths=(8,), blocks=1, disc_channels=(8, 8, 8, 8, 8, 1), lr=3e-3)
    data = torch.utils.data.TensorDataset(torch.rand(256, 1, 8, 8))
    tr = Trainer(model, seed=0, progress=False)
    h = tr.fit(data, steps=60, batch_size=32)
    kl = h.series("kl_agg")[1]
    assert sum(kl[-10:]) / 10 < sum(kl[:3]) / 3
    assert set(tr.optimizers) == {"loss", "disc"}


def test_cli_trains_and_evaluates_the_chapter_model(tmp_path, capsys):
    main(["train", "rivera-vae", "--dataset", "digits", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path / "r"),
          "--set", "latent_dim=4", "widths=[8]", 'disc_channels=[8,8,8,8,8,1]'])
    model = load_model(tmp_path / "r" / "model.pt")
    assert model.model_name == "rivera-vae" and model.config["latent_dim"] == 4
    main(["evaluate", str(tmp_path / "r" / "model.pt"), "--dataset", "digits", "--n", "64", "--backend", "random",
          "--chapter", "ch1", "--results", str(tmp_path / "res")])
    r = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert r["chapter"] == "ch1" and r["metric_backend"] == "latentgen-randconv64" and r["metrics"]["reconstruction"]["mse"] > 0
