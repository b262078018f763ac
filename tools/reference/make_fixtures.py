#!/usr/bin/env python3
"""Regenerates gradlens' reference data with PyTorch, transformers and Captum.

Not run by CI. Writes:
  tests/fixtures/models/{tiny-bert,tiny-bert-cls,tiny-gpt2,tiny-llama}/  config.json,
      model.safetensors, tokenizer.json (tiny random models with trained tokenizers)
  tests/fixtures/*.json  token ids, outputs, gradients w.r.t. input embeddings, Captum IG
  tests/fixtures/minilm.json  (when models/minilm exists) hidden states and cosine-target IG

Usage: python tools/reference/make_fixtures.py  (from the repository root; needs
       `pip install torch transformers captum safetensors`)
"""
import json
import os
import sys

import torch
from captum.attr import IntegratedGradients
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (BertConfig, BertForSequenceClassification, BertModel, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
torch.manual_seed(0)

CORPUS = [
    "The capital of France is Paris.", "The quick brown fox jumps over the lazy dog.",
    "Attribution methods explain which tokens matter for a prediction.",
    "Integrated gradients integrate along a straight path from a baseline.",
    "A small model with random weights is enough to test the engine.",
    "Language models predict the next token from the previous ones.",
    "She sells sea shells by the sea shore, and the shells are pretty.",
] * 20


def wordpiece_tokenizer():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(CORPUS, trainers.WordPieceTrainer(vocab_size=160, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return tok


def bytelevel_tokenizer(bos):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] + (["<s>", "<pad>"] if bos else [])
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def scramble(model):
    """Random weights of realistic scale, so every op (norm affine parts included) matters."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower() or "ln_" in name):
                p.copy_((1.0 + 0.2 * torch.randn_like(p)) if name.endswith("weight") else 0.1 * torch.randn_like(p))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed" in name or "wte" in name or "wpe" in name:
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / p.shape[-1] ** 0.5 * 1.5)
    return model.eval()


def save(model, tok, name, extra_config=None):
    path = os.path.join(FIX, "models", name)
    os.makedirs(path, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save(os.path.join(path, "tokenizer.json"))
    if extra_config:
        cfg_path = os.path.join(path, "config.json")
        cfg = json.load(open(cfg_path))
        cfg.update(extra_config)
        json.dump(cfg, open(cfg_path, "w"), indent=2)
    return path


def flat(t):
    return [round(float(v), 8) for v in t.detach().reshape(-1)]


def ig(forward, x, baseline, steps):
    attr, delta = IntegratedGradients(forward).attribute(
        x, baselines=baseline, method="gausslegendre", n_steps=steps, return_convergence_delta=True)
    return attr[0], float(delta[0])


def grad_of(forward, x):
    x = x.clone().requires_grad_(True)
    forward(x).sum().backward()
    return x.grad[0]


def causal_fixture(model, tok, prompt, name, pad_id=None):
    ids = tok.encode(prompt).ids
    # The embedding module, not its weight: Gemma's scales the rows by sqrt(hidden).
    embed = model.get_input_embeddings()
    x = embed(torch.tensor(ids)).unsqueeze(0).detach()
    with torch.no_grad():
        logits = model(inputs_embeds=x).logits[0, -1]
    target = int(logits.argmax())

    def logit(e):
        return model(inputs_embeds=e).logits[:, -1, target]

    def log_prob(e):
        return torch.log_softmax(model(inputs_embeds=e).logits[:, -1], -1)[:, target]

    def prob(e):
        return torch.softmax(model(inputs_embeds=e).logits[:, -1], -1)[:, target]

    out = {
        "prompt": prompt, "token_ids": ids, "tokens": [tok.id_to_token(i) for i in ids],
        "target_id": target, "last_logits": flat(logits),
        "grad_logit": flat(grad_of(logit, x)), "grad_log_prob": flat(grad_of(log_prob, x)),
        "grad_prob": flat(grad_of(prob, x)),
    }
    attr, delta = ig(logit, x, torch.zeros_like(x), 16)
    out.update(ig_zero_gl16=flat(attr), ig_zero_gl16_delta=delta)
    if pad_id is not None:
        base = embed(torch.tensor([pad_id]))[0].expand_as(x).contiguous().detach()
        attr, delta = ig(logit, x, base, 16)
        out.update(ig_pad_gl16=flat(attr), ig_pad_gl16_delta=delta)
    json.dump(out, open(os.path.join(FIX, name + ".json"), "w"))


def mean_pooled(model, e):
    h = model(inputs_embeds=e).last_hidden_state
    return torch.nn.functional.normalize(h.mean(1), dim=-1)


def bert_cosine_fixture(model, tok, prompt, compare, name, steps, with_hidden=True):
    emb = model.get_input_embeddings().weight
    ids = tok.encode(prompt).ids
    cids = tok.encode(compare).ids
    x = emb[torch.tensor(ids)].unsqueeze(0).detach()
    with torch.no_grad():
        ref = mean_pooled(model, emb[torch.tensor(cids)].unsqueeze(0))[0]
        hidden = model(inputs_embeds=x).last_hidden_state[0]

    def cosine(e):
        return mean_pooled(model, e) @ ref

    attr, delta = ig(cosine, x, torch.zeros_like(x), steps)
    out = {"prompt": prompt, "compare": compare, "token_ids": ids, "compare_ids": cids,
           "tokens": [tok.id_to_token(i) for i in ids],
           "target_score": float(cosine(x)[0]), "grad_cosine": flat(grad_of(cosine, x)),
           "ig_steps": steps, "ig_scores": flat(attr.sum(-1)), "ig_delta": delta}
    if with_hidden:
        out["last_hidden"] = flat(hidden)
    if attr.numel() <= 4096:
        out["ig_map"] = flat(attr)
    json.dump(out, open(os.path.join(FIX, name + ".json"), "w"))


def main():
    os.makedirs(os.path.join(FIX, "models"), exist_ok=True)
    wp = wordpiece_tokenizer()
    common = dict(vocab_size=wp.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                  num_attention_heads=4, intermediate_size=64, max_position_embeddings=40,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, pad_token_id=0)
    bert = scramble(BertModel(BertConfig(**common), add_pooling_layer=False))
    save(bert, wp, "tiny-bert")
    bert_cosine_fixture(bert, wp, "The quick brown fox jumps over the lazy dog.",
                        "A small model predicts the next token.", "tiny-bert", 16)

    cls = scramble(BertForSequenceClassification(BertConfig(num_labels=3, **common)))
    save(cls, wp, "tiny-bert-cls")
    ids = wp.encode("Attribution methods explain predictions.").ids
    x = cls.get_input_embeddings().weight[torch.tensor(ids)].unsqueeze(0).detach()
    with torch.no_grad():
        logits = cls(inputs_embeds=x).logits[0]

    def class1(e):
        return cls(inputs_embeds=e).logits[:, 1]
    attr, delta = ig(class1, x, torch.zeros_like(x), 16)
    json.dump({"prompt": "Attribution methods explain predictions.", "token_ids": ids,
               "logits": flat(logits), "grad_class1": flat(grad_of(class1, x)),
               "ig_class1_zero_gl16": flat(attr), "ig_delta": float(delta)},
              open(os.path.join(FIX, "tiny-bert-cls.json"), "w"))

    bl = bytelevel_tokenizer(bos=False)
    gpt2 = scramble(GPT2LMHeadModel(GPT2Config(
        vocab_size=bl.get_vocab_size(), n_embd=32, n_layer=2, n_head=4, n_positions=40,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=0, eos_token_id=0)))
    save(gpt2, bl, "tiny-gpt2")
    causal_fixture(gpt2, bl, "The capital of France is", "tiny-gpt2")

    bb = bytelevel_tokenizer(bos=True)
    pad = bb.token_to_id("<pad>")
    llama = scramble(LlamaForCausalLM(LlamaConfig(
        vocab_size=bb.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=40,
        rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=True,
        bos_token_id=bb.token_to_id("<s>"), eos_token_id=0, pad_token_id=pad)))
    # transformers 4.x (LXT's) reads rope_theta at the top level, 5.x from rope_parameters.
    save(llama, bb, "tiny-llama", extra_config={"rope_theta": 500.0})
    causal_fixture(llama, bb, "Language models predict the next", "tiny-llama", pad_id=pad)

    minilm = os.path.join(ROOT, "models", "minilm")
    if os.path.isdir(minilm):
        model = BertModel.from_pretrained(minilm, add_pooling_layer=False).eval()
        tok = Tokenizer.from_file(os.path.join(minilm, "tokenizer.json"))
        tok.no_padding()  # as transformers does per call; tokenizer.json pads to 128
        tok.no_truncation()
        bert_cosine_fixture(model, tok, "The quick brown fox jumps over the lazy dog.",
                            "A fast auburn fox leaps above a sleepy hound.", "minilm", 50)
        bert_cosine_fixture(model, tok, "Integrated gradients explain a model's prediction.",
                            "Attribution scores show which words mattered.", "minilm-2", 50,
                            with_hidden=False)
    else:
        print("models/minilm missing: run scripts/fetch-models.sh for the MiniLM fixtures",
              file=sys.stderr)


if __name__ == "__main__":
    main()
