#!/usr/bin/env bash
# libFuzzer run of the harmony layer (fuzz_harmony.c):
#
#   tests/server/fuzz.sh [SECONDS]     (default 60)
#
# Builds everything the target needs with clang, instrumented (fuzzer coverage, ASan,
# UBSan), into build-fuzz-server/, and fuzzes a scratch copy of tests/server/corpus.
# Crashes land in build-fuzz-server/artifacts/: add them to the corpus once fixed
# (ctest replays the corpus with any compiler: fuzz_harmony_replay).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECS="${1:-60}"
OUT="${GPTOSS_FUZZ_BUILD:-$ROOT/build-fuzz-server}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CC=clang cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_CUDA=OFF -DGPTOSS_FUZZ=ON \
    -DGPTOSS_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link $SAN" >/dev/null
cmake --build "$OUT" -j2 --target fuzz_harmony >/dev/null
work="$OUT/corpus-harmony"
mkdir -p "$work" "$OUT/artifacts"
cp -n "$ROOT/tests/server/corpus"/* "$work"/
"$OUT/tests/server/fuzz_harmony" "$work" -max_total_time="$SECS" -max_len=16384 -timeout=10 \
    -artifact_prefix="$OUT/artifacts/harmony-" -print_final_stats=1
