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


def test_aggregate_kl_measures_the_mixture_not_the_means():
    "A switched-off dimension (mu = 0, sigma = 1): the mixture is the prior, so (9a) and (9c) are 0 while (9) is large."
    from latentgen.ch1_vae import aggregate_kl_mc, moment_matched_kl
    torch.manual_seed(0)
    mu, logvar = torch.randn(800, 1) * 1e-3, torch.zeros(800, 1)
    assert aggregate_posterior_kl(mu) > 5
    assert abs(moment_matched_kl(mu, logvar)) < 1e-3
    r = aggregate_kl_mc(mu, logvar, n_samples=4000, generator=torch.Generator().manual_seed(0))
    assert abs(r["kl"]) < 3 * r["se"] + 1e-3 and abs(r["information"]) < 0.01
    # well-separated narrow components: information at log N, the rest is aggregate KL, (9a) far below the truth
    mu2 = torch.tensor([[-3.0, 0], [3.0, 0], [0, -3.0], [0, 3.0]])
    lv2 = torch.full_like(mu2, -6.0)
    r2 = aggregate_kl_mc(mu2, lv2, n_samples=4000, generator=torch.Generator().manual_seed(0))
    assert abs(r2["information"] - r2["log_n"]) < 4 * r2["se"] and r2["kl"] > moment_matched_kl(mu2, lv2) + 3


def test_rivera_vae_works_on_the_authors_scale_and_balances_its_weights():
    from latentgen.ch1_vae import balanced_weights
    m = RiveraVAE(channels=3, image_size=32, latent_dim=4, widths=(8, 8, 8), blocks=1, disc_channels=(8, 8, 8, 8, 8, 1))
    assert abs(m.rec_weight - 78.125) < 1e-9 and abs(m.adv_weight - 1.5625) < 1e-9
    assert RiveraVAE(channels=3, image_size=32, rec_weight=5000.0).rec_weight == 5000.0
    assert balanced_weights((3, 64, 64))["rec_weight"] == 4 * balanced_weights((3, 32, 32))["rec_weight"]
    out = m.decode(torch.randn(16, 4) * 50)
    assert out.min() >= 0 and out.max() <= 1                     # decoded images come back on [0, 1]
    x = torch.zeros(2, 3, 32, 32)
    terms = m.loss((x,))
    x_hat = m.decoder(m.encode(x)[0])
    # the reconstruction term is measured on [-1, 1]: a black image is -1 there, not 0
    assert abs(terms["rec"].item() - m.rec_weight * (x_hat + 1).abs().mean().item()) < 0.5 * m.rec_weight
