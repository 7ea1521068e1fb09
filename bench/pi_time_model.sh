#!/usr/bin/env bash
# The time model behind budgets in milliseconds (`reduce --budget-ms N --link
# lan|wan`; src/pi/private_cost.h): the online latency per image that
# `deepreduce pi run` measures over loopback (dealer, server and client as
# three processes, one thread each), fitted by least squares over networks
# that differ in ReLUs, polynomial elements, multiply-accumulates and rounds:
#   latency = base + per_relu * ReLUs + per_poly * polys + per_mac * MACs + per_round * rounds
# (a coefficient the fit makes negative is dropped to 0 and the rest refitted).
# How well it predicts: per network, the fit's error and the leave-one-out
# error (the model fitted without that network). The bytes and rounds need no
# model: they are the runtime's exact formula, which `pi run` checks.
# Writes $OUT/pi_time_model.json and $OUT/summary.md; copy the JSON to
# data/pi_time_model.json to make it deepreduce's default, or point
# DEEPREDUCE_PI_TIME_MODEL at it. Run alone on an idle machine.
#   bench/pi_time_model.sh [BUILD_DIR]       COUNT=8 LIMIT=2000 OUT=runs/bench-pi-time
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/deepreduce
COUNT=${COUNT:-8}
LIMIT=${LIMIT:-2000}
OUT=${OUT:-runs/bench-pi-time}
PY=${PY:-/usr/bin/python3}
[[ -x $BIN ]] || { echo "bench/pi_time_model.sh: $BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
DATA="--data fashion-mnist --limit $LIMIT"
# Trained one epoch each: the timing does not depend on the weights.
specs=(
  resnet6:alpha=0.125
  resnet6:alpha=0.25
  resnet6:alpha=0.5:cull=S2
  resnet18:alpha=0.125:cull=S1:thin
  resnet18:alpha=0.25:rho=0.5:cull=S1:thin
  resnet18:alpha=0.125:rho=0.5
  mobilenetv2:alpha=0.25:rho=0.5
)
runs=()
for spec in "${specs[@]}"; do
  run=$OUT/$(echo "$spec" | sed 's/:/_/g; s/=/-/g; s/,/+/g')
  [[ -f $run/result.json ]] || "$BIN" train --model "$spec" $DATA --epochs 1 --out "$run" >&2
  runs+=("$run")
done
# Masked networks from resnet6:alpha=0.25: SNL (identities) and polynomial replacement.
teacher=$OUT/resnet6_alpha-0.25
for replace in identity poly; do
  "$BIN" linearize --teacher "$teacher" $DATA --budget 16K,4K --replace "$replace" --search-lr 0.05 --lasso 1e-3 \
    --search-epochs 40 --epochs 1 --out "$OUT/linearize-$replace" >&2
  runs+=("$OUT/linearize-$replace/budget-16000" "$OUT/linearize-$replace/budget-4000")
done
for run in "${runs[@]}"; do
  [[ -f $run.pi.json ]] || { "$BIN" pi run "$run" --data fashion-mnist --count "$COUNT" --format json --quiet --deal-first > "$run.pi.json.tmp"
                             mv "$run.pi.json.tmp" "$run.pi.json"; }
  [[ -f $run.count.json ]] || "$BIN" count "$run" --format json > "$run.count.json"
done
"$PY" - "$OUT" "${runs[@]}" <<'PY'
import json, sys
import numpy as np
out, runs = sys.argv[1], sys.argv[2:]
names = ["base", "per_relu", "per_poly", "per_mac", "per_round"]
rows = []
for r in runs:
    pi, count = json.load(open(r + ".pi.json")), json.load(open(r + ".count.json"))
    # A linearize point: its search's kind and budget beside the network it masks.
    label = pi["spec"] + (f" ({r.split('/')[-2]}/{r.split('/')[-1]})" if "/linearize-" in r else "")
    rows.append({"run": r, "spec": label, "relus": pi["relus"], "polys": pi.get("polys", 0),
                 "macs": count["flops"], "rounds": pi["rounds"], "seconds": pi["seconds_per_image"],
                 "images": pi["images"], "provenance": pi["provenance"]})
X = np.array([[1, r["relus"], r["polys"], r["macs"], r["rounds"]] for r in rows], dtype=float)
y = np.array([r["seconds"] for r in rows])

def fit(X, y):
    """Least squares with every coefficient >= 0: a negative one is dropped and the rest refitted."""
    keep = list(range(X.shape[1]))
    while True:
        scale = np.maximum(np.abs(X[:, keep]).max(axis=0), 1)  # columns of very different sizes
        c, *_ = np.linalg.lstsq(X[:, keep] / scale, y, rcond=None)
        c = c / scale
        if (c >= 0).all():
            full = np.zeros(X.shape[1]); full[keep] = c
            return full
        keep.pop(int(np.argmin(c)))

coef = fit(X, y)
for i, r in enumerate(rows):
    mask = np.arange(len(rows)) != i
    r["fitted"] = float(X[i] @ coef)
    r["loo"] = float(X[i] @ fit(X[mask], y[mask]))
rel = lambda a, b: abs(a - b) / b
p = rows[0]["provenance"]
model = {
    "what": "deepreduce pi run's online latency per image over loopback (dealer, server, client: three processes, "
            "one thread each), fitted by bench/pi_time_model.sh; see src/pi/private_cost.h",
    "seconds": dict(zip(names, map(float, coef))),
    "fit": {"networks": [{k: r[k] for k in ("spec", "relus", "polys", "macs", "rounds", "seconds", "fitted", "loo")}
                         for r in rows],
            "images_per_network": rows[0]["images"],
            "max_fit_relative_error": max(rel(r["fitted"], r["seconds"]) for r in rows),
            "max_leave_one_out_relative_error": max(rel(r["loo"], r["seconds"]) for r in rows)},
    "provenance": p,
}
json.dump(model, open(f"{out}/pi_time_model.json", "w"), indent=2)
lines = [f"deepreduce {p['deepreduce']} (commit {p.get('commit')}), {p['cpu']}, {p['cores']} cores; "
         f"{rows[0]['images']} images per network; semi-honest parties, non-colluding dealer.", "",
         "Coefficients (seconds): " + ", ".join(f"{n} {c:.4g}" for n, c in zip(names, coef)), "",
         "| network | ReLUs | poly elements | MACs | rounds | measured ms | fitted ms | error | leave-one-out ms | error |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
for r in rows:
    lines.append(f"| `{r['spec']}` | {r['relus']:,} | {r['polys']:,} | {r['macs']:,} | {r['rounds']} | "
                 f"{1e3 * r['seconds']:.1f} | {1e3 * r['fitted']:.1f} | {100 * rel(r['fitted'], r['seconds']):.0f}% | "
                 f"{1e3 * r['loo']:.1f} | {100 * rel(r['loo'], r['seconds']):.0f}% |")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
