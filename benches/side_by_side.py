#!/usr/bin/env python3
"""gradlens against PyTorch on the same machine, in one run: AttnLRP against LXT (efficient
mode), saliency and integrated gradients (50 Gauss-Legendre steps, zero baseline) against
Captum, with every PyTorch parameter frozen (requires_grad_(False)), the best PyTorch can do.

Models: SmolLM2-135M-Instruct, the top next-token logit (gradlens on the Q4_1 GGUF, weights
as stored, and on the f32 folder `scripts/fetch-models.sh` converts from it; PyTorch on the f32
folder), and MiniLM-L6, the cosine similarity of mean-pooled embeddings with a compare text.

Every side is its own process (LXT's patch changes every Llama model in a process), which
loads the model, makes one warm-up run and times --repeat runs of one attribution: tokenising,
the forward pass that finds the target (or the compare text's), and the attribution itself.
The sides alternate over --rounds rounds; each cell is the median over all its runs, with the
largest peak RSS of its processes. The speed-up is PyTorch's time over gradlens'.

LXT 2.1 needs transformers 4.x, so run this in a virtualenv of its own:
    python -m venv .venv-lxt && .venv-lxt/bin/pip install torch "transformers==4.51.3" lxt captum
    cargo build --release && .venv-lxt/bin/python benches/side_by_side.py
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADLENS = os.path.join(ROOT, "target", "release", "gradlens")
SMOLLM2 = os.path.join(ROOT, "models", "smollm2")
MINILM = os.path.join(ROOT, "models", "minilm")
LLM_PROMPTS = ["The capital of France is",
               "Explain in one sentence why the sky is blue, and mention the role of the atmosphere."]
PAIRS = [("The quick brown fox jumps over the lazy dog.", "A fast auburn fox leaps above a sleepy hound."),
         ("Attribution methods explain which words a model relied on when it made a prediction.",
          "Explanations show the evidence behind a neural network's output.")]
METHODS = ["attnlrp", "saliency", "integrated-gradients"]


# ---------------------------------------------------------------------------- PyTorch side

def worker(kind, model_dir, method, text, compare, repeat):
    """Loads the model, times `repeat` attributions after a warm-up, prints their ms as JSON."""
    import torch
    from tokenizers import Tokenizer
    if method == "attnlrp":
        from lxt.efficient import monkey_patch
        from transformers.models.bert import modeling_bert
        from transformers.models.llama import modeling_llama
        monkey_patch(modeling_llama)
        monkey_patch(modeling_bert)
    from transformers import BertModel, LlamaForCausalLM
    torch.set_grad_enabled(True)
    attn = {"attn_implementation": "eager"} if method == "attnlrp" else {}
    if kind == "llm":
        model = LlamaForCausalLM.from_pretrained(model_dir, **attn)
    else:
        model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, **attn)
    model.eval().requires_grad_(False)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    emb = model.get_input_embeddings().weight

    def embed(t):
        return emb[torch.tensor(tok.encode(t).ids)].unsqueeze(0).detach()

    def target_fn():
        """F as a function of input embeddings, after the pass that fixes the target."""
        if kind == "llm":
            x = embed(text)
            with torch.no_grad():
                top = model(inputs_embeds=x, use_cache=False).logits[0, -1].argmax()
            return x, lambda e: model(inputs_embeds=e, use_cache=False).logits[:, -1, top]
        with torch.no_grad():
            h = model(inputs_embeds=embed(compare)).last_hidden_state
            ref = torch.nn.functional.normalize(h.mean(1), dim=-1)[0]
        return embed(text), lambda e: torch.nn.functional.normalize(
            model(inputs_embeds=e).last_hidden_state.mean(1), dim=-1) @ ref

    def once():
        if method == "attnlrp":
            # LXT's efficient mode: input × the modified gradient of one forward pass.
            x = embed(text).requires_grad_(True)
            if kind == "llm":
                logits = model(inputs_embeds=x, use_cache=False).logits[0, -1]
                logits[logits.argmax()].backward()
            else:
                with torch.no_grad():
                    h = model(inputs_embeds=embed(compare)).last_hidden_state
                    ref = torch.nn.functional.normalize(h.mean(1), dim=-1)[0]
                out = model(inputs_embeds=x).last_hidden_state.mean(1)
                (torch.nn.functional.normalize(out, dim=-1)[0] @ ref).backward()
            return (x.grad * x).sum(-1)
        from captum.attr import IntegratedGradients, Saliency
        x, f = target_fn()
        if method == "saliency":
            return Saliency(f).attribute(x, abs=False)
        return IntegratedGradients(f).attribute(
            x, baselines=torch.zeros_like(x), method="gausslegendre", n_steps=50)

    once()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        once()
        times.append((time.perf_counter() - t) * 1e3)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ms": times, "rss_mb": rss, "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


def pytorch(kind, model_dir, method, text, compare, repeat):
    args = [sys.executable, __file__, "--worker", kind, model_dir, method, text, compare or "",
            str(repeat)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- gradlens side

def gradlens(model, method, text, compare, repeat):
    """One process: a warm-up run, then `repeat` timed runs; its ms and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        args = [GRADLENS, "attribute", "--model", model, "--prompt", text, "--method", method,
                "--format", "json", "--repeat", str(repeat + 1), "--output", out]
        if method == "integrated-gradients":
            args += ["--steps", "50"]
        if compare:
            args += ["--compare-text", compare]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.read().decode()}")
        with open(out) as f:
            return {"ms": json.load(f)["repeat_ms"][1:], "rss_mb": usage.ru_maxrss / 1024}


# ---------------------------------------------------------------------------- table

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--models", default="smollm2,minilm")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        kind, model_dir, method, text, compare, repeat = args.worker
        worker(kind, model_dir, method, text, compare, int(repeat))
        return
    from tokenizers import Tokenizer
    cases = []
    models = args.models.split(",")
    for method in args.methods.split(","):
        if "smollm2" in models:
            for p in LLM_PROMPTS:
                cases.append(("smollm2", method, p, None))
        if "minilm" in models:
            for p, c in PAIRS:
                cases.append(("minilm", method, p, c))
    reference = {"attnlrp": "LXT", "saliency": "Captum", "integrated-gradients": "Captum"}
    print(f"{'method':<22}{'model':<9}{'tokens':>7}{'PyTorch ms (RSS)':>21}"
          f"{'gradlens ms (RSS)':>22}{'speed-up':>9}{'gradlens f32 ms':>17}{'speed-up':>9}")
    for model, method, text, compare in cases:
        kind, folder = ("llm", SMOLLM2) if model == "smollm2" else ("encoder", MINILM)
        # gradlens runs the GGUF (as stored) and the f32 folder; MiniLM is an f32 folder only.
        sides = {"torch": [], "gguf": [], "f32": []}
        rss = {k: 0.0 for k in sides}
        info = {}
        for _ in range(args.rounds):
            r = pytorch(kind, folder, method, text, compare, args.repeat)
            info = r
            sides["torch"] += r["ms"]
            rss["torch"] = max(rss["torch"], r["rss_mb"])
            runs = [("f32", folder)]
            if model == "smollm2":
                runs.insert(0, ("gguf", os.path.join(ROOT, "models", "smollm2.gguf")))
            for name, path in runs:
                g = gradlens(path, method, text, compare, args.repeat)
                sides[name] += g["ms"]
                rss[name] = max(rss[name], g["rss_mb"])
        tok = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
        tok.no_padding()
        tok.no_truncation()
        tokens = len(tok.encode(text).ids)
        t = statistics.median(sides["torch"])
        main_side = "gguf" if sides["gguf"] else "f32"
        g = statistics.median(sides[main_side])
        f32 = statistics.median(sides["f32"])
        label = f"{method} ({reference[method]})"
        torch_cell = f"{t:.1f} ({rss['torch']:.0f} MB)"
        main_cell = f"{g:.1f} ({rss[main_side]:.0f} MB)"
        f32_cell = f"{f32:.1f}" if main_side == "gguf" else "—"
        f32_up = f"{t / f32:.2f}x" if main_side == "gguf" else "—"
        print(f"{label:<22}{model:<9}{tokens:>7}{torch_cell:>21}"
              f"{main_cell:>22}{t / g:>8.2f}x{f32_cell:>17}{f32_up:>9}", flush=True)
    print(f"torch {info.get('torch')}, {info.get('threads')} threads")


if __name__ == "__main__":
    main()
