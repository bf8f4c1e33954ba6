#!/usr/bin/env bash
# The first card call of docs/pending/ in a short budget (~7 minutes on an H100): this tree
# (main + the patches, .gpu/b) against main (.gpu/prev), the checks first and the A/B rows
# after, so that a call cut short by the device's time still returns the verdicts (in
# $OUT/sum.txt and again at the end of stdout). tools/gpu-pending.sh is the full form.
# Prepare with `GPU_PREV_REV=main GPU_PREBUILD_PACK=1 bash tools/gpu-prebuild.sh`, carry
# [".gpu/carry.tgz"] and run `tar -xzf .gpu/carry.tgz && bash tools/gpu-checks-first.sh`
# (or, slim: GPU_PREBUILD_SLIM=1, cp .gpu/build/tests/e2e/test_batch .gpu/b/tests/e2e/, carry
# .gpu/b, .gpu/lib, .gpu/prev). The verdicts that decide a merge (harness moe in both row
# orders, test_invariance, test_batch at 64 streams, the first A/B rows) come in the first
# ~4-5 minutes; memcheck, racecheck and more rows after them.
set -u
export LD_LIBRARY_PATH=$PWD/.gpu/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
S=${OUT:-/tmp}/sum.txt; : > "$S"
t0=$(date +%s); el() { echo "($(($(date +%s) - t0))s)"; }
echo "GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)" | tee -a "$S"
H=.gpu/b/tests/harness
echo "harness moe (B): $($H --backend cuda --filter moe 2>&1 | grep -E '^FAIL|passed' | tr '\n' ' ')" | cut -c1-600 | tee -a "$S"
echo "harness moe many (B): $($H --backend cuda --row-order many --filter moe 2>&1 | grep -E '^FAIL|passed' | tr '\n' ' ')" | cut -c1-600 | tee -a "$S"
echo "harness quick matmul etc (B): $($H --backend cuda --quick --filter matmul,dense_,qkv,unembedding 2>&1 | grep -E '^FAIL|passed' | tr '\n' ' ') $(el)" | cut -c1-600 | tee -a "$S"
echo "test_invariance (B): $(.gpu/b/tests/test_invariance 2>&1 | grep -E '^FAIL|passed' | cut -c1-200 | tr '\n' ' ') $(el)" | tee -a "$S"
tb() {
  .gpu/b/tests/e2e/test_batch --backend cuda --model $1 --streams 64 > /tmp/tb.log 2>&1
  echo "test_batch $1: rc=$? $(grep -E '^seed' /tmp/tb.log | head -1) $(grep -E 'batch invariance:|^FAIL' /tmp/tb.log | head -4 | tr '\n' ' ') $(tail -1 /tmp/tb.log) $(el)" | cut -c1-500 | tee -a "$S"
}
tb "tiny --invariant many"; tb "20b --routing on --invariant many"; tb "20b --routing on"
GPU_AB_ROUNDS=1 GPU_AB_ENGINE="--parallel 64 -p 128 -n 64 -r 1 --batch-invariant many;--parallel 1 -p 128 -n 64 -r 1 --batch-invariant many;--parallel 64 -p 128 -n 64 -r 1;--parallel 16 -p 128 -n 64 -r 1" \
  bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-160 | tee -a "$S"; el | tee -a "$S"
san=moe_dense_swiglu_16row_tiles,moe_dense_matmul_16row_tiles,moe_dense_swiglu_20b_decode_1tok_4of32_2880,moe_dense_swiglu_tiny_scales_2of3_cols64,qkv_20b_decode,dense_attn_out_20b_decode
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 5 $H --backend cuda --filter "$san" > /tmp/san.log 2>&1
echo "memcheck rc=$? $(grep -E '^[0-9]+ passed|SUMMARY' /tmp/san.log | tr '\n' ' ') $(el)" | tee -a "$S"
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 99 --print-limit 5 $H --backend cuda --row-order many --filter moe_swiglu_3of7,moe_matmul_3of7,fault_expert_id,moe_swiglu_20b_decode > /tmp/san.log 2>&1
echo "memcheck many rc=$? $(grep -E '^[0-9]+ passed|SUMMARY' /tmp/san.log | tr '\n' ' ') $(el)" | tee -a "$S"
GPU_AB_ROUNDS=1 GPU_AB_BENCH="moe_dense_swiglu_20b_decode_x64 moe_dense_matmul_20b_decode_x64 moe_swiglu_20b_prefill64 moe_matmul_20b_prefill64 moe_swiglu_20b_batch16 moe_dense_swiglu_20b_decode_1tok" bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-160 | tee -a "$S"; el | tee -a "$S"
tb "tiny"
timeout 100 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 5 $H --backend cuda --filter "$san" > /tmp/san.log 2>&1
echo "racecheck rc=$? $(grep -E '^[0-9]+ passed|SUMMARY' /tmp/san.log | tr '\n' ' ') $(el)" | tee -a "$S"
timeout 60 compute-sanitizer --tool racecheck --error-exitcode 99 --print-limit 5 $H --backend cuda --row-order many --filter moe_swiglu_3of7,moe_swiglu_20b_decode > /tmp/san.log 2>&1
echo "racecheck many rc=$? $(grep -E '^[0-9]+ passed|SUMMARY' /tmp/san.log | tr '\n' ' ') $(el)" | tee -a "$S"
GPU_AB_ROUNDS=1 GPU_AB_ENGINE="--parallel 4 -p 128 -n 64 -r 1 --batch-invariant many;-p 16 -n 128 -r 1" bash tools/gpu-ab.sh 2>&1 | grep -vE '^(GPU|A = )' | cut -c1-160 | tee -a "$S"; el | tee -a "$S"
echo; echo "======== SUMMARY"; cat "$S"
