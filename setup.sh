#!/usr/bin/env bash
# One-command setup: ./setup.sh
# Creates .venv, installs the pinned torch stack, avalanche-lib, transformers, learn2learn 0.2.0
# (built from its sdist with re-generated Cython sources, as no Python 3.11 wheel exists), then this
# project in editable mode with its dev extras. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}
BUILD=.build
step() { printf '\n==> %s\n' "$*"; }
fail() { printf '\nsetup.sh: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "command on line $LINENO exited with status $?"' ERR

step "Python: $($PY --version 2>&1)"
if [ ! -x "$VENV/bin/python" ]; then
  step "creating virtual environment $VENV"
  $PY -m venv "$VENV" || fail "python3 -m venv failed (install python3-venv)"
fi
PIP="$VENV/bin/python -m pip"
VPY="$VENV/bin/python"
$PIP install -q --upgrade "pip>=24" "setuptools>=68" wheel

have() { $VPY - "$@" <<'PYEOF' 2>/dev/null
import sys, importlib.metadata as m
for spec in sys.argv[1:]:
    name, _, ver = spec.partition("==")
    try:
        v = m.version(name)
    except m.PackageNotFoundError:
        sys.exit(1)
    if ver and v.split("+")[0] != ver:
        sys.exit(1)
PYEOF
}

if have torch==2.14.1 torchvision==0.29.1 torchaudio==2.11.0; then
  step "torch stack already installed"
else
  step "installing torch 2.14.1 / torchvision 0.29.1 / torchaudio 2.11.0 (large, a few minutes)"
  $PIP install "torch==2.14.1" "torchvision==0.29.1" "torchaudio==2.11.0"
fi

if have learn2learn==0.2.0; then
  step "learn2learn 0.2.0 already installed"
else
  step "building learn2learn 0.2.0 from its sdist (Cython sources re-generated for this Python)"
  $PIP install -q "cython>=3" "numpy>=2" "gym"
  rm -rf "$BUILD/l2l" && mkdir -p "$BUILD/l2l"
  # only learn2learn itself as source; its build deps may be wheels (building Cython from source takes minutes)
  $PIP download -q --no-deps --no-binary learn2learn "learn2learn==0.2.0" -d "$BUILD/l2l"
  tar -xzf "$BUILD"/l2l/learn2learn-0.2.0.tar.gz -C "$BUILD/l2l"
  # Run from the source folder in a subshell only for cythonize/pip; never import from there.
  ( cd "$BUILD/l2l/learn2learn-0.2.0" && "../../../$VENV/bin/cythonize" -3 -q learn2learn/data/*.pyx \
      && "../../../$VENV/bin/python" -m pip install -q --no-build-isolation . )
fi

step "installing ser-adapt (editable) with dev extras"
$PIP install -q -e ".[dev]"

# learn2learn's dependency qpth pulls numpy 1.x; numpy>=2 is what pandas 3 / opensmile need and
# learn2learn's MAML/MetaSGD/TaskDataset work with it.
if ! $VPY -c 'import numpy, sys; sys.exit(0 if int(numpy.__version__.split(".")[0]) >= 2 else 1)'; then
  step "re-installing numpy>=2 (qpth downgraded it)"
  $PIP install -q "numpy>=2"
fi

step "checking imports"
$VPY - <<'PYEOF'
import torch, torchaudio, transformers, avalanche, learn2learn, numpy, sklearn
import adapt, strategies, scenarios
print(f"torch {torch.__version__}, torchaudio {torchaudio.__version__}, transformers {transformers.__version__}, "
      f"numpy {numpy.__version__}, learn2learn {learn2learn.__version__}")
PYEOF
step "done. Run the tests with: .venv/bin/python -m pytest"
