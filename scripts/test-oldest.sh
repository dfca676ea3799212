#!/usr/bin/env bash
# The runtime at the oldest versions pyproject.toml declares (numpy, onnxruntime, Pillow, click), without torch.
#
#   bash scripts/test-oldest.sh          # part of scripts/test.sh, so of CI
#
# In a separate runtime-only venv (.venv-oldest): install each dependency at its declared minimum and edgeinfer
# itself (not editable), then check that
#   1. the bundled model passes its self-test (`edgeinfer verify`: preprocessing bit-exact, outputs in tolerance);
#   2. `edgeinfer predict examples` predicts the classes it predicts with the current versions (.venv);
#   3. the transforms give byte-identical outputs to the current versions' (scripts/platform_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OLDEST_VENV:-.venv-oldest}
CURRENT=${VENV_CURRENT:-.venv}
pins=$(python3 -c 'import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
print(" ".join(re.sub(r">=", "==", d) for d in deps))')
echo "== oldest supported versions: $pins"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
VENV=$(cd "$VENV" && pwd) CURRENT=$(cd "$CURRENT" && pwd)
"$VENV/bin/python" -m pip install -q $pins
"$VENV/bin/python" -m pip install -q --no-deps --force-reinstall . 2>/dev/null
"$VENV/bin/python" -m pip check

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$VENV/bin/edgeinfer" verify)  # from elsewhere: the installed package, not ./edgeinfer
# Scores may move by an output quantization step between onnxruntime versions (the self-test bounds that);
# the predicted classes may not.
"$VENV/bin/edgeinfer" predict examples | cut -f1,2 > "$work/oldest.txt"
"$CURRENT/bin/edgeinfer" predict examples | cut -f1,2 > "$work/current.txt"
diff "$work/current.txt" "$work/oldest.txt" && echo "predict examples: the same classes"
"$VENV/bin/python" scripts/platform_check.py report > "$work/oldest.json"
"$CURRENT/bin/python" scripts/platform_check.py report > "$work/current.json"
"$CURRENT/bin/python" scripts/platform_check.py compare "$work/current.json" "$work/oldest.json"
