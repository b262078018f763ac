#!/usr/bin/env python3
"""Scale benchmark: saliency and AttnLRP of a 32-token prompt on the 7B-shaped random Llama
(scripts/make-synthetic-7b.py), as a Q4_0 GGUF and as a bf16 safetensors folder, with the
weights as stored and, for reference, decoded to f32. Reports wall time, the method's own time
and the peak resident memory of each run; a run that fails (out of memory) says so.

Usage: python3 benches/scale_7b.py [--weights stored,f32] [--methods saliency,attnlrp]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "Q4_0 GGUF": os.path.join(ROOT, "models", "synthetic-7b-q4_0.gguf"),
    "bf16 safetensors": os.path.join(ROOT, "models", "synthetic-7b-bf16"),
}
# 32 tokens with the tiny test tokenizer the synthetic model carries.
PROMPT = "Models predict the next words, and we ask why so."


def run(binary, model, method, weights):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [binary, "attribute", "--model", model, "--prompt", PROMPT, "--method", method,
               "--weights", weights, "--format", "json", "--output", out]
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        err = proc.stderr.read().decode().strip().splitlines()
        rss_gib = usage.ru_maxrss / 2**20  # KiB on Linux
        if os.waitstatus_to_exitcode(status) != 0:
            return {"ok": False, "wall": wall, "rss": rss_gib, "error": err[-1] if err else "killed"}
        r = json.load(open(out))
        return {"ok": True, "wall": wall, "rss": rss_gib, "ms": r["elapsed_ms"],
                "tokens": len(r["tokens"]), "weights": r.get("weights", "f32")}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", default="stored,f32")
    ap.add_argument("--methods", default="saliency,attnlrp")
    ap.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "gradlens"))
    args = ap.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    missing = [p for p in MODELS.values() if not os.path.exists(p)]
    if missing:
        sys.exit(f"missing {', '.join(missing)}: run python3 scripts/make-synthetic-7b.py first")
    print("| model | weights | method | tokens | method time | wall (with load) | peak RSS |")
    print("|---|---|---|---:|---:|---:|---:|")
    for label, path in MODELS.items():
        for weights in args.weights.split(","):
            for method in args.methods.split(","):
                r = run(args.binary, path, method, weights)
                if r["ok"]:
                    print(f"| {label} | {weights} ({r['weights']}) | {method} | {r['tokens']} | "
                          f"{r['ms'] / 1000:.1f} s | {r['wall']:.1f} s | {r['rss']:.2f} GiB |", flush=True)
                else:
                    print(f"| {label} | {weights} | {method} | | failed: {r['error'][:80]} | "
                          f"{r['wall']:.1f} s | {r['rss']:.2f} GiB |", flush=True)


if __name__ == "__main__":
    main()
