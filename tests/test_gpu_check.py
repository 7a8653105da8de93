"""`make gpu-check` keeps working on a machine without CUDA (tiny sizes): every registered model trains, the resume
check passes and its control fails, and the sample metrics are computed."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_runs_tiny(tmp_path):
    out = tmp_path / "gc.json"
    r = subprocess.run(["make", "-s", "gpu-check", f"PY={sys.executable}", f"GPU_CHECK_ARGS=--tiny --out {out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "resume OK" in r.stdout
    res = json.loads(out.read_text())
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gpu_check
    assert len(res["throughput"]) == len(gpu_check.RUNS)
    assert all(row["images_per_s"] > 0 for row in res["throughput"])
    assert {row["chapter"] for row in res["throughput"]} == {"ch1", "ch2", "ch3", "ch4"}
    assert res["resume"]["ok"] and res["resume"]["max_abs_diff"] == 0.0        # on a CPU: bit-identical
    assert res["resume"]["control_max_abs_diff"] > 0                            # the generators' state matters
    assert res["metrics"]["fid"] > 0 and 0 <= res["metrics"]["precision"] <= 1
