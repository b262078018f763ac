#!/usr/bin/env python3
"""Times AttnLRP in gradlens and in LXT (efficient mode, parameters frozen) on this machine,
in one run, alternating the two sides over --rounds rounds of --repeat warm runs; each side
reports the median over its runs of one attribution (tokenising, the compare text's forward,
one forward and one backward). Models: MiniLM-L6 (cosine target) and SmolLM2-135M-Instruct
(the top next-token logit): LXT on the f32 folder models/smollm2 (converted by
scripts/fetch-models.sh); gradlens on the same folder and on the Q4_1 GGUF it came from,
computed as stored.

LXT 2.1 needs transformers 4.x, so run this in the LXT virtualenv:
    python -m venv .venv-lxt && .venv-lxt/bin/pip install torch "transformers==4.51.3" lxt
    cargo build --release && .venv-lxt/bin/python benches/compare_lxt.py
"""
import argparse
import json
import os
import statistics
import subprocess
import time

import torch
from lxt.efficient import monkey_patch
from tokenizers import Tokenizer
from transformers.models.bert import modeling_bert
from transformers.models.llama import modeling_llama

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROMPTS = ["The capital of France is",
           "Explain in one sentence why the sky is blue, and mention the role of the atmosphere."]
PAIRS = [
    ("The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps above a sleepy hound."),
    ("Attribution methods explain which words a model relied on when it made a prediction.",
     "Explanations show the evidence behind a neural network's output."),
]


def timed(once, repeat):
    """A warm-up call, then `repeat` timed calls (ms)."""
    once()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        once()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def lxt_times(model, emb, tok, prompt, compare, repeat):
    def once():
        x = emb[torch.tensor(tok.encode(prompt).ids)].unsqueeze(0).detach().requires_grad_(True)
        with torch.no_grad():
            h = model(inputs_embeds=emb[torch.tensor(tok.encode(compare).ids)].unsqueeze(0)).last_hidden_state
            ref = torch.nn.functional.normalize(h.mean(1), dim=-1)[0]
        score = torch.nn.functional.normalize(model(inputs_embeds=x).last_hidden_state.mean(1), dim=-1)[0] @ ref
        score.backward()
        return (x.grad * x).sum(-1)
    return timed(once, repeat)


def lxt_llm_times(model, tok, prompt, repeat):
    emb = model.get_input_embeddings().weight

    def once():
        x = emb[torch.tensor(tok.encode(prompt).ids)].unsqueeze(0).detach().requires_grad_(True)
        logits = model(inputs_embeds=x, use_cache=False).logits[0, -1]
        logits[logits.argmax()].backward()
        return (x.grad * x).sum(-1)
    return timed(once, repeat)


def gradlens_times(model_dir, prompt, compare, repeat):
    exe = os.path.join(ROOT, "target", "release", "gradlens")
    args = [exe, "attribute", "--model", model_dir, "--prompt", prompt, "--method", "attnlrp",
            "--format", "json", "--repeat", str(repeat + 1)]
    if compare is not None:
        args += ["--compare-text", compare]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["repeat_ms"][1:]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "minilm"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    monkey_patch(modeling_bert)
    monkey_patch(modeling_llama)
    model = modeling_bert.BertModel.from_pretrained(args.model, add_pooling_layer=False, attn_implementation="eager")
    model.eval().requires_grad_(False)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    emb = model.get_input_embeddings().weight
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {args.model}")
    print(f"{'model':<10}{'tokens':>7}{'LXT ms':>10}{'gradlens ms':>13}{'speed-up':>10}"
          f"{'gguf ms':>10}{'speed-up':>10}")
    smollm2 = os.path.join(ROOT, "models", "smollm2")
    llm = modeling_llama.LlamaForCausalLM.from_pretrained(smollm2, attn_implementation="eager").eval().requires_grad_(False)
    llm_tok = Tokenizer.from_file(os.path.join(smollm2, "tokenizer.json"))
    gguf = os.path.join(ROOT, "models", "smollm2.gguf")
    for prompt in PROMPTS:
        ls, gs, qs = [], [], []
        for _ in range(args.rounds):
            ls += lxt_llm_times(llm, llm_tok, prompt, args.repeat)
            gs += gradlens_times(smollm2, prompt, None, args.repeat)
            qs += gradlens_times(gguf, prompt, None, args.repeat)
        lm, gm, qm = statistics.median(ls), statistics.median(gs), statistics.median(qs)
        print(f"{'smollm2':<10}{len(llm_tok.encode(prompt).ids):>7}{lm:>10.1f}{gm:>13.1f}{lm / gm:>9.2f}x"
              f"{qm:>10.1f}{lm / qm:>9.2f}x")
    for prompt, compare in PAIRS:
        ls, gs = [], []
        for _ in range(args.rounds):
            ls += lxt_times(model, emb, tok, prompt, compare, args.repeat)
            gs += gradlens_times(args.model, prompt, compare, args.repeat)
        lm, gm = statistics.median(ls), statistics.median(gs)
        print(f"{'minilm':<10}{len(tok.encode(prompt).ids):>7}{lm:>10.1f}{gm:>13.1f}{lm / gm:>9.2f}x")


if __name__ == "__main__":
    main()
