#!/usr/bin/env bash
# Create .venv with Python >= 3.12 and install ketabayes (editable) with test and docs extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=""
for cand in python3.12 python3.13 python3; do
  if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
    PY="$cand"; break
  fi
done
if [ -z "$PY" ] && command -v pyenv >/dev/null 2>&1; then
  # .python-version pins 3.12; pyenv resolves python3 to it inside the checkout
  v=$(pyenv versions --bare | grep -E '^3\.1[2-9]' | head -n 1 || true)
  [ -n "$v" ] && PY="$(pyenv root)/versions/$v/bin/python"
fi
if [ -z "$PY" ]; then
  echo "ketabayes needs Python >= 3.12 (python3 here is $(python3 --version 2>&1)). Install it, e.g. 'pyenv install 3.12'." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)'; then
  rm -rf .venv
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test,docs]"
.venv/bin/python -c "import ketabayes, pymc, arviz; print('ketabayes', ketabayes.__version__, '| PyMC', pymc.__version__, '| ArviZ', arviz.__version__)"
