#!/usr/bin/env python3
"""Tiny random models of the Llama descendants, and their PyTorch/Captum references.

Not run by CI. Writes, for each family below, tests/fixtures/models/tiny-{family}/ (config.json,
model.safetensors, tokenizer.json) and tests/fixtures/tiny-{family}.json (token ids, last
logits, the gradients of every target kind, Captum IG), as make_fixtures.py does for the
first families. Each model is small enough to sit in git and is set up so that what
distinguishes its family matters on the fixture prompt (a sliding window shorter than the
prompt, rope scaling that moves the low frequencies, q/k norms with non-unit weights).

Usage: python tools/reference/make_family_fixtures.py  (from the repository root; needs
       `pip install torch transformers captum safetensors`)
"""
import torch
from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM)

from make_fixtures import bytelevel_tokenizer, causal_fixture, save, scramble

PROMPT = "The quick brown fox jumps over the lazy dog"


def common(tok):
    return dict(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=True,
                bos_token_id=tok.token_to_id("<s>"), eos_token_id=0,
                pad_token_id=tok.token_to_id("<pad>"), attn_implementation="eager")


def build(name, model, tok):
    save(model, tok, name)
    causal_fixture(model, tok, PROMPT, name, pad_id=tok.token_to_id("<pad>"))
    print(name, "written")


def main():
    torch.manual_seed(1)
    tok = bytelevel_tokenizer(bos=True)

    # Llama 3.x: llama3 rope scaling over a short original context, so that of head_dim 16's
    # eight frequencies some are kept, some divided by the factor and some interpolated; an
    # explicit head_dim that is not hidden / heads.
    rope = {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 32}
    build("tiny-llama3", scramble(LlamaForCausalLM(LlamaConfig(
        **common(tok), head_dim=16, rope_parameters=rope))), tok)

    # Mistral: a sliding window of 4 keys on every layer (the prompt is longer).
    build("tiny-mistral", scramble(MistralForCausalLM(MistralConfig(
        **common(tok), sliding_window=4, rope_theta=500.0))), tok)

    # Qwen2: biases on q, k and v only; the window on the layers from max_window_layers up.
    build("tiny-qwen2", scramble(Qwen2ForCausalLM(Qwen2Config(
        **common(tok), use_sliding_window=True, sliding_window=3, max_window_layers=1,
        rope_theta=500.0))), tok)

    # Qwen3: RMSNorm of each head's queries and keys before RoPE; an explicit head_dim.
    build("tiny-qwen3", scramble(Qwen3ForCausalLM(Qwen3Config(
        **common(tok), head_dim=16, rope_theta=500.0))), tok)

    # Gemma 3: a local layer (window 3, its own RoPE base) then a global one (linear rope
    # scaling, as the 4B and larger sizes have), a query scale that is not head_dim's, and
    # (1 + w) norms whose w are far from 0.
    rope = {"sliding_attention": {"rope_type": "default", "rope_theta": 10.0},
            "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 500.0}}
    build("tiny-gemma3", scramble(Gemma3ForCausalLM(Gemma3TextConfig(
        **common(tok), head_dim=16, query_pre_attn_scalar=12, sliding_window=3,
        layer_types=["sliding_attention", "full_attention"], rope_parameters=rope,
        hidden_activation="gelu_pytorch_tanh"))), tok)


if __name__ == "__main__":
    main()
