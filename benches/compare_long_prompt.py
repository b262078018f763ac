#!/usr/bin/env python3
"""A long prompt on SmolLM2: gradlens against PyTorch + Captum on this machine, in one run.

The prompt is --chars characters of this repository's README (about 350 tokens for 1200). Both
sides attribute the same next-token logit (the token gradlens resolves) to the input
embeddings: saliency, and IG with --steps points from the zero baseline in one batch on the
Captum side. Each side reports its first and its second run in one process (model loading
excluded): the first pays for touching fresh memory, the second is the steady state.

Usage: python benches/compare_long_prompt.py [--model models/smollm2] [--chars 1200] [--steps 8]
Needs: cargo build --release; pip install torch transformers captum
"""
import argparse
import json
import os
import subprocess
import time

import torch
from captum.attr import IntegratedGradients, Saliency
from transformers import AutoModelForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2"))
    ap.add_argument("--chars", type=int, default=1200)
    ap.add_argument("--steps", type=int, default=8)
    args = ap.parse_args()

    torch.set_num_threads(os.cpu_count())
    hf = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    hf.requires_grad_(False)
    emb = hf.get_input_embeddings().weight
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()[2000:2000 + args.chars]

    print("| method | tokens | gradlens first, second run | Captum first, second run | speed-up (second runs) |")
    print("|---|---:|---|---|---:|")
    for method in ["saliency", "integrated-gradients"]:
        cmd = [os.path.join(ROOT, "target", "release", "gradlens"), "attribute", "--model", args.model,
               "--prompt", text, "--method", method, "--steps", str(args.steps), "--format", "json",
               "--repeat", "2"]
        g = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        ids = torch.tensor([g["token_ids"]])
        target = g["target"]["id"]
        x = emb[ids].detach()

        def forward(inputs):
            return hf(inputs_embeds=inputs).logits[:, -1, target]

        def attribute():
            if method == "saliency":
                return Saliency(forward).attribute(x.clone().requires_grad_(True), abs=False)
            return IntegratedGradients(forward).attribute(
                x, baselines=torch.zeros_like(x), n_steps=args.steps, internal_batch_size=args.steps)

        captum = []
        for _ in range(2):
            t = time.perf_counter()
            attribute()
            captum.append((time.perf_counter() - t) * 1e3)
        name = method if method == "saliency" else f"IG, {args.steps} steps"
        ours = g["repeat_ms"]
        print(f"| {name} | {len(g['token_ids'])} | {ours[0]:.0f}, {ours[1]:.0f} ms | "
              f"{captum[0]:.0f}, {captum[1]:.0f} ms | {captum[1] / ours[1]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
