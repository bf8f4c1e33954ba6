#!/usr/bin/env bash
# The least a CUDA change needs on the card before it is merged, in about four minutes of
# device time, for sittings where machines are hard to get or are taken back mid-call (a
# call taken back returns nothing: keep calls short). Every step writes its output under
# $OUT as it finishes, so a call that runs past its time limit still returns those.
# Prepare on the development machine:
#
#   GPU_PREV_REV=main GPU_PREBUILD_PACK=1 bash tools/gpu-prebuild.sh    # .gpu/carry.tgz
#
# and call with carry [".gpu/carry.tgz"]: `tar -xzf .gpu/carry.tgz && bash tools/gpu-quick.sh`.
# Steps, in order (the ones that decide a merge first):
#   1. the CUDA harness, every case (row order auto), and QUICK_MANY's cases in row order many
#   2. test_invariance
#   3. QUICK_ENGINE runs, base build (.gpu/prev) and this tree's (.gpu/b) alternated twice
#   4. memcheck and racecheck over QUICK_SAN's cases (and QUICK_SAN_ONE's in row order one)
#   5. test_batch, 20b with routing, 64 streams, default mode (bitwise against alone)
#   6. QUICK_BENCH's kernel-benchmark rows, base and this tree alternated twice (median us)
#   7. QUICK_NCU's Nsight Compute summaries of this tree (tools/ncu_prefill.sh)
# Variables (defaults in brackets):
#   QUICK_MANY    harness filter for row order many [sdpa]
#   QUICK_ENGINE  gptoss bench arguments, ';' between runs [-p 16 -n 64 -d 32768]
#   QUICK_SAN     harness filter for the sanitizers [sdpa_tc_prefill_45tok]
#   QUICK_SAN_ONE the same in row order one (empty: none) []
#   QUICK_BENCH   kernel-benchmark filter (bench --filter; empty: none) []
#   QUICK_NCU     ROW:KERNEL_REGEX pairs for tools/ncu_prefill.sh, spaces between (empty: none) []
set -u
cd "$(dirname "$0")/.." || exit 1
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
export OUT=${OUT:-/tmp/gpu-quick}; mkdir -p "$OUT"
B=.gpu/b
t0=$(date +%s); el() { echo "($(($(date +%s) - t0))s)"; }
say() { echo "$*" | tee -a "$OUT/sum.txt"; }
say "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
say "B = $(cat $B/REV 2>/dev/null || echo this tree), A = $(cat .gpu/prev/REV 2>/dev/null || echo none)"

timeout 200 $B/tests/harness --backend cuda >"$OUT/harness.txt" 2>&1
say "harness rc=$? $(tail -1 "$OUT/harness.txt") $(el)"
grep -E '^FAIL' "$OUT/harness.txt" | head -10 | tee -a "$OUT/sum.txt"
timeout 90 $B/tests/harness --backend cuda --row-order many --filter "${QUICK_MANY:-sdpa}" >"$OUT/harness-many.txt" 2>&1
say "harness many (${QUICK_MANY:-sdpa}) rc=$? $(tail -1 "$OUT/harness-many.txt") $(el)"
grep -E '^FAIL' "$OUT/harness-many.txt" | head -5 | tee -a "$OUT/sum.txt"

timeout 120 $B/tests/test_invariance >"$OUT/invariance.txt" 2>&1
say "test_invariance rc=$? $(tail -1 "$OUT/invariance.txt") $(el)"
grep -E '^FAIL' "$OUT/invariance.txt" | head -10 | tee -a "$OUT/sum.txt"

IFS=';' read -r -a runs <<<"${QUICK_ENGINE:--p 16 -n 64 -d 32768}"
if [ -x .gpu/prev/bin/gptoss ]; then builds="prev b prev b"; else builds="b"; fi
for run in "${runs[@]}"; do
    [ -n "${run// /}" ] || continue
    for v in $builds; do
        # shellcheck disable=SC2086
        timeout 60 .gpu/$v/bin/gptoss bench --random 20b --backend cuda -r 1 $run >"$OUT/engine.txt" 2>&1
        rc=$?
        say "$([ "$v" = prev ] && echo A || echo B) $run: rc=$rc $(grep -E '^[|].*(pp|tg|ttft)' "$OUT/engine.txt" | awk -F'|' '{printf "%s %s; ", $5, $6}') $(el)"
    done
done

for tool in memcheck racecheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
        $B/tests/harness --backend cuda --filter "${QUICK_SAN:-sdpa_tc_prefill_45tok}" >"$OUT/$tool.txt" 2>&1
    say "$tool rc=$? (0 = clean) $(grep -E '^[0-9]+ passed' "$OUT/$tool.txt" | tail -1) $(el)"
    if [ -n "${QUICK_SAN_ONE:-}" ]; then
        timeout 90 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
            $B/tests/harness --backend cuda --row-order one --filter "$QUICK_SAN_ONE" >"$OUT/$tool-one.txt" 2>&1
        say "$tool one rc=$? (0 = clean) $(grep -E '^[0-9]+ passed' "$OUT/$tool-one.txt" | tail -1) $(el)"
    fi
done

timeout 120 $B/tests/e2e/test_batch --backend cuda --model 20b --routing on --streams 64 >"$OUT/batch.txt" 2>&1
say "test_batch 20b x64 rc=$? $(grep -E 'batch invariance:' "$OUT/batch.txt" | sed 's/^ *//') $(el)"
if [ -n "${QUICK_BENCH:-}" ]; then
    for v in $builds; do
        timeout 60 ".gpu/$v/bench/bench" --backend cuda --filter "$QUICK_BENCH" >"$OUT/bench-$v.txt" 2>&1
        rc=$?
        # a row: name, its shape (several words), median_us, MB, GB/s, %BW, GFLOP/s
        say "$([ "$v" = prev ] && echo A || echo B) bench rc=$rc $(awk '/ T=/ && NF > 6 {printf "%s %s us; ", $1, $(NF-4)}' "$OUT/bench-$v.txt") $(el)"
    done
fi
if [ -n "${QUICK_NCU:-}" ] && command -v ncu >/dev/null; then
    # shellcheck disable=SC2086
    timeout 150 bash tools/ncu_prefill.sh $B/bench/bench $QUICK_NCU >"$OUT/ncu.txt" 2>&1
    say "ncu rc=$? $(el)"
    tee -a "$OUT/sum.txt" <"$OUT/ncu.txt"
fi
echo; echo "======== SUMMARY"; cat "$OUT/sum.txt"
