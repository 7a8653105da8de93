"""Every registered model (and its variants) trains a few steps under `torchrun --nproc_per_node=2` (gloo on CPU):
DistributedDataParallel accepts it (no parameter left without a gradient), and the processes end with equal weights.
Run by tests/test_distributed.py; prints `OK <model> <variant>` on rank 0 for each."""
import sys

import torch
import torch.distributed as dist

import latentgen.cli as cli
from latentgen.distributed import dist_info
from latentgen.models import MODELS, TwoStageModel, build_model, config_keys
from latentgen.train import Trainer

VARIANTS = {"glf": [{"method": m} for m in ("glf", "reg-glf", "vae", "vae-flow", "rae-gmm", "two-stage-vae")],
            "cvae": [{"prior": p} for p in ("standard", "conditional", "flow", "de")],
            "hvae": [{"output": "gaussian"}, {"output": "dmol", "num_classes": 10, "schedule": True}],
            "rivera-vae": [{"objective": "rivera"}, {"objective": "standard"}],
            "vae": [{}]}


def main():
    cli.load_chapter_modules()
    missing = sorted(set(MODELS) - set(VARIANTS))
    if missing:
        raise SystemExit(f"registered models without variants here: {missing}")
    x, y = torch.rand(32, 3, 16, 16), torch.randint(0, 10, (32,))
    ds = torch.utils.data.TensorDataset(x, y)
    for name, variants in VARIANTS.items():
        for v in variants:
            bad = set(v) - set(config_keys(name))
            if bad:
                raise SystemExit(f"{name} has no config keys {bad}")
            cfg = {**MODELS[name].default_config((3, 16, 16), 10, "quick"), **v}
            if name == "hvae":
                cfg.update(resolutions=(1, 4, 8, 16), layers=(1, 1, 1, 1))
            if name == "rivera-vae":
                cfg.update(widths=(16, 32))
            torch.manual_seed(0)
            m = build_model(name, **cfg)
            t = Trainer(m, seed=0, progress=False, device="cpu")
            t.fit(ds, steps=2, batch_size=8)
            if isinstance(m, TwoStageModel):
                m.fit_second_stage(ds, batch_size=8, epochs=1, progress=False, device="cpu")
            flat = torch.cat([p.detach().reshape(-1) for p in m.parameters()])
            other = flat.clone(); dist.broadcast(other, src=0)
            assert torch.equal(flat, other), f"{name} {v}: the processes' weights differ"
            if dist_info()[0] == 0:
                print("OK", name, v, flush=True)


if __name__ == "__main__":
    sys.exit(main())
