#!/usr/bin/env python3
"""Checks that transformers loads what `gradlens convert` writes, and that the folder gives the
same tokens and logits as transformers' own loading of the GGUF file.

Usage: gradlens convert models/smollm2.gguf models/smollm2   (scripts/fetch-models.sh does it)
       python tools/reference/check_converted.py [models/smollm2.gguf models/smollm2]
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
gguf = sys.argv[1] if len(sys.argv) > 2 else os.path.join(ROOT, "models", "smollm2.gguf")
folder = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "models", "smollm2")

ref_tok = AutoTokenizer.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf))
ref = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf), gguf_file=os.path.basename(gguf), torch_dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
texts = ["The capital of France is", "naïve café — 東京", "<|im_start|>user\nHi<|im_end|>", "  two  spaces"]
for text in texts:
    assert tok.encode(text) == ref_tok.encode(text), (text, tok.encode(text), ref_tok.encode(text))
ids = torch.tensor([ref_tok.encode(texts[0])])
with torch.no_grad():
    a, b = ref(ids).logits, model(ids).logits
err = (a - b).abs().max().item()
assert err < 1e-4, err
print(f"ok: transformers loads {folder}; tokens equal on {len(texts)} texts; max logit difference {err:.2e}")
