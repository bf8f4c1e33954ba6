#!/usr/bin/env bash
# The shortest device call for a pending tree (when little device time is left): the CUDA
# harness and test_invariance on the kernels a change touches, test_batch's bitwise checks at
# 64 streams, then A/B rows against the base build. From the packed archive of
# `GPU_PREV_REV=main GPU_PREBUILD_PACK=1 bash tools/gpu-prebuild.sh`, carry [".gpu/carry.tgz"]:
#
#   tar -xzf .gpu/carry.tgz && bash tools/gpu-quick.sh
#
#   QUICK_FILTER="F,..."  harness filters, both row orders (default moe)
#   QUICK_BATCH="A;B"     test_batch runs at 64 streams (default: tiny many, 20b on, 20b many)
#   QUICK_BENCH / QUICK_ENGINE / QUICK_AB_S   gpu-ab.sh's rows (one round) and its time limit
# Everything also goes to $OUT (files under $OUT come back whole).
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
export OUT=${OUT:-/tmp/gpu-quick}; mkdir -p "$OUT"
B=.gpu/b
t0=$(date +%s); el() { echo "($(($(date +%s) - t0))s)"; }
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
echo "B = $(cat $B/REV 2>/dev/null || echo this tree), A = $(cat .gpu/prev/REV 2>/dev/null || echo none)"
for order in auto many; do
    timeout 120 $B/tests/harness --backend cuda --row-order $order --filter "${QUICK_FILTER:-moe}" >"$OUT/harness-$order.txt" 2>&1
    echo "harness ${QUICK_FILTER:-moe} order $order: rc=$? $(grep -E '^[0-9]+ passed' "$OUT/harness-$order.txt" | tail -1) $(el)"
    grep -E '^FAIL' "$OUT/harness-$order.txt" | head -10
done
timeout 120 $B/tests/test_invariance >"$OUT/invariance.txt" 2>&1
echo "test_invariance: rc=$? $(tail -1 "$OUT/invariance.txt" | cut -c1-80) $(el)"
grep -E '^FAIL' "$OUT/invariance.txt" | head -10
IFS=';' read -ra batch_runs <<<"${QUICK_BATCH:-tiny --invariant many;20b --routing on;20b --routing on --invariant many}"
i=0
for run in "${batch_runs[@]}"; do
    i=$((i + 1))
    # shellcheck disable=SC2086
    timeout 90 $B/tests/e2e/test_batch --backend cuda --model $run --streams 64 >"$OUT/batch$i.txt" 2>&1
    echo "test_batch $run: rc=$? $(grep -E 'batch invariance:' "$OUT/batch$i.txt" | sed 's/^ *//' | cut -c1-90) $(el)"
    grep -E '^FAIL' "$OUT/batch$i.txt" | head -5
done
if [ -x .gpu/prev/bin/gptoss ] && [ -n "${QUICK_BENCH:-}${QUICK_ENGINE:-}" ]; then
    GPU_AB_ROUNDS=1 GPU_AB_BENCH="${QUICK_BENCH:-}" GPU_AB_ENGINE="${QUICK_ENGINE:-}" timeout "${QUICK_AB_S:-120}" \
        bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-160 | tee "$OUT/ab.txt"
    el
fi
