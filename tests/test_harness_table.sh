#!/usr/bin/env bash
# The harness's table (what `bash tools/run.sh` shows): the header names every column, a
# row has every field (progress, op, backend, shape, max_err next to its tolerance,
# err/tol, result, time, GB/s, case) for a case compared with a tolerance, one compared bit
# for bit and one checked by draws; the skipped cases are summarised per backend (count and
# reason) with the names in the file whose path is printed; a case that does not apply in
# the row order is reported by name with its reason; the last line is the count line that CI
# and tools/gpu-session.sh grep for.
#
#   test_harness_table.sh HARNESS
set -uo pipefail
harness=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() { # name, then a command that must succeed
    local name=$1
    shift
    if "$@"; then echo "PASS $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}

# --backend scalar: the other three backends are skipped whatever the machine has
run() { # filter -> $tmp/out, $tmp/skipped.txt
    rm -f "$tmp/skipped.txt"
    "$harness" --table --backend scalar --seed 5 --filter "$1" --skipped-file "$tmp/skipped.txt" >"$tmp/out" 2>&1
}

run softmax_odd
check "harness ran (exit 0)" test $? -eq 0
header='^ +case# +op +backend +shape +max_err +tol +err/tol +result +time_ms +GB/s +case$'
check "header names every column" grep -Eq "$header" "$tmp/out"
check "header comes before the rows" test "$(grep -Enm1 "$header" "$tmp/out" | cut -d: -f1)" -lt \
    "$(grep -Enm1 'softmax_odd_3tok' "$tmp/out" | cut -d: -f1)"
num='[0-9][0-9.e+-]*'
row="^ +1/2 +f32_softmax +scalar +T=3 V=19 +$num +$num +[0-9]+% +ok +[0-9]+\.[0-9]{4} +[0-9]+\.[0-9]{2} +softmax_odd_3tok_19ch_temp0\.7$"
check "row: max_err, its tol, err/tol (tolerance case)" grep -Eq "$row" "$tmp/out"
check "row 2 of 2" grep -Eq '^ +2/2 +f32_softmax +scalar +T=2 V=2881 ' "$tmp/out"
# the skip summary: one line per backend, count and reason; the names in the file
for b in avx2 avx512 cuda; do
    check "skip summary of $b" grep -Eq "^$b: 2 skipped \(not selected \(--backend scalar\)\)$" "$tmp/out"
done
check "no skipped line for scalar" bash -c "! grep -Eq '^scalar: ' '$tmp/out'"
check "skip file path printed" grep -Fxq "skipped cases by name: $tmp/skipped.txt" "$tmp/out"
check "skip file lists backend and case" grep -Fxq "cuda softmax_odd_2tok_2881ch_temp0.25" "$tmp/skipped.txt"
check "skip file: 6 cases" test "$(grep -vc '^#' "$tmp/skipped.txt")" -eq 6
check "skip file: reason per backend" grep -Fxq "# avx2: not selected (--backend scalar)" "$tmp/skipped.txt"
check "no skipped names on stdout" bash -c "! grep -q 'softmax_odd_2tok.*softmax_odd_3tok\|skipped on' '$tmp/out'"
# the count line is the last line, in the form the greps expect
check "count line last" grep -Eq '^3 passed, 0 failed, 6 skipped$' <(tail -1 "$tmp/out")
check "CI grep matches" test "$(grep -E '^[0-9]+ passed' "$tmp/out" | tail -1)" = "3 passed, 0 failed, 6 skipped"

run routing_3of7_19tok
row="^ +1/1 +expert_routing_metadata +scalar +T=19 3 of 7 +0 +exact +- +ok +[0-9.]+ +[0-9.]+ +routing_3of7_19tok$"
check "row of an exact case: tol 'exact'" grep -Eq "$row" "$tmp/out"

run sample_3ch
row="^ +1/1 +f32_sample +scalar +V=3 draws=65 +- +- +- +ok +[0-9.]+ +[0-9.]+ +sample_3ch$"
check "row of a draw case: '-'" grep -Eq "$row" "$tmp/out"

# a case that does not apply in the row order (tc_op.skip): a SKIP line with its reason, a
# count per backend, the reason beside its name in the file; the other cases still run
rm -f "$tmp/skipped.txt"
"$harness" --backend scalar --seed 5 --row-order many --filter sdpa_varlen_invariance_window128,sdpa_varlen_in_order_gqa2 \
    --skipped-file "$tmp/skipped.txt" >"$tmp/out" 2>&1
check "order skip: harness ran (exit 0)" test $? -eq 0
check "order skip: SKIP line with reason" grep -Eq \
    '^SKIP sdpa_varlen_invariance_window128_1_vs_10_rows scalar: row order many: .+$' "$tmp/out"
check "order skip: the in-order case ran" grep -Eq '^PASS sdpa_varlen_in_order_gqa2_bs5_90rows_full scalar ' "$tmp/out"
check "order skip: per-backend count" grep -Fxq "scalar: 1 skipped by their cases (the SKIP lines say why)" "$tmp/out"
check "order skip: reason in the file" grep -Eq \
    '^scalar sdpa_varlen_invariance_window128_1_vs_10_rows  # row order many: ' "$tmp/skipped.txt"
check "order skip: count line" grep -Eq '^2 passed, 0 failed, 7 skipped$' <(tail -1 "$tmp/out")
"$harness" --backend scalar --seed 5 --filter sdpa_varlen_invariance_window128 --skipped-file "$tmp/skipped.txt" \
    >"$tmp/out" 2>&1
check "order skip: runs in order auto" grep -Eq '^PASS sdpa_varlen_invariance_window128_1_vs_10_rows scalar ' "$tmp/out"

# nothing skipped: no summary, no file
rm -f "$tmp/skipped.txt"
"$harness" --seed 5 --filter no_such_case --skipped-file "$tmp/skipped.txt" >"$tmp/out" 2>&1
check "no case selected: no skip file" test ! -e "$tmp/skipped.txt"
check "no case selected: count line" grep -Eq '^1 passed, 0 failed, 0 skipped$' <(tail -1 "$tmp/out")

echo "$failures failed"
[ "$failures" -eq 0 ]
