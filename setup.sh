#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with the project and its test tools.
#
#   ./setup.sh                 # creates .venv (Python >= 3.10), installs torch + the project [dev]
#   IMAC_VENV=none ./setup.sh  # installs into the Python environment that is active now
#   IMAC_EXTRAS=dev,gpu ./setup.sh
#
# Torch: an installed torch is never replaced (a GPU user keeps their CUDA build). With no torch,
# a machine with an NVIDIA driver gets the default (CUDA) wheel; a CPU-only machine gets PyTorch's
# CPU build: first from pip's configured sources (a local wheel or mirror), else from PyTorch's
# CPU index (TORCH_CPU_INDEX).
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
VENV=${IMAC_VENV:-.venv}
EXTRAS=${IMAC_EXTRAS:-dev}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "[setup] error: $PYTHON is not Python >= 3.10 (set PYTHON=python3.11, for example)" >&2
  exit 1
fi

if [ "$VENV" != "none" ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[setup] creating virtual environment $VENV with $($PYTHON --version)"
    "$PYTHON" -m venv "$VENV"
  fi
  PY="$VENV/bin/python"
else
  PY=$(command -v "$PYTHON")
fi

if "$PY" -c "import torch" 2>/dev/null; then
  echo "[setup] keeping installed torch $("$PY" -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "[setup] NVIDIA GPU found: installing the default (CUDA) torch build"
  "$PY" -m pip install "torch>=2.3"
else
  echo "[setup] no GPU: installing the CPU build of torch $TORCH_VERSION"
  "$PY" -m pip install "torch==${TORCH_VERSION}+cpu" 2>/dev/null \
    || "$PY" -m pip install "torch==${TORCH_VERSION}+cpu" --extra-index-url "$TORCH_CPU_INDEX"
fi

echo "[setup] installing the project (editable) with extras [$EXTRAS]"
"$PY" -m pip install -e ".[${EXTRAS}]"
"$PY" -c "import torch, imac, bench, metrics, userstudy; print('[setup] ok: torch', torch.__version__, '| cuda available:', torch.cuda.is_available())"
