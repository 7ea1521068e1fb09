#!/usr/bin/env bash
# Private inference of resnet18:alpha=0.25 and its DeepReDuce steps on
# Fashion-MNIST, measured with `deepreduce pi run` (dealer, server, client as
# three processes on 127.0.0.1, one thread each; the keys dealt first with
# --deal-first, so the dealer's work does not share the cores with the online
# phase): latency, online bytes,
# rounds and key size per image, and the ratio to the all-ReLU network.
# Then VGG16 and the appendix's VGG16 steps (Tables 10 and 11: cull S4,S5;
# cull S1,S4,S5 + thin), with their max pooling, at width VGG_ALPHA (default
# 0.25: full width needs about 0.6 GB of key per party and image) on
# synthetic 3x32x32 images (VGG16 needs 32x32; CIFAR cannot be downloaded
# here), VGG_COUNT images each (default 2).
# The networks are trained briefly first (the timing does not depend on the
# weights; agreement is reported on them). Run alone on an idle machine.
#   bench/pi_networks.sh [BUILD_DIR]       COUNT=10 LIMIT=5000 OUT=runs/bench-pi VGG_ALPHA=0.25 VGG_COUNT=2
#   FAMILIES="resnet vgg" (the default) or either alone
# Needs about 2.1 KB of disk per live ReLU (or max-pooling comparison) per
# party and image for the keys (resnet18:alpha=0.25, COUNT=10: about 4.5 GB
# in the temporary directory).
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/deepreduce
COUNT=${COUNT:-10}
LIMIT=${LIMIT:-5000}
OUT=${OUT:-runs/bench-pi}
PY=${PY:-python3}
[[ -x $BIN ]] || { echo "bench/pi_networks.sh: $BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
specs=(
  resnet18:alpha=0.25
  resnet18:alpha=0.25:cull=S1
  resnet18:alpha=0.25:cull=S1:thin
  resnet18:alpha=0.125:cull=S1:thin
  resnet18:alpha=0.25:rho=0.5:cull=S1:thin
  resnet18:alpha=0.125:rho=0.5:cull=S1:thin
)
VGG_ALPHA=${VGG_ALPHA:-0.25}
VGG_COUNT=${VGG_COUNT:-2}
VGG_DATA=synthetic:3x32x32:10:512
vgg=(
  vgg16:alpha=$VGG_ALPHA
  vgg16:alpha=$VGG_ALPHA:cull=S4,S5
  vgg16:alpha=$VGG_ALPHA:cull=S1,S4,S5:thin
)
measure() {  # spec data count [train flags...]
  local spec=$1 data=$2 count=$3 name run
  shift 3
  name=$(echo "$spec" | sed 's/:/_/g; s/=/-/g; s/,/+/g')
  run=$OUT/$name
  [[ -f $run/result.json ]] || "$BIN" train --model "$spec" --data "$data" "$@" --epochs 1 --out "$run" >&2
  [[ -f $OUT/$name.pi.json ]] || "$BIN" pi run "$run" --data "$data" --count "$count" --format json --quiet --deal-first \
    > "$OUT/$name.pi.json"
}
FAMILIES=${FAMILIES:-resnet vgg}
[[ $FAMILIES == *resnet* ]] && for spec in "${specs[@]}"; do measure "$spec" fashion-mnist "$COUNT" --limit "$LIMIT"; done
[[ $FAMILIES == *vgg* ]] && for spec in "${vgg[@]}"; do measure "$spec" "$VGG_DATA" "$VGG_COUNT"; done
summary() {  # title spec...
"$PY" - "$OUT" "$@" <<'PY'
import json, sys
out, title, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [json.load(open(f"{out}/{s.replace(':', '_').replace('=', '-').replace(',', '+')}.pi.json")) for s in specs]
p = rows[0]["provenance"]
print(f"{title}: deepreduce {p['deepreduce']} (commit {p.get('commit')}), {p['cpu']}, {p['cores']} cores; "
      f"{rows[0]['images']} images per network; {rows[0]['trust_model']}.\n")
print("| network | live ReLUs | max-pool comparisons | latency s | x vs first | online MB | ReLU MB | rounds | key MB per party | LAN s | WAN s | agreement |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
base = rows[0]
for r in rows:
    n = r["images"]
    relu_mb = sum(l["bytes"] for l in r["layers"] if l["kind"] == "relu") / 1e6
    print(f"| `{r['spec']}` | {r['relus']:,} | {r.get('max_comparisons', 0):,} | {r['seconds_per_image']:.3f} | "
          f"{base['seconds_per_image'] / r['seconds_per_image']:.1f}x | {r['online_bytes'] / n / 1e6:.2f} | {relu_mb:.2f} | "
          f"{r['rounds']} | {r['key_bytes_per_image']['server'] / 1e6:.0f} | "
          f"{r['modelled']['lan']['seconds_per_image']:.3f} | {r['modelled']['wan']['seconds_per_image']:.2f} | "
          f"{r['agreement']:.2f} |")
print()
PY
}
{
  [[ $FAMILIES == *resnet* ]] && summary "ResNet18/4 on Fashion-MNIST" "${specs[@]}"
  [[ $FAMILIES == *vgg* ]] && summary "VGG16 (alpha $VGG_ALPHA) on synthetic 3x32x32" "${vgg[@]}"
  true
} | tee "$OUT/summary.md"
