#!/usr/bin/env python3
"""AttnLRP and CP-LRP references from LXT (efficient mode) for the tiny fixture models.

LXT 2.1 needs transformers 4.x, so this runs in its own virtualenv:
    python -m venv .venv-lxt && .venv-lxt/bin/pip install torch "transformers==4.51.3" lxt
    .venv-lxt/bin/python tools/reference/make_lxt_fixtures.py
LXT patches transformers' modules globally, so each (model, variant) runs in a fresh process.
SmolLM2 needs models/smollm2 (scripts/fetch-models.sh), Gemma 3 270M models/gemma3-270m
(`gradlens convert models/gemma3-270m.gguf models/gemma3-270m`: transformers 4.x reads no
gemma3 GGUF). Writes
tests/fixtures/lxt-{model}-{variant}.json: the relevance map x ⊙ ∂F/∂x (seeded with 1 on
the target logit) over [tokens, hidden] and its per-token sums. Not run by CI.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
# (model folder, fixture with the prompt's token ids, LXT module, variants LXT ships for it)
CASES = [
    ("smollm2", "smollm2", "llama", ["attnlrp"]),
    ("gemma3-270m", "gemma3-270m", "gemma3", ["attnlrp"]),
    ("tiny-llama", "tiny-llama", "llama", ["attnlrp", "cp-lrp"]),
    ("tiny-gpt2", "tiny-gpt2", "gpt2", ["attnlrp", "cp-lrp"]),
    ("tiny-bert-cls", "tiny-bert-cls", "bert", ["attnlrp"]),
    ("tiny-qwen2", "tiny-qwen2", "qwen2", ["attnlrp", "cp-lrp"]),
    ("tiny-qwen3", "tiny-qwen3", "qwen3", ["attnlrp", "cp-lrp"]),
    ("tiny-gemma3", "tiny-gemma3", "gemma3", ["attnlrp", "cp-lrp"]),
]
# transformers 4.x reads rope_theta at the top level (the tiny families' configs, written by
# 5.x, keep it in rope_parameters), and applies Qwen2's sliding window to every layer where
# 5.x follows max_window_layers: the Qwen models are compared with their window off.
# Gemma 3's per-layer-type rope_parameters are 4.x's rope_theta, rope_local_base_freq,
# rope_scaling (global layers) and sliding_window_pattern.
OVERRIDES = {"qwen2": dict(rope_theta=500.0, use_sliding_window=False, sliding_window=None),
             "qwen3": dict(rope_theta=500.0),
             "gemma3": dict(rope_theta=500.0, rope_local_base_freq=10.0, sliding_window_pattern=2,
                            rope_scaling={"rope_type": "linear", "factor": 2.0})}


def run_one(model_name, fixture, module, variant):
    import importlib
    import torch
    from lxt.efficient import monkey_patch

    lxt_models = importlib.import_module(f"lxt.efficient.models.{module}")
    hf = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
    patch_map = lxt_models.attnLRP if variant == "attnlrp" else lxt_models.cp_LRP
    monkey_patch(hf, patch_map)

    # SmolLM2 is the folder scripts/fetch-models.sh converts from the GGUF (gradlens convert).
    real = model_name in ("smollm2", "gemma3-270m")
    path = os.path.join(ROOT, "models", model_name) if real else os.path.join(FIX, "models", model_name)
    if module == "llama":
        model = hf.LlamaForCausalLM.from_pretrained(path, attn_implementation="eager")
    elif module == "gpt2":
        model = hf.GPT2LMHeadModel.from_pretrained(path, attn_implementation="eager")
    elif module in OVERRIDES and not real:
        cls = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM", "gemma3": "Gemma3ForCausalLM"}[module]
        model = getattr(hf, cls).from_pretrained(path, attn_implementation="eager", **OVERRIDES[module])
    elif module == "gemma3":
        model = hf.Gemma3ForCausalLM.from_pretrained(path, attn_implementation="eager")
    else:
        model = hf.BertForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    model.eval().requires_grad_(False)
    ids = json.load(open(os.path.join(FIX, fixture + ".json")))["token_ids"]
    # The embedding module, not its weight: Gemma's scales the rows by sqrt(hidden).
    x = model.get_input_embeddings()(torch.tensor(ids)).unsqueeze(0).detach().requires_grad_(True)
    if module == "bert":
        target = 1
        score = model(inputs_embeds=x).logits[0, target]
    else:
        logits = model(inputs_embeds=x, use_cache=False).logits[0, -1]
        target = int(logits.argmax())
        score = logits[target]
    score.backward()
    relevance = (x.grad * x)[0].detach()
    out = {"model": model_name, "variant": variant, "token_ids": ids, "target": target,
           "target_score": float(score), "relevance": [round(float(v), 8) for v in relevance.reshape(-1)],
           "scores": [round(float(v), 8) for v in relevance.sum(-1)]}
    json.dump(out, open(os.path.join(FIX, f"lxt-{model_name}-{variant}.json"), "w"))
    print(f"{model_name} {variant}: target {target}, score {float(score):.4f}, "
          f"sum relevance {float(relevance.sum()):.4f}")


if __name__ == "__main__":
    if len(sys.argv) == 5:
        run_one(*sys.argv[1:])
    else:
        for model_name, fixture, module, variants in CASES:
            for variant in variants:
                subprocess.run([sys.executable, __file__, model_name, fixture, module, variant], check=True)
