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


# ------------------------------------------------------------------------------------------- names become paths
@pytest.mark.parametrize("option", ["--name", "--chapter"])
@pytest.mark.parametrize("bad", ["../escape", "a/b", "/abs", "..", ".", "", ".hidden", "a\\b"])
def test_evaluate_names_that_would_leave_the_results_folder_are_refused(tiny_run, tmp_path, capsys, option, bad):
    res = tmp_path / "res"
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(tiny_run / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
              "--results", str(res), option, bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and "is not a name" in err[-1] and option in err[-1], err
    assert not res.exists() and not (tmp_path / "escape").exists()


def test_evaluate_name_and_chapter_land_under_the_results_root(tiny_run, tmp_path, capsys):
    res = tmp_path / "res"
    main(["evaluate", str(tiny_run / "model.pt"), "--dataset", "digits", "--n", "100", "--backend", "random",
          "--results", str(res), "--name", "my-run", "--chapter", "ch9"])
    files = [p.relative_to(res) for p in res.rglob("*.json")]
    assert [f.parts for f in files] == [("ch9", "quick", "digits-my-run.json")], files


# ----------------------------------------------------------------------------------- no empty folder on failure
def test_failed_start_leaves_no_empty_run_folder(tmp_path):
    out = tmp_path / "runs" / "new"
    _fails(["train", "vae", "--dataset", "digits", "--steps", "2", "--out", out, "--set", "latent_dim=-1"], "error")
    assert not out.exists() and not out.parent.exists()
    _fails(["train", "vae", "--dataset", "digits", "--steps", "2", "--out", out, "--batch-size", "100000"],
           "fewer than one batch")
    assert not out.parent.exists()
    (tmp_path / "mine").mkdir()                          # a folder the user made is theirs: left in place
    _fails(["train", "vae", "--dataset", "digits", "--steps", "2", "--out", tmp_path / "mine", "--set", "latent_dim=-1"],
           "error")
    assert (tmp_path / "mine").is_dir()


def test_refused_evaluation_leaves_no_empty_results_folder(tiny_run, tmp_path):
    from latentgen.models import load_model, save_model
    m = load_model(tiny_run / "model.pt")
    save_model(m, tmp_path / "bare" / "model.pt")            # records no data: refused
    _fails(["evaluate", tmp_path / "bare" / "model.pt", "--dataset", "digits", "--results", tmp_path / "res"],
           "does not record which data trained it")
    assert not (tmp_path / "res").exists()


# ---------------------------------------------------------------------------------- provenance on every path
def test_evaluate_holdout_refuses_a_model_without_training_indices(tiny_run, tmp_path, capsys):
    "A model trained on this split whose file does not say which images: --holdout N may hold its training images."
    from latentgen.models import load_model, save_model
    m = load_model(tiny_run / "model.pt")
    extra = {k: v for k, v in m.saved_extra.items() if k != "train_indices"}
    save_model(m, tmp_path / "noidx" / "model.pt", **extra)
    argv = ["evaluate", tmp_path / "noidx" / "model.pt", "--dataset", "digits", "--split", "train", "--holdout", "100",
            "--backend", "random", "--results", tmp_path / "res"]
    _fails(argv, "does not record which images, so the --holdout 100 images may have trained it")
    assert not (tmp_path / "res").exists()
    main([str(a) for a in argv] + ["--allow-train-images"])            # on request, with a warning
    assert "may include training images" in capsys.readouterr().err
    # the model file that records its indices: held-out images that trained it are refused too (all 100 did)
    _fails(["evaluate", tiny_run / "model.pt", "--dataset", "digits", "--split", "train", "--holdout", "100",
            "--backend", "random", "--results", tmp_path / "res2"], "held-out images trained the model")


# ------------------------------------------------------------------------------------------ bounds before work
@pytest.mark.parametrize("argv,text", [(["--n", "100001"], "--n: must be at most 100,000"),
                                       (["--per-image", "10001"], "--per-image: must be at most 10,000")])
def test_sample_bounds_are_checked_before_work(tiny_run, tmp_path, capsys, argv, text):
    with pytest.raises(SystemExit) as e:
        main(["sample", str(tiny_run / "model.pt"), "--out", str(tmp_path / "s.png"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and text in err[-1], err
    assert not list(tmp_path.iterdir())


def test_out_of_memory_is_one_line_naming_the_limit(tiny_run, tmp_path, monkeypatch):
    import latentgen.viz as viz
    def oom(*a, **kw):
        raise MemoryError()
    monkeypatch.setattr(viz, "show_images", oom)
    msg = _fails(["sample", tiny_run / "model.pt", "--n", "9", "--out", tmp_path / "s.png"], "ran out of memory")
    assert "--per-image" in msg and "10,000" in msg


# ------------------------------------------------------------------------------------------- --force is atomic
def _hashes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_failed_forced_run_leaves_the_old_run_byte_identical(tmp_path):
    out = tmp_path / "run"
    train = ["train", "vae", "--dataset", "digits", "--batch-size", "64", "--out", out, *SMALL]
    main([str(a) for a in train + ["--steps", "3"]])
    before = _hashes(out)
    assert {"model.pt", "trainer.ckpt", "history.json"} <= set(before)
    # a forced run that diverges (the loop refuses to save it as a model) after writing checkpoints of its own
    _fails(train + ["--force", "--epochs", "3", "--lr", "1e6"], "diverged")
    assert _hashes(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]           # the new run's folder is gone
    # a forced run that succeeds replaces the three run files
    main([str(a) for a in train + ["--force", "--steps", "4"]])
    after = _hashes(out)
    assert set(after) == set(before) and all(after[f] != before[f] for f in before)
    from latentgen.fileio import safe_torch_load
    assert safe_torch_load(out / "trainer.ckpt")["step"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_interrupted_forced_run_replaces_the_old_one_and_resumes(tmp_path):
    "Once the new run has a checkpoint (its interruption writes one), it is the run in the folder: --resume continues it."
    from latentgen.fileio import safe_torch_load
    out = tmp_path / "run"
    train = ["train", "vae", "--dataset", "digits", "--batch-size", "32", "--out", out, *SMALL]
    assert _cli(*train, "--steps", "3").returncode == 0
    p = subprocess.Popen([sys.executable, "-m", "latentgen", *map(str, train), "--force", "--steps", "1000000",
                          "--ckpt-every", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    work = tmp_path / ".run.new-run"
    try:
        deadline = time.monotonic() + 120
        while not (work / "trainer.ckpt").exists():
            assert p.poll() is None and time.monotonic() < deadline, p.communicate()
            time.sleep(0.1)
        assert safe_torch_load(out / "trainer.ckpt")["step"] == 3          # the old run, whole, meanwhile
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 143 and str(out / "trainer.ckpt") in err and ".new-run" not in err, err
    step = safe_torch_load(out / "trainer.ckpt")["step"]
    assert step >= 5 and not (out / "model.pt").exists() and not work.exists()
    r = _cli(*train, "--resume", "--steps", step + 2)
    assert r.returncode == 0 and "resuming from" in r.stdout, r.stdout + r.stderr
    assert safe_torch_load(out / "trainer.ckpt")["step"] == step + 2


# ----------------------------------------------------------------------------------------- crafted pickles
class _RunsCode:
    def __reduce__(self):
        return (os.getpid, ())


def test_refusal_suggests_convert_only_with_the_warning_that_it_executes_code(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"name": "vae", "config": {}, "state_dict": {}, "extra": _RunsCode()}, evil)
    for argv in (["sample", evil, "--out", tmp_path / "s.png"], ["convert", evil]):
        msg = _fails(argv, "--i-trust-this-file")
        assert "executes any code the file holds" in msg and "only if you wrote it yourself" in msg.lower(), msg


def test_help_lists_every_environment_variable_the_package_reads():
    import re
    read = set()
    for f in (ROOT / "latentgen").glob("*.py"):
        read |= set(re.findall(r"LATENTGEN_[A-Z0-9_]*[A-Z0-9]", f.read_text()))
    out = _cli("--help").stdout
    listed = set(re.findall(r"^  (LATENTGEN_\w+)  ", out, re.M))
    assert listed == read, (sorted(read - listed), sorted(listed - read))


# ------------------------------------------------------------------------------ class-conditional sampling
@pytest.fixture(scope="module")
def tiny_hvae(tmp_path_factory):
    "A tiny class-conditional hierarchical VAE (chapter 4) trained for 3 steps on digits' 10 classes."
    d = tmp_path_factory.mktemp("hvae")
    os.environ.setdefault("LATENTGEN_PROGRESS", "0")
    main(["train", "hvae", "--dataset", "digits", "--steps", "3", "--batch-size", "32", "--out", str(d / "run"),
          "--set", "num_classes=10", "width=8"])
    return d / "run"


def test_sample_class_and_guidance_reach_the_sampler(tiny_hvae, tmp_path, monkeypatch):
    "`--class 3 --guidance 1`: every call of the model's sampler gets labels all 3 and m = 1; the grid is written."
    from latentgen.ch4_hvae import HierarchicalVAE
    calls, real = [], HierarchicalVAE.sample
    def spy(self, n, y=None, m=None, v=None, decode=None):
        calls.append((n, None if y is None else y.tolist(), m, v))
        return real(self, n, y, m, v, decode)
    monkeypatch.setattr(HierarchicalVAE, "sample", spy)
    main(["sample", str(tiny_hvae / "model.pt"), "--n", "300", "--class", "3", "--guidance", "1",
          "--out", str(tmp_path / "s.png")])
    assert (tmp_path / "s.png").stat().st_size > 0
    assert [c[0] for c in calls] == [256, 44], calls                    # SAMPLE_BATCH at a time
    assert all(y == [3] * n and m == 1.0 and v is None for n, y, m, v in calls), calls
    calls.clear()
    main(["sample", str(tiny_hvae / "model.pt"), "--n", "4", "--guidance-v", "0.5", "--out", str(tmp_path / "t.png")])
    assert calls == [(4, None, None, 0.5)], calls                       # without --class: the model's own labels


@pytest.mark.parametrize("argv,text", [(["--class", "3"], "is not class-conditional"),
                                       (["--guidance", "1"], "has no guidance"),
                                       (["--guidance-v", "1"], "has no guidance")])
def test_sample_refuses_class_and_guidance_the_model_cannot_take(tiny_run, tmp_path, argv, text):
    "An unconditional VAE: --class and --guidance are one-line errors naming why, and nothing is written."
    _fails(["sample", tiny_run / "model.pt", "--out", tmp_path / "s.png", *argv], text)
    assert not list(tmp_path.iterdir())


def test_sample_refuses_a_class_the_model_does_not_have(tiny_hvae, tmp_path):
    _fails(["sample", tiny_hvae / "model.pt", "--class", "10", "--out", tmp_path / "s.png"], "has 10 classes, 0 to 9")
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------------- schedules, averages, a config file
def test_ema_saves_the_average_and_the_schedule_reaches_the_optimiser(tmp_path):
    from latentgen.fileio import safe_torch_load
    base = ["train", "vae", "--dataset", "digits", "--steps", "6", "--batch-size", "32", "--seed", "3", *SMALL]
    main([*base, "--out", str(tmp_path / "plain")])
    main([*base, "--out", str(tmp_path / "avg"), "--ema", "0.5", "--lr-schedule", "warmup-cosine", "--warmup", "2"])
    plain, avg = (safe_torch_load(tmp_path / n / "model.pt") for n in ("plain", "avg"))
    assert avg["extra"]["command"].endswith("--warmup 2")
    diff = [k for k in plain["state_dict"] if not torch.equal(plain["state_dict"][k], avg["state_dict"][k])]
    assert diff                                                    # the average (and the schedule) changed the weights
    ck = safe_torch_load(tmp_path / "avg" / "trainer.ckpt")
    flat = json.dumps(ck, default=lambda o: None)
    assert '"last_epoch": 6' in flat or "'last_epoch': 6" in repr(ck)      # the LambdaLR was stepped once per step


def test_config_file_sets_options_and_flags_win(tmp_path):
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"steps": 4, "batch-size": 16, "seed": 2, "set": {"latent_dim": 3, "width": 4, "hidden": 8}}))
    main(["train", "vae", "--dataset", "digits", "--config", str(cfg), "--set", "latent_dim=2", "--out", str(tmp_path / "r")])
    from latentgen.fileio import safe_torch_load
    saved = safe_torch_load(tmp_path / "r" / "model.pt")
    assert saved["config"]["latent_dim"] == 2 and saved["config"]["width"] == 4     # --set wins, the file fills the rest
    assert "--config" in saved["extra"]["command"]                                   # the file is named in the record
    toml = tmp_path / "run.toml"
    toml.write_text('steps = 3\nbatch-size = 16\nema = 2.0\n')
    _fails(["train", "vae", "--dataset", "digits", "--config", toml, "--out", tmp_path / "t"], "below 1")
    cfg.write_text(json.dumps({"stepz": 4}))
    _fails(["train", "vae", "--dataset", "digits", "--config", cfg, "--out", tmp_path / "u"], "unknown option(s) stepz")
    _fails(["train", "vae", "--dataset", "digits", "--config", tmp_path / "none.json", "--out", tmp_path / "v"], "no such file")
