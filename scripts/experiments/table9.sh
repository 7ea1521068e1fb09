#!/usr/bin/env bash
# The appendix's Table 9 (channel scaling vs resolution scaling at iso-ReLU)
# at a small scale on Fashion-MNIST. For resnet18, resnet10 and resnet6 it
# trains the baseline, alpha x0.25 and rho 0.5, each without and with KD (the
# teacher: the resnet18 baseline), and prints the table as markdown.
#
# The scale is set by the environment: WIDTH (the baseline's alpha; 0.25 by
# default, since full-width ResNet18 trains at ~25 images/s on 2 cores),
# LIMIT (train and test images, default 10000), EPOCHS (default 3), OUT.
set -euo pipefail
bin=${DEEPREDUCE:-build/deepreduce}
width=${WIDTH:-0.25}
limit=${LIMIT:-10000}
epochs=${EPOCHS:-3}
out=${OUT:-runs/table9}
common=(--data fashion-mnist --limit "$limit" --epochs "$epochs" --seed 0)
small=$(python3 -c "print($width * 0.25)")

train() {  # name spec [extra args]
  local name=$1 spec=$2
  shift 2
  if [ ! -f "$out/$name/result.json" ]; then
    if [ -f "$out/$name/config.json" ]; then "$bin" resume "$out/$name" >&2
    else "$bin" train --model "$spec" "${common[@]}" --out "$out/$name" "$@" >&2; fi
  fi
}

train resnet18.base "resnet18:alpha=$width"
for net in resnet18 resnet10 resnet6; do
  for v in base alpha rho; do
    case $v in
      base) spec="$net:alpha=$width" ;;
      alpha) spec="$net:alpha=$small" ;;
      rho) spec="$net:alpha=$width:rho=0.5" ;;
    esac
    train "$net.$v" "$spec"
    train "$net.$v.kd" "$spec" --teacher "$out/resnet18.base"
  done
done

python3 - "$out" "$width" "$limit" "$epochs" <<'PY'
import json, sys
out, width, limit, epochs = sys.argv[1:]
def res(name):
    return json.load(open(f"{out}/{name}/result.json"))
print(f"Fashion-MNIST, first {limit} train and test images, {epochs} epochs, baseline width alpha={width}; "
      f"KD teacher: {res('resnet18.base')['spec']}.\n")
print("| network | ReLUs | params | acc w/o KD (%) | acc w/ KD (%) |")
print("|---|---:|---:|---:|---:|")
for net in ["resnet18", "resnet10", "resnet6"]:
    for v, label in [("base", "baseline"), ("alpha", "alpha x0.25"), ("rho", "rho 0.5")]:
        a, b = res(f"{net}.{v}"), res(f"{net}.{v}.kd")
        print(f"| {a['spec']} ({label}) | {a['relus']:,} | {a['params']:,} | {100*a['test_acc']:.2f} | {100*b['test_acc']:.2f} |")
PY
