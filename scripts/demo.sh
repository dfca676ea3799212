#!/usr/bin/env bash
# Fresh machine -> a prediction: install the runtime (numpy, onnxruntime, pillow, click; no torch)
# and classify the bundled example images with the bundled default model.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q .
"$VENV/bin/edgeinfer" predict "${@:-examples}"
