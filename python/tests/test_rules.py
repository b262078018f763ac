"""Backward rules written in Python."""

import numpy as np
import pytest

import gradlens

PROMPT = "Language models predict the next"


class PythonGuided(gradlens.RuleSet):
    """Guided backprop through SiLU, as the built-in one does it: relu(g) · relu(f'(x))."""

    name = "python-guided"
    times_input = False
    token_score = "norm"

    def silu(self, inputs, output, grad):
        x = inputs[0].astype(np.float64)
        s = 1.0 / (1.0 + np.exp(-x))
        return [np.maximum(grad, 0) * np.maximum(s * (1.0 + x * (1.0 - s)), 0)]


def test_guided_backprop_in_python_equals_the_built_in_one(llama):
    built_in = llama.attribute(PROMPT, method="guided-backprop", include_map=True)
    python = llama.attribute(PROMPT, rules=PythonGuided(), include_map=True)
    assert python.method == "python-guided"
    scale = np.abs(built_in.map).max()
    np.testing.assert_allclose(python.map, built_in.map, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(python.scores, built_in.scores, rtol=0, atol=1e-6 * scale)


def test_no_override_is_the_gradient_times_the_input(llama):
    a = llama.attribute(PROMPT, rules=gradlens.RuleSet(), include_map=True)
    ixg = llama.attribute(PROMPT, method="input-x-gradient", include_map=True)
    np.testing.assert_allclose(a.map, ixg.map, rtol=0, atol=1e-6 * np.abs(ixg.map).max())


def test_attention_rules_see_the_probabilities_and_errors_come_back_as_raised(llama):
    class Counting(gradlens.RuleSet):
        calls = 0

        def attention_probs(self, inputs, output, grad):
            Counting.calls += 1
            # Attention weights held constant: nothing flows to queries and keys.
            return [None, None]

    a = llama.attribute(PROMPT, rules=Counting())
    assert Counting.calls > 0 and np.isfinite(a.scores).all()

    class Broken(gradlens.RuleSet):
        def silu(self, inputs, output, grad):
            raise ZeroDivisionError("a rule's own bug")

    with pytest.raises(ZeroDivisionError, match="a rule's own bug"):
        llama.attribute(PROMPT, rules=Broken())

    class WrongShape(gradlens.RuleSet):
        def silu(self, inputs, output, grad):
            return [grad[..., :1]]

    with pytest.raises(ValueError, match="shape"):
        llama.attribute(PROMPT, rules=WrongShape())
