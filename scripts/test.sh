#!/usr/bin/env bash
# Fresh machine -> passing tests: venv, the test extra, Debian's Fashion-MNIST, ruff, the oldest-versions
# check (scripts/test-oldest.sh), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

# Debian's packages: the Fashion-MNIST data set, and Chromium for the browser example's test.
missing=""
[ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
command -v chromium >/dev/null || missing="$missing chromium"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq $missing >/dev/null
  else
    echo "warning: not installed:$missing; tests that need them will be skipped" >&2
  fi
fi
# npm's packages for the Node and browser examples (their install scripts fetch extra binaries from a host
# that is not needed: the CPU binaries are inside the packages).
if command -v npm >/dev/null; then
  for example in examples/node examples/web; do
    [ -d "$example/node_modules" ] || npm ci --ignore-scripts --no-audit --no-fund --silent --prefix "$example"
  done
else
  echo "warning: npm is not installed; the Node and browser example tests will be skipped" >&2
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -e ".[test]"

"$VENV/bin/ruff" check .
# The runtime at its oldest declared versions, without torch (verify, predict, transforms byte-identical).
VENV_CURRENT="$VENV" bash scripts/test-oldest.sh
# One worker per core, each taking whole files (module fixtures such as a training run are built once).
"$VENV/bin/python" -m pytest -n auto --dist loadfile "$@"
