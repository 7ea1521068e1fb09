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
  libonnx-dev                    # ONNX models in: the protobuf schema and checker (optional)
  python3-torchvision python3-onnx  # the ONNX tests' models, exported by PyTorch
)

# Against another LibTorch (make ... TORCH_DIR=...): not Debian's LibTorch nor
# what is built on it. With a deps folder (DEPS_DIR, scripts/vendor-deps.sh):
# nothing. Without dpkg (not Debian): nothing; CMake names what is missing.
if [ -n "${DEEPREDUCE_DEPS_DIR:-}" ]; then
  echo "install-deps: DEPS_DIR=$DEEPREDUCE_DEPS_DIR given: no Debian packages installed" >&2
  exit 0
fi
if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: no dpkg here (not Debian): install LibTorch, nlohmann-json, CLI11, GoogleTest, OpenSSL," \
       "zlib and libjpeg yourself, or pass DEPS_DIR (scripts/vendor-deps.sh)" >&2
  exit 0
fi
if [ -n "${DEEPREDUCE_TORCH_DIR:-}" ]; then
  kept=()
  for p in "${packages[@]}"; do
    case $p in libtorch-dev|libgloo-dev|libdnnl-dev|python3-torch|python3-torchvision|python3-onnx) ;; *) kept+=("$p") ;; esac
  done
  packages=("${kept[@]}")
fi

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
