"""Backward rules written in Python, for research on new attribution rules.

Subclass ``RuleSet`` and define a method named after each op kind whose backward you replace;
it receives the op's inputs (a list), its output and the gradient arriving at its output, as
float32 numpy arrays, and returns one gradient (or ``None``) per input. Every other op keeps
its exact gradient::

    class Guided(gradlens.RuleSet):
        name = "python-guided"
        times_input = False      # the map is the modified gradient, not input x gradient
        token_score = "norm"     # a token's score is its row's L2 norm

        def silu(self, inputs, output, grad):
            x = inputs[0]
            s = 1 / (1 + np.exp(-x))
            return [np.maximum(grad, 0) * np.maximum(s * (1 + x * (1 - s)), 0)]

    model.attribute("The capital of France is", rules=Guided())

The fused attention is given to a rule set as its two pieces (``attention_probs``, then the
``matmul`` of the probabilities with the values) when it overrides either.
"""

import numpy as np

#: The op kinds a rule set can override (`gradlens/src/ops/mod.rs`).
OPS = frozenset({
    "linear", "matmul", "add", "add_const", "mul", "gate", "scale",
    "gelu", "gelu_tanh", "silu", "tanh", "relu",
    "softmax", "attention_probs", "attention", "layer_norm", "rms_norm", "rope",
    "split_heads", "merge_heads", "repeat_heads", "select_position", "weighted_seq_sum",
    "cosine", "pick_softmax", "reshape",
})


class RuleSet:
    """A rule set written in Python. See the module documentation."""

    #: What the result's ``method`` says.
    name = "python-rules"
    #: Whether the map is input x modified gradient (else the modified gradient itself).
    times_input = True
    #: How a token's row of the map becomes its score: "sum" or "norm".
    token_score = "sum"

    def overridden(self):
        """The op kinds this rule set has a method for."""
        return sorted(op for op in OPS if callable(getattr(type(self), op, None)))

    def _backward(self, op, inputs, output, grad):
        """Called by the engine: the method for `op`, its gradients as float32 arrays."""
        grads = getattr(self, op)(inputs, output, grad)
        if grads is None or isinstance(grads, np.ndarray):
            raise TypeError(f"{type(self).__name__}.{op} must return a list of gradients, one per input")
        return [None if g is None else np.ascontiguousarray(g, dtype=np.float32) for g in grads]
