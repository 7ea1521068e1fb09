#!/usr/bin/env bash
# The whole bill of a private prediction, per image, with each ReLU gate side
# by side in one run (issue 20, part 3): the dealer's time and the key it
# ships to both parties, each party's preprocessing, the online latency, and
# the ratio of offline to online, measured by `deepreduce pi run` (dealer,
# server and client as three processes on 127.0.0.1, one thread each) on
# resnet6:alpha=0.25 (36,544 ReLUs) trained one epoch on Fashion-MNIST (or
# SPEC on DATA: a full-width resnet18 on synthetic 3x32x32 images, CIFAR
# not being downloadable here, with SPEC=resnet18 DATA=synthetic:3x32x32:10:256).
# The first gate's run also reports the largest ReLU input and the narrowest
# reduced-width gate that holds it; each reduced-width run reports how many
# inputs fell outside its range. Each gate runs with the keys streamed from
# the dealer through named pipes (what `pi run` does without --keys) and, with
# KEYS="stream files", also with key files dealt first (`--keys DIR`), so the
# two can be compared in one run. Run alone on an idle machine.
#   bench/pi_bill.sh [BUILD_DIR]     COUNT=20 LIMIT=5000 OUT=runs/bench-bill GATES="dcf dcf:24 dpf:24 dpf:32"
#                                    SPEC=resnet6:alpha=0.25 DATA=fashion-mnist KEYS="stream"
# Key files need about 2.1 KB of disk per ReLU per party and image for the dcf
# keys (COUNT=20: about 3 GB under OUT, removed after each run); streamed keys none.
set -euo pipefail
BUILD_DIR=${1:-build}
BIN=$BUILD_DIR/deepreduce
COUNT=${COUNT:-20}
LIMIT=${LIMIT:-5000}
OUT=${OUT:-runs/bench-bill}
GATES=${GATES:-dcf dcf:24 dpf:24 dpf:32}
SPEC=${SPEC:-resnet6:alpha=0.25}
KEYS=${KEYS:-stream}
DATA=${DATA:-fashion-mnist}
PY=${PY:-python3}
[[ -x $BIN ]] || { echo "bench/pi_bill.sh: $BIN is missing: run 'make build'" >&2; exit 1; }
mkdir -p "$OUT"
run=$OUT/$(echo "$SPEC" | sed 's/:/_/g; s/=/-/g; s/,/+/g')
[[ -f $run/result.json ]] || "$BIN" train --model "$SPEC" --data "$DATA" --limit "$LIMIT" --epochs 1 --out "$run" >&2
names=()
for gate in $GATES; do
  for keys in $KEYS; do
    name=${gate/:/-}$([[ $keys == files ]] && echo .files || true)
    flags=()
    if [[ $keys == files ]]; then rm -rf "$OUT/keys"; flags=(--keys "$OUT/keys"); fi
    "$BIN" pi run "$run" --data "$DATA" --count "$COUNT" --relu-gate "$gate" --format json --quiet "${flags[@]}" \
      > "$OUT/$name.pi.json"
    rm -rf "$OUT/keys"
    names+=("$name")
  done
done
"$PY" - "$OUT" "$DATA" "${names[@]}" <<'PY' | tee "$OUT/summary.md"
import json, sys
out, data, names = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = [json.load(open(f"{out}/{n}.pi.json")) for n in names]
p, first = rows[0]["provenance"], rows[0]
print(f"Whole bill per image of `{first['spec']}` ({first['relus']:,} ReLUs) on {data}: deepreduce "
      f"{p['deepreduce']} (commit {p.get('commit')}{', modified' if p.get('dirty') else ''}), {p['cpu']}, "
      f"{p['cores']} cores, {p.get('started', '')}; {first['images']} images per gate, one thread per party; "
      f"{first['trust_model']}.")
c = first["comparison_inputs"]
print(f"Largest ReLU input over the images: {c['largest']:.3f} (fixed point {c['largest_fixed']:,}): the narrowest "
      f"reduced-width gate that holds it is {c['bits_needed']} bits.\n")
print("| ReLU gate | keys | rounds | dealer s | keys MB (both parties) | preprocessing s (client / server) | offline s | "
      "online s | offline / online | offline + online | vs first | elapsed s | key MB on disk | WAN s (modelled) | "
      "inputs out of range | agreement (float / fixed) |")
print("|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
total0 = first["bill_per_image"]["offline_s"] + first["bill_per_image"]["online_s"]
for r in rows:
    b = r["bill_per_image"]
    total = b["offline_s"] + b["online_s"]
    streamed = b["keys_streamed"]
    disk = 0 if streamed else b["key_bytes"] * r["images"]
    print(f"| {r['relu_gate']} | {'streamed' if streamed else 'files'} | {r['rounds']} | {b['dealer_s']:.3f} | "
          f"{b['key_bytes'] / 1e6:.1f} | "
          f"{b['preprocessing_s']['client']:.3f} / {b['preprocessing_s']['server']:.3f} | {b['offline_s']:.3f} | "
          f"{b['online_s']:.3f} | {b['offline_per_online']:.1f}x | {total:.3f} | {total0 / total:.1f}x lower | "
          f"{b['elapsed_s']:.3f} | {disk / 1e6:,.0f} | "
          f"{r['modelled']['wan']['seconds_per_image']:.2f} | {r['comparison_inputs']['out_of_range']:,} | "
          f"{r['agreement']:.2f} / {r['reference']['agreement']:.2f} |")
PY
