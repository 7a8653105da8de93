"""A training job for tests/test_distributed.py, run plainly or under `torchrun --nproc_per_node=N`.

It trains a small autoencoder on scikit-learn's 8x8 digits through latentgen's `Trainer` (one optimiser, or two with a
critic), can inject a fault on one rank (a NaN loss, an exception, a SIGKILL), and on rank 0 writes the final weights
and the loss records to `--out`.
"""
import argparse, os, signal, sys

import torch
from torch import nn

from latentgen.distributed import dist_info
from latentgen.data import load_digits
from latentgen.train import Trainer


class AE(nn.Module):
    "A linear-tanh autoencoder; `noise` adds reparameterisation-style noise, so that each rank's generator matters."
    def __init__(self, noise: float = 0.0, critic: bool = False, fault: dict | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.enc, self.dec = nn.Linear(64, 8), nn.Linear(8, 64)
        self.critic = nn.Linear(64, 1) if critic else None
        self.noise, self.fault, self.calls = noise, fault or {}, 0

    def loss(self, batch):
        x = batch[0].flatten(1)
        z = self.enc(x)
        z = z + self.noise * torch.randn_like(z)
        xh = torch.tanh(self.dec(z))
        rec = ((xh - x) ** 2).mean()
        self.calls += 1
        f = self.fault
        if f and self.calls == f["at"] and dist_info()[0] == f["rank"]:
            if f["kind"] == "nan":
                rec = rec * float("nan")
            elif f["kind"] == "raise":
                raise RuntimeError(f"injected failure on rank {f['rank']} at call {f['at']}")
            elif f["kind"] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
        out = {"loss": rec, "rec": rec}
        if self.critic is not None:           # a second optimiser, as in an adversarial model
            out["loss"] = rec + 0.1 * self.critic(xh).mean()
            out["critic"] = ((self.critic(x) - 1) ** 2).mean() + (self.critic(xh.detach()) ** 2).mean()
        return out

    def configure_optimizers(self):
        ae = [p for n, p in self.named_parameters() if not n.startswith("critic")]
        opts = {"loss": torch.optim.Adam(ae, lr=1e-2)}
        if self.critic is not None:
            opts["critic"] = torch.optim.Adam(self.critic.parameters(), lr=1e-2)
        return opts


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--noise", type=float, default=0.0)
    p.add_argument("--critic", action="store_true")
    p.add_argument("--resident", choices=["auto", "yes", "no"], default="auto")
    p.add_argument("--ckpt", default=None)
    p.add_argument("--ckpt-every", type=int, default=None)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--fault", nargs=3, metavar=("KIND", "RANK", "AT"), help="nan|raise|kill, the rank, the loss call")
    a = p.parse_args(argv)
    fault = {"kind": a.fault[0], "rank": int(a.fault[1]), "at": int(a.fault[2])} if a.fault else None
    model = AE(a.noise, a.critic, fault)
    t = Trainer(model, seed=3, ckpt_path=a.ckpt, ckpt_every=a.ckpt_every, progress=False, device="cpu",
                resident={"auto": "auto", "yes": True, "no": False}[a.resident])
    t.fit(load_digits("train"), steps=a.steps, batch_size=a.batch_size, resume=a.resume)
    rank, world = dist_info()
    if rank == 0:
        torch.save({"weights": model.state_dict(), "steps": t.history.steps, "world": world}, a.out)


if __name__ == "__main__":
    sys.exit(main())
