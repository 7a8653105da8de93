
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from latentgen.config import seed_everything
from latentgen.models import VAE, build_model, load_model, save_model
from latentgen.train import NonFiniteLossError, Trainer, fit


def data(n=96):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


class Reg(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 1)

    def loss(self, batch):
        x = batch[0].flatten(1)
        return {"loss": ((self.lin(x) - x.mean(1, keepdim=True)) ** 2).mean()}


def test_loop_learns_and_records_every_term():
    seed_everything(0)
    t = fit(Reg(), data(), epochs=30, batch_size=32, lr=1e-2, progress=False)
    means = t.history.epoch_means("loss")
    assert len(t.history) == 90 and means[29] < 0.2 * means[0]


def test_two_optimisers_gradients_are_separated():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Parameter(torch.tensor(2.0)), nn.Parameter(torch.tensor(3.0))

        def configure_optimizers(self):
            return {"loss_a": torch.optim.SGD([self.a], lr=0.0), "loss_b": torch.optim.SGD([self.b], lr=0.0)}

        def loss(self, batch):
            return {"loss_a": self.a * self.b, "loss_b": self.a ** 2 * self.b ** 2}

    m = Two(); Trainer(m, progress=False)._step((torch.zeros(1),))
    assert m.a.grad.item() == pytest.approx(3.0)          # d(ab)/da, not + d(a^2 b^2)/da
    assert m.b.grad.item() == pytest.approx(2 * 4 * 3)    # d(a^2 b^2)/db, not + d(ab)/db


def test_non_finite_loss_names_the_term_or_is_skipped():
    class Bad(Reg):
        def loss(self, batch):
            out = super().loss(batch); out["kl"] = torch.tensor(float("inf")); return out

    with pytest.raises(NonFiniteLossError, match=r"\['kl'\].*step 0"):
        fit(Bad(), data(), steps=2, batch_size=32, progress=False)
    t = fit(Bad(), data(), steps=3, batch_size=32, progress=False, on_nan="skip")
    assert t.cb("guard").skipped == 3 and len(t.history) == 0


def test_missing_loss_method_and_term_are_clear_errors():
    with pytest.raises(TypeError, match="no loss"):
        Trainer(nn.Linear(2, 2))

    class Wrong(Reg):
        def loss(self, batch):
            return {"total": super().loss(batch)["loss"]}

    with pytest.raises(KeyError, match="optimisers minimise"):
        fit(Wrong(), data(), steps=1, batch_size=32, progress=False)


def test_exact_resume_mid_epoch(tmp_path):
    def trainer(path=None):
        seed_everything(11)
        return Trainer(VAE(channels=1, image_size=8, latent_dim=3, width=4, hidden=16), seed=2, ckpt_path=path,
                       progress=False, ema_decay=0.9)
    straight = trainer(); straight.fit(data(), steps=10, batch_size=32)
    first = trainer(tmp_path / "c.pt"); first.fit(data(), steps=4, batch_size=32)   # stops inside epoch 1
    second = trainer(tmp_path / "c.pt"); second.fit(data(), steps=10, batch_size=32, resume=True)
    for p, q in zip(straight.model.state_dict().values(), second.model.state_dict().values()):
        assert torch.equal(p, q)
    for p, q in zip(straight.cb("ema").model.state_dict().values(), second.cb("ema").model.state_dict().values()):
        assert torch.equal(p, q)
    assert [r["loss"] for r in straight.history.steps] == [r["loss"] for r in second.history.steps]
    assert not list(tmp_path.glob(".*tmp*"))


def test_ema_gradient_clipping_eval_and_bf16():
    seed_everything(0)
    t = Trainer(Reg(), ema_decay=0.5, grad_clip=1e-3, lr=1e-2, progress=False, bf16=True,
                eval_fn=lambda m: {"w_norm": m.lin.weight.norm()}, eval_every=2)
    w0 = t.model.lin.weight.detach().clone()
    t.fit(data(), steps=4, batch_size=32)
    assert all(r["grad_norm"] > 0 for r in t.history.steps)
    # Adam's first steps move each weight by about lr, whatever the clipped gradient
    assert (t.model.lin.weight - w0).abs().max() <= 4 * 1e-2 + 1e-6
    assert [e["step"] for e in t.history.evals] == [2, 4]
    assert not torch.equal(t.cb("ema").model.module.lin.weight, t.model.lin.weight)


def test_vae_loss_terms_and_save_load(tmp_path):
    seed_everything(0)
    vae = VAE(channels=1, image_size=8, latent_dim=3, width=4, hidden=16, likelihood="sigma")
    out = vae.loss(data(8)[:])
    assert set(out) == {"loss", "rec", "kl"} and out["kl"] >= 0
    out["loss"].backward()
    assert vae.encoder.net[0].weight.grad.abs().sum() > 0 and vae.decoder.deconv[-2].weight.grad.abs().sum() > 0
    p = save_model(vae, tmp_path / "m.pt", note="x")
    v2 = load_model(p)
    assert v2.config == vae.config and v2.saved_extra == {"note": "x"}
    assert isinstance(build_model("vae", channels=1, image_size=8), VAE)
    assert vae.log_weights(data(4)[:][0], 6).shape == (6, 4)
    with pytest.raises(TypeError, match="keyword arguments only"):
        VAE(1)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


def test_schedulers_step_once_per_epoch():
    seed_everything(0)
    t = Trainer(Reg(), lr=1.0, progress=False,
                schedulers={"loss": lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)})
    t.fit(data(), epochs=3, batch_size=32)   # 3 batches per epoch
    assert t.epoch == 3 and t.optimizers["loss"].param_groups[0]["lr"] == pytest.approx(0.125)
