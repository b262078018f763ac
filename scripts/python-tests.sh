#!/usr/bin/env bash
# The Python package's tests: builds python/ into the virtualenv .venv-py with maturin and
# runs pytest. It builds into cargo's own target/ with the dev profile (whose settings are the
# test profile's, see Cargo.toml) and the features `cargo test --features wgpu,cuda` uses, so
# the gradlens crate compiled for the Rust tests is reused: only the binding compiles. Needs
# python3 with venv and pip (and PyPI the first time).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-py
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "maturin>=1.5,<2" pytest numpy pyarrow "ray[data]>=2.9" "selenium>=4.10"
# maturin installs into the active virtualenv (VIRTUAL_ENV), else a .venv it finds nearby.
VIRTUAL_ENV="$PWD/$venv" CARGO_TARGET_DIR="$PWD/target" "$venv/bin/maturin" develop -q \
  -m python/Cargo.toml --features wgpu,cuda
# The CLI the tests compare against: the one `cargo test` built.
export GRADLENS_BIN="${GRADLENS_BIN:-$PWD/target/debug/gradlens}"
"$venv/bin/python" -m pytest -q python/tests "$@"
