#!/usr/bin/env python3
"""The Python API's overhead over the CLI: the same 100 short texts attributed by the same
build on the same model, one at a time in both (the CLI reading them as JSONL records), and
as one list in Python (which runs the texts concurrently). Model loading is excluded on both
sides: the CLI's is measured by a run over no records and subtracted. The sides alternate
over --rounds rounds; each cell is the median.

    cargo build --release
    VIRTUAL_ENV=$PWD/.venv-py .venv-py/bin/maturin develop --release -m python/Cargo.toml
    .venv-py/bin/python benches/python_overhead.py [--model models/smollm2.gguf] [--method saliency]
"""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import gradlens

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRADLENS = os.path.join(ROOT, "target", "release", "gradlens")
SUBJECTS = ["cats", "rivers", "the moon", "bread", "trains", "music", "glaciers", "chess",
            "tea", "bridges"]
VERBS = ["explains", "changes", "follows", "predicts", "surprises", "needs", "shapes",
         "remembers", "moves", "finds"]


def texts():
    return [f"The story of {s} {v} what comes next" for s in SUBJECTS for v in VERBS]


def cli_seconds(model, method, records, tmp):
    """Wall seconds of one CLI run over `records`."""
    src, out = os.path.join(tmp, "in.jsonl"), os.path.join(tmp, "out.jsonl")
    with open(src, "w") as f:
        for i, t in enumerate(records):
            f.write(json.dumps({"id": i, "text": t}) + "\n")
    if os.path.exists(out):
        os.remove(out)
    start = time.perf_counter()
    subprocess.run([GRADLENS, "attribute", "--model", model, "--input", src, "--output", out,
                    "--method", method], check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "smollm2.gguf"))
    ap.add_argument("--method", default="saliency")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    records = texts()
    model = gradlens.load(args.model)
    model.attribute(records[0], method=args.method)  # warm-up
    cli, one, batch = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            cli.append(cli_seconds(args.model, args.method, records, tmp)
                       - cli_seconds(args.model, args.method, [], tmp))
            start = time.perf_counter()
            for t in records:
                model.attribute(t, method=args.method)
            one.append(time.perf_counter() - start)
            start = time.perf_counter()
            model.attribute(records, method=args.method)
            batch.append(time.perf_counter() - start)
    c, o, b = (statistics.median(x) * 1e3 / len(records) for x in (cli, one, batch))
    print(f"{len(records)} texts, {args.method}, {os.path.basename(args.model)}; per text:")
    print(f"  CLI, JSONL records one by one   {c:8.2f} ms")
    print(f"  Python, one call per text        {o:8.2f} ms   overhead {100 * (o / c - 1):+.1f}%")
    print(f"  Python, one call for the list    {b:8.2f} ms   {c / b:.2f}x the CLI")


if __name__ == "__main__":
    main()
