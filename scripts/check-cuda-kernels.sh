#!/usr/bin/env bash
# Compiles every CUDA kernel with NVRTC for sm_80 and sm_90 without a GPU or a CUDA toolkit.
# libnvrtc comes from $NVRTC_LIB, the system, or the PyPI package nvidia-cuda-nvrtc (installed
# into .cache/nvrtc on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${NVRTC_LIB:-}"
if [ -z "$lib" ]; then
  lib="$(ldconfig -p 2>/dev/null | awk '/libnvrtc\.so/ {print $NF; exit}')"
fi
if [ -z "$lib" ]; then
  lib="$(ls .cache/nvrtc/nvidia/cu*/lib/libnvrtc.so.* .cache/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.* 2>/dev/null | head -1 || true)"
fi
if [ -z "$lib" ]; then
  python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --target .cache/nvrtc nvidia-cuda-nvrtc
  lib="$(ls .cache/nvrtc/nvidia/cu*/lib/libnvrtc.so.* .cache/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.* 2>/dev/null | head -1 || true)"
  [ -n "$lib" ] || { echo "libnvrtc not found after installing nvidia-cuda-nvrtc" >&2; exit 1; }
fi
exec python3 scripts/check_cuda_kernels.py "$lib" sm_80 sm_90
