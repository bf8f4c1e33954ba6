#!/bin/sh
# Writes a Hugging Face `kernels` layout of the installed gpt_oss_kernels package:
#   OUTDIR/build/torch-universal/{metadata.json,gpt_oss_kernels/}
# (metadata.json records the backend the extension was built for and the files' digest).
# Load it with kernels.get_local_kernel(Path(OUTDIR)).
# Usage: tools/build-kernels-layout.sh OUTDIR [--name NAME]
# (install the package first: .venv/bin/pip install .). PYTHON selects the interpreter
# (default: the repository's .venv, else python3).
set -eu
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [--name NAME]" >&2
    exit 2
fi
python=${PYTHON:-}
if [ -z "$python" ]; then
    venv="$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python"
    if [ -x "$venv" ]; then python=$venv; else python=python3; fi
fi
exec "$python" -m gpt_oss_kernels.build_kernels_layout "$@"
