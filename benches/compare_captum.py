#!/usr/bin/env python3
"""Times the same attributions in gradlens and in PyTorch + Captum on this machine, in one run.

PyTorch runs with every parameter frozen (requires_grad_(False)), the best it can do. Both sides
use the same model, text, target (cosine similarity of mean-pooled MiniLM embeddings with a
compare text) and all CPU cores. A shared machine drifts by tens of percent over a minute, so
the two sides alternate in --rounds rounds of --repeat runs each, and each side reports the
median over all its runs of one attribution: tokenising both texts, the compare text's
forward and the attribution itself (model loading excluded on both sides).

Usage: python benches/compare_captum.py [--model models/minilm] [--repeat 5] [--rounds 3]
Needs: cargo build --release; pip install torch transformers captum
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
from captum.attr import IntegratedGradients, Saliency
from tokenizers import Tokenizer
from transformers import BertModel

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAIRS = [
    ("The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps above a sleepy hound."),
    ("Attribution methods explain which words a model relied on when it made a prediction.",
     "Explanations show the evidence behind a neural network's output."),
]


def captum_times(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def gradlens_times(model, prompt, compare, method, repeat):
    exe = os.path.join(ROOT, "target", "release", "gradlens")
    args = [exe, "attribute", "--model", model, "--prompt", prompt, "--compare-text", compare,
            "--method", method, "--steps", "50", "--format", "json"]
    # One process: a warm-up run, then `repeat` timed runs.
    out = subprocess.run(args + ["--repeat", str(repeat + 1)], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["repeat_ms"][1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "minilm"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_grad_enabled(True)
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False).eval()
    model.requires_grad_(False)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    emb = model.get_input_embeddings().weight
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}")
    print(f"{'method':<24}{'tokens':>7}{'captum ms':>12}{'gradlens ms':>13}{'speed-up':>10}")
    for prompt, compare in PAIRS:
        ids = tok.encode(prompt).ids

        def prepare():
            """What gradlens' elapsed_ms also covers: tokenising, embedding, the compare forward."""
            x = emb[torch.tensor(tok.encode(prompt).ids)].unsqueeze(0).detach()
            with torch.no_grad():
                h = model(inputs_embeds=emb[torch.tensor(tok.encode(compare).ids)].unsqueeze(0)).last_hidden_state
                ref = torch.nn.functional.normalize(h.mean(1), dim=-1)[0]

            def cosine(e):
                return torch.nn.functional.normalize(model(inputs_embeds=e).last_hidden_state.mean(1), dim=-1) @ ref
            return x, cosine

        def ig():
            x, cosine = prepare()
            return IntegratedGradients(cosine).attribute(
                x, baselines=torch.zeros_like(x), method="gausslegendre", n_steps=50)

        def saliency():
            x, cosine = prepare()
            return Saliency(cosine).attribute(x, abs=False)

        runs = {"integrated-gradients": ig, "saliency": saliency}
        for method, fn in runs.items():
            cs, gs = [], []
            for _ in range(args.rounds):
                cs += captum_times(fn, args.repeat)
                gs += gradlens_times(args.model, prompt, compare, method, args.repeat)
            c, g = statistics.median(cs), statistics.median(gs)
            print(f"{method:<24}{len(ids):>7}{c:>12.1f}{g:>13.1f}{c / g:>9.2f}x")


if __name__ == "__main__":
    main()
