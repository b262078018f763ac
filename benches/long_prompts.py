#!/usr/bin/env python3
"""Long prompts on SmolLM2: gradlens against PyTorch + Captum (and LXT for AttnLRP), side by
side in one run, with each run's time and peak resident memory.

The prompt is one paragraph repeated to --tokens tokens (SmolLM2's tokenizer, as gradlens
counts them). Every run is its own process, so its peak RSS is its own (GNU time's maximum
resident set size); a run that is killed for memory, fails, or passes --timeout seconds is
reported as such, and the longer lengths of that side are then skipped. Times are the
attribution itself (model loading excluded), from one run.

  saliency      the gradient of the top next-token logit (abs=False on the Captum side)
  attnlrp       LXT's efficient AttnLRP (gradlens' attnlrp; needs --lxt-python)
  ig            integrated gradients, 8 steps from the zero baseline (Captum: one batch)

Usage: python benches/long_prompts.py [--tokens 512,2048,8192] [--methods saliency,attnlrp,ig]
          [--model models/smollm2] [--lxt-python .venv-lxt/bin/python] [--timeout 1800]
Needs: cargo build --release; pip install torch transformers captum (and LXT's virtualenv,
see benches/side_by_side.py).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARAGRAPH = (
    "Attribution methods explain a model's prediction by assigning each input token a score. "
    "Gradient methods differentiate the prediction with respect to the input embeddings, "
    "path methods integrate that gradient along a line from a baseline, and relevance "
    "propagation redistributes the output layer by layer back to the input. "
)

# The reference side, run in its own process: prints {"ms": ..., "target": ...}.
REFERENCE = r"""
import json, sys, time, torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
ids = torch.tensor([args["ids"]])
if args["method"] == "attnlrp":
    from lxt.efficient import monkey_patch
    import transformers.models.llama.modeling_llama as modeling
    monkey_patch(modeling, verbose=False)
    hf = modeling.LlamaForCausalLM.from_pretrained(
        args["model"], torch_dtype=torch.float32, attn_implementation="eager").eval()
else:
    from transformers import AutoModelForCausalLM
    hf = AutoModelForCausalLM.from_pretrained(args["model"], dtype=torch.float32).eval()
hf.requires_grad_(False)
x = hf.get_input_embeddings()(ids).detach()
target = args["target"]
start = time.perf_counter()
if args["method"] == "attnlrp":
    x = x.requires_grad_(True)
    logit = hf(inputs_embeds=x, use_cache=False).logits[0, -1, target]
    logit.backward()
    scores = (x * x.grad).sum(-1)
elif args["method"] == "saliency":
    from captum.attr import Saliency
    f = lambda e: hf(inputs_embeds=e, use_cache=False).logits[:, -1, target]
    scores = Saliency(f).attribute(x.clone().requires_grad_(True), abs=False).sum(-1)
else:
    from captum.attr import IntegratedGradients
    f = lambda e: hf(inputs_embeds=e, use_cache=False).logits[:, -1, target]
    scores = IntegratedGradients(f).attribute(
        x, baselines=torch.zeros_like(x), n_steps=8, internal_batch_size=8).sum(-1)
ms = (time.perf_counter() - start) * 1e3
assert torch.isfinite(scores).all()
print(json.dumps({"ms": ms}))
"""


def limit_memory(gib):
    """A child's address space capped at `gib` GiB: a run that needs more fails with an
    allocation error instead of driving the machine into its OOM killer."""
    def apply():
        import resource
        cap = int(gib * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return apply


def timed(cmd, timeout, memory_gib=None):
    """Runs `cmd` under GNU time: (stdout, peak RSS in MB, status)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        try:
            r = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd,
                               capture_output=True, text=True, timeout=timeout,
                               preexec_fn=limit_memory(memory_gib) if memory_gib else None)
        except subprocess.TimeoutExpired:
            return None, None, f"over {timeout} s"
        peak = rss.read().strip().splitlines()
        mb = int(peak[-1]) / 1024 if peak and peak[-1].isdigit() else None
        if r.returncode != 0:
            err = r.stderr.lower()
            killed = r.returncode in (-9, 137) or "killed" in err or "memory" in err or "alloc" in err
            why = "out of memory" if killed else r.stderr.strip().splitlines()[-1][:80]
            return None, mb, why
        return r.stdout, mb, "ok"


def flops(cfg, n, method):
    """FLOPs of one forward and one backward pass (input gradients only: the weights are
    constants) over `n` tokens: the linear layers twice their forward, causal attention's
    four products of the backward twice its two of the forward; IG runs 8 of them."""
    d, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = d // cfg["num_attention_heads"] * cfg["num_key_value_heads"]
    linear = 2 * n * (2 * d * d + 2 * d * kv + 3 * d * inter) * layers
    attention = 2 * n * n * d * layers  # Q Kᵀ and A V over the causal half
    return (2 * linear + 3 * attention) * (8 if method == "ig" else 1)


def gemm_rate(threads):
    """This machine's f32 GEMM rate (FLOP/s): PyTorch's, at 2048³, best of 5."""
    import time
    import torch
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * 2048 ** 3 / best


def warm(model):
    """Reads the model's files once, so gradlens' pass (which maps them) does not time the
    disk where a reference run's memory pushed them out of the page cache (the reference
    side reads its weights before its clock starts)."""
    paths = [model] if os.path.isfile(model) else [
        os.path.join(model, f) for f in os.listdir(model) if f.endswith((".safetensors", ".gguf"))]
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def prompt_of(tokens, tokenizer):
    text = PARAGRAPH
    while len(tokenizer.encode(text)) < tokens:
        text += PARAGRAPH
    ids = tokenizer.encode(text)[:tokens]
    return tokenizer.decode(ids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2"))
    ap.add_argument("--tokens", default="512,2048,8192")
    ap.add_argument("--methods", default="saliency,attnlrp,ig")
    ap.add_argument("--lxt-python", default=os.path.join(ROOT, ".venv-lxt", "bin", "python"))
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--memory-gib", type=float, default=20.0,
                    help="address-space cap of each reference run")
    args = ap.parse_args()
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(args.model)
    binary = os.path.join(ROOT, "target", "release", "gradlens")
    gl_method = {"saliency": "saliency", "attnlrp": "attnlrp", "ig": "integrated-gradients"}
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    rate = gemm_rate(args.threads)
    print(f"GEMM rate (PyTorch, 2048³, {args.threads} threads): {rate / 1e9:.0f} GFLOP/s")
    print()
    print("| method | tokens | FLOP limit | gradlens: time, peak RSS | × limit | reference: time, peak RSS | speed-up |")
    print("|---|---:|---:|---|---:|---|---:|")
    for method in args.methods.split(","):
        ref_python = args.lxt_python if method == "attnlrp" else sys.executable
        ref_name = "LXT" if method == "attnlrp" else "Captum"
        ours_failed = ref_failed = None
        for n in [int(t) for t in args.tokens.split(",")]:
            text = prompt_of(n, tok)
            cmd = [binary, "attribute", "--model", args.model, "--prompt", text,
                   "--method", gl_method[method], "--format", "json",
                   "--threads", str(args.threads)]
            if method == "ig":
                cmd += ["--steps", "8", "--baseline", "zero"]
            ours = ref = "skipped"
            ours_ms = ref_ms = target = ids = None
            if ours_failed is None:
                warm(args.model)
                out, mb, status = timed(cmd, args.timeout)
                if out:
                    g = json.loads(out)
                    ours_ms, target, ids = g["elapsed_ms"], g["target"]["id"], g["token_ids"]
                    ours = f"{ours_ms / 1e3:.1f} s, {mb:.0f} MB"
                else:
                    ours_failed = status
                    ours = f"{status}" + (f" ({mb:.0f} MB)" if mb else "")
            if ref_failed is None and ids is not None:
                payload = json.dumps({"model": args.model, "ids": ids, "target": target,
                                      "method": method, "threads": args.threads})
                out, mb, status = timed([ref_python, "-c", REFERENCE, payload], args.timeout,
                                        args.memory_gib)
                if out:
                    ref_ms = json.loads(out.strip().splitlines()[-1])["ms"]
                    ref = f"{ref_ms / 1e3:.1f} s, {mb:.0f} MB"
                else:
                    ref_failed = status
                    ref = f"{status}" + (f" ({mb:.0f} MB)" if mb else "")
            speedup = f"**{ref_ms / ours_ms:.2f}×**" if ours_ms and ref_ms else "—"
            label = {"ig": "IG, 8 steps"}.get(method, method)
            tokens = len(ids) if ids else n
            limit = flops(cfg, tokens, method) / rate
            over = f"{ours_ms / 1e3 / limit:.1f}" if ours_ms else "—"
            print(f"| {label} | {tokens} | {limit:.1f} s | {ours} | {over} | {ref_name}: {ref} | {speedup} |",
                  flush=True)


if __name__ == "__main__":
    main()
