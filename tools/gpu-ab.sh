#!/usr/bin/env bash
# A/B on the GPU machine: this tree's build (.gpu/b) against a base revision's (.gpu/prev,
# made by GPU_PREV_REV=REV tools/gpu-prebuild.sh), in one call on one card, alternated:
#
#   LD_LIBRARY_PATH=$PWD/.gpu/lib GPU_AB_BENCH="moe_dense qkv_batch" \
#       GPU_AB_ENGINE="--parallel 64 -p 128 -n 64;-d 32768 -p 512 -n 32" bash tools/gpu-ab.sh
#
#   GPU_AB_HARNESS="F ..."  first, the CUDA harness cases matching each filter, and
#                           test_invariance, with this tree's build (the changed kernels)
#   GPU_AB_BENCH="F ..."    kernel benchmark rows matching each filter, both builds
#   GPU_AB_ENGINE="A;B"     gptoss bench --random 20b --backend cuda runs (';' between runs),
#                           both builds (-r 1 unless the arguments say otherwise)
#   GPU_AB_MODEL=PRESET     the engine runs' random model (default 20b)
#   GPU_AB_ROUNDS=N         rounds of the alternation (default 2)
# Carry .gpu/b, .gpu/lib and .gpu/prev. Prints everything to stdout (the device returns
# few files).
set -u
cd "$(dirname "$0")/.."
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
rounds=${GPU_AB_ROUNDS:-2}
label() { if [ "$1" = prev ]; then echo A; else echo B; fi; }
[ -x .gpu/prev/bin/gptoss ] || { echo "gpu-ab: no base build in .gpu/prev (GPU_PREV_REV=REV tools/gpu-prebuild.sh)"; exit 2; }
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
echo "A = base $(cat .gpu/prev/REV 2>/dev/null), B = this tree"
for f in ${GPU_AB_HARNESS:-}; do
    echo "== harness --backend cuda --filter $f (B)"
    .gpu/b/tests/harness --backend cuda --filter "$f" 2>&1 | grep -E '^FAIL|passed'
done
if [ -n "${GPU_AB_HARNESS:-}" ]; then
    echo "== test_invariance (B)"
    .gpu/b/tests/test_invariance 2>&1 | grep -E '^FAIL|passed'
fi
for f in ${GPU_AB_BENCH:-}; do
    echo "== bench --filter $f"
    for r in $(seq "$rounds"); do
        for v in prev b; do
            .gpu/$v/bench/bench --backend cuda --filter "$f" -n 30 2>&1 | grep -F "$f" | sed "s/^/$(label $v) r$r /"
        done
    done
done
IFS=';' read -ra runs <<<"${GPU_AB_ENGINE:-}"
for a in "${runs[@]}"; do
    [ -n "${a// /}" ] || continue
    case " $a " in *" -r "*) ra="";; *) ra="-r 1";; esac
    echo "== gptoss bench --random ${GPU_AB_MODEL:-20b} --backend cuda $a $ra"
    for r in $(seq "$rounds"); do
        for v in prev b; do
            # shellcheck disable=SC2086
            timeout 150 .gpu/$v/bin/gptoss bench --random "${GPU_AB_MODEL:-20b}" --backend cuda $a $ra 2>&1 | grep -E '^\|' |
                grep -E 'pp|tg|ttft' | sed "s/^/$(label $v) r$r /"
        done
    done
done
