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
import json
import os

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Phi3Config, Phi3ForCausalLM,
                          Qwen2Config, Qwen2ForCausalLM,
                          Qwen3Config, Qwen3ForCausalLM, RobertaConfig,
                          RobertaForSequenceClassification, XLMRobertaConfig, XLMRobertaModel)

from make_fixtures import (CORPUS, FIX, bert_cosine_fixture, bytelevel_tokenizer, causal_fixture,
                           flat, grad_of, ig, save, scramble)

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


def roberta_tokenizer():
    """Byte-level BPE with RoBERTa's specials (<s>=0, <pad>=1, </s>=2) and `<s> A </s>`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=False, add_prefix_space=False)
    return tok


def roberta_common(tok):
    # Positions start at pad_token_id + 1 = 2: 42 position rows leave 40 usable.
    return dict(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                num_attention_heads=4, intermediate_size=64, max_position_embeddings=42,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=1,
                bos_token_id=0, eos_token_id=2, type_vocab_size=1)


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

    # Gemma 2: caps small enough that the fixture's scores and logits reach them (the
    # released 50 and 30 bind on long prompts), a local layer then a global one.
    build("tiny-gemma2", scramble(Gemma2ForCausalLM(Gemma2Config(
        **common(tok), head_dim=16, query_pre_attn_scalar=12, sliding_window=3,
        layer_types=["sliding_attention", "full_attention"], rope_theta=500.0,
        attn_logit_softcapping=3.0, final_logit_softcapping=8.0,
        hidden_activation="gelu_pytorch_tanh"))), tok)

    # Phi-3: fused qkv_proj and gate_up_proj, a sliding window of 5 on every layer.
    build("tiny-phi3", scramble(Phi3ForCausalLM(Phi3Config(
        **common(tok), sliding_window=5, rope_theta=500.0, original_max_position_embeddings=64,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0))), tok)

    # RoBERTa (a classifier: dense, tanh, out_proj on <s>) and XLM-R (an encoder, cosine
    # target): BERT with positions from pad_token_id + 1 and its own head.
    rt = roberta_tokenizer()
    cls = scramble(RobertaForSequenceClassification(RobertaConfig(num_labels=3, **roberta_common(rt))))
    save(cls, rt, "tiny-roberta")
    prompt = "Attribution methods explain predictions."
    ids = rt.encode(prompt).ids
    x = cls.get_input_embeddings()(torch.tensor(ids)).unsqueeze(0).detach()
    with torch.no_grad():
        logits = cls(inputs_embeds=x).logits[0]

    def class1(e):
        return cls(inputs_embeds=e).logits[:, 1]
    attr, delta = ig(class1, x, torch.zeros_like(x), 16)
    json.dump({"prompt": prompt, "token_ids": ids, "logits": flat(logits),
               "grad_class1": flat(grad_of(class1, x)), "ig_class1_zero_gl16": flat(attr),
               "ig_delta": float(delta)}, open(os.path.join(FIX, "tiny-roberta.json"), "w"))
    print("tiny-roberta written")
    xlmr = scramble(XLMRobertaModel(XLMRobertaConfig(**roberta_common(rt)), add_pooling_layer=False))
    save(xlmr, rt, "tiny-xlm-roberta")
    bert_cosine_fixture(xlmr, rt, "The quick brown fox jumps over the lazy dog.",
                        "A small model predicts the next token.", "tiny-xlm-roberta", 16)
    print("tiny-xlm-roberta written")

    # Phi-3 with longrope: the 35-token prompt reaches past the original 16 positions, so the
    # long factors and the attention factor sqrt(1 + ln 4 / ln 16) apply. (Added last, so the
    # models above keep their random draws.)
    rope = {"rope_type": "longrope", "rope_theta": 500.0, "original_max_position_embeddings": 16,
            "short_factor": [1.0, 1.3, 2.1, 3.0], "long_factor": [1.1, 2.5, 4.0, 9.0]}
    phi = scramble(Phi3ForCausalLM(Phi3Config(
        **common(tok), rope_parameters=rope, original_max_position_embeddings=16,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0)))
    build("tiny-phi3-longrope", phi, tok)
    # And within the original context: the short factors, 10 tokens of the prompt.
    path = os.path.join(FIX, "tiny-phi3-longrope.json")
    fx = json.load(open(path))
    with torch.no_grad():
        short = phi(torch.tensor([fx["token_ids"][:10]])).logits[0, -1]
    fx["short_prefix"] = 10
    fx["short_logits"] = flat(short)
    json.dump(fx, open(path, "w"))

    # Phi-4-mini's layout: RoPE on the first half of each head only (partial_rotary_factor).
    build("tiny-phi3-partial", scramble(Phi3ForCausalLM(Phi3Config(
        **common(tok), head_dim=16, rope_theta=500.0, partial_rotary_factor=0.5,
        resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0))), tok)

    # Qwen3 with YaRN (factor 4 over an original context of 16): frequencies blended across
    # the head, and the attention factor 0.1 ln 4 + 1.
    rope = {"rope_type": "yarn", "rope_theta": 500.0, "factor": 4.0,
            "original_max_position_embeddings": 16}
    build("tiny-qwen3-yarn", scramble(Qwen3ForCausalLM(Qwen3Config(
        **common(tok), head_dim=16, rope_parameters=rope))), tok)


if __name__ == "__main__":
    main()
