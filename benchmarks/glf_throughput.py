"""Training throughput of GLF (chapter 3), in images per second.

    python benchmarks/glf_throughput.py [--profile quick|paper] [--data mnist|cifar10] [--batch 128] [--steps 60]
                                        [--repeats 3] [--device cpu|cuda] [--bf16]

Two loops train the same GLF model (`latentgen.ch3_glf.LatentFlowAE`, the profile's size) on data of the chosen
shape held in memory, alternating `repeats` times:

* `fit`: the book's one training loop (`latentgen.train.Trainer`), as the chapter runs it;
* `device-resident`: the data as one tensor on the device, batches taken by index, optional bf16 autocast, and no
  host synchronisation inside the loop (losses are read once at the end). This is the ceiling the fit loop can be
  compared with, and the loop for the GPU target of issue 5 (100 MNIST epochs in under 5 minutes on an H200).

Throughput does not depend on image content, so the images are uniform noise of the data set's shape.
"""
import argparse
import statistics
import time

import torch

from latentgen.config import device_name, get_device, seed_everything
from latentgen.ch3_glf import LatentFlowAE
from latentgen.train import Trainer

SHAPES = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}


def make_model(shape, profile, device):
    seed_everything(0)
    return LatentFlowAE(method="glf", **LatentFlowAE.default_config(shape, profile=profile)).to(device)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def fit_loop(x, args, device):
    t = Trainer(make_model(x.shape[1:], args.profile, device), device=device, progress=False, bf16=args.bf16)
    data = torch.utils.data.TensorDataset(x.cpu(), torch.zeros(len(x)))
    t.fit(data, steps=3, batch_size=args.batch)                        # warm-up
    sync(device); t0 = time.perf_counter()
    t.fit(data, steps=3 + args.steps, batch_size=args.batch)
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


def device_resident(x, args, device):
    model = make_model(x.shape[1:], args.profile, device).train()
    opts = model.configure_optimizers()
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(0)
    losses = []

    def step():
        idx = torch.randint(len(x), (args.batch,), device=device, generator=g)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            terms = model.loss((x[idx],))
        for o in opts.values():
            o.zero_grad(set_to_none=True)
        terms["loss"].backward()              # sg: the AE loss and the flow's NLL share no parameters
        for o in opts.values():
            o.step()
        losses.append(terms["loss"].detach())

    for _ in range(3):
        step()
    sync(device); t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.stack(losses).float().mean().item()  # the only host sync
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="quick", choices=("quick", "paper"))
    p.add_argument("--data", default="mnist", choices=tuple(SHAPES))
    p.add_argument("--batch", type=int, default=None, help="default: 128 (quick) or 256 (paper)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--bf16", action="store_true", help="bf16 autocast in both loops")
    args = p.parse_args()
    args.batch = args.batch or (128 if args.profile == "quick" else 256)
    device = get_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    x = torch.rand(max(4096, 4 * args.batch), *SHAPES[args.data])
    res = {"fit": [], "device-resident": []}
    for _ in range(args.repeats):
        res["fit"].append(fit_loop(x, args, device))
        res["device-resident"].append(device_resident(x, args, device))
    print(f"GLF ({args.profile} size, {args.data}-shaped data), batch {args.batch}, {args.steps} steps x {args.repeats}, "
          f"bf16={args.bf16}, {device_name(device)}")
    for k, v in res.items():
        print(f"  {k:16s} median {statistics.median(v):8.0f} images/s   runs: {', '.join(f'{r:.0f}' for r in v)}")
    n_train = 60000 if args.data == "mnist" else 50000
    med = statistics.median(res["device-resident"])
    print(f"  => 100 epochs of {n_train:,} images at the device-resident rate: {100 * n_train / med / 60:.1f} min")


if __name__ == "__main__":
    main()
