#!/usr/bin/env bash
# The main job: set up, build, then run every kernel on every available backend against
# the float64 reference and print a table, a row as soon as each (case, backend) has run:
# progress, op, backend, shape, max error and its tolerance, err/tol, result, time, GB/s,
# case. Then the skipped cases per backend (count and reason; their names go to
# build/tests/harness-skipped.txt) and "N passed, N failed, N skipped". Arguments go to
# the harness (--quick, --filter S, --backend B, --seed N, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
exec build/tests/harness --table "$@"
