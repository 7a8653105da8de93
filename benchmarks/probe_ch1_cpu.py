import sys, time, json, torch
from latentgen.config import seed_everything
from latentgen.data import train_test_splits, balanced_subset
from latentgen.ch1_vae import RiveraVAE
from latentgen.train import Trainer
from latentgen.metrics import fidelity, floor_rows, floor_level
steps = int(sys.argv[1]); recw = float(sys.argv[2]); advw = float(sys.argv[3]); names = sys.argv[4].split(",")
width = int(sys.argv[5]) if len(sys.argv) > 5 else 16
train, test = train_test_splits("mnist", "cpu", seed=0)
print(len(train), len(test), train.image_shape)
cfg = RiveraVAE.default_config(train.image_shape, profile="quick")
cfg.update(rec_weight=recw, adv_weight=advw, widths=tuple(width * 2 ** i for i in range(len(cfg["widths"]))))
print(cfg)
out = {}
for name in names:
    seed_everything(0)
    m = RiveraVAE(**{**cfg, "objective": name.split("-")[0], **({"adv_weight": 0.0} if name.endswith("noadv") else {})})
    t0 = time.perf_counter()
    tr = Trainer(m, seed=0)
    tr.fit(train, steps=steps, batch_size=64)
    dt = time.perf_counter() - t0
    m.eval()
    torch.manual_seed(0)
    fm = fidelity(m.sample, test, n_samples=len(test), reference_cache="probe-ch1-mnist")
    with torch.no_grad():
        mu, lv = m.encode(torch.stack([test[i][0] for i in range(len(test))]))
    out[name] = {"s": round(dt, 1), "fid": fm["fid"], "kid": fm.get("kid"), "au": int((mu.var(0) > 0.01).sum()),
                 "kl": float((0.5 * (mu ** 2 + lv.exp() - lv - 1)).sum(1).mean())}
    print(name, out[name], flush=True)
real = balanced_subset(train, len(test), 0)
fl = floor_rows(real, test, reference_cache="probe-ch1-mnist")
print({k: round(float(v["fid"]), 2) for k, v in fl.items()}, "floor", floor_level({k: float(v["fid"]) for k, v in fl.items()}))
