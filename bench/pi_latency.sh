#!/usr/bin/env bash
# Online latency and throughput per image of a private prediction (issue 20,
# part 4), for each configuration side by side in one run: ReLU gate,
# threads per party and images per batch (`pi run --relu-gate G --threads T
# --batch B`), measured by `deepreduce pi run` (dealer, server and client as
# three processes on 127.0.0.1; the keys dealt first with --deal-first so the
# dealer does not share the cores with the online phase) on
# resnet18:alpha=0.25 trained one epoch on Fashion-MNIST (or SPEC on DATA).
# Per image: the online seconds (a batch's time over its images), a batch's
# latency, images per second, and the modelled LAN/WAN time (a batch's
# rounds shared by its images). On a machine of C cores the two parties use
# 2T threads: with T = 2 on 2 cores they share them. Run alone on an idle machine.
#   bench/pi_latency.sh [BUILD_DIR]   COUNT=16 LIMIT=5000 OUT=runs/bench-latency
#                                     SPEC=resnet18:alpha=0.25 DATA=fashion-mnist
#                                     CONFIGS="dcf,1,1 dpf:24,1,1 dpf:24,2,1 dpf:24,1,8 dpf:24,2,8" (gate,threads,batch)
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/deepreduce
COUNT=${COUNT:-16}
LIMIT=${LIMIT:-5000}
OUT=${OUT:-runs/bench-latency}
SPEC=${SPEC:-resnet18:alpha=0.25}
DATA=${DATA:-fashion-mnist}
CONFIGS=${CONFIGS:-dcf,1,1 dcf:24,1,1 dpf:24,1,1 dpf:24,2,1 dpf:24,1,8 dpf:24,2,8}
PY=${PY:-python3}
[[ -x $BIN ]] || { echo "bench/pi_latency.sh: $BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
run=$OUT/$(echo "$SPEC" | sed 's/:/_/g; s/=/-/g; s/,/+/g')
[[ -f $run/result.json ]] || "$BIN" train --model "$SPEC" --data "$DATA" --limit "$LIMIT" --epochs 1 --out "$run" >&2
names=()
for config in $CONFIGS; do
  IFS=, read -r gate threads batch <<< "$config"
  name="${gate/:/-}.t$threads.b$batch"
  "$BIN" pi run "$run" --data "$DATA" --count "$COUNT" --relu-gate "$gate" --threads "$threads" --batch "$batch" \
    --deal-first --format json --quiet > "$OUT/$name.pi.json"
  names+=("$name")
done
"$PY" - "$OUT" "$DATA" "${names[@]}" <<'PY' | tee "$OUT/summary.md"
import json, sys
out, data, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [json.load(open(f"{out}/{n}.pi.json")) for n in names]
p, first = rows[0]["provenance"], rows[0]
print(f"Online latency per image of `{first['spec']}` ({first['relus']:,} ReLUs) on {data}: deepreduce "
      f"{p['deepreduce']} (commit {p.get('commit')}{', modified' if p.get('dirty') else ''}), {p['cpu']}, "
      f"{p['cores']} cores, {p.get('started', '')}; {first['images']} images per row, keys dealt first; "
      f"{first['trust_model']}.\n")
print("| ReLU gate | threads per party | batch | rounds | online s per image | vs first | a batch's latency s | "
      "images/s | LAN s per image (modelled) | WAN s per image (modelled) | WAN vs first | agreement (float / fixed) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
s0, w0 = first["seconds_per_image"], first["modelled"]["wan"]["seconds_per_image"]
for r in rows:
    s, w = r["seconds_per_image"], r["modelled"]["wan"]["seconds_per_image"]
    print(f"| {r['relu_gate']} | {r['provenance']['threads']} | {r['batch']} | {r['rounds']} | {s:.4f} | "
          f"{s0 / s:.1f}x lower | {r['batch_latency_s']:.4f} | {r['images_per_second']:.1f} | "
          f"{r['modelled']['lan']['seconds_per_image']:.4f} | {w:.3f} | {w0 / w:.1f}x lower | "
          f"{r['agreement']:.2f} / {r['reference']['agreement']:.2f} |")
PY
