#!/usr/bin/env bash
# Configures and builds into build/ (Release). CUDA is built when nvcc is found
# (override with GPTOSS_CUDA=ON|OFF). Extra cmake arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=${GPTOSS_CUDA:-}
if [ -z "$cuda" ]; then
    if command -v nvcc >/dev/null 2>&1; then cuda=ON; else cuda=OFF; fi
fi
builddir=${GPTOSS_BUILD_DIR:-build}
cmake -S . -B "$builddir" -DCMAKE_BUILD_TYPE=Release -DGPTOSS_CUDA="$cuda" "$@" >/dev/null
cmake --build "$builddir" -j"$(nproc)"
