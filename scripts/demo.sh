#!/usr/bin/env bash
# The demo of `make demo`: where ResNet18's ReLUs are (appendix Figure 7) and
# what culling, thinning and reshaping do to the count.
set -euo pipefail
bin=$1
out=$2
mkdir -p "$out"

echo "== The model zoo"
"$bin" models
echo
echo "== Where ResNet18's ReLUs, FLOPs and params are (CIFAR-100 input)"
"$bin" count resnet18 --dataset cifar100 --plot "$out/resnet18_figure7.png"
echo
echo "== DeepReDuce steps on ResNet18: cull the least critical stages, thin, reshape"
"$bin" count resnet18 resnet18:cull=S1 resnet18:cull=S1:thin resnet18:cull=S1:thin:alpha=0.5 \
  resnet18:cull=S1:thin:rho=0.5 resnet18:cull=S1:thin:alpha=0.5:rho=0.5 --dataset cifar100
echo
echo "Figure 7 plot: $out/resnet18_figure7.png"
