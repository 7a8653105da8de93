"""Data-parallel training under torchrun (gloo on this CPU): what issue 17 asks of the fit loop.

Every test launches real processes with `python -m torch.distributed.run` (torchrun), as a user would.
"""
import json, os, subprocess, sys, time
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
WORKER, MODELS = HERE / "ddp_worker.py", HERE / "ddp_models.py"


def torchrun(nproc, *args, timeout=240, module=False):
    "Run `args` (a script, or `-m module ...`) under torchrun with `nproc` processes; returns the CompletedProcess."
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LATENTGEN_PROGRESS": "0", "LATENTGEN_DIST_BACKEND": "gloo"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           *(["-m"] if module else []), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE.parent)


def result(path):
    return torch.load(path, weights_only=False)


def assert_same_run(a, b, atol=1e-6):
    "Equal loss records (every step, every term) and equal final weights, within float32 tolerance."
    assert [s["step"] for s in a["steps"]] == [s["step"] for s in b["steps"]]
    for sa, sb in zip(a["steps"], b["steps"]):
        for k in sa:
            assert sa[k] == pytest.approx(sb[k], rel=1e-5, abs=1e-6), (sa["step"], k, sa[k], sb[k])
    for k in a["weights"]:
        torch.testing.assert_close(a["weights"][k], b["weights"][k], rtol=1e-5, atol=atol, msg=k)


@pytest.mark.parametrize("extra", [[], ["--critic"]], ids=["one optimiser", "two optimisers"])
def test_two_processes_equal_one(tmp_path, extra):
    # the global batch of 64 is split 32 + 32; averaged gradients = the gradient of the global mean loss
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    p1 = torchrun(1, WORKER, "--out", one, *extra)
    p2 = torchrun(2, WORKER, "--out", two, "--resident", "yes", *extra)   # also: device-resident batches
    assert p1.returncode == 0 and p2.returncode == 0, p1.stderr[-2000:] + p2.stderr[-2000:]
    a, b = result(one), result(two)
    assert (a["world"], b["world"]) == (1, 2)
    assert len(a["steps"]) == 30 and a["steps"][-1]["loss"] < a["steps"][0]["loss"]   # it trained
    assert_same_run(a, b)
    # the comparison can fail: a run with another global batch (the same 32 per process, 1 process) differs
    half = tmp_path / "half.pt"
    assert torchrun(1, WORKER, "--out", half, "--batch-size", "32", *extra).returncode == 0
    with pytest.raises(AssertionError):
        assert_same_run(a, result(half))


def test_killed_two_process_run_resumes_exactly(tmp_path):
    # noise drawn in the model makes every process's random generator part of the state to restore
    args = ["--noise", "0.3", "--steps", "40", "--ckpt-every", "5"]
    straight = tmp_path / "straight.pt"
    assert torchrun(2, WORKER, "--out", straight, "--ckpt", tmp_path / "a.ckpt", *args).returncode == 0
    ckpt, out = tmp_path / "b.ckpt", tmp_path / "resumed.pt"
    killed = torchrun(2, WORKER, "--out", out, "--ckpt", ckpt, *args, "--fault", "kill", "1", "18")
    assert killed.returncode != 0 and not out.exists() and ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["step"] == 15 and torch.load(ckpt, weights_only=True)["world_size"] == 2
    resumed = torchrun(2, WORKER, "--out", out, "--ckpt", ckpt, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stdout and "at step 15" in resumed.stdout
    a, b = result(straight), result(out)
    for k in a["weights"]:                              # bit for bit, noise included
        assert torch.equal(a["weights"][k], b["weights"][k]), k
    assert a["steps"] == b["steps"]
    # rank 1 restored its own generator: had it taken rank 0's, the noise (and so the weights) would differ
    st = torch.load(ckpt, weights_only=True)
    assert not torch.equal(st["rng_ranks"][0]["torch"], st["rng_ranks"][1]["torch"])


def test_a_non_finite_loss_on_one_rank_stops_every_rank(tmp_path):
    t0 = time.perf_counter()
    p = torchrun(2, WORKER, "--out", tmp_path / "x.pt", "--fault", "nan", "1", "5", timeout=120)
    assert p.returncode != 0 and not (tmp_path / "x.pt").exists()
    # the loss records are averaged over the processes, so rank 0 sees rank 1's NaN at the same step and raises too
    for rank in (0, 1):
        assert f"[rank{rank}]: latentgen.train.NonFiniteLossError: AE: loss term(s) ['loss', 'rec'] = [nan, nan] at step 4" in p.stderr
    assert time.perf_counter() - t0 < 100


def test_an_exception_on_one_rank_stops_all_without_hanging(tmp_path):
    t0 = time.perf_counter()
    p = torchrun(2, WORKER, "--out", tmp_path / "x.pt", "--fault", "raise", "1", "5", timeout=120)
    assert p.returncode != 0 and not (tmp_path / "x.pt").exists()
    assert "RuntimeError: injected failure on rank 1 at call 5" in p.stderr
    assert "ChildFailedError" in p.stderr                 # torchrun stopped the job and says which rank failed
    assert time.perf_counter() - t0 < 100                 # rank 0, waiting in an all-reduce, was stopped, not left hanging


def test_every_registered_model_trains_under_ddp():
    p = torchrun(2, MODELS, timeout=400)
    assert p.returncode == 0, p.stderr[-3000:]
    ok = [l for l in p.stdout.splitlines() if l.startswith("OK ")]
    assert len(ok) == 15, p.stdout                        # glf x6, cvae x4, hvae x2, rivera-vae x2, vae


def test_cli_train_under_torchrun_writes_once(tmp_path):
    out = tmp_path / "run"
    p = torchrun(2, "latentgen.cli", "train", "vae", "--dataset", "digits", "--steps", "6", "--batch-size", "32",
                 "--out", out, "--device", "cpu", module=True)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("saved ") == 1 and "on 2 processes" in p.stdout
    assert sorted(f.name for f in out.iterdir()) == ["history.json", "model.pt", "trainer.ckpt"]
    assert len(json.loads((out / "history.json").read_text())["steps"]) == 6
    # a global batch the processes cannot share is refused before any work, by every rank
    bad = torchrun(2, "latentgen.cli", "train", "vae", "--dataset", "digits", "--steps", "2", "--batch-size", "33",
                   "--out", tmp_path / "bad", "--device", "cpu", module=True)
    assert bad.returncode != 0 and "must be divisible by the 2 processes" in bad.stderr
    # an existing run is refused on rank 0's check, and the other rank stops with it
    again = torchrun(2, "latentgen.cli", "train", "vae", "--dataset", "digits", "--steps", "6", "--batch-size", "32",
                     "--out", out, "--device", "cpu", module=True)
    assert again.returncode != 0 and again.stderr.count("already holds a run") >= 2


def test_notebook_under_torchrun(tmp_path):
    import nbformat
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import torch\nfrom latentgen.distributed import dist_info\nfrom latentgen.data import load_digits\n"
        "from latentgen.models import build_model\nfrom latentgen.train import Trainer\n"
        "torch.manual_seed(0)\nm = build_model('vae', channels=1, image_size=8, latent_dim=4, width=8, hidden=32)\n"
        "t = Trainer(m, progress=False, device='cpu'); t.fit(load_digits('train'), steps=4, batch_size=32)\n"
        "print('rank', dist_info()[0], 'of', dist_info()[1], 'records', len(t.history))")]
    src, out = tmp_path / "tiny.ipynb", tmp_path / "tiny.out.ipynb"
    nbformat.write(nb, src)
    p = torchrun(2, "latentgen.cli", "notebook", src, "--output", out, module=True)
    assert p.returncode == 0, p.stderr[-2000:]
    text = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[0].outputs)
    assert "rank 0 of 2 records 4" in text and "on 2 processes" in text
    assert p.stdout.count("executed ") == 1               # rank 1 executed it too, and wrote nothing
