#!/usr/bin/env bash
# SNL, DeepReDuce and the two combined, at small scale on Fashion-MNIST
# (docs/experiments.md): resnet18:alpha=0.25 (108,544 ReLUs) reduced to
# budgets from 2x to 30x fewer ReLUs, every frontier point with the same
# training epochs in all, per seed:
#   teacher       resnet18:alpha=0.25, TEACHER_EPOCHS epochs
#   criticality   measured once (seed 0), KD runs only, CRIT_EPOCHS epochs each
#   deepreduce    reduce --order <measured>: each candidate EPOCHS epochs with KD, started from the teacher
#   snl           linearize from the teacher: search + fine-tuning = EPOCHS epochs per point
#   combined      DeepReDuce's cull-1 + thin network (START_EPOCHS epochs from the teacher), then linearize
#                 from it with EPOCHS - START_EPOCHS epochs per point (budgets below its count)
# Finished runs are reused, so a killed script continues where it stopped.
# SEARCH_LR and LASSO were calibrated on seed 0's teacher so that the search reaches
# the lowest budget (3.6K) in about 10 of the 12 epochs (docs/experiments.md).
#   scripts/experiments/snl_vs_deepreduce.sh     SEEDS="0 1 2" EPOCHS=12 LIMIT=10000 OUT=runs/snl-experiment
set -euo pipefail
source "$(dirname "$0")/snl_settings.sh"
CRIT_EPOCHS=${CRIT_EPOCHS:-6}
START_EPOCHS=${START_EPOCHS:-2}
REST=$((EPOCHS - START_EPOCHS))

teacher() { # seed
  local t=$OUT/seed$1/teacher
  [[ -f $t/result.json ]] || "$BIN" train --model $MODEL $DATA --epochs "$TEACHER_EPOCHS" --seed "$1" --out "$t" >&2
  echo "$t"
}

# The criticality order, measured once on seed 0's teacher.
t0=$(teacher 0)
"$BIN" criticality --model $MODEL $DATA --epochs "$CRIT_EPOCHS" --teacher "$t0" --no-kd --out "$OUT/criticality" >&2
ORDER=$(python3 -c "import json; print(','.join(json.load(open('$OUT/criticality/criticality.json'))['order']))")
LEAST=${ORDER%%,*}
echo "criticality order (least first): $ORDER" >&2

for seed in $SEEDS; do
  d=$OUT/seed$seed
  t=$(teacher "$seed")
  "$BIN" reduce --model $MODEL $DATA --teacher "$t" --order "$ORDER" --epochs "$EPOCHS" --init-teacher \
    --seed "$seed" --budget "$BUDGETS" --out "$d/deepreduce" >&2
  "$BIN" linearize --teacher "$t" $DATA --budget "$BUDGETS" --epochs-per-point "$EPOCHS" --search-lr "$SEARCH_LR" \
    --lasso "$LASSO" --seed "$seed" --out "$d/snl" >&2
  start=$d/combined-start
  [[ -f $start/result.json ]] || "$BIN" train --model "$MODEL:cull=$LEAST:thin" $DATA --teacher "$t" --init teacher \
    --epochs "$START_EPOCHS" --seed "$seed" --out "$start" >&2
  below=$(python3 - "$start" "$BUDGETS" <<'PY'
import json, sys
relus = json.load(open(sys.argv[1] + "/result.json"))["relus"]
def count(b): return float(b[:-1]) * (1000 if b[-1] in "kK" else 1e6) if b[-1] in "kKmM" else float(b)
print(",".join(b for b in sys.argv[2].split(",") if count(b) < relus))
PY
)
  "$BIN" linearize --teacher "$t" --from "$start" $DATA --budget "$below" --epochs-per-point "$REST" \
    --search-lr "$SEARCH_LR" --lasso "$LASSO" --seed "$seed" --out "$d/combined" >&2
done

python3 "$(dirname "$0")/snl_summary.py" "$OUT" "$BUDGETS" "$EPOCHS" "$SEEDS" "$START_EPOCHS" | tee "$OUT/summary.md"
