#!/usr/bin/env bash
# The first card call of the CUDA changes kept in docs/pending/ (written, compiled, never run
# on a GPU): this tree (main + the patches, .gpu/b) against main (.gpu/prev), in one call of
# up to nine minutes on an H100 (steps 1-3 alone took 217 s in the ninth sitting), everything
# on stdout (the device returns its last 12,000 characters) but the labs' tables, which go
# to files in $OUT. Prepare on the development
# machine:
#
#   git switch -c pending main && git am docs/pending/NAME.patch ...   (docs/TEAM_NOTES.md: the order)
#   GPU_PREBUILD_SLIM=1 GPU_PREV_REV=main bash tools/gpu-prebuild.sh   (slim: the carry limit)
#
# then on the device (carry .gpu/b, .gpu/lib, .gpu/prev, and .gpu/lab for step 0):
#   bash tools/gpu-pending.sh
#   0. the wgmma labs, when built (bench/lab/wgmma_lab.cu, wgmma_latency_lab.cu) and step_floor
#   1. SDPA over 131,000 keys, both builds (the *_positive_v cases: the tensor-core prefill's
#      drift that the ninth sitting fixed must not come back; docs/CUDA_NOTES.md)
#   2. the patched build: the harness's sdpa, moe, matmul and qkv cases on CUDA, test_invariance
#   3. the patched build: racecheck and memcheck over the changed kernels' cases
#   4-5. both builds, while time is left (GPU_PENDING_S, default 540 s): the kernel benchmark
#      rows each patch targets; 20b decode at 64 streams, 20b pp512 and pp2048, 120b pp512
#      (tools/gpu-ab.sh)
#   6-7. the patched build, while time is left: long_context.py (131,000 tokens, CUDA vs CPU),
#      the transformers comparison at head_dim 64; Nsight Compute on the prefill kernels
#      (tools/ncu_prefill.sh)
# Then the full tools/gpu-session.sh on whatever is merged.
set -u
cd "$(dirname "$0")/.." || exit 1
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
LOG=${OUT:-/tmp/gpu-pending}
mkdir -p "$LOG"
t0=$(date +%s)
el() { echo "$(($(date +%s) - t0))s"; }
# the checks' verdicts, printed again last: the device returns only the last 12,000
# characters of stdout, which the A/B rows alone can fill
SUM="$LOG/summary.txt"
: >"$SUM"
keep() { tee -a "$SUM"; }
[ -x .gpu/prev/tests/harness ] || { echo "gpu-pending: no base build in .gpu/prev (GPU_PREV_REV=main tools/gpu-prebuild.sh)"; exit 2; }
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)"
echo "A = $(cat .gpu/prev/REV 2>/dev/null), B = this tree"

if [ -x .gpu/lab/wgmma_lab ]; then
    echo "== 0. the wgmma lab's MoE part (bits, float64, speed; the whole lab takes over 120 s)"
    timeout 120 .gpu/lab/wgmma_lab --moe-only --iters 10 2>&1 | grep -vE '^$' | cut -c1-200 >"$LOG/wgmma_lab.txt"; tail -4 "$LOG/wgmma_lab.txt"
    echo "($(el))"
fi
if [ -x .gpu/lab/wgmma_latency_lab ]; then
    echo "== 0a. what bounds a k-stage of the wgmma GEMMs"
    timeout 90 .gpu/lab/wgmma_latency_lab 2>&1 | cut -c1-400 >"$LOG/wgmma_latency_lab.txt"; tail -4 "$LOG/wgmma_latency_lab.txt"
fi
if [ -x .gpu/lab/step_floor ]; then
    echo "== 0b. the decode step's floor with the engine's op sizes (20b, depth 0)"
    timeout 60 .gpu/lab/step_floor --preset 20b >"$LOG/step_floor.txt" 2>&1; tail -4 "$LOG/step_floor.txt"
fi

echo "== 1. SDPA over 131,000 keys (case, max error, tolerance, share of it)"
label() { if [ "$1" = prev ]; then echo A; else echo B; fi; }
for v in prev b; do
    .gpu/$v/tests/harness --table --backend cuda --filter positive_v,after131000 2>&1 | grep -E 'f32_sdpa' |
        awk -v l="$(label $v)" '{print l, $NF, $(NF-6), $(NF-5), $(NF-4), $(NF-3)}'
done

# the call's time: each later step runs only if its usual time is left (GPU_PENDING_S, default
# 540 s of the device's 600)
left() { echo $((${GPU_PENDING_S:-540} - ($(date +%s) - t0))); }

echo "== 2. B: harness (sdpa, moe, matmul, qkv, dense, topk), test_invariance, test_fused"
GPU_AB_HARNESS="sdpa,moe,matmul,qkv,dense_,topk" bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-150 |
    tee "$LOG/step2.txt"
grep -E '^FAIL|passed' "$LOG/step2.txt" | sed 's/^/step 2: /' >>"$SUM"
echo "test_fused (B): $(.gpu/b/tests/test_fused 2>&1 | grep -E '^[0-9]+ passed' | tail -1)" | keep
echo "($(el))"

echo "== 2b. A/B: the engine's logits bit for bit (tiny model, head_dim 64, 3,000-token prompt, 8"
echo "   greedy steps on CUDA: prefill and decode over the chunked attention; a patch meant to"
echo "   keep the bits must print 'identical')"
if [ -x .gpu/prev/tests/e2e/dump_logits ] && .gpu/b/bin/gptoss make-model --preset tiny --head-dim 64 --context 4096 \
    --seed 5 --quiet /tmp/ab64.bin; then
    for v in prev b; do
        .gpu/$v/tests/e2e/dump_logits /tmp/ab64.bin /tmp/ab-$v.lg --random-prompt 3000 --steps 8 --backend cuda \
            >/dev/null 2>&1 || echo "dump_logits ($v) failed"
    done
    if cmp -s /tmp/ab-prev.lg /tmp/ab-b.lg; then echo "logits A vs B: identical ($(stat -c %s /tmp/ab-b.lg) bytes)"; else
        echo "logits A vs B: DIFFERENT ($(cmp /tmp/ab-prev.lg /tmp/ab-b.lg | head -1))"; fi | keep
else
    echo "skipped (no dump_logits in .gpu/prev: tools/gpu-prebuild.sh with GPU_PREV_REV)"
fi
echo "($(el))"

echo "== 3. B: racecheck and memcheck over the changed kernels"
san="sdpa_tc_prefill_37tok,sdpa_tc_prefill_45tok,sdpa_tc_prefill_140tok,sdpa_varlen_in_order_fault_none_entry_window48"
san="$san,sdpa_varlen_mixed_prefill_decode_bs16,sdpa_varlen_fault_none_entry_10,sdpa_varlen_rows_of_12000"
san="$san,moe_dense_swiglu_16row_tiles,moe_dense_matmul_16row_tiles,moe_dense_swiglu_32row_tiles,moe_dense_matmul_32row_tiles,moe_dense_swiglu_tiny_scales_2of3_cols64"
san="$san,moe_dense_swiglu_64row_tiles_odd_blocks,moe_dense_matmul_64row_tiles_odd_blocks,matmul_tc_ring_bn128"
san="$san,moe_swiglu_3of7_19tok,moe_matmul_3of7_19tok,moe_swiglu_fault_expert_id,moe_matmul_fault_expert_id"
timeout 120 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 5 \
    .gpu/b/tests/harness --backend cuda --filter "$san" >"$LOG/racecheck.log" 2>&1
echo "racecheck rc=$? (0 = clean) $(grep -E '^[0-9]+ passed|RACECHECK SUMMARY' "$LOG/racecheck.log" | tr '\n' ' ') ($(el))" | keep
timeout 90 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 5 \
    .gpu/b/tests/harness --backend cuda --filter "$san" >"$LOG/memcheck.log" 2>&1
echo "memcheck rc=$? (0 = clean) $(grep -E '^[0-9]+ passed|ERROR SUMMARY' "$LOG/memcheck.log" | tr '\n' ' ') ($(el))" | keep

# tools/gpu-ab.sh with its knobs (VAR=value ...), one round, if $1 seconds are left
ab() {
    if [ "$(left)" -gt "$1" ]; then
        env GPU_AB_ROUNDS=1 "${@:2}" timeout $(($(left) - 10)) bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-150
    else
        echo "skipped (time)"
    fi
    echo "($(el))"
}
echo "== 4. A/B: the kernel benchmark rows each patch targets (one round)"
ab 150 "GPU_AB_BENCH=moe_swiglu_20b_batch16 moe_matmul_20b_batch16 moe_swiglu_20b_batch4 moe_swiglu_20b_prefill64
    moe_matmul_20b_prefill64 moe_swiglu_20b_decode_4of32 moe_matmul_20b_decode_4of32
    sdpa_varlen_20b_prefill512_after32256_full sdpa_varlen_20b_decode_1seq_32768_full
    sdpa_varlen_20b_decode_1seq_4096 moe_dense_swiglu_20b_decode_x64 moe_dense_matmul_20b_decode_x64
    moe_dense_swiglu_120b_prefill512_4of128_2880 moe_dense_matmul_120b_prefill512_4of128_2880
    moe_dense_swiglu_20b_prefill512_4of32_2880 moe_dense_matmul_20b_prefill512_4of32_2880
    dense_qkv_20b_prefill512 dense_attn_out_20b_prefill512 dense_qkv_20b_decode dense_attn_out_20b_decode
    qkv_20b_decode_pos4096 moe_dense_swiglu_20b_decode_1tok moe_dense_matmul_20b_decode_1tok
    moe_dense_swiglu_20b_prefill16 moe_dense_matmul_20b_prefill16"
echo "== 5. A/B: 20b decode at 1, 4, 16 and 64 streams (64 also in many and off, 1 in many), 20b pp512 and pp2048, tg64 after 32,768 tokens (one round)"
ab 100 "GPU_AB_ENGINE=-p 16 -n 128 -r 1;--parallel 4 -p 128 -n 64 -r 1;--parallel 16 -p 128 -n 64 -r 1;--parallel 64 -p 128 -n 64 -r 1;--parallel 64 -p 128 -n 64 -r 1 --batch-invariant many;--parallel 1 -p 128 -n 64 -r 1 --batch-invariant many;--parallel 64 -p 128 -n 64 -r 1 --batch-invariant off;-p 512 -n 0 -r 1;-p 2048 -n 0 -r 1 -b 2048;-d 32768 -p 16 -n 64 -r 1"
echo "== 5b. A/B: 120b pp512 (one round)"
ab 120 "GPU_AB_ENGINE=-p 512 -n 0 -r 1" GPU_AB_MODEL=120b

echo "== 5c. A/B: decode GPU time per kernel (Nsight Compute, tools/ncu_decode.py; the first rows)"
if [ "$(left)" -gt 150 ] && command -v ncu >/dev/null; then
    for v in prev b; do
        echo "$(label $v):"; timeout 70 python3 tools/ncu_decode.py .gpu/$v 2>&1 | head -12 | cut -c1-150
    done
else
    echo "ncu_decode: skipped (time, or no ncu)"
fi
echo "($(el))"

echo "== 6. B: long context (131,000 tokens, CUDA vs CPU), transformers at head_dim 64"
if [ "$(left)" -gt 180 ]; then
    timeout $(($(left) - 5)) python3 tests/e2e/long_context.py --gptoss .gpu/b/bin/gptoss \
        --dump .gpu/b/tests/e2e/dump_logits --backends cpu,cuda 2>&1 | tail -3
else
    echo "long_context: skipped (time)"
fi
if [ "$(left)" -gt 60 ]; then
    .gpu/b/bin/gptoss make-model --preset tiny --head-dim 64 --seed 3 --quiet /tmp/tiny64.bin &&
        timeout $(($(left) - 5)) python3 tests/e2e/hf_compare.py --gptoss .gpu/b/bin/gptoss \
            --dump .gpu/b/tests/e2e/dump_logits --model /tmp/tiny64.bin --cuda on 2>&1 | grep -E '^(PASS|FAIL|SKIP)' | tail -6
else
    echo "hf_compare: skipped (time)"
fi

echo "== 7. B: ncu of the prefill kernels"
if [ "$(left)" -gt 60 ] && command -v ncu >/dev/null; then
    timeout $(($(left) - 5)) bash tools/ncu_prefill.sh .gpu/b/bench/bench
else
    echo "ncu: skipped (time, or no ncu)"
fi
echo "==== the checks again (A = $(cat .gpu/prev/REV 2>/dev/null | cut -c1-10), B = this tree)"
cat "$SUM"
echo "done ($(el))"
