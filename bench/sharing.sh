#!/usr/bin/env bash
# Fair sharing of one machine (docs/performance.md): one training alone, two
# started together (with the default automatic threads, which divide the
# cores among the deepreduce jobs of the machine; with every core each, the
# old default; with --threads 1 each), and `reduce --jobs 2` against
# `--jobs 1` on the demo's frontier. Run alone on an idle machine.
#   bench/sharing.sh [BUILD_DIR]     LIMIT=10000 REDUCE_EPOCHS=1 OUT=runs/bench-sharing
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/deepreduce
LIMIT=${LIMIT:-10000}
REDUCE_EPOCHS=${REDUCE_EPOCHS:-1}
OUT=${OUT:-runs/bench-sharing}
CORES=$(nproc)
[[ -x $BIN ]] || { echo "bench/sharing.sh: $BIN is missing: run 'make build'" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT"
# Where these numbers come from (version, commit, LibTorch, device, threads, CPU, cores, host, start).
"$BIN" provenance --device cpu --format json > "$OUT/provenance.json"
PROV_LINE=$("$BIN" provenance --device cpu)
train() {  # train NAME [options]: one epoch of resnet18:alpha=0.25 on LIMIT Fashion-MNIST images
  local name=$1; shift
  "$BIN" train --model resnet18:alpha=0.25 --data fashion-mnist --limit "$LIMIT" --epochs 1 --out "$OUT/$name" \
    "$@" >/dev/null 2>"$OUT/$name.log"
}
seconds() { python3 -c "import time; print(time.time())"; }
elapsed() { python3 -c "print(f'{$2 - $1:.1f}')"; }

t0=$(seconds); train alone; t1=$(seconds); alone=$(elapsed "$t0" "$t1")
t0=$(seconds); train a1 & train a2 & wait; t1=$(seconds); auto=$(elapsed "$t0" "$t1")
t0=$(seconds); train e1 --threads "$CORES" & train e2 --threads "$CORES" & wait; t1=$(seconds); every=$(elapsed "$t0" "$t1")
t0=$(seconds); train o1 --threads 1 & train o2 --threads 1 & wait; t1=$(seconds); one=$(elapsed "$t0" "$t1")
OMP_WAIT_POLICY=passive train passive >/dev/null; t0=$(seconds); OMP_WAIT_POLICY=passive train passive2; t1=$(seconds)
passive=$(elapsed "$t0" "$t1")

reduce() {  # reduce JOBS: the demo's frontier
  "$BIN" reduce --model resnet18:alpha=0.25 --data fashion-mnist --limit "$LIMIT" --epochs "$REDUCE_EPOCHS" \
    --budget 50K,25K,12K,6K --jobs "$1" --out "$OUT/reduce-jobs$1" >/dev/null 2>"$OUT/reduce-jobs$1.log"
}
t0=$(seconds); reduce 1; t1=$(seconds); r1=$(elapsed "$t0" "$t1")
t0=$(seconds); reduce 2; t1=$(seconds); r2=$(elapsed "$t0" "$t1")

python3 - "$alone" "$auto" "$every" "$one" "$passive" "$r1" "$r2" "$CORES" "$LIMIT" "$REDUCE_EPOCHS" "$PROV_LINE" <<'PY' | tee "$OUT/summary.md"
import sys
alone, auto, every, one, passive, r1, r2 = map(float, sys.argv[1:8])
cores, limit, epochs, prov = sys.argv[8:]
print(f"{prov} (threads: the default, every core; each case's own threads below)\n")
seq = 2 * alone
print(f"resnet18:alpha=0.25, 1 epoch on {limit} Fashion-MNIST images, {cores} cores\n")
print("| case | wall s | vs one after the other |")
print("|---|---:|---:|")
print(f"| one training alone (default threads) | {alone:.1f} | |")
print(f"| two one after the other (2 x alone) | {seq:.1f} | 1.00x |")
print(f"| two at once, default (cores shared among the jobs) | {auto:.1f} | {auto / seq:.2f}x |")
print(f"| two at once, every core each (--threads {cores}, the old default) | {every:.1f} | {every / seq:.2f}x |")
print(f"| two at once, --threads 1 each | {one:.1f} | {one / seq:.2f}x |")
print(f"| one alone with OMP_WAIT_POLICY=passive | {passive:.1f} | {passive / alone:.2f}x of alone |")
print(f"\nreduce on the demo's frontier ({epochs} epoch(s) per network, 13 trainings): "
      f"--jobs 1 {r1:.0f} s, --jobs 2 {r2:.0f} s ({r1 / r2:.2f}x faster)")
PY
