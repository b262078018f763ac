#!/usr/bin/env bash
# The GPU check: the CUDA kernel, stored-weight and end-to-end tests on a real NVIDIA device
# (GRADLENS_REQUIRE_CUDA=1, so a CUDA test that cannot run fails), then IG-50 and AttnLRP
# timed on models small enough to travel with the tree, then `gradlens bench --device cuda`
# (the device's limits and every kernel against them; its JSON record lands in $OUT). The GPU machine has no network and no
# Rust, so the work is split in two:
#
#   scripts/device-check.sh prepare   # here: release builds of the CLI and the GPU test
#                                     # binaries, MiniLM in f16, into device-check/ (ignored)
#   scripts/device-check.sh run       # there, from a copy of the tree carrying device-check/:
#                                     # results to $OUT (or device-check/out) as text
#
# `run` works without a GPU too where GRADLENS_CUDA_EMULATOR=1 (the host emulator), which is
# how the script itself is tested.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=device-check

prepare() {
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/models"
  # The test binaries: built once with their paths, listed by cargo's JSON messages.
  cargo test --release --features cuda --no-run --message-format=json \
      --test gpu_kernels --test gpu_end_to_end --test gguf |
    python3 -c '
import json, sys, shutil
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        shutil.copy(m["executable"], sys.argv[1] + "/bin/" + m["target"]["name"])
' "$dir"
  cargo build --release --features cuda
  cp target/release/gradlens "$dir/bin/gradlens"
  strip "$dir"/bin/* 2>/dev/null || true
  # Compressed, so that binaries and model fit the 64 MiB a GPU machine's copy may carry.
  gzip -9 "$dir"/bin/*
  # MiniLM with every matrix in f16 (the stored-weight kernels), from models/minilm.
  [ -f models/minilm/model.safetensors ] || ./scripts/fetch-models.sh
  python3 -m pip install -q --disable-pip-version-check numpy safetensors >/dev/null
  python3 - "$dir/models/minilm-f16" <<'PY'
import shutil, sys, numpy as np
from safetensors.numpy import load_file, save_file
out = sys.argv[1]
shutil.copytree("models/minilm", out, ignore=shutil.ignore_patterns("model.safetensors", "1_Pooling", "*.md"))
tensors = load_file("models/minilm/model.safetensors")
save_file({k: (v.astype(np.float16) if v.ndim == 2 and v.dtype == np.float32 else v) for k, v in tensors.items()},
          out + "/model.safetensors")
PY
  du -sh "$dir"
}

run() {
  local out="${OUT:-$dir/out}"
  mkdir -p "$out"
  [ -f "$dir/bin/gradlens.gz" ] || { echo "no $dir/bin: run 'scripts/device-check.sh prepare' first" >&2; exit 1; }
  local bin
  bin=$(mktemp -d)
  for f in "$dir"/bin/*.gz; do
    gunzip -c "$f" >"$bin/$(basename "$f" .gz)" && chmod +x "$bin/$(basename "$f" .gz)"
  done
  BENCH_JSON="$out/bench-cuda.json" checks "$bin" 2>&1 | tee "$out/device-check.txt"
  return "${PIPESTATUS[0]}"
}

checks() {
  local bin=$1 status=0
  export GRADLENS_REQUIRE_CUDA=1 GRADLENS_TEST_ROOT="$PWD" GRADLENS_BIN="$bin/gradlens"
  # NVRTC where the loader does not see it: a CUDA toolkit's, or the PyPI package's.
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
    local nvrtc
    nvrtc=$(ls /usr/local/cuda*/lib64/libnvrtc.so* /usr/local/cuda*/targets/*/lib/libnvrtc.so* 2>/dev/null | head -1 || true)
    [ -n "$nvrtc" ] || nvrtc=$(python3 -c 'import glob, site
print(next(iter(sorted(f for d in site.getsitepackages() for f in glob.glob(d + "/nvidia/*/lib/libnvrtc.so*"))), ""))' 2>/dev/null || true)
    [ -n "$nvrtc" ] && export LD_LIBRARY_PATH="$(dirname "$nvrtc")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  fi
  {
    echo "== device"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
      echo "no nvidia-smi (GRADLENS_CUDA_EMULATOR=${GRADLENS_CUDA_EMULATOR:-unset})"
    "$bin/gradlens" info --devices
    echo "== tests"
    for t in gpu_kernels gguf gpu_end_to_end; do
      "$bin/$t" --test-threads 1 2>&1 | grep -E '^test |test result' || { echo "FAILED: $t"; status=1; }
    done
    echo "== timings (median of 5 runs, ms; excludes loading)"
    local prompt="The quick brown fox jumps over the lazy dog."
    for model in tests/fixtures/models/tiny-llama tests/fixtures/models/tiny-bert "$dir/models/minilm-f16"; do
      local target=()
      case $model in *bert*|*minilm*) target=(--compare-text "A fast auburn fox leaps above a sleepy hound.") ;; esac
      for method in "integrated-gradients --steps 50" attnlrp; do
        for device in cpu cuda; do
          local ms
          # shellcheck disable=SC2086 # the method's words
          ms=$("$bin/gradlens" attribute --model "$model" --prompt "$prompt" "${target[@]}" \
                 --method $method --device "$device" --repeat "${REPEAT:-5}" --format json |
               python3 -c 'import json,sys; print(round(json.load(sys.stdin)["elapsed_ms"], 2))') ||
            { ms="FAILED"; status=1; }
          printf '%-14s %-34s %-5s %s\n' "$(basename "$model")" "$method" "$device" "$ms"
        done
      done
    done
    echo "== gradlens bench --device cuda (MiniLM in f16; JSON in ${BENCH_JSON:-nowhere})"
    "$bin/gradlens" bench --device cuda --model "$dir/models/minilm-f16" --budget "${BENCH_BUDGET:-20}" \
      ${BENCH_JSON:+--json "$BENCH_JSON"} || { echo "FAILED: bench"; status=1; }
  }
  return "$status"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: scripts/device-check.sh prepare|run" >&2; exit 2 ;;
esac
