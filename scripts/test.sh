#!/usr/bin/env bash
# Fresh machine -> passing tests: venv, the test extra, Debian's Fashion-MNIST, ruff, the oldest-versions
# check (scripts/test-oldest.sh), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "warning: Debian's dataset-fashion-mnist is not installed; tests that need it will be skipped" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"

"$VENV/bin/ruff" check .
# The runtime at its oldest declared versions, without torch (verify, predict, transforms byte-identical).
VENV_CURRENT="$VENV" bash scripts/test-oldest.sh
"$VENV/bin/python" -m pytest "$@"
