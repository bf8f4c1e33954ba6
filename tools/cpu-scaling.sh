#!/usr/bin/env bash
# CPU thread scaling of the engine: `gptoss bench --random 20b -t N` for N = 1 2 4 8 16
# (or the counts in $THREADS), then one table: prefill and decode tok/s per thread count,
# the read bandwidth gptoss bench measured with those threads, the decode bound it sets
# and decode's share of it. Needs the random 20b model's ~13 GB of memory per run.
#
#   tools/cpu-scaling.sh [GPTOSS_BIN] [extra gptoss bench args]
#   THREADS="1 2 4" P=512 N=32 R=3 ISA=avx2 tools/cpu-scaling.sh build/bin/gptoss
#
# Defaults: P=64 prompt tokens, N=16 generated, R=2 repetitions, ISA=auto, MODEL=20b.
# Prints the CPU model and the raw output of every run to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/bin/gptoss}
[ $# -gt 0 ] && shift
threads=${THREADS:-"1 2 4 8 16"}
P=${P:-64} N=${N:-16} R=${R:-2} ISA=${ISA:-auto} MODEL=${MODEL:-20b}

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
flags=$(grep -m1 '^flags' /proc/cpuinfo)
isa_note=$(for f in avx2 avx512f avx512bw avx512_bf16 avx512vbmi; do
    case " $flags " in *" $f "*) printf '%s ' "$f" ;; esac
done)
echo "CPU: ${cpu:-unknown} ($(nproc) online processors; $isa_note)" >&2

rows=()
for t in $threads; do
    echo "== -t $t" >&2
    log=$(mktemp)
    "$bin" bench --random "$MODEL" -t "$t" --isa "$ISA" -p "$P" -n "$N" -r "$R" "$@" >"$log" 2>&1 || {
        cat "$log" >&2
        rm -f "$log"
        exit 1
    }
    cat "$log" >&2
    # table rows: | model | backend | threads | test | t/s |
    be=$(awk -F'|' -v t="pp$P" '$5 ~ t {sub(/^ +/, "", $3); sub(/ +$/, "", $3); print $3}' "$log")
    pp=$(awk -F'|' -v t="pp$P" '$5 ~ t {sub(/^ +/, "", $6); sub(/ +$/, "", $6); print $6}' "$log")
    tg=$(awk -F'|' -v t="tg$N" '$5 ~ t {sub(/^ +/, "", $6); sub(/ +$/, "", $6); print $6}' "$log")
    # stderr line: "tgN: X GB read per token; read pass (...) best of ... Y GB/s, slowest Z -> bound B tok/s; tg T tok/s = S% of it"
    bound=$(sed -n 's/.*passes ([^)]*) \([0-9.]*\) GB\/s.*bound \([0-9.]*\) tok\/s.* = \([0-9]*\)% of it.*/\1 | \2 | \3%/p' "$log")
    rows+=("| $t | ${be:-?} | ${pp:-?} | ${tg:-?} | ${bound:-? | ? | ?} |")
    rm -f "$log"
done

echo "CPU: ${cpu:-unknown}, $(nproc) online processors, flags: $isa_note; --isa $ISA; gptoss bench --random $MODEL -p $P -n $N -r $R"
echo
echo "| threads | backend | pp$P tok/s | tg$N tok/s | read pass GB/s | decode bound tok/s | tg share of bound |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
