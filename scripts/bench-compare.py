#!/usr/bin/env python3
"""Compares two `gradlens bench --format json` records (or `--json FILE`): each kernel and
end-to-end row present in both, B's median time over A's, and a flag where B is more than
10% slower (a regression) or faster. Exits 1 when any row regressed, or a row that passed its
correctness check in A fails it in B.

Usage: scripts/bench-compare.py A.json B.json [--threshold 0.10]
"""
import argparse
import json
import sys


def rows(record):
    out = {}
    for k in record["kernels"]:
        key = (k["family"], k["format"], k["shape"], k["variant"])
        out[key] = (k["median_s"], k["passed"])
    for e in record.get("end_to_end", []):
        out[("end to end", "", f"{e['tokens']} tokens", e["method"])] = (e["median_s"], True)
    return out


def describe(r):
    m = r["machine"]
    return f"revision {r['revision']}: {m['device']} on {m['cpu']}, {m['threads']} threads"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--threshold", type=float, default=0.10)
    args = ap.parse_args()
    with open(args.a) as f:
        a = json.load(f)
    with open(args.b) as f:
        b = json.load(f)
    print(f"A: {describe(a)}\nB: {describe(b)}")
    if a["machine"]["cpu"] != b["machine"]["cpu"] or a["machine"]["device"] != b["machine"]["device"]:
        print("note: the two records come from different machines or devices")
    for name in ("read_gb_s", "copy_gb_s", "fma_gflop_s"):
        la, lb = a["limits"][name], b["limits"][name]
        print(f"limit {name:<12} {la:10.1f} {lb:10.1f}  B/A {lb / la:5.2f}")
    ra, rb = rows(a), rows(b)
    regressions = []
    print(f"\n{'kernel':<24}{'format':<7}{'shape':<26}{'variant':<22}{'A':>11}{'B':>11}{'B/A':>7}")
    for key in ra:
        if key not in rb:
            continue
        (ta, pa), (tb, pb) = ra[key], rb[key]
        ratio = tb / ta
        flag = ""
        if pa and not pb:
            flag = "FAILS its check in B"
            regressions.append(key)
        elif ratio > 1 + args.threshold:
            flag = "slower"
            regressions.append(key)
        elif ratio < 1 - args.threshold:
            flag = "faster"
        family, fmt, shape, variant = key
        print(f"{family:<24}{fmt:<7}{shape:<26}{variant:<22}{ta * 1e3:9.3f}ms{tb * 1e3:9.3f}ms"
              f"{ratio:7.2f} {flag}")
    only = len(set(ra) ^ set(rb))
    if only:
        print(f"\n{only} rows are in only one of the records")
    if regressions:
        print(f"\n{len(regressions)} rows regressed by more than {args.threshold:.0%}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
