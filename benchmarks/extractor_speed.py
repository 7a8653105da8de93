"""Feature-extraction speed of the sample-metric extractors (issue: 10,000 images in at most 30 s on a 2-core CPU).

    python benchmarks/extractor_speed.py [--n 10000] [--families mnist cifar10] [--random]

Times torch-fidelity's own feature pass (the one `metrics.fidelity` uses) on held-out images: CIFAR-10 test images,
MNIST test digits (repeated to n where the offline split is smaller). Prints seconds and images/s per extractor.
"""
import argparse, time

import torch
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from latentgen.data import load_dataset
from latentgen.metrics import _Uint8RGB
from latentgen.features import RANDOM_EXTRACTOR, extractor_name


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--families", nargs="*", default=["mnist", "cifar10"])
    p.add_argument("--random", action="store_true", help="also time the retired random extractor")
    p.add_argument("--batch-size", type=int, default=200)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for fam in a.families:
        ds = load_dataset(fam, "test")
        idx = torch.arange(a.n) % len(ds)
        imgs = torch.stack([ds[int(i)][0] for i in idx])
        names = [extractor_name(fam)] + ([RANDOM_EXTRACTOR] if a.random else [])
        for name in names:
            feats = ["features"] if name != RANDOM_EXTRACTOR else ["512"]
            ext = create_feature_extractor(name, feats, cuda=False, verbose=False)
            t0 = time.perf_counter()
            out = get_featuresdict_from_dataset(_Uint8RGB(imgs), ext, a.batch_size, False, True, False)
            dt = time.perf_counter() - t0
            n, d = out[feats[0]].shape
            print(f"{fam:8s} {name:30s} {n:,} images -> {d} features in {dt:5.1f} s ({n / dt:,.0f} images/s)")


if __name__ == "__main__":
    main()
