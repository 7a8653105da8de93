"Chapter 2 (De): the conditional VAE through the package and the command line (the notebook has the derivation tests)."
import json

import torch

from latentgen.ch2_cvae_nf import CVAE, label_vector
from latentgen.cli import main
from latentgen.data import load_dataset
from latentgen.metrics import iwae_nll
from latentgen.models import load_model
from latentgen.train import Trainer


def test_flow_prior_learns_a_label_dependent_prior():
    "Codes that depend on the label: the flow prior must end up giving them a higher density than N(0, I)."
    torch.manual_seed(0)
    model = CVAE(channels=1, image_size=8, label_dim=2, latent_dim=2, width=4, hidden=16, prior="flow",
                 flow_blocks=2, flow_hidden=32, lr=1e-2)
    y = torch.randint(0, 2, (512,))
    z = torch.randn(512, 2) * 0.3 + torch.stack([4.0 * (2 * y - 1), torch.zeros(512)], 1)   # label 0 at -4, label 1 at +4
    opt = torch.optim.Adam(model.flow.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad(); (-model.flow.log_prob(z, label_vector(y, 2)).mean()).backward(); opt.step()
    model.eval()
    flow_lp = model.log_prior(z, label_vector(y, 2)).mean()
    std_lp = -0.5 * (z ** 2 + torch.log(torch.tensor(2 * torch.pi))).sum(1).mean()
    assert flow_lp > std_lp + 5
    s0 = model.sample_latents(label_vector(torch.zeros(500, dtype=torch.long), 2))
    s1 = model.sample_latents(label_vector(torch.ones(500, dtype=torch.long), 2))
    assert s0[:, 0].mean() < -2 and s1[:, 0].mean() > 2


def test_sigma_cvae_trains_and_its_iwae_is_tighter_than_one_sample():
    ds = load_dataset("digits", "train", subset=512)
    model = CVAE(channels=1, image_size=8, label_dim=10, latent_dim=4, width=8, hidden=32)
    Trainer(model, seed=0, progress=False).fit(ds, steps=400, batch_size=64)
    model.eval()
    assert model.log_sigma < -0.5                       # sigma* fell well below 1
    torch.manual_seed(0)
    k1 = iwae_nll(model.log_weights, ds, k=1, n=128, conditional=True)["nll_nats"]
    k20 = iwae_nll(model.log_weights, ds, k=20, n=128, conditional=True)["nll_nats"]
    assert k20 < k1


def test_cli_trains_and_evaluates_a_conditional_model(tmp_path, capsys):
    main(["train", "cvae", "--dataset", "digits", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path / "r"),
          "--set", "latent_dim=2", "width=4", "hidden=8", 'prior="flow"', "flow_hidden=8"])
    model = load_model(tmp_path / "r" / "model.pt")
    assert model.model_name == "cvae" and model.config["label_type"] == "class" and model.flow is not None
    main(["evaluate", str(tmp_path / "r" / "model.pt"), "--dataset", "digits", "--n", "64", "--backend", "random",
          "--chapter", "ch2", "--results", str(tmp_path / "res"), "--iwae-k", "2"])
    r = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert r["chapter"] == "ch2" and r["metrics"]["iwae"]["k"] == 2 and r["metrics"]["reconstruction"]["mse"] > 0


def test_discretised_likelihood_is_a_probability():
    "Eq. (12) is a probability, so the IWAE bound on log P(x | y) is <= 0 and bits/dim are positive (a continuous density gave -1.28)."
    ds = load_dataset("digits", "train", subset=64)
    model = CVAE(channels=1, image_size=8, label_dim=10, latent_dim=4, width=8, hidden=32)
    Trainer(model, seed=0, progress=False).fit(ds, steps=50, batch_size=32)
    model.eval()
    x = torch.stack([ds[i][0] for i in range(16)]); t = torch.tensor([ds[i][1] for i in range(16)])
    lw = model.log_weights(x, t, k=3)
    assert lw.shape == (3, 16)
    r = iwae_nll(model.log_weights, ds, k=5, n=64, conditional=True)
    assert r["bpd"] > 0 and r["nll_nats"] > 0


def test_learned_conditional_priors_follow_label_dependent_codes():
    "Both the conditional Gaussian (3a) and De's construction (8a) must learn codes that sit at -3 or +3 by label."
    torch.manual_seed(0)
    y = torch.randint(0, 2, (512,))
    z = torch.randn(512, 2) * 0.3 + torch.stack([3.0 * (2 * y - 1), torch.zeros(512)], 1)
    for prior in ("conditional", "de"):
        model = CVAE(channels=1, image_size=8, label_dim=2, latent_dim=2, width=4, hidden=16, prior=prior,
                     flow_blocks=1, flow_hidden=16)
        params = list(model.prior_net.parameters()) + (list(model.flow.parameters()) if model.flow is not None else [])
        opt = torch.optim.Adam(params, lr=1e-2)
        for _ in range(300):
            opt.zero_grad(); (-model.log_prior(z, label_vector(y, 2)).mean()).backward(); opt.step()
        model.eval()
        std_lp = -0.5 * (z ** 2 + torch.log(torch.tensor(2 * torch.pi))).sum(1).mean()
        assert model.log_prior(z, label_vector(y, 2)).mean() > std_lp + 3, prior
        s1 = model.sample_latents(label_vector(torch.ones(500, dtype=torch.long), 2))
        s0 = model.sample_latents(label_vector(torch.zeros(500, dtype=torch.long), 2))
        assert s0[:, 0].mean() < -2 and s1[:, 0].mean() > 2, prior


def test_prior_classes_and_files_saved_before_them(tmp_path):
    "Each `prior` is a module; a file whose weights use the old names (flow.*, prior_net.*) loads into it, values intact."
    from latentgen.ch2_cvae_nf import CVAE, DePrior, FlowPrior, PRIORS
    from latentgen.fileio import save_torch
    from latentgen.models import load_model
    kw = dict(channels=1, image_size=8, label_dim=3, latent_dim=4, width=8, hidden=32, flow_hidden=16, prior_hidden=16)
    for prior in PRIORS:
        torch.manual_seed(0)
        m = CVAE(prior=prior, **kw)
        assert isinstance(m.prior, PRIORS[prior]) and (m.flow is not None) == isinstance(m.prior, (FlowPrior, DePrior))
        for p in m.parameters():
            p.data.add_(0.1 * torch.randn_like(p))
        old = {(k.replace("prior.net.", "prior_net.").replace("prior.flow.", "flow.")): v for k, v in m.state_dict().items()}
        f = save_torch({"name": "cvae", "config": {"prior": prior, **kw}, "state_dict": old, "extra": {}}, tmp_path / f"{prior}.pt")
        m2 = load_model(f)
        assert all(torch.equal(v, m2.state_dict()[k]) for k, v in m.state_dict().items())
        y, z = m.labels(torch.tensor([0, 2])), torch.randn(2, 4)
        assert torch.equal(m.log_prior(z, y), m2.log_prior(z, y))
