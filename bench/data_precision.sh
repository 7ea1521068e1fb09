#!/usr/bin/env bash
# The data path and the precision, measured where they matter: one epoch of
# real training (images/s, time waiting for data, test accuracy) for each
# variant and seed (docs/performance.md, issue 17).
#
#   bench/data_precision.sh [BUILD_DIR]     (needs BUILD_DIR/deepreduce)
#
# Variants (VARIANTS, space-separated DATA_PATH:PRECISION): host:fp32 (the
# per-image worker threads), device:fp32 (the split held as one tensor,
# batched augmentation), device:bf16 (autocast). Environment: SEEDS (0 1 2),
# MODEL (resnet18:alpha=0.25), DATA (fashion-mnist), EPOCHS (1), THREADS
# (nproc), LIMIT (0 = all), OUT. Seeds are the outer loop, so a slow spell of
# a shared machine falls on every variant alike. Time it alone.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-${BUILD_DIR:-build}}
CLI="$BUILD_DIR/deepreduce"
SEEDS=${SEEDS:-0 1 2}
MODEL=${MODEL:-resnet18:alpha=0.25}
DATA=${DATA:-fashion-mnist}
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-$(nproc)}
LIMIT=${LIMIT:-0}
VARIANTS=${VARIANTS:-host:fp32 device:fp32 device:bf16}
OUT=${OUT:-$BUILD_DIR/bench-results/data_precision}
[[ -x $CLI ]] || { echo "bench/data_precision.sh: $CLI is missing: run make build" >&2; exit 1; }
mkdir -p "$OUT"
RAW="$OUT/raw.jsonl"
: > "$RAW"
RUNS=$(mktemp -d)
trap 'rm -rf "$RUNS"' EXIT
"$CLI" provenance --device cpu --threads "$THREADS" --format json > "$OUT/provenance.json"
# The CPU and its kernel flags as deepreduce records them (util::cpu_model, util::cpu_kernel_flags).
read_provenance() { "${PY:-/usr/bin/python3}" -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2], ""); print(v if isinstance(v, str) else " ".join(v))' "$OUT/provenance.json" "$1"; }
cpu=$(read_provenance cpu)
flags=$(read_provenance cpu_flags)
echo "$MODEL on $DATA, $EPOCHS epoch(s), $THREADS threads, seeds $SEEDS; CPU: $cpu [$flags]" |
  tee "$OUT/summary.txt" >&2

for seed in $SEEDS; do
  for v in $VARIANTS; do
    path=${v%%:*} precision=${v##*:}
    dir="$RUNS/$path-$precision-$seed"
    echo "  seed $seed: $path $precision" >&2
    "$CLI" train --model "$MODEL" --data "$DATA" --epochs "$EPOCHS" --limit "$LIMIT" --threads "$THREADS" \
      --device cpu --seed "$seed" --data-path "$path" --precision "$precision" --out "$dir" 2> "$dir.log" ||
      { echo "bench/data_precision.sh: the run failed, see its log:" >&2; cat "$dir.log" >&2; exit 1; }
    tail -n 1 "$dir/metrics.jsonl" |
      sed "s/^{/{\"variant\":\"$v\",\"seed\":$seed,\"cpu_flags\":\"$flags\",/" >> "$RAW"
  done
done

"${PY:-/usr/bin/python3}" - "$RAW" "$VARIANTS" <<'PY' | tee -a "$OUT/summary.txt"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'variant':<14} {'images/s (median)':>18} {'waiting for data':>17} {'test accuracy per seed':>30}")
base = None
for v in sys.argv[2].split():
    r = [x for x in rows if x["variant"] == v]
    ips = statistics.median(x["images_per_s"] for x in r)
    base = base or ips
    wait = statistics.median(x["data_wait_s"] / x["seconds"] for x in r)
    accs = " ".join(f"{x['test_acc']:.4f}" for x in r)
    mean = statistics.mean(x["test_acc"] for x in r)
    print(f"{v:<14} {ips:>10.0f} ({ips / base:.2f}x) {100 * wait:>15.1f}% {accs:>22} (mean {mean:.4f})")
PY
echo "raw: $RAW, provenance: $OUT/provenance.json" >&2
