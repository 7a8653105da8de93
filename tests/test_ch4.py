"Chapter 4 (Luhman & Luhman): the hierarchical VAE through the package and the command line (derivation tests: the notebook)."
import json

import torch

from latentgen.ch4_hvae import HierarchicalVAE, kl_reweighting
from latentgen.cli import main
from latentgen.data import load_dataset
from latentgen.models import load_model
from latentgen.train import Trainer


def tiny(**kw):
    return HierarchicalVAE(channels=1, image_size=8, width=16, z_channels=2, resolutions=(1, 4, 8), layers=(1, 1, 2), **kw)


def test_training_lowers_the_negative_elbo():
    ds = load_dataset("digits", "train", subset=512)
    x = torch.stack([ds[i][0] for i in range(128)])
    for output in ("gaussian", "dmol"):
        torch.manual_seed(0)
        m = tiny(output=output, schedule=True)
        before = float(m.eval().elbo_terms(x)["bpd"].mean())
        Trainer(m, seed=0, progress=False, grad_clip=200.0).fit(ds, steps=150, batch_size=64)
        after = float(m.eval().elbo_terms(x)["bpd"].mean())
        assert after < before - 0.3, (output, before, after)


def test_the_scheduled_loss_is_the_reweighted_kl():
    "loss = (distortion + Σ_i f_i KL_i) / D, with f from eq. (3) evaluated on the same KLs."
    torch.manual_seed(0)
    m = tiny(output="gaussian", schedule=True)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(4, 1, 8, 8)
    torch.manual_seed(1)
    out = m.loss((x, None))
    torch.manual_seed(1)
    o, kls = m.top_down(2 * x - 1, None, drop_labels=True)
    dist, _ = m.distortion(2 * x - 1, o)
    expected = ((dist + (kl_reweighting(kls, m.shares) * kls).sum(1)) / 64).mean()
    assert torch.allclose(out["loss"], expected, atol=1e-5)


def test_cli_trains_samples_and_evaluates(tmp_path):
    main(["train", "hvae", "--dataset", "digits", "--steps", "3", "--batch-size", "16", "--out", str(tmp_path / "r"),
          "--set", "width=8", "z_channels=2", "schedule=true", 'output="dmol"', "num_classes=10"])
    model = load_model(tmp_path / "r" / "model.pt")
    assert model.model_name == "hvae" and model.conditional and model.schedule and model.output == "dmol"
    x = model.sample(4, torch.tensor([0, 1, 2, 3]), m=1.0, v=0.5)
    assert x.shape == (4, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    main(["evaluate", str(tmp_path / "r" / "model.pt"), "--dataset", "digits", "--n", "64", "--backend", "random",
          "--chapter", "ch4", "--results", str(tmp_path / "res")])
    r = json.loads(next((tmp_path / "res").rglob("*.json")).read_text())
    assert r["chapter"] == "ch4" and r["metrics"]["reconstruction"]["mse"] > 0
