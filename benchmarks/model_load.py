"""Load time of the largest model of the book (chapter 4's paper-profile HierarchicalVAE) through `load_model`
(`torch.load(weights_only=True)`) against full-pickle `torch.load`, from a warm page cache.

    python benchmarks/model_load.py [--repeats 5]
"""
import argparse, statistics, tempfile, time
from pathlib import Path

import torch

from latentgen.ch4_hvae import HierarchicalVAE
from latentgen.models import load_model, save_model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0]); p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    model = HierarchicalVAE(**HierarchicalVAE.default_config((3, 32, 32), profile="paper"))
    n = sum(t.numel() for t in model.state_dict().values())
    with tempfile.TemporaryDirectory() as d:
        path = save_model(model, Path(d) / "hvae.pt")
        size = path.stat().st_size / 2**20
        runs = {"torch.load(weights_only=True)": lambda: torch.load(path, weights_only=True),
                "torch.load(weights_only=False), full pickle": lambda: torch.load(path, weights_only=False),
                "load_model (weights_only=True + build the model)": lambda: load_model(path)}
        times = {k: [] for k in runs}
        for _ in range(a.repeats):
            for k, f in runs.items():
                t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
    print(f"HierarchicalVAE, paper profile: {n / 1e6:.1f}M values, file {size:.0f} MiB; torch {torch.__version__}")
    for k, v in times.items():
        print(f"  {k:50s} median {statistics.median(v):.3f} s over {a.repeats}")


if __name__ == "__main__":
    main()
