"""How long each chapter's `gpu` profile should take, from its arithmetic: an estimate, not a measurement.

    python benchmarks/gpu_budget.py [--h100-tflops 60] [--t4-tflops 3]

For every model a chapter trains at the `gpu` profile, `torch.utils.flop_counter.FlopCounterMode` counts the floating
point operations of one training step (forward, backward, every optimiser's pass) per image, on this CPU; the
chapter's training budget in images (the `gpu` values in the chapters' setup cells, repeated below) times that count
gives its training FLOPs. Dividing by an assumed sustained rate gives minutes:

* H100: bf16 dense peak about 990 TFLOP/s; small convolutional networks at batch 64-256 sustain a few per cent of it,
  so 60 TFLOP/s is assumed;
* Colab T4: no bf16 (the trainer runs float32 there), 8.1 TFLOP/s float32 peak, 3 TFLOP/s assumed.

Evaluation (sampling, feature extraction, IWAE bounds, rate-distortion sweeps) is not counted: add a few minutes per
chapter. `make gpu-check` measures the real images/s on a GPU; where it disagrees, trust it and rescale.
"""
import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

import latentgen.cli as cli
from latentgen.models import MODELS, build_model
from latentgen.train import Trainer

MNIST, CIFAR = 9_000, 50_000          # training images offline: the MNIST test split minus 1,000 held out; CIFAR-10's train split
# chapter -> [(model, variant, image shape, images trained)], from the chapters' gpu settings
BUDGET = {
    "ch1": [("rivera-vae", {"objective": o}, (3, 32, 32), 6_000 * 64) for o in ("rivera", "standard")],
    "ch2": [("cvae", {"prior": p, **d}, (1, 28, 28), 20 * MNIST) for p, d in
            [("standard", {"decoder": "fixed"}), ("standard", {}), ("conditional", {}), ("flow", {}), ("de", {})]],
    "ch3": [("glf", {"method": m}, (1, 28, 28), e * MNIST) for m, e in
            [("glf", 40 * 3), ("reg-glf", 40 * 2), ("vae", 80), ("vae-flow", 80 * 4), ("rae-gmm", 40), ("two-stage-vae", 40)]]
           + [("glf", {"method": m}, (3, 32, 32), e * CIFAR) for m, e in
              [("glf", 15), ("vae", 30), ("vae-flow", 30), ("rae-gmm", 15), ("two-stage-vae", 15)]],
    "ch4": [("hvae", v, (3, 32, 32), 3_000 * 64) for v in
            [{"output": "dmol"}, {"output": "dmol", "schedule": True}, {"output": "gaussian"},
             {"output": "gaussian", "schedule": True}, {"output": "gaussian", "schedule": True, "num_classes": 10}]],
}


def flops_per_image(name, variant, shape, batch=8):
    torch.manual_seed(0)
    m = build_model(name, **{**MODELS[name].default_config(shape, 10, "gpu"), **variant})
    t = Trainer(m, device="cpu", progress=False, bf16=False)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    t._step([x, y])                          # lazily built parts (e.g. data-dependent initialisations) first
    with FlopCounterMode(display=False) as fc:
        t._step([x, y])
    return fc.get_total_flops() / batch, sum(p.numel() for p in m.parameters())


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--h100-tflops", type=float, default=60.0)
    p.add_argument("--t4-tflops", type=float, default=3.0)
    a = p.parse_args()
    cli.load_chapter_modules()
    total = {"h100": 0.0, "t4": 0.0}
    print(f"{'chapter':8s} {'GFLOP/image (largest model)':>28s} {'images trained':>15s} {'PFLOP':>8s} "
          f"{'H100 min':>9s} {'T4 min':>8s}")
    for ch, runs in BUDGET.items():
        flops, imgs, big = 0.0, 0, 0.0
        for name, variant, shape, n in runs:
            f, _ = flops_per_image(name, variant, shape)
            flops += f * n; imgs += n; big = max(big, f)
        h, t4 = flops / (a.h100_tflops * 1e12) / 60, flops / (a.t4_tflops * 1e12) / 60
        total["h100"] += h; total["t4"] += t4
        print(f"{ch:8s} {big / 1e9:28.2f} {imgs:15,d} {flops / 1e15:8.2f} {h:9.1f} {t4:8.1f}")
    print(f"{'book':8s} {'':28s} {'':15s} {'':8s} {total['h100']:9.1f} {total['t4']:8.1f}")
    print(f"(training only, at an assumed {a.h100_tflops:g} TFLOP/s on an H100 and {a.t4_tflops:g} on a T4)")


if __name__ == "__main__":
    main()
