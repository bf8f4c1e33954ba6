#!/usr/bin/env bash
# Every CLI failure says why (exit status, nothing on stdout, a message naming the cause):
#   load_*     generate, chat and bench with -m a directory, a truncated model, a text file,
#              an empty file, /dev/null, /dev/zero
#   config_*   models the engine cannot run (attention_window 0, head_dim 6) are refused
#              by make-model (exit 2, nothing written) and, as files, by inspect, generate,
#              chat and bench before any prompt or output
#   decode_*   tokenize --decode names a bad id and the valid range
#   logit_bias_*  generate --logit-bias refuses malformed, repeated and out-of-vocabulary
#              entries before any output; +100 on a token makes every greedy draw it
# Usage: test_cli_errors.sh GPTOSS_BIN
set -u
gptoss=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/gptoss-cli-errors-XXXXXX")
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
# expect NAME STATUS CAUSE COMMAND...: exit STATUS, empty stdout, CAUSE in stderr
expect() {
    local name=$1 want=$2 cause=$3
    shift 3
    "$@" > "$dir/out.txt" 2> "$dir/err.txt" < "$dir/stdin.txt"
    local rc=$? out err
    out=$(cat "$dir/out.txt")
    err=$(cat "$dir/err.txt")
    [ $rc -eq "$want" ] && [ -z "$out" ] && [[ $err == *"$cause"* ]]
    check "$name" $? "exit $rc (want $want), stdout '${out:0:200}', stderr '${err:0:300}' (want '$cause')"
}
patch_u32() { # FILE OFFSET BYTES (printf escapes, little-endian)
    printf "$3" | dd of="$1" bs=1 seek="$2" count=4 conv=notrunc status=none
}

model=$dir/tiny.bin
echo "Hello" > "$dir/stdin.txt"
"$gptoss" make-model --preset tiny --seed 1 --quiet "$model" || { echo "FAIL make-model tiny"; exit 1; }

# --- load failures
mkdir "$dir/a-directory"
head -c 1000000 "$model" > "$dir/truncated.bin"
for i in 1 2 3; do echo "This is a text file, not a model: it is long enough for a header, and it is read as one."; done > "$dir/text.txt"
: > "$dir/empty.bin"
for cmd in generate chat bench; do
    case $cmd in
        generate) args=(-p Hello -n 2 -t 1) ;;
        chat) args=(-n 2 -t 1) ;;
        bench) args=(-p 8 -n 2 -r 1 -t 1) ;;
    esac
    expect "load_${cmd}_directory" 1 "$dir/a-directory is a directory" "$gptoss" $cmd -m "$dir/a-directory" "${args[@]}"
    expect "load_${cmd}_truncated" 1 "file is truncated: 1000000 bytes, the layout" "$gptoss" $cmd -m "$dir/truncated.bin" "${args[@]}"
    expect "load_${cmd}_text" 1 "$dir/text.txt: bad magic \"This is a te\"" "$gptoss" $cmd -m "$dir/text.txt" "${args[@]}"
    expect "load_${cmd}_empty" 1 "$dir/empty.bin: file is truncated: 0 bytes" "$gptoss" $cmd -m "$dir/empty.bin" "${args[@]}"
    expect "load_${cmd}_dev_null" 1 "/dev/null is a character device" "$gptoss" $cmd -m /dev/null "${args[@]}"
    expect "load_${cmd}_dev_zero" 1 "/dev/zero is a character device" "$gptoss" $cmd -m /dev/zero "${args[@]}"
done

# --- configs the engine cannot run
expect config_make_model_window 2 "attention_window is 0" "$gptoss" make-model --preset tiny --window 0 --quiet "$dir/w0.bin"
expect config_make_model_head_dim 2 "head_dim 6 is not a multiple of 4" "$gptoss" make-model --preset tiny --head-dim 6 --quiet "$dir/d6.bin"
[ ! -e "$dir/w0.bin" ] && [ ! -e "$dir/d6.bin" ] && [ -z "$(ls -A "$dir" | grep '\.tmp-')" ]
check config_make_model_wrote_nothing $? "directory holds: $(ls -A "$dir")"
# the same configs as files (the tiny model's header patched: attention_window at 72, head_dim at 60)
cp "$model" "$dir/window0.bin"
patch_u32 "$dir/window0.bin" 72 '\x00\x00\x00\x00'
cp "$model" "$dir/headdim6.bin"
patch_u32 "$dir/headdim6.bin" 60 '\x06\x00\x00\x00'
for f in window0:"attention_window is 0" headdim6:"head_dim 6 is not a multiple of 4"; do
    name=${f%%:*}
    cause=${f#*:}
    expect "config_inspect_$name" 1 "$cause" "$gptoss" inspect "$dir/$name.bin"
    expect "config_generate_$name" 1 "$cause" "$gptoss" generate -m "$dir/$name.bin" -p Hello -n 2 -t 1
    expect "config_chat_$name" 1 "$cause" "$gptoss" chat -m "$dir/$name.bin" -n 2 -t 1
    expect "config_bench_$name" 1 "$cause" "$gptoss" bench -m "$dir/$name.bin" -p 8 -n 2 -r 1 -t 1
done

# --- tokenize --decode
for id in 4294967297 18446744073709551616 200014 -1 abc 12abc 3.5; do
    printf ' \n%s 5 6' "$id" > "$dir/stdin.txt"
    expect "decode_$id" 1 "token id '$id' (byte 2 of stdin) is not an integer in [0, 200013]" \
        "$gptoss" tokenize -m "$model" --decode
done
echo "5 6, 200013" > "$dir/stdin.txt"
got=$("$gptoss" tokenize -m "$model" --decode < "$dir/stdin.txt")
[ "$got" = "&'<|refusal|>" ]
check decode_valid $? "decoded '$got'"

# --- --logit-bias: refused before any output; +100 on a token makes every draw it
: > "$dir/stdin.txt"
for bad in "5:1" "5=" "x=1" "-5=1" "5=1e39" "5=nan" "5=1,5=2" "200014=1"; do
    case $bad in
        5=1,5=2) cause="token id 5 has two biases" ;;
        200014=1) cause="token id 200014 is past the vocabulary (200014 tokens)" ;;
        *) cause="--logit-bias: expected" ;;
    esac
    expect "logit_bias_$bad" 1 "$cause" "$gptoss" generate -m "$model" -p Hello -n 2 -t 1 --logit-bias "$bad"
done
got=$("$gptoss" generate -m "$model" -p Hello -n 4 -t 1 --ignore-eos --logit-bias 12345=100,7=-3 2> /dev/null)
[ "$got" = "Hello Da Da Da Da" ]
check logit_bias_forces $? "generated '$got'"

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
