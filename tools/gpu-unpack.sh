#!/usr/bin/env bash
# Unpacks .gpu/carry.tar.xz (tools/gpu-prebuild.sh with GPU_PREBUILD_PACK=1) in the
# repository root of the device machine: with tar and xz where the machine has xz, else with
# Python's tarfile (every device machine has Python for PyTorch).
set -eu
cd "$(dirname "$0")/.."
a=.gpu/carry.tar.xz
[ -f "$a" ] || { echo "gpu-unpack: $a is missing (carry it: tools/gpu-prebuild.sh packs it)" >&2; exit 1; }
if command -v xz >/dev/null; then
    tar -xJf "$a"
else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(".")' "$a"
fi
echo "gpu-unpack: $(du -sh .gpu | cut -f1) in .gpu"
