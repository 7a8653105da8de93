"""Load time of the largest model of the book (chapter 4's paper-profile HierarchicalVAE) through `load_model`
(`torch.load(weights_only=True)` after the file's SHA-256 is verified) against full-pickle `torch.load`, from a warm
page cache; and what the SHA-256 check costs on that model file and on a training checkpoint of it (weights + Adam).

    python benchmarks/model_load.py [--repeats 5]
"""
import argparse, io, statistics, tempfile, time
from pathlib import Path

import torch

from latentgen.ch4_hvae import HierarchicalVAE
from latentgen.fileio import check_seal, safe_torch_load, save_torch
from latentgen.models import load_model, save_model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0]); p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    model = HierarchicalVAE(**HierarchicalVAE.default_config((3, 32, 32), profile="paper"))
    n = sum(t.numel() for t in model.state_dict().values())
    opt = torch.optim.Adam(model.parameters())
    for q in model.parameters():              # Adam's two moments per parameter, as in a real checkpoint
        q.grad = torch.zeros_like(q)
    opt.step()
    with tempfile.TemporaryDirectory() as d:
        path = save_model(model, Path(d) / "hvae.pt")
        ckpt = save_torch({"model": model.state_dict(), "optimizers": {"loss": opt.state_dict()}, "step": 1}, Path(d) / "trainer.ckpt")
        size, csize = path.stat().st_size / 2**20, ckpt.stat().st_size / 2**20
        runs = {"torch.load(weights_only=True), unchecked": lambda: torch.load(path, weights_only=True),
                "torch.load(weights_only=False), full pickle": lambda: torch.load(path, weights_only=False),
                "SHA-256 check alone (model file)": lambda: check_seal(path.read_bytes(), path),
                "safe_torch_load (read, SHA-256, weights_only)": lambda: safe_torch_load(path),
                "load_model (checked + build the model)": lambda: load_model(path),
                "checkpoint: torch.load(weights_only=True), unchecked": lambda: torch.load(ckpt, weights_only=True),
                "checkpoint: SHA-256 check alone": lambda: check_seal(ckpt.read_bytes(), ckpt),
                "checkpoint: safe_torch_load (checked)": lambda: safe_torch_load(ckpt)}
        times = {k: [] for k in runs}
        for _ in range(a.repeats):
            for k, f in runs.items():
                t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    print(f"HierarchicalVAE, paper profile: {n / 1e6:.1f}M values, model file {size:.0f} MiB, checkpoint {csize:.0f} MiB; "
          f"torch {torch.__version__}")
    for k, v in times.items():
        print(f"  {k:55s} median {statistics.median(v):.3f} s over {a.repeats}")


if __name__ == "__main__":
    main()
