#!/usr/bin/env bash
# Model files are replaced atomically and never lost (gptoss make-model; convert shares the
# writer and is covered by tests/engine/test_convert.c):
#   exists      an existing OUT is kept without --force (exit 2, message names OUT and --force)
#   force       with --force it is replaced by a complete, loadable model
#   full_disk   a write that fails part way (RLIMIT_FSIZE, as a full disk) leaves the old OUT
#               as it was and no temporary file
#   sigterm     SIGTERM / SIGINT during a long make-model (preset 20b, 13.8 GB if finished)
#   sigint      leave neither OUT nor a temporary file, and the process ends by the signal
#   mapped      a process that has the old OUT mapped keeps reading it, unchanged, while
#               make-model --force replaces it (the engine maps model files)
# Usage: test_files.sh GPTOSS_BIN HOLD_MAPPING_BIN
set -u
gptoss=$1
hold=$2
dir=$(mktemp -d "${TMPDIR:-/tmp}/gptoss-files-XXXXXX")
trap 'rm -rf "$dir"' EXIT
passed=0
failed=0
check() { # NAME STATUS DETAIL (STATUS: of the condition, taken before any expansion)
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $1"
    else
        failed=$((failed + 1))
        echo "FAIL $1: $3"
    fi
}
# the directory holds exactly the names given (no temporary file left behind)
only() {
    local want got
    want=$(printf '%s\n' "$@" | sort | tr '\n' ' ')
    got=$(ls -A "$dir" | sort | tr '\n' ' ')
    [ "$want" = "$got" ] || { echo "  directory holds: $got (want: $want)"; return 1; }
}
sum() { cksum < "$1"; }

out=$dir/model.bin
# --- exists: an unrelated file is kept
echo "not a model: my notes" > "$out"
before=$(sum "$out")
"$gptoss" make-model --preset tiny --seed 1 --quiet "$out" 2> "$dir/err.txt"
rc=$?
msg=$(cat "$dir/err.txt")
rm -f "$dir/err.txt"
[ $rc -eq 2 ] && [ "$(sum "$out")" = "$before" ] && [[ $msg == *"$out"* ]] && [[ $msg == *--force* ]] && only model.bin
check exists $? "exit $rc, message '$msg'"

# --- force: replaced by a complete model
"$gptoss" make-model --preset tiny --seed 1 --quiet --force "$out"
rc=$?
"$gptoss" inspect "$out" > /dev/null && [ $rc -eq 0 ] && [ "$(sum "$out")" != "$before" ] && only model.bin
check force $? "exit $rc"

# --- full_disk: writes fail with EFBIG past 10 MiB (SIGXFSZ ignored, as a full disk
# fails with ENOSPC); the 53 MB model cannot be written
before=$(sum "$out")
msg=$( (ulimit -f 10240; trap '' XFSZ; exec "$gptoss" make-model --preset tiny --seed 2 --quiet --force "$out") 2>&1)
rc=$?
[ $rc -eq 1 ] && [ "$(sum "$out")" = "$before" ] && [[ $msg == *"$out"* ]] && only model.bin
check full_disk $? "exit $rc, message '$msg'"

# --- sigterm / sigint: stop make-model --preset 20b once its temporary file has grown
# (job control on, so that a background job does not start with SIGINT ignored)
set -m
for sig in TERM INT; do
    big=$dir/big-$sig.bin
    "$gptoss" make-model --preset 20b --quiet "$big" &
    pid=$!
    grown=1
    for _ in $(seq 600); do
        tmp=$(ls -A "$dir" | grep "^\.big-$sig\.bin\.tmp-" | head -1)
        if [ -n "$tmp" ] && [ "$(stat -c %s "$dir/$tmp" 2> /dev/null || echo 0)" -gt 20000000 ]; then
            grown=0
            break
        fi
        kill -0 $pid 2> /dev/null || break
        sleep 0.1
    done
    kill -s $sig $pid
    wait $pid
    rc=$?
    want=$((128 + $(kill -l $sig)))
    [ $grown -eq 0 ] && [ $rc -eq $want ] && [ ! -e "$big" ] && only model.bin
    ok=$?
    check "sig${sig,,}" $ok "temporary file seen growing: $([ $grown -eq 0 ] && echo yes || echo no), exit $rc (want $want)"
done
set +m

# --- mapped: the old file stays readable, unchanged, through the mapping
"$hold" "$out" "$dir/ready" "$dir/go" &
pid=$!
for _ in $(seq 600); do
    [ -e "$dir/ready" ] && break
    sleep 0.1
done
before=$(sum "$out")
"$gptoss" make-model --preset tiny --seed 3 --quiet --force "$out"
rc_make=$?
touch "$dir/go"
wait $pid
rc=$?
rm -f "$dir/ready" "$dir/go"
[ $rc_make -eq 0 ] && [ $rc -eq 0 ] && [ "$(sum "$out")" != "$before" ] && only model.bin
check mapped $? "make-model exit $rc_make, reader exit $rc (135 = SIGBUS)"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
