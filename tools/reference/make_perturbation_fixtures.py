#!/usr/bin/env python3
"""Captum's KernelShap and Lime on the tiny models, given fixed coalitions.

Not run by CI. Writes tests/fixtures/perturbation.json: for each case, the prompt, its token
ids, the target, and for KernelSHAP and LIME the coalitions (one 0/1 entry per token) and
Captum's per-token attributions from exactly those coalitions. Tokens are the features and
the baseline is zero. KernelShap is Captum's own (its 1e6 weight on the empty and full
coalitions, linear regression); Lime uses the cosine exponential kernel of width 1 and
scikit-learn's Ridge with alpha 1, which is what gradlens' lime computes.

Usage: python tools/reference/make_perturbation_fixtures.py  (from the repository root;
       needs `pip install torch transformers captum scikit-learn`)
"""
import json
import os

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import KernelShap, Lime
from captum.attr._core.lime import get_exp_kernel_similarity_function
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "perturbation.json")


def kernel_masks(rng, m, count):
    """Coalition sizes from the Shapley kernel, then a uniform subset of that size."""
    sizes = np.arange(1, m)
    p = (m - 1) / (sizes * (m - sizes))
    p = p / p.sum()
    masks = []
    for _ in range(count):
        k = rng.choice(sizes, p=p)
        mask = np.zeros(m, dtype=np.int64)
        mask[rng.choice(m, size=k, replace=False)] = 1
        masks.append(mask)
    return masks


def given(masks, first=()):
    """A Captum perturbation generator that yields `first`, then `masks`, as [1, M] rows."""
    def generator(original_inp, **kwargs):
        for mask in list(first) + list(masks):
            yield torch.tensor(mask, dtype=torch.float32).view(1, -1)
    return generator


def case(name, prompt, forward_of, target):
    tok = Tokenizer.from_file(os.path.join(MODELS, name, "tokenizer.json"))
    ids = tok.encode(prompt).ids
    m = len(ids)
    model_dir = os.path.join(MODELS, name)
    if name == "tiny-bert-cls":
        model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    x = model.get_input_embeddings()(torch.tensor([ids])).detach()
    forward = forward_of(model, target)
    feature_mask = torch.arange(m).view(1, m, 1).expand_as(x)
    baseline = torch.zeros_like(x)
    rng = np.random.RandomState(0)

    shap_masks = kernel_masks(rng, m, 40)
    ks = KernelShap(forward)
    # Captum's own generator yields the full and the empty coalition first, then its draws.
    ks.perturb_func = given(shap_masks, first=[np.ones(m, np.int64), np.zeros(m, np.int64)])
    shap = ks.attribute(x, baselines=baseline, feature_mask=feature_mask,
                        n_samples=len(shap_masks) + 2)

    lime_masks = [rng.randint(0, 2, size=m) for _ in range(30)]
    lime = Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0),
                similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=1.0),
                perturb_func=given(lime_masks))
    lime_attr = lime.attribute(x, baselines=baseline, feature_mask=feature_mask,
                               n_samples=len(lime_masks))
    return {
        "model": name, "prompt": prompt, "token_ids": ids, "target": target,
        "kernel_shap": {"masks": [mk.tolist() for mk in shap_masks],
                        "captum": shap[0, :, 0].tolist()},
        "lime": {"masks": [mk.tolist() for mk in lime_masks],
                 "captum": lime_attr[0, :, 0].tolist()},
    }


def next_token_logit(model, target):
    return lambda e: model(inputs_embeds=e).logits[:, -1, target]


def class_logit(model, target):
    return lambda e: model(inputs_embeds=e).logits[:, target]


def main():
    cases = [
        case("tiny-llama", "Language models predict", next_token_logit, 17),
        case("tiny-bert-cls", "the quick brown fox", class_logit, 1),
    ]
    with open(OUT, "w") as f:
        json.dump({"cases": cases}, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    with torch.no_grad():
        main()
