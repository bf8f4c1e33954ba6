#!/usr/bin/env bash
# Nsight Compute on the prefill kernels of issue 15 (one launch each, from the kernel
# benchmark's 20b pp512 rows): duration, tensor-pipe share, SM / L1 / L2 / memory throughput,
# L1 and L2 hit rates, occupancy, shared-memory bank conflicts and the top warp stalls, one short block per
# kernel (the device returns only the last 12,000 characters of a call).
#
#   bash tools/ncu_prefill.sh BENCH_BINARY [ROW:KERNEL_REGEX ...]
#
# The default pairs: the MoE up GEMM, the dense qkv GEMM, the tensor-core attention at
# depth 32,256. NCU_BENCH_ARGS: more arguments of the bench (e.g. "--row-order one").
set -u
bench=${1:?usage: tools/ncu_prefill.sh BENCH_BINARY [ROW:KERNEL_REGEX ...]}
shift
pairs=("$@")
[ ${#pairs[@]} -gt 0 ] || pairs=(moe_dense_swiglu_20b_prefill512_4of32_2880:"moe_gemm_ring_kernel|moe_kernel|moe_rega_kernel"
    dense_qkv_20b_prefill512_2880x5120:gemm_bf16_tc_ring
    sdpa_varlen_20b_prefill512_after32256_full:sdpa_prefill_tc)
metrics=gpu__time_duration.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active
metrics=$metrics,sm__throughput.avg.pct_of_peak_sustained_elapsed,dram__throughput.avg.pct_of_peak_sustained_elapsed
metrics=$metrics,l1tex__throughput.avg.pct_of_peak_sustained_active,sm__warps_active.avg.pct_of_peak_sustained_active
metrics=$metrics,l1tex__data_bank_conflicts_pipe_lsu_mem_shared.sum,smsp__inst_executed.sum,launch__registers_per_thread
metrics=$metrics,l1tex__t_sector_hit_rate.pct,lts__t_sector_hit_rate.pct,lts__throughput.avg.pct_of_peak_sustained_elapsed
stalls=barrier,long_scoreboard,short_scoreboard,mio_throttle,math_pipe_throttle,wait,not_selected,selected,lg_throttle,dispatch_stall,no_instruction
for s in ${stalls//,/ }; do metrics=$metrics,smsp__average_warp_latency_issue_stalled_$s; done
# one line of metrics, then the stalls as shares of all stall cycles (the .ratio submetric:
# cycles a warp spent in that state per issued instruction)
summarise() {
    awk -F'","' '/^"ID"/ {next} NF > 10 {n = $(NF-2); v = $NF; gsub(/"/, "", v); gsub(/,/, "", v);
        if (n ~ /^smsp__average_warp_latency_issue_stalled_/) {
            if (n ~ /\.ratio$/) { sub(/^smsp__average_warp_latency_issue_stalled_/, "", n); sub(/\.ratio$/, "", n);
                st[n] = v + 0; tot += v }
            next }
        sub(/\.avg\.pct_of_peak_sustained_[a-z]+/, "%", n); sub(/\.sum$/, "", n); printf "%s=%s  ", n, v}
        END { print ""; printf "stalls (share):"; for (k in st) if (tot > 0) printf " %s %.0f%%", k, 100 * st[k] / tot; print "" }' | fold -w 150
}
for pair in "${pairs[@]}"; do
    row=${pair%%:*} kernel=${pair#*:}
    echo "-- $row ($kernel)"
    out=$(ncu --csv --metrics "$metrics" --kernel-name "regex:$kernel" --launch-skip 1 --launch-count 1 \
        "$bench" --backend cuda --filter "$row" -n 2 ${NCU_BENCH_ARGS:-} 2>&1)
    if ! grep -q '^"ID"' <<<"$out"; then
        # a metric this ncu does not know fails the whole list: the speed-of-light section instead
        grep -m2 -E 'ERROR|rror' <<<"$out"
        out=$(ncu --csv --section SpeedOfLight --kernel-name "regex:$kernel" --launch-skip 1 --launch-count 1 \
            "$bench" --backend cuda --filter "$row" -n 2 ${NCU_BENCH_ARGS:-} 2>&1)
    fi
    summarise <<<"$out"
done
