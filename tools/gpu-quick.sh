#!/usr/bin/env bash
# The least a CUDA change needs on the card before it is merged, in about five minutes of
# device time, for sittings where machines are hard to get or are taken back mid-call (a
# call taken back returns nothing: keep calls short). Every step writes its output under
# $OUT as it finishes, so a call that runs past its time limit still returns those.
# Prepare on the development machine:
#
#   GPU_PREV_REV=main GPU_PREBUILD_PACK=1 bash tools/gpu-prebuild.sh    # .gpu/carry.tar.xz
#
# (GPU_ALT_REVS="NAME=REV ..." adds candidate revisions, .gpu/alt/NAME, measured beside the
# base and this tree in the same call) and call with carry [".gpu/carry.tar.xz"]:
# `bash tools/gpu-unpack.sh && bash tools/gpu-quick.sh`.
# The variants: A (.gpu/prev, the base), B (.gpu/b, this tree) and each .gpu/alt/NAME.
# Steps, in order (what decides between the variants first, then B's full checks):
#   1. the CUDA harness's QUICK_MANY cases, row orders auto and many, every variant but A
#   2. QUICK_BENCH's kernel-benchmark rows, the variants alternated twice (median us)
#   3. QUICK_ENGINE runs, the variants alternated twice
#   4. B: the CUDA harness, every case (row order auto)
#   5. B: test_invariance
#   6. memcheck and racecheck over QUICK_SAN's cases (and QUICK_SAN_ONE's in row order one), on B
#      and the candidates QUICK_SAN_VARIANTS names
#   7. B: test_batch, 20b with routing, 64 streams, default mode (bitwise against alone)
#   8. QUICK_NCU's Nsight Compute summaries of B (with QUICK_NCU_ALL=1, of every variant)
# Variables (defaults in brackets):
#   QUICK_VARIANTS the variants steps 1-3 run, by name, spaces between [all of them: A, B and
#                 every .gpu/alt/NAME] (one call cannot alternate ten variants through many
#                 rows in 600 s: split them over warm calls)
#   QUICK_MANY    harness filter of step 1 [sdpa]
#   QUICK_ENGINE  gptoss bench arguments, ';' between runs [-p 16 -n 64 -d 32768]
#   QUICK_SAN     harness filter for the sanitizers [sdpa_tc_prefill_45tok]
#   QUICK_SAN_ONE the same in row order one (empty: none) []
#   QUICK_SAN_VARIANTS the variants the sanitizers run on, by name [B]
#   QUICK_BENCH   kernel-benchmark filter (bench --filter; empty: none) []
#   QUICK_NCU     ROW:KERNEL_REGEX pairs for tools/ncu_prefill.sh, spaces between (empty: none) []
#   QUICK_STEPS   the steps to run, by name: many bench engine harness invariance san batch ncu
#                 [all of them] (a call of many variants runs the first three, then a second
#                 call the rest: each call stays under the 600 s a command may run)
# QUICK_BENCH and QUICK_ENGINE take several entries, ';' between (a bench filter is one
# substring of a row's name).
set -u
cd "$(dirname "$0")/.." || exit 1
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
export OUT=${OUT:-/tmp/gpu-quick}; mkdir -p "$OUT"
B=.gpu/b
t0=$(date +%s); el() { echo "($(($(date +%s) - t0))s)"; }
say() { echo "$*" | tee -a "$OUT/sum.txt"; }
# the variants' folders and names
dirs=() names=()
if [ -x .gpu/prev/bin/gptoss ]; then dirs+=(.gpu/prev); names+=(A); fi
dirs+=("$B"); names+=(B)
for d in .gpu/alt/*/; do
    [ -x "$d/bin/gptoss" ] || continue
    dirs+=("${d%/}"); names+=("$(basename "$d")")
done
if [ -n "${QUICK_VARIANTS:-}" ]; then
    kept_dirs=() kept_names=()
    for k in "${!dirs[@]}"; do
        if [[ " $QUICK_VARIANTS " == *" ${names[$k]} "* ]]; then kept_dirs+=("${dirs[$k]}"); kept_names+=("${names[$k]}"); fi
    done
    dirs=("${kept_dirs[@]}") names=("${kept_names[@]}")
fi
rev() { cat "$1/REV" 2>/dev/null || echo "this tree"; }
steps=" ${QUICK_STEPS:-many bench engine harness invariance san batch ncu} "
step() { [[ $steps == *" $1 "* ]]; }
say "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
for k in "${!dirs[@]}"; do say "${names[$k]} = $(rev "${dirs[$k]}")"; done

filter=${QUICK_MANY:-sdpa}
for k in "${!dirs[@]}"; do
    step many || break
    [ "${names[$k]}" != A ] || continue
    for order in auto many; do
        f="$OUT/harness-${names[$k]}-$order.txt"
        timeout 120 "${dirs[$k]}/tests/harness" --backend cuda --row-order $order --filter "$filter" >"$f" 2>&1
        say "${names[$k]} harness $filter ($order) rc=$? $(tail -1 "$f") $(el)"
        grep -E '^FAIL' "$f" | head -5 | tee -a "$OUT/sum.txt"
    done
done

IFS=';' read -r -a bfilters <<<"${QUICK_BENCH:-}"
for bf in "${bfilters[@]}"; do
    if [ -z "${bf// /}" ] || ! step bench; then continue; fi
    for round in 1 2; do
        for k in "${!dirs[@]}"; do
            f="$OUT/bench-${names[$k]}-$round.txt"
            timeout 60 "${dirs[$k]}/bench/bench" --backend cuda --filter "$bf" >"$f" 2>&1
            rc=$?
            # a row: name, its shape (several words), median_us, MB, GB/s, %BW, GFLOP/s
            say "${names[$k]} bench rc=$rc $(awk '/ T=/ && NF > 6 {printf "%s %s us; ", $1, $(NF-4)}' "$f") $(el)"
        done
    done
done

IFS=';' read -r -a runs <<<"${QUICK_ENGINE:--p 16 -n 64 -d 32768}"
for run in "${runs[@]}"; do
    if [ -z "${run// /}" ] || ! step engine; then continue; fi
    for round in 1 2; do
        for k in "${!dirs[@]}"; do
            # shellcheck disable=SC2086
            timeout 60 "${dirs[$k]}/bin/gptoss" bench --random 20b --backend cuda -r 1 $run >"$OUT/engine.txt" 2>&1
            rc=$?
            say "${names[$k]} $run: rc=$rc $(grep -E '^[|].*(pp|tg|ttft)' "$OUT/engine.txt" | awk -F'|' '{printf "%s %s; ", $5, $6}') $(el)"
        done
    done
done

if step harness; then
    timeout 200 $B/tests/harness --backend cuda >"$OUT/harness.txt" 2>&1
    say "B harness rc=$? $(tail -1 "$OUT/harness.txt") $(el)"
    grep -E '^FAIL' "$OUT/harness.txt" | head -10 | tee -a "$OUT/sum.txt"
fi

if step invariance; then
    timeout 120 $B/tests/test_invariance >"$OUT/invariance.txt" 2>&1
    say "B test_invariance rc=$? $(tail -1 "$OUT/invariance.txt") $(el)"
    grep -E '^FAIL' "$OUT/invariance.txt" | head -10 | tee -a "$OUT/sum.txt"
fi

# the variants the sanitizers run on (B and, by name, any candidate whose kernels B lacks)
san_dirs=() san_names=()
for k in "${!dirs[@]}"; do
    [[ " ${QUICK_SAN_VARIANTS:-B} " == *" ${names[$k]} "* ]] || continue
    san_dirs+=("${dirs[$k]}"); san_names+=("${names[$k]}")
done
for tool in memcheck racecheck; do
    step san || break
    for k in "${!san_dirs[@]}"; do
        d=${san_dirs[$k]} n=${san_names[$k]}
        timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
            "$d/tests/harness" --backend cuda --filter "${QUICK_SAN:-sdpa_tc_prefill_45tok}" >"$OUT/$tool-$n.txt" 2>&1
        say "$n $tool rc=$? (0 = clean) $(grep -E '^[0-9]+ passed' "$OUT/$tool-$n.txt" | tail -1) $(el)"
        if [ -n "${QUICK_SAN_ONE:-}" ]; then
            timeout 90 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
                "$d/tests/harness" --backend cuda --row-order one --filter "$QUICK_SAN_ONE" >"$OUT/$tool-one-$n.txt" 2>&1
            say "$n $tool one rc=$? (0 = clean) $(grep -E '^[0-9]+ passed' "$OUT/$tool-one-$n.txt" | tail -1) $(el)"
        fi
    done
done

if [ -x $B/tests/e2e/test_batch ] && step batch; then
    timeout 120 $B/tests/e2e/test_batch --backend cuda --model 20b --routing on --streams 64 >"$OUT/batch.txt" 2>&1
    say "B test_batch 20b x64 rc=$? $(grep -E 'batch invariance:' "$OUT/batch.txt" | sed 's/^ *//') $(el)"
fi

if [ -n "${QUICK_NCU:-}" ] && step ncu && command -v ncu >/dev/null; then
    for k in "${!dirs[@]}"; do
        [ "${names[$k]}" = B ] || [ -n "${QUICK_NCU_ALL:-}" ] || continue
        # shellcheck disable=SC2086
        timeout 150 bash tools/ncu_prefill.sh "${dirs[$k]}/bench/bench" $QUICK_NCU >"$OUT/ncu-${names[$k]}.txt" 2>&1
        say "${names[$k]} ncu rc=$? $(el)"
        tee -a "$OUT/sum.txt" <"$OUT/ncu-${names[$k]}.txt"
    done
fi
echo; echo "======== SUMMARY"; cat "$OUT/sum.txt"
