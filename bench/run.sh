#!/usr/bin/env bash
# deepreduce (LibTorch C++) vs Python PyTorch eager, same network, batch,
# threads and input: images/s and peak RSS, alternating the two ROUNDS times
# per case; the ratio is the median of the per-round ratios.
#
#   bench/run.sh [BUILD_DIR]          (make bench does the build first)
#
# Environment: ROUNDS (3), THREADS (nproc), BATCH (128), DATASET (cifar10),
# TRAIN_STEPS (3), EVAL_STEPS (5), WARMUP (1), CASES (see below),
# EXTRA=1 also times Python eager with channels-last and with the malloc
# tuning deepreduce uses (references, not the baseline), OUT (results dir).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
BENCH="$BUILD_DIR/deepreduce_bench"
CLI="$BUILD_DIR/deepreduce"
PY=${PY:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
BATCH=${BATCH:-128}
DATASET=${DATASET:-cifar10}
TRAIN_STEPS=${TRAIN_STEPS:-3}
EVAL_STEPS=${EVAL_STEPS:-5}
WARMUP=${WARMUP:-1}
OUT=${OUT:-$BUILD_DIR/bench-results}
CASES=${CASES:-"resnet18:train resnet18:eval resnet18:alpha=0.25:train resnet18:alpha=0.25:eval resnet18:cull=S1:thin:train resnet18:cull=S1:thin:eval"}

for f in "$BENCH" "$CLI"; do
  [[ -x $f ]] || { echo "bench/run.sh: $f is missing: run 'make bench' (or cmake --build $BUILD_DIR --target deepreduce deepreduce_bench)" >&2; exit 1; }
done
"$PY" -c "import torch" 2>/dev/null || { echo "bench/run.sh: $PY cannot import torch (apt-get install python3-torch)" >&2; exit 1; }

mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: > "$RAW"
JSON_DIR=$(mktemp -d)
trap 'rm -rf "$JSON_DIR"' EXIT

echo "deepreduce vs PyTorch eager: batch $BATCH, $THREADS threads, $DATASET input, $ROUNDS rounds" >&2
echo "torch $("$PY" -c 'import torch; print(torch.__version__)'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores" >&2

for c in $CASES; do
  mode=${c##*:}
  spec=${c%:*}
  steps=$([[ $mode == train ]] && echo "$TRAIN_STEPS" || echo "$EVAL_STEPS")
  json="$JSON_DIR/$(echo "$spec" | tr ':=,' '___').json"
  [[ -f $json ]] || "$CLI" count "$spec" --dataset "$DATASET" --layers --format json > "$json"
  for r in $(seq 1 "$ROUNDS"); do
    common=(--batch "$BATCH" --threads "$THREADS" --mode "$mode" --warmup "$WARMUP" --steps "$steps")
    echo "  $spec $mode round $r/$ROUNDS" >&2
    "$BENCH" --model "$spec" --dataset "$DATASET" "${common[@]}" | sed "s/^{/{\"case\":\"$c\",\"round\":$r,/" >> "$RAW"
    "$PY" bench/bench_torch.py --json "$json" "${common[@]}" | sed "s/^{/{\"case\":\"$c\",\"round\":$r,/" >> "$RAW"
    if [[ ${EXTRA:-0} == 1 ]]; then
      "$PY" bench/bench_torch.py --json "$json" "${common[@]}" --channels-last |
        sed "s/^{/{\"case\":\"$c\",\"round\":$r,/" >> "$RAW"
      GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824 \
        "$PY" bench/bench_torch.py --json "$json" "${common[@]}" |
        sed "s/^{/{\"case\":\"$c\",\"round\":$r,\"impl_note\":\"malloc\",/" >> "$RAW"
    fi
  done
done

# Where these numbers come from: the line of `deepreduce provenance` (version,
# commit, LibTorch, device, threads, CPU, cores, host, start), as reports carry it.
"$CLI" provenance --device cpu --threads "$THREADS" > "$OUT/provenance.txt"
"$CLI" provenance --device cpu --threads "$THREADS" --format json > "$OUT/provenance.json"

"$PY" - "$RAW" "$OUT/provenance.txt" <<'EOF' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def impl(r):
    return r["impl"] + ("+malloc" if r.get("impl_note") == "malloc" else "")
cases = list(dict.fromkeys(r["case"] for r in rows))
print(open(sys.argv[2]).read().strip() + "\n")  # `deepreduce provenance`: the line every report carries
impls = list(dict.fromkeys(impl(r) for r in rows))
print("| case | " + " | ".join(f"{i} img/s" for i in impls) + " | ratio deepreduce/eager (median) | " +
      " | ".join(f"{i} RSS MB" for i in impls) + " |")
print("|---" * (2 + 2 * len(impls)) + "|")
for c in cases:
    by = {i: [r for r in rows if r["case"] == c and impl(r) == i] for i in impls}
    ips = {i: statistics.median(r["images_per_s"] for r in v) if v else float("nan") for i, v in by.items()}
    rss = {i: statistics.median(r["max_rss_mb"] for r in v) if v else float("nan") for i, v in by.items()}
    ratios = []
    for rnd in sorted({r["round"] for r in by.get("deepreduce", [])}):
        a = [r for r in by.get("deepreduce", []) if r["round"] == rnd]
        b = [r for r in by.get("pytorch-eager", []) if r["round"] == rnd]
        if a and b:
            ratios.append(a[0]["images_per_s"] / b[0]["images_per_s"])
    ratio = statistics.median(ratios) if ratios else float("nan")
    print(f"| {c} | " + " | ".join(f"{ips[i]:.1f}" for i in impls) + f" | {ratio:.2f}x | " +
          " | ".join(f"{rss[i]:.0f}" for i in impls) + " |")
EOF
echo "raw results: $RAW" >&2
