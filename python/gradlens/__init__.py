"""gradlens: which input tokens made a transformer say that.

    import gradlens
    model = gradlens.load("models/smollm2.gguf")
    a = model.attribute("The capital of France is", method="attnlrp")
    for token, score in zip(a.tokens, a.scores):
        print(f"{token!r:>12} {score:+.4f}")

The attribution engine is Rust (the ``gradlens`` crate); this package calls it with the GIL
released. Options are the CLI's long flags with underscores (``steps=32``,
``compare_text="..."``, ``batch_size=8``) and are checked in Rust by name.
"""

import json

from . import _gradlens
from ._gradlens import Attribution
from .errors import (
    CancelledError, DeviceError, FileError, GradlensError, InternalError, InvalidArgumentError,
    InvalidInputError, ModelError, NonFiniteError,
)
from .rules import RuleSet

__version__ = _gradlens.__version__
__all__ = [
    "load", "methods", "Model", "Attribution", "RuleSet", "GradlensError", "ModelError",
    "InvalidArgumentError", "InvalidInputError", "DeviceError", "NonFiniteError", "FileError",
    "CancelledError", "InternalError",
]


def load(path, device="cpu", weights="stored"):
    """A Hugging Face model folder or a GGUF file, on ``device`` ("cpu", "cuda", "wgpu" or
    "auto"), its weight matrices kept as stored ("stored") or decoded ("f32")."""
    return Model(_gradlens.load(str(path), device, weights))


def methods():
    """Every method: name, aliases, summary, cost, family and options (name, kind, default,
    help)."""
    return json.loads(_gradlens.methods_json())["methods"]


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


def _options(options):
    return [(name, _text(value)) for name, value in options.items() if value is not None]


class Model:
    """A loaded model."""

    def __init__(self, inner):
        self._inner = inner

    name = property(lambda self: self._inner.name)
    architecture = property(lambda self: self._inner.architecture)
    device = property(lambda self: self._inner.device)
    is_causal = property(lambda self: self._inner.is_causal)
    is_classifier = property(lambda self: self._inner.is_classifier)

    @property
    def info(self):
        """Sizes, dtype and weight formats, as ``gradlens info`` prints them."""
        return json.loads(self._inner.info_json())

    def tokenize(self, text):
        return self._inner.tokenize(text)

    def _target(self, target, options):
        if target is None:
            return options
        if isinstance(target, bool) or not isinstance(target, (str, int)):
            raise InvalidArgumentError(f"target must be a token (str) or an id or class (int), not {target!r}")
        if isinstance(target, str):
            return {**options, "target": target}
        key = "target_class" if self.is_classifier else "target_id"
        return {**options, key: target}

    def attribute(self, text, method="integrated-gradients", target=None, rules=None, **options):
        """The attribution of ``text`` (or one per text of a list, computed concurrently, each
        exactly as alone) by ``method``, or by the Python rule set ``rules``.

        ``target``: a token (str) or token id (int) for causal models, a class (int) for
        classifiers; the top one by default. Encoders take ``compare_text=``. Other options are
        the method's (``steps=``, ``baseline=``, …) and ``target_kind``, ``batch_size``,
        ``checkpoint``, ``include_map``; ``gradlens.methods()`` lists them.
        """
        if rules is not None and not isinstance(rules, RuleSet):
            raise InvalidArgumentError(f"rules must be a gradlens.RuleSet, not {type(rules).__name__}")
        one = isinstance(text, str)
        texts = [text] if one else list(text)
        results = self._inner.attribute(texts, method, _options(self._target(target, options)), rules)
        return results[0] if one else results

    def generate_and_attribute(self, prompt, n, method="attnlrp", stop_at_eos=False, **options):
        """Generates up to ``n`` tokens greedily and attributes each to the prompt and the tokens
        generated before it (``a.generated_tokens``, ``a.generation``)."""
        return self._inner.generate_and_attribute(prompt, n, stop_at_eos, method, _options(options))

    def evaluate(self, text, methods=("saliency", "input-x-gradient", "integrated-gradients",
                                      "attnlrp", "occlusion", "attention-rollout"), **options):
        """How faithful each method is on ``text``: deletion and insertion curves,
        comprehensiveness, sufficiency and AOPC, as the CLI's ``evaluate`` JSON."""
        if isinstance(methods, str):
            methods = [m.strip() for m in methods.split(",")]
        return json.loads(self._inner.evaluate(text, list(methods), _options(options)))

    def __repr__(self):
        return repr(self._inner)
