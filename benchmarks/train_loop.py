"""Overhead of latentgen's fit loop against a bare PyTorch loop, same model, data and batches, same process.

    python benchmarks/train_loop.py [--steps 150] [--repeats 3] [--device cpu]

Trains the reference VAE (quick-profile size) on CIFAR-10-shaped data held in memory, alternating the two loops
`repeats` times, and reports steps/s of each and the median ratio. The bare loop does what any hand-written loop
does (forward, backward, Adam step, loss.item() for logging); the fit loop adds its bookkeeping (history of every
term, non-finite checks, progress bar disabled as in the book build).
"""
import argparse
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from latentgen.config import seed_everything
from latentgen.models import VAE
from latentgen.train import Trainer


def make_model():
    seed_everything(0)
    return VAE(channels=3, image_size=32, latent_dim=16, width=32, hidden=256)


def bare(data, steps, batch_size, device):
    model = make_model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data), generator=g).tolist()
    batches = [perm[i:i + batch_size] for i in range(0, len(perm) - batch_size + 1, batch_size)][:steps]
    loader = DataLoader(data, batch_sampler=batches)
    t0 = time.perf_counter()
    for batch in loader:
        batch = [b.to(device) for b in batch]
        loss = model.loss(batch)["loss"]
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        loss.item()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def ours(data, steps, batch_size, device):
    t = Trainer(make_model(), device=device, progress=False)
    t0 = time.perf_counter()
    t.fit(data, steps=steps, batch_size=batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.rand(a.steps * a.batch_size, 3, 32, 32, generator=g), torch.zeros(a.steps * a.batch_size))
    bare(data, 5, a.batch_size, device); ours(data, 5, a.batch_size, device)  # warm-up
    b, o = [], []
    for _ in range(a.repeats):
        b.append(bare(data, a.steps, a.batch_size, device)); o.append(ours(data, a.steps, a.batch_size, device))
    rb, ro = statistics.median(b), statistics.median(o)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {a.steps} steps x batch {a.batch_size}")
    print(f"bare loop : {rb:8.2f} steps/s  (runs: {', '.join(f'{x:.2f}' for x in b)})")
    print(f"fit loop  : {ro:8.2f} steps/s  (runs: {', '.join(f'{x:.2f}' for x in o)})")
    print(f"overhead  : {100 * (rb / ro - 1):+.1f}% time per step (target <= 10%)")


if __name__ == "__main__":
    main()
