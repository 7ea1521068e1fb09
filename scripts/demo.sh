#!/usr/bin/env bash
# `make demo`: the DeepReDuce pipeline on the Fashion-MNIST data that Debian
# packages, at a scale that finishes in minutes on 2 cores. Finished runs in
# OUT are reused, so a second `make demo` only rewrites the report.
set -euo pipefail
bin=$1
out=$2
mkdir -p "$out"

echo "== Where ResNet18's ReLUs are (appendix Figure 7, CIFAR-100 input)"
"$bin" count resnet18 --dataset cifar100 --plot "$out/resnet18_figure7.png"
echo
echo "== The DeepReDuce pipeline on Fashion-MNIST"
echo "   Reduced scale, to finish in minutes on 2 cores: ResNet18 at width alpha=0.25 as the"
echo "   baseline, the first 10,000 train and 10,000 test images, 3 epochs per network."
echo "   (The paper: full width, CIFAR-100, 200 epochs.)"
echo
"$bin" reduce --model resnet18:alpha=0.25 --data fashion-mnist --limit 10000 --epochs 3 \
  --budget 50K,25K,12K,6K --out "$out/reduce"
echo
echo "Figure 7 plot:   $out/resnet18_figure7.png"
echo "Pipeline report: $out/reduce/report.md"
echo "Frontier plot:   $out/reduce/frontier.png"
