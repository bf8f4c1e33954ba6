#!/usr/bin/env bash
# Fuzzing the file readers (the engine's model reader and tokenizer, the offline library's
# checkpoint readers).
#
#   tests/fuzz/run.sh replay            build the replay drivers (any C compiler) and run
#                                       every corpus file once (what CI runs)
#   tests/fuzz/run.sh fuzz [SECONDS]    build libFuzzer targets with clang
#                                       (-fsanitize=fuzzer,address,undefined) and run each
#                                       for SECONDS (default 60) on a scratch copy of the
#                                       corpus; crashes land in build-fuzz/artifacts/
#
# Needs: libpcre2-dev, libjansson-dev; clang (with libclang-rt-dev) for `fuzz`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MODE="${1:-replay}"
SECS="${2:-60}"
OUT="${GPTOSS_FUZZ_BUILD:-$ROOT/build-fuzz}"
TARGETS="model_file safetensors tokenizer"
ENGINE_SRC="engine/format.c engine/model.c engine/tokenizer.c offline/writer.c offline/outfile.c offline/safetensors.c
            offline/convert.c"
PCRE_CFLAGS="$(pkg-config --cflags libpcre2-8 2>/dev/null || true)"
PCRE_LIBS="$(pkg-config --libs libpcre2-8 2>/dev/null || echo -lpcre2-8) $(pkg-config --libs jansson 2>/dev/null || echo -ljansson)"
INC="-I$ROOT/include -I$ROOT/src -I$ROOT/engine -I$ROOT/offline -I$ROOT/util $PCRE_CFLAGS"
KERNEL_SRC="$(ls "$ROOT"/src/*.c "$ROOT"/src/kernels/*.c "$ROOT"/src/cpu/*.c)"

build() {   # build CC "ENGINE_FLAGS" "LINK_FLAGS" MAIN_SUFFIX
  local cc="$1" eflags="$2" lflags="$3" kind="$4"
  mkdir -p "$OUT/obj-$kind"
  local objs=()
  for f in $KERNEL_SRC; do
    local rel="${f#$ROOT/}"; local o="$OUT/obj-$kind/k_${rel//\//_}.o"
    "$cc" -std=gnu11 -O1 -g $INC -DGPTOSS_VOCAB_DEFAULT="\"$ROOT/data/o200k_base.tiktoken\"" ${5:-} -c "$f" -o "$o"
    objs+=("$o")
  done
  for f in $ENGINE_SRC; do
    local o="$OUT/obj-$kind/e_${f//\//_}.o"
    "$cc" -std=gnu11 -O1 -g $INC -DGPTOSS_VOCAB_DEFAULT="\"$ROOT/data/o200k_base.tiktoken\"" $eflags -c "$ROOT/$f" -o "$o"
    objs+=("$o")
  done
  for t in $TARGETS; do
    local extra=()
    [ "$kind" = replay ] && extra=("$ROOT/tests/fuzz/replay_main.c")
    "$cc" -std=gnu11 -O1 -g $INC $eflags "$ROOT/tests/fuzz/fuzz_$t.c" "${extra[@]}" "${objs[@]}" \
      $lflags $PCRE_LIBS -lpthread -lm -o "$OUT/fuzz_${t}_$kind"
  done
}

case "$MODE" in
  replay)
    CC="${CC:-cc}"
    SAN=""
    if "$CC" -fsanitize=address -x c -o /dev/null - <<<'int main(void){return 0;}' 2>/dev/null; then
      SAN="-fsanitize=address,undefined -fno-omit-frame-pointer"
    fi
    build "$CC" "$SAN" "$SAN" replay "$SAN"
    for t in $TARGETS; do
      "$OUT/fuzz_${t}_replay" "$ROOT/tests/fuzz/corpus/$t"
    done
    ;;
  fuzz)
    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
    build clang "-fsanitize=fuzzer-no-link $SAN" "-fsanitize=fuzzer $SAN" fuzz "$SAN"
    mkdir -p "$OUT/artifacts"
    for t in $TARGETS; do
      work="$OUT/corpus-$t"
      mkdir -p "$work"
      cp -n "$ROOT/tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null || true
      extra=()
      [ "$t" = model_file ] && extra=(-max_len=200000)
      [ "$t" = tokenizer ] && extra=(-max_len=4096)
      echo "== fuzz_$t for ${SECS}s"
      "$OUT/fuzz_${t}_fuzz" "$work" -max_total_time="$SECS" -artifact_prefix="$OUT/artifacts/$t-" \
        -print_final_stats=1 "${extra[@]}" 2>&1 | grep -E "stat::number_of_executed_units|stat::peak_rss|ERROR|SUMMARY|Done" || true
    done
    ;;
  *)
    echo "usage: $0 replay | fuzz [SECONDS]" >&2
    exit 2
    ;;
esac
