"""`make gpu-check`: the book's models on this machine's accelerator, in a few minutes.

    make gpu-check        # = python benchmarks/gpu_check.py [--device cuda] [--steps 200] [--tiny] [--out FILE.json]

1. **Throughput.** Every chapter's models (every registered model and its variants, as the chapters train them) at
   the `gpu` profile's sizes: a few warm-up steps, then `--steps` timed steps of the fit loop (`Trainer`, with its GPU
   defaults: device-resident uint8 data, deferred host reads, bf16 autocast where supported). One row per model:
   images/s, step time and peak GPU memory.
2. **Exact resume on the device.** A model that draws noise on the GPU (the hierarchical VAE: one Gaussian per latent
   layer) is trained for 2N steps straight, and for N steps, checkpointed, rebuilt and resumed to 2N. The weights must
   agree; they can only if the CUDA random state was saved and restored (a control resumes without restoring it).
3. **Sample metrics on the device.** FD / KID / precision / recall (`latentgen.metrics.fidelity`, torch-fidelity on the
   GPU) of one trained model's samples against held-out images.

On a machine without CUDA the same command runs at tiny sizes (quick-profile models on 16x16 images, 3 steps), so
that CI keeps it working; its numbers say nothing about a GPU. Data: the offline MNIST / CIFAR-10 copies when they
are present (`latentgen data check`), else uniform noise of the same shape (throughput does not depend on content).
"""
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

import latentgen.cli as cli
from latentgen.config import device_name, get_device, run_info, seed_everything
from latentgen.data import DatasetNotFoundError, ImageTensorDataset, load_dataset
from latentgen.models import MODELS, build_model
from latentgen.train import Trainer

# (chapter, model, variant, data set, batch size of the chapter's gpu profile)
RUNS = [("ch1", "rivera-vae", {"objective": "rivera"}, "cifar10", 64),
        ("ch1", "rivera-vae", {"objective": "standard"}, "cifar10", 64),
        *[("ch2", "cvae", {"prior": p}, "mnist", 128) for p in ("standard", "conditional", "flow", "de")],
        *[("ch3", "glf", {"method": m}, "mnist", 256) for m in ("glf", "reg-glf", "vae", "vae-flow", "rae-gmm", "two-stage-vae")],
        ("ch3", "glf", {"method": "glf"}, "cifar10", 256),
        ("ch3", "vae", {}, "mnist", 256),
        ("ch4", "hvae", {"output": "dmol"}, "cifar10", 64),
        ("ch4", "hvae", {"output": "gaussian", "schedule": True}, "cifar10", 64),
        ("ch4", "hvae", {"output": "gaussian", "schedule": True, "num_classes": 10}, "cifar10", 64)]


def dataset(name: str, tiny: bool, n: int = 4096):
    "The offline data set (train split, else test split) as uint8, or noise of its shape; tiny: 16x16."
    shape = {"mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[name]
    try:
        try:
            ds = load_dataset(name, "train", image_size=16 if tiny else None)
        except DatasetNotFoundError:
            ds = load_dataset(name, "test", image_size=16 if tiny else None)
        return ImageTensorDataset(ds.images[:n], ds.targets[:n], name=name, split=ds.split, source=ds.source), "offline copy"
    except Exception:                         # no data here: noise of the right shape and dtype
        if tiny:
            shape = (shape[0], 16, 16)
        g = torch.Generator().manual_seed(0)
        imgs = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
        return ImageTensorDataset(imgs, torch.randint(0, 10, (n,), generator=g), name=name, split="noise", source="noise"), "noise"


def config(name, variant, image_shape, tiny):
    cfg = {**MODELS[name].default_config(image_shape, 10, "quick" if tiny else "gpu"), **variant}
    if tiny and name == "hvae":
        cfg.update(resolutions=(1, 4, 8, 16), layers=(1, 1, 1, 1))
    if tiny and name == "rivera-vae":
        cfg.update(widths=(16, 32))
    return cfg


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(row, device, steps, tiny, data):
    chapter, name, variant, ds_name, batch = row
    ds, _ = data[ds_name]
    batch = 8 if tiny else batch
    seed_everything(0)
    model = build_model(name, **config(name, variant, ds.image_shape, tiny))
    # tiny (no CUDA): bf16 autocast on the CPU anyway, so that CI runs every model through the autocast path
    t = Trainer(model, device=device, progress=False, seed=0, bf16=True if tiny else None)
    warm = 1 if tiny else 10
    t.fit(ds, steps=warm, batch_size=batch)                 # compiles kernels, autotunes, moves the data
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device); t0 = time.perf_counter()
    t.fit(ds, steps=warm + steps, batch_size=batch)
    sync(device); dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else float("nan")
    return {"chapter": chapter, "model": name, "variant": variant, "data": f"{ds_name} {'x'.join(map(str, ds.image_shape))}",
            "batch": batch, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
            "bf16": t.bf16, "resident": t._resident is not None, "images_per_s": round(steps * batch / dt, 1),
            "step_ms": round(1000 * dt / steps, 2), "peak_mem_MiB": round(peak, 1)}


def resume_check(device, steps, tiny, data):
    "2N steps straight against N + checkpoint + resume to 2N, with noise drawn on the device."
    ds, _ = data["cifar10"]
    cfg = config("hvae", {"output": "gaussian", "schedule": True}, ds.image_shape, tiny)
    n, batch = (7, 8) if tiny else (max(steps // 4, 20), 32)

    def weights(m):
        return torch.cat([p.detach().float().reshape(-1) for p in m.parameters()])

    def trainer(path=None):
        seed_everything(1)
        # the GPU path on any device: uint8 data resident on the device, losses read every 5 steps
        t = Trainer(build_model("hvae", **cfg), device=device, progress=False, seed=1, ckpt_path=path, bf16=False,
                    resident=True, sync_every=5)
        if device.type == "cuda":             # bit-level comparisons: no autotuned (possibly non-deterministic) kernels
            torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
        return t

    def trained(path=None, restore_rng=True):
        t = trainer(path)
        if path is None:
            t.fit(ds, steps=2 * n, batch_size=batch)
            return t.model
        t.fit(ds, steps=n, batch_size=batch)
        t2 = trainer(path)
        seed_everything(99)                   # a fresh process would start elsewhere
        if restore_rng:
            t2.fit(ds, steps=2 * n, batch_size=batch, resume=True)
        else:                                 # the control: weights, optimiser, data position restored; generators not
            t2.load_checkpoint()
            torch.manual_seed(12345)
            if device.type == "cuda":
                torch.cuda.manual_seed_all(12345)
            t2.fit(ds, steps=2 * n, batch_size=batch)
        return t2.model

    with tempfile.TemporaryDirectory() as d:
        straight = weights(trained())
        resumed = weights(trained(f"{d}/a.ckpt"))
        control = weights(trained(f"{d}/b.ckpt", restore_rng=False))
    diff = float((straight - resumed).abs().max())
    diff_control = float((straight - control).abs().max())
    scale = float(straight.abs().max())
    return {"model": "hvae gaussian+schedule", "steps": 2 * n, "resumed_at": n, "resident_uint8": True, "sync_every": 5,
            "max_abs_diff": diff,
            "control_max_abs_diff": diff_control,    # resumed with other random generators: must differ
            "ok": diff <= 1e-5 * scale and diff_control > 100 * max(diff, 1e-7 * scale)}


def metrics_check(device, tiny, data):
    "Sample metrics of a briefly trained GLF on MNIST, computed on the device."
    from latentgen.metrics import fidelity
    ds, _ = data["mnist"]
    seed_everything(0)
    model = build_model("glf", **config("glf", {"method": "glf"}, ds.image_shape, tiny))
    t = Trainer(model, device=device, progress=False)
    t.fit(ds, steps=2 if tiny else 300, batch_size=8 if tiny else 256)
    n = 64 if tiny else 2000
    ref = torch.stack([ds[i][0] for i in range(len(ds) - n, len(ds))])
    t0 = time.perf_counter()
    out = fidelity(lambda k: model.eval().sample(k).float().cpu(), ref, dataset="mnist", n_samples=n,
                   cuda=device.type == "cuda", prc=True)
    return {"n": n, "seconds": round(time.perf_counter() - t0, 2), "on_device": device.type == "cuda",
            **{k: out[k] for k in ("fid", "kid", "precision", "recall", "backend") if k in out}}


def table(rows):
    cols = ["chapter", "model", "variant", "data", "batch", "params_M", "images_per_s", "step_ms", "peak_mem_MiB"]
    cells = [[str(r[c]) if c != "variant" else ",".join(f"{k}={v}" for k, v in r[c].items()) or "-" for c in cols] for r in rows]
    w = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
    lines += ["  ".join(x[i].ljust(w[i]) for i in range(len(cols))) for x in cells]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--steps", type=int, default=None, help="timed steps per model (default: 200 on CUDA, 3 elsewhere)")
    p.add_argument("--tiny", action="store_true", help="quick-profile models on 16x16 images (the default without CUDA)")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    a = p.parse_args(argv)
    device = get_device(a.device)
    tiny = a.tiny or device.type != "cuda"
    steps = a.steps or (3 if tiny else 200)
    if a.out is None and not tiny:            # a GPU run's numbers are kept (and committed with the command)
        a.out = str(Path(__file__).parent / "results" / "gpu_check_cuda.json")
    cli.load_chapter_modules()
    missing = sorted(set(MODELS) - {r[1] for r in RUNS})
    if missing:
        raise SystemExit(f"registered models that gpu-check does not cover: {missing}")
    t0 = time.perf_counter()
    print(f"gpu-check on {device_name(device)}: {'tiny sizes (no CUDA: this checks the command, not a GPU)' if tiny else 'gpu profile'}, "
          f"{steps} timed steps per model", flush=True)
    data = {k: dataset(k, tiny) for k in ("mnist", "cifar10")}
    print("data:", {k: v[1] for k, v in data.items()}, flush=True)
    rows = []
    for row in RUNS:
        rows.append(throughput(row, device, steps, tiny, data))
        print(f"  {row[0]} {row[1]} {row[2]}: {rows[-1]['images_per_s']:,.0f} images/s", flush=True)
    print(table(rows), flush=True)
    res = resume_check(device, steps, tiny, data)
    print(f"resume on {device.type}: {res}", flush=True)
    met = metrics_check(device, tiny, data)
    print(f"sample metrics on {device.type}: {met}", flush=True)
    out = {"device": device_name(device), "tiny": tiny, "steps": steps, "throughput": rows, "resume": res,
           "metrics": met, "minutes": round((time.perf_counter() - t0) / 60, 2), "run": run_info()}
    print(f"gpu-check: {out['minutes']} min; resume {'OK' if res['ok'] else 'FAILED'}", flush=True)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(out, indent=1, default=str))
        print("wrote", a.out)
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
