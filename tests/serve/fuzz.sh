#!/usr/bin/env bash
# Fuzzing the server's request layer (tests/serve/fuzz_request.c) with libFuzzer.
#
#   tests/serve/fuzz.sh [SECONDS]   build with clang into build-fuzz-serve (every library
#                                   instrumented: -fsanitize=fuzzer-no-link,address,undefined)
#                                   and fuzz for SECONDS (default 600) on a scratch copy of
#                                   the corpus; crashes land in build-fuzz-serve/artifacts/
#
# ctest replays tests/serve/corpus/request (serve_fuzz_request_replay). Add any crashing
# input found here to that corpus once fixed. Needs clang with libclang-rt-dev.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECS="${1:-600}"
OUT="${GPTOSS_FUZZ_BUILD:-$ROOT/build-fuzz-serve}"
export GPTOSS_VOCAB="${GPTOSS_VOCAB:-$ROOT/data/o200k_base.tiktoken}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CC=clang cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_CUDA=OFF -DGPTOSS_FUZZ=ON \
    -DGPTOSS_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link $SAN" \
    -DCMAKE_EXE_LINKER_FLAGS="$SAN" >/dev/null
cmake --build "$OUT" -j"$(nproc)" --target serve_fuzz_request >/dev/null
mkdir -p "$OUT/artifacts" "$OUT/corpus-request"
cp -n "$ROOT/tests/serve/corpus/request"/* "$OUT/corpus-request"/ 2>/dev/null || true
"$OUT/tests/serve/serve_fuzz_request" "$OUT/corpus-request" -max_total_time="$SECS" -max_len=8192 \
    -artifact_prefix="$OUT/artifacts/request-" -print_final_stats=1 2>&1 |
    grep -E "stat::number_of_executed_units|stat::peak_rss|stat::new_units_added|ERROR|SUMMARY|Done|#[0-9]+ +DONE" || true
ls "$OUT/artifacts" | grep -q . && { echo "crashes in $OUT/artifacts"; exit 1; }
echo "no crash"
