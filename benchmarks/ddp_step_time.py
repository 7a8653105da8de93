"""Step time of data-parallel training: 1 process against N, the same model and the same global batch.

    python benchmarks/ddp_step_time.py                              # CPU: 1 and 2 processes (gloo), cores shared out
    python benchmarks/ddp_step_time.py --device cuda --nproc 1 2 4 8  # GPUs (NCCL), one GPU per process

Each configuration is launched with torchrun (`python -m torch.distributed.run --standalone`); each process trains
the registered model through latentgen's Trainer (DistributedDataParallel when N > 1) on random images of the given
shape. After `--warmup` steps, `--steps` more are timed (the Trainer's wall time: data, forward, backward, all-reduce,
optimiser). On CPU each process gets cores/N threads, so 1 and N processes use the same cores.
Writes a JSON line per configuration (and --json FILE, if given).
"""
import argparse, json, os, subprocess, sys, time

import torch


def worker(a):
    from latentgen.distributed import dist_info
    from latentgen.models import MODELS, build_model
    from latentgen.train import Trainer
    import latentgen.cli as cli
    cli.load_chapter_modules()
    shape = tuple(a.shape)
    cfg = {**MODELS[a.model].default_config(shape, 10, a.profile), **json.loads(a.set)}
    torch.manual_seed(0)
    model = build_model(a.model, **cfg)
    g = torch.Generator().manual_seed(0)
    n = a.batch_size * (a.warmup + a.steps)
    ds = torch.utils.data.TensorDataset(torch.rand(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g))
    t = Trainer(model, device=a.device, progress=False, resident=a.device != "cpu")
    t.fit(ds, steps=a.warmup, batch_size=a.batch_size)
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    t.fit(ds, steps=a.warmup + a.steps, batch_size=a.batch_size)
    if t.device.type == "cuda":
        torch.cuda.synchronize()
    rank, world = dist_info()
    if rank == 0:
        print("RESULT " + json.dumps({"model": a.model, "shape": shape, "global_batch": a.batch_size, "processes": world,
                                      "threads_per_process": torch.get_num_threads(), "device": str(t.device.type),
                                      "steps": a.steps, "step_time_s": t.wall_time_s / a.steps,
                                      "images_per_s": a.steps * a.batch_size / t.wall_time_s}), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="hvae")
    p.add_argument("--set", default="{}", help="JSON config overrides")
    p.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32])
    p.add_argument("--profile", default="quick")
    p.add_argument("--batch-size", type=int, default=32, help="the global batch")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--device", default="cpu")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, help="CPU threads per process (default: the cores shared out)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)
    rows, cores = [], os.cpu_count() or 1
    for n in a.nproc:
        env = {**os.environ, "LATENTGEN_PROGRESS": "0"}
        if a.device == "cpu":
            env["OMP_NUM_THREADS"] = str(a.threads or max(cores // n, 1))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", __file__,
               "--worker", *sys.argv[1:]]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(f"{n} process(es) failed:\n{out.stderr[-3000:]}")
        row = json.loads(next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))[7:])
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = rows[0]["step_time_s"]
    for r in rows:
        print(f"{r['processes']} process(es) x {r['threads_per_process']} thread(s) on {r['device']}: "
              f"{1000 * r['step_time_s']:.1f} ms/step, {r['images_per_s']:.0f} images/s, "
              f"speed-up {base / r['step_time_s']:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows, "command": " ".join(sys.argv), "time": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=1)


if __name__ == "__main__":
    main()
