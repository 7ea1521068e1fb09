#!/usr/bin/env bash
# What each execution lever of nn::Net gives, one added at a time, for
# resnet18 at 32x32, batch 128 (docs/performance.md). Rounds alternate the
# configurations; the table shows the median images/s of each.
#
#   bench/levers.sh [BUILD_DIR]       (needs deepreduce_bench: make bench, or
#                                      cmake --build build --target deepreduce_bench deepreduce)
# Environment: ROUNDS (3), THREADS (nproc), MODEL (resnet18), ONLY (train or
# eval: only those rows), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
BENCH="$BUILD_DIR/deepreduce_bench"
PY=${PY:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-$(nproc)}
MODEL=${MODEL:-resnet18}
OUT=${OUT:-$BUILD_DIR/bench-results}
mkdir -p "$OUT"
RAW="$OUT/levers${ONLY:+-$ONLY}.jsonl"
: > "$RAW"
JSON=$(mktemp)
trap 'rm -f "$JSON"' EXIT
"$BUILD_DIR/deepreduce" count "$MODEL" --dataset cifar10 --layers --format json > "$JSON"
# Where these numbers come from (version, commit, LibTorch, device, threads, CPU, cores, host, start).
PROV="$OUT/levers${ONLY:+-$ONLY}.provenance.json"
"$BUILD_DIR/deepreduce" provenance --device cpu --threads "$THREADS" --format json > "$PROV"

# name | mode | environment | deepreduce_bench flags ("py:..." = bench_torch.py flags)
CONFIGS=(
  "train: NCHW, glibc malloc|train|DEEPREDUCE_MALLOC=default|--channels-last 0"
  "train: + channels-last|train|DEEPREDUCE_MALLOC=default|--channels-last 1"
  "train: + malloc keeps big blocks (default)|train||"
  "train: Python eager|train||py:"
  "train: Python eager, channels-last|train||py:--channels-last"
  "train: Python eager, malloc tunables|train|GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=1073741824|py:"
  "eval: NCHW, unfused, glibc malloc|eval|DEEPREDUCE_MALLOC=default|--channels-last 0 --fuse 0"
  "eval: + channels-last|eval|DEEPREDUCE_MALLOC=default|--fuse 0"
  "eval: + BatchNorm folded|eval|DEEPREDUCE_MALLOC=default|--mkldnn 0"
  "eval: + LibTorch oneDNN tensors|eval|DEEPREDUCE_MALLOC=default|--program 0 --chunk-bytes 0"
  "eval: + chunks of 8 MiB|eval|DEEPREDUCE_MALLOC=default|--program 0"
  "eval: + oneDNN program (fused ReLU/add)|eval|DEEPREDUCE_MALLOC=default|--winograd 0"
  "eval: + Winograd|eval|DEEPREDUCE_MALLOC=default|"
  "eval: + malloc keeps big blocks (default)|eval||"
  "eval: Python eager|eval||py:"
  "eval: Python eager, channels-last|eval||py:--channels-last"
)

for r in $(seq 1 "$ROUNDS"); do
  for c in "${CONFIGS[@]}"; do
    IFS='|' read -r name mode envs flags <<< "$c"
    [[ -z ${ONLY:-} || $mode == "$ONLY" ]] || continue
    steps=$([[ $mode == train ]] && echo 3 || echo 5)
    echo "  round $r/$ROUNDS: $name" >&2
    common=(--batch 128 --threads "$THREADS" --mode "$mode" --warmup 1 --steps "$steps")
    if [[ $flags == py:* ]]; then
      line=$(env $envs "$PY" bench/bench_torch.py --json "$JSON" "${common[@]}" ${flags#py:})
    else
      line=$(env $envs "$BENCH" --model "$MODEL" --dataset cifar10 "${common[@]}" $flags)
    fi
    echo "$line" | sed "s#^{#{\"config\":\"$name\",\"round\":$r,#" >> "$RAW"
  done
done

"$PY" - "$RAW" "$("$BUILD_DIR/deepreduce" provenance --device cpu --threads "$THREADS")" <<'EOF' | tee "$OUT/levers${ONLY:+-$ONLY}.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{sys.argv[2]}\n")  # `deepreduce provenance`
names = list(dict.fromkeys(r["config"] for r in rows))
print("| configuration | images/s (median) | rounds | vs previous | peak RSS MB |")
print("|---|---|---|---|---|")
prev = None
for n in names:
    v = [r["images_per_s"] for r in rows if r["config"] == n]
    m = statistics.median(v)
    rss = statistics.median(r["max_rss_mb"] for r in rows if r["config"] == n)
    step = "" if prev is None or "Python" in n or n.split(":")[0] != prev[0] else f"{m / prev[1]:.2f}x"
    print(f"| {n} | {m:.1f} | {' '.join(f'{x:.0f}' for x in v)} | {step} | {rss:.0f} |")
    if "Python" not in n:
        prev = (n.split(":")[0], m)
EOF
