#!/usr/bin/env bash
# Fills a folder with what deepreduce needs besides LibTorch, for a machine
# that has a compiler, CMake and a pip PyTorch but none of Debian's -dev
# packages and no network (the GPU machine of scripts/gpu-check.sh):
#
#   include/       nlohmann-json, CLI11 (header-only), OpenSSL, zlib, libjpeg headers
#   lib/           libcrypto.a, libz.a, libjpeg.a: static, so the binaries need
#                  nothing installed to run
#   googletest/    GoogleTest's sources (Debian's googletest), built there by CMake
#   data/fashion-mnist/   the four IDX files of Fashion-MNIST (dataset-fashion-mnist)
#   manifest.txt   package versions, where it was made, the glibc it needs; SHA256SUMS
#
#   scripts/vendor-deps.sh [DIR]      (default third_party/gpu-deps, ignored by git)
#
# Run on a Debian 12 x86_64 machine with the packages of scripts/install-deps.sh.
# The static libraries are Debian 12's (glibc 2.36); the machine that links
# them needs x86_64 and glibc >= the floor manifest.txt records (2.33 for
# OpenSSL 3.0's libcrypto.a: stat/fstat symbols). CMake takes the folder with
# -DDEEPREDUCE_DEPS_DIR=DIR (cmake/deps.cmake). It is about 47 MB; the device
# tool carries it as an ignored path: carry ["third_party/gpu-deps"].
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-third_party/gpu-deps}
MULTIARCH=x86_64-linux-gnu

[[ $(uname -m) == x86_64 ]] || { echo "vendor-deps: this machine is $(uname -m), not x86_64" >&2; exit 1; }
command -v dpkg-query >/dev/null || { echo "vendor-deps: needs Debian (dpkg-query)" >&2; exit 1; }
packages=(nlohmann-json3-dev libcli11-dev googletest libssl-dev zlib1g-dev libjpeg62-turbo-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "vendor-deps: missing Debian packages: ${missing[*]} (apt-get install ${missing[*]})" >&2
  exit 1
fi

tmp="$DIR.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/include" "$tmp/lib" "$tmp/data"

# Headers of each package, /usr/include/<multiarch>/ folded into include/.
for p in nlohmann-json3-dev libcli11-dev libssl-dev zlib1g-dev libjpeg62-turbo-dev; do
  dpkg -L "$p" | while read -r f; do
    [[ -f $f && $f == /usr/include/* ]] || continue
    rel=${f#/usr/include/}
    rel=${rel#"$MULTIARCH"/}
    mkdir -p "$tmp/include/$(dirname "$rel")"
    cp -p "$f" "$tmp/include/$rel"
  done
done
for a in libcrypto.a libz.a libjpeg.a; do
  cp -p "/usr/lib/$MULTIARCH/$a" "$tmp/lib/"
done
cp -a /usr/src/googletest "$tmp/googletest"
rm -rf "$tmp/googletest/googlemock/docs" "$tmp/googletest/googletest/docs" "$tmp/googletest/docs"
mkdir -p "$tmp/data/fashion-mnist"
cp -p /usr/share/datasets/fashion-mnist/*-ubyte.gz "$tmp/data/fashion-mnist/"

# The oldest glibc the static libraries link against: the newest symbol
# version among the C library symbols they use (pthread_* left out: before
# glibc 2.34 they come from libpthread, under older versions).
floor=$(python3 - "$tmp/lib" <<'EOF' 2>/dev/null || echo unknown
import os, re, subprocess, sys
libc = subprocess.run(["objdump", "-T", "/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libm.so.6"],
                      capture_output=True, text=True, check=True).stdout
first = {}
for line in libc.splitlines():
    m = re.search(r"\(?GLIBC_([0-9.]+)\)?\s+(\S+)$", line)
    if m:
        v = tuple(int(x) for x in m.group(1).split("."))
        first[m.group(2)] = min(first.get(m.group(2), v), v)
need = (2, 2, 5)
for a in os.listdir(sys.argv[1]):
    out = subprocess.run(["nm", "-u", os.path.join(sys.argv[1], a)], capture_output=True, text=True).stdout
    for s in set(l.split()[-1] for l in out.splitlines() if l.strip() and not l.endswith(":")):
        if s in first and not s.startswith("pthread"):
            need = max(need, first[s])
print(".".join(map(str, need)))
EOF
)

{
  echo "deepreduce dependency folder (scripts/vendor-deps.sh); use with -DDEEPREDUCE_DEPS_DIR=<this folder>"
  echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname) ($(. /etc/os-release && echo "$PRETTY_NAME"), $(uname -m))"
  echo "glibc here: $(ldd --version | head -1 | awk '{print $NF}'); glibc needed to link lib/*.a: >= $floor"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "packages:"
  for p in "${packages[@]}"; do echo "  $p $(dpkg-query -W -f='${Version}' "$p")"; done
} > "$tmp/manifest.txt"
(cd "$tmp" && find . -type f ! -name SHA256SUMS -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > SHA256SUMS)

rm -rf "$DIR"
mkdir -p "$(dirname "$DIR")"
mv "$tmp" "$DIR"
trap - EXIT
size=$(du -sm "$DIR" | cut -f1)
echo "vendor-deps: $DIR ($size MB, glibc >= $floor to link): cmake -DDEEPREDUCE_DEPS_DIR=$DIR; scripts/gpu-check.sh uses it" >&2
if [[ $size -ge 60 ]]; then
  echo "vendor-deps: warning: $size MB is close to the device tool's 64 MiB for carried paths" >&2
fi
