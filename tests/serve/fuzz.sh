#!/usr/bin/env bash
# Fuzzing the server's request layer (tests/serve/fuzz_request.c), JSON mode's recognizer
# against jansson (tests/serve/fuzz_json_mode.c) or structured outputs against their oracle
# (tests/serve/fuzz_json_schema.c: schema, NUL, document) with libFuzzer.
#
#   tests/serve/fuzz.sh [SECONDS] [request|json_mode|json_schema]
#                                   build with clang into build-fuzz-serve (every library
#                                   instrumented: -fsanitize=fuzzer-no-link,address,undefined)
#                                   and fuzz the target (default request) for SECONDS (default
#                                   600) on a scratch copy of its corpus; crashes land in
#                                   build-fuzz-serve/artifacts/
#
# ctest replays tests/serve/corpus/request, corpus/json_mode and corpus/json_schema
# (serve_fuzz_request_replay, serve_fuzz_json_mode_replay, serve_fuzz_json_schema_replay). Add any crashing input found
# here to the target's corpus once fixed. Needs clang with libclang-rt-dev.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SECS="${1:-600}"
TARGET="${2:-request}"
case "$TARGET" in request | json_mode | json_schema) ;;
*) echo "fuzz.sh: target is request, json_mode or json_schema, got '$TARGET'" >&2; exit 2 ;;
esac
OUT="${GPTOSS_FUZZ_BUILD:-$ROOT/build-fuzz-serve}"
export GPTOSS_VOCAB="${GPTOSS_VOCAB:-$ROOT/data/o200k_base.tiktoken}"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
CC=clang cmake -S "$ROOT" -B "$OUT" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_CUDA=OFF -DGPTOSS_FUZZ=ON \
    -DGPTOSS_BUILD_BENCH=OFF -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link $SAN" \
    -DCMAKE_EXE_LINKER_FLAGS="$SAN" >/dev/null
cmake --build "$OUT" -j"$(nproc)" --target "serve_fuzz_$TARGET" >/dev/null
mkdir -p "$OUT/artifacts" "$OUT/corpus-$TARGET"
cp -n "$ROOT/tests/serve/corpus/$TARGET"/* "$OUT/corpus-$TARGET"/ 2>/dev/null || true
"$OUT/tests/serve/serve_fuzz_$TARGET" "$OUT/corpus-$TARGET" -max_total_time="$SECS" -max_len=8192 \
    -artifact_prefix="$OUT/artifacts/$TARGET-" -print_final_stats=1 2>&1 |
    grep -E "stat::number_of_executed_units|stat::peak_rss|stat::new_units_added|ERROR|SUMMARY|Done|#[0-9]+ +DONE" || true
ls "$OUT/artifacts" | grep -q . && { echo "crashes in $OUT/artifacts"; exit 1; }
echo "no crash"
