#!/usr/bin/env python3
"""Writes a random-weight Llama of 7B shape, for the scale benchmark (benches/scale_7b.py).

hidden 4096, 32 layers, 32 heads with 8 key/value heads, MLP 11008, vocabulary 32000: the
shapes, and so the memory traffic and FLOPs, of a Llama-2/3-class 7B model. The weights are
random (its predictions mean nothing); the tokenizer is the tiny test Llama's (300 tokens, so
prompts use only the first 300 rows of the embedding).

Two files, outside git (models/ is ignored):
  models/synthetic-7b-q4_0.gguf   llama.cpp layout, Q4_0 matrices, f32 norms   (3.3 GB)
  models/synthetic-7b-bf16/       config.json, model.safetensors (bf16), tokenizer.json (11.9 GB)

Usage: python3 scripts/make-synthetic-7b.py [--only gguf|bf16]   (needs numpy)
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "fixtures", "models", "tiny-llama")
D, LAYERS, HEADS, KV_HEADS, INTER, VOCAB, CONTEXT = 4096, 32, 32, 8, 11008, 32000, 4096
HD = D // HEADS


def matrices():
    """(Hugging Face name, llama.cpp name, [rows, cols]) of every matrix, then the norms."""
    out = [("model.embed_tokens.weight", "token_embd.weight", [VOCAB, D]),
           ("lm_head.weight", "output.weight", [VOCAB, D])]
    for l in range(LAYERS):
        hf, gg = f"model.layers.{l}.", f"blk.{l}."
        out += [
            (hf + "self_attn.q_proj.weight", gg + "attn_q.weight", [HEADS * HD, D]),
            (hf + "self_attn.k_proj.weight", gg + "attn_k.weight", [KV_HEADS * HD, D]),
            (hf + "self_attn.v_proj.weight", gg + "attn_v.weight", [KV_HEADS * HD, D]),
            (hf + "self_attn.o_proj.weight", gg + "attn_output.weight", [D, HEADS * HD]),
            (hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", [INTER, D]),
            (hf + "mlp.up_proj.weight", gg + "ffn_up.weight", [INTER, D]),
            (hf + "mlp.down_proj.weight", gg + "ffn_down.weight", [D, INTER]),
        ]
    return out


def norms():
    out = [("model.norm.weight", "output_norm.weight")]
    for l in range(LAYERS):
        out += [(f"model.layers.{l}.input_layernorm.weight", f"blk.{l}.attn_norm.weight"),
                (f"model.layers.{l}.post_attention_layernorm.weight", f"blk.{l}.ffn_norm.weight")]
    return out


def q4_0_blocks(rng, rows, cols):
    """Random Q4_0 blocks (18 bytes: an f16 scale, 16 bytes of nibbles), values of std ~0.015."""
    blocks = rng.integers(0, 256, size=(rows * cols // 32, 18), dtype=np.uint8)
    scale = (0.0033 * (1 + 0.25 * rng.standard_normal(blocks.shape[0]))).astype(np.float16)
    blocks[:, 0:2] = scale.view(np.uint8).reshape(-1, 2)
    return blocks


def write_gguf(path, rng):
    tok = json.load(open(os.path.join(TINY, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    tokens = [""] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]]
    special = {"<|endoftext|>", "<s>", "<pad>"}
    meta = [
        ("general.architecture", "str", "llama"),
        ("general.alignment", "u32", 32),
        ("llama.block_count", "u32", LAYERS),
        ("llama.context_length", "u32", CONTEXT),
        ("llama.embedding_length", "u32", D),
        ("llama.feed_forward_length", "u32", INTER),
        ("llama.attention.head_count", "u32", HEADS),
        ("llama.attention.head_count_kv", "u32", KV_HEADS),
        ("llama.rope.freq_base", "f32", 10000.0),
        ("llama.attention.layer_norm_rms_epsilon", "f32", 1e-5),
        ("llama.vocab_size", "u32", VOCAB),
        ("tokenizer.ggml.model", "str", "gpt2"),
        ("tokenizer.ggml.pre", "str", "default"),
        ("tokenizer.ggml.tokens", "strs", tokens),
        ("tokenizer.ggml.token_type", "i32s", [3 if t in special else 1 for t in tokens]),
        ("tokenizer.ggml.merges", "strs", merges),
        ("tokenizer.ggml.bos_token_id", "u32", tokens.index("<s>")),
        ("tokenizer.ggml.eos_token_id", "u32", 0),
        ("tokenizer.ggml.padding_token_id", "u32", tokens.index("<pad>")),
        ("tokenizer.ggml.add_bos_token", "bool", True),
    ]

    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    def value(kind, v):
        if kind == "str":
            return struct.pack("<I", 8) + s(v)
        if kind == "u32":
            return struct.pack("<II", 4, v)
        if kind == "f32":
            return struct.pack("<If", 6, v)
        if kind == "bool":
            return struct.pack("<IB", 7, int(v))
        if kind == "strs":
            return struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
        if kind == "i32s":
            return struct.pack("<IIQ", 9, 5, len(v)) + struct.pack(f"<{len(v)}i", *v)
        raise ValueError(kind)

    # (llama.cpp name, dims innermost first, ggml type, bytes)
    tensors = [(gg, [cols, rows], 2, rows * cols // 32 * 18) for _, gg, (rows, cols) in matrices()]
    tensors += [(gg, [D], 0, 4 * D) for _, gg in norms()]
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta))
    for key, kind, v in meta:
        head += s(key) + value(kind, v)
    offset = 0
    for name, dims, ty, size in tensors:
        head += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", ty, offset)
        offset += -(-size // 32) * 32
    with open(path + ".partial", "wb") as f:
        f.write(head + b"\0" * (-len(head) % 32))
        for i, (name, dims, ty, size) in enumerate(tensors):
            data = q4_0_blocks(rng, dims[1], dims[0]).tobytes() if ty == 2 else \
                (1 + 0.01 * rng.standard_normal(D)).astype(np.float32).tobytes()
            assert len(data) == size
            f.write(data + b"\0" * (-size % 32))
            print(f"\r{path}: {i + 1}/{len(tensors)} tensors", end="", file=sys.stderr)
    os.replace(path + ".partial", path)
    print(file=sys.stderr)


def write_bf16(folder, rng):
    partial = folder + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    entries = [(hf, dims, "BF16") for hf, _, dims in matrices()] + [(hf, [D], "F32") for hf, _ in norms()]
    header, offset = {}, 0
    for name, dims, dtype in entries:
        size = int(np.prod(dims)) * (2 if dtype == "BF16" else 4)
        header[name] = {"dtype": dtype, "shape": dims, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(os.path.join(partial, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for i, (name, dims, dtype) in enumerate(entries):
            if dtype == "F32":
                f.write((1 + 0.01 * rng.standard_normal(D)).astype(np.float32).tobytes())
            else:
                rows, cols = dims
                for r in range(0, rows, 1024):  # a few tens of MB at a time
                    x = (0.015 * rng.standard_normal((min(1024, rows - r), cols))).astype(np.float32)
                    f.write((x.view(np.uint32) >> 16).astype(np.uint16).tobytes())
            print(f"\r{folder}: {i + 1}/{len(entries)} tensors", end="", file=sys.stderr)
    print(file=sys.stderr)
    config = json.load(open(os.path.join(TINY, "config.json")))
    config.update({
        "hidden_size": D, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "intermediate_size": INTER, "vocab_size": VOCAB,
        "max_position_embeddings": CONTEXT, "head_dim": HD, "tie_word_embeddings": False,
        "rope_theta": 10000.0, "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "dtype": "bfloat16",
    })
    json.dump(config, open(os.path.join(partial, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(TINY, "tokenizer.json"), partial)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(partial, folder)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["gguf", "bf16"])
    args = ap.parse_args()
    os.makedirs(os.path.join(ROOT, "models"), exist_ok=True)
    rng = np.random.default_rng(7)
    if args.only in (None, "gguf"):
        write_gguf(os.path.join(ROOT, "models", "synthetic-7b-q4_0.gguf"), rng)
    if args.only in (None, "bf16"):
        write_bf16(os.path.join(ROOT, "models", "synthetic-7b-bf16"), rng)


if __name__ == "__main__":
    main()
