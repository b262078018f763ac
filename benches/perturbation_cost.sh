#!/usr/bin/env bash
# What the model-agnostic perturbation methods cost beside single-pass gradient methods, and
# how faithful each is, on SmolLM2-135M (models/smollm2.gguf from scripts/fetch-models.sh):
# the median of 3 runs of each method, then one `gradlens evaluate` of all of them (the same
# target, pad baseline). Prints a Markdown table for the README.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
bin=target/release/gradlens
model=models/smollm2.gguf
prompt=${PROMPT:-"The Eiffel Tower is located in the city of"}
methods=${METHODS:-saliency,input-x-gradient,attnlrp,integrated-gradients,occlusion,feature-ablation,shapley-sampling,kernel-shap,lime}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for m in ${methods//,/ }; do
  $bin attribute --model $model --prompt "$prompt" --method "$m" --baseline pad --repeat 3 \
    --format json --output "$tmp/$m.json" 2>/dev/null
done
$bin evaluate --model $model --prompt "$prompt" --methods "$methods" --format json \
  --output "$tmp/evaluate.json" 2>/dev/null
python3 - "$tmp" "$methods" "$($bin attribute --help | sed -n '/^Methods/,$p' | tail -n +2)" <<'PY'
import json, sys
tmp, methods, help_text = sys.argv[1], sys.argv[2].split(","), sys.argv[3].splitlines()
cost = {}
for first, second in zip(help_text[::2], help_text[1::2]):
    cost[first.split()[0]] = second.strip().rsplit(" [", 1)[0]
e = json.load(open(f"{tmp}/evaluate.json"))
base = json.load(open(f"{tmp}/{methods[0]}.json"))["elapsed_ms"]
print(f"{len(e['tokens'])} tokens, F(x) = {e['target_score']:.3f}, F(pad) = {e['baseline_score']:.3f}\n")
print("| method | passes | median ms | × " + methods[0] + " | deletion AUC ↓ | insertion AUC ↑ | comprehensiveness ↑ | sufficiency ↓ | AOPC ↑ |")
print("|---|---|---|---|---|---|---|---|---|")
for m, f in zip(methods, e["methods"]):
    ms = json.load(open(f"{tmp}/{m}.json"))["elapsed_ms"]
    print(f"| {m} | {cost[m]} | {ms:.0f} | {ms / base:.1f} | {f['deletion_auc']:.2f} | "
          f"{f['insertion_auc']:.2f} | {f['comprehensiveness']:.2f} | {f['sufficiency']:.2f} | {f['aopc']:.2f} |")
PY
