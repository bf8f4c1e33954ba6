#!/usr/bin/env bash
# Everything the GPU machine must check, in one call, in about five minutes:
#   build (or take a prebuilt tree), the full harness on CUDA and on the machine's best CPU
#   variant, compute-sanitizer memcheck + racecheck over small cases of every family and the
#   tensor-core GEMM paths, the engine end to end (CUDA logits = CPU logits = transformers'
#   GptOssForCausalLM on a tiny random model), the Python tests on torch CUDA tensors, the
#   kernel benchmark, the batch-invariance lab (bench/lab/tc_gemv_lab.cu, when built),
#   gpt-oss-20b / -120b shaped decode and prefill with random weights, and
#   many sequences in one batch (what of batch invariance holds on CUDA; gptoss bench
#   --parallel 1/4/16/64 on 20b and 120b: aggregate and per-stream decode, TTFT under load).
# Prints a short table last. Logs under $OUT (or /tmp/gpu-session).
#
#   GPU_BUILD=DIR      use an existing build tree (configured with -DGPTOSS_CUDA=ON) instead
#                      of building into build-gpu/ (tools/gpu-prebuild.sh makes one to carry)
#   GPU_WHEEL_DIR=DIR  a directory with a gpt_oss_kernels wheel built with CUDA (else pip
#                      builds one from the tree, without build isolation)
#   GPU_LAB=DIR        where the built labs are (default $GPU_BUILD/bench; tools/gpu-prebuild.sh
#                      puts them in .gpu/lab, carried on its own: the labs step runs those found)
#   GPU_SKIP=LIST      steps to skip (words: checks cpu-harness sanitize e2e sampling batch python bench lab
#                      20b 120b depth long parallel parallel-120b profile ncu cpu-scaling)
#   GPU_CPU_THREADS="N ..."  thread counts of the host-CPU scaling step (default "1 2 4 8 16":
#                      tools/cpu-scaling.sh after every GPU step, ~2 min)
#   GPU_DEPTHS="D ..."  context depths of the 20b long-context step (default "4096 32768 130000":
#                      pp512 and tg128 after D tokens, gptoss bench -d; 130,000 as llama-bench's
#                      deepest run, since D + 512 must fit the 131,072-token context; that
#                      depth alone prefills for minutes at today's speed)
#   GPU_AB="VAR=value FILTER"  also run the harness cases matching FILTER, their benchmark
#                      and the 20b engine bench with VAR=value (an alternative kernel path)
set -u
cd "$(dirname "$0")/.."
LOG=${OUT:-/tmp/gpu-session}
mkdir -p "$LOG"
B=${GPU_BUILD:-build-gpu}
SKIP=" ${GPU_SKIP:-} "
LAB=${GPU_LAB:-$B/bench}
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib:${LD_LIBRARY_PATH:-}
export GPTOSS_VOCAB=$PWD/data/o200k_base.tiktoken
declare -A R
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 ))s"; }
skip() { [[ "$SKIP" == *" $1 "* ]]; }

GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)
echo "GPU: $GPU"

if [ -z "${GPU_BUILD:-}" ]; then
    cmake -S . -B "$B" -DGPTOSS_CUDA=ON -DCMAKE_BUILD_TYPE=Release >"$LOG/build.log" 2>&1 &&
        cmake --build "$B" -j"$(nproc)" >>"$LOG/build.log" 2>&1 && R[build]=ok || R[build]=FAILED
else
    R[build]="prebuilt $B"
fi

# CPU harness (the machine's best variant: AVX-512 on the GPU hosts) in the background.
if ! skip cpu-harness; then
    ( "$B"/tests/harness --backend avx512 --threads 4 >"$LOG/harness-avx512.log" 2>&1; echo $? >"$LOG/harness-avx512.rc" ) &
    cpu_pid=$!
fi

# the CUDA harness in both row orders, test_graph, test_fused, test_invariance (GPU_SKIP=checks:
# a call that has run them on this build already)
if ! skip checks; then
    "$B"/tests/harness --backend cuda >"$LOG/harness-cuda.log" 2>&1
    R[harness-cuda]="rc=$? $(grep -E '^[0-9]+ passed' "$LOG/harness-cuda.log" | tail -1)"
    grep -E '^FAIL' "$LOG/harness-cuda.log" | head -20
    echo "harness-cuda: ${R[harness-cuda]} ($(el))"

    # every CUDA case again in row order many (harness --row-order: the kernels' arithmetic of
    # that order, e.g. the per-pair MoE entries on moe_tcv_kernel, against the same reference)
    "$B"/tests/harness --backend cuda --row-order many >"$LOG/harness-cuda-many.log" 2>&1
    R[harness-cuda-many]="rc=$? $(grep -E '^[0-9]+ passed' "$LOG/harness-cuda-many.log" | tail -1)"
    grep -E '^FAIL' "$LOG/harness-cuda-many.log" | head -20
    echo "harness-cuda-many: ${R[harness-cuda-many]} ($(el))"

    "$B"/tests/test_graph >"$LOG/graph.log" 2>&1
    R[graph]="rc=$? $(tail -1 "$LOG/graph.log")"
    grep -E '^FAIL' "$LOG/graph.log" | head
    "$B"/tests/test_fused >"$LOG/fused.log" 2>&1
    R[fused]="rc=$? $(tail -1 "$LOG/fused.log" | cut -c1-60)"
    grep -E '^FAIL' "$LOG/fused.log" | head

    # The MoE kernels' invariance on CUDA too (tests/test_invariance.c: a pair alone = in a
    # block, bit for bit, which on CUDA compares the GEMM's 16- and 64-row tiles; two runs equal).
    "$B"/tests/test_invariance >"$LOG/invariance.log" 2>&1
    R[invariance]="rc=$? $(tail -1 "$LOG/invariance.log" | cut -c1-60)"
    grep -E '^FAIL' "$LOG/invariance.log" | head
fi

if ! skip sanitize; then
    san_cases="odd_3 region unembedding_prefill130 sdpa_gqa4 sdpa_tc_prefill_37tok sdpa_tc_prefill_45tok sdpa_tc_prefill_50tok_after2020 sdpa_varlen_in_order_fault_none_entry_window48 sdpa_varlen_in_order_fault_none_entry_full_2chunks sdpa_varlen_mixed_prefill_decode_bs16 sdpa_varlen_hd128_gqa4_window19 sdpa_varlen_fault_none_entry_10 sdpa_varlen_fault_seq_id_past moe_swiglu_3of7 moe_swiglu_fault_expert_id_64tok moe_matmul_odd_rows_2881_13tok moe_dense_swiglu_3of7 moe_dense_matmul_64tok moe_dense_swiglu_16row_tiles moe_dense_swiglu_32row_tiles moe_dense_swiglu_64row_tiles moe_dense_matmul_16row_tiles moe_dense_matmul_32row_tiles matmul_tc_ring matmul_add_tc_ring routing_3of7 sample_odd sample_logits_inf_nan_2881ch_topp penalties_odd accumulate_rmsnorm_vec1 gate_no_bias_5of200 gate_20b_decode"
    for tool in memcheck racecheck; do
        # every case in one process (the device and the tool start once; racecheck of the
        # 2881-channel sampler case alone takes ~120 s on an H200)
        timeout 480 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
            "$B"/tests/harness --backend cuda --filter "${san_cases// /,}" >"$LOG/$tool.log" 2>&1
        rc=$?
        [ $rc = 124 ] && rc=timeout
        s="all:$rc"
        # a filter that selects no CUDA case would pass silently
        missing=""
        for f in $san_cases; do grep -qE "^(PASS|FAIL) [^ ]*$f[^ ]* cuda " "$LOG/$tool.log" || missing="$missing $f"; done
        [ -n "$missing" ] && s="$s no-case:$missing"
        if [ "$rc" = 99 ]; then
            # the tool found errors: which case, each alone
            s="$s; alone:"
            for f in $san_cases; do
                timeout 180 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
                    "$B"/tests/harness --backend cuda --filter "$f" >"$LOG/san-case.log" 2>&1
                r=$?
                cat "$LOG/san-case.log" >>"$LOG/$tool-alone.log"
                [ $r = 0 ] || s="$s $f:$r"
            done
        fi
        R[$tool]="$s (rc 0 = clean)"
        echo "$tool: $s ($(el))"
        # the per-pair MoE entries in row order many (moe_tcv_kernel's pair form)
        timeout 180 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
            "$B"/tests/harness --backend cuda --row-order many \
            --filter moe_swiglu_3of7,moe_matmul_3of7,moe_swiglu_fault_expert_id_8tok,moe_swiglu_20b_decode \
            >"$LOG/$tool-many.log" 2>&1
        R[$tool-many]="rc=$? $(grep -E '^[0-9]+ passed' "$LOG/$tool-many.log" | tail -1) (rc 0 = clean)"
        echo "$tool-many: ${R[$tool-many]} ($(el))"
        # row order one over token tiles (gemv_one_staged_kernel: 8 tokens' x in shared
        # memory, in two pieces at 4,096 columns; rows % 4 != 0 and a last tile of 1 token)
        timeout 180 compute-sanitizer --tool $tool --error-exitcode 99 --print-limit 10 \
            "$B"/tests/harness --backend cuda --row-order one \
            --filter matmul_tc_ring_40tok_2880x300,matmul_tc_ring_bn64_33tok_264x8449,matmul_add_tc_ring_97tok_4096x130,unembedding_prefill130 \
            >"$LOG/$tool-one.log" 2>&1
        R[$tool-one]="rc=$? $(grep -E '^[0-9]+ passed' "$LOG/$tool-one.log" | tail -1) (rc 0 = clean)"
        echo "$tool-one: ${R[$tool-one]} ($(el))"
    done
fi

if ! skip e2e; then
    # head_dim 64 as in gpt-oss: the CUDA attention's fast paths (flash-decoding, the
    # tensor-core prefill of hf_compare's 117-token prompt) need it; the tiny preset's 16 runs
    # the generic kernel. Both are compared with transformers.
    "$B"/bin/gptoss make-model --preset tiny --seed 3 --quiet /tmp/tiny.bin >"$LOG/e2e.log" 2>&1
    "$B"/bin/gptoss make-model --preset tiny --head-dim 64 --seed 3 --quiet /tmp/tiny64.bin >>"$LOG/e2e.log" 2>&1
    python3 tests/e2e/hf_compare.py --gptoss "$B"/bin/gptoss --dump "$B"/tests/e2e/dump_logits \
        --model /tmp/tiny64.bin --cuda on >>"$LOG/e2e.log" 2>&1
    rc64=$?
    python3 tests/e2e/hf_compare.py --gptoss "$B"/bin/gptoss --dump "$B"/tests/e2e/dump_logits \
        --model /tmp/tiny.bin --cuda on >>"$LOG/e2e.log" 2>&1
    R[e2e-hf]="rc=$? (head_dim 16), rc=$rc64 (head_dim 64)"
    grep -E "^(PASS|FAIL|SKIP)" "$LOG/e2e.log" | tail -12
    echo "e2e: ${R[e2e-hf]} ($(el))"
    # Graphs, PDL and the fused decode kernels change how kernels are launched, never what
    # they compute: the logits of a prompt + 32 greedy steps must be bit-identical with all
    # three off.
    "$B"/tests/e2e/dump_logits /tmp/tiny.bin /tmp/logits-default.bin --backend cuda --steps 32 >>"$LOG/e2e.log" 2>&1
    "$B"/tests/e2e/dump_logits /tmp/tiny.bin /tmp/logits-direct.bin --backend cuda --steps 32 \
        --graphs 0 --pdl 0 --fused-ops 0 >>"$LOG/e2e.log" 2>&1
    if cmp -s /tmp/logits-default.bin /tmp/logits-direct.bin && [ -s /tmp/logits-default.bin ]; then
        R[graph-bitexact]="identical ($(stat -c %s /tmp/logits-default.bin) bytes of logits and tokens)"
    else
        R[graph-bitexact]="DIFFERENT"
    fi
fi

# Sampling on the device: host and kernel sampling draw the same tokens (tiny model, CUDA
# logits), and 20b decode with top-p + penalties, the logits copied to the host vs drawn on
# the device.
if ! skip sampling; then
    [ -f /tmp/tiny.bin ] || "$B"/bin/gptoss make-model --preset tiny --seed 3 --quiet /tmp/tiny.bin >"$LOG/sampling.log" 2>&1
    "$B"/tests/e2e/test_sampling /tmp/tiny.bin --backend cuda >>"$LOG/sampling.log" 2>&1
    R[sampling]="rc=$? $(tail -1 "$LOG/sampling.log")"
    grep -E '^FAIL' "$LOG/sampling.log" | head
    for w in host kernels; do
        "$B"/bin/gptoss bench --random 20b --backend cuda -p 16 -n 128 -r 2 --temp 1 --top-p 0.9 \
            --presence-penalty 0.5 --sampler $w >"$LOG/engine-20b-sample-$w.log" 2>&1
        R[sample-$w]="rc=$? $(grep -E 'tg128' "$LOG/engine-20b-sample-$w.log" | awk -F'|' '{printf "%s", $6}')"
    done
    echo "sampling: ${R[sampling]}; tg128 top-p 0.9 host ${R[sample-host]}, kernels ${R[sample-kernels]} ($(el))"
fi

# Batches on CUDA (tests/e2e/test_batch.c): three sequences alone, then twice among 63 others
# with the same crowd (must be bitwise equal: determinism); alone vs among others: in
# batch-invariant batches (the default, on, and many) bitwise equal, tiny with graphs and 20b
# with --routing on (no graphs; the expert choices compared too). Then 20b with --invariant off
# (each step's kernels by its rows): reported (logits that differ, max |diff| / max |logit|
# per draw; every draw within 1e-3), with --routing on: the draws that a router near tie
# moved by the drift reached are exempt and counted, every differing choice checked to be
# such a tie (README, "Batch invariance"). The seed is printed first in each log.
if ! skip batch; then
    for run in "tiny" "20b --routing on" "tiny --invariant many" "20b --routing on --invariant many" \
        "20b --routing on --invariant off"; do
        tag=$(echo "$run" | tr -d ' -' | sed 's/routingon/-routing/; s/invariantoff/-noinv/; s/invariantmany/-many/')
        "$B"/tests/e2e/test_batch --backend cuda --model $run --streams 64 >"$LOG/batch-$tag.log" 2>&1
        R[batch-$tag]="rc=$? $(grep -E 'batch invariance:' "$LOG/batch-$tag.log" | sed 's/^ *//'); $(tail -1 "$LOG/batch-$tag.log")"
        grep -E '^seed|^FAIL|differ|determinism|per draw|near tie|not explain|not reached' "$LOG/batch-$tag.log" | cut -c1-220 | head -20
        echo "batch $run: ${R[batch-$tag]} ($(el))"
    done
fi

if ! skip python; then
    whl=$(ls "${GPU_WHEEL_DIR:-/nonexistent}"/*.whl 2>/dev/null | head -1)
    if [ -n "$whl" ]; then
        python3 -m pip install -q --no-deps --no-index --target /tmp/gok "$whl" >"$LOG/python.log" 2>&1
    else
        GPTOSS_CUDA=ON python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/gok . >"$LOG/python.log" 2>&1
    fi
    GPTOSS_PYTESTOPS_LIB="$(cd "$B" && pwd)/tests/libgptoss_pytestops.so" PYTHONPATH=/tmp/gok \
        python3 -m pytest -q -p no:cacheprovider python/tests -x -k "cuda or seed" >>"$LOG/python.log" 2>&1
    R[pytest]="rc=$? $(grep -E '[0-9]+ passed' "$LOG/python.log" | tail -1)"
    echo "pytest: ${R[pytest]} ($(el))"
fi

if ! skip bench; then
    python3 tools/gpu_peaks.py >"$LOG/peaks.log" 2>&1
    "$B"/bench/bench --backend cuda >"$LOG/bench.log" 2>&1
    R[bench]="rc=$?"
fi

# The batch-invariance lab (bench/lab/tc_gemv_lab.cu): mma operand roles, a tensor-core GEMV
# against the library's GEMM bit for bit, its one-token speed against the region GEMV.
if ! skip lab && [ -x "$LAB"/tc_gemv_lab ]; then
    "$LAB"/tc_gemv_lab --iters 10 >"$LOG/tc_gemv_lab.log" 2>&1
    R[lab]="rc=$? $(grep -E '^mma roles:' "$LOG/tc_gemv_lab.log" | cut -c1-70)"
    grep -E 'mma roles|bit-equal|us per call|^[a-z].*->' "$LOG/tc_gemv_lab.log" | head -60
    echo "lab: ${R[lab]} ($(el))"
fi
# The order-one GEMV of many tokens (bench/lab/gemv_one_lab.cu): tile shapes, activations in
# shared memory and the L1 carveout against the library's call, bit for bit, at 64 tokens.
if ! skip lab && [ -x "$LAB"/gemv_one_lab ]; then
    "$LAB"/gemv_one_lab --iters 5 >"$LOG/gemv_one_lab.log" 2>&1
    R[gemv-one-lab]="rc=$? $(tail -1 "$LOG/gemv_one_lab.log" | cut -c1-70)"
    grep -vE '^$' "$LOG/gemv_one_lab.log" | cut -c1-160
    echo "gemv-one lab: ${R[gemv-one-lab]} ($(el))"
fi
# The wgmma lab (bench/lab/wgmma_lab.cu): the prefill GEMMs (dense and MoE) on warpgroup MMA,
# bit-equality with the library and float64, speed against the library.
if ! skip lab && [ -x "$LAB"/wgmma_lab ]; then
    "$LAB"/wgmma_lab --iters 10 >"$LOG/wgmma_lab.log" 2>&1
    R[wgmma-lab]="rc=$? $(tail -1 "$LOG/wgmma_lab.log" | cut -c1-70)"
    grep -vE '^$' "$LOG/wgmma_lab.log" | cut -c1-200
    echo "wgmma lab: ${R[wgmma-lab]} ($(el))"
fi
# What bounds a k-stage of the wgmma GEMMs (bench/lab/wgmma_latency_lab.cu): MMA chains on
# resident operands, the library's kernel and the copies alone, per stage.
if ! skip lab && [ -x "$LAB"/wgmma_latency_lab ]; then
    "$LAB"/wgmma_latency_lab >"$LOG/wgmma_latency_lab.log" 2>&1
    R[wgmma-latency-lab]="rc=$? (wgmma_latency_lab.log)"
    cat "$LOG/wgmma_latency_lab.log"
fi
# The decode step's floor with the engine's op sizes (bench/lab/step_floor.cu): 20b at depth 0
# and 32,768, the designs' us/step against one streaming kernel.
if ! skip lab && [ -x "$LAB"/step_floor ]; then
    for d in 0 32768; do "$LAB"/step_floor --preset 20b --depth $d; done >"$LOG/step_floor.log" 2>&1
    R[step-floor]="rc=$? (step_floor.log)"
    cat "$LOG/step_floor.log"
fi
for m in 20b 120b; do
    skip "$m" && continue
    "$B"/bin/gptoss bench --random "$m" --backend cuda -p 512 -n 128 -r 1 >"$LOG/engine-$m.log" 2>&1
    R[engine-$m]="rc=$? $(grep -E 'pp512|tg128' "$LOG/engine-$m.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
    echo "engine $m: ${R[engine-$m]} ($(el))"
done

# Long contexts: 20b pp512 and tg128 after D tokens already in the context.
if ! skip depth; then
    for d in ${GPU_DEPTHS:-4096 32768 130000}; do
        "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 128 -r 1 -d "$d" >"$LOG/engine-20b-d$d.log" 2>&1
        R[depth-$d]="rc=$? $(grep -E '^[|].*(pp|tg)' "$LOG/engine-20b-d$d.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
        R[depth]="${R[depth]:-}d$d ${R[depth-$d]} "
        echo "depth $d: ${R[depth-$d]} ($(el))"
    done
fi

# A 131,072-position context end to end on a tiny model (two full-attention layers, head_dim
# 64: the CUDA paths gpt-oss runs, the tensor-core prefill and the flash-decoding): the
# logits of the last of 131,000 prompt tokens and of 2 greedy steps, CUDA against the CPU
# backend (tests/e2e/long_context.py; ~20 s of CPU prefill on 16 cores at head_dim 16, the
# sixth sitting's run; at 64 the CPU attention does 4x the work: not yet timed).
if ! skip long; then
    python3 tests/e2e/long_context.py --gptoss "$B"/bin/gptoss --dump "$B"/tests/e2e/dump_logits \
        --backends cpu,cuda >"$LOG/long.log" 2>&1
    R[long-131k]="rc=$? $(grep -E '^(PASS|FAIL) cuda' "$LOG/long.log" | head -1 | cut -c1-90)"
    grep -E 'tok/s|^FAIL' "$LOG/long.log"
    echo "long: ${R[long-131k]} ($(el))"
fi

# Many streams in one batch, 20b: aggregate and per-stream decode tok/s and TTFT of a
# 512-token prompt arriving while S - 1 streams decode (gptoss bench --parallel; the floor:
# at 64 streams a step reads ~12.6 GB, ~20,000 tok/s at ~4.1 TB/s; docs/RESULTS.md).
if ! skip parallel; then
    # the reference of x1: the plain engine decoding after the same 512 tokens (-d 512;
    # --parallel's streams decode from position 512, plain tg from position 1)
    "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 128 -r 2 -d 512 >"$LOG/parallel-20b-ref-d512.log" 2>&1
    R[parallel-1-ref]="rc=$? $(grep -E '^[|].*tg' "$LOG/parallel-20b-ref-d512.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
    echo "plain engine at depth 512: ${R[parallel-1-ref]} ($(el))"
    # batch-invariant on (the default), many (drawn tokens on the prefill's kernels), off
    for inv in on many off; do
        for S in 1 4 16 64; do
            k=parallel-$S-$inv; [ $inv = on ] && k=parallel-$S
            "$B"/bin/gptoss bench --random 20b --backend cuda --parallel $S -p 512 -n 128 -r 2 --batch-invariant $inv \
                >"$LOG/$k.log" 2>&1
            R[$k]="rc=$? $(grep -E '^[|].*(tg|ttft)' "$LOG/$k.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
            echo "$k: ${R[$k]} ($(el))"
        done
    done
    # 64 sampled streams (top-p, drawn by the sampling kernels, one copy of the tokens per step)
    "$B"/bin/gptoss bench --random 20b --backend cuda --parallel 64 -p 512 -n 128 -r 1 --temp 1 --top-p 0.9 \
        >"$LOG/parallel-20b-x64-topp.log" 2>&1
    R[parallel-64-topp]="rc=$? $(grep -E '^[|].*(tg|ttft)' "$LOG/parallel-20b-x64-topp.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
fi

# The same for 120b (issue 13 asks for both models): on at 1, 4, 16 and 64 streams, many at
# 64 (-r 1: each run creates ~61 GB of random weights)
if ! skip parallel-120b; then
    for run in "1 on" "4 on" "16 on" "64 on" "64 many"; do
        read -r S inv <<<"$run"
        k=parallel-120b-$S; [ "$inv" = on ] || k=parallel-120b-$S-$inv
        "$B"/bin/gptoss bench --random 120b --backend cuda --parallel "$S" -p 512 -n 128 -r 1 --batch-invariant "$inv" \
            >"$LOG/$k.log" 2>&1
        R[$k]="rc=$? $(grep -E '^[|].*(tg|ttft)' "$LOG/$k.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
        echo "$k: ${R[$k]} ($(el))"
    done
fi

# The same 20b decode with direct kernel launches instead of recorded graphs, and without
# the fused decode kernels.
if ! skip 20b; then
    GPTOSS_FUSED_OPS=0 "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 128 -r 1 >"$LOG/engine-20b-nofused.log" 2>&1
    R[engine-20b-nofused]="rc=$? $(grep -E 'pp512|tg128' "$LOG/engine-20b-nofused.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
    GPTOSS_CUDA_GRAPHS=0 "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 128 -r 1 >"$LOG/engine-20b-nograph.log" 2>&1
    R[engine-20b-nograph]="rc=$? $(grep -E 'pp512|tg128' "$LOG/engine-20b-nograph.log" | awk -F'|' '{printf "%s %s; ", $5, $6}')"
    # issue 15's pp2048 in chunks of 512 (the default) and in one chunk of 2,048 (the MoE's
    # 64-row tiles fuller: ~256 rows an expert instead of ~64)
    for bs in 512 2048; do
        "$B"/bin/gptoss bench --random 20b --backend cuda -p 2048 -n 0 -r 2 -b $bs >"$LOG/engine-20b-pp2048-b$bs.log" 2>&1
        R[engine-20b-pp2048]="${R[engine-20b-pp2048]:-}-b $bs rc=$? $(grep -E 'pp2048' "$LOG/engine-20b-pp2048-b$bs.log" | awk -F'|' '{printf "%s", $6}'); "
    done
fi

# Where the engine's time goes on the card (synchronises around every kernel: the t/s of
# this run is not comparable; the table is).
if ! skip profile; then
    GPTOSS_PROFILE=1 "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 32 -r 1 >"$LOG/profile-20b.log" 2>&1
    R[profile-20b]="rc=$? (profile-20b.log)"
fi
# GPU time per decode kernel without launch gaps (Nsight Compute; tools/ncu_decode.py).
if ! skip ncu && command -v ncu >/dev/null; then
    python3 tools/ncu_decode.py "$B" >"$LOG/ncu-decode.log" 2>&1
    R[ncu-decode]="rc=$? $(tail -1 "$LOG/ncu-decode.log")"
fi
# A/B of an alternative kernel selected by an environment variable (GPU_AB="VAR=value filter").
if [ -n "${GPU_AB:-}" ]; then
    set -- $GPU_AB
    env "$1" "$B"/tests/harness --backend cuda --filter "$2" >"$LOG/harness-ab.log" 2>&1
    R[harness-ab]="$1: rc=$? $(grep -E '^[0-9]+ passed' "$LOG/harness-ab.log" | tail -1)"
    env "$1" "$B"/bench/bench --backend cuda --filter "$2" >"$LOG/bench-ab.log" 2>&1
    env "$1" "$B"/bin/gptoss bench --random 20b --backend cuda -p 512 -n 128 -r 1 >"$LOG/engine-20b-ab.log" 2>&1
fi

if [ -n "${cpu_pid:-}" ]; then
    wait "$cpu_pid"
    R[harness-avx512]="rc=$(cat "$LOG/harness-avx512.rc") $(grep -E '^[0-9]+ passed' "$LOG/harness-avx512.log" | tail -1)"
    grep -E '^FAIL' "$LOG/harness-avx512.log" | head -10
fi

# The CPU backend on this host's cores (the CPU code must scale past the 2-core dev VM):
# tools/cpu-scaling.sh, 20b pp64 / tg16 at 1..16 threads with the best ISA, then AVX2 at
# the most threads, and a per-kernel profile of decode at the most threads. Runs last, on
# a host the GPU steps no longer use.
if ! skip cpu-scaling; then
    threads_list=${GPU_CPU_THREADS:-1 2 4 8 16}
    THREADS="$threads_list" R=1 bash tools/cpu-scaling.sh "$B/bin/gptoss" >"$LOG/cpu-scaling.log" 2>"$LOG/cpu-scaling.err"
    rc=$?
    ISA=avx2 THREADS="${threads_list##* }" R=1 bash tools/cpu-scaling.sh "$B/bin/gptoss" >>"$LOG/cpu-scaling.log" 2>>"$LOG/cpu-scaling.err"
    R[cpu-scaling]="rc=$rc/$? (table below)"
    # where a decode step's time goes at the most threads (synchronised per kernel)
    "$B"/bin/gptoss bench --random 20b --backend cpu -t "${threads_list##* }" -p 64 -n 16 -r 1 --profile >"$LOG/cpu-profile.log" 2>&1
fi

[ -f "$LOG/peaks.log" ] && cat "$LOG/peaks.log"
[ -f "$LOG/bench.log" ] && grep -E '%BW|GB/s|^[a-z_0-9]+ ' "$LOG/bench.log" | tail -24
for f in "$LOG"/engine-*.log "$LOG"/parallel-*.log; do [ -f "$f" ] && { echo "${f##*/}:"; grep -E '^\|' "$f" | grep -E 'pp|tg'; grep -E 'GB read per token' "$f"; }; done
[ -f "$LOG/bench-ab.log" ] && { echo "A/B ($GPU_AB):"; grep -E 'GB/s|%BW' -A8 "$LOG/bench-ab.log" | tail -6; grep -E '^\|' "$LOG/engine-20b-ab.log"; }
[ -f "$LOG/ncu-decode.log" ] && cat "$LOG/ncu-decode.log"
[ -f "$LOG/profile-20b.log" ] && grep -E '^(prefill|decode) ' "$LOG/profile-20b.log" | head -40
[ -f "$LOG/cpu-scaling.log" ] && cat "$LOG/cpu-scaling.log"
[ -f "$LOG/cpu-profile.log" ] && grep -E '^decode ' "$LOG/cpu-profile.log"
echo
echo "================ $GPU ($(el)) ================"
for k in build harness-cuda harness-cuda-many harness-avx512 graph fused invariance memcheck racecheck memcheck-many racecheck-many memcheck-one racecheck-one e2e-hf graph-bitexact sampling sample-host sample-kernels batch-tiny batch-20b-routing batch-tiny-many batch-20b-routing-many batch-20b-routing-noinv pytest bench lab gemv-one-lab wgmma-lab wgmma-latency-lab step-floor engine-20b engine-20b-nofused engine-20b-nograph engine-20b-pp2048 engine-120b depth long-131k parallel-1-ref parallel-1 parallel-4 parallel-16 parallel-64 parallel-1-many parallel-4-many parallel-16-many parallel-64-many parallel-1-off parallel-4-off parallel-16-off parallel-64-off parallel-64-topp parallel-120b-1 parallel-120b-4 parallel-120b-16 parallel-120b-64 parallel-120b-64-many profile-20b ncu-decode cpu-scaling harness-ab; do
    printf '%-15s %s\n' "$k" "${R[$k]:-skipped}"
done
