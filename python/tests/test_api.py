"""The Python API on the tiny models and on MiniLM and SmolLM2: results, the CLI's JSON,
lists of texts, errors, the GIL and Ctrl-C."""

import json
import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

import gradlens
from conftest import cli, real_model, tiny

PROMPT = "Language models predict the next"


def test_an_attribution_has_numpy_scores_and_the_clis_fields(llama):
    a = llama.attribute(PROMPT, method="integrated-gradients", steps=16, include_map=True)
    assert isinstance(a, gradlens.Attribution)
    assert a.scores.dtype == np.float32 and a.scores.shape == (len(a.tokens),)
    assert a.token_ids == llama.tokenize(PROMPT)
    assert a.map.shape == (len(a.tokens), llama.info["hidden_size"])
    # IG's token scores are the rows' sums, and they add up to F(x) - F(x') up to delta.
    np.testing.assert_allclose(a.map.sum(axis=1), a.scores, rtol=1e-5, atol=1e-6)
    assert abs(a.scores.sum() - (a.target_score - a.baseline_score) - a.delta) < 1e-3
    assert a.method == "integrated-gradients" and a.target["kind"] == "logit"
    assert a.to_html().startswith("<!DOCTYPE html>")


def test_to_dict_is_the_clis_json(llama):
    args = ["--method", "attnlrp", "--format", "json"]
    out = subprocess.run([cli(), "attribute", "--model", tiny("tiny-llama"), "--prompt", PROMPT, *args],
                         check=True, capture_output=True, text=True).stdout
    want = json.loads(out)
    got = llama.attribute(PROMPT, method="attnlrp").to_dict()
    for record in (want, got):
        record.pop("elapsed_ms")
    assert list(got) == list(want)
    assert got == want


def test_a_list_gives_what_each_text_gives_alone(llama):
    texts = [PROMPT, "The quick brown fox", "A", "Small models are fast and easy"]
    together = llama.attribute(texts, method="integrated-gradients", steps=8, baseline="pad")
    for text, a in zip(texts, together):
        alone = llama.attribute(text, method="integrated-gradients", steps=8, baseline="pad")
        assert a.tokens == alone.tokens
        np.testing.assert_array_equal(a.scores, alone.scores)


def test_targets_by_token_and_id(llama):
    top = llama.attribute(PROMPT, method="saliency")
    by_id = llama.attribute(PROMPT, method="saliency", target=top.target["id"])
    np.testing.assert_array_equal(by_id.scores, top.scores)
    # A token of the prompt whose text is one token again, by text and by id.
    a = llama.attribute(PROMPT, method="saliency")
    token, token_id = next((t, i) for t, i in zip(a.tokens[1:], a.token_ids[1:])
                           if llama.tokenize(t)[-1:] == [i] and len(llama.tokenize(t)) <= 2)
    by_token = llama.attribute(PROMPT, method="saliency", target=token)
    assert by_token.target["id"] == token_id
    np.testing.assert_array_equal(
        by_token.scores, llama.attribute(PROMPT, method="saliency", target=token_id).scores)


def test_methods_lists_every_method_with_its_options():
    ms = {m["name"]: m for m in gradlens.methods()}
    assert len(ms) == 27
    steps = {o["name"]: o for o in ms["integrated-gradients"]["options"]}["steps"]
    assert steps["kind"] == "count" and steps["default"] is not None
    assert "max_dist" in {o["name"] for o in ms["guided-ig"]["options"]}


def test_errors_are_gradlens_exceptions_with_the_clis_messages(llama, tmp_path):
    with pytest.raises(gradlens.InvalidArgumentError, match="unknown option 'stepz'"):
        llama.attribute(PROMPT, stepz=3)
    with pytest.raises(gradlens.InvalidArgumentError, match="unknown method"):
        llama.attribute(PROMPT, method="no-such-method")
    with pytest.raises(gradlens.InvalidArgumentError, match="--steps"):
        llama.attribute(PROMPT, steps="many")
    with pytest.raises(gradlens.InvalidInputError, match="tokens"):
        llama.attribute("word " * 5000)
    with pytest.raises(gradlens.ModelError) as missing:
        gradlens.load(tmp_path / "nowhere")
    # The same message as the CLI's one error line.
    err = subprocess.run([cli(), "attribute", "--model", str(tmp_path / "nowhere"), "--prompt", "x"],
                         capture_output=True, text=True).stderr
    assert err.strip() == f"error: {missing.value}"
    assert isinstance(missing.value, gradlens.GradlensError)
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError too
        llama.attribute(PROMPT, batch_size=0)


def test_generation_and_evaluation(llama):
    g = llama.generate_and_attribute(PROMPT, 3, method="saliency")
    assert len(g.generated_tokens) == 3 and len(g.generation) == 3
    assert len(g.generation[2]["scores"]) == len(g.tokens) + 2
    e = llama.evaluate(PROMPT, methods=["saliency", "occlusion"])
    assert [m["method"] for m in e["methods"]] == ["saliency", "occlusion"]


def test_the_gil_is_released_while_rust_works(llama):
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    start = time.perf_counter()
    llama.attribute(PROMPT, method="integrated-gradients", steps=3000, batch_size=25)
    elapsed = time.perf_counter() - start
    done.set()
    t.join()
    during = [x for x in ticks if start < x < start + elapsed]
    # The other thread ran all along (held, the GIL would have let it tick about once).
    assert elapsed > 0.05 and len(during) > 10, (elapsed, len(during))


def test_ctrl_c_interrupts_a_long_run(llama):
    # Python raises KeyboardInterrupt only where it installed its handler, which it does not
    # in a process started with SIGINT ignored (a background job of a non-interactive shell,
    # as CI may be): install it for this test.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
        start = time.perf_counter()
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            llama.attribute(PROMPT, method="integrated-gradients", steps=100000,
                            quadrature="riemann-left", batch_size=25)
        assert time.perf_counter() - start < 5
    finally:
        signal.signal(signal.SIGINT, previous)


def test_minilm_cosine_target_matches_the_cli():
    path = real_model("minilm")
    m = gradlens.load(path)
    a = m.attribute("The quick brown fox.", method="ig", steps=16, compare_text="A fast auburn fox.")
    out = subprocess.run([cli(), "attribute", "--model", path, "--prompt", "The quick brown fox.",
                          "--compare-text", "A fast auburn fox.", "--method", "ig", "--steps", "16",
                          "--format", "json"], check=True, capture_output=True, text=True).stdout
    np.testing.assert_array_equal(a.scores, np.array(json.loads(out)["scores"], dtype=np.float32))


def test_smollm2_explains_paris():
    m = gradlens.load(real_model("smollm2.gguf"))
    a = m.attribute("The capital of France is", method="attnlrp")
    assert a.target["token"] == " Paris"
    assert np.isfinite(a.scores).all()
