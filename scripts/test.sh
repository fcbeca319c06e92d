#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite: unit tests (fast tier),
# executed notebooks (nbmake) and the documentation build (warnings are errors).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg PYTHONHASHSEED=0 KETABAYES_PROGRESS=0
status=0
.venv/bin/python -m pytest -q || status=$?
# pytest exits 5 when no test was collected: that is a failure of the suite, not a pass
if [ "$status" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
[ "$status" -eq 0 ] || exit "$status"
if [ -d notebooks ] && ls notebooks/*.ipynb >/dev/null 2>&1; then
  .venv/bin/python -m pytest -q -p no:cacheprovider --nbmake notebooks/ -o addopts=""
fi
if [ -f docs/conf.py ]; then
  rm -rf docs/_build
  .venv/bin/python -m sphinx -W --keep-going -q -b html docs docs/_build/html
fi
echo "All checks passed."
