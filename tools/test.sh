#!/usr/bin/env bash
# All tests: set up, build (with CUDA when nvcc is present: compiled and linked, its
# cases reported as skipped without a GPU), ctest (harness, argument checks, engine),
# the argument checks, engine tests and the quick harness again under AddressSanitizer +
# UndefinedBehaviorSanitizer, and pytest (the Python package; the harmony layer against
# openai-harmony).
# ctest runs as many tests at once as there are cores, and the sanitizer build's
# structured-output tests run beside the later stages, which keeps CI (2 cores) under 20
# minutes; each stage prints its time. Ends with one summary line "suites: N passed, N
# failed, 0 skipped".
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh || exit 1

passed=0; failed=0; failed_names=()
t_all=$SECONDS
stage() {
    local name=$1 t0=$SECONDS; shift
    echo "=== $name: $*"
    if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$name"); fi
    echo "=== $name: $((SECONDS - t0)) s"
}

# ctest runs as many tests at once as there are cores (the longest first: their COST in the
# CMake files); each CPU test runs its own thread pool, and the short ones fill the gaps.
jobs=$(nproc 2>/dev/null || echo 2)
stage build bash tools/build.sh
stage ctest ctest --test-dir build --output-on-failure -j"$jobs"
stage build-sanitize env GPTOSS_CUDA=OFF GPTOSS_BUILD_DIR=build-sanitize bash tools/build.sh \
    -DGPTOSS_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGPTOSS_BUILD_BENCH=OFF
stage sanitize-ctest ctest --test-dir build-sanitize -E '^harness$' --output-on-failure -j"$jobs"
stage sanitize-harness build-sanitize/tests/harness --quick
# The structured-output tests of gptoss serve on the sanitizer build (~60 % of that suite's
# time: a request at a time, one core) run beside the stages below; their result and output
# join the pytest-serve-sanitize suite at its end.
schema_log=$(mktemp)
env GPTOSS_BIN=build-sanitize/bin/gptoss .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/serve/test_json_schema.py >"$schema_log" 2>&1 &
schema_pid=$!
# The Python extension: with CUDA only where a GPU can run it (CI compiles CUDA above).
py_cuda=OFF; nvidia-smi -L >/dev/null 2>&1 && py_cuda=ON
stage python-install env GPTOSS_CUDA=$py_cuda .venv/bin/pip install -q .
stage pytest .venv/bin/python -m pytest -q python/tests
# The harmony layer against openai-harmony, with the release and the sanitizer builds' tool.
stage pytest-server .venv/bin/python -m pytest -q tests/server
stage pytest-server-sanitize env GPTOSS_HARMONY_TOOL=build-sanitize/tests/server/harmony_tool \
    .venv/bin/python -m pytest -q tests/server
# gptoss serve through the openai client (functional, errors, load), release and sanitizer builds.
stage pytest-serve .venv/bin/python -m pytest -q tests/serve
serve_sanitize() {
    env GPTOSS_BIN=build-sanitize/bin/gptoss .venv/bin/python -m pytest -q tests/serve \
        --ignore=tests/serve/test_json_schema.py
    local rc=$? rc_schema=0
    wait "$schema_pid" || rc_schema=$?
    echo "--- tests/serve/test_json_schema.py (run beside the stages above):"
    cat "$schema_log"
    rm -f "$schema_log"
    [ "$rc" -eq 0 ] && [ "$rc_schema" -eq 0 ]
}
stage pytest-serve-sanitize serve_sanitize

if [ ${#failed_names[@]} -gt 0 ]; then echo "failed suites: ${failed_names[*]}"; fi
echo "time: stages $((SECONDS - t_all)) s, set-up $t_all s"
echo "suites: $passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
