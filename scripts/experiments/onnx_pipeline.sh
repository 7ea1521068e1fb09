#!/usr/bin/env bash
# A user's own PyTorch CNN through deepreduce and out again (docs/onnx.md,
# "A user's network end to end"): trained and exported in PyTorch, counted,
# priced, fine-tuned, run privately, reduced (criticality, cull/thin, SNL
# with channel masks), and exported for OnnxBridge. Fashion-MNIST; about 20
# minutes on 2 cores. Every step's output is in OUT/<step>.log.
set -euo pipefail
BIN=${BIN:-build/deepreduce}
OUT=${OUT:-runs/onnx-pipeline}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
LIMIT=${LIMIT:-10000}
[[ -x $BIN ]] || { echo "$BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
M=$OUT/fmnist_cnn.onnx
NORM="--mean 0.2860 --std 0.3530"
stat_of() {  # stat_of RUN mean|std: the normalisation the run trained with
  /usr/bin/python3 -c 'import json, sys; print(",".join(map(str, json.load(open(sys.argv[1]))[sys.argv[2]])))' "$1/result.json" "$2"
}
step() {  # step NAME COMMAND...: runs it, shows and keeps its output
  local name=$1
  shift
  echo "== $name: $*"
  "$@" 2>&1 | tee "$OUT/$name.log"
}
[[ -f $M ]] || step pytorch /usr/bin/python3 scripts/experiments/onnx_fmnist_cnn.py "$M" "$DATA" 2
step count "$BIN" count "$M" --layers
step cost "$BIN" cost "$M" --protocol sci
step eval "$BIN" eval "$M" --data "fashion-mnist:$DATA" $NORM
# A run of the imported network: one epoch from its own weights, without
# augmentation as PyTorch trained it (deepreduce normalises by the data's own
# statistics, so the epoch adapts to them).
[[ -f $OUT/run/result.json ]] || step finetune "$BIN" train --model "$M" --init-weights "$M" --data "fashion-mnist:$DATA" \
  --epochs 1 --lr 0.001 --pad 0 --no-flip --out "$OUT/run"
step pi "$BIN" pi run "$OUT/run" --data "fashion-mnist:$DATA" --count 20
# DeepReDuce and SNL on its stages: S1 holds 61% of the ReLUs and is the most
# critical, so culling reaches 6,304 at most (S2 and S3 culled).
step reduce "$BIN" reduce --model "$M" --teacher "$OUT/run" --init-teacher --data "fashion-mnist:$DATA" --limit "$LIMIT" \
  --budget 8K,6.5K --method deepreduce,snl --epochs 3 --lr 0.01 --snl-finetune-epochs 3 --out "$OUT/reduce"
# SNL with channel masks (a form OnnxBridge runs at the mask's cost) below that.
step linearize "$BIN" linearize --teacher "$OUT/run" --data "fashion-mnist:$DATA" --limit "$LIMIT" --granularity channel \
  --budget 5K,2.5K --search-lr 0.01 --search-epochs 60 --epochs 3 --out "$OUT/channel"
for b in 5000 2500; do
  step "export-$b" "$BIN" export "$OUT/channel/budget-$b" --out "$OUT/channel-$b.onnx" --fold-bn --masks onnxbridge
  step "eval-run-$b" "$BIN" eval "$OUT/channel/budget-$b"
  step "eval-onnx-$b" "$BIN" eval "$OUT/channel-$b.onnx" --data "fashion-mnist:$DATA" \
    --mean "$(stat_of "$OUT/channel/budget-$b" mean)" --std "$(stat_of "$OUT/channel/budget-$b" std)"
  step "relus-$b" /usr/bin/python3 tests/torch/onnx_eval.py "$OUT/channel-$b.onnx" "$OUT/channel/budget-$b" "$BIN"
done
