#!/usr/bin/env bash
# The main job: set up, build, then run every kernel on every available backend against
# the float64 reference and print a table (op, backend, shape, max error, pass, time, GB/s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
bash tools/build.sh
exec build/tests/harness --table "$@"
