#!/usr/bin/env bash
# Median time of every method on SmolLM2-135M (its Q4_1 GGUF, or MODEL=...; from scripts/fetch-models.sh),
# default options, pad baseline, 3 runs each. Prints a Markdown table for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/gradlens
prompt=${PROMPT:-"The capital of France is"}
model=${MODEL:-models/smollm2.gguf}
help=$($bin attribute --help | sed -n '/^Methods/,$p' | tail -n +2)
echo "| method | cost (forward/backward passes) | median ms |"
echo "|---|---|---|"
# The help lists each method on one line and its cost on the next.
echo "$help" | paste - - | while IFS=$'\t' read -r first cost; do
  m=$(echo "$first" | awk '{print $1}')
  cost=$(echo "$cost" | sed 's/^ *//; s/ \[[a-z]*\]$//')
  ms=$($bin attribute --model "$model" --prompt "$prompt" --method "$m" --baseline pad \
        --repeat 3 --format json 2>/dev/null |
      python3 -c 'import json,sys; print(round(json.load(sys.stdin)["elapsed_ms"]))')
  echo "| $m | $cost | $ms |"
done
