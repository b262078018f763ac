#!/usr/bin/env python3
"""Adaptive IG in gradlens against Captum's fixed-step IG, on the same machine, in one run.

For each prompt, both sides attribute the same next-token logit of SmolLM2 (the token gradlens
resolves as the target) to the input embeddings, from the pad baseline (the pad token's
embedding at every position). Captum runs `IntegratedGradients` with `--steps` Gauss–Legendre
points in one batch; gradlens runs `--tolerance`. Each side reports its median time over
`--repeat` runs (model loading excluded on both sides) and its completeness error
|Σ attributions − (F(x) − F(x′))| / |F(x) − F(x′)|.

Usage: python benches/compare_adaptive_ig.py [--model models/smollm2] [--steps 128]
       [--tolerance 0.01] [--repeat 3]
Needs: cargo build --release; pip install torch transformers captum
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
from captum.attr import IntegratedGradients
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Prompts written for this benchmark; the tests use none of them.
PROMPTS = [
    "The capital of France is",
    "Water boils at a temperature of",
    "The largest planet in our solar system is",
    "My favourite colour is",
    "She opened the door and saw a",
    "The opposite of hot is",
]


def gradlens(model, prompt, tolerance):
    cmd = [os.path.join(ROOT, "target/release/gradlens"), "attribute", "--model", model,
           "--prompt", prompt, "--method", "integrated-gradients", "--tolerance", str(tolerance),
           "--baseline", "pad", "--format", "json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models/smollm2"))
    ap.add_argument("--steps", type=int, default=128)
    ap.add_argument("--tolerance", type=float, default=0.01)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    torch.set_num_threads(os.cpu_count())
    hf = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float32).eval()
    hf.requires_grad_(False)
    emb = hf.get_input_embeddings().weight
    pad = hf.config.pad_token_id

    print(f"| prompt | Captum, {args.steps} steps: time, \\|delta\\|/gap | "
          f"gradlens --tolerance {args.tolerance}: time, evaluations, \\|delta\\|/gap | speed-up |")
    print("|---|---|---|---|")
    for prompt in PROMPTS:
        runs = [gradlens(args.model, prompt, args.tolerance) for _ in range(args.repeat)]
        g = runs[0]
        g_ms = statistics.median(r["elapsed_ms"] for r in runs)
        g_gap = abs(g["target_score"] - g["baseline_score"])
        g_rel = abs(g["convergence_delta"]) / g_gap

        ids = torch.tensor([g["token_ids"]])
        target = g["target"]["id"]

        def forward(x):
            return hf(inputs_embeds=x).logits[:, -1, target]

        def attribute():
            x = emb[ids]
            base = emb[torch.full_like(ids, pad)]
            ig = IntegratedGradients(forward)
            attr, delta = ig.attribute(x, baselines=base, n_steps=args.steps,
                                       method="gausslegendre", return_convergence_delta=True)
            gap = (forward(x) - forward(base)).abs().item()
            return delta.abs().item() / gap

        attribute()  # warm-up
        times, c_rel = [], None
        for _ in range(args.repeat):
            t = time.perf_counter()
            c_rel = attribute()
            times.append((time.perf_counter() - t) * 1e3)
        c_ms = statistics.median(times)
        print(f"| {prompt} | {c_ms / 1e3:.1f} s, {100 * c_rel:.0f}% | {g_ms / 1e3:.1f} s, "
              f"{g['evaluations']}, {100 * g_rel:.2f}% | {c_ms / g_ms:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
