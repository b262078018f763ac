#!/usr/bin/env python3
"""Reference data for gradlens' GGUF support, from the `gguf` package and transformers.

Writes:
  tests/fixtures/gguf-quants.json  for each quantisation type, raw blocks and their
                                   dequantised values (gguf.quants.dequantize)
  tests/fixtures/smollm2.json      (when models/smollm2.gguf exists) the token ids, last-position
                                   logits and greedy continuation that transformers gets from
                                   the same GGUF file, and the input x gradient and saliency
                                   scores from Captum
  tests/fixtures/gemma3-270m.json  the same for models/gemma3-270m.gguf
Usage: python tools/reference/make_gguf_fixtures.py   (pip install gguf transformers torch captum accelerate)
"""
import base64
import json
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
rng = np.random.default_rng(0)

# Byte offsets of the f16 scale fields in each block, set to sane values so random bytes
# never hold an inf or NaN scale.
F16_FIELDS = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
              T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}


def quant_fixture():
    out = {}
    # New types go at the end, so the random blocks of the others stay as they were.
    for t in [T.F32, T.F16, T.BF16, T.Q8_0, T.Q4_0, T.Q4_1, T.Q4_K, T.Q5_K, T.Q6_K, T.Q5_0, T.Q5_1]:
        block, size = GGML_QUANT_SIZES[t]
        n_blocks = 3
        if t in (T.F32, T.F16, T.BF16):
            values = rng.standard_normal(block * n_blocks * 7).astype(np.float32)
            if t == T.F32:
                raw = values.tobytes()
            elif t == T.F16:
                raw = values.astype(np.float16).tobytes()
            else:
                raw = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
        else:
            raw = bytearray(rng.integers(0, 256, size * n_blocks, dtype=np.uint8).tobytes())
            for b in range(n_blocks):
                for off in F16_FIELDS[t]:
                    scale = np.float16(rng.uniform(0.001, 0.05) * rng.choice([-1, 1]))
                    raw[b * size + off:b * size + off + 2] = scale.tobytes()
            raw = bytes(raw)
        deq = dequantize(np.frombuffer(raw, dtype=np.uint8), t).astype(np.float32).reshape(-1)
        out[t.name] = {"bytes": base64.b64encode(raw).decode(), "values": [float(v) for v in deq]}
    json.dump(out, open(os.path.join(FIX, "gguf-quants.json"), "w"))


def real_model_fixture(file, name):
    """What transformers gets from the GGUF `models/{file}`, written to tests/fixtures/{name}.json."""
    path = os.path.join(ROOT, "models", file)
    if not os.path.exists(path):
        print(f"models/{file} missing: run scripts/fetch-models.sh")
        return
    import torch
    from captum.attr import InputXGradient, Saliency
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, fname = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, torch_dtype=torch.float32).eval()
    model.requires_grad_(False)
    out = {"tokenizer_cases": {}}
    for text in ["The capital of France is", "Hello, world! It's 2026.", "  spaces\tand\nnewlines",
                 "naïve café — ünïcödé 東京", "<|im_start|>user\nHi<|im_end|>", "x=1+2; print(x)",
                 "<start_of_turn>user\nHi<end_of_turn>\n", "a  b   c\n\n\nd", "emoji 🦀🔥 and \x00 bytes"]:
        out["tokenizer_cases"][text] = tok.encode(text)
    prompt = "The capital of France is"
    ids = tok.encode(prompt)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0, -1]
        gen = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False)[0, len(ids):]
    target = int(logits.argmax())
    # The embedding module, not its weight: Gemma's scales the rows by sqrt(hidden).
    emb = model.get_input_embeddings()(torch.tensor(ids)).unsqueeze(0).detach()

    def f(e):
        return model(inputs_embeds=e).logits[:, -1, target]
    ixg = InputXGradient(f).attribute(emb.clone())[0].sum(-1)
    sal = Saliency(f).attribute(emb.clone(), abs=False)[0].norm(dim=-1)
    # A large vocabulary's logits are a sample: every 97th id and the 64 largest.
    if len(logits) > 100000:
        sample = sorted(set(range(0, len(logits), 97)) | set(torch.topk(logits, 64).indices.tolist()))
        out.update(logit_ids=sample, logit_values=[round(float(logits[i]), 5) for i in sample])
    else:
        out.update(last_logits=[round(float(v), 5) for v in logits])
    out.update(prompt=prompt, token_ids=ids, target=target, target_token=tok.decode([target]),
               greedy=[int(i) for i in gen],
               greedy_text=tok.decode(gen), input_x_gradient=[float(v) for v in ixg],
               saliency=[float(v) for v in sal])
    json.dump(out, open(os.path.join(FIX, name + ".json"), "w"))
    print(name, tok.decode(gen), ids)


if __name__ == "__main__":
    quant_fixture()
    if "--quants-only" not in sys.argv:
        for file, name in [("smollm2.gguf", "smollm2"), ("gemma3-270m.gguf", "gemma3-270m")]:
            if len(sys.argv) < 2 or name in sys.argv:
                real_model_fixture(file, name)
