#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU and a pip PyTorch, in about
# 8 minutes:
#   1. configure and build deepreduce against that PyTorch's LibTorch
#      (CMAKE_PREFIX_PATH=torch.utils.cmake_prefix_path; Ninja when present),
#      everything else from the deps folder that scripts/vendor-deps.sh fills
#      on a Debian machine (the GPU machine needs no -dev package, no network);
#   2. run the CUDA tests (ctest -L cuda: tests/torch/test_cuda.cpp);
#   3. train full-width resnet18 for 2 epochs on CUDA on CIFAR-100-shaped
#      synthetic data (50,000 images, 3x32x32, 100 classes), fp32 and bf16
#      (bf16 where `deepreduce train` has --precision), beside a plain PyTorch
#      eager reference with the same recipe on the same GPU (bench/gpu_eager.py),
#      then on Fashion-MNIST (fp32);
#   4. write the log, a JSON record with provenance and a summary to one folder.
#
#   scripts/gpu-check.sh [--dry-run] [--out DIR] [--deps DIR] [--build-dir DIR] [--python PY]
#   scripts/gpu-check.sh --digest      (the source digest the record carries)
#
# --dry-run prints every step without running anything (works anywhere).
# Defaults: --out $OUT or gpu-check-out, --deps third_party/gpu-deps,
# --build-dir build-gpu, --python: the first of python3, python that imports torch.
# Environment: GPU_CHECK_BUDGET (seconds for everything, 540), WORKERS
# (deepreduce's data-loading threads, nproc/2 up to 8). To test this script
# itself on a machine without a GPU (not a GPU check: the record says so):
# GPU_CHECK_DEVICE=cpu, GPU_CHECK_MODEL, GPU_CHECK_IMAGES (50000),
# GPU_CHECK_LIMIT (--limit of the Fashion-MNIST run, 0 = all),
# GPU_CHECK_CMAKE_ARGS (appended to cmake's).
# Exit status: 0 every step passed; 1 a step failed (the record says which);
# 2 usage; 3 no NVIDIA GPU here; 4 no deps folder; 5 no Python with torch.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
OUT_DIR=${OUT:-gpu-check-out}
DEPS=third_party/gpu-deps
BUILD=build-gpu
PY=""
BUDGET=${GPU_CHECK_BUDGET:-540}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
MODEL=${GPU_CHECK_MODEL:-resnet18}
IMAGES=${GPU_CHECK_IMAGES:-50000}
LIMIT=${GPU_CHECK_LIMIT:-0}
EXTRA_CMAKE=${GPU_CHECK_CMAKE_ARGS:-}
EPOCHS=2
SYNTH=synthetic:3x32x32:100:$IMAGES

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
digest() {
  find CMakeLists.txt Makefile cmake src apps tests bench scripts python data -type f \
    ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum |
    sha256sum | cut -c1-16
}
while [[ $# -gt 0 ]]; do
  case $1 in
    --dry-run) DRY=1 ;;
    --out) OUT_DIR=$2; shift ;;
    --deps) DEPS=$2; shift ;;
    --build-dir) BUILD=$2; shift ;;
    --python) PY=$2; shift ;;
    --digest) digest; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu-check: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[[ $DEPS == /* ]] || DEPS=$PWD/$DEPS
[[ $OUT_DIR == /* ]] || OUT_DIR=$PWD/$OUT_DIR
NPROC=$(nproc)
WORKERS=${WORKERS:-$(( NPROC / 2 > 8 ? 8 : (NPROC / 2 < 1 ? 1 : NPROC / 2) ))}
DRYNOTE=""
note() { echo "gpu-check: $*"; }
stop() {  # stop CODE MESSAGE: a real run ends here; a dry run says so and goes on
  local code=$1; shift
  if [[ $DRY == 1 ]]; then
    note "$* -- a real run stops here (exit $code); the dry run goes on"
    DRYNOTE="stopped"
  else
    echo "gpu-check: $*" >&2
    exit "$code"
  fi
}

# --- preflight: Python with torch, an NVIDIA GPU, the deps folder, tools ------
if [[ -z $PY ]]; then
  for c in python3 python /usr/bin/python3; do
    if command -v "$c" >/dev/null && "$c" -c 'import torch' 2>/dev/null; then PY=$(command -v "$c"); break; fi
  done
fi
if [[ -z $PY ]] || ! "$PY" -c 'import torch' 2>/dev/null; then
  stop 5 "no Python that imports torch (tried ${PY:-python3, python}; --python PY)"
  PY=${PY:-python3}
fi
gpu_ok=1
if [[ $DEVICE != cuda ]]; then
  note "GPU_CHECK_DEVICE=$DEVICE: testing this script without a GPU; this is not a GPU check"
elif ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  gpu_ok=0
  why="nvidia-smi is missing or finds no GPU"
elif ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  gpu_ok=0
  why="torch.cuda.is_available() is False for $PY"
fi
[[ $gpu_ok == 1 ]] || stop 3 "no NVIDIA GPU found ($why): nothing to check on this machine"
if [[ ! -f $DEPS/manifest.txt ]]; then
  stop 4 "no deps folder at $DEPS: run scripts/vendor-deps.sh on a Debian 12 machine with the packages of" \
         "scripts/install-deps.sh, and bring the folder along (device tool: carry [\"third_party/gpu-deps\"])"
fi
for t in cmake c++; do
  command -v $t >/dev/null || stop 1 "$t is missing"
done
GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
if [[ -f $DEPS/manifest.txt ]]; then
  need=$(sed -n 's/.*glibc needed to link lib\/\*\.a: >= \([0-9.]*\).*/\1/p' "$DEPS/manifest.txt")
  have=$(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')
  if [[ -n $need && -n $have && $(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1) != "$need" ]]; then
    stop 1 "glibc $have here; the static libraries of $DEPS need >= $need (scripts/vendor-deps.sh)"
  fi
fi

# --- steps -----------------------------------------------------------------
if [[ $DRY == 0 ]]; then
  mkdir -p "$OUT_DIR/steps" "$OUT_DIR/runs"
  : > "$OUT_DIR/steps.tsv"
  exec > >(tee -a "$OUT_DIR/gpu-check.log") 2>&1
  TEE_PID=$!
fi
STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
FAILED=0
# step NAME LIMIT_S COMMAND: runs COMMAND (bash) within LIMIT_S and what is
# left of GPU_CHECK_BUDGET; its output also goes to steps/NAME.log.
step() {
  local name=$1 limit=$2 cmd=$3 left=$((BUDGET - SECONDS))
  (( limit > left )) && limit=$left
  echo "== [${SECONDS}s] $name (limit ${limit}s): $cmd"
  [[ $DRY == 1 ]] && return 0
  if (( limit < 15 )); then
    echo "gpu-check: $name skipped: the ${BUDGET}s budget is spent"
    printf '%s\t%s\t%s\n' "$name" skipped 0 >> "$OUT_DIR/steps.tsv"
    return 124
  fi
  local t0=$SECONDS rc
  set +e
  timeout --kill-after=10 "$limit" bash -c "$cmd" 2>&1 | tee "$OUT_DIR/steps/$name.log"
  rc=${PIPESTATUS[0]}
  set -e
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$OUT_DIR/steps.tsv"
  [[ $rc == 0 ]] || echo "gpu-check: $name failed (exit $rc$([[ $rc == 124 || $rc == 137 ]] && echo ": out of time"))"
  return "$rc"
}
q() { printf '%q' "$1"; }

echo "gpu-check: $(date -u) on $(hostname); source digest $(digest); python $PY; deps $DEPS; out $OUT_DIR" \
     "${DRYNOTE:+(dry run past a stop)}"
[[ $DRY == 1 ]] && echo "gpu-check: dry run: nothing below is run"
SMI="nvidia-smi > $(q "$OUT_DIR/nvidia-smi.txt") && nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader > $(q "$OUT_DIR/gpu.csv")"
[[ $DEVICE == cuda ]] || SMI="echo 'no GPU: GPU_CHECK_DEVICE=$DEVICE' > $(q "$OUT_DIR/gpu.csv")"
step info 60 "$SMI && $(q "$PY") -c 'import json, platform, torch; print(json.dumps({\"torch\": torch.__version__, \"cuda\": torch.version.cuda, \"cudnn\": torch.backends.cudnn.version() if torch.cuda.is_available() else None, \"gpu\": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, \"python\": platform.python_version(), \"cmake_prefix_path\": torch.utils.cmake_prefix_path, \"cxx11_abi\": torch._C._GLIBCXX_USE_CXX11_ABI}))' > $(q "$OUT_DIR/torch.json"); cat $(q "$OUT_DIR/gpu.csv") $(q "$OUT_DIR/torch.json"); cmake --version | head -1; c++ --version | head -1" || FAILED=1

TORCH_PREFIX='$('"$(q "$PY")"' -c "import torch;print(torch.utils.cmake_prefix_path)")'
configure() {  # configure MODE [extra cmake args]
  local mode=$1; shift
  step "configure-$mode$([[ $# -gt 0 ]] && echo -no-c10d)" 150 "cmake -S . -B $(q "$BUILD") ${GEN[*]} -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=$TORCH_PREFIX -DDEEPREDUCE_DEPS_DIR=$(q "$DEPS") -DDEEPREDUCE_TORCH_MODE=$mode $* $EXTRA_CMAKE"
}
BUILD_CMD="cmake --build $(q "$BUILD") --target deepreduce test_cuda -j $NPROC"
# auto: Torch's own CMake files where a CUDA toolkit is found; if they fail
# (they also want cuDNN's, NVTX's), the wheel's files alone. A build that
# fails in the c10d backends (distributed.cpp: NCCL's or Gloo's headers) is
# configured again without them: only that file is compiled again.
MODE=auto
if ! configure auto; then
  [[ $DRY == 1 ]] || rm -rf "$BUILD"
  MODE=files
  configure files || FAILED=1
fi
if [[ $FAILED == 0 ]] && ! step build 330 "$BUILD_CMD"; then
  if [[ $DRY == 0 ]] && grep -q "distributed\.cpp" "$OUT_DIR/steps/build.log"; then
    configure $MODE -DDEEPREDUCE_NCCL=OFF -DDEEPREDUCE_GLOO=OFF && step build-no-c10d 240 "$BUILD_CMD" || FAILED=1
  else
    FAILED=1
  fi
fi
[[ $DRY == 1 ]] && echo "== (dry run: after a build failing in distributed.cpp: configure again with -DDEEPREDUCE_NCCL=OFF -DDEEPREDUCE_GLOO=OFF, build-no-c10d)"
if [[ $FAILED == 1 ]]; then
  echo "gpu-check: the build failed; see $OUT_DIR/steps/"
fi

DR=$BUILD/deepreduce
PREC=0
if [[ $DRY == 0 && -x $DR ]] && "$DR" train --help 2>/dev/null | grep -q -- "--precision" &&
   "$DR" train --help 2>/dev/null | grep -q "bf16"; then
  PREC=1
fi
[[ $DRY == 1 ]] && echo "== (dry run: bf16 runs only when '$DR train --help' lists --precision with bf16)"
[[ $DRY == 0 && $PREC == 0 ]] && echo "gpu-check: bf16: not available in this build (no --precision bf16 in 'deepreduce train --help')"

if [[ $FAILED == 0 || $DRY == 1 ]]; then
  step ctest-cuda 180 "cd $(q "$BUILD") && ctest -L cuda --output-on-failure" || FAILED=1
  RUNS=$BUILD/gpu-check-runs
  train() {  # train NAME DATA [flags]: one deepreduce run, its records copied to OUT/runs/NAME
    local name=$1 data=$2; shift 2
    step "$name" 150 "rm -rf $(q "$RUNS/$name") && $(q "$DR") train --model $MODEL --data $(q "$data") --epochs $EPOCHS --device $DEVICE --workers $WORKERS --out $(q "$RUNS/$name") $* && mkdir -p $(q "$OUT_DIR/runs/$name") && cp $(q "$RUNS/$name")/{config.json,metrics.jsonl,result.json} $(q "$OUT_DIR/runs/$name")/" || FAILED=1
  }
  eager() {  # eager NAME PRECISION: bench/gpu_eager.py on the synthetic shape
    local name=$1 prec=$2 json=$BUILD/gpu-check-count.json
    step "$name" 120 "$(q "$DR") count $MODEL --input 3x32x32 --classes 100 --layers --format json > $(q "$json") && $(q "$PY") bench/gpu_eager.py --json $(q "$json") --images $IMAGES --epochs $EPOCHS --device $DEVICE --precision $prec > $(q "$OUT_DIR/runs/$name.json")" || FAILED=1
  }
  train deepreduce-synthetic-fp32 "$SYNTH"
  eager eager-synthetic-fp32 fp32
  if [[ $PREC == 1 || $DRY == 1 ]]; then
    train deepreduce-synthetic-bf16 "$SYNTH" --precision bf16
  fi
  eager eager-synthetic-bf16 bf16
  train deepreduce-fashion-mnist-fp32 "fashion-mnist:$DEPS/data/fashion-mnist" --limit "$LIMIT"
  step provenance 30 "$(q "$DR") provenance --device $DEVICE --format json > $(q "$OUT_DIR/provenance.json")" || FAILED=1
fi

# --- the record ------------------------------------------------------------
echo "== [${SECONDS}s] record: $OUT_DIR/gpu-check.json, $OUT_DIR/summary.md"
[[ $DRY == 1 ]] && exit 0
"$PY" - "$OUT_DIR" "$STARTED" "$(digest)" "$DEPS" "$BUILD" "$PREC" "$WORKERS" "$FAILED" "$DEVICE" "$IMAGES" "$LIMIT" <<'EOF' || FAILED=1
import glob, json, os, subprocess, sys, time
out, started, digest, deps, build, prec, workers, failed, device, images, limit = sys.argv[1:]

def read(path, default=None, parse=json.loads):
    try:
        with open(path) as f:
            return parse(f.read())
    except (OSError, ValueError):
        return default

def git(*args):
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None

steps = [dict(zip(("name", "rc", "seconds"), l.split("\t"))) for l in read(f"{out}/steps.tsv", "", str).splitlines()]
configure_log = "".join(read(f"{out}/steps/{s['name']}.log", "", str) for s in steps if s["name"].startswith("configure"))
runs = {}
for d in sorted(glob.glob(f"{out}/runs/*/")):
    name = os.path.basename(d.rstrip("/"))
    metrics = [json.loads(l) for l in read(f"{d}/metrics.jsonl", "", str).splitlines() if l.strip()]
    runs[name] = {"impl": "deepreduce", "config": read(f"{d}/config.json"), "epochs": metrics,
                  "result": read(f"{d}/result.json")}
for f in sorted(glob.glob(f"{out}/runs/*.json")):
    r = read(f)
    if r:
        runs[os.path.basename(f)[:-5]] = r

def last_rate(name):
    r = runs.get(name)
    return r["epochs"][-1]["images_per_s"] if r and r.get("epochs") else None

rows = []
for data, label in (("synthetic", f"synthetic 3x32x32, 100 classes, {int(images):,} images"),
                    ("fashion-mnist", "Fashion-MNIST" + (f", first {int(limit):,} images" if int(limit) else ""))):
    for p in ("fp32", "bf16"):
        d, e = last_rate(f"deepreduce-{data}-{p}"), last_rate(f"eager-{data}-{p}")
        if d is None and e is None and not (data == "synthetic" and p == "bf16"):
            continue
        rows.append({"data": label, "precision": p, "deepreduce_images_per_s": d, "eager_images_per_s": e,
                     "ratio": d / e if d and e else None})

record = {
    "check": "scripts/gpu-check.sh (issue 17, part 4)",
    "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "device": device if device == "cuda" else f"{device}: a test of the script, not a GPU check",
    "ok": failed == "0",  # a configure or build retried successfully counts as passed
    "source": {"digest": digest, "git_commit": git("rev-parse", "HEAD"),
               "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")) if git("rev-parse", "HEAD") else None},
    "deps_manifest": read(f"{deps}/manifest.txt", None, str),
    "gpu": read(f"{out}/gpu.csv", None, str),
    "nvidia_smi": read(f"{out}/nvidia-smi.txt", None, str),
    "torch": read(f"{out}/torch.json"),
    "deepreduce_provenance": read(f"{out}/provenance.json"),
    "configure": [l.strip() for l in configure_log.splitlines()
                  if "LibTorch" in l or "backends" in l or "GoogleTest" in l or "Found OpenSSL" in l],
    "bf16": "deepreduce train --precision bf16" if prec == "1" else "not available in this build",
    "workers": int(workers),
    "steps": steps,
    "images_per_s": rows,
    "how": "images/s of the last of 2 epochs (training only, no test pass), the same network, batch 128 and "
           "SGD recipe; deepreduce: its metrics.jsonl; eager: bench/gpu_eager.py (random CPU-held images "
           "augmented on the GPU, deepreduce's loader augments on CPU threads)",
    "runs": runs,
}
with open(f"{out}/gpu-check.json", "w") as f:
    json.dump(record, f, indent=1)

def fmt(v):
    return "-" if v is None else f"{v:,.0f}"
title = "GPU check" if device == "cuda" else f"gpu-check.sh tested on {device} (NOT a GPU check)"
lines = [f"{title} {record['finished']}: {'all steps passed' if record['ok'] else 'SOME STEPS FAILED'}",
         f"GPU: {(record['gpu'] or '?').strip()}; torch {(record['torch'] or {}).get('torch')} "
         f"CUDA {(record['torch'] or {}).get('cuda')}; source digest {digest}; bf16: {record['bf16']}", "",
         "| data | precision | deepreduce img/s | PyTorch eager img/s | deepreduce / eager |", "|---|---|---:|---:|---:|"]
for r in rows:
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x"
    lines.append(f"| {r['data']} | {r['precision']} | {fmt(r['deepreduce_images_per_s'])} | "
                 f"{fmt(r['eager_images_per_s'])} | {ratio} |")
lines += ["", "steps: " + ", ".join(f"{s['name']} {s['rc']} ({s['seconds']} s)" for s in steps)]
for name, r in runs.items():
    if r.get("impl") == "deepreduce" and r.get("epochs"):
        e = r["epochs"][-1]
        lines.append(f"{name}: test accuracy {e.get('test_acc', 0):.4f} after {e.get('epoch')} epochs")
with open(f"{out}/summary.md", "w") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
echo "gpu-check: done in ${SECONDS}s; record in $OUT_DIR"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null || sleep 1  # the log complete before the folder is collected
exit "$FAILED"
