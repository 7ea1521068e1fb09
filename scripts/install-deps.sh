#!/usr/bin/env bash
# Installs the Debian packages deepreduce needs, only those missing.
# Used by `make demo` and `make test`; safe to run again.
set -euo pipefail

packages=(
  g++ cmake make                 # toolchain
  libtorch-dev                   # LibTorch 1.13 (CPU, oneDNN), find_package(Torch)
  libgloo-dev                    # c10d's Gloo backend (data-parallel training)
  libdnnl-dev                    # oneDNN headers: the fused inference program (optional)
  libcli11-dev nlohmann-json3-dev libgtest-dev
  libssl-dev                     # OpenSSL: AES (EVP, AES-NI) and SHA-256 of the private-inference runtime
  zlib1g-dev libjpeg-dev         # gzipped IDX, TinyImageNet JPEGs
  gnuplot-nox                    # plots (PNG through cairo, SVG)
  dataset-fashion-mnist          # the real data of `make demo`
  python3-torch                  # Python interop test and the PyTorch benchmark
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing missing packages: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
