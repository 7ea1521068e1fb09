#!/usr/bin/env bash
# Does starting a student from the teacher's weights (`--init teacher`) reach
# the accuracy of training from scratch in fewer epochs? Trains the same
# culled and thinned student with KD both ways and prints test accuracy per epoch.
# Environment: TEACHER (a finished run; trained here if absent), SPEC, LIMIT, EPOCHS, OUT.
set -euo pipefail
bin=${DEEPREDUCE:-build/deepreduce}
out=${OUT:-runs/init_teacher}
limit=${LIMIT:-10000}
epochs=${EPOCHS:-3}
spec=${SPEC:-resnet18:alpha=0.25:cull=S1:thin}
teacher=${TEACHER:-$out/teacher}
common=(--data fashion-mnist --limit "$limit" --seed 0)
if [ ! -f "$teacher/result.json" ]; then
  "$bin" train --model resnet18:alpha=0.25 "${common[@]}" --epochs "$epochs" --out "$teacher" >&2
fi
for init in scratch teacher; do
  extra=()
  [ "$init" = teacher ] && extra=(--init teacher)
  [ -f "$out/$init/result.json" ] ||
    "$bin" train --model "$spec" "${common[@]}" --epochs "$epochs" --teacher "$teacher" "${extra[@]}" --out "$out/$init" >&2
done
python3 - "$out" "$spec" "$limit" <<'PY'
import json, sys
out, spec, limit = sys.argv[1:]
rows = {k: [json.loads(l) for l in open(f"{out}/{k}/metrics.jsonl")] for k in ("scratch", "teacher")}
print(f"{spec} distilled from the teacher, Fashion-MNIST (first {limit} images): test accuracy (%) per epoch\n")
print("| epoch | from scratch | --init teacher |")
print("|---:|---:|---:|")
for a, b in zip(rows["scratch"], rows["teacher"]):
    print(f"| {a['epoch']} | {100*a['test_acc']:.2f} | {100*b['test_acc']:.2f} |")
PY
