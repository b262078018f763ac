#!/usr/bin/env python3
"""Weights as stored against weights decoded to f32, side by side in one run: saliency,
AttnLRP and IG-50 on SmolLM2's Q4_1 GGUF (5 tokens), each the median of --repeat warm runs
inside one process, with the process's peak RSS. --before BINARY adds another build of
gradlens (an older commit, say) as a third column.

Usage: python3 benches/compare_weights.py [--rounds 2] [--repeat 5] [--before PATH]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "smollm2.gguf")
PROMPT = "The capital of France is"
METHODS = [["saliency"], ["attnlrp"], ["integrated-gradients", "--steps", "50"]]


def run(binary, method, weights, repeat):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.json")
        cmd = [binary, "attribute", "--model", MODEL, "--prompt", PROMPT, "--method", *method,
               "--repeat", str(repeat), "--format", "json", "--output", out]
        if weights:
            cmd += ["--weights", weights]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(cmd)} failed")
        return statistics.median(json.load(open(out))["repeat_ms"]), usage.ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--before", help="another gradlens binary (f32 only), timed alongside")
    args = ap.parse_args()
    binary = os.path.join(ROOT, "target", "release", "gradlens")
    sides = [("f32", binary, "f32"), ("stored", binary, "stored")]
    if args.before:
        sides.insert(0, ("before", args.before, None))
    print("| method | " + " | ".join(f"{n}: ms, peak RSS" for n, _, _ in sides) + " |")
    print("|---|" + "---:|" * len(sides))
    for method in METHODS:
        for _ in range(args.rounds):
            cells = [run(b, method, w, args.repeat) for _, b, w in sides]
            print(f"| {' '.join(method)} | " +
                  " | ".join(f"{ms:.0f} ms, {rss:.0f} MB" for ms, rss in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
