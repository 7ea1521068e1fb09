#!/usr/bin/env bash
# Masked ReLU sites against unmasked ones (docs/performance.md, "Masked ReLU
# sites"): resnet18:alpha=0.25 on 1x28x28, batch 128, random pixel and
# channel masks on every site, every site masked out, and one site alone;
# inference (oneDNN program, dense fused) and a training step, ms per batch.
# Runs the timing cases of tests/torch/test_masks.cpp, which are disabled in
# `make test`. Run alone on an idle machine.
#   bench/masks.sh [BUILD_DIR]      OUT=runs/bench-masks
set -euo pipefail
BUILD_DIR=${1:-build}
OUT=${OUT:-runs/bench-masks}
[[ -x $BUILD_DIR/test_torch && -x $BUILD_DIR/deepreduce ]] ||
  { echo "bench/masks.sh: $BUILD_DIR/test_torch is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
# Where these numbers come from (version, commit, LibTorch, device, threads, CPU, cores, host, start).
"$BUILD_DIR/deepreduce" provenance --device cpu --format json > "$OUT/provenance.json"
{
  "$BUILD_DIR/deepreduce" provenance --device cpu
  "$BUILD_DIR/test_torch" --gtest_also_run_disabled_tests --gtest_filter='MaskTiming.*' 2>&1
} | tee "$OUT/summary.txt"
