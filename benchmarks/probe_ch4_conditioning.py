"""Does the label reach chapter 4's class-conditional samples? A probe for choosing the `cpu` profile's settings.

    python benchmarks/probe_ch4_conditioning.py --steps 3000 --width 32 --lr 2e-3 [--output dmol] [--dataset mnist]

Trains one class-conditional `HierarchicalVAE` on the offline MNIST cut (9,000 images; or CIFAR-10 at --size) with the
chapter's fit settings (warm-up + cosine schedule, EMA, gradient skipping), then prints what the chapter needs before
reading guidance: the class accuracy (latentgen classifier) of reconstructions of held-out images (can the model draw
a readable digit at all?) and of 500 samples drawn with given labels at m = v = 0 and with guidance, each with its
95% Wilson interval and the share of the most frequent class, and the per-layer KL. One seed; seconds printed."""
import argparse
import json
import time

import torch

from latentgen.ch4_hvae import HierarchicalVAE, warmup_cosine
from latentgen.config import seed_everything
from latentgen.data import train_test_splits
from latentgen.metrics import class_fidelity, wilson_interval
from latentgen.train import Trainer

a = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
a.add_argument("--dataset", default="mnist"); a.add_argument("--size", type=int, default=None)
a.add_argument("--steps", type=int, default=3000); a.add_argument("--batch", type=int, default=32)
a.add_argument("--width", type=int, default=32); a.add_argument("--z", type=int, default=4)
a.add_argument("--lr", type=float, default=6e-4); a.add_argument("--output", default="gaussian")
a.add_argument("--schedule", action="store_true"); a.add_argument("--label-drop", type=float, default=0.1)
a.add_argument("--n", type=int, default=500)
a.add_argument("--grad-skip", type=float, default=300.0, help="skip an update whose gradient norm exceeds this (the chapter: 300)")
args = a.parse_args()
seed_everything(0)
train, held = train_test_splits(args.dataset, "cpu", seed=0, image_size=args.size)
cfg = HierarchicalVAE.default_config(train.image_shape, profile="quick")
cfg.update(width=args.width, z_channels=args.z, output=args.output, schedule=args.schedule, num_classes=10,
           label_drop=args.label_drop, lr=args.lr)
model = HierarchicalVAE(**cfg)
n_par = sum(p.numel() for p in model.parameters()) / 1e6
sched = dict(start=args.lr / 10, peak=args.lr, final=args.lr / 2, warmup=50, decay=round(args.steps * 400 / 350))
t0 = time.perf_counter()
tr = Trainer(model, seed=0, grad_skip=args.grad_skip, grad_skip_after=1000, ema_decay=0.99,
             schedulers={"loss": warmup_cosine(**sched)}, schedule_every="step")
tr.fit(train, steps=args.steps, batch_size=args.batch)
secs = time.perf_counter() - t0
m = tr.cb("ema").model.module.eval()
x = torch.stack([held[i][0] for i in range(args.n)]); y = torch.as_tensor([int(held[i][1]) for i in range(args.n)])
out = {"config": {k: v for k, v in vars(args).items()}, "params_M": round(n_par, 3), "train_s": round(secs, 1),
       "updates_skipped_grad_norm": tr.cb("clip").skipped}
with torch.no_grad():
    rec = torch.cat([m.reconstruct(xb, yb) for xb, yb in zip(x.split(250), y.split(250))])
    kl = m.elbo_terms(x[:200], y[:200])["kl"].mean(0)
    out["kl_per_layer"] = [round(float(k), 2) for k in kl]
    for name, imgs in [("reconstructions", rec)] + [
            (f"samples m={mm:g} v={vv:g}", torch.cat([m.sample(len(yb), yb, m=mm, v=vv) for yb in y.split(250)]))
            for mm, vv in ((0.0, 0.0), (1.0, 0.0), (3.0, 1.0))]:
        cf = class_fidelity(imgs, y, dataset=args.dataset)
        lo, hi = wilson_interval(cf["accuracy"], len(y))
        out[name] = {"accuracy": round(cf["accuracy"], 3), "interval_95": [round(lo, 3), round(hi, 3)],
                     "top_class_share": round(cf["top_class_share"], 3)}
print(json.dumps(out, indent=1))
