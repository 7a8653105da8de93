#!/usr/bin/env bash
# One run on a GPU machine without internet: install the kit offline, prepare the data, run <what>, pack ONE archive.
#
#   bash tools/gpu_run.sh <what> --out DIR [--deadline-s N] [--kit DIR]      (from the repository root)
#
#   <what>: check      benchmarks/gpu_check.py, short (GPU_CHECK_STEPS timed steps per model, default 40)
#           ch1 .. ch4 one chapter notebook at $LATENTGEN_PROFILE (default: gpu on CUDA, quick elsewhere)
#           dashboard  the reproduction dashboard (nbs/results_dashboard.ipynb)
#           bench      benchmarks/glf_throughput.py without and with --compile
#
# The kit (.gpu-kit/, `make gpu-kit` on a machine with internet, copied here with the checkout) is installed
# with `pip --no-index` into .gpu-run/site (PYTHONPATH; the machine's torch is used), its data unpacked into data/
# as `latentgen data prepare` makes it. The whole run stops before --deadline-s seconds (default 570) counted from
# its start: the main step gets what is left less a packing margin, a notebook is saved after every cell and a cut
# one comes back as <notebook>.partial.ipynb. The archive, DIR/latentgen-<what>-<profile>-<UTC stamp>.tar.gz (at most
# 15.5 MiB by default: gpu_kit.py pack --limit-mib), holds paths relative to the repository (results/<chapter>/
# <profile>/..., benchmarks/results/...), the log, nvidia-smi's output and gpu-run.json (what ran, status, times,
# SHA-256 of every member; model weights are listed, not packed). `python tools/book_from_results.py --archive FILE
# --unpack-only` puts it in place. Exit status: 0 done, 3 cut by the deadline (archive written), 1 failed.
# The whole round trip: the book page nbs/guide_gpu_offline.md.
set -uo pipefail
T0=$(date +%s)
usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" >&2; exit 2; }
{  # the whole script is read before it runs: a checkout changed meanwhile cannot change a running call
WHAT=${1:-}; [ $# -gt 0 ] && shift
OUT_DIR=""; DEADLINE=570; KIT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT_DIR=${2:-}; shift 2 || usage ;;
    --deadline-s) DEADLINE=${2:-}; shift 2 || usage ;;
    --kit) KIT=${2:-}; shift 2 || usage ;;
    *) usage ;;
  esac
done
NB=""; CH=""
case "$WHAT" in
  check|bench) ;;
  ch1) CH=ch1; NB=ch1_vae ;;
  ch2) CH=ch2; NB=ch2_cvae_nf ;;
  ch3) CH=ch3; NB=ch3_glf ;;
  ch4) CH=ch4; NB=ch4_hvae ;;
  dashboard) CH=dashboard; NB=results_dashboard ;;
  *) usage ;;
esac
[ -n "$OUT_DIR" ] || usage
case "$DEADLINE" in ''|*[!0-9]*) echo "gpu_run: --deadline-s takes whole seconds" >&2; exit 2 ;; esac

mkdir -p "$OUT_DIR" && OUT_DIR=$(cd "$OUT_DIR" && pwd) || exit 1        # relative paths: from where the command was run
if [ -n "$KIT" ]; then
  [ -d "$KIT" ] || { echo "gpu_run: no kit folder $KIT" >&2; exit 2; }
  KIT=$(cd "$KIT" && pwd)
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
PY=${PY:-python3}
KIT=${KIT:-$ROOT/.gpu-kit}
WORK=${GPU_RUN_WORK:-$ROOT/.gpu-run}
PACK_MARGIN=${GPU_RUN_PACK_MARGIN:-25}          # seconds kept after the main step for packing the archive
# (tests: GPU_RUN_WORK moves .gpu-run/, GPU_RUN_NBS takes the chapter notebooks from another folder)
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd) || exit 1
STAMP=$(date -u +%Y%m%d-%H%M%S)
STAGE="$WORK/stage-$WHAT-$STAMP"
LOG="$WORK/log-$WHAT-$STAMP.txt"
mkdir -p "$STAGE" && : > "$LOG"

now() { echo $(( $(date +%s) - T0 )); }
left() { echo $(( DEADLINE - $(now) )); }
say() { echo "gpu_run [$(now)s] $*" | tee -a "$LOG"; }
run() { "$@" 2>&1 | tee -a "$LOG"; return "${PIPESTATUS[0]}"; }

say "$WHAT: start (deadline ${DEADLINE}s, kit $KIT, python $($PY -c 'import sys; print(sys.version.split()[0])' 2>&1))"
NVSMI="$WORK/nvidia-smi-$STAMP.txt"
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi > "$NVSMI" 2>&1; else echo "no nvidia-smi on this machine" > "$NVSMI"; fi

STATUS=ok; MAIN_RC=""; T_INSTALL=0; T_DATA=0; T_MAIN=0
t=$(now)
if run "$PY" tools/gpu_kit.py install --kit "$KIT" --target "$WORK/site"; then
  export PYTHONPATH="$WORK/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export PATH="$WORK/site/bin:$PATH"
else
  STATUS=install-failed
fi
T_INSTALL=$(( $(now) - t ))

export LATENTGEN_DATA=${LATENTGEN_DATA:-$ROOT/data}
export LATENTGEN_OFFLINE=1 LATENTGEN_PROGRESS=${LATENTGEN_PROGRESS:-0} JUPYTER_PLATFORM_DIRS=1 PYTHONUNBUFFERED=1
# Jupyter's and IPython's folders inside .gpu-run: nothing read from or written to a home folder there
export IPYTHONDIR=$WORK/ipython JUPYTER_CONFIG_DIR=$WORK/jupyter/config JUPYTER_DATA_DIR=$WORK/jupyter/data \
  JUPYTER_RUNTIME_DIR=$WORK/jupyter/runtime
t=$(now)
if [ "$STATUS" = ok ] && ! run "$PY" tools/gpu_kit.py prepare-data --kit "$KIT"; then STATUS=data-failed; fi
T_DATA=$(( $(now) - t ))

read -r PROFILE DEV RESULTS < <("$PY" -c 'import torch; from latentgen.config import get_profile; from latentgen.results import results_root
print(get_profile(), "cuda" if torch.cuda.is_available() else "cpu", results_root())' 2>/dev/null)
PROFILE=${PROFILE:-${LATENTGEN_PROFILE:-gpu}}; DEV=${DEV:-unknown}; RESULTS=${RESULTS:-$ROOT/results}
export LATENTGEN_PROFILE=$PROFILE
if [ -n "$CH" ]; then META="results/$CH/$PROFILE/gpu-run"; else META="benchmarks/results/gpu-run-$WHAT"; fi
mkdir -p "$STAGE/$META" "$STAGE/benchmarks/results"
say "profile $PROFILE, device $DEV, data $LATENTGEN_DATA, results $RESULTS"

B=$(( $(left) - PACK_MARGIN ))
t=$(now)
if [ "$STATUS" = ok ] && [ "$B" -lt 20 ]; then
  STATUS=no-time; say "only ${B}s left for $WHAT: not started"
elif [ "$STATUS" = ok ]; then
  say "$WHAT: up to ${B}s"
  case "$WHAT" in
    check)
      STEPS=(); [ "$DEV" = cuda ] && STEPS=(--steps "${GPU_CHECK_STEPS:-40}")
      run timeout -k 10 "$B" "$PY" benchmarks/gpu_check.py "${STEPS[@]}" --out "$STAGE/benchmarks/results/gpu_check_$DEV.json"
      MAIN_RC=$? ;;
    bench)
      run timeout -k 10 $(( B / 2 )) "$PY" benchmarks/glf_throughput.py --out "$STAGE/benchmarks/results/glf_throughput_$DEV.json"
      MAIN_RC=$?
      B2=$(( $(left) - PACK_MARGIN ))
      if [ "$B2" -ge 20 ]; then
        run timeout -k 10 "$B2" "$PY" benchmarks/glf_throughput.py --compile --out "$STAGE/benchmarks/results/glf_throughput_${DEV}_compile.json"
        rc=$?; [ "$MAIN_RC" = 0 ] && MAIN_RC=$rc
      else
        say "no time left for the --compile run"; MAIN_RC=124
      fi ;;
    *)
      mkdir -p "$RESULTS/$CH/$PROFILE"
      # the notebook's kernel must pick its inline backend: no MPLBACKEND for it. Its connection file goes to
      # $KTMP, so that a kernel left behind by a killed executor (the kernel runs in its own session, out of
      # timeout's reach) is found and ended below
      KTMP="$WORK/tmp-$STAMP"; mkdir -p "$KTMP"
      "$PY" tools/gpu_kit.py snapshot "$RESULTS/$CH/$PROFILE" --out "$WORK/before-$STAMP.json"   # what was there
      run env -u MPLBACKEND TMPDIR="$KTMP" timeout -k 10 "$B" "$PY" tools/gpu_kit.py execute "${GPU_RUN_NBS:-nbs}/$NB.ipynb" \
        --output "$RESULTS/$CH/$PROFILE/$NB.ipynb" --deadline-s $(( B - 20 )) --status "$STAGE/$META/notebook.json"
      MAIN_RC=$?
      pkill -KILL -f -- "-f $KTMP/" 2>/dev/null && say "ended a kernel left running"
      rm -rf "$KTMP" ;;
  esac
  case "$MAIN_RC" in 0) ;; 3|124|137) STATUS=deadline ;; *) STATUS=failed ;; esac
fi
T_MAIN=$(( $(now) - t ))
say "$WHAT: $STATUS (exit ${MAIN_RC:-none}) after ${T_MAIN}s; install ${T_INSTALL}s, data ${T_DATA}s"

# provenance beside the results: the log (its last 4 MiB), nvidia-smi before and after, what ran
if command -v nvidia-smi >/dev/null 2>&1; then
  { echo; echo "--- after the run"; nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu,temperature.gpu --format=csv; } >> "$NVSMI" 2>&1
fi
cp "$NVSMI" "$STAGE/$META/nvidia-smi.txt"
tail -c $(( 4 * 1024 * 1024 )) "$LOG" > "$STAGE/$META/log.txt"
GIT=$(git rev-parse HEAD 2>/dev/null || echo "")
DIRTY=$(git status --porcelain --untracked-files=no 2>/dev/null | head -c 2000 || echo "")
WHAT="$WHAT" PROFILE="$PROFILE" DEV="$DEV" STATUS="$STATUS" MAIN_RC="$MAIN_RC" DEADLINE="$DEADLINE" GIT="$GIT" \
DIRTY="$DIRTY" T_INSTALL="$T_INSTALL" T_DATA="$T_DATA" T_MAIN="$T_MAIN" T_TOTAL="$(now)" KIT="$KIT" META="$META" \
"$PY" - > "$WORK/info-$STAMP.json" <<'EOF'
import hashlib, json, os, platform, socket
from pathlib import Path
e = os.environ
kit = Path(e["KIT"]) / "manifest.json"
km = json.loads(kit.read_text()) if kit.is_file() else {}
print(json.dumps({
    "what": e["WHAT"], "profile": e["PROFILE"], "device": e["DEV"], "status": e["STATUS"],
    "main_exit": int(e["MAIN_RC"]) if e["MAIN_RC"] else None, "deadline_s": int(e["DEADLINE"]),
    "seconds": {"install": int(e["T_INSTALL"]), "data": int(e["T_DATA"]), "main": int(e["T_MAIN"]),
                "before_packing": int(e["T_TOTAL"])},
    "git_commit": e["GIT"] or km.get("git_commit"), "git_commit_source": "checkout" if e["GIT"] else "kit manifest",
    "tracked_changes": e["DIRTY"] or None, "meta_dir": e["META"], "host": socket.gethostname(),
    "python": platform.python_version(), "command": f"bash tools/gpu_run.sh {e['WHAT']} ...",
    "kit": {"manifest_sha256": hashlib.sha256(kit.read_bytes()).hexdigest() if kit.is_file() else None,
            "created_utc": km.get("created_utc"), "data": {k: v for k, v in km.get("data", {}).items()
                                                            if k in ("note", "subset")}},
}, indent=1))
EOF
COLLECT=()
[ -n "$CH" ] && [ -f "$WORK/before-$STAMP.json" ] && \
  COLLECT=(--collect "$RESULTS/$CH/$PROFILE=results/$CH/$PROFILE" --baseline "$WORK/before-$STAMP.json")
NAME="latentgen-$WHAT-$PROFILE-$STAMP"
if run "$PY" tools/gpu_kit.py pack --stage "$STAGE" --out "$OUT_DIR" --name "$NAME" --info "$WORK/info-$STAMP.json" "${COLLECT[@]}"; then
  say "done in $(now)s (deadline ${DEADLINE}s): install ${T_INSTALL}s, data ${T_DATA}s, $WHAT ${T_MAIN}s ($STATUS); archive $OUT_DIR/$NAME.tar.gz"
else
  say "packing failed after $(now)s"; exit 1
fi
case "$STATUS" in ok) exit 0 ;; deadline) exit 3 ;; *) exit 1 ;; esac
}
