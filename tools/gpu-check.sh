#!/usr/bin/env bash
# One-call GPU check for the CUDA backend (run on the GPU machine from the repo root):
#   1. configure + build (Release, -DGPTOSS_CUDA=ON) into build/
#   2. the harness on the CUDA backend (full catalogue; GPU_CHECK_HARNESS_ARGS to change)
#   3. compute-sanitizer memcheck and racecheck over `harness --quick --backend cuda
#      --filter F` for a few small filters (GPU_CHECK_SANITIZE_FILTERS)
#   4. build/bench/bench --backend cuda and build/bench/cuda_bench (tools/cuda_bench.c)
#   5. a short summary table, printed last.
# Full logs go to $OUT (when set) as build.log, harness.log, memcheck.log, racecheck.log,
# bench.log, cuda_bench.log. Exit status: 0 when every step passed.
set -u
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gpu-check}
mkdir -p "$LOG"
JOBS=${JOBS:-$(nproc)}
HARNESS_ARGS=${GPU_CHECK_HARNESS_ARGS:---backend cuda}
FILTERS=${GPU_CHECK_SANITIZE_FILTERS:-odd 3of7 1of1 1tok}
declare -A RESULT
t0=$(date +%s)

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee "$LOG/gpu.txt"

echo "== build"
if cmake -S . -B build -DGPTOSS_CUDA=ON -DCMAKE_BUILD_TYPE=Release -DGPTOSS_BUILD_ENGINE=OFF >"$LOG/build.log" 2>&1 &&
   cmake --build build -j"$JOBS" >>"$LOG/build.log" 2>&1; then
    RESULT[build]=ok
else
    RESULT[build]=FAILED
    tail -30 "$LOG/build.log"
fi
echo "   build: ${RESULT[build]} ($(( $(date +%s) - t0 )) s)"

if [ -x build/tests/harness ]; then
    echo "== harness $HARNESS_ARGS"
    build/tests/harness $HARNESS_ARGS >"$LOG/harness.log" 2>&1
    rc=$?
    RESULT[harness]="rc=$rc; $(grep -E '[0-9]+ passed' "$LOG/harness.log" | tail -1)"
    grep -E '^FAIL' "$LOG/harness.log" | head -40
    echo "   harness: ${RESULT[harness]} ($(( $(date +%s) - t0 )) s)"

    for tool in memcheck racecheck; do
        echo "== compute-sanitizer --tool $tool"
        : >"$LOG/$tool.log"
        summary=""
        for f in $FILTERS; do
            compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 20 \
                build/tests/harness --quick --backend cuda --filter "$f" >>"$LOG/$tool.log" 2>&1
            rc=$?
            errs=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$LOG/$tool.log" | tail -1)
            summary="$summary [$f rc=$rc: ${errs#========= }]"
        done
        RESULT[$tool]="$summary"
        echo "   $tool:$summary ($(( $(date +%s) - t0 )) s)"
    done
else
    RESULT[harness]="no build/tests/harness"
fi

echo "== benchmarks"
if [ -x build/bench/bench ]; then
    build/bench/bench --backend cuda >"$LOG/bench.log" 2>&1
    RESULT[bench]="rc=$?"
fi
if [ -x build/bench/cuda_bench ]; then
    build/bench/cuda_bench >"$LOG/cuda_bench.log" 2>&1
    RESULT[cuda_bench]="rc=$?"
else
    RESULT[cuda_bench]="no build/bench/cuda_bench"
fi

echo
echo "================ summary ($(cat "$LOG/gpu.txt" | head -1)) ================"
for k in build harness memcheck racecheck bench cuda_bench; do
    printf '%-11s %s\n' "$k" "${RESULT[$k]:-skipped}"
done
[ -f "$LOG/bench.log" ] && tail -40 "$LOG/bench.log"
[ -f "$LOG/cuda_bench.log" ] && grep -v '^$' "$LOG/cuda_bench.log" | tail -60
echo "total $(( $(date +%s) - t0 )) s"
