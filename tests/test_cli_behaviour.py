"""The command line's contracts with scripts and schedulers: stdout that parses, signals that checkpoint, folders that
are not left half made, user strings that cannot escape their folder, bounds checked before work."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from latentgen.cli import main

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "latent_dim=2", "width=4", "hidden=8"]


def _env(**kw):
    return {**os.environ, "PYTHONPATH": str(ROOT), "LATENTGEN_PROGRESS": "0", "LATENTGEN_OFFLINE": "1", **kw}


def _cli(*argv, **kw):
    return subprocess.run([sys.executable, "-m", "latentgen", *map(str, argv)], capture_output=True, text=True,
                          env=_env(), **kw)


def _fails(argv, text, capsys=None):
    "The command stops with exit status 1 and one line naming `text`."
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    msg = str(e.value.code)
    assert e.value.code not in (0, None) and text in msg and "\n" not in msg.strip(), msg
    return msg


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    "A tiny VAE trained for 5 steps on digits (train split), with its training indices recorded."
    d = tmp_path_factory.mktemp("tiny")
    os.environ.setdefault("LATENTGEN_PROGRESS", "0")
    main(["train", "vae", "--dataset", "digits", "--steps", "5", "--batch-size", "32", "--out", str(d / "run"), *SMALL])
    return d / "run"


# ------------------------------------------------------------------------------------------------ stdout is JSON
def test_evaluate_stdout_is_only_the_metrics_json(tiny_run, tmp_path):
    r = _cli("evaluate", tiny_run / "model.pt", "--dataset", "digits", "--n", "100", "--backend", "random",
             "--iwae-k", "2", "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    assert {"fd", "kid", "reconstruction", "iwae"} <= set(metrics)
    assert "wrote " in r.stderr and "evaluate: " in r.stderr         # the messages are on stderr


def test_evaluate_sends_what_the_metric_code_prints_to_stderr(tiny_run, tmp_path, capsys, monkeypatch):
    "torch-fidelity prints `Downloading ...` on stdout when it fetches weights; a script reading stdout gets JSON all the same."
    import latentgen.metrics as metrics
    real = metrics.fidelity
    def chatty(*a, **kw):
        print("Downloading: https://example.org/weights.pth")
        import warnings; warnings.warn("a library's warning")
        return real(*a, **kw)
    monkeypatch.setattr(metrics, "fidelity", chatty)
    main(["evaluate", str(tiny_run / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
          "--results", str(tmp_path / "res")])
    out, err = capsys.readouterr()
    assert "fd" in json.loads(out)
    assert "Downloading" in err and "a library's warning" in err


# ------------------------------------------------------------------------------------------------------ signals
@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_a_resumable_checkpoint_and_releases_the_run(tmp_path, sig, code):
    """SIGTERM (a scheduler, `kill`) stops training as Ctrl-C does: the step is checkpointed, the lock released, the
    exit status is 128 + the signal (143, 130), and --resume finishes the run."""
    from latentgen.fileio import safe_torch_load
    out = tmp_path / "run"
    train = ["train", "vae", "--dataset", "digits", "--batch-size", "32", "--out", out, *SMALL]
    p = subprocess.Popen([sys.executable, "-m", "latentgen", *map(str, train), "--steps", "1000000", "--ckpt-every", "5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "trainer.ckpt").exists():          # the first checkpoint: it is training
            assert p.poll() is None, p.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.1)
        assert (out / ".latentgen.lock").exists()
        p.send_signal(sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == code, err
    assert "Traceback" not in err and "--resume" in err, err
    assert not (out / ".latentgen.lock").exists() and not (out / "model.pt").exists()
    step = safe_torch_load(out / "trainer.ckpt")["step"]
    assert step >= 5
    r = _cli(*train, "--resume", "--steps", step + 3)
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stdout + r.stderr
    assert (out / "model.pt").exists() and safe_torch_load(out / "trainer.ckpt")["step"] == step + 3
