"""Training throughput of GLF (chapter 3), in images per second.

    python benchmarks/glf_throughput.py [--profile quick|gpu|paper] [--data mnist|cifar10] [--batch 128] [--steps 60]
                                        [--repeats 3] [--device cpu|cuda] [--bf16 | --no-bf16] [--compile] [--out F.json]

Two loops train the same GLF model (`latentgen.ch3_glf.LatentFlowAE`, the profile's size) on data of the chosen
shape held in memory, alternating `repeats` times:

* `fit`: the book's one training loop (`latentgen.train.Trainer`) with its defaults for the device, as the chapters run
  it (on CUDA: uint8 data resident on the device, host reads every 50 steps, bf16 autocast; `--compile`: torch.compile);
* `device-resident`: the bare loop: the data as one tensor on the device, batches taken by index, the same autocast,
  and no host synchronisation inside the loop (losses are read once at the end). This is the ceiling the fit loop is
  compared with. The GPU target: the fit loop within 10% of it, and 50,000 images/s or more for GLF at the paper's
  size on MNIST-shaped data on one H100 (100 epochs of 60,000 images in under 2 minutes).

Throughput does not depend on image content, so the images are uniform uint8 noise of the data set's shape.
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from latentgen.config import device_name, get_device, run_info, seed_everything
from latentgen.data import ImageTensorDataset
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
    t = Trainer(make_model(x.shape[1:], args.profile, device), device=device, progress=False, bf16=args.bf16,
                compile=args.compile)
    data = ImageTensorDataset(x.cpu(), torch.zeros(len(x), dtype=torch.long), name="noise", split="train", source="noise")
    t.fit(data, steps=3, batch_size=args.batch)                        # warm-up
    sync(device); t0 = time.perf_counter()
    t.fit(data, steps=3 + args.steps, batch_size=args.batch)
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - t0)


def device_resident(x, args, device):
    model = make_model(x.shape[1:], args.profile, device).train()
    opts = model.configure_optimizers()
    x = x.to(device)
    bf16 = args.bf16 if args.bf16 is not None else device.type == "cuda" and torch.cuda.is_bf16_supported()
    g = torch.Generator(device=device).manual_seed(0)
    losses = []

    def step():
        idx = torch.randint(len(x), (args.batch,), device=device, generator=g)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            terms = model.loss((x[idx].float() / 255,))
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
    p.add_argument("--profile", default=None, choices=("quick", "gpu", "paper"), help="default: gpu on CUDA, else quick")
    p.add_argument("--data", default="mnist", choices=tuple(SHAPES))
    p.add_argument("--batch", type=int, default=None, help="default: 128 (quick) or 256 (paper)")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default=None)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast in both loops (default: the trainer's: on for CUDA GPUs with bf16)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fit loop's forward pass and loss")
    p.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = p.parse_args()
    device = get_device(args.device)
    args.profile = args.profile or ("gpu" if device.type == "cuda" else "quick")
    args.batch = args.batch or (128 if args.profile == "quick" else 256)
    if device.type == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    x = torch.randint(0, 256, (max(4096, 4 * args.batch), *SHAPES[args.data]), dtype=torch.uint8)
    res = {"fit": [], "device-resident": []}
    for _ in range(args.repeats):
        res["fit"].append(fit_loop(x, args, device))
        res["device-resident"].append(device_resident(x, args, device))
    print(f"GLF ({args.profile} size, {args.data}-shaped data), batch {args.batch}, {args.steps} steps x {args.repeats}, "
          f"bf16={args.bf16 if args.bf16 is not None else 'default'}, compile={args.compile}, {device_name(device)}")
    for k, v in res.items():
        print(f"  {k:16s} median {statistics.median(v):8.0f} images/s   runs: {', '.join(f'{r:.0f}' for r in v)}")
    n_train = 60000 if args.data == "mnist" else 50000
    med = statistics.median(res["device-resident"])
    fit_med = statistics.median(res["fit"])
    print(f"  => the fit loop runs at {100 * fit_med / med:.0f}% of the bare loop's rate; 100 epochs of {n_train:,} "
          f"images: {100 * n_train / fit_med / 60:.1f} min in the fit loop ({100 * n_train / med / 60:.1f} bare)")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "images_per_s": res, "fit_over_bare": fit_med / med,
                                              "run": run_info(device)}, indent=1, default=str))


if __name__ == "__main__":
    main()
