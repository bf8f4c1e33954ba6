#!/usr/bin/env bash
# One-time set-up on a fresh Debian machine (idempotent): system packages for the build
# and tests, and a Python venv (.venv) with numpy, pytest, kernels, openai-harmony, openai and
# jsonschema for the Python tests.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(cmake make gcc g++ pkg-config libpcre2-dev libjansson-dev libmicrohttpd-dev python3-venv python3-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    echo "setup: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# kernels: the Hugging Face loader, for python/tests/test_kernels_layout.py; pinned because
# its get_local_kernel signature and metadata.json format change between releases.
kernels_version=0.19.1
.venv/bin/python -c "import numpy, pytest, importlib.metadata as m; assert m.version('kernels') == '$kernels_version'" \
    2>/dev/null || .venv/bin/pip install -q numpy pytest "kernels==$kernels_version"
# openai-harmony: the reference of the server's harmony layer (tests/server); pinned, as its
# rendering is what the tests compare with.
.venv/bin/pip show openai-harmony 2>/dev/null | grep -qx 'Version: 0.0.8' || .venv/bin/pip install -q openai-harmony==0.0.8
# openai: the official client the tests of gptoss serve drive the server with (tests/serve);
# pinned, as its request and stream parsing is what the tests exercise.
.venv/bin/pip show openai 2>/dev/null | grep -qx 'Version: 3.51.0' || .venv/bin/pip install -q openai==3.51.0
# jsonschema: the oracle of the server's structured outputs (tests/serve/test_json_schema.py:
# every reply validated); pinned, as its reading of the keywords is what the tests compare with.
.venv/bin/pip show jsonschema 2>/dev/null | grep -qx 'Version: 4.26.0' || .venv/bin/pip install -q jsonschema==4.26.0
