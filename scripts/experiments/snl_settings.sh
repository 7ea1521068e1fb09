# The settings the SNL experiments share (snl_vs_deepreduce.sh, poly_vs_snl.sh;
# docs/experiments.md), each overridable from the environment. Sourced.
BIN=${BIN:-build/deepreduce}
OUT=${OUT:-runs/snl-experiment}
LIMIT=${LIMIT:-10000}
EPOCHS=${EPOCHS:-12}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-10}
SEEDS=${SEEDS:-"0 1 2"}
BUDGETS=${BUDGETS:-54K,27K,13.5K,7K,3.6K}
# Calibrated on seed 0's teacher so that SNL's search reaches 3.6K in about 10 of the 12 epochs.
SEARCH_LR=${SEARCH_LR:-5e-3}
LASSO=${LASSO:-5e-4}
MODEL=resnet18:alpha=0.25
DATA="--data fashion-mnist --limit $LIMIT"
[[ -x $BIN ]] || { echo "$BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
