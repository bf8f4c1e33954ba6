#!/usr/bin/env bash
# One device call for a pending tree when the device is hard to get: the GPU script's checks
# on this tree's build (.gpu/b), then its A/B rows against a base build (.gpu/prev), then
# Nsight Compute on the kernels of ALL_NCU. Prepare on the development machine:
#
#   GPU_PREV_REV=main GPU_PREBUILD_PACK=1 bash tools/gpu-prebuild.sh    # .gpu/carry.tar.xz
#
# and call with carry [".gpu/carry.tar.xz"]: `bash tools/gpu-unpack.sh && bash tools/gpu-all.sh`.
# The verdicts go to $OUT/sum.txt and again at the end of stdout.
#   ALL_SKIP="..."     the GPU script's GPU_SKIP (default: everything but the checks)
#   ALL_SESSION_S=N    time limit of the GPU script (default 300)
#   ALL_BENCH="F ..."  kernel benchmark rows, both builds (gpu-ab.sh's GPU_AB_BENCH)
#   ALL_ENGINE="A;B"   engine runs, both builds (gpu-ab.sh's GPU_AB_ENGINE)
#   ALL_AB_S=N         time limit of the A/B rows (default 170)
#   ALL_NCU="ROW:KERNEL_REGEX ..."  Nsight Compute on that kernel in that benchmark row
#                      (tools/ncu_prefill.sh: time, throughputs, stalls), ALL_NCU_S=N limit (150),
#                      ALL_NCU_BENCH_ARGS="..." more bench arguments (e.g. "--row-order one")
#   ALL_EXTRA="CMD;;CMD"  more commands (apart at ';;') with .gpu/b/bin on the PATH, each up to
#                      ALL_EXTRA_S (60) s, its last ALL_EXTRA_LINES (12) lines in the summary,
#                      output in $OUT/extraN.txt (files under $OUT come back whole)
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
export OUT=${OUT:-/tmp/gpu-all}; mkdir -p "$OUT"
S=$OUT/sum.txt; : >"$S"
t0=$(date +%s); el() { echo "($(($(date +%s) - t0))s)"; }
echo "B = $(cat .gpu/b/REV 2>/dev/null || echo this tree), A = $(cat .gpu/prev/REV 2>/dev/null || echo none)" | tee -a "$S"
GPU_BUILD=.gpu/b GPU_WHEEL_DIR=.gpu/whl GPU_SKIP="${ALL_SKIP:-lab long cpu-scaling ncu profile depth parallel parallel-120b 120b bench 20b}" \
    timeout "${ALL_SESSION_S:-300}" bash tools/gpu-session.sh >"$OUT/session.txt" 2>&1
echo "GPU script rc=$? $(el)" | tee -a "$S"
if grep -q '^================ ' "$OUT/session.txt"; then
    sed -n '/^================ /,$p' "$OUT/session.txt" >>"$S"
else # stopped by ALL_SESSION_S before its table: the steps it finished (their lines end in "(Ns)")
    { echo "(no table: the steps that finished)"; grep -E '\([0-9]+s\)$' "$OUT/session.txt" | cut -c1-200 | tail -30; } >>"$S"
fi
grep -E '^FAIL' "$OUT/session.txt" | head -20 >>"$S"
if [ -x .gpu/prev/bin/gptoss ] && [ -n "${ALL_BENCH:-}${ALL_ENGINE:-}" ]; then
    GPU_AB_ROUNDS=1 GPU_AB_BENCH="${ALL_BENCH:-}" GPU_AB_ENGINE="${ALL_ENGINE:-}" timeout "${ALL_AB_S:-170}" \
        bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-160 | tee -a "$S"
    el | tee -a "$S"
fi
if [ -n "${ALL_NCU:-}" ] && command -v ncu >/dev/null; then
    # shellcheck disable=SC2086
    NCU_BENCH_ARGS="${ALL_NCU_BENCH_ARGS:-}" timeout "${ALL_NCU_S:-150}" bash tools/ncu_prefill.sh .gpu/b/bench/bench $ALL_NCU 2>&1 | tee "$OUT/ncu.txt" >>"$S"
    echo "ncu rc=${PIPESTATUS[0]} $(el)" | tee -a "$S"
fi
if [ -n "${ALL_EXTRA:-}" ]; then
    # more commands on this tree's build (bin/ on the PATH), each to $OUT/extraN.txt
    # commands apart at ';;' (a command may hold ';', loops included); each one's last lines
    # go to the summary too (the device returns only a few files)
    i=0
    rest="$ALL_EXTRA"
    while [ -n "$rest" ]; do
        run=${rest%%;;*}
        if [ "$run" = "$rest" ]; then rest=""; else rest=${rest#*;;}; fi
        [ -n "${run// /}" ] || continue
        i=$((i + 1))
        (PATH=$PWD/.gpu/b/bin:$PATH timeout "${ALL_EXTRA_S:-60}" bash -c "$run") >"$OUT/extra$i.txt" 2>&1
        echo "extra $i rc=$? $(el): $run (\$OUT/extra$i.txt)" | tee -a "$S"
        tail -n "${ALL_EXTRA_LINES:-12}" "$OUT/extra$i.txt" | cut -c1-200 | sed 's/^/  /' | tee -a "$S"
    done
fi
echo; echo "======== SUMMARY"; cat "$S"
